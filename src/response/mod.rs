//! Rejections: the responses the layers answer with instead of calling the inner service.
//!
//! | situation | HTTP | gRPC (`content-type: application/grpc…`) |
//! |---|---|---|
//! | no credentials | 401, `WWW-Authenticate: Bearer` (no error code) | `grpc-status: 16` |
//! | malformed credentials, or sent more than once | 400, `error="invalid_request"` | 16 |
//! | invalid, expired token | 401, `error="invalid_token", error_description="…"` | 16 |
//! | role or scope missing | 403, `error="insufficient_scope"` (with `scope="…"` for scopes) | 7 |
//! | token revoked (a [`RevocationStore`](crate::revocation::RevocationStore) is configured) | 401, `error="invalid_token"` | 16 |
//! | remote keys not available, revocation store unavailable (fail-closed policy) | 503, `Retry-After: 1`, no challenge | 14 |
//!
//! HTTP rejections carry a small JSON body `{"error": …, "error_description": …}` (RFC 6750
//! defines no code for a request without credentials, so that body says `unauthorized` while
//! the challenge carries no error code); gRPC ones are
//! trailers-only (HTTP 200, `grpc-status`, `grpc-message`, empty body). The texts are fixed:
//! nothing from the token or from a library error reaches a header or a body, and every header
//! value is built from configuration checked when the layer was built, so it cannot fail or be
//! split. The [`AuthError`] goes into the response extensions. An [`OnRejection`] hook can
//! replace the response:
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use tower::{Service, ServiceExt};
//! use tower_jwt_auth::bearer::BearerAuthLayer;
//! use tower_jwt_auth::{Algorithm, AuthError, ErrorKind, KeySet, Verifier};
//! use tower_jwt_auth::response::Rejection;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, &[1; 32])?)
//!     .issuer("https://issuer.example").audience("api").build()?;
//! // Answer 401s with a plain-text body, keeping the default status and challenge.
//! let layer = BearerAuthLayer::new(verifier).on_rejection(|rejection: Rejection| {
//!     let mut response = rejection.into_response();
//!     *response.body_mut() = Bytes::from_static(b"please log in");
//!     response
//! });
//! let mut service = tower::ServiceBuilder::new().layer(layer).service_fn(|_req: Request<String>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(String::from("secret")))
//! });
//! let response = service.ready().await?.call(Request::new(String::new())).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], "Bearer");
//! assert_eq!(response.extensions().get::<AuthError>().map(AuthError::kind), Some(ErrorKind::Missing));
//! # Ok(()) }
//! ```

use std::fmt;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};

use crate::error::{AuthError, ConfigError, ErrorKind};

mod body;

pub use body::ResponseBody;

/// Why and how a request is being rejected, handed to an [`OnRejection`] hook.
pub struct Rejection {
    error: AuthError,
    grpc: bool,
    response: Response<Bytes>,
}

impl Rejection {
    /// The reason.
    #[must_use]
    pub fn error(&self) -> AuthError {
        self.error
    }

    /// Whether the request was a gRPC request (answered trailers-only by default).
    #[must_use]
    pub fn is_grpc(&self) -> bool {
        self.grpc
    }

    /// The status of the default response (200 for gRPC, which carries `grpc-status`).
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// The default response: RFC 6750 for HTTP, trailers-only for gRPC.
    #[must_use]
    pub fn into_response(self) -> Response<Bytes> {
        self.response
    }
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("error", &self.error)
            .field("grpc", &self.grpc)
            .field("status", &self.response.status())
            .finish_non_exhaustive()
    }
}

/// Turns a [`Rejection`] into the response sent to the client.
///
/// Implemented by [`DefaultRejection`] and by any `Fn(Rejection) -> Response<Bytes>`.
pub trait OnRejection {
    /// The response for this rejection.
    fn on_rejection(&self, rejection: Rejection) -> Response<Bytes>;
}

/// The default hook: the responses the table in the [module docs](self) describes.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultRejection;

impl OnRejection for DefaultRejection {
    fn on_rejection(&self, rejection: Rejection) -> Response<Bytes> {
        rejection.into_response()
    }
}

impl<F> OnRejection for F
where
    F: Fn(Rejection) -> Response<Bytes>,
{
    fn on_rejection(&self, rejection: Rejection) -> Response<Bytes> {
        self(rejection)
    }
}

/// Builds the default rejections of one layer: its realm and, for scope checks, the scopes to
/// name in the challenge. Both are checked when set, so every header value is valid.
#[derive(Clone, Debug, Default)]
pub(crate) struct Responder {
    realm: Option<Box<str>>,
    scope: Option<Box<str>>,
    resource_metadata: Option<Box<str>>,
}

impl Responder {
    /// Sets the `realm` of the challenge: printable ASCII without `"` and `\`.
    pub(crate) fn set_realm(&mut self, realm: &str) -> Result<(), ConfigError> {
        if realm.is_empty() || !realm.bytes().all(|b| b == b' ' || is_quotable(b)) {
            return Err(ConfigError::InvalidSetting(
                "realm must be printable ASCII without quote or backslash",
            ));
        }
        self.realm = Some(realm.into());
        Ok(())
    }

    /// Sets the `resource_metadata` URL of every challenge (RFC 9728 section 5.1).
    pub(crate) fn set_resource_metadata(&mut self, url: &str) -> Result<(), ConfigError> {
        // Checked URLs are visible ASCII without quote or backslash: safe in a quoted string.
        let url = crate::discovery::checked_url(url)?;
        self.resource_metadata = Some(url.into());
        Ok(())
    }

    /// Sets the scopes named in `insufficient_scope` challenges (already validated tokens).
    pub(crate) fn set_scope(&mut self, scope: String) {
        self.scope = Some(scope.into());
    }

    /// The rejection of `request` for `error`.
    pub(crate) fn reject<B>(&self, request: &Request<B>, error: AuthError) -> Rejection {
        self.rejection(error, is_grpc(request.headers()))
    }

    /// The rejection for `error`, as gRPC or as HTTP.
    pub(crate) fn rejection(&self, error: AuthError, grpc: bool) -> Rejection {
        let response = if grpc {
            grpc_response(error)
        } else {
            self.http_response(error)
        };
        Rejection {
            error,
            grpc,
            response,
        }
    }

    fn http_response(&self, error: AuthError) -> Response<Bytes> {
        if error.kind() == ErrorKind::Unavailable {
            return unavailable_response();
        }
        let (status, code) = http_status_and_code(error.kind());
        let mut challenge = String::from("Bearer");
        let mut attribute = |name: &str, value: &str| {
            challenge.push_str(if challenge.len() == "Bearer".len() {
                " "
            } else {
                ", "
            });
            challenge.push_str(name);
            challenge.push_str("=\"");
            challenge.push_str(value);
            challenge.push('"');
        };
        if let Some(realm) = &self.realm {
            attribute("realm", realm);
        }
        if let Some(url) = &self.resource_metadata {
            attribute("resource_metadata", url);
        }
        if let Some(code) = code {
            attribute("error", code);
            attribute("error_description", error.kind().description());
            if error.kind() == ErrorKind::InsufficientScope
                && let Some(scope) = &self.scope
            {
                attribute("scope", scope);
            }
        }
        // RFC 6750 has no code for a request without credentials; the body says `unauthorized`.
        let body = error_body(code.unwrap_or("unauthorized"), error.kind().description());
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // Every part of the challenge is fixed text or configuration checked on input, so this
        // cannot fail; fall back to the bare scheme rather than panic all the same.
        let challenge =
            HeaderValue::try_from(challenge).unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        headers.insert(WWW_AUTHENTICATE, challenge);
        response
    }
}

/// 503 with `Retry-After`: keys or a store the layer depends on could not be had. No
/// challenge: the credentials were not judged.
fn unavailable_response() -> Response<Bytes> {
    let mut response = Response::new(error_body(
        "temporarily_unavailable",
        ErrorKind::Unavailable.description(),
    ));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The JSON body of every error answer of the crate's layers and router:
/// `{"error": code, "error_description": description}` (RFC 6749 section 5.2, RFC 6750).
pub(crate) fn error_body(code: &str, description: &str) -> Bytes {
    #[derive(serde::Serialize)]
    struct ErrorBody<'a> {
        error: &'a str,
        error_description: &'a str,
    }
    let body = ErrorBody {
        error: code,
        error_description: description,
    };
    // Serialising two strings cannot fail; an empty object is the safe fallback all the same.
    serde_json::to_vec(&body).map_or_else(|_| Bytes::from_static(b"{}"), Bytes::from)
}

/// Bytes allowed inside a quoted-string attribute value here: printable ASCII without `"` and `\`.
fn is_quotable(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\'
}

/// The HTTP status and RFC 6750 error code for a kind (`None`: no credentials, no code).
fn http_status_and_code(kind: ErrorKind) -> (StatusCode, Option<&'static str>) {
    match kind {
        ErrorKind::Missing => (StatusCode::UNAUTHORIZED, None),
        ErrorKind::InvalidRequest => (StatusCode::BAD_REQUEST, Some("invalid_request")),
        ErrorKind::InsufficientScope => (StatusCode::FORBIDDEN, Some("insufficient_scope")),
        _ => (StatusCode::UNAUTHORIZED, Some("invalid_token")),
    }
}

/// gRPC over HTTP/2: `content-type: application/grpc` or `application/grpc+…`.
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|value| {
        let value = value.as_bytes();
        value.len() >= 16
            && value[..16].eq_ignore_ascii_case(b"application/grpc")
            && matches!(value.get(16), None | Some(b'+' | b';'))
    })
}

/// A trailers-only gRPC response: HTTP 200 with `grpc-status` and `grpc-message`, no body.
fn grpc_response(error: AuthError) -> Response<Bytes> {
    // 16 UNAUTHENTICATED, 7 PERMISSION_DENIED, 14 UNAVAILABLE.
    let status = match error.kind() {
        ErrorKind::InsufficientScope => "7",
        ErrorKind::Unavailable => "14",
        _ => "16",
    };
    grpc_status_response(status, error.kind().description())
}

/// A trailers-only gRPC response with this status code and fixed message (ASCII without `%`,
/// so it needs no percent-encoding).
pub(crate) fn grpc_status_response(status: &'static str, message: &'static str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from_static(status));
    headers.insert("grpc-message", HeaderValue::from_static(message));
    response
}

impl Responder {
    /// The rejection through the layer's hook, with the reason put into the response
    /// extensions (after the hook, so a hook cannot lose it).
    pub(crate) fn hooked<ReqB, R: OnRejection>(
        &self,
        request: &Request<ReqB>,
        error: AuthError,
        hook: &R,
    ) -> Response<Bytes> {
        let mut response = hook.on_rejection(self.reject(request, error));
        response.extensions_mut().insert(error);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(value) = content_type {
            request
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        }
        request
    }

    #[test]
    fn every_kind_has_safe_fixed_texts() {
        for kind in ErrorKind::ALL {
            let text = kind.description();
            assert!(
                text.bytes().all(|b| b == b' ' || is_quotable(b)),
                "{kind:?}"
            );
            assert!(
                !text.contains('%'),
                "grpc-message would need encoding: {kind:?}"
            );
            let response = Responder::default().http_response(AuthError::new(kind));
            let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
            assert!(body["error"].is_string() && body["error_description"].is_string());
        }
    }

    #[test]
    fn challenges_follow_rfc_6750() {
        let mut responder = Responder::default();
        let challenge = |responder: &Responder, kind| {
            let response = responder.http_response(AuthError::new(kind));
            (
                response.status(),
                response.headers()[WWW_AUTHENTICATE]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            )
        };
        assert_eq!(
            challenge(&responder, ErrorKind::Missing),
            (StatusCode::UNAUTHORIZED, "Bearer".into())
        );
        responder.set_realm("example api").unwrap();
        responder.set_scope("items:read items:write".into());
        assert_eq!(
            challenge(&responder, ErrorKind::Missing),
            (
                StatusCode::UNAUTHORIZED,
                r#"Bearer realm="example api""#.into()
            )
        );
        assert_eq!(
            challenge(&responder, ErrorKind::Expired),
            (
                StatusCode::UNAUTHORIZED,
                r#"Bearer realm="example api", error="invalid_token", error_description="token expired""#.into()
            )
        );
        assert_eq!(
            challenge(&responder, ErrorKind::InvalidRequest).0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            challenge(&responder, ErrorKind::InsufficientScope),
            (
                StatusCode::FORBIDDEN,
                r#"Bearer realm="example api", error="insufficient_scope", error_description="insufficient scope", scope="items:read items:write""#.into()
            )
        );
    }

    #[test]
    fn challenges_point_at_the_resource_metadata() {
        let mut responder = Responder::default();
        let url = "https://api.example/.well-known/oauth-protected-resource";
        responder.set_resource_metadata(url).unwrap();
        for (kind, rest) in [
            (ErrorKind::Missing, String::new()),
            (
                ErrorKind::Expired,
                r#", error="invalid_token", error_description="token expired""#.to_owned(),
            ),
        ] {
            let response = responder.http_response(AuthError::new(kind));
            assert_eq!(
                response.headers()[WWW_AUTHENTICATE],
                format!(r#"Bearer resource_metadata="{url}"{rest}"#).as_str()
            );
        }
        assert!(
            responder
                .http_response(AuthError::new(ErrorKind::Unavailable))
                .headers()
                .get(WWW_AUTHENTICATE)
                .is_none()
        );
        for bad in [
            "/relative",
            "http://api.example/x",
            "https://api.example/\"x",
        ] {
            assert!(responder.set_resource_metadata(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn realms_that_could_break_the_header_are_refused() {
        for bad in ["", "a\"b", "a\\b", "line\nbreak", "tab\there", "caf\u{e9}"] {
            assert!(Responder::default().set_realm(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn grpc_is_recognised_by_content_type() {
        for grpc in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC",
            "application/grpc;charset=utf-8",
        ] {
            assert!(is_grpc(request(Some(grpc)).headers()), "{grpc}");
        }
        for other in [
            "application/json",
            "application/grpc-web-text",
            "application/grpcx",
            "grpc",
        ] {
            assert!(!is_grpc(request(Some(other)).headers()), "{other}");
        }
        assert!(!is_grpc(request(None).headers()));
    }

    #[test]
    fn grpc_rejections_are_trailers_only() {
        let rejection = Responder::default().reject(
            &request(Some("application/grpc")),
            AuthError::new(ErrorKind::Expired),
        );
        assert!(rejection.is_grpc());
        let response = rejection.into_response();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "16");
        assert_eq!(response.headers()["grpc-message"], "token expired");
        assert!(response.body().is_empty());
        let denied = grpc_response(AuthError::new(ErrorKind::InsufficientScope));
        assert_eq!(denied.headers()["grpc-status"], "7");
    }
}
