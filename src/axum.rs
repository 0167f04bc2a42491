//! axum extractors (feature `axum`): [`Claims`] and `Option<Claims>` in handlers behind
//! [`BearerAuthLayer`](crate::bearer::BearerAuthLayer), and `Claims<T>` for an application's
//! own claims read typed.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_jwt_auth::bearer::BearerAuthLayer;
//! use tower_jwt_auth::{Algorithm, Claims, KeySet, Verifier};
//!
//! async fn me(claims: Claims) -> String {
//!     format!("hello {}", claims.subject().unwrap_or("?"))
//! }
//!
//! async fn greeting(claims: Option<Claims>) -> &'static str {
//!     if claims.is_some() { "welcome back" } else { "welcome" }
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct Tenant {
//!     tenant: String,
//! }
//!
//! async fn tenant(claims: Claims<Tenant>) -> String {
//!     format!("{} of {}", claims.subject().unwrap_or("?"), claims.extra().tenant)
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, &[7; 32])?)
//!     .issuer("https://issuer.example").audience("api").build()?;
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .route("/tenant", get(tenant))
//!     .route("/", get(greeting))
//!     .layer(BearerAuthLayer::new(verifier).optional());
//! # let _ = app;
//! # Ok(()) }
//! ```
//!
//! What a handler gets: `Claims` is another handle on the very claims `BearerAuth` put into
//! the request extensions (and, with the verification cache on, that the cache keeps):
//! taking it copies nothing and allocates nothing. `Claims<T>` shares their registered
//! claims, roles and scopes too, and owns only its `T`, read from the remaining claims in
//! place ([`Claims::typed`]): the map is not cloned first.
//!
//! `Claims` and `Claims<T>` reject with 401 when the request carries no claims (no token in
//! optional mode, or no `BearerAuthLayer` in front of the route): [`MissingClaims`].
//! `Claims<T>` also rejects with 401 `invalid_token` when the token's remaining claims do not
//! deserialise into `T` ([`InvalidClaims`]), as [`Verifier::verify_as`](crate::Verifier::verify_as)
//! would have refused the token. `Option<Claims<T>>` is `None` without claims and never
//! rejects for their absence. gRPC requests get the trailers-only form of the same answer.
//! The extractors cannot see the layer's configuration, so their challenge names no `realm`.

use std::any::Any;
use std::fmt;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::claims::Claims;
use crate::error::{AuthError, ErrorKind};
use crate::response::{Responder, is_grpc};

/// The answer for `kind`, through the default rejection, with the reason in the extensions.
fn respond(kind: ErrorKind, grpc: bool) -> Response {
    let error = AuthError::new(kind);
    let mut response = Responder::default()
        .rejection(error, grpc)
        .into_response()
        .map(axum_core::body::Body::from);
    response.extensions_mut().insert(error);
    response
}

/// The body of the HTTP answer for `kind`, as text.
fn body_text(kind: ErrorKind) -> String {
    let response = Responder::default().rejection(AuthError::new(kind), false);
    String::from_utf8_lossy(response.into_response().body()).into_owned()
}

/// A rejection answering 401 for one [`ErrorKind`], with axum's rejection surface.
macro_rules! rejection {
    ($(#[$doc:meta])* $name:ident, $kind:expr, $body:literal) => {
        $(#[$doc])*
        #[derive(Debug)]
        #[non_exhaustive]
        pub struct $name {
            grpc: bool,
        }

        impl $name {
            /// The HTTP status of the answer: 401. (A gRPC request is answered 200 with
            /// `grpc-status` 16.)
            #[must_use]
            pub fn status(&self) -> StatusCode {
                StatusCode::UNAUTHORIZED
            }

            #[doc = concat!("The body of the HTTP answer: `", $body, "`.")]
            #[must_use]
            pub fn body_text(&self) -> String {
                body_text($kind)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($kind.description())
            }
        }

        impl std::error::Error for $name {}

        impl IntoResponse for $name {
            fn into_response(self) -> Response {
                respond($kind, self.grpc)
            }
        }
    };
}

rejection!(
    /// The request carries no claims: 401 without an error code, as
    /// [`BearerAuthLayer`](crate::bearer::BearerAuthLayer) answers a request without credentials
    /// (trailers-only `UNAUTHENTICATED` for gRPC).
    MissingClaims,
    ErrorKind::Missing,
    r#"{"error":"unauthorized","error_description":"no token"}"#
);

rejection!(
    /// The token's remaining claims do not deserialise into the handler's type: 401
    /// `invalid_token`, the answer [`Verifier::verify_as`](crate::Verifier::verify_as) would have
    /// led to ([`ErrorKind::InvalidClaim`]; trailers-only `UNAUTHENTICATED` for gRPC). The serde
    /// error is not kept: it may quote the token's claims.
    InvalidClaims,
    ErrorKind::InvalidClaim,
    r#"{"error":"invalid_token","error_description":"invalid claim"}"#
);

/// The rejection of the `Claims<T>` extractor: either of the two above.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClaimsRejection {
    /// The request carries no claims.
    Missing(MissingClaims),
    /// The remaining claims do not fit the handler's type.
    Invalid(InvalidClaims),
}

impl ClaimsRejection {
    /// The HTTP status of the answer (401 either way).
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Missing(rejection) => rejection.status(),
            Self::Invalid(rejection) => rejection.status(),
        }
    }

    /// The body of the HTTP answer.
    #[must_use]
    pub fn body_text(&self) -> String {
        match self {
            Self::Missing(rejection) => rejection.body_text(),
            Self::Invalid(rejection) => rejection.body_text(),
        }
    }
}

impl fmt::Display for ClaimsRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(rejection) => rejection.fmt(f),
            Self::Invalid(rejection) => rejection.fmt(f),
        }
    }
}

impl std::error::Error for ClaimsRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Missing(rejection) => Some(rejection),
            Self::Invalid(rejection) => Some(rejection),
        }
    }
}

impl From<MissingClaims> for ClaimsRejection {
    fn from(rejection: MissingClaims) -> Self {
        Self::Missing(rejection)
    }
}

impl From<InvalidClaims> for ClaimsRejection {
    fn from(rejection: InvalidClaims) -> Self {
        Self::Invalid(rejection)
    }
}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Missing(rejection) => rejection.into_response(),
            Self::Invalid(rejection) => rejection.into_response(),
        }
    }
}

/// The stored claims as `Claims<T>`; `Ok(None)` without claims. For `Claims` itself (`T` the
/// JSON map) another handle on the stored claims: nothing is copied or read again.
fn typed<T: DeserializeOwned + 'static>(parts: &Parts) -> Result<Option<Claims<T>>, InvalidClaims> {
    let Some(claims) = parts.extensions.get::<Claims>() else {
        return Ok(None);
    };
    if let Some(same) = (claims as &dyn Any).downcast_ref::<Claims<T>>() {
        return Ok(Some(same.clone()));
    }
    claims.typed().map(Some).map_err(|_| InvalidClaims {
        grpc: is_grpc(&parts.headers),
    })
}

impl<S, T> FromRequestParts<S> for Claims<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send + Sync + 'static,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        typed(parts)?.ok_or_else(|| {
            ClaimsRejection::Missing(MissingClaims {
                grpc: is_grpc(&parts.headers),
            })
        })
    }
}

impl<S, T> OptionalFromRequestParts<S> for Claims<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send + Sync + 'static,
{
    type Rejection = InvalidClaims;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        typed(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_describe_their_answer() {
        let missing = MissingClaims { grpc: false };
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            missing.body_text(),
            r#"{"error":"unauthorized","error_description":"no token"}"#
        );
        assert_eq!(missing.to_string(), "no token");
        let invalid = ClaimsRejection::from(InvalidClaims { grpc: false });
        assert_eq!(invalid.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            invalid.body_text(),
            r#"{"error":"invalid_token","error_description":"invalid claim"}"#
        );
        assert_eq!(invalid.to_string(), "invalid claim");
        assert!(std::error::Error::source(&invalid).is_some());
        let response = invalid.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response
                .extensions()
                .get::<AuthError>()
                .map(AuthError::kind),
            Some(ErrorKind::InvalidClaim)
        );
        let grpc = MissingClaims { grpc: true }.into_response();
        assert_eq!(grpc.headers()["grpc-status"], "16");
    }

    #[test]
    fn the_extractor_hands_out_the_stored_claims_themselves() {
        use crate::algorithm::Algorithm;
        use crate::keys::KeySet;
        use crate::signer::TokenSigner;
        use crate::verifier::Verifier;
        #[derive(serde::Deserialize)]
        struct Tenant {
            tenant: String,
        }
        let secret = [4u8; 32];
        let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, &secret).unwrap())
            .accept_any_issuer()
            .accept_any_audience()
            .required_claims(["sub"])
            .unwrap()
            .build()
            .unwrap();
        let token = TokenSigner::hmac(Algorithm::HS256, &secret)
            .unwrap()
            .sign(&serde_json::json!({"sub": "alice", "tenant": "acme"}))
            .unwrap();
        let stored = verifier.verify(&token).unwrap();
        let (mut parts, ()) = http::Request::new(()).into_parts();
        assert!(typed::<serde_json::Value>(&parts).unwrap().is_none());
        parts.extensions.insert(stored.clone());
        let same = typed::<serde_json::Map<String, serde_json::Value>>(&parts)
            .unwrap()
            .unwrap();
        assert!(same.shares_core_with(&stored) && same.shares_extra_with(&stored));
        let tenant = typed::<Tenant>(&parts).unwrap().unwrap();
        assert!(tenant.shares_core_with(&stored));
        assert_eq!(tenant.extra().tenant, "acme");
        assert!(typed::<u32>(&parts).is_err());
    }
}
