//! [`TestIssuer`]: an OIDC issuer on a loopback port for testing apps protected by this crate
//! (feature `testing`). It serves discovery and a JWKS, and mints tokens: valid, expired, not
//! yet valid, signed with the wrong key, with any claims, with any asymmetric algorithm.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_jwt_auth::bearer::BearerAuthLayer;
//! use tower_jwt_auth::require::RequireScopeLayer;
//! use tower_jwt_auth::testing::TestIssuer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let issuer = TestIssuer::start().await?;
//!
//! // The app under test, protected as in production, but trusting the test issuer.
//! let app = ServiceBuilder::new()
//!     .layer(BearerAuthLayer::new(issuer.verifier()?))
//!     .layer(RequireScopeLayer::all(["items:read"])?)
//!     .service_fn(|_: Request<String>| async { Ok::<_, Infallible>(Response::new("items".to_owned())) });
//! let status = |token: String| {
//!     let request = Request::builder().header("authorization", format!("Bearer {token}")).body(String::new());
//!     let app = app.clone();
//!     async move { app.oneshot(request.unwrap()).await.unwrap().status() }
//! };
//!
//! assert_eq!(status(issuer.token().scope("items:read").sign()?).await, StatusCode::OK);
//! assert_eq!(status(issuer.token().scope("profile").sign()?).await, StatusCode::FORBIDDEN);
//! assert_eq!(status(issuer.token().scope("items:read").expired().sign()?).await, StatusCode::UNAUTHORIZED);
//! assert_eq!(status(issuer.token().scope("items:read").wrong_key().sign()?).await, StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! ```
//!
//! Keys are generated when first needed (one per algorithm, RSA keys of 2048 bits) and live
//! only in memory. The issuer is `http://127.0.0.1:<port>`, which
//! [`RemoteJwks`] accepts because it is a loopback address. It is
//! a test fixture: nothing here is meant for production.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::algorithm::{Algorithm, Family};
use crate::error::{ConfigError, SignError};
use crate::remote::{RemoteJwks, RemoteJwksBuilder};
use crate::signer::TokenSigner;
use crate::verifier::{ACCESS_TOKEN_TYPE, Verifier, VerifierBuilder};

mod keys;
mod server;

use keys::TestKey;

/// An OIDC issuer on `127.0.0.1` that serves `/.well-known/openid-configuration` and
/// `/jwks.json` and mints tokens. See the [module docs](self). The server stops when it is
/// dropped.
pub struct TestIssuer {
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

/// What the server and the minting share.
struct State {
    issuer: String,
    audience: String,
    algorithm: Algorithm,
    jwks_max_age: Duration,
    keys: Mutex<Keys>,
    available: AtomicBool,
    jwks_requests: AtomicU64,
    discovery_requests: AtomicU64,
}

#[derive(Default)]
struct Keys {
    /// Every key in the JWKS.
    published: Vec<TestKey>,
    /// The kid each algorithm signs with now.
    signing: Vec<(Algorithm, String)>,
}

impl State {
    fn keys(&self) -> MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The JWKS document: every published key.
    fn jwks(&self) -> Value {
        let keys = self.keys().published.iter().map(TestKey::jwk).collect();
        let mut document = Map::new();
        document.insert("keys".to_owned(), Value::Array(keys));
        Value::Object(document)
    }

    /// The key `alg` signs with now, made and published if there is none yet.
    fn signing_key(&self, alg: Algorithm) -> Result<TestKey, SignError> {
        let mut keys = self.keys();
        if let Some((_, kid)) = keys.signing.iter().find(|(a, _)| *a == alg) {
            let kid = kid.clone();
            if let Some(key) = keys.published.iter().find(|key| key.kid == kid) {
                return Ok(key.clone());
            }
        }
        let key = TestKey::generate(alg)?;
        keys.signing.retain(|(a, _)| *a != alg);
        keys.signing.push((alg, key.kid.clone()));
        keys.published.push(key.clone());
        Ok(key)
    }
}

impl TestIssuer {
    /// Starts an issuer with the defaults of [`TestIssuer::builder`]: ES256, audience `api`,
    /// JWKS served with `Cache-Control: max-age=300`.
    ///
    /// # Errors
    ///
    /// An I/O error when no loopback port can be bound, or a key cannot be generated.
    pub async fn start() -> io::Result<Self> {
        Self::builder().start().await
    }

    /// Configures an issuer.
    pub fn builder() -> TestIssuerBuilder {
        TestIssuerBuilder {
            algorithm: Algorithm::ES256,
            audience: "api".to_owned(),
            jwks_max_age: Duration::from_secs(300),
        }
    }

    /// The issuer identifier, `http://127.0.0.1:<port>`: the `iss` of its tokens.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The default `aud` of its tokens.
    #[must_use]
    pub fn audience(&self) -> &str {
        &self.state.audience
    }

    /// The JWKS URL, `<issuer>/jwks.json`.
    #[must_use]
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.state.issuer)
    }

    /// A [`RemoteJwks`] builder that finds this issuer's keys through discovery.
    ///
    /// # Errors
    ///
    /// None in practice (the issuer URL is a loopback URL); as [`RemoteJwks::discover`].
    pub fn remote_jwks(&self) -> Result<RemoteJwksBuilder, ConfigError> {
        RemoteJwks::discover(self.issuer())
    }

    /// A verifier builder for this issuer's tokens: keys through discovery, this issuer and
    /// audience, `typ` `at+jwt` required. Adjust it (claim mapping, leeway...) like the
    /// production verifier.
    ///
    /// # Errors
    ///
    /// As [`TestIssuer::remote_jwks`].
    pub fn verifier_builder(&self) -> Result<VerifierBuilder, ConfigError> {
        Verifier::builder(self.remote_jwks()?.build()?)
            .issuer(self.issuer())
            .audience(self.audience())
            .require_type(ACCESS_TOKEN_TYPE)
    }

    /// [`TestIssuer::verifier_builder`], built.
    ///
    /// # Errors
    ///
    /// As [`TestIssuer::remote_jwks`].
    pub fn verifier(&self) -> Result<Verifier, ConfigError> {
        self.verifier_builder()?.build()
    }

    /// Starts a token: `iss` this issuer, `sub` `test-user`, `aud` the issuer's audience,
    /// `iat` now, `exp` in 5 minutes, a fresh `jti`; header `typ: at+jwt` and the `kid` of the
    /// default algorithm's key.
    pub fn token(&self) -> TokenBuilder<'_> {
        let now = unix_now();
        let mut claims = Map::new();
        claims.insert("iss".to_owned(), Value::from(self.issuer()));
        claims.insert("sub".to_owned(), Value::from("test-user"));
        claims.insert("aud".to_owned(), Value::from(self.audience()));
        claims.insert("iat".to_owned(), Value::from(now));
        claims.insert("exp".to_owned(), Value::from(now + 300));
        TokenBuilder {
            issuer: self,
            claims,
            algorithm: self.state.algorithm,
            wrong_key: false,
            kid: None,
            typ: Some(ACCESS_TOKEN_TYPE.to_owned()),
        }
    }

    /// Rotates the default algorithm's key: a new key is published and signs from now on; the
    /// old one stays published until [retired](TestIssuer::retire). Returns the new `kid`.
    ///
    /// # Errors
    ///
    /// When the key cannot be generated.
    pub fn rotate(&self) -> Result<String, SignError> {
        let key = TestKey::generate(self.state.algorithm)?;
        let kid = key.kid.clone();
        let mut keys = self.state.keys();
        keys.signing.retain(|(alg, _)| *alg != self.state.algorithm);
        keys.signing.push((self.state.algorithm, kid.clone()));
        keys.published.push(key);
        Ok(kid)
    }

    /// Removes the key `kid` from the JWKS (its tokens stop verifying once verifiers
    /// refresh). Returns whether it was published. An algorithm whose signing key is retired
    /// gets a new one when it next signs.
    pub fn retire(&self, kid: &str) -> bool {
        let mut keys = self.state.keys();
        let before = keys.published.len();
        keys.published.retain(|key| key.kid != kid);
        keys.signing.retain(|(_, signing)| signing != kid);
        keys.published.len() != before
    }

    /// The `kid`s in the JWKS now.
    #[must_use]
    pub fn published_kids(&self) -> Vec<String> {
        let keys = self.state.keys();
        keys.published.iter().map(|key| key.kid.clone()).collect()
    }

    /// While `false`, every endpoint answers 503, as an issuer that is down.
    pub fn set_available(&self, available: bool) {
        self.state.available.store(available, Ordering::Relaxed);
    }

    /// Requests served at `/jwks.json` so far (including 503s while unavailable).
    #[must_use]
    pub fn jwks_requests(&self) -> u64 {
        self.state.jwks_requests.load(Ordering::Relaxed)
    }

    /// Requests served at `/.well-known/openid-configuration` so far.
    #[must_use]
    pub fn discovery_requests(&self) -> u64 {
        self.state.discovery_requests.load(Ordering::Relaxed)
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestIssuer")
            .field("issuer", &self.state.issuer)
            .field("audience", &self.state.audience)
            .field("algorithm", &self.state.algorithm)
            .field("published_kids", &self.published_kids())
            .finish_non_exhaustive()
    }
}

/// Configures a [`TestIssuer`].
#[must_use]
#[derive(Debug)]
pub struct TestIssuerBuilder {
    algorithm: Algorithm,
    audience: String,
    jwks_max_age: Duration,
}

impl TestIssuerBuilder {
    /// The algorithm tokens are signed with unless a token asks for another (default ES256).
    /// HMAC algorithms are refused when the issuer starts: a JWKS cannot lend a secret.
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The default `aud` of tokens (default `api`).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// The `max-age` the JWKS is served with (default 300 s).
    pub fn jwks_max_age(mut self, max_age: Duration) -> Self {
        self.jwks_max_age = max_age;
        self
    }

    /// Binds a loopback port, makes the default algorithm's key and starts serving.
    ///
    /// # Errors
    ///
    /// An I/O error when no port can be bound, for an HMAC algorithm, or when the key cannot
    /// be generated.
    pub async fn start(self) -> io::Result<TestIssuer> {
        if self.algorithm.family() == Family::Hmac {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a test issuer signs with asymmetric keys only",
            ));
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let state = Arc::new(State {
            issuer: format!("http://{}", listener.local_addr()?),
            audience: self.audience,
            algorithm: self.algorithm,
            jwks_max_age: self.jwks_max_age,
            keys: Mutex::default(),
            available: AtomicBool::new(true),
            jwks_requests: AtomicU64::new(0),
            discovery_requests: AtomicU64::new(0),
        });
        state
            .signing_key(self.algorithm)
            .map_err(|err| io::Error::other(err.to_string()))?;
        let server = tokio::spawn(server::serve(listener, Arc::clone(&state)));
        Ok(TestIssuer { state, server })
    }
}

/// A token being minted by a [`TestIssuer`]; [`TokenBuilder::sign`] finishes it.
#[must_use]
pub struct TokenBuilder<'a> {
    issuer: &'a TestIssuer,
    claims: Map<String, Value>,
    algorithm: Algorithm,
    wrong_key: bool,
    kid: Option<String>,
    typ: Option<String>,
}

impl fmt::Debug for TokenBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("claims", &self.claims)
            .field("algorithm", &self.algorithm)
            .field("wrong_key", &self.wrong_key)
            .finish_non_exhaustive()
    }
}

impl TokenBuilder<'_> {
    /// Sets the claim `name` (replacing the default, if any).
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes the claim `name` (for example `"exp"`, to test a missing claim).
    pub fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// The `sub`.
    pub fn subject(self, subject: &str) -> Self {
        self.claim("sub", subject)
    }

    /// The `aud` (a string; use [`TokenBuilder::claim`] for an array).
    pub fn audience(self, audience: &str) -> Self {
        self.claim("aud", audience)
    }

    /// The `scope`, space-delimited (`"items:read items:write"`).
    pub fn scope(self, scope: &str) -> Self {
        self.claim("scope", scope)
    }

    /// The `roles` array.
    pub fn roles<I, S>(self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let roles: Vec<Value> = roles.into_iter().map(|r| Value::from(r.into())).collect();
        self.claim("roles", roles)
    }

    /// `iat` now and `exp` this far ahead.
    pub fn expires_in(self, lifetime: Duration) -> Self {
        let now = unix_now();
        self.claim("iat", now)
            .claim("exp", now.saturating_add(lifetime.as_secs()))
    }

    /// Issued two hours ago, expired one hour ago.
    pub fn expired(self) -> Self {
        let now = unix_now();
        self.claim("iat", now.saturating_sub(7200))
            .claim("exp", now.saturating_sub(3600))
    }

    /// Valid only from an hour from now (`nbf`).
    pub fn not_yet_valid(self) -> Self {
        self.claim("nbf", unix_now() + 3600)
    }

    /// Signs with the issuer's key for `algorithm` (made and published when first used).
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Signs with a fresh key that is not published, under the `kid` of the published one:
    /// a forgery that must fail with an invalid signature.
    pub fn wrong_key(mut self) -> Self {
        self.wrong_key = true;
        self
    }

    /// The header's `kid` (default: the signing key's).
    pub fn kid(mut self, kid: &str) -> Self {
        self.kid = Some(kid.to_owned());
        self
    }

    /// The header's `typ` (default `at+jwt`); `None` leaves it out.
    pub fn typ(mut self, typ: Option<&str>) -> Self {
        self.typ = typ.map(str::to_owned);
        self
    }

    /// Signs the token, with a fresh `jti` unless one was set.
    ///
    /// # Errors
    ///
    /// [`SignError`] for an HMAC algorithm, or when a key cannot be generated or sign.
    pub fn sign(mut self) -> Result<String, SignError> {
        if self.algorithm.family() == Family::Hmac {
            return Err(SignError(
                "a test issuer signs with asymmetric keys only".to_owned(),
            ));
        }
        if !self.claims.contains_key("jti") {
            let jti = crate::ids::random_id()?;
            self.claims.insert("jti".to_owned(), Value::from(jti));
        }
        let published = self.issuer.state.signing_key(self.algorithm)?;
        let key = if self.wrong_key {
            TestKey::generate(self.algorithm)?
        } else {
            published.clone()
        };
        let mut signer: TokenSigner = key.signer.with_kid(self.kid.unwrap_or(published.kid));
        signer = match self.typ {
            Some(typ) => signer.with_type(typ),
            None => signer.without_type(),
        };
        signer.sign(&Value::Object(self.claims))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |now| now.as_secs())
}
