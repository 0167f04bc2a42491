//! [`BearerAuthLayer`]: verifies the bearer token of every request and puts its [`Claims`] into
//! the request extensions, or answers with a rejection.
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_jwt_auth::bearer::BearerAuthLayer;
//! use tower_jwt_auth::{Algorithm, Claims, KeySet, TokenSigner, Verifier};
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
//!
//! With a [revocation store](BearerAuthLayer::revocation), each verified token is then checked
//! against its denylists: a revoked token is answered 401 `invalid_token`, and a store that
//! cannot answer follows the [`StoreErrorPolicy`] (by default 503, gRPC `UNAVAILABLE`). A store
//! that answers at once (memory) adds no allocation and no yield; one that answers later
//! (network) moves the ready inner service into the response future (so the service must be
//! `Clone`, as tower services conventionally are) and calls it once the store has answered.
//!
//! With [remote keys][remote-jwks], a token that needs a fetch (before the first
//! key set arrives, or naming a `kid` the keys lack) waits for that one fetch in the same way,
//! then is verified again; every other token is verified at once, whatever fetching goes on.
//! Keys that cannot be had are answered 503 (gRPC `UNAVAILABLE`), not 401.
//!
#![cfg_attr(
    feature = "remote-jwks",
    doc = "[remote-jwks]: crate::remote::RemoteJwks"
)]
#![cfg_attr(not(feature = "remote-jwks"), doc = "[remote-jwks]: crate#features")]

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::Claims;
use crate::error::{AuthError, ConfigError, ErrorKind};
use crate::pass::{Attempt, Pass};
use crate::response::{DefaultRejection, OnRejection, Responder, ResponseBody};
use crate::revocation::{RevocationQuery, RevocationStore};
use crate::service::inner_service_accessors;
use crate::store::{self, StoreError, StoreErrorPolicy, StoreFuture};
use crate::verifier::Verifier;

mod credentials;
mod events;
mod future;

use credentials::Raw;

pub use credentials::{Credentials, credentials};
pub use future::ResponseFuture;

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
    revocation: Option<Arc<dyn RevocationStore>>,
    on_store_error: StoreErrorPolicy,
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
                revocation: None,
                on_store_error: StoreErrorPolicy::FailClosed,
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
    /// [`RequireRoleLayer`](crate::require::RequireRoleLayer),
    /// [`RequireScopeLayer`](crate::require::RequireScopeLayer) or an `Option<Claims>`
    /// extractor.
    pub fn optional(mut self) -> Self {
        Arc::make_mut(&mut self.config).optional = true;
        self
    }

    /// Whether requests without credentials pass through (see [`optional`](Self::optional)).
    #[must_use]
    pub fn is_optional(&self) -> bool {
        self.config.optional
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

    /// Names the resource's RFC 9728 metadata in every challenge (`resource_metadata="…"`,
    /// section 5.1), so that a client refused for want of a token learns where to get one:
    /// typically [`ProtectedResource::metadata_url`](crate::discovery::ProtectedResource::metadata_url).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] unless `url` is an absolute `https` URL (`http` only to a
    /// loopback host) without credentials, query or fragment.
    pub fn resource_metadata(mut self, url: &str) -> Result<Self, ConfigError> {
        Arc::make_mut(&mut self.config)
            .responder
            .set_resource_metadata(url)?;
        Ok(self)
    }

    /// Checks every verified token against `store` (see the [module docs](self)): a token whose
    /// `jti` or `sid` is denylisted, or issued before its subject's "not before" instant, is
    /// rejected as [`ErrorKind::Revoked`].
    pub fn revocation(mut self, store: Arc<dyn RevocationStore>) -> Self {
        Arc::make_mut(&mut self.config).revocation = Some(store);
        self
    }

    /// What to do when the revocation store cannot answer (default:
    /// [`StoreErrorPolicy::FailClosed`]).
    pub fn on_store_error(mut self, policy: StoreErrorPolicy) -> Self {
        Arc::make_mut(&mut self.config).on_store_error = policy;
        self
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
            .field("revocation", &self.config.revocation.is_some())
            .field("on_store_error", &self.config.on_store_error)
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

impl<S> BearerAuth<S> {
    /// Wraps `inner`, requiring a valid bearer token verified by `verifier` (as
    /// [`BearerAuthLayer::new`]).
    pub fn new(inner: S, verifier: Verifier) -> Self {
        BearerAuthLayer::new(verifier).layer(inner)
    }
}

// In an impl of its own, for one inner type: the layer names no inner service, so
// `BearerAuth::layer(…)` would otherwise leave `S` to be spelled out.
impl BearerAuth<()> {
    /// The layer: [`BearerAuthLayer::new`].
    pub fn layer(verifier: Verifier) -> BearerAuthLayer {
        BearerAuthLayer::new(verifier)
    }
}

impl<S, R> BearerAuth<S, R> {
    inner_service_accessors!();
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

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for BearerAuth<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    R: OnRejection + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let claims = match self.config.authenticate(&request, Pass::MayWait) {
            Attempt::Done(Ok(claims)) => claims,
            Attempt::Done(Err(error)) => return self.reject(&request, error),
            // Remote keys are being fetched for this token (a cold start, a new `kid`).
            #[cfg(feature = "remote-jwks")]
            Attempt::Wait(fetch) => return ResponseFuture::keys(fetch, self.pending(request)),
        };
        match self.config.admit(&mut request, claims) {
            // Verification is synchronous, so the inner service that `poll_ready` made ready
            // is called right here; no clone has to move into the future.
            Admission::Call => ResponseFuture::inner(self.inner.call(request)),
            Admission::Reject(error) => self.reject(&request, error),
            Admission::Check(check) => ResponseFuture::check(check, self.pending(request)),
        }
    }
}

impl<S: Clone, R: Clone> BearerAuth<S, R> {
    /// The request and the service `poll_ready` made ready, for a future that finishes the
    /// request later; a clone is left in its place (tower-service's documented pattern).
    fn pending<ReqBody>(&mut self, request: Request<ReqBody>) -> future::Pending<S, ReqBody, R> {
        let clone = self.inner.clone();
        future::Pending {
            inner: mem::replace(&mut self.inner, clone),
            request,
            config: Arc::clone(&self.config),
            on_rejection: self.on_rejection.clone(),
        }
    }
}

impl<S, R: OnRejection> BearerAuth<S, R> {
    fn reject<ReqBody>(
        &self,
        request: &Request<ReqBody>,
        error: AuthError,
    ) -> ResponseFuture<S, ReqBody, R>
    where
        S: Service<Request<ReqBody>>,
    {
        events::rejected(error);
        ResponseFuture::reject(
            self.config
                .responder
                .hooked(request, error, &self.on_rejection),
        )
    }
}

/// What becomes of a request whose credentials have been judged.
enum Admission {
    /// Call the inner service.
    Call,
    Reject(AuthError),
    /// Ask the revocation store first; it answers later.
    Check(StoreFuture<bool>),
}

impl Config {
    /// What the credentials of `request` come to: the claims to attach, `None` for an anonymous
    /// pass (optional mode), the reason to reject, or (only in a pass that may wait) a fetch of
    /// remote keys to wait for before passing again.
    fn authenticate<B>(&self, request: &Request<B>, pass: Pass) -> Attempt<Option<Claims>> {
        let token = match credentials::unchecked_credentials(request, self.cookie.as_deref()) {
            Raw::Token(token) => token,
            Raw::None if self.optional => return Attempt::Done(Ok(None)),
            Raw::None => return Attempt::Done(Err(AuthError::new(ErrorKind::Missing))),
            Raw::Invalid => return Attempt::Done(Err(AuthError::new(ErrorKind::InvalidRequest))),
        };
        let invalid_request = Attempt::Done(Err(AuthError::new(ErrorKind::InvalidRequest)));
        match self.verifier.verify_pass(token, pass) {
            Attempt::Done(Ok(verified)) => Attempt::Done(Ok(Some(verified.into_claims()))),
            // A value outside the RFC 6750 grammar is a malformed request (400), not a bad
            // token (401). Only such values fail as malformed or too long, so the grammar is
            // checked only then.
            Attempt::Done(Err(error))
                if matches!(error.kind(), ErrorKind::Malformed | ErrorKind::TooLong)
                    && !credentials::is_b64token(token) =>
            {
                invalid_request
            }
            Attempt::Done(Err(error)) => Attempt::Done(Err(error)),
            // Nothing a fetch brings can make such a value acceptable: no waiting for it.
            #[cfg(feature = "remote-jwks")]
            Attempt::Wait(_) if !credentials::is_b64token(token) => invalid_request,
            #[cfg(feature = "remote-jwks")]
            Attempt::Wait(fetch) => Attempt::Wait(fetch),
        }
    }

    /// Attaches the claims (or, for an anonymous pass, removes any an outer layer put there:
    /// claims come only from here) and asks the revocation store, if there is one.
    fn admit<B>(&self, request: &mut Request<B>, claims: Option<Claims>) -> Admission {
        let Some(claims) = claims else {
            request.extensions_mut().remove::<Claims>();
            events::anonymous();
            return Admission::Call;
        };
        let Some(store) = &self.revocation else {
            request.extensions_mut().insert(claims);
            events::verified();
            return Admission::Call;
        };
        let check = store.is_revoked(&RevocationQuery::from_claims(&claims));
        request.extensions_mut().insert(claims);
        match check.into_ready() {
            Ok(answer) => match self.revocation_verdict(answer) {
                Ok(()) => Admission::Call,
                Err(error) => Admission::Reject(error),
            },
            Err(pending) => Admission::Check(pending),
        }
    }

    /// The outcome of a revocation answer, under the store-error policy. An accepted token is
    /// counted here; a rejected one where the rejection is built.
    fn revocation_verdict(&self, answer: Result<bool, StoreError>) -> Result<(), AuthError> {
        let verdict = match answer {
            Ok(false) => Ok(()),
            Ok(true) => Err(AuthError::new(ErrorKind::Revoked)),
            Err(error) if self.on_store_error == StoreErrorPolicy::FailOpen => {
                store::failed(
                    store::Kind::Revocation,
                    &error,
                    "revocation store unavailable; accepting the verified token (fail open)",
                );
                Ok(())
            }
            Err(error) => {
                store::failed(
                    store::Kind::Revocation,
                    &error,
                    "revocation store unavailable; rejecting with 503 (fail closed)",
                );
                Err(AuthError::new(ErrorKind::Unavailable))
            }
        };
        if verdict.is_ok() {
            events::verified();
        }
        verdict
    }
}
