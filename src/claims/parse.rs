//! The strict claims parser: one typed pass over a verified payload into [`Parsed`], which the
//! verifier validates before handing out [`Claims`].
//!
//! ```
//! use tower_jwt_auth::{Algorithm, ErrorKind, KeySet, TokenSigner, Verifier};
//!
//! let secret = [3u8; 32];
//! let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, &secret)?)
//!     .accept_any_issuer()
//!     .accept_any_audience()
//!     .required_claims(["sub"])?
//!     .build()?;
//! let signer = TokenSigner::hmac(Algorithm::HS256, &secret)?;
//! // A member twice is not "the last one wins": the payload is malformed.
//! let twice = signer.sign_json(r#"{"sub":"alice","sub":"mallory"}"#)?;
//! assert_eq!(verifier.verify(&twice).unwrap_err().kind(), ErrorKind::Malformed);
//! // A registered claim of the wrong type names itself.
//! let wrong = signer.sign_json(r#"{"sub":"alice","exp":"tomorrow"}"#)?;
//! let err = verifier.verify(&wrong).unwrap_err();
//! assert_eq!((err.kind(), err.claim()), (ErrorKind::InvalidClaim, Some("exp")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cell::Cell;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{Claims, NumericDate, Scopes};
use crate::error::{AuthError, ConfigError, ErrorKind};
use crate::json::{DUPLICATE, Key, Str, StrictValue, StringArray};

/// The registered claims this crate checks, as a bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Registered(u8);

impl Registered {
    pub(crate) const ISS: Self = Self(1);
    pub(crate) const SUB: Self = Self(1 << 1);
    pub(crate) const AUD: Self = Self(1 << 2);
    pub(crate) const EXP: Self = Self(1 << 3);
    pub(crate) const NBF: Self = Self(1 << 4);
    pub(crate) const IAT: Self = Self(1 << 5);
    pub(crate) const JTI: Self = Self(1 << 6);
    pub(crate) const NONE: Self = Self(0);
    /// `exp iat sub iss aud jti`.
    pub(crate) const DEFAULT_REQUIRED: Self =
        Self(Self::EXP.0 | Self::IAT.0 | Self::SUB.0 | Self::ISS.0 | Self::AUD.0 | Self::JTI.0);

    const NAMES: [(Self, &'static str); 7] = [
        (Self::EXP, "exp"),
        (Self::NBF, "nbf"),
        (Self::IAT, "iat"),
        (Self::SUB, "sub"),
        (Self::ISS, "iss"),
        (Self::AUD, "aud"),
        (Self::JTI, "jti"),
    ];

    pub(crate) fn from_name(name: &str) -> Result<Self, ConfigError> {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(bit, _)| *bit)
            .ok_or_else(|| ConfigError::UnknownClaim(name.to_owned()))
    }

    pub(crate) fn is_registered(name: &str) -> bool {
        Self::from_name(name).is_ok()
    }

    pub(crate) const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The first required claim that `present` lacks.
    fn first_missing(self, present: Self) -> Option<&'static str> {
        Self::NAMES
            .iter()
            .find(|(bit, _)| self.contains(*bit) && !present.contains(*bit))
            .map(|(_, name)| *name)
    }
}

/// Where a role or scope list lives in the claims: a top-level member, optionally followed by a
/// JSON pointer into it (for example `/realm_access/roles`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClaimPath {
    top: Box<str>,
    /// The rest of the pointer below `top`, starting with `/`, if the list is nested.
    rest: Option<Box<str>>,
}

impl ClaimPath {
    pub(crate) fn top_level(name: &str) -> Self {
        Self {
            top: name.into(),
            rest: None,
        }
    }

    /// A JSON pointer (RFC 6901, `/a/b`) or a plain top-level member name (`groups`).
    pub(crate) fn parse(path: &str) -> Result<Self, ConfigError> {
        let invalid = || ConfigError::InvalidClaimPath(path.to_owned());
        let Some(pointer) = path.strip_prefix('/') else {
            if path.is_empty() || Registered::is_registered(path) {
                return Err(invalid());
            }
            return Ok(Self::top_level(path));
        };
        let mut segments = Vec::new();
        for raw in pointer.split('/') {
            let mut segment = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                match (c, c == '~') {
                    (_, false) => segment.push(c),
                    (_, true) => match chars.next() {
                        Some('0') => segment.push('~'),
                        Some('1') => segment.push('/'),
                        _ => return Err(invalid()),
                    },
                }
            }
            if segment.is_empty() {
                return Err(invalid());
            }
            segments.push(segment);
        }
        let top = segments.first().ok_or_else(invalid)?;
        if Registered::is_registered(top) {
            return Err(invalid());
        }
        let rest = pointer.find('/').map(|at| Box::from(&pointer[at..]));
        Ok(Self {
            top: top.as_str().into(),
            rest,
        })
    }

    pub(crate) fn top(&self) -> &str {
        &self.top
    }
}

/// How roles and scopes are found in the claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mapping {
    pub(crate) roles: ClaimPath,
    /// `None`: `scope` (space-delimited string, RFC 9068) or `scp` (array or string).
    pub(crate) scopes: Option<ClaimPath>,
}

impl Default for Mapping {
    fn default() -> Self {
        Self {
            roles: ClaimPath::top_level("roles"),
            scopes: None,
        }
    }
}

/// The registered claims, roles and scopes of a token: what every typed view of its claims
/// shares (see [`Claims`]), and what the verifier validates.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Core {
    pub(crate) iss: Option<String>,
    pub(crate) sub: Option<String>,
    pub(crate) aud: Option<Vec<String>>,
    pub(crate) exp: Option<NumericDate>,
    pub(crate) nbf: Option<NumericDate>,
    pub(crate) iat: Option<NumericDate>,
    pub(crate) jti: Option<String>,
    pub(crate) roles: Vec<String>,
    pub(crate) scopes: Scopes,
}

impl Core {
    /// The first of the `required` registered claims that is absent.
    pub(crate) fn missing(&self, required: Registered) -> Option<&'static str> {
        let present = [
            (self.iss.is_some(), Registered::ISS),
            (self.sub.is_some(), Registered::SUB),
            (self.aud.is_some(), Registered::AUD),
            (self.exp.is_some(), Registered::EXP),
            (self.nbf.is_some(), Registered::NBF),
            (self.iat.is_some(), Registered::IAT),
            (self.jti.is_some(), Registered::JTI),
        ]
        .into_iter()
        .filter(|(present, _)| *present)
        .fold(Registered::NONE, |acc, (_, bit)| acc.union(bit));
        required.first_missing(present)
    }
}

/// The claims of a token, parsed once; validated by the verifier before they become
/// [`Claims`].
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub(crate) core: Core,
    pub(crate) extra: Map<String, Value>,
}

impl Parsed {
    /// One typed deserialisation of the payload: a JSON object without duplicate members,
    /// registered claims of the right types, roles and scopes per `mapping`.
    pub(crate) fn from_json(payload: &[u8], mapping: &Mapping) -> Result<Self, AuthError> {
        let failure = Cell::new(None);
        let mut de = serde_json::Deserializer::from_slice(payload);
        let parsed = ClaimsSeed {
            mapping,
            failure: &failure,
        }
        .deserialize(&mut de)
        .and_then(|parsed| de.end().map(|()| parsed));
        match parsed {
            Ok(mut parsed) => {
                parsed.resolve_nested(mapping)?;
                Ok(parsed)
            }
            Err(err) => Err(match (err.classify(), failure.get()) {
                (serde_json::error::Category::Data, Some(why)) => why,
                _ => AuthError::new(ErrorKind::Malformed),
            }),
        }
    }

    fn resolve_nested(&mut self, mapping: &Mapping) -> Result<(), AuthError> {
        if let Some(value) = self.nested(&mapping.roles) {
            let roles = value.as_array().and_then(|items| {
                items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect()
            });
            self.core.roles =
                roles.ok_or(AuthError::claim_error(ErrorKind::InvalidClaim, "roles"))?;
        }
        if let Some(value) = mapping.scopes.as_ref().and_then(|path| self.nested(path)) {
            let scopes = match value {
                Value::String(scope) => Scopes::from_delimited(scope),
                Value::Array(items) => Scopes::from_list(items.iter().map(Value::as_str)),
                _ => None,
            };
            self.core.scopes =
                scopes.ok_or(AuthError::claim_error(ErrorKind::InvalidClaim, "scope"))?;
        }
        Ok(())
    }

    /// The value at a nested claim path, if the path is nested and the value present.
    fn nested(&self, path: &ClaimPath) -> Option<&Value> {
        let rest = path.rest.as_deref()?;
        self.extra
            .get(path.top())
            .and_then(|value| value.pointer(rest))
    }

    /// The claims, the remaining ones read into the application's type.
    pub(crate) fn into_claims<E: DeserializeOwned>(self) -> Result<Claims<E>, AuthError> {
        let extra = serde_json::from_value(Value::Object(self.extra))
            .map_err(|_| AuthError::new(ErrorKind::InvalidClaim))?;
        Ok(Claims::new(self.core, extra))
    }
}

struct ClaimsSeed<'m> {
    mapping: &'m Mapping,
    failure: &'m Cell<Option<AuthError>>,
}

impl<'de> DeserializeSeed<'de> for ClaimsSeed<'_> {
    type Value = Parsed;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Parsed, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ClaimsSeed<'_> {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JWT claims object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut parsed = Parsed::default();
        let mut scope = None;
        let mut scp = None;
        let mut roles = None;
        let mut scopes = None;
        let failure = self.failure;
        // Reads one claim's value, remembering which claim had the wrong type.
        macro_rules! claim {
            ($slot:expr, $name:literal, $seed:expr) => {{
                let value = map.next_value_seed($seed).map_err(|err| {
                    failure.set(Some(AuthError::claim_error(ErrorKind::InvalidClaim, $name)));
                    err
                })?;
                if $slot.replace(value).is_some() {
                    failure.set(Some(AuthError::new(ErrorKind::Malformed)));
                    return Err(de::Error::custom(DUPLICATE));
                }
            }};
        }
        while let Some(Key(name)) = map.next_key()? {
            match &*name {
                "iss" => claim!(parsed.core.iss, "iss", Text),
                "sub" => claim!(parsed.core.sub, "sub", Text),
                "jti" => claim!(parsed.core.jti, "jti", Text),
                "aud" => claim!(parsed.core.aud, "aud", OneOrMany),
                "exp" => claim!(parsed.core.exp, "exp", Date),
                "nbf" => claim!(parsed.core.nbf, "nbf", Date),
                "iat" => claim!(parsed.core.iat, "iat", Date),
                name if self.mapping.roles.rest.is_none() && name == self.mapping.roles.top() => {
                    claim!(roles, "roles", StringArray)
                }
                "scope" if self.mapping.scopes.is_none() => {
                    claim!(scope, "scope", ScopeSeed { array: false })
                }
                "scp" if self.mapping.scopes.is_none() => {
                    claim!(scp, "scp", ScopeSeed { array: true })
                }
                name if self
                    .mapping
                    .scopes
                    .as_ref()
                    .is_some_and(|path| path.rest.is_none() && name == path.top()) =>
                {
                    claim!(scopes, "scope", ScopeSeed { array: true })
                }
                _ => {
                    let value = map.next_value_seed(StrictValue)?;
                    if parsed.extra.insert(name.into_owned(), value).is_some() {
                        failure.set(Some(AuthError::new(ErrorKind::Malformed)));
                        return Err(de::Error::custom(DUPLICATE));
                    }
                }
            }
        }
        parsed.core.roles = roles.unwrap_or_default();
        parsed.core.scopes = match (scope, scp, scopes) {
            (Some(_), Some(_), _) => {
                // Two scope claims that could disagree: refuse rather than pick one.
                failure.set(Some(AuthError::claim_error(
                    ErrorKind::InvalidClaim,
                    "scope",
                )));
                return Err(de::Error::custom("both scope and scp"));
            }
            (Some(scopes), None, _) | (None, Some(scopes), _) | (None, None, Some(scopes)) => {
                scopes
            }
            (None, None, None) => Scopes::default(),
        };
        Ok(parsed)
    }
}

/// A JSON string.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        <String as de::Deserialize>::deserialize(deserializer)
    }
}

/// A JSON string (one audience) or an array of strings.
struct OneOrMany;

impl<'de> DeserializeSeed<'de> for OneOrMany {
    type Value = Vec<String>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<String>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for OneOrMany {
    type Value = Vec<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array of strings")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
        Ok(vec![v.to_owned()])
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<String>, A::Error> {
        StringArray.visit_seq(seq)
    }
}

/// Scopes: a space-delimited string, or (when `array`) an array of scope tokens.
struct ScopeSeed {
    array: bool,
}

impl<'de> DeserializeSeed<'de> for ScopeSeed {
    type Value = Scopes;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Scopes, D::Error> {
        if self.array {
            deserializer.deserialize_any(self)
        } else {
            deserializer.deserialize_str(self)
        }
    }
}

impl<'de> Visitor<'de> for ScopeSeed {
    type Value = Scopes;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("space-delimited scopes or an array of scope tokens")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scopes, E> {
        Scopes::from_delimited(v).ok_or_else(|| E::custom("invalid scope token"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scopes, A::Error> {
        if !self.array {
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
        }
        let mut tokens = Vec::new();
        while let Some(Str(token)) = seq.next_element()? {
            tokens.push(token);
        }
        Scopes::from_list(tokens.iter().map(|t| Some(&**t)))
            .ok_or_else(|| de::Error::custom("invalid scope token"))
    }
}

/// A NumericDate: a JSON number, integer or not, within [`NumericDate::MAX_SECS`].
struct Date;

impl<'de> DeserializeSeed<'de> for Date {
    type Value = NumericDate;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<NumericDate, D::Error> {
        // Taken as raw text and parsed here, so that a number beyond the f64 range (1e400),
        // which serde_json reports as a syntax error, is an out-of-range claim like 1e300.
        let raw = <&'de RawValue as de::Deserialize>::deserialize(deserializer)?;
        let text = raw.get();
        if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            return Err(de::Error::custom("a date must be a number"));
        }
        text.parse::<f64>()
            .ok()
            .and_then(NumericDate::from_secs_f64)
            .ok_or_else(|| de::Error::custom("date out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Parsed, AuthError> {
        Parsed::from_json(json.as_bytes(), &Mapping::default())
    }

    #[test]
    fn numeric_dates_accept_fractions_and_refuse_the_absurd() {
        assert_eq!(
            parse(r#"{"exp":1700000000.5}"#)
                .unwrap()
                .core
                .exp
                .unwrap()
                .as_secs(),
            1_700_000_000
        );
        assert_eq!(
            parse(r#"{"exp" : 17e8 , "iat":1.5e9}"#)
                .unwrap()
                .core
                .exp
                .unwrap()
                .as_secs(),
            1_700_000_000
        );
        // Correctly rounded: the shortest decimal form of an f64 reads back as that f64.
        let exact = 1_749_999_995.285_859_3_f64;
        let json = format!(r#"{{"exp":{exact}}}"#);
        assert_eq!(
            parse(&json)
                .unwrap()
                .core
                .exp
                .unwrap()
                .as_secs_f64()
                .to_bits(),
            exact.to_bits()
        );
        assert_eq!(
            parse(r#"{"exp":0}"#).unwrap().core.exp,
            NumericDate::from_secs_f64(0.0)
        );
        for bad in [
            r#"{"exp":-1}"#,
            r#"{"exp":-0.5}"#,
            r#"{"exp":1e300}"#,
            r#"{"exp":1e400}"#,
            r#"{"exp":-1e400}"#,
            r#"{"exp": "1e5"}"#,
            r#"{"exp":253402300800}"#,
            r#"{"exp":18446744073709551615}"#,
            r#"{"exp":"1700000000"}"#,
            r#"{"exp":true}"#,
            r#"{"exp":null}"#,
            r#"{"exp":[1]}"#,
        ] {
            assert_eq!(
                parse(bad).unwrap_err(),
                AuthError::claim_error(ErrorKind::InvalidClaim, "exp"),
                "{bad}"
            );
        }
    }

    #[test]
    fn json_errors_are_malformed_not_claim_errors() {
        for bad in [
            r#"{"exp":1"#,
            r#"{"exp":tru}"#,
            r#"[]"#,
            r#""x""#,
            "",
            r#"{"a":1}x"#,
        ] {
            assert_eq!(
                parse(bad).unwrap_err().kind(),
                ErrorKind::Malformed,
                "{bad}"
            );
        }
        assert_eq!(
            parse(r#"{"sub":"a","sub":"a"}"#).unwrap_err().kind(),
            ErrorKind::Malformed
        );
        assert_eq!(
            parse(r#"{"x":1,"x":1}"#).unwrap_err().kind(),
            ErrorKind::Malformed
        );
    }

    #[test]
    fn scopes_from_scope_or_scp_but_not_both() {
        let scopes = |json: &str| {
            parse(json)
                .unwrap()
                .core
                .scopes
                .iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(scopes(r#"{"scope":" a  b c "}"#), ["a", "b", "c"]);
        assert_eq!(scopes(r#"{"scp":["a","b"]}"#), ["a", "b"]);
        assert_eq!(scopes(r#"{"scp":"a b"}"#), ["a", "b"]);
        assert_eq!(
            parse(r#"{"scope":"a  b"}"#).unwrap().core.scopes.as_str(),
            "a b"
        );
        assert!(parse(r#"{"scope":""}"#).unwrap().core.scopes.is_empty());
        for bad in [
            r#"{"scp":["a b"]}"#,
            r#"{"scp":[""]}"#,
            r#"{"scp":[1]}"#,
            r#"{"scp":{}}"#,
            r#"{"scp":["a\"b"]}"#,
            r#"{"scp":["a\\b"]}"#,
            r#"{"scp":"a\tb"}"#,
            r#"{"scp":["\u00e9"]}"#,
        ] {
            assert_eq!(
                parse(bad).unwrap_err(),
                AuthError::claim_error(ErrorKind::InvalidClaim, "scp"),
                "{bad}"
            );
        }
        assert_eq!(
            parse(r#"{"scope":"a","scp":["a"]}"#).unwrap_err(),
            AuthError::claim_error(ErrorKind::InvalidClaim, "scope")
        );
        for bad in [r#"{"scope":["a"]}"#, r#"{"scope":"read \"write\""}"#] {
            assert_eq!(
                parse(bad).unwrap_err(),
                AuthError::claim_error(ErrorKind::InvalidClaim, "scope"),
                "{bad}"
            );
        }
        // The whole scope-token alphabet passes.
        let alphabet: String = (0x21u8..=0x7e)
            .filter(|&b| b != b'"' && b != b'\\')
            .map(char::from)
            .collect();
        let json = serde_json::json!({ "scope": alphabet }).to_string();
        assert_eq!(parse(&json).unwrap().core.scopes.as_str(), alphabet);
    }

    #[test]
    fn extra_claims_read_typed() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Tenant {
            tenant: String,
            #[serde(default)]
            seats: u32,
        }
        let claims: Claims = parse(r#"{"sub":"a","tenant":"acme","seats":5,"other":true}"#)
            .unwrap()
            .into_claims()
            .unwrap();
        assert_eq!(
            claims.extra_as::<Tenant>().unwrap(),
            Tenant {
                tenant: "acme".into(),
                seats: 5
            }
        );
        let missing: Claims = parse(r#"{"sub":"a"}"#).unwrap().into_claims().unwrap();
        assert!(missing.extra_as::<Tenant>().is_err());
    }

    #[test]
    fn scopes_compare_with_lists_in_order() {
        let scopes = parse(r#"{"scope":"b a"}"#).unwrap().core.scopes;
        assert_eq!(scopes, ["b", "a"]);
        assert_eq!(&scopes, ["b", "a"]);
        assert_eq!(scopes, vec!["b".to_owned(), "a".to_owned()]);
        assert_ne!(scopes, ["a", "b"]);
        assert_ne!(scopes, ["b"]);
        assert_eq!(scopes.len(), 2);
        assert_eq!(format!("{scopes:?}"), r#"["b", "a"]"#);
        assert!(!scopes.contains("b a"));
        assert_eq!(Scopes::default(), [""; 0]);
    }

    #[test]
    fn nested_role_paths() {
        let mapping = Mapping {
            roles: ClaimPath::parse("/realm_access/roles").unwrap(),
            scopes: Some(ClaimPath::parse("/perm~1s/list").unwrap()),
        };
        let parsed = Parsed::from_json(
            br#"{"realm_access":{"roles":["admin"]},"perm/s":{"list":"x y"},"roles":"ignored"}"#,
            &mapping,
        )
        .unwrap();
        assert_eq!(parsed.core.roles, ["admin"]);
        assert_eq!(parsed.core.scopes.iter().collect::<Vec<_>>(), ["x", "y"]);
        let wrong = Parsed::from_json(br#"{"realm_access":{"roles":"admin"}}"#, &mapping);
        assert_eq!(
            wrong.unwrap_err(),
            AuthError::claim_error(ErrorKind::InvalidClaim, "roles")
        );
        let absent = Parsed::from_json(br#"{"realm_access":{}}"#, &mapping).unwrap();
        assert!(absent.core.roles.is_empty());
    }

    #[test]
    fn claim_paths_are_validated() {
        assert!(ClaimPath::parse("groups").is_ok());
        assert!(ClaimPath::parse("/a/b").is_ok());
        for bad in ["", "/", "/a//b", "/a/~2", "/sub", "exp", "/aud/x"] {
            assert!(ClaimPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn required_claims_report_the_first_missing_one() {
        let parsed = parse(r#"{"sub":"a","iss":"i"}"#).unwrap();
        assert_eq!(
            parsed.core.missing(Registered::DEFAULT_REQUIRED),
            Some("exp")
        );
        assert_eq!(
            parsed.core.missing(Registered::SUB.union(Registered::ISS)),
            None
        );
    }
}
