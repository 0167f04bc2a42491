//! Strict JSON building blocks for the token path: object member names that borrow from the
//! input when they can, and values that reject duplicate member names at every depth.
//!
//! Duplicate members are how two JSON parsers come to disagree about one token (RFC 7515
//! section 5.2 lets a recipient reject them; this crate always does), so they are refused
//! in the header, in the claims, and inside any nested object of either.
//!
//! ```
//! use tower_jwt_auth::{Algorithm, ErrorKind, KeySet, TokenSigner, Verifier};
//! # let secret = [7u8; 32];
//! let signer = TokenSigner::hmac(Algorithm::HS256, &secret)?;
//! let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, &secret)?)
//!     .accept_any_issuer().accept_any_audience().required_claims(["sub"])?.build()?;
//! let nested_duplicate = signer.sign_json(r#"{"sub":"a","org":{"id":1,"id":2}}"#)?;
//! assert_eq!(verifier.verify(&nested_duplicate).unwrap_err().kind(), ErrorKind::Malformed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// An object member name, borrowed from the input unless it contained escapes.
pub(crate) struct Key<'de>(pub(crate) Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A string value, borrowed when possible.
pub(crate) struct Str<'de>(pub(crate) Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Key::deserialize(deserializer).map(|key| Str(key.0))
    }
}

/// The message of the serde error raised for a duplicate member.
pub(crate) const DUPLICATE: &str = "duplicate member";

/// Any JSON value, discarded, with duplicate member names rejected at every depth.
pub(crate) struct StrictIgnore;

impl<'de> DeserializeSeed<'de> for StrictIgnore {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(StrictIgnoreVisitor)
    }
}

struct StrictIgnoreVisitor;

impl<'de> Visitor<'de> for StrictIgnoreVisitor {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(StrictIgnore)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: Vec<Cow<'de, str>> = Vec::new();
        while let Some(Key(name)) = map.next_key()? {
            if seen.contains(&name) {
                return Err(de::Error::custom(DUPLICATE));
            }
            seen.push(name);
            map.next_value_seed(StrictIgnore)?;
        }
        Ok(())
    }
}

/// Any JSON value as a [`serde_json::Value`], with duplicate member names rejected at every
/// depth (`serde_json::Value` itself keeps the last duplicate silently).
pub(crate) struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictValueVisitor)
    }
}

struct StrictValueVisitor;

impl<'de> Visitor<'de> for StrictValueVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON numbers parsed by serde_json are always finite.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(Key(name)) = map.next_key()? {
            let value = map.next_value_seed(StrictValue)?;
            if members.insert(name.into_owned(), value).is_some() {
                return Err(de::Error::custom(DUPLICATE));
            }
        }
        Ok(Value::Object(members))
    }
}

/// A whole JSON document into `T`, refusing duplicate member names at any depth, including
/// members `T` does not read (which a derived `Deserialize` would let through).
pub(crate) fn from_strict_slice<T: serde::de::DeserializeOwned>(
    json: &[u8],
) -> Result<T, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let value = StrictValue.deserialize(&mut de)?;
    de.end()?;
    serde_json::from_value(value)
}

/// A JSON array of strings.
pub(crate) struct StringArray;

impl<'de> DeserializeSeed<'de> for StringArray {
    type Value = Vec<String>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<String>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for StringArray {
    type Value = Vec<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element::<String>()? {
            items.push(item);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict_value(json: &str) -> Result<Value, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(json);
        let value = StrictValue.deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }

    fn strict_ignore(json: &str) -> Result<(), serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(json);
        StrictIgnore.deserialize(&mut de)?;
        de.end()
    }

    #[test]
    fn duplicates_are_rejected_at_every_depth() {
        for json in [
            r#"{"a":1,"a":1}"#,
            r#"{"a":{"b":1,"b":2}}"#,
            r#"[{"x":[{"y":1,"y":1}]}]"#,
            r#"{"a":1,"\u0061":2}"#,
        ] {
            assert!(strict_value(json).is_err(), "{json}");
            assert!(strict_ignore(json).is_err(), "{json}");
        }
    }

    #[test]
    fn ordinary_values_pass() {
        let json = r#"{"a":[1,-2,3.5,"s",true,null,{"b":{}}],"c":"\u00e9"}"#;
        assert_eq!(
            strict_value(json).unwrap(),
            serde_json::from_str::<Value>(json).unwrap()
        );
        assert!(strict_ignore(json).is_ok());
    }

    #[test]
    fn string_arrays_reject_other_types() {
        let parse =
            |json: &str| StringArray.deserialize(&mut serde_json::Deserializer::from_str(json));
        assert_eq!(parse(r#"["a","b"]"#).unwrap(), vec!["a", "b"]);
        assert!(parse(r#"["a",1]"#).is_err());
        assert!(parse(r#""a""#).is_err());
        assert!(parse("null").is_err());
    }
}
