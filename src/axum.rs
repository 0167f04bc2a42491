//! axum extractors (feature `axum`): [`Claims`] and `Option<Claims>` in handlers behind
//! [`BearerAuthLayer`](crate::BearerAuthLayer).
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_jwt_auth::{Algorithm, BearerAuthLayer, Claims, KeySet, Verifier};
//!
//! async fn me(claims: Claims) -> String {
//!     format!("hello {}", claims.subject().unwrap_or("?"))
//! }
//!
//! async fn greeting(claims: Option<Claims>) -> &'static str {
//!     if claims.is_some() { "welcome back" } else { "welcome" }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, &[7; 32])?)
//!     .issuer("https://issuer.example").audience("api").build()?;
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .route("/", get(greeting))
//!     .layer(BearerAuthLayer::new(verifier).optional());
//! # let _ = app;
//! # Ok(()) }
//! ```
//!
//! `Claims` rejects with 401 when the request carries none (no token in optional mode, or no
//! `BearerAuthLayer` in front of the route); `Option<Claims>` never rejects. The extractor
//! cannot see the layer's configuration, so its challenge names no `realm`.

use std::convert::Infallible;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;

use crate::claims::Claims;
use crate::error::{AuthError, ErrorKind};
use crate::response::{Responder, is_grpc};

/// The rejection of the [`Claims`] extractor: 401, as [`BearerAuthLayer`](crate::BearerAuthLayer)
/// answers a request without credentials (trailers-only for gRPC).
#[derive(Debug)]
pub struct MissingClaims {
    grpc: bool,
}

impl IntoResponse for MissingClaims {
    fn into_response(self) -> Response {
        let error = AuthError::new(ErrorKind::Missing);
        let mut response = Responder::default()
            .rejection(error, self.grpc)
            .into_response()
            .map(axum_core::body::Body::from);
        response.extensions_mut().insert(error);
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = MissingClaims;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Claims>()
            .cloned()
            .ok_or(MissingClaims {
                grpc: is_grpc(&parts.headers),
            })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Claims {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Claims>().cloned())
    }
}
