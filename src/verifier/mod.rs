//! [`Verifier`]: the whole token path, configured once, strict by default.
//!
//! ```
//! use std::time::Duration;
//! use tower_jwt_auth::{Algorithm, ErrorKind, KeySet, TokenSigner, Verifier};
//!
//! let jwks = std::fs::read_to_string("tests/data/keys/public.jwks")?;
//! let verifier = Verifier::builder(KeySet::from_jwks(&jwks)?)
//!     .issuer("https://issuer.example")
//!     .audience("api")
//!     .leeway(Duration::from_secs(10))
//!     .require_type("at+jwt")?
//!     .roles_claim("/realm_access/roles")?
//!     .build()?;
//!
//! let pem = std::fs::read("tests/data/keys/ed25519.pkcs8.pem")?;
//! let signer = TokenSigner::from_pem(Algorithm::EdDSA, &pem)?.with_kid("ed-1").with_type("at+jwt");
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
//! let token = signer.sign(&serde_json::json!({
//!     "iss": "https://issuer.example", "aud": ["api", "other"], "sub": "bob", "jti": "1",
//!     "iat": now, "exp": now + 60, "realm_access": {"roles": ["reader"]},
//! }))?;
//! let claims = verifier.verify(&token)?;
//! assert!(claims.has_role("reader"));
//!
//! let other_audience = signer.sign(&serde_json::json!({
//!     "iss": "https://issuer.example", "aud": "billing", "sub": "bob", "jti": "2",
//!     "iat": now, "exp": now + 60,
//! }))?;
//! assert_eq!(verifier.verify(&other_audience).unwrap_err().kind(), ErrorKind::WrongAudience);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;

use crate::algorithm::Algorithm;
use crate::claims::{ClaimPath, Claims, Mapping, Parsed, Registered};
use crate::error::{AuthError, ConfigError, ErrorKind};
use crate::jws::{self, DEFAULT_MAX_TOKEN_LEN, HeaderPolicy};
use crate::keys::KeySet;

mod by_issuer;
mod cache;
mod source;

use cache::VerifyCache;
pub use cache::{CacheStats, MAX_CACHE_CAPACITY};

pub use source::KeySource;
use source::Source;
pub(crate) use source::{Attempt, KeyWait, Pass};

/// The `typ` of an OAuth 2.0 access token in JWT format (RFC 9068 section 2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// The default clock leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The largest maximum token length a verifier accepts (1 MiB).
pub const MAX_TOKEN_LEN_LIMIT: usize = 1 << 20;

/// Header names registered by RFC 7515/7519/7797; never acceptable as `crit` extensions.
const REGISTERED_HEADERS: [&str; 13] = [
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit", "b64", "zip",
];

/// Verifies compact JWS access tokens: structure, header, signature and claims, in one pass.
///
/// Cheap to clone (one `Arc`); build it once with [`Verifier::builder`] (or, for tokens of
/// several issuers, [`Verifier::by_issuer`]) and share it.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

enum Inner {
    /// One policy over one key source.
    One(Policy),
    /// Several, chosen by the token's unverified `iss`.
    ByIssuer(by_issuer::ByIssuer),
}

struct Policy {
    keys: KeySource,
    header: HeaderPolicy,
    /// `None`: any issuer, deliberately.
    issuers: Option<Box<[Box<str>]>>,
    /// `None`: any audience, deliberately.
    audiences: Option<Box<[Box<str>]>>,
    leeway: f64,
    required: Registered,
    clock: Clock,
    mapping: Mapping,
    /// Opt-in: claims of verified tokens by their exact bytes.
    cache: Option<Box<VerifyCache>>,
}

#[derive(Clone)]
enum Clock {
    System,
    Custom(Arc<dyn Fn() -> SystemTime + Send + Sync>),
}

impl Clock {
    fn now_secs(&self) -> f64 {
        let now = match self {
            Self::System => SystemTime::now(),
            Self::Custom(clock) => clock(),
        };
        // A clock before 1970 reads as 1970: everything with an `exp` is then still checked.
        now.duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }
}

impl Verifier {
    /// Starts a verifier over these keys: a [`KeySet`], or with the `remote-jwks` feature a
    /// [`RemoteJwks`](crate::remote::RemoteJwks). [`VerifierBuilder::build`] insists on at
    /// least one accepted issuer and audience (or an explicit `accept_any_*`).
    pub fn builder(keys: impl Into<KeySource>) -> VerifierBuilder {
        VerifierBuilder {
            keys: keys.into(),
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

    /// Verifies a compact JWS token and returns its claims, the remaining claims as a JSON map.
    ///
    /// Never waits. With [remote keys](crate::remote::RemoteJwks) that are not there yet, or a
    /// `kid` the current keys lack, it answers at once ([`ErrorKind::Unavailable`],
    /// [`ErrorKind::UnknownKey`]) and lets the key source fetch in the background;
    /// [`Verifier::verify_async`] (and [`BearerAuthLayer`](crate::BearerAuthLayer)) wait for
    /// that fetch instead.
    ///
    /// # Errors
    ///
    /// An [`AuthError`] whose [`kind`](AuthError::kind) says which rule the token broke, in the
    /// order the token path checks them (DESIGN section 2 / the crate docs).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_as(token)
    }

    /// Like [`Verifier::verify`], with the remaining claims deserialised into `E`.
    ///
    /// # Errors
    ///
    /// As [`Verifier::verify`]; also [`ErrorKind::InvalidClaim`] when the remaining claims do
    /// not deserialise into `E`.
    pub fn verify_as<E: DeserializeOwned>(&self, token: &str) -> Result<Claims<E>, AuthError> {
        self.attempt(token.as_bytes(), Pass::Now).finish()
    }

    /// Like [`Verifier::verify`], but when the key source must fetch first (remote keys before
    /// their first fetch, or a `kid` the current keys lack), waits for that one fetch and
    /// verifies again. With a [`KeySet`] it never waits.
    ///
    /// # Errors
    ///
    /// As [`Verifier::verify`]; [`ErrorKind::Unavailable`] when remote keys could not be
    /// fetched and no usable ones are cached.
    pub async fn verify_async(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_as_async(token).await
    }

    /// Like [`Verifier::verify_async`], with the remaining claims deserialised into `E`.
    ///
    /// # Errors
    ///
    /// As [`Verifier::verify_async`] and [`Verifier::verify_as`].
    pub async fn verify_as_async<E: DeserializeOwned>(
        &self,
        token: &str,
    ) -> Result<Claims<E>, AuthError> {
        match self.attempt(token.as_bytes(), Pass::MayWait) {
            Attempt::Done(result) => result,
            #[cfg(feature = "remote-jwks")]
            Attempt::Wait(fetch) => {
                fetch.await;
                self.attempt(token.as_bytes(), Pass::AfterFetch).finish()
            }
        }
    }

    /// One pass of the token path on bytes: nothing in it needs UTF-8 (segments are base64url,
    /// the JSON is validated when parsed), so the layer hands it header bytes without a UTF-8
    /// pass. `Attempt::Wait` only with remote keys, and only when `pass` allows it.
    pub(crate) fn attempt<E: DeserializeOwned>(
        &self,
        token: &[u8],
        pass: Pass,
    ) -> Attempt<Claims<E>> {
        match &*self.inner {
            Inner::One(policy) => policy.attempt(token, pass),
            Inner::ByIssuer(set) => set.attempt(token, pass),
        }
    }

    /// The keys: a static key set, or the keys a remote source holds now (`None` before its
    /// first fetch). `None` for a [`Verifier::by_issuer`] set, which has several.
    #[must_use]
    pub fn keys(&self) -> Option<KeySet> {
        match &*self.inner {
            Inner::One(policy) => policy.keys.current(),
            Inner::ByIssuer(_) => None,
        }
    }

    /// What the [verification cache](VerifierBuilder::cache) saw so far: hits, misses, and
    /// the tokens it holds. `None` when the cache is off, and for a [`Verifier::by_issuer`]
    /// set (whose members each have their own).
    #[must_use]
    pub fn cache_stats(&self) -> Option<CacheStats> {
        match &*self.inner {
            Inner::One(policy) => policy.cache.as_deref().map(VerifyCache::stats),
            Inner::ByIssuer(_) => None,
        }
    }
}

impl Policy {
    fn attempt<E: DeserializeOwned>(&self, token: &[u8], pass: Pass) -> Attempt<Claims<E>> {
        match self.keys.source() {
            Source::Static(keys) => {
                let _ = pass;
                Attempt::Done(self.verify_with(keys, token))
            }
            #[cfg(feature = "remote-jwks")]
            Source::Remote(remote) => {
                remote.attempt(token, pass, |keys| self.verify_with(keys, token))
            }
        }
    }

    /// Steps 1 to 5 with these keys. With the cache on, a token that verified before with
    /// these keys skips steps 2 to 4 and the parsing of step 5; its claims are validated again.
    fn verify_with<E: DeserializeOwned>(
        &self,
        keys: &KeySet,
        token: &[u8],
    ) -> Result<Claims<E>, AuthError> {
        let now = self.clock.now_secs();
        // Step 1 before the lookup: an over-long header value is not even hashed.
        if let Some(cache) = &self.cache
            && token.len() <= self.header.max_len
            && let Some(parsed) = cache.lookup(token, keys.id(), now)
        {
            self.validate(&parsed, now)?;
            return Parsed::clone(&parsed).into_claims();
        }
        let checked = jws::verify_compact(keys, token, &self.header, false)?;
        let parsed = Parsed::from_json(checked.payload(), &self.mapping)?;
        self.validate(&parsed, now)?;
        if let Some(cache) = &self.cache {
            cache.insert(token, keys.id(), &parsed, now);
        }
        parsed.into_claims()
    }

    /// Step 5 after parsing: required claims, then times (against `now`), issuer, audience.
    fn validate(&self, claims: &Parsed, now: f64) -> Result<(), AuthError> {
        if let Some(name) = claims.missing(self.required) {
            return Err(AuthError::claim_error(ErrorKind::MissingClaim, name));
        }
        if let Some(exp) = claims.exp
            && now >= exp.as_secs_f64() + self.leeway
        {
            return Err(AuthError::claim_error(ErrorKind::Expired, "exp"));
        }
        if let Some(nbf) = claims.nbf
            && now < nbf.as_secs_f64() - self.leeway
        {
            return Err(AuthError::claim_error(ErrorKind::NotYetValid, "nbf"));
        }
        if let Some(iat) = claims.iat
            && iat.as_secs_f64() > now + self.leeway
        {
            return Err(AuthError::claim_error(ErrorKind::IssuedInFuture, "iat"));
        }
        if let Some(issuers) = &self.issuers {
            let iss = claims.iss.as_deref();
            if !iss.is_some_and(|iss| issuers.iter().any(|accepted| **accepted == *iss)) {
                return Err(AuthError::claim_error(ErrorKind::WrongIssuer, "iss"));
            }
        }
        if let Some(audiences) = &self.audiences {
            let aud = claims.aud.as_deref().unwrap_or_default();
            if !aud
                .iter()
                .any(|a| audiences.iter().any(|accepted| **accepted == **a))
            {
                return Err(AuthError::claim_error(ErrorKind::WrongAudience, "aud"));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.inner {
            Inner::One(policy) => policy.fmt(f),
            Inner::ByIssuer(set) => set.fmt(f),
        }
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self;
        f.debug_struct("Verifier")
            .field("keys", &p.keys)
            .field("issuers", &p.issuers)
            .field("audiences", &p.audiences)
            .field("leeway_secs", &p.leeway)
            .field("required", &p.required)
            .field("header", &p.header)
            .field("mapping", &p.mapping)
            .field("cache", &p.cache)
            .finish_non_exhaustive()
    }
}

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
    /// `iss` and `aud` are still checked whenever accepted issuers or audiences are configured,
    /// so a token without them then fails with [`ErrorKind::WrongIssuer`] /
    /// [`ErrorKind::WrongAudience`] even when they are not required here.
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
    /// optional `application/` prefix (RFC 7515 section 4.1.9). Use [`ACCESS_TOKEN_TYPE`] for
    /// RFC 9068 access tokens.
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
    ///   [`RemoteJwks`](crate::remote::RemoteJwks) moves to another set, the cache is dropped.
    ///
    /// Revocation is not the verifier's: [`BearerAuthLayer`](crate::BearerAuthLayer) checks its
    /// [`RevocationStore`](crate::revocation::RevocationStore) on every request, hit or not.
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
            memo_id: crate::next_id(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> KeySet {
        KeySet::hmac(Algorithm::HS256, &[1; 32]).unwrap()
    }

    #[test]
    fn issuer_and_audience_must_be_decided() {
        let err = Verifier::builder(keys()).audience("a").build().unwrap_err();
        assert_eq!(err, ConfigError::MissingIssuer);
        let err = Verifier::builder(keys()).issuer("i").build().unwrap_err();
        assert_eq!(err, ConfigError::MissingAudience);
        let err = Verifier::builder(keys())
            .issuer("i")
            .accept_any_issuer()
            .audience("a")
            .build();
        assert!(matches!(err, Err(ConfigError::InvalidSetting(_))));
        assert!(
            Verifier::builder(keys())
                .accept_any_issuer()
                .accept_any_audience()
                .build()
                .is_ok()
        );
    }

    #[test]
    fn settings_are_validated() {
        let b = || Verifier::builder(keys()).issuer("i").audience("a");
        assert!(b().required_claims(["exp", "nope"]).is_err());
        assert!(b().require_type("").is_err());
        assert!(b().require_type("application/").is_err());
        assert!(b().require_type("at jwt").is_err());
        assert!(b().max_token_len(0).is_err());
        assert!(b().max_token_len(MAX_TOKEN_LEN_LIMIT + 1).is_err());
        assert!(b().understood_critical("b64").is_err());
        assert!(b().understood_critical("alg").is_err());
        assert!(b().understood_critical("exp-ext").is_ok());
        assert!(b().algorithms([]).is_err());
        assert!(matches!(
            b().algorithms([Algorithm::RS256]).unwrap().build(),
            Err(ConfigError::InvalidSetting(_))
        ));
        assert!(b().roles_claim("scope").unwrap().build().is_err());
        assert!(
            b().roles_claim("perms")
                .unwrap()
                .scopes_claim("/perms")
                .unwrap()
                .build()
                .is_err()
        );
    }

    #[test]
    fn shared_types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Verifier>();
        assert_send_sync::<KeySet>();
        assert_send_sync::<crate::TokenSigner>();
        assert_send_sync::<crate::Claims>();
        assert_send_sync::<AuthError>();
        assert_send_sync::<ConfigError>();
    }

    #[test]
    fn require_type_normalises() {
        let v = Verifier::builder(keys())
            .accept_any_issuer()
            .accept_any_audience()
            .require_type("Application/AT+JWT")
            .unwrap()
            .build()
            .unwrap();
        let Inner::One(policy) = &*v.inner else {
            panic!("one policy")
        };
        assert_eq!(policy.header.typ.as_deref(), Some("at+jwt"));
    }
}
