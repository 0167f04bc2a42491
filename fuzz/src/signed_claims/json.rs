//! A JSON model: what the renderer writes and the oracle reads. Objects keep duplicate names
//! and member order; numbers keep their text and their exact value.

use super::*;

/// A JSON value as generated: objects keep duplicate names and member order, numbers keep
/// their text.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Num(Num),
    /// A string (decoded).
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, in member order, duplicates kept.
    Obj(Vec<(String, Json)>),
}

/// A number: its text and its value as far as the oracle needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Num {
    pub(super) text: String,
    pub(super) value: NumVal,
}

/// The value of a [`Num`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum NumVal {
    /// Exactly this many 1/256 s.
    Units(i128),
    /// Finite but beyond every date and beyond `i128` units.
    Beyond,
    /// Beyond the f64 range: JSON readers that convert numbers refuse it.
    NotF64,
}

/// Number literals that matter, with their value.
pub(super) const LITERALS: [(&str, NumVal); 14] = [
    ("0", NumVal::Units(0)),
    ("-0", NumVal::Units(0)),
    ("-0.0e7", NumVal::Units(0)),
    // Underflows to 0.0: as a date it is the epoch.
    ("1e-400", NumVal::Units(0)),
    ("253402300799", NumVal::Units(MAX_DATE * UNITS)),
    ("253402300799.00390625", NumVal::Units(MAX_DATE * UNITS + 1)),
    ("253402300800", NumVal::Units((MAX_DATE + 1) * UNITS)),
    ("1e300", NumVal::Beyond),
    ("1e400", NumVal::NotF64),
    ("-1e400", NumVal::NotF64),
    (
        "18446744073709551615",
        NumVal::Units(18_446_744_073_709_551_615 * UNITS),
    ),
    (
        "18446744073709551616",
        NumVal::Units(18_446_744_073_709_551_616 * UNITS),
    ),
    (
        "1000000000000000000000000000000000000000000",
        NumVal::Beyond,
    ),
    ("1.75E+9", NumVal::Units(1_750_000_000 * UNITS)),
];

impl<'a> Arbitrary<'a> for Num {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.int_in_range(0..=3u8)? {
            0 => {
                let n = i64::arbitrary(u)?;
                Self {
                    text: n.to_string(),
                    value: NumVal::Units(i128::from(n) * UNITS),
                }
            }
            1 => {
                let (whole, quarters) = (i32::arbitrary(u)?, u8::arbitrary(u)? % 4);
                let units = i128::from(whole) * UNITS
                    + i128::from(quarters) * UNITS / 4 * i128::from(whole.signum() | 1);
                Self {
                    text: decimal(units, 1),
                    value: NumVal::Units(units),
                }
            }
            2 => {
                let (mantissa, exp, upper) = (
                    i16::arbitrary(u)?,
                    u8::arbitrary(u)? % 25,
                    bool::arbitrary(u)?,
                );
                let e = if upper { "E+" } else { "e" };
                Self {
                    text: format!("{mantissa}{e}{exp}"),
                    value: NumVal::Units(i128::from(mantissa) * 10i128.pow(exp.into()) * UNITS),
                }
            }
            _ => {
                let (text, value) = LITERALS[usize::from(u8::arbitrary(u)?) % LITERALS.len()];
                Self {
                    text: text.to_owned(),
                    value,
                }
            }
        })
    }
}

impl<'a> Arbitrary<'a> for Json {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Self::generate(u, 3)
    }
}

impl Json {
    pub(super) fn generate(u: &mut Unstructured<'_>, depth: u8) -> arbitrary::Result<Self> {
        let last = if depth == 0 { 4 } else { 6 };
        Ok(match u.int_in_range(0..=last)? {
            0 => Self::Str(TextSpec::arbitrary(u)?.text()),
            1 => Self::Num(Num::arbitrary(u)?),
            2 => Self::Bool(bool::arbitrary(u)?),
            3 => Self::Null,
            4 => Self::Str(ScopeToken::arbitrary(u)?.text()),
            5 => {
                let mut items = Vec::new();
                while items.len() < 4 && bool::arbitrary(u)? {
                    items.push(Self::generate(u, depth - 1)?);
                }
                Self::Arr(items)
            }
            _ => {
                let mut members = Vec::new();
                while members.len() < 4 && bool::arbitrary(u)? {
                    // A small name pool, so nested duplicates happen.
                    let name = match u8::arbitrary(u)? % 4 {
                        0 => "roles".to_owned(),
                        1 => "a".to_owned(),
                        2 => "b".to_owned(),
                        _ => NameSpec::arbitrary(u)?.name(),
                    };
                    members.push((name, Self::generate(u, depth - 1)?));
                }
                Self::Obj(members)
            }
        })
    }

    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn string_array(&self) -> Option<Vec<String>> {
        match self {
            Self::Arr(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect(),
            _ => None,
        }
    }

    /// An object with a repeated member name, at any depth.
    pub(super) fn has_duplicate(&self) -> bool {
        match self {
            Self::Arr(items) => items.iter().any(Self::has_duplicate),
            Self::Obj(members) => members.iter().enumerate().any(|(i, (name, value))| {
                members[..i].iter().any(|(other, _)| other == name) || value.has_duplicate()
            }),
            _ => false,
        }
    }

    /// A number beyond the f64 range, at any depth.
    pub(super) fn has_not_f64(&self) -> bool {
        match self {
            Self::Num(n) => n.value == NumVal::NotF64,
            Self::Arr(items) => items.iter().any(Self::has_not_f64),
            Self::Obj(members) => members.iter().any(|(_, value)| value.has_not_f64()),
            _ => false,
        }
    }

    /// The value a plain JSON reader produces (numbers read by `serde_json` from their text;
    /// everything else built here).
    pub(super) fn to_value(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Num(n) => serde_json::from_str(&n.text).expect("a number the reader takes"),
            Self::Str(s) => Value::String(s.clone()),
            Self::Arr(items) => Value::Array(items.iter().map(Self::to_value).collect()),
            Self::Obj(members) => Value::Object(
                members
                    .iter()
                    .map(|(name, value)| (name.clone(), value.to_value()))
                    .collect(),
            ),
        }
    }
}

pub(super) fn pick<'s>(pool: &[&'s str], i: u8) -> &'s str {
    pool[usize::from(i) % pool.len()]
}
