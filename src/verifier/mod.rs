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

use crate::claims::{Claims, Core, Mapping, Parsed, Registered};
use crate::error::{AuthError, ErrorKind};
use crate::jws::{self, HeaderPolicy};
use crate::keys::KeySet;
use crate::pass::{Attempt, Pass};

mod builder;
mod by_issuer;
mod cache;
mod source;

pub use builder::VerifierBuilder;
use cache::VerifyCache;
pub use cache::{CacheStats, MAX_CACHE_CAPACITY};
pub use source::KeySource;
use source::Source;

/// The `typ` of an OAuth 2.0 access token in JWT format (RFC 9068 section 2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// The default clock leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The largest maximum token length a verifier accepts (1 MiB).
pub const MAX_TOKEN_LEN_LIMIT: usize = 1 << 20;

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
    /// [`RemoteJwks`][remote-jwks]. [`VerifierBuilder::build`] insists on at
    /// least one accepted issuer and audience (or an explicit `accept_any_*`).
    ///
    #[cfg_attr(
        feature = "remote-jwks",
        doc = "[remote-jwks]: crate::remote::RemoteJwks"
    )]
    #[cfg_attr(not(feature = "remote-jwks"), doc = "[remote-jwks]: crate#features")]
    pub fn builder(keys: impl Into<KeySource>) -> VerifierBuilder {
        VerifierBuilder::new(keys.into())
    }

    /// Verifies a compact JWS token and returns its claims, the remaining claims as a JSON map.
    ///
    /// Never waits. With [remote keys][remote-jwks] that are not there yet, or a `kid` the current
    /// keys lack, it answers at once ([`ErrorKind::Unavailable`], [`ErrorKind::UnknownKey`]) and
    /// lets the key source fetch in the background; [`Verifier::verify_async`] (and
    /// [`BearerAuthLayer`](crate::bearer::BearerAuthLayer)) wait for that fetch instead.
    ///
    /// # Errors
    ///
    /// An [`AuthError`] whose [`kind`](AuthError::kind) says which rule the token broke, in the
    /// order the token path checks them (see the crate docs, "The token path").
    ///
    #[cfg_attr(
        feature = "remote-jwks",
        doc = "[remote-jwks]: crate::remote::RemoteJwks"
    )]
    #[cfg_attr(not(feature = "remote-jwks"), doc = "[remote-jwks]: crate#features")]
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_pass(token.as_bytes(), Pass::Now)
            .finish()
            .map(Verified::into_claims)
    }

    /// Like [`Verifier::verify`], with the remaining claims deserialised into `E`.
    ///
    /// # Errors
    ///
    /// As [`Verifier::verify`]; also [`ErrorKind::InvalidClaim`] when the remaining claims do
    /// not deserialise into `E`.
    pub fn verify_as<E: DeserializeOwned>(&self, token: &str) -> Result<Claims<E>, AuthError> {
        self.verify_pass(token.as_bytes(), Pass::Now)
            .finish()?
            .into_typed()
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
        self.verify_pass_async(token.as_bytes())
            .await
            .map(Verified::into_claims)
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
        self.verify_pass_async(token.as_bytes()).await?.into_typed()
    }

    /// A pass that may wait for the one fetch the key source needs, then the pass after it.
    async fn verify_pass_async(&self, token: &[u8]) -> Result<Verified, AuthError> {
        match self.verify_pass(token, Pass::MayWait) {
            Attempt::Done(result) => result,
            #[cfg(feature = "remote-jwks")]
            Attempt::Wait(fetch) => {
                fetch.await;
                self.verify_pass(token, Pass::AfterFetch).finish()
            }
        }
    }

    /// One pass of the token path on bytes: nothing in it needs UTF-8 (segments are base64url,
    /// the JSON is validated when parsed), so the layer hands it header bytes without a UTF-8
    /// pass. `Attempt::Wait` only with remote keys, and only when `pass` allows it.
    pub(crate) fn verify_pass(&self, token: &[u8], pass: Pass) -> Attempt<Verified> {
        match &*self.inner {
            Inner::One(policy) => policy.verify_pass(token, pass),
            Inner::ByIssuer(set) => set.verify_pass(token, pass),
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

/// What one pass over the token path verified: claims parsed just now (the verifier has no
/// cache), or claims shared with the verification cache.
pub(crate) enum Verified {
    Parsed(Parsed),
    Shared(Claims),
}

impl Verified {
    /// The claims, remaining ones as a JSON map: the parsed map moved in, or the shared
    /// claims as they are (no copy either way).
    pub(crate) fn into_claims(self) -> Claims {
        match self {
            Self::Parsed(parsed) => Claims::from_parsed(parsed),
            Self::Shared(claims) => claims,
        }
    }

    /// The claims with the remaining ones read into `E` (moved out of a parsed map, read in
    /// place from a shared one); the registered claims are not copied.
    pub(crate) fn into_typed<E: DeserializeOwned>(self) -> Result<Claims<E>, AuthError> {
        match self {
            Self::Parsed(parsed) => parsed.into_claims(),
            Self::Shared(claims) => claims
                .typed()
                .map_err(|_| AuthError::new(ErrorKind::InvalidClaim)),
        }
    }
}

impl Policy {
    fn verify_pass(&self, token: &[u8], pass: Pass) -> Attempt<Verified> {
        match self.keys.source() {
            Source::Static(keys) => {
                let _ = pass;
                Attempt::Done(self.verify_with(keys, token))
            }
            #[cfg(feature = "remote-jwks")]
            Source::Remote(remote) => {
                remote.with_keys(token, pass, |keys| self.verify_with(keys, token))
            }
        }
    }

    /// Steps 1 to 5 with these keys. With the cache on, a token that verified before with
    /// these keys skips steps 2 to 4 and the parsing of step 5; its claims are validated again
    /// and shared with the cache, not copied.
    fn verify_with(&self, keys: &KeySet, token: &[u8]) -> Result<Verified, AuthError> {
        let now = self.clock.now_secs();
        // Step 1 before the lookup: an over-long header value is not even hashed.
        if let Some(cache) = &self.cache
            && token.len() <= self.header.max_len
            && let Some(claims) = cache.lookup(token, keys.id(), now)
        {
            self.validate(claims.core(), now)?;
            return Ok(Verified::Shared(claims));
        }
        let checked = jws::verify_compact(keys, token, &self.header, false)?;
        let parsed = Parsed::from_json(checked.payload(), &self.mapping)?;
        drop(checked);
        self.validate(&parsed.core, now)?;
        let Some(cache) = &self.cache else {
            return Ok(Verified::Parsed(parsed));
        };
        let claims = Claims::from_parsed(parsed);
        cache.insert(token, keys.id(), &claims, now);
        Ok(Verified::Shared(claims))
    }

    /// Step 5 after parsing: required claims, then times (against `now`), issuer, audience.
    fn validate(&self, claims: &Core, now: f64) -> Result<(), AuthError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::Algorithm;
    use crate::error::ConfigError;

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
        assert_send_sync::<crate::signer::TokenSigner>();
        assert_send_sync::<crate::claims::Claims>();
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

    #[test]
    fn a_cache_hit_hands_out_the_cached_claims_themselves() {
        let signer = crate::signer::TokenSigner::hmac(Algorithm::HS256, &[1; 32]).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let token = signer
            .sign(&serde_json::json!({
                "iss": "i", "aud": "a", "sub": "s", "jti": "j", "iat": now, "exp": now + 60,
                "tenant": "t",
            }))
            .unwrap();
        let build = |cache: bool| {
            let builder = Verifier::builder(keys()).issuer("i").audience("a");
            if cache {
                builder.cache(8).unwrap()
            } else {
                builder
            }
            .build()
            .unwrap()
        };
        let cached = build(true);
        let (first, second) = (
            cached.verify(&token).unwrap(),
            cached.verify(&token).unwrap(),
        );
        assert!(first.shares_core_with(&second) && first.shares_extra_with(&second));
        // A typed read of a hit shares the registered claims too.
        let typed: Claims<serde_json::Value> = cached.verify_as(&token).unwrap();
        assert!(typed.shares_core_with(&first));
        assert_eq!(typed.extra()["tenant"], "t");
        // Without the cache every verification stands alone.
        let plain = build(false);
        let (first, second) = (plain.verify(&token).unwrap(), plain.verify(&token).unwrap());
        assert_eq!(first, second);
        assert!(!first.shares_core_with(&second));
    }
}
