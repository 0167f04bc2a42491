//! [`BearerAuthLayer`]: verifies the bearer token of every request and puts its [`Claims`] into
//! the request extensions, or answers with a rejection.
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_jwt_auth::{Algorithm, BearerAuthLayer, Claims, KeySet, TokenSigner, Verifier};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = [7u8; 32];
//! let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, &secret)?)
//!     .issuer("https://issuer.example")
//!     .audience("api")
//!     .build()?;
//! let mut service = ServiceBuilder::new()
//!     .layer(BearerAuthLayer::new(verifier))
//!     .service_fn(|request: Request<String>| async move {
//!         let claims = request.extensions().get::<Claims>().expect("set by BearerAuth");
//!         Ok::<_, std::convert::Infallible>(Response::new(format!("hello {}", claims.subject().unwrap_or("?"))))
//!     });
//!
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
//! let token = TokenSigner::hmac(Algorithm::HS256, &secret)?.sign(&serde_json::json!({
//!     "iss": "https://issuer.example", "aud": "api", "sub": "alice", "jti": "1",
//!     "iat": now, "exp": now + 60,
//! }))?;
//! let request = Request::builder().header("authorization", format!("Bearer {token}")).body(String::new())?;
//! let response = service.ready().await?.call(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! let anonymous = service.ready().await?.call(Request::new(String::new())).await?;
//! assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! ```
//!
//! The token comes from one `Authorization: Bearer` header (scheme case-insensitive, RFC 6750
//! `b64token` grammar) or, when [configured](BearerAuthLayer::cookie), one named cookie. Several
//! `Authorization` headers, a header and the cookie together, or a value outside the grammar
//! are answered 400 `invalid_request`. In [optional](BearerAuthLayer::optional) mode a request
//! without credentials passes through without claims; one with bad credentials is still
//! rejected.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::Claims;
use crate::error::{AuthError, ConfigError, ErrorKind};
use crate::response::{DefaultRejection, OnRejection, Responder, ResponseBody};
use crate::verifier::Verifier;

mod credentials;

use credentials::Raw;

pub use crate::response::ResponseFuture;
pub use credentials::{Credentials, credentials};

/// Applies [`BearerAuth`] to a service.
#[must_use]
pub struct BearerAuthLayer<R = DefaultRejection> {
    config: Arc<Config>,
    on_rejection: R,
}

#[derive(Clone)]
struct Config {
    verifier: Verifier,
    cookie: Option<Box<str>>,
    optional: bool,
    responder: Responder,
}

impl BearerAuthLayer {
    /// Requires a valid bearer token, verified by `verifier`, on every request.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            config: Arc::new(Config {
                verifier,
                cookie: None,
                optional: false,
                responder: Responder::default(),
            }),
            on_rejection: DefaultRejection,
        }
    }
}

impl<R> BearerAuthLayer<R> {
    /// Also accepts the token from the cookie `name` (for browser clients). A request that
    /// presents both a header and the cookie is rejected as `invalid_request`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when `name` is not a valid cookie name.
    pub fn cookie(mut self, name: &str) -> Result<Self, ConfigError> {
        if !credentials::is_cookie_name(name) {
            return Err(ConfigError::InvalidSetting(
                "cookie name must be an RFC 6265 token",
            ));
        }
        Arc::make_mut(&mut self.config).cookie = Some(name.into());
        Ok(self)
    }

    /// Lets requests without credentials through, without claims; requests with invalid or
    /// malformed credentials are still rejected. Routes that need a user then check with
    /// [`RequireRoleLayer`](crate::RequireRoleLayer), [`RequireScopeLayer`](crate::RequireScopeLayer)
    /// or an `Option<Claims>` extractor.
    pub fn optional(mut self) -> Self {
        Arc::make_mut(&mut self.config).optional = true;
        self
    }

    /// The `realm` of the `WWW-Authenticate` challenge (default: none).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] unless `realm` is printable ASCII without `"` and `\`.
    pub fn realm(mut self, realm: &str) -> Result<Self, ConfigError> {
        Arc::make_mut(&mut self.config).responder.set_realm(realm)?;
        Ok(self)
    }

    /// Replaces the rejection responses (see [`OnRejection`]).
    pub fn on_rejection<R2: OnRejection>(self, on_rejection: R2) -> BearerAuthLayer<R2> {
        BearerAuthLayer {
            config: self.config,
            on_rejection,
        }
    }
}

impl<R: Clone> Clone for BearerAuthLayer<R> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
            on_rejection: self.on_rejection.clone(),
        }
    }
}

impl<R> fmt::Debug for BearerAuthLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuthLayer")
            .field("verifier", &self.config.verifier)
            .field("cookie", &self.config.cookie)
            .field("optional", &self.config.optional)
            .finish_non_exhaustive()
    }
}

impl<S, R: Clone> Layer<S> for BearerAuthLayer<R> {
    type Service = BearerAuth<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth {
            inner,
            config: Arc::clone(&self.config),
            on_rejection: self.on_rejection.clone(),
        }
    }
}

/// Verifies the bearer token of each request; see the [module docs](self).
pub struct BearerAuth<S, R = DefaultRejection> {
    inner: S,
    config: Arc<Config>,
    on_rejection: R,
}

impl<S: Clone, R: Clone> Clone for BearerAuth<S, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
            on_rejection: self.on_rejection.clone(),
        }
    }
}

impl<S: fmt::Debug, R> fmt::Debug for BearerAuth<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuth")
            .field("inner", &self.inner)
            .field("optional", &self.config.optional)
            .finish_non_exhaustive()
    }
}

impl<S, R> BearerAuth<S, R> {
    /// What to do with `request`: the claims to attach, `None` for an anonymous pass (optional
    /// mode), or the reason to reject.
    fn authenticate<B>(&self, request: &Request<B>) -> Result<Option<Claims>, AuthError> {
        let config = &*self.config;
        match credentials::unchecked_credentials(request, config.cookie.as_deref()) {
            Raw::Token(token) => match config.verifier.verify_bytes(token) {
                Ok(claims) => Ok(Some(claims)),
                // A value outside the RFC 6750 grammar is a malformed request (400), not a bad
                // token (401). Only such values fail as malformed or too long, so the grammar
                // is checked only then.
                Err(error)
                    if matches!(error.kind(), ErrorKind::Malformed | ErrorKind::TooLong)
                        && !credentials::is_b64token(token) =>
                {
                    Err(AuthError::new(ErrorKind::InvalidRequest))
                }
                Err(error) => Err(error),
            },
            Raw::None if config.optional => Ok(None),
            Raw::None => Err(AuthError::new(ErrorKind::Missing)),
            Raw::Invalid => Err(AuthError::new(ErrorKind::InvalidRequest)),
        }
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for BearerAuth<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: OnRejection,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        match self.authenticate(&request) {
            Ok(claims) => {
                // Claims come only from here: whatever an outer layer may have put in the
                // extensions is replaced, and an anonymous request carries none.
                match claims {
                    Some(claims) => request.extensions_mut().insert(claims),
                    None => request.extensions_mut().remove::<Claims>(),
                };
                // Verification is synchronous, so the inner service that `poll_ready` made
                // ready is called right here; no clone has to move into the future.
                ResponseFuture::inner(self.inner.call(request))
            }
            Err(error) => self
                .config
                .responder
                .reject_with(&request, error, &self.on_rejection),
        }
    }
}
