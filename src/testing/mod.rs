//! [`TestIssuer`]: an OIDC issuer on a loopback port for testing apps protected by this crate
//! (feature `testing`). It serves discovery and a JWKS, and mints tokens: valid, expired, not
//! yet valid, signed with the wrong key, with any claims, with any asymmetric algorithm. It
//! also signs users in through the authorization-code flow (`/authorize` and `/token`), for
//! testing an app's "sign in with..." as a relying party: see [Signing in](#signing-in).
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
//!
//! # Signing in
//!
//! Discovery announces an `authorization_endpoint` (`<issuer>/authorize`) and a
//! `token_endpoint` (`<issuer>/token`). There is no login form and no consent page: a valid
//! `GET /authorize` signs in the scripted [`TestUser`] at once and redirects straight back to
//! the `redirect_uri` with `code`, `state` and `iss` (RFC 9207). `POST /token` redeems the code
//! once, within 60 s by default, for an access token (`at+jwt`, for the issuer's audience)
//! and, when the scope had `openid`, an ID token (`typ: JWT`, `aud` and `azp` the client, the
//! request's `nonce`, the user's `email`, `email_verified`, `name` and extra claims).
//!
//! One confidential client is registered ([`TestIssuerBuilder::client`], default `test-client`
//! / `test-client-secret`); it authenticates with HTTP Basic or `client_secret` in the body.
//! PKCE is optional, S256 only; a code issued with a challenge needs its verifier, and a
//! verifier without a challenge is refused. A bad `client_id` or `redirect_uri` gets a 400
//! page; other authorization errors go back to the client as `error=...`.
//!
//! ```
//! use tower_jwt_auth::testing::{TestIssuer, TestUser};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let issuer = TestIssuer::builder().client("my-app", "my-app-secret-for-tests").start().await?;
//! // Configure the app under test with these, as it would be with a real provider:
//! let issuer_url = issuer.issuer();
//! assert_eq!((issuer.client_id(), issuer.client_secret()), ("my-app", "my-app-secret-for-tests"));
//! assert_eq!(issuer.authorization_endpoint(), format!("{issuer_url}/authorize"));
//! assert_eq!(issuer.token_endpoint(), format!("{issuer_url}/token"));
//!
//! // Whoever the next logins sign in, and what the ID token says about them.
//! issuer.sign_in_as(TestUser::new("alice").email("alice@example.com", true).name("Alice"));
//! // The next login is refused: the app gets `error=access_denied` at its redirect URI.
//! issuer.refuse_next_login("access_denied");
//! // The next ID token has the wrong nonce: the app must refuse it.
//! issuer.tamper_next_id_token(|token| token.claim("nonce", "replayed"));
//! # Ok(()) }
//! ```

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

mod form;
mod keys;
mod login;
mod server;

use keys::TestKey;
pub use login::TestUser;

/// An OIDC issuer on `127.0.0.1` that serves `/.well-known/openid-configuration`,
/// `/jwks.json`, `/authorize` and `/token`, and mints tokens. See the [module docs](self). The
/// server stops when it is dropped.
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
    /// The one client `/authorize` and `/token` accept.
    client_id: String,
    client_secret: String,
    code_lifetime: Duration,
    login: Mutex<login::Login>,
    authorize_requests: AtomicU64,
    token_requests: AtomicU64,
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

    fn login(&self) -> MutexGuard<'_, login::Login> {
        self.login.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A token with the defaults of [`TestIssuer::token`].
    fn token(&self) -> TokenBuilder<'_> {
        let now = unix_now();
        let mut claims = Map::new();
        claims.insert("iss".to_owned(), Value::from(self.issuer.as_str()));
        claims.insert("sub".to_owned(), Value::from("test-user"));
        claims.insert("aud".to_owned(), Value::from(self.audience.as_str()));
        claims.insert("iat".to_owned(), Value::from(now));
        claims.insert("exp".to_owned(), Value::from(now + 300));
        TokenBuilder {
            state: self,
            claims,
            algorithm: self.algorithm,
            wrong_key: false,
            kid: None,
            typ: Some(ACCESS_TOKEN_TYPE.to_owned()),
        }
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
    /// JWKS served with `Cache-Control: max-age=300`, client `test-client` with secret
    /// `test-client-secret`, codes valid for 60 s.
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
            client_id: "test-client".to_owned(),
            client_secret: "test-client-secret".to_owned(),
            code_lifetime: Duration::from_secs(60),
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
        self.state.token()
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

    /// Requests served at `/authorize` so far (including refusals and 503s).
    #[must_use]
    pub fn authorize_requests(&self) -> u64 {
        self.state.authorize_requests.load(Ordering::Relaxed)
    }

    /// Requests served at `/token` so far (including refusals and 503s).
    #[must_use]
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::Relaxed)
    }

    /// The authorization endpoint, `<issuer>/authorize`.
    #[must_use]
    pub fn authorization_endpoint(&self) -> String {
        format!("{}/authorize", self.state.issuer)
    }

    /// The token endpoint, `<issuer>/token`.
    #[must_use]
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.state.issuer)
    }

    /// The `client_id` of the one client the login endpoints accept (default `test-client`).
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.state.client_id
    }

    /// That client's secret (default `test-client-secret`), sent to `/token` with HTTP Basic
    /// or as `client_secret` in the body.
    #[must_use]
    pub fn client_secret(&self) -> &str {
        &self.state.client_secret
    }

    /// Who the next authorization requests sign in (default [`TestUser::default`], subject
    /// `test-user` without email). A code carries the user of the moment it was issued.
    pub fn sign_in_as(&self, user: TestUser) {
        self.state.login().user = user;
    }

    /// The next authorization request that would succeed redirects back with
    /// `error=<error>` (and its `state`) instead of a code, as when the user cancels
    /// (`access_denied`) or the issuer fails (`server_error`, `temporarily_unavailable`).
    /// Later requests succeed again. Calling it twice before such a request keeps the second
    /// error only.
    pub fn refuse_next_login(&self, error: &str) {
        self.state.login().refusal = Some(error.to_owned());
    }

    /// `tamper` changes the next ID token `/token` signs, before signing: `.expired()`,
    /// `.wrong_key()`, `.audience("other")`, `.claim("nonce", "replayed")`, `.without("nonce")`...
    /// to test that the relying party refuses it. Later ID tokens are untouched. Calling it
    /// twice before an ID token is minted keeps the second change only.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let issuer = tower_jwt_auth::testing::TestIssuer::start().await?;
    /// issuer.tamper_next_id_token(|token| token.expired().claim("nonce", "replayed"));
    /// # Ok(()) }
    /// ```
    pub fn tamper_next_id_token(
        &self,
        tamper: impl for<'a> FnOnce(TokenBuilder<'a>) -> TokenBuilder<'a> + Send + 'static,
    ) {
        self.state.login().tamper = Some(Box::new(tamper));
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
    client_id: String,
    client_secret: String,
    code_lifetime: Duration,
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

    /// The one client the login endpoints accept (default `test-client`, secret
    /// `test-client-secret`). Neither may be empty.
    pub fn client(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.client_id = id.into();
        self.client_secret = secret.into();
        self
    }

    /// How long an authorization code can be redeemed (default 60 s). Zero makes every code
    /// expired on arrival, to test that refusal.
    pub fn code_lifetime(mut self, lifetime: Duration) -> Self {
        self.code_lifetime = lifetime;
        self
    }

    /// Binds a loopback port, makes the default algorithm's key and starts serving.
    ///
    /// # Errors
    ///
    /// An I/O error when no port can be bound, for an HMAC algorithm, an empty client id or
    /// secret, or when the key cannot be generated.
    pub async fn start(self) -> io::Result<TestIssuer> {
        if self.algorithm.family() == Family::Hmac {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a test issuer signs with asymmetric keys only",
            ));
        }
        if self.client_id.is_empty() || self.client_secret.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the test client needs an id and a secret",
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
            client_id: self.client_id,
            client_secret: self.client_secret,
            code_lifetime: self.code_lifetime,
            login: Mutex::default(),
            authorize_requests: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
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
    state: &'a State,
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
        let published = self.state.signing_key(self.algorithm)?;
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
