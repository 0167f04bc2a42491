//! [`RemoteJwks`]: verification keys fetched from an issuer (a JWKS URL, or OIDC / RFC 8414
//! discovery), cached, and refreshed in the background (feature `remote-jwks`).
//!
//! ```
//! # #[cfg(feature = "testing")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tower_jwt_auth::Verifier;
//! use tower_jwt_auth::remote::RemoteJwks;
//! use tower_jwt_auth::testing::TestIssuer;
//!
//! // An OIDC issuer on a loopback port, standing in for Keycloak, Auth0 or Entra ID.
//! let issuer = TestIssuer::start().await?;
//!
//! let keys = RemoteJwks::discover(issuer.issuer())?.build()?;
//! let verifier = Verifier::builder(keys)
//!     .issuer(issuer.issuer())
//!     .audience("api")
//!     .roles_claim("/realm_access/roles")?
//!     .build()?;
//!
//! let token = issuer
//!     .token()
//!     .claim("realm_access", serde_json::json!({"roles": ["admin"]}))
//!     .sign()?;
//! // The first token waits for the first fetch; the keys are cached from then on.
//! let claims = verifier.verify_async(&token).await?;
//! assert!(claims.has_role("admin"));
//! assert!(verifier.verify(&token).is_ok());
//! # Ok(()) }
//! # #[cfg(not(feature = "testing"))]
//! # fn main() {}
//! ```
//!
//! # Behaviour
//!
//! - **Reads never wait for a fetch.** The current keys sit behind an atomic pointer; a token
//!   whose `kid` is at hand is verified without a lock, whatever refreshing or failing is going
//!   on. A refresh replaces the whole key set at once, so no reader sees a partial or empty one.
//! - **Refresh before expiry.** A fetched JWKS lives as long as its `Cache-Control: max-age`
//!   (less any `Age`) says, kept within [`RemoteJwksBuilder::ttl_bounds`] (default
//!   [5 minutes](DEFAULT_MIN_TTL) to [24 hours](DEFAULT_MAX_TTL); no `max-age`, `no-cache` or
//!   `no-store` mean the minimum). Three quarters of the way through, a background task
//!   fetches again, or the first request to find the keys due starts that fetch (whichever
//!   comes first; there is only ever one fetch at a time), so an idle process and one whose
//!   refresher's runtime has gone both stay fresh. Rotation (a key added, a key dropped) takes
//!   effect with that fetch.
//! - **Unknown `kid`.** A token naming a `kid` the keys lack starts one fetch and waits for it
//!   (every request that arrives meanwhile waits for the same one), at most once per
//!   [cooldown](RemoteJwksBuilder::unknown_kid_cooldown) (default [30 s](DEFAULT_COOLDOWN)).
//!   A `kid` that fetch did not find is remembered as absent for a cooldown, so a storm of
//!   random `kid`s costs at most one fetch per cooldown; inside it they are refused at once
//!   ([`ErrorKind::UnknownKey`](crate::ErrorKind::UnknownKey), 401).
//! - **Issuer down.** A failed refresh keeps the last good keys in service (stale-if-error) for
//!   up to [`max_stale`](RemoteJwksBuilder::max_stale) past their expiry (default
//!   [6 hours](DEFAULT_MAX_STALE)), retrying with backoff (1 s doubling to 60 s, jittered). With
//!   no usable keys (a cold start, or stale beyond that), tokens are answered
//!   [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable): 503 with `Retry-After`, gRPC 14,
//!   never a 401 that would tell clients to drop their tokens.
//! - **HTTP.** `https` only (plain `http` only to `localhost` or a loopback address), no
//!   redirects, rustls with Mozilla's roots (plus [your own](RemoteJwksBuilder::add_root_certificates)),
//!   a [connect timeout and a whole-fetch timeout](RemoteJwksBuilder::timeouts) (default 5 s
//!   and 10 s, discovery included), and a [response size cap](RemoteJwksBuilder::max_response_size)
//!   (default 1 MiB).
//! - **Discovery** reads `/.well-known/openid-configuration` under the issuer, falling back to
//!   RFC 8414's `/.well-known/oauth-authorization-server` on a 4xx answer, and insists that the
//!   document's `issuer` is exactly the configured one ([`FetchError::IssuerMismatch`]) and
//!   that its `jwks_uri` follows the same URL rules. Scheduled refreshes read it again.
//! - **Key hygiene** follows [`KeySetBuilder::issuer_jwks`](crate::KeySetBuilder::issuer_jwks):
//!   keys for encryption, of unknown types or curves, broken, symmetric, or without a `kid` in
//!   a multi-key set are skipped (logged at debug level); a key's `alg` binds it; a document
//!   with private key material or no usable key is a failed fetch.
//!
//! Fetches run on the tokio runtime of whoever starts them, in tasks of their own: a request
//! that gives up waiting does not cancel the fetch others wait for.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::algorithm::{Algorithm, Family};
use crate::error::{AuthError, ConfigError};
use crate::keys::KeySet;
use crate::pass::{Attempt, Pass};

mod cache;
pub(crate) mod client;
mod lifetime;

use cache::{Location, Settings, Shared};
use client::{Discovery, HttpClient, checked_url};

/// Default shortest lifetime of a fetched key set: 5 minutes.
pub const DEFAULT_MIN_TTL: Duration = Duration::from_secs(5 * 60);
/// Default longest lifetime of a fetched key set: 24 hours.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Default cooldown between fetches for unknown `kid`s: 30 seconds.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);
/// Default time expired keys keep serving while the issuer cannot be reached: 6 hours.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(6 * 60 * 60);
/// Default connect timeout: 5 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default timeout of a whole fetch, discovery included: 10 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on a response body: 1 MiB.
pub const DEFAULT_MAX_RESPONSE_SIZE: usize = 1 << 20;

/// An issuer's verification keys, fetched and kept fresh; give it to
/// [`Verifier::builder`](crate::Verifier::builder). See the [module docs](self).
///
/// Cheap to clone (one `Arc`); clones share the cache. The background refresher stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct RemoteJwks {
    shared: Arc<Shared>,
}

impl RemoteJwks {
    /// Keys from this JWKS URL (for example Keycloak's
    /// `https://sso.example.com/realms/acme/protocol/openid-connect/certs`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] unless `url` is an absolute `https` URL (or `http` to
    /// `localhost` or a loopback address) without credentials.
    pub fn jwks_url(url: &str) -> Result<RemoteJwksBuilder, ConfigError> {
        let uri = checked_url(url).map_err(|bad| ConfigError::InvalidSetting(bad.message()))?;
        Ok(RemoteJwksBuilder::new(Location::Jwks(uri)))
    }

    /// Keys of the issuer at `issuer`, found through its metadata (OIDC discovery, then RFC
    /// 8414). The metadata must name exactly this issuer, and a verifier over these keys must
    /// accept it.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for an issuer that is not an acceptable URL (as
    /// [`RemoteJwks::jwks_url`]) or has a query or fragment.
    pub fn discover(issuer: &str) -> Result<RemoteJwksBuilder, ConfigError> {
        Ok(RemoteJwksBuilder::new(Location::Discovery(Discovery::new(
            issuer,
        )?)))
    }

    /// Fetches now (or joins the fetch under way) and waits for it; discovery, if configured,
    /// is read again. Useful at start-up, to fail fast or to warm the cache before the first
    /// request, and in tests. Not subject to the unknown-`kid` cooldown.
    ///
    /// # Errors
    ///
    /// The [`FetchError`] of that fetch; the keys in service are unchanged then.
    pub async fn refresh(&self) -> Result<(), FetchError> {
        self.shared.refresh().await
    }

    /// The keys in service now: `None` before the first successful fetch, or once the last
    /// good keys are stale beyond [`max_stale`](RemoteJwksBuilder::max_stale).
    #[must_use]
    pub fn keys(&self) -> Option<KeySet> {
        self.shared.usable_keys()
    }

    /// What the cache holds and how fetching goes, for health checks and metrics.
    #[must_use]
    pub fn status(&self) -> RemoteStatus {
        self.shared.status()
    }

    /// The issuer this source was discovered for.
    pub(crate) fn discovered_issuer(&self) -> Option<&str> {
        self.shared.discovered_issuer()
    }

    /// One pass of the token path with the keys in service (see [`Pass`]).
    pub(crate) fn with_keys<T>(
        &self,
        token: &[u8],
        pass: Pass,
        verify: impl FnOnce(&KeySet) -> Result<T, AuthError>,
    ) -> Attempt<T> {
        self.shared.with_keys(token, pass, verify)
    }
}

impl fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

/// Configures a [`RemoteJwks`]. Consuming; setters check their values at once.
#[must_use]
pub struct RemoteJwksBuilder {
    location: Location,
    settings: Settings,
    roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    clock: Option<Arc<dyn Fn() -> Instant + Send + Sync>>,
}

impl fmt::Debug for RemoteJwksBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwksBuilder")
            .field("location", &self.location)
            .field("settings", &self.settings)
            .field("extra_roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

impl RemoteJwksBuilder {
    fn new(location: Location) -> Self {
        Self {
            location,
            settings: Settings {
                min_ttl: DEFAULT_MIN_TTL,
                max_ttl: DEFAULT_MAX_TTL,
                cooldown: DEFAULT_COOLDOWN,
                max_stale: DEFAULT_MAX_STALE,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                timeout: DEFAULT_TIMEOUT,
                max_response_size: DEFAULT_MAX_RESPONSE_SIZE,
                rsa_default: None,
            },
            roots: Vec::new(),
            clock: None,
        }
    }

    /// The bounds within which the response's `Cache-Control: max-age` sets how long a fetched
    /// key set is fresh (default [`DEFAULT_MIN_TTL`] to [`DEFAULT_MAX_TTL`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] unless 1 s ≤ `min` ≤ `max` ≤ 30 days.
    pub fn ttl_bounds(mut self, min: Duration, max: Duration) -> Result<Self, ConfigError> {
        if min < Duration::from_secs(1) || min > max || max > Duration::from_secs(30 * 86_400) {
            return Err(ConfigError::InvalidSetting(
                "jwks ttl bounds must satisfy 1 s <= min <= max <= 30 days",
            ));
        }
        self.settings.min_ttl = min;
        self.settings.max_ttl = max;
        Ok(self)
    }

    /// The least time between two fetches started for unknown `kid`s, and how long a `kid`
    /// a fetch did not find stays known as absent (default [`DEFAULT_COOLDOWN`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] outside 1 s to 1 hour.
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Result<Self, ConfigError> {
        if cooldown < Duration::from_secs(1) || cooldown > Duration::from_secs(3600) {
            return Err(ConfigError::InvalidSetting(
                "unknown-kid cooldown must be 1 s to 1 hour",
            ));
        }
        self.settings.cooldown = cooldown;
        Ok(self)
    }

    /// How long past their expiry the last good keys keep verifying tokens while refreshes
    /// fail (default [`DEFAULT_MAX_STALE`]; zero stops at expiry).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] over 30 days.
    pub fn max_stale(mut self, max_stale: Duration) -> Result<Self, ConfigError> {
        if max_stale > Duration::from_secs(30 * 86_400) {
            return Err(ConfigError::InvalidSetting(
                "max stale must be at most 30 days",
            ));
        }
        self.settings.max_stale = max_stale;
        Ok(self)
    }

    /// The connect timeout and the timeout of a whole fetch, discovery included (default
    /// [`DEFAULT_CONNECT_TIMEOUT`] and [`DEFAULT_TIMEOUT`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] unless 10 ms ≤ `connect` ≤ `total` ≤ 5 minutes.
    pub fn timeouts(mut self, connect: Duration, total: Duration) -> Result<Self, ConfigError> {
        if connect < Duration::from_millis(10)
            || connect > total
            || total > Duration::from_secs(300)
        {
            return Err(ConfigError::InvalidSetting(
                "timeouts must satisfy 10 ms <= connect <= total <= 5 minutes",
            ));
        }
        self.settings.connect_timeout = connect;
        self.settings.timeout = total;
        Ok(self)
    }

    /// The largest response body read, discovery documents included (default
    /// [`DEFAULT_MAX_RESPONSE_SIZE`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] outside 1 KiB to 16 MiB.
    pub fn max_response_size(mut self, bytes: usize) -> Result<Self, ConfigError> {
        if !(1024..=16 << 20).contains(&bytes) {
            return Err(ConfigError::InvalidSetting(
                "max response size must be 1 KiB to 16 MiB",
            ));
        }
        self.settings.max_response_size = bytes;
        Ok(self)
    }

    /// The algorithm of RSA keys published without `alg` (Microsoft Entra ID omits it; see
    /// [`KeySetBuilder::default_rsa_algorithm`](crate::KeySetBuilder::default_rsa_algorithm)).
    /// Without it such keys are skipped.
    ///
    /// # Errors
    ///
    /// [`ConfigError::KeyAlgorithmMismatch`] when `alg` is not an RSA algorithm.
    pub fn default_rsa_algorithm(mut self, alg: Algorithm) -> Result<Self, ConfigError> {
        if alg.family() != Family::Rsa {
            return Err(ConfigError::KeyAlgorithmMismatch(
                "default rsa algorithm is not rsa",
            ));
        }
        self.settings.rsa_default = Some(alg);
        Ok(self)
    }

    /// Trusts these certificate authorities (PEM `CERTIFICATE` blocks) besides Mozilla's
    /// roots: for an issuer behind a private CA.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when `pem` holds no `CERTIFICATE` block or one that is
    /// not a usable root.
    pub fn add_root_certificates(mut self, pem: &[u8]) -> Result<Self, ConfigError> {
        let blocks = ::pem::parse_many(pem)
            .map_err(|_| ConfigError::InvalidSetting("root certificates are not pem"))?;
        let before = self.roots.len();
        for block in blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE") {
            let der = rustls::pki_types::CertificateDer::from(block.into_contents());
            // Checked now, so `build` cannot fail on it later.
            rustls::RootCertStore::empty()
                .add(der.clone())
                .map_err(|_| ConfigError::InvalidSetting("root certificate not usable"))?;
            self.roots.push(der);
        }
        if self.roots.len() == before {
            return Err(ConfigError::InvalidSetting(
                "no CERTIFICATE block in the root certificates",
            ));
        }
        Ok(self)
    }

    /// The clock that ages key sets and paces cooldowns and retries (default
    /// [`Instant::now`]), for tests. The background refresher sleeps on tokio's timer and reads
    /// this clock when it wakes.
    pub fn clock(mut self, clock: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Builds the source. Nothing is fetched yet: the first token (or
    /// [`RemoteJwks::refresh`]) starts the first fetch, and with it the background refresher,
    /// on the tokio runtime it runs on.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when the TLS configuration cannot be built.
    pub fn build(self) -> Result<RemoteJwks, ConfigError> {
        let client = HttpClient::new(
            self.settings.connect_timeout,
            self.settings.max_response_size,
            &self.roots,
        )?;
        Ok(RemoteJwks {
            shared: Shared::new(self.location, self.settings, client, self.clock),
        })
    }
}

/// A fetch of keys (or of the issuer's metadata) failed. The keys in service stay as they were.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchError {
    /// The whole fetch, discovery included, took longer than the configured timeout.
    Timeout,
    /// No HTTP answer: name resolution, connection, TLS (an untrusted certificate included),
    /// or the connection broke. The text is the HTTP client's.
    Connection(String),
    /// An answer other than 200 (redirects are not followed).
    Status(u16),
    /// The body is larger than the configured maximum.
    TooLarge {
        /// The maximum, in bytes.
        limit: usize,
    },
    /// The metadata or the JWKS is not what it should be: not JSON of the expected shape,
    /// duplicate members, private key material, no usable key.
    InvalidDocument(String),
    /// The issuer's metadata names another issuer than the configured one.
    IssuerMismatch {
        /// The `issuer` the metadata named (at most 200 bytes of it).
        found: String,
    },
    /// The metadata's `jwks_uri` is not `https` (nor `http` to a loopback address).
    InsecureUrl,
    /// There is no tokio runtime to fetch on, or it shut down during the fetch.
    NoRuntime,
}

impl FetchError {
    /// A short, stable, lowercase reason code (`"timeout"`, `"status"`, ...), the `reason`
    /// label of [`JWKS_FETCHES_TOTAL`](crate::telemetry::JWKS_FETCHES_TOTAL) and of the
    /// failure's log event. It carries none of the error's details.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connection(_) => "connection",
            Self::Status(_) => "status",
            Self::TooLarge { .. } => "too_large",
            Self::InvalidDocument(_) => "invalid_document",
            Self::IssuerMismatch { .. } => "issuer_mismatch",
            Self::InsecureUrl => "insecure_url",
            Self::NoRuntime => "no_runtime",
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("fetch timed out"),
            Self::Connection(why) => write!(f, "connection failed: {why}"),
            Self::Status(status) => write!(f, "answered with status {status}"),
            Self::TooLarge { limit } => write!(f, "response larger than {limit} bytes"),
            Self::InvalidDocument(why) => write!(f, "invalid document: {why}"),
            Self::IssuerMismatch { found } => {
                write!(f, "issuer metadata names another issuer: {found:?}")
            }
            Self::InsecureUrl => f.write_str("jwks_uri is not https"),
            Self::NoRuntime => f.write_str("no tokio runtime to fetch on"),
        }
    }
}

impl std::error::Error for FetchError {}

/// A look at a [`RemoteJwks`] cache, from [`RemoteJwks::status`].
#[derive(Clone, Debug)]
pub struct RemoteStatus {
    pub(crate) keys: Option<KeySet>,
    pub(crate) fetched_at: Option<Instant>,
    pub(crate) expires_at: Option<Instant>,
    pub(crate) serve_until: Option<Instant>,
    pub(crate) last_error: Option<FetchError>,
    pub(crate) failures: u32,
    pub(crate) fetches: u64,
    pub(crate) fetching: bool,
}

impl RemoteStatus {
    /// The keys in service (see [`RemoteJwks::keys`]).
    #[must_use]
    pub fn keys(&self) -> Option<&KeySet> {
        self.keys.as_ref()
    }

    /// When the last good key set was fetched.
    #[must_use]
    pub fn fetched_at(&self) -> Option<Instant> {
        self.fetched_at
    }

    /// When the last good key set expires (it is refreshed before).
    #[must_use]
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    /// Until when the last good key set is used if refreshes keep failing.
    #[must_use]
    pub fn serve_until(&self) -> Option<Instant> {
        self.serve_until
    }

    /// Why the last fetch failed, when it did.
    #[must_use]
    pub fn last_error(&self) -> Option<&FetchError> {
        self.last_error.as_ref()
    }

    /// Fetches that failed since the last success.
    #[must_use]
    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// Fetches finished so far, successful or not.
    #[must_use]
    pub fn fetches(&self) -> u64 {
        self.fetches
    }

    /// Whether a fetch is under way.
    #[must_use]
    pub fn fetching(&self) -> bool {
        self.fetching
    }
}
