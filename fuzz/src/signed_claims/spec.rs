//! The structures the fuzzer controls, decoded by `arbitrary`. All-zero input (or none at all)
//! decodes to a valid HS256 token for the access policy: every first variant and zero value is
//! the valid choice.

use super::*;

/// How a JSON document is written.
#[derive(Arbitrary, Clone, Copy, Debug, Default)]
pub struct Layout {
    /// How strings are escaped.
    pub escape: Escape,
    /// Member names written entirely as `\uXXXX` escapes.
    pub escape_names: bool,
    /// Whitespace between tokens.
    pub space: Space,
}

/// String escaping.
#[derive(Arbitrary, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Escape {
    /// Only what JSON requires (`"`, `\`, control characters as `\u00XX`).
    #[default]
    Minimal,
    /// Short escapes where they exist (`\n`, `\t`, `\/`, ...).
    Short,
    /// Every non-ASCII character as `\uXXXX` (surrogate pairs beyond the BMP).
    NonAscii,
    /// Every character as `\uXXXX`.
    All,
}

/// Whitespace between JSON tokens.
#[derive(Arbitrary, Clone, Copy, Debug, Default)]
pub enum Space {
    /// None.
    #[default]
    Compact,
    /// A space after `:` and `,`.
    Spaced,
    /// Newlines and tabs around members.
    Lines,
}

/// The JOSE header.
#[derive(Arbitrary, Debug, Default)]
pub struct HeaderSpec {
    /// `alg`.
    pub alg: AlgSpec,
    /// `kid`.
    pub kid: KidSpec,
    /// `typ`.
    pub typ: TypSpec,
    /// `crit`.
    pub crit: Option<CritSpec>,
    /// `b64` (RFC 7797).
    pub b64: Option<Json>,
    /// Other members (their names may collide with the ones above).
    pub extras: Vec<(NameSpec, Json)>,
    /// A member written twice.
    pub duplicate: Option<Duplicate>,
    /// Member order: a rotation, reversed when at least 128.
    pub order: u8,
}

/// `alg`.
#[derive(Arbitrary, Debug, Default)]
pub enum AlgSpec {
    /// The signing key's algorithm.
    #[default]
    Signer,
    /// A name from [`ALG_NAMES`].
    Named(u8),
    /// Any string.
    Any(String),
    /// No `alg`.
    Missing,
    /// Any JSON value.
    Json(Json),
}

pub(super) const ALG_NAMES: [&str; 13] = [
    "HS256", "RS256", "PS256", "ES256", "ES384", "EdDSA", "RS512", "none", "HS384", "hs256",
    "ES512", "EDDSA", "HS256 ",
];

/// `kid`.
#[derive(Arbitrary, Debug, Default)]
pub enum KidSpec {
    /// The signing key's kid.
    #[default]
    Signer,
    /// A kid from [`KID_NAMES`].
    Named(u8),
    /// Any string.
    Any(String),
    /// No `kid`.
    Missing,
    /// Any JSON value.
    Json(Json),
}

pub(super) const KID_NAMES: [&str; 11] = [
    "hs256",
    "rs256",
    "ps256",
    "es256",
    "es384",
    "eddsa",
    "rs512",
    "HS256",
    "",
    "../hs256",
    "hs256\u{0}",
];

/// `typ`.
#[derive(Arbitrary, Debug)]
pub enum TypSpec {
    /// A spelling of `at+jwt` from [`AT_JWT`].
    AtJwt(u8),
    /// No `typ`.
    Missing,
    /// A type from [`OTHER_TYPES`].
    Named(u8),
    /// Any string.
    Any(String),
    /// Any JSON value.
    Json(Json),
}

impl Default for TypSpec {
    fn default() -> Self {
        Self::AtJwt(0)
    }
}

pub(super) const AT_JWT: [&str; 5] = [
    "at+jwt",
    "AT+JWT",
    "application/at+jwt",
    "Application/At+Jwt",
    "APPLICATION/AT+jwt",
];
pub(super) const OTHER_TYPES: [&str; 9] = [
    "JWT",
    "jwt",
    "at+jwt ",
    "application/",
    "text/at+jwt",
    "application/jwt",
    "application/application/at+jwt",
    "at+jwt\u{0}",
    "\u{212a}at+jwt",
];

/// `crit`.
#[derive(Arbitrary, Debug)]
pub enum CritSpec {
    /// An array of names.
    Names(Vec<NameSpec>),
    /// Any JSON value.
    Json(Json),
}

/// A member name: from a pool of names that matter, or any string.
#[derive(Arbitrary, Debug)]
pub enum NameSpec {
    /// From [`NAMES`].
    Pool(u8),
    /// Any string.
    Any(String),
}

pub(super) const NAMES: [&str; 20] = [
    UNDERSTOOD_CRITICAL,
    "exp-ext",
    "jku",
    "jwk",
    "x5c",
    "cty",
    "b64",
    "alg",
    "kid",
    "typ",
    "crit",
    "sid",
    "client_id",
    "roles",
    "realm_access",
    "scope",
    "scp",
    "sub",
    "exp",
    "aud",
];

impl NameSpec {
    pub(super) fn name(&self) -> String {
        match self {
            Self::Pool(i) => pick(&NAMES, *i).to_owned(),
            Self::Any(name) => name.clone(),
        }
    }
}

/// A member written once more.
#[derive(Arbitrary, Debug)]
pub struct Duplicate {
    /// Which member (modulo the count).
    pub member: u8,
    /// Where the copy goes (modulo the count plus one).
    pub at: u8,
    /// The copy's name written with `\u` escapes.
    pub escape_name: bool,
    /// The copy's value; the same value when `None`.
    pub value: Option<Json>,
}

/// The claims.
#[derive(Arbitrary, Debug, Default)]
pub struct ClaimsSpec {
    /// `iss`.
    pub iss: Member<IssSpec>,
    /// `sub`.
    pub sub: Member<TextSpec>,
    /// `aud`.
    pub aud: Member<AudSpec>,
    /// `exp`.
    pub exp: Member<DateSpec>,
    /// `nbf`.
    pub nbf: Optional<DateSpec>,
    /// `iat`.
    pub iat: Member<DateSpec>,
    /// `jti`.
    pub jti: Member<TextSpec>,
    /// Top-level `roles`.
    pub roles: Optional<Vec<ItemSpec>>,
    /// `realm_access`, an object with `roles` (and other members).
    pub realm_access: Optional<RealmSpec>,
    /// `scope`.
    pub scope: Optional<ScopeSpec>,
    /// `scp`.
    pub scp: Optional<ScpSpec>,
    /// Other members (their names may collide with the ones above).
    pub extras: Vec<(NameSpec, Json)>,
    /// A member written twice.
    pub duplicate: Option<Duplicate>,
    /// Member order: a rotation, reversed when at least 128.
    pub order: u8,
}

/// A claim that is usually there: its typical value (mostly), absent, or any JSON value.
#[derive(Debug)]
pub enum Member<T> {
    /// A value of the claim's type (which may still be refused: an unknown issuer, a date
    /// long past).
    Typical(T),
    /// Not in the claims.
    Absent,
    /// Any JSON value, most likely of the wrong type.
    Json(Json),
}

impl<T: Default> Default for Member<T> {
    fn default() -> Self {
        Self::Typical(T::default())
    }
}

impl<'a, T: Arbitrary<'a>> Arbitrary<'a> for Member<T> {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u8::arbitrary(u)? {
            0..=207 => Self::Typical(T::arbitrary(u)?),
            208..=231 => Self::Absent,
            _ => Self::Json(Json::arbitrary(u)?),
        })
    }
}

/// A claim that is usually absent.
#[derive(Debug)]
pub enum Optional<T> {
    /// Not in the claims.
    Absent,
    /// A value of the claim's type.
    Typical(T),
    /// Any JSON value.
    Json(Json),
}

// By hand: a derived `Default` would require `T: Default`, which the specs need not be.
#[allow(clippy::derivable_impls)]
impl<T> Default for Optional<T> {
    fn default() -> Self {
        Self::Absent
    }
}

impl<'a, T: Arbitrary<'a>> Arbitrary<'a> for Optional<T> {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u8::arbitrary(u)? {
            0..=111 => Self::Absent,
            112..=223 => Self::Typical(T::arbitrary(u)?),
            _ => Self::Json(Json::arbitrary(u)?),
        })
    }
}

/// Text: from a pool of strings that matter (escapes, Unicode, control characters, the
/// accepted issuers and audiences), or any string.
#[derive(Arbitrary, Debug)]
pub enum TextSpec {
    /// From [`TEXTS`].
    Pool(u8),
    /// Any string.
    Any(String),
}

impl Default for TextSpec {
    fn default() -> Self {
        Self::Pool(0)
    }
}

pub(super) const TEXTS: [&str; 16] = [
    "user-1",
    "",
    "admin",
    "ünïcødé ✓",
    "😀 astral",
    "quote\" back\\slash /",
    "ctl\u{0}\u{1f}\n\t\r\u{8}\u{c}",
    "a b",
    "items:read",
    ISSUER,
    AUDIENCE,
    SECOND_AUDIENCE,
    OTHER_ISSUER,
    "\u{7f}\u{80}\u{ffff}\u{2028}",
    "https://issuer.fuzz/",
    "FUZZ",
];

impl TextSpec {
    pub(super) fn text(&self) -> String {
        match self {
            Self::Pool(i) => pick(&TEXTS, *i).to_owned(),
            Self::Any(text) => text.clone(),
        }
    }
}

/// `iss`.
#[derive(Arbitrary, Debug)]
pub enum IssSpec {
    /// [`ISSUER`] (false) or [`OTHER_ISSUER`] (true).
    Accepted(bool),
    /// Any text.
    Text(TextSpec),
}

impl Default for IssSpec {
    fn default() -> Self {
        Self::Accepted(false)
    }
}

/// `aud`.
#[derive(Arbitrary, Debug)]
pub enum AudSpec {
    /// One value (a string, usually).
    One(ItemSpec),
    /// An array.
    Many(Vec<ItemSpec>),
}

impl Default for AudSpec {
    fn default() -> Self {
        Self::One(ItemSpec::default())
    }
}

/// An audience or role: an accepted audience, text, or any JSON value.
#[derive(Arbitrary, Debug)]
pub enum ItemSpec {
    /// [`AUDIENCE`] (even) or [`SECOND_AUDIENCE`] (odd).
    Accepted(u8),
    /// Text.
    Text(TextSpec),
    /// Any JSON value.
    Json(Json),
}

impl Default for ItemSpec {
    fn default() -> Self {
        Self::Accepted(0)
    }
}

impl ItemSpec {
    pub(super) fn json(&self) -> Json {
        match self {
            Self::Accepted(i) => Json::Str(pick(&[AUDIENCE, SECOND_AUDIENCE], *i).to_owned()),
            Self::Text(text) => Json::Str(text.text()),
            Self::Json(json) => json.clone(),
        }
    }
}

/// `realm_access`: `{"roles": ..., other members}`.
#[derive(Arbitrary, Debug)]
pub struct RealmSpec {
    /// `roles` inside it.
    pub roles: Member<Vec<ItemSpec>>,
    /// Other members (names may be `roles` again).
    pub extras: Vec<(NameSpec, Json)>,
}

/// A NumericDate: `base + offset + frac/256` seconds, written in one of several forms.
#[derive(Arbitrary, Debug, Default)]
pub struct DateSpec {
    /// Where the offset counts from.
    pub base: DateBase,
    /// Seconds from the base.
    pub offset: i32,
    /// 1/256ths of a second (ignored by the integer form).
    pub frac: u8,
    /// How the number is written.
    pub form: NumForm,
    /// Written with a minus sign (the value negated).
    pub negate: bool,
}

/// The base of a [`DateSpec`].
#[derive(Arbitrary, Debug, Default, Clone, Copy)]
pub enum DateBase {
    /// [`NOW`].
    #[default]
    Now,
    /// The epoch.
    Zero,
    /// The latest accepted date.
    Max,
}

/// How a date is written.
#[derive(Arbitrary, Debug, Default, Clone, Copy)]
pub enum NumForm {
    /// An integer (the fraction dropped).
    #[default]
    Int,
    /// A decimal fraction with some trailing zeros.
    Decimal(u8),
    /// Exponent notation.
    Exponent {
        /// `E` rather than `e`.
        upper: bool,
        /// An explicit `+` on a non-negative exponent.
        plus: bool,
        /// An integer mantissa (`17500000005e-1`) rather than one digit before the point.
        integer_mantissa: bool,
    },
}

impl DateSpec {
    pub(super) fn json(&self) -> Json {
        let base = match self.base {
            DateBase::Now => i128::from(NOW) * UNITS,
            DateBase::Zero => 0,
            DateBase::Max => MAX_DATE * UNITS,
        };
        let frac = match self.form {
            NumForm::Int => 0,
            _ => i128::from(self.frac),
        };
        let mut units = base + i128::from(self.offset) * UNITS + frac;
        if self.negate {
            units = -units;
        }
        let text = match self.form {
            NumForm::Int => decimal(units, 0),
            NumForm::Decimal(zeros) => {
                let mut text = decimal(units, 1);
                text.push_str(&"0".repeat(usize::from(zeros % 4)));
                text
            }
            NumForm::Exponent {
                upper,
                plus,
                integer_mantissa,
            } => scientific(units, upper, plus, integer_mantissa),
        };
        // "-0" and the like are still zero.
        Json::Num(Num {
            text,
            value: NumVal::Units(units),
        })
    }
}

/// `units / 256` as an exact decimal, with at least `min_frac` fraction digits.
pub(super) fn decimal(units: i128, min_frac: usize) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let (whole, frac) = (units.abs() / UNITS, units.abs() % UNITS);
    // 1/256 = 0.00390625: eight decimal digits are exact.
    let digits = format!("{:08}", frac * 390_625);
    let digits = digits.trim_end_matches('0');
    let digits = if digits.len() < min_frac {
        format!("{digits:0<min_frac$}")
    } else {
        digits.to_owned()
    };
    if digits.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{digits}")
    }
}

/// `units / 256` exactly, in exponent notation.
pub(super) fn scientific(units: i128, upper: bool, plus: bool, integer_mantissa: bool) -> String {
    let sign = if units < 0 { "-" } else { "" };
    // value = mantissa * 10^exp, mantissa an integer without trailing zeros.
    let mut mantissa = units.abs() / UNITS * 100_000_000 + units.abs() % UNITS * 390_625;
    let mut exp: i32 = -8;
    if mantissa == 0 {
        exp = 0;
    }
    while mantissa != 0 && mantissa % 10 == 0 {
        mantissa /= 10;
        exp += 1;
    }
    let digits = mantissa.to_string();
    let (mantissa, exp) = if integer_mantissa {
        (digits, exp)
    } else {
        let (first, rest) = digits.split_at(1);
        let exp = exp + i32::try_from(rest.len()).expect("short");
        if rest.is_empty() {
            (first.to_owned(), exp)
        } else {
            (format!("{first}.{rest}"), exp)
        }
    };
    let e = if upper { 'E' } else { 'e' };
    let plus = if plus && exp >= 0 { "+" } else { "" };
    format!("{sign}{mantissa}{e}{plus}{exp}")
}

/// `scope`: tokens joined by spaces, with knobs for stray spaces.
#[derive(Arbitrary, Debug)]
pub struct ScopeSpec {
    /// The tokens.
    pub tokens: Vec<ScopeToken>,
    /// Bit 0: a leading space; bit 1: a trailing space; bit 2: double spaces between tokens.
    pub spaces: u8,
}

impl ScopeSpec {
    pub(super) fn text(&self) -> String {
        let sep = if self.spaces & 4 != 0 { "  " } else { " " };
        let tokens: Vec<String> = self.tokens.iter().map(ScopeToken::text).collect();
        let mut text = tokens.join(sep);
        if self.spaces & 1 != 0 {
            text.insert(0, ' ');
        }
        if self.spaces & 2 != 0 {
            text.push(' ');
        }
        text
    }
}

/// A scope token: from a pool, or any string (possibly outside the RFC 6749 grammar).
#[derive(Arbitrary, Debug)]
pub enum ScopeToken {
    /// From [`SCOPES`].
    Pool(u8),
    /// Any string.
    Any(String),
}

pub(super) const SCOPES: [&str; 8] = [
    "items:read",
    "items:write",
    "openid",
    "a",
    "!#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}~",
    "a\"b",
    "a\\b",
    "é",
];

impl ScopeToken {
    pub(super) fn text(&self) -> String {
        match self {
            Self::Pool(i) => pick(&SCOPES, *i).to_owned(),
            Self::Any(text) => text.clone(),
        }
    }
}

/// `scp`: an array of tokens, or a space-delimited string.
#[derive(Arbitrary, Debug)]
pub enum ScpSpec {
    /// An array (items may be any JSON value).
    List(Vec<ScpItem>),
    /// A space-delimited string.
    Delimited(ScopeSpec),
}

/// An item of a `scp` array.
#[derive(Arbitrary, Debug)]
pub enum ScpItem {
    /// A token.
    Token(ScopeToken),
    /// Any JSON value.
    Json(Json),
}
