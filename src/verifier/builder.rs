//! [`VerifierBuilder`]: a verifier's policy, decided once. Every setter checks its input, and
//! [`VerifierBuilder::build`] refuses a verifier that has not decided its issuer and audience.
//!
//! ```
//! use std::time::Duration;
//! use tower_jwt_auth::{Algorithm, ConfigError, KeySet, Verifier};
//!
//! let keys = KeySet::hmac(Algorithm::HS256, &[7u8; 32])?;
//! let undecided = Verifier::builder(keys.clone()).audience("api").build();
//! assert_eq!(undecided.unwrap_err(), ConfigError::MissingIssuer);
//! assert!(Verifier::builder(keys.clone()).max_token_len(0).is_err());
//! let verifier = Verifier::builder(keys)
//!     .issuer("https://auth.example")
//!     .audience("api")
//!     .leeway(Duration::from_secs(5))
//!     .build()?;
//! # let _ = verifier;
//! # Ok::<(), ConfigError>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::KeySource;
use super::cache::{MAX_CACHE_CAPACITY, VerifyCache};
use super::{Clock, DEFAULT_LEEWAY, Inner, MAX_TOKEN_LEN_LIMIT, Policy, Verifier};
use crate::algorithm::Algorithm;
use crate::claims::{ClaimPath, Mapping, Registered};
use crate::error::ConfigError;
use crate::jws::DEFAULT_MAX_TOKEN_LEN;
use crate::jws::HeaderPolicy;

/// Header names registered by RFC 7515/7519/7797; never acceptable as `crit` extensions.
const REGISTERED_HEADERS: [&str; 13] = [
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit", "b64", "zip",
];

/// Configures a [`Verifier`]. Consuming; fallible setters fail as early as they can.
#[must_use]
pub struct VerifierBuilder {
    keys: KeySource,
    issuers: Vec<String>,
    any_issuer: bool,
    audiences: Vec<String>,
    any_audience: bool,
    leeway: Duration,
    required: Registered,
    typ: Option<String>,
    max_len: usize,
    clock: Clock,
    mapping: Mapping,
    algorithms: Option<u16>,
    critical: Vec<String>,
    cache: Option<usize>,
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("keys", &self.keys)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl VerifierBuilder {
    /// A builder with the defaults (see [`Verifier::builder`]).
    pub(super) fn new(keys: KeySource) -> Self {
        Self {
            keys,
            issuers: Vec::new(),
            any_issuer: false,
            audiences: Vec::new(),
            any_audience: false,
            leeway: DEFAULT_LEEWAY,
            required: Registered::DEFAULT_REQUIRED,
            typ: None,
            max_len: DEFAULT_MAX_TOKEN_LEN,
            clock: Clock::System,
            mapping: Mapping::default(),
            algorithms: None,
            critical: Vec::new(),
            cache: None,
        }
    }

    /// Accepts tokens whose `iss` equals this string exactly (call again to accept several).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts any `iss`. Only for key sets that a single issuer controls.
    pub fn accept_any_issuer(mut self) -> Self {
        self.any_issuer = true;
        self
    }

    /// Accepts tokens whose `aud` contains this string (call again to accept several; any one
    /// of them suffices).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts any `aud`. Tokens minted for other services would then be accepted here too.
    pub fn accept_any_audience(mut self) -> Self {
        self.any_audience = true;
        self
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Replaces the required registered claims (default `exp iat sub iss aud jti`).
    ///
    /// `iss` and `aud` are still checked whenever accepted issuers or audiences are configured, so
    /// a token without them then fails with
    /// [`ErrorKind::WrongIssuer`](crate::ErrorKind::WrongIssuer) /
    /// [`ErrorKind::WrongAudience`](crate::ErrorKind::WrongAudience) even when they are not
    /// required here.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownClaim`] for a name other than `exp nbf iat sub iss aud jti`.
    pub fn required_claims<I>(mut self, names: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut required = Registered::NONE;
        for name in names {
            required = required.union(Registered::from_name(name.as_ref())?);
        }
        self.required = required;
        Ok(self)
    }

    /// Requires the `typ` header to be this media type, compared case-insensitively with an
    /// optional `application/` prefix (RFC 7515 section 4.1.9). Use
    /// [`ACCESS_TOKEN_TYPE`](super::ACCESS_TOKEN_TYPE) for RFC 9068 access tokens.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for an empty or non-printable-ASCII type.
    pub fn require_type(mut self, typ: &str) -> Result<Self, ConfigError> {
        let bare = match typ.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
            _ => typ,
        };
        if bare.is_empty() || !bare.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::InvalidSetting(
                "typ must be a printable media type",
            ));
        }
        self.typ = Some(bare.to_ascii_lowercase());
        Ok(self)
    }

    /// Tokens longer than this many bytes are rejected before decoding (default 8 KiB).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for 0 or more than [`MAX_TOKEN_LEN_LIMIT`].
    pub fn max_token_len(mut self, max: usize) -> Result<Self, ConfigError> {
        if max == 0 || max > MAX_TOKEN_LEN_LIMIT {
            return Err(ConfigError::InvalidSetting(
                "max token length must be 1 byte to 1 MiB",
            ));
        }
        self.max_len = max;
        Ok(self)
    }

    /// The clock `exp`, `nbf` and `iat` are checked against (default: the system clock).
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Clock::Custom(Arc::new(clock));
        self
    }

    /// Where the roles are: a top-level claim name (default `roles`) or a JSON pointer such as
    /// `/realm_access/roles`. The value must be an array of strings.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidClaimPath`] for an invalid pointer or one into a registered claim.
    pub fn roles_claim(mut self, path: &str) -> Result<Self, ConfigError> {
        self.mapping.roles = ClaimPath::parse(path)?;
        Ok(self)
    }

    /// Where the scopes are, replacing the default (`scope` as a space-delimited string, or
    /// `scp`): a claim name or JSON pointer whose value is a space-delimited string or an array
    /// of strings.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidClaimPath`] for an invalid pointer or one into a registered claim.
    pub fn scopes_claim(mut self, path: &str) -> Result<Self, ConfigError> {
        self.mapping.scopes = Some(ClaimPath::parse(path)?);
        Ok(self)
    }

    /// Restricts the accepted algorithms further than the key set does.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for an empty list.
    pub fn algorithms(
        mut self,
        algorithms: impl IntoIterator<Item = Algorithm>,
    ) -> Result<Self, ConfigError> {
        let bits = algorithms.into_iter().fold(0, |bits, alg| bits | alg.bit());
        if bits == 0 {
            return Err(ConfigError::InvalidSetting("no algorithm allowed"));
        }
        self.algorithms = Some(bits);
        Ok(self)
    }

    /// Declares a `crit` header extension that the application understands and checks itself;
    /// tokens naming any other critical extension are rejected.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidCritical`] for a registered header name (such as `alg` or `b64`).
    pub fn understood_critical(mut self, name: &str) -> Result<Self, ConfigError> {
        if name.is_empty() || REGISTERED_HEADERS.contains(&name) {
            return Err(ConfigError::InvalidCritical(name.to_owned()));
        }
        self.critical.push(name.to_owned());
        Ok(self)
    }

    /// Turns on the verification cache, holding up to `capacity` tokens: a token presented
    /// again (byte for byte) skips the signature check, and its claims are validated again
    /// against the clock and the policy. Worth most with asymmetric keys, where the signature
    /// is nearly all the cost: an ES256 verification takes tens of microseconds, a hit a few
    /// hundred nanoseconds (an HS256 verification, about a microsecond).
    ///
    /// The rules:
    /// - only tokens that verified enter, and only with an `exp` still ahead; they leave at
    ///   `exp` (within the leeway after it, a token is verified in full again);
    /// - a hit compares the whole token byte for byte (the keyed hash only finds the slot), so
    ///   no collision can lend one token's claims to another;
    /// - a hit validates the claims again: `exp`, `nbf`, `iat` against the clock now, and the
    ///   issuer, audience and required claims;
    /// - entries belong to the key set they verified with: when a
    ///   [`RemoteJwks`][remote-jwks] moves to another set, the cache is dropped.
    ///
    /// Revocation is not the verifier's: [`BearerAuthLayer`](crate::bearer::BearerAuthLayer) checks
    /// its [`RevocationStore`](crate::revocation::RevocationStore) on every request, hit or not.
    ///
    /// ```
    /// use tower_jwt_auth::{Algorithm, KeySet, TokenSigner, Verifier};
    ///
    /// let keys = KeySet::from_jwks(&std::fs::read_to_string("tests/data/keys/public.jwks")?)?;
    /// let verifier = Verifier::builder(keys).issuer("https://issuer.example").audience("api")
    ///     .cache(10_000)?.build()?;
    /// let pem = std::fs::read("tests/data/keys/ed25519.pkcs8.pem")?;
    /// let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    /// let token = TokenSigner::from_pem(Algorithm::EdDSA, &pem)?.with_kid("ed-1").sign(&serde_json::json!({
    ///     "iss": "https://issuer.example", "aud": "api", "sub": "bob", "jti": "1",
    ///     "iat": now, "exp": now + 300,
    /// }))?;
    /// for _ in 0..3 {
    ///     assert_eq!(verifier.verify(&token)?.subject(), Some("bob"));
    /// }
    /// let stats = verifier.cache_stats().expect("on");
    /// assert_eq!((stats.misses(), stats.hits(), stats.entries()), (1, 2, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Memory: `capacity` tokens (up to [`max_token_len`](Self::max_token_len) bytes each)
    /// with their claims; 10,000 tokens of 1 KiB take about 20 MiB.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for a capacity of 0 or above [`MAX_CACHE_CAPACITY`].
    ///
    #[cfg_attr(
        feature = "remote-jwks",
        doc = "[remote-jwks]: crate::remote::RemoteJwks"
    )]
    #[cfg_attr(not(feature = "remote-jwks"), doc = "[remote-jwks]: crate#features")]
    pub fn cache(mut self, capacity: usize) -> Result<Self, ConfigError> {
        if capacity == 0 || capacity > MAX_CACHE_CAPACITY {
            return Err(ConfigError::InvalidSetting(
                "cache capacity must be 1 to 2^24 tokens",
            ));
        }
        self.cache = Some(capacity);
        Ok(self)
    }

    /// Builds the verifier.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingIssuer`] / [`ConfigError::MissingAudience`] when neither an
    /// accepted value nor `accept_any_*` was configured; [`ConfigError::InvalidSetting`] when
    /// both were, when the roles and scopes paths collide, or when no key's algorithm is
    /// allowed.
    pub fn build(self) -> Result<Verifier, ConfigError> {
        let issuers = accepted(self.issuers, self.any_issuer, ConfigError::MissingIssuer)?;
        let audiences = accepted(
            self.audiences,
            self.any_audience,
            ConfigError::MissingAudience,
        )?;
        let roles_top = self.mapping.roles.top();
        let collides = match &self.mapping.scopes {
            Some(scopes) => scopes.top() == roles_top,
            None => roles_top == "scope" || roles_top == "scp",
        };
        if collides {
            return Err(ConfigError::InvalidSetting(
                "roles and scopes claims collide",
            ));
        }
        let algorithms = self.keys.algorithm_bits() & self.algorithms.unwrap_or(u16::MAX);
        if algorithms == 0 {
            return Err(ConfigError::InvalidSetting("no key's algorithm is allowed"));
        }
        if let (Some(discovered), Some(issuers)) = (self.keys.discovered_issuer(), &issuers)
            && !issuers.iter().any(|issuer| **issuer == *discovered)
        {
            return Err(ConfigError::InvalidSetting(
                "the verifier does not accept the issuer its keys were discovered for",
            ));
        }
        let header = HeaderPolicy {
            max_len: self.max_len,
            algorithms,
            typ: self.typ.map(String::into_boxed_str),
            critical: self
                .critical
                .into_iter()
                .map(String::into_boxed_str)
                .collect(),
            memo_id: crate::ids::next_id(),
        };
        Ok(Verifier {
            inner: Arc::new(Inner::One(Policy {
                keys: self.keys,
                header,
                issuers,
                audiences,
                leeway: self.leeway.as_secs_f64(),
                required: self.required,
                clock: self.clock,
                mapping: self.mapping,
                cache: self
                    .cache
                    .map(|capacity| Box::new(VerifyCache::new(capacity))),
            })),
        })
    }
}

fn accepted(
    values: Vec<String>,
    any: bool,
    missing: ConfigError,
) -> Result<Option<Box<[Box<str>]>>, ConfigError> {
    match (values.is_empty(), any) {
        (true, true) => Ok(None),
        (false, false) => Ok(Some(
            values.into_iter().map(String::into_boxed_str).collect(),
        )),
        (true, false) => Err(missing),
        (false, true) => Err(ConfigError::InvalidSetting(
            "both accepted values and accept-any configured",
        )),
    }
}
