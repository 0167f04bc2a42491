//! The router's responses: RFC 6749 §5 JSON bodies with `Cache-Control: no-store`, and the
//! few non-OAuth answers (413, 503).

use std::time::Duration;

use axum::body::Body;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use super::events::RouterError;
use crate::response::error_body;

/// A response of the router.
pub(super) type Reply = Response<Body>;

/// An RFC 6749 §5.2 error. Descriptions are fixed text: nothing from the request is echoed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OAuthError {
    InvalidRequest(&'static str),
    /// Client authentication failed; `basic` when the client tried HTTP Basic (the answer then
    /// carries a `WWW-Authenticate: Basic` challenge, RFC 6749 §5.2).
    InvalidClient {
        basic: bool,
    },
    InvalidGrant(&'static str),
    UnauthorizedClient,
    /// RFC 7009 §2.1: the token to revoke was issued to another client.
    NotIssuedToClient,
    UnsupportedGrantType,
    InvalidScope,
}

/// The one answer for an unknown user, a wrong password and a disabled account: the same bytes
/// whichever it was.
pub(super) const BAD_CREDENTIALS: OAuthError =
    OAuthError::InvalidGrant("invalid username or password");

/// The answer for an unknown, expired, revoked or replayed refresh token.
pub(super) const BAD_REFRESH_TOKEN: OAuthError = OAuthError::InvalidGrant("invalid refresh token");

impl OAuthError {
    pub(super) const fn invalid_request(description: &'static str) -> Self {
        Self::InvalidRequest(description)
    }

    fn code_and_description(self) -> (&'static str, &'static str) {
        match self {
            Self::InvalidRequest(description) => ("invalid_request", description),
            Self::InvalidClient { .. } => ("invalid_client", "client authentication failed"),
            Self::InvalidGrant(description) => ("invalid_grant", description),
            Self::UnauthorizedClient => (
                "unauthorized_client",
                "this client may not use this grant type",
            ),
            Self::NotIssuedToClient => (
                "unauthorized_client",
                "the token was not issued to this client",
            ),
            Self::UnsupportedGrantType => ("unsupported_grant_type", "unsupported grant type"),
            Self::InvalidScope => ("invalid_scope", "requested scope is invalid or not granted"),
        }
    }

    /// The `error` code, for logs and counters.
    pub(super) fn code(self) -> RouterError {
        match self {
            Self::InvalidRequest(_) => RouterError::InvalidRequest,
            Self::InvalidClient { .. } => RouterError::InvalidClient,
            Self::InvalidGrant(_) => RouterError::InvalidGrant,
            Self::UnauthorizedClient | Self::NotIssuedToClient => RouterError::UnauthorizedClient,
            Self::UnsupportedGrantType => RouterError::UnsupportedGrantType,
            Self::InvalidScope => RouterError::InvalidScope,
        }
    }

    pub(super) fn reply(self) -> Reply {
        let (code, description) = self.code_and_description();
        let status = match self {
            Self::InvalidClient { .. } => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut reply = error(status, code, description);
        if let Self::InvalidClient { basic: true } = self {
            reply.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="token", charset="UTF-8""#),
            );
        }
        reply
    }
}

/// A JSON answer that no cache may keep (RFC 6749 §5.1: `Cache-Control: no-store`,
/// `Pragma: no-cache`).
pub(super) fn json(status: StatusCode, body: &impl Serialize) -> Reply {
    // Serialising plain structs of strings cannot fail; an empty object is the safe fallback.
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    no_store(status, Body::from(bytes))
}

/// `body`, as JSON that no cache may keep.
fn no_store(status: StatusCode, body: Body) -> Reply {
    let mut reply = Response::new(body);
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    reply
}

/// An error outside RFC 6749 (registration, 413, 503), in the same JSON shape.
pub(super) fn error(status: StatusCode, code: &'static str, description: &'static str) -> Reply {
    no_store(status, Body::from(error_body(code, description)))
}

/// 413: the body is larger than the router reads.
pub(super) fn payload_too_large() -> Reply {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
        "request body too large",
    )
}

/// 503 with `Retry-After` (whole seconds, at least 1): password hashing is at capacity, or a
/// store did not answer.
pub(super) fn unavailable(retry_after: Duration) -> Reply {
    let mut reply = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "the server is busy, try again later",
    );
    let secs = (retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1);
    reply
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs.min(3600)));
    reply
}

/// 204 No Content, not cacheable.
pub(super) fn no_content() -> Reply {
    let mut reply = Response::new(Body::empty());
    *reply.status_mut() = StatusCode::NO_CONTENT;
    reply
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_its_rfc_status_and_no_store() {
        let cases = [
            (OAuthError::invalid_request("x"), 400, "invalid_request"),
            (
                OAuthError::InvalidClient { basic: false },
                401,
                "invalid_client",
            ),
            (BAD_CREDENTIALS, 400, "invalid_grant"),
            (OAuthError::UnauthorizedClient, 400, "unauthorized_client"),
            (
                OAuthError::UnsupportedGrantType,
                400,
                "unsupported_grant_type",
            ),
            (OAuthError::InvalidScope, 400, "invalid_scope"),
        ];
        for (error, status, code) in cases {
            let reply = error.reply();
            assert_eq!(reply.status().as_u16(), status, "{code}");
            assert_eq!(reply.headers()[CACHE_CONTROL], "no-store");
            assert_eq!(reply.headers()[PRAGMA], "no-cache");
            assert_eq!(error.code_and_description().0, code);
            assert_eq!(error.code().as_str(), code);
            assert!(reply.headers().get(WWW_AUTHENTICATE).is_none());
        }
        let basic = OAuthError::InvalidClient { basic: true }.reply();
        assert!(
            basic.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Basic ")
        );
    }

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        for (after, want) in [(0, "1"), (1, "1"), (1500, "2"), (10_000_000, "3600")] {
            let reply = unavailable(Duration::from_millis(after));
            assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(reply.headers()[RETRY_AFTER], want, "{after} ms");
        }
    }
}
