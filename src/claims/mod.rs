//! [`Claims`]: the registered claims of a verified token, its roles and scopes in one normalised
//! form, and the remaining claims for the application.
//!
//! ```
//! use tower_jwt_auth::{Algorithm, Claims, KeySet, TokenSigner, Verifier};
//!
//! #[derive(serde::Deserialize)]
//! struct Tenant {
//!     tenant: String,
//! }
//!
//! let secret = [3u8; 32];
//! let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, &secret)?)
//!     .issuer("https://issuer.example")
//!     .audience("api")
//!     .build()?;
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
//! let token = TokenSigner::hmac(Algorithm::HS256, &secret)?.sign(&serde_json::json!({
//!     "iss": "https://issuer.example", "aud": "api", "sub": "alice", "jti": "t-1",
//!     "iat": now, "exp": now + 300,
//!     "roles": ["admin"], "scope": "items:read items:write", "tenant": "acme",
//! }))?;
//!
//! let claims: Claims<Tenant> = verifier.verify_as(&token)?;
//! assert_eq!(claims.subject(), Some("alice"));
//! assert!(claims.has_role("admin"));
//! assert!(claims.has_all_scopes(["items:read", "items:write"]));
//! assert_eq!(claims.extra().tenant, "acme");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{DeserializeOwned, Deserializer, Visitor};
use serde_json::{Map, Value};

mod parse;

pub(crate) use parse::{ClaimPath, Core, Mapping, Parsed, Registered};

thread_local! {
    /// The remaining claims of a token that has none: one map per thread, shared by every
    /// such token's claims, so that they cost no allocation.
    static EMPTY: Arc<Map<String, Value>> = Arc::new(Map::new());
}

/// A JWT NumericDate (RFC 7519 section 2): seconds since the Unix epoch, fractions allowed.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct NumericDate(f64);

impl NumericDate {
    /// The latest accepted date, 9999-12-31T23:59:59Z. Later values are rejected as invalid
    /// claims rather than trusted as "never expires".
    pub const MAX_SECS: f64 = 253_402_300_799.0;

    /// A date from seconds since the epoch, or `None` when not finite, negative, or after
    /// [`NumericDate::MAX_SECS`].
    #[must_use]
    pub fn from_secs_f64(secs: f64) -> Option<Self> {
        (secs.is_finite() && (0.0..=Self::MAX_SECS).contains(&secs)).then_some(Self(secs))
    }

    /// Seconds since the epoch, with any fraction.
    #[must_use]
    pub fn as_secs_f64(self) -> f64 {
        self.0
    }

    /// Whole seconds since the epoch (the fraction dropped).
    #[must_use]
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub fn as_secs(self) -> u64 {
        // In range by construction: 0 <= self.0 <= MAX_SECS < 2^38.
        self.0 as u64
    }

    /// The date as a [`SystemTime`].
    #[must_use]
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs_f64(self.0)
    }
}

/// RFC 6749 section 3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`, printable ASCII without
/// space, `"` and `\`.
fn is_scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
}

/// One non-empty RFC 6749 scope token (also safe inside a challenge's quoted string).
pub(crate) fn is_scope_token(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(is_scope_char)
}

/// The scopes of a token (RFC 6749 section 3.3 scope tokens), kept as one space-delimited
/// string: the `scope` claim as sent, or a `scp` array joined. A token with a character outside
/// the scope-token grammar (control characters, `"`, `\`, non-ASCII) makes the claim invalid.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Scopes(String);

impl Scopes {
    /// From a space-delimited string; runs of spaces and leading or trailing spaces are dropped.
    /// `None` when a token has a character outside the scope-token grammar.
    pub(crate) fn from_delimited(scope: &str) -> Option<Self> {
        if !scope.bytes().all(|b| b == b' ' || is_scope_char(b)) {
            return None;
        }
        Some(
            if scope.starts_with(' ') || scope.ends_with(' ') || scope.contains("  ") {
                let tokens: Vec<&str> = scope.split(' ').filter(|t| !t.is_empty()).collect();
                Self(tokens.join(" "))
            } else {
                Self(scope.to_owned())
            },
        )
    }

    /// From a list of scope tokens; `None` when one is not a string, is empty, or has a
    /// character outside the scope-token grammar (a space included).
    pub(crate) fn from_list<'a>(tokens: impl IntoIterator<Item = Option<&'a str>>) -> Option<Self> {
        let mut joined = String::new();
        for token in tokens {
            let token = token.filter(|t| !t.is_empty() && t.bytes().all(is_scope_char))?;
            if !joined.is_empty() {
                joined.push(' ');
            }
            joined.push_str(token);
        }
        Some(Self(joined))
    }

    /// The scope tokens, in token order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.split(' ').filter(|token| !token.is_empty())
    }

    /// Whether this exact scope is present (case-sensitive).
    #[must_use]
    pub fn contains(&self, scope: &str) -> bool {
        self.iter().any(|token| token == scope)
    }

    /// The number of scopes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there is no scope.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes as one space-delimited string (the form of the `scope` claim).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Compares the scope tokens, in order, with a list: `assert_eq!(claims.scopes(), ["a", "b"])`.
impl<S: AsRef<str>> PartialEq<[S]> for Scopes {
    fn eq(&self, other: &[S]) -> bool {
        self.iter().eq(other.iter().map(AsRef::as_ref))
    }
}

impl<S: AsRef<str>, const N: usize> PartialEq<[S; N]> for Scopes {
    fn eq(&self, other: &[S; N]) -> bool {
        *self == other[..]
    }
}

impl<S: AsRef<str>, const N: usize> PartialEq<[S; N]> for &Scopes {
    fn eq(&self, other: &[S; N]) -> bool {
        **self == other[..]
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for Scopes {
    fn eq(&self, other: &Vec<S>) -> bool {
        *self == other[..]
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for &Scopes {
    fn eq(&self, other: &Vec<S>) -> bool {
        **self == other[..]
    }
}

impl<'a> IntoIterator for &'a Scopes {
    type Item = &'a str;
    type IntoIter = std::iter::Filter<std::str::Split<'a, char>, fn(&&str) -> bool>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.split(' ').filter(|token| !token.is_empty())
    }
}

/// The claims of a verified token.
///
/// Registered claims are typed. Roles and scopes are found once, at verification (see the
/// verifier's claim mapping): the roles as a list of strings, the scopes as one normalised
/// [`Scopes`] view (from `scope` or `scp`). Every other claim goes to `E`, which by default
/// keeps them as a JSON map. Read them typed with your own `E: Deserialize`:
/// `verifier.verify_as::<MyClaims>(token)`, or [`Claims::typed`] on the claims a layer stored
/// (which the axum extractor for `Claims<MyClaims>` does).
///
/// `Claims` is a handle: the claims themselves are shared behind reference counts, so a clone
/// costs two counter increments and copies nothing, whatever the token holds. The claims
/// [`BearerAuthLayer`](crate::bearer::BearerAuthLayer) puts into the request extensions, the
/// ones the verification cache keeps, and the ones the axum extractor hands a handler are
/// one value; a `Claims<T>` read from them shares their registered claims, roles and scopes
/// and owns only its `T`. Nothing can change them once verified.
pub struct Claims<E = Map<String, Value>> {
    core: Arc<Core>,
    extra: Arc<E>,
}

impl<E> Clone for Claims<E> {
    /// Another handle on the same claims; nothing is copied.
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
            extra: Arc::clone(&self.extra),
        }
    }
}

impl<E: PartialEq> PartialEq for Claims<E> {
    fn eq(&self, other: &Self) -> bool {
        self.core == other.core && self.extra == other.extra
    }
}

impl<E: fmt::Debug> fmt::Debug for Claims<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let core = &*self.core;
        f.debug_struct("Claims")
            .field("issuer", &core.iss)
            .field("subject", &core.sub)
            .field("audience", &self.audience())
            .field("expires_at", &core.exp)
            .field("not_before", &core.nbf)
            .field("issued_at", &core.iat)
            .field("jwt_id", &core.jti)
            .field("roles", &core.roles)
            .field("scopes", &core.scopes)
            .field("extra", &self.extra)
            .finish()
    }
}

impl<E> Claims<E> {
    pub(crate) fn new(core: Core, extra: E) -> Self {
        Self {
            core: Arc::new(core),
            extra: Arc::new(extra),
        }
    }

    /// The registered claims, for the verifier's checks.
    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    /// Whether these claims and `other` are handles on the same registered claims (not equal
    /// copies of them).
    #[cfg(test)]
    pub(crate) fn shares_core_with<F>(&self, other: &Claims<F>) -> bool {
        Arc::ptr_eq(&self.core, &other.core)
    }

    /// Whether these claims and `other` are handles on the same remaining claims.
    #[cfg(test)]
    pub(crate) fn shares_extra_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.extra, &other.extra)
    }

    /// `iss`.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.core.iss.as_deref()
    }

    /// `sub`.
    #[must_use]
    pub fn subject(&self) -> Option<&str> {
        self.core.sub.as_deref()
    }

    /// `aud`, as a list even when the token carried a single string (empty without `aud`).
    #[must_use]
    pub fn audience(&self) -> &[String] {
        self.core.aud.as_deref().unwrap_or_default()
    }

    /// `exp`.
    #[must_use]
    pub fn expires_at(&self) -> Option<NumericDate> {
        self.core.exp
    }

    /// `nbf`.
    #[must_use]
    pub fn not_before(&self) -> Option<NumericDate> {
        self.core.nbf
    }

    /// `iat`.
    #[must_use]
    pub fn issued_at(&self) -> Option<NumericDate> {
        self.core.iat
    }

    /// `jti`.
    #[must_use]
    pub fn jwt_id(&self) -> Option<&str> {
        self.core.jti.as_deref()
    }

    /// The roles, in token order.
    #[must_use]
    pub fn roles(&self) -> &[String] {
        &self.core.roles
    }

    /// The scopes.
    #[must_use]
    pub fn scopes(&self) -> &Scopes {
        &self.core.scopes
    }

    /// The remaining claims.
    #[must_use]
    pub fn extra(&self) -> &E {
        &self.extra
    }

    /// The remaining claims, by value: moved out when no other handle shares them (claims
    /// from [`Verifier::verify_as`](crate::Verifier::verify_as) or [`Claims::typed`] that were
    /// not cloned), cloned otherwise.
    #[must_use]
    pub fn into_extra(self) -> E
    where
        E: Clone,
    {
        Arc::unwrap_or_clone(self.extra)
    }

    /// Whether the token has this role (exact, case-sensitive).
    #[must_use]
    pub fn has_role(&self, role: &str) -> bool {
        self.core.roles.iter().any(|r| r == role)
    }

    /// Whether the token has this scope (exact, case-sensitive).
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.core.scopes.contains(scope)
    }

    /// Whether the token has every one of these scopes.
    pub fn has_all_scopes<I>(&self, scopes: I) -> bool
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        scopes
            .into_iter()
            .all(|scope| self.has_scope(scope.as_ref()))
    }
}

impl Claims {
    /// The remaining claims deserialised into `T`: the typed view of a token's own claims when the
    /// claims came from [`BearerAuthLayer`](crate::bearer::BearerAuthLayer) (which stores them as a
    /// JSON map). [`Verifier::verify_as`](crate::Verifier::verify_as) does this at verification.
    ///
    /// # Errors
    ///
    /// When the remaining claims do not deserialise into `T`.
    pub fn extra_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(Extra(&self.extra))
    }

    /// These claims with the remaining ones deserialised into `T`, for handlers that read an
    /// application's own claims typed. The result shares the registered claims, roles and
    /// scopes with these claims (nothing of them is copied) and owns its `T`, read from the
    /// map in place, exactly as [`Verifier::verify_as`](crate::Verifier::verify_as) would read
    /// it.
    ///
    /// ```
    /// use tower_jwt_auth::{Algorithm, Claims, KeySet, TokenSigner, Verifier};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Tenant {
    ///     tenant: String,
    /// }
    ///
    /// let secret = [3u8; 32];
    /// let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, &secret)?)
    ///     .issuer("https://issuer.example").audience("api").build()?;
    /// let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    /// let token = TokenSigner::hmac(Algorithm::HS256, &secret)?.sign(&serde_json::json!({
    ///     "iss": "https://issuer.example", "aud": "api", "sub": "alice", "jti": "t-1",
    ///     "iat": now, "exp": now + 300, "tenant": "acme",
    /// }))?;
    /// let claims: Claims = verifier.verify(&token)?; // as `BearerAuth` stores them
    /// let typed: Claims<Tenant> = claims.typed()?;
    /// assert_eq!((typed.subject(), typed.extra().tenant.as_str()), (Some("alice"), "acme"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// When the remaining claims do not deserialise into `T`.
    pub fn typed<T: DeserializeOwned>(&self) -> Result<Claims<T>, serde_json::Error> {
        Ok(Claims {
            core: Arc::clone(&self.core),
            extra: Arc::new(self.extra_as()?),
        })
    }

    /// Claims verified just now, their remaining claims kept as they are: no copy of the map,
    /// and no allocation for it when it is empty.
    pub(crate) fn from_parsed(parsed: Parsed) -> Self {
        let extra = if parsed.extra.is_empty() {
            // During the thread's teardown the shared map may be gone: then one of its own.
            EMPTY
                .try_with(Arc::clone)
                .unwrap_or_else(|_| Arc::new(Map::new()))
        } else {
            Arc::new(parsed.extra)
        };
        Self {
            core: Arc::new(parsed.core),
            extra,
        }
    }

    /// `sid`, the session id (RFC 9068 tokens of [`TokenIssuer`](crate::issuer::TokenIssuer) carry
    /// their refresh family here), when it is a string.
    #[must_use]
    pub fn session_id(&self) -> Option<&str> {
        self.extra.get("sid").and_then(Value::as_str)
    }

    /// `client_id` (RFC 9068), when it is a string.
    #[must_use]
    pub fn client_id(&self) -> Option<&str> {
        self.extra.get("client_id").and_then(Value::as_str)
    }
}

/// The remaining claims as a deserializer that reads the map in place and answers every request
/// as the owned `Value::Object` does (which `verify_as` deserialises from): a map for structs
/// and maps, `Some` for options, a one-member map for enums. serde_json's own deserializer for
/// a borrowed map answers options and newtype structs with a map, which `Option<T>` or a
/// newtype wrapper would refuse.
struct Extra<'a>(&'a Map<String, Value>);

impl<'de> Deserializer<'de> for Extra<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        // Rare (a newtype around the whole claims map, or serde_json's `RawValue`): read as the
        // owned value reads it, for exactly its answers, at the price of one copy.
        Value::Object(self.0.clone()).deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_ignored_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct identifier
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    /// The claims of a token with these remaining claims (beside `sub`), parsed twice: as the
    /// layer stores them, and read into `T` as `verify_as` reads them.
    fn both<T: DeserializeOwned>(extra: &Value) -> (Claims, Result<Claims<T>, ()>) {
        let mut payload = extra.clone();
        payload["sub"] = json!("alice");
        let payload = serde_json::to_vec(&payload).unwrap();
        let parsed = || Parsed::from_json(&payload, &Mapping::default()).unwrap();
        (
            Claims::from_parsed(parsed()),
            parsed().into_claims::<T>().map_err(|_| ()),
        )
    }

    /// `typed` and `extra_as` accept exactly what `verify_as` accepts, with the same value.
    fn agrees<T: DeserializeOwned + PartialEq + fmt::Debug>(extra: Value) {
        let (stored, at_verification) = both::<T>(&extra);
        let typed = stored.typed::<T>().map_err(|_| ());
        assert_eq!(
            typed.as_ref().map(Claims::extra),
            at_verification.as_ref().map(Claims::extra),
            "{extra}"
        );
        assert_eq!(
            stored.extra_as::<T>().map_err(|_| ()).as_ref(),
            at_verification.as_ref().map(Claims::extra),
            "{extra}"
        );
        if let Ok(typed) = typed {
            assert_eq!(typed.subject(), Some("alice"));
            assert_eq!(typed.scopes(), stored.scopes());
        }
    }

    #[test]
    fn typed_claims_read_as_verify_as_reads_them() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct Tenant {
            tenant: String,
            #[serde(default)]
            seats: u32,
        }
        #[derive(Debug, Deserialize, PartialEq)]
        struct Wrapped(BTreeMap<String, Value>);
        #[derive(Debug, Deserialize, PartialEq)]
        enum Kind {
            Admin(String),
        }
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Strict {
            tenant: String,
        }
        for extra in [
            json!({"tenant": "acme", "seats": 5}),
            json!({"tenant": "acme"}),
            json!({"Admin": "root"}),
            json!({}),
        ] {
            agrees::<Tenant>(extra.clone());
            agrees::<Option<Tenant>>(extra.clone());
            agrees::<Wrapped>(extra.clone());
            agrees::<Strict>(extra.clone());
            agrees::<Map<String, Value>>(extra.clone());
            agrees::<BTreeMap<String, Value>>(extra.clone());
            agrees::<Kind>(extra.clone());
            agrees::<u32>(extra.clone());
            agrees::<serde::de::IgnoredAny>(extra);
        }
        // `Option<T>` of a mismatched shape is refused, not `None`, as at verification.
        let (stored, _) = both::<Tenant>(&json!({"seats": 5}));
        assert!(stored.typed::<Option<Tenant>>().is_err());
        assert!(stored.extra_as::<Tenant>().is_err());
    }

    #[test]
    fn handles_share_what_they_hold() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct Tenant {
            tenant: String,
        }
        let parse = |json: &str| {
            Claims::from_parsed(Parsed::from_json(json.as_bytes(), &Mapping::default()).unwrap())
        };
        let claims = parse(r#"{"sub":"alice","roles":["admin"],"tenant":"acme"}"#);
        let clone = claims.clone();
        assert!(clone.shares_core_with(&claims) && clone.shares_extra_with(&claims));
        assert_eq!(clone, claims);
        // A typed view shares the registered claims and owns only its `T`.
        let typed = claims.typed::<Tenant>().unwrap();
        assert!(typed.shares_core_with(&claims));
        assert_eq!(
            (typed.subject(), typed.roles()),
            (Some("alice"), &["admin".to_owned()][..])
        );
        assert_eq!(typed.extra().tenant, "acme");
        // Equal claims parsed twice are equal, and are not the same claims.
        let again = parse(r#"{"sub":"alice","roles":["admin"],"tenant":"acme"}"#);
        assert_eq!(again, claims);
        assert!(!again.shares_core_with(&claims) && !again.shares_extra_with(&claims));
        // Tokens without remaining claims share one empty map (no allocation for it).
        let (bare, other) = (parse(r#"{"sub":"a"}"#), parse(r#"{"sub":"b"}"#));
        assert!(bare.shares_extra_with(&other) && bare.extra().is_empty());
        assert_ne!(bare, other);
        // The debug form lists the claims flat, as before they were shared.
        let debug = format!("{bare:?}");
        assert!(
            debug.starts_with(r#"Claims { issuer: None, subject: Some("a"), audience: []"#),
            "{debug}"
        );
    }
}
