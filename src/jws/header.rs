//! The JOSE header (RFC 7515 section 4): one strict, typed parse, then the `alg`, `kid`,
//! `crit` and `typ` rules of step 3.
//!
//! ```
//! use tower_jwt_auth::{Algorithm, ErrorKind, KeySet, TokenSigner};
//!
//! let secret = [5u8; 32];
//! let keys = KeySet::hmac(Algorithm::HS256, &secret)?;
//! let signer = TokenSigner::hmac(Algorithm::HS256, &secret)?;
//! // A header naming an extension nobody declared is refused, even with a valid signature.
//! let token = signer.sign_raw(br#"{"alg":"HS256","crit":["exp"],"exp":1}"#, b"{}")?;
//! assert_eq!(keys.verify_jws(&token).unwrap_err().kind(), ErrorKind::UnsupportedCritical);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{HeaderPolicy, MALFORMED};
use crate::algorithm::Algorithm;
use crate::error::{AuthError, ErrorKind};
use crate::json::{DUPLICATE, Key, Str, StrictIgnore};
use crate::keys::KeySet;

/// Step 3 on a decoded header: the index of the key it selects and the algorithm, or why not.
pub(super) fn check(
    keys: &KeySet,
    header: &[u8],
    policy: &HeaderPolicy,
) -> Result<(usize, Algorithm), AuthError> {
    let header = parse_header(header)?;
    let alg = Algorithm::from_name(&header.alg)
        .filter(|alg| policy.algorithms & alg.bit() != 0)
        .ok_or(AuthError::new(ErrorKind::Algorithm))?;
    let index = keys.select_index(header.kid.as_deref())?;
    if keys.key(index).alg != alg {
        return Err(AuthError::new(ErrorKind::Algorithm));
    }
    check_critical(&header, &policy.critical)?;
    if let Some(required) = &policy.typ
        && !header
            .typ
            .as_deref()
            .is_some_and(|typ| type_matches(typ, required))
    {
        return Err(AuthError::new(ErrorKind::WrongType));
    }
    Ok((index, alg))
}

/// Media type comparison per RFC 7515 section 4.1.9: case-insensitive, `application/` optional.
pub(super) fn type_matches(typ: &str, required: &str) -> bool {
    let typ = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    typ.eq_ignore_ascii_case(required)
}

fn check_critical(header: &Header<'_>, understood: &[Box<str>]) -> Result<(), AuthError> {
    let unsupported = AuthError::new(ErrorKind::UnsupportedCritical);
    if header.b64 == Some(false) {
        // RFC 7797 unencoded payloads are not supported.
        return Err(unsupported);
    }
    let Some(critical) = &header.critical else {
        return Ok(());
    };
    // RFC 7515 section 4.1.11: non-empty, understood, present in the header, no repeats.
    if critical.is_empty() {
        return Err(unsupported);
    }
    for (i, name) in critical.iter().enumerate() {
        let known = understood.iter().any(|u| **u == **name);
        let present = header.others.iter().any(|other| other == name);
        if !known || !present || critical[..i].contains(name) {
            return Err(unsupported);
        }
    }
    Ok(())
}

/// The JOSE header members this crate reads; everything else is checked for duplicates and
/// otherwise ignored (`jku`, `x5u`, `jwk`, `x5c` included: keys come only from the key set).
pub(super) struct Header<'a> {
    pub(super) alg: Cow<'a, str>,
    pub(super) kid: Option<Cow<'a, str>>,
    pub(super) typ: Option<Cow<'a, str>>,
    critical: Option<Vec<Cow<'a, str>>>,
    b64: Option<bool>,
    /// Names of the members not listed above (for duplicate and `crit` checks).
    others: Vec<Cow<'a, str>>,
}

pub(super) fn parse_header(bytes: &[u8]) -> Result<Header<'_>, AuthError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let header = HeaderSeed.deserialize(&mut de).map_err(|_| MALFORMED)?;
    de.end().map_err(|_| MALFORMED)?;
    Ok(header)
}

struct HeaderSeed;

impl<'de> DeserializeSeed<'de> for HeaderSeed {
    type Value = Header<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Header<'de>, D::Error> {
        deserializer.deserialize_map(HeaderVisitor)
    }
}

struct HeaderVisitor;

fn once<T, E: de::Error>(slot: &mut Option<T>, value: T) -> Result<(), E> {
    if slot.replace(value).is_some() {
        Err(E::custom(DUPLICATE))
    } else {
        Ok(())
    }
}

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Header<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JOSE header object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header<'de>, A::Error> {
        let mut alg = None;
        let mut kid = None;
        let mut typ = None;
        let mut critical = None;
        let mut b64 = None;
        let mut others: Vec<Cow<'de, str>> = Vec::new();
        while let Some(Key(name)) = map.next_key()? {
            match &*name {
                "alg" => once(&mut alg, map.next_value::<Str<'de>>()?.0)?,
                "kid" => once(&mut kid, map.next_value::<Str<'de>>()?.0)?,
                "typ" => once(&mut typ, map.next_value::<Str<'de>>()?.0)?,
                "crit" => once(&mut critical, map.next_value_seed(CriticalSeed)?)?,
                "b64" => once(&mut b64, map.next_value::<bool>()?)?,
                _ => {
                    if others.contains(&name) {
                        return Err(de::Error::custom(DUPLICATE));
                    }
                    map.next_value_seed(StrictIgnore)?;
                    others.push(name);
                }
            }
        }
        let alg = alg.ok_or_else(|| de::Error::missing_field("alg"))?;
        Ok(Header {
            alg,
            kid,
            typ,
            critical,
            b64,
            others,
        })
    }
}

struct CriticalSeed;

impl<'de> DeserializeSeed<'de> for CriticalSeed {
    type Value = Vec<Cow<'de, str>>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for CriticalSeed {
    type Value = Vec<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of header parameter names")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut names = Vec::new();
        while let Some(Str(name)) = seq.next_element()? {
            names.push(name);
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_matching_follows_rfc_7515() {
        assert!(type_matches("at+jwt", "at+jwt"));
        assert!(type_matches("AT+JWT", "at+jwt"));
        assert!(type_matches("application/at+jwt", "at+jwt"));
        assert!(type_matches("Application/AT+jwt", "at+jwt"));
        assert!(!type_matches("JWT", "at+jwt"));
        assert!(!type_matches("application/", "at+jwt"));
        assert!(!type_matches("text/at+jwt", "at+jwt"));
        assert!(!type_matches("at+jwt ", "at+jwt"));
    }

    #[test]
    fn header_parse_is_typed_and_strict() {
        assert!(parse_header(br#"{"alg":"HS256","kid":"k","typ":"JWT"}"#).is_ok());
        for bad in [
            &br#"{"alg":"HS256","alg":"HS256"}"#[..],
            br#"{"alg":"HS256","kid":"a","kid":"b"}"#,
            br#"{"alg":"HS256","x":1,"x":1}"#,
            br#"{"alg":"HS256","x":{"y":1,"y":1}}"#,
            br#"{"alg":"HS256","\u0061lg":"none"}"#,
            br#"{"alg":256}"#,
            br#"{"alg":"HS256","kid":7}"#,
            br#"{"alg":"HS256","typ":null}"#,
            br#"{"alg":"HS256","crit":"b64"}"#,
            br#"{"alg":"HS256","b64":"false"}"#,
            br#"{"kid":"k"}"#,
            br#"["alg","HS256"]"#,
            br#""HS256""#,
            br#"{"alg":"HS256"}{}"#,
            b"",
        ] {
            assert!(
                parse_header(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
