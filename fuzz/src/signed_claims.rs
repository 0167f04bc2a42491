//! The `signed_claims` target: a JOSE header and a claims object generated as structures
//! (`arbitrary`), rendered to JSON with the knobs a hand-made token varies (member order,
//! duplicate members, escapes and Unicode in strings, number forms, wrongly typed registered
//! claims, `aud` string or array, nested `realm_access.roles`, `scope` or `scp`, `crit`, `typ`
//! spellings, extra members), signed correctly, and verified with a fixed clock.
//!
//! The point is the oracle: [`expected`] decides from the structure alone, by the rules of
//! DESIGN section 2 and the RFCs, what the verifier must answer: accepted, with exactly the
//! generated claims, or rejected with a given [`ErrorKind`] (and claim name). It shares no code
//! with the crate's parser or policy. Where the rules leave the choice open it allows a set of
//! kinds (a number beyond the f64 range inside a wrongly typed claim is `Malformed` or
//! `InvalidClaim`, depending on whether the JSON reader had to read it).
//!
//! Dates are exact: every generated NumericDate is a multiple of 1/256 s, so the oracle checks
//! time in integer units of 1/256 s while the crate uses f64, and any rounding in the crate
//! would show.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use arbitrary::{Arbitrary, Unstructured};
use serde_json::{Map, Value};
use tower_jwt_auth::{Algorithm, AuthError, Claims, ErrorKind, TokenSigner, Verifier};

use crate::harness::{AUDIENCE, HMAC_SECRET, ISSUER, NOW, OTHER_ISSUER, PRIVATE_PEMS, keys};

/// The second audience the access policy accepts.
pub const SECOND_AUDIENCE: &str = "fuzz-2";
/// The `crit` extension the access policy understands.
pub const UNDERSTOOD_CRITICAL: &str = "x-tenant";
/// NumericDate units per second in the oracle.
const UNITS: i128 = 256;
/// `NumericDate::MAX_SECS` (9999-12-31T23:59:59Z), the latest accepted date.
const MAX_DATE: i128 = 253_402_300_799;
/// The default maximum token length.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The key set of the harness as the oracle sees it: kid and algorithm name.
const KEY_TABLE: [(&str, &str); 7] = [
    ("hs256", "HS256"),
    ("rs256", "RS256"),
    ("ps256", "PS256"),
    ("es256", "ES256"),
    ("es384", "ES384"),
    ("eddsa", "EdDSA"),
    ("rs512", "RS512"),
];

// ---------------------------------------------------------------------------------------------
// The structures the fuzzer controls. All-zero input (or none at all) is a valid HS256 token
// for the access policy: every first variant and zero value is the valid choice.

/// One fuzz case.
#[derive(Arbitrary, Debug, Default)]
pub struct Case {
    /// Which verifier judges the token.
    pub policy: PolicyChoice,
    /// Which key signs it.
    pub signer: SignerChoice,
    /// The JOSE header.
    pub header: HeaderSpec,
    /// The claims.
    pub claims: ClaimsSpec,
    /// How the header is written.
    pub header_layout: Layout,
    /// How the claims are written.
    pub claims_layout: Layout,
}

/// The two verifiers.
#[derive(Arbitrary, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PolicyChoice {
    /// Issuers [`ISSUER`] and [`OTHER_ISSUER`], audiences [`AUDIENCE`] and [`SECOND_AUDIENCE`],
    /// leeway 60 s, `typ` `at+jwt` required, roles at `/realm_access/roles`, `crit`
    /// [`UNDERSTOOD_CRITICAL`] understood, default required claims, every key algorithm.
    #[default]
    Access,
    /// Issuer [`ISSUER`], audience [`AUDIENCE`], leeway 1.5 s, no `typ` rule, roles in `roles`,
    /// required claims `exp nbf sub`, algorithms HS256, ES256 and EdDSA only.
    Plain,
}

/// The signing key: HS256 mostly (fast), sometimes the fixed Ed25519 or P-256 key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SignerChoice {
    /// `hs256`.
    #[default]
    Hs256,
    /// `eddsa`.
    EdDsa,
    /// `es256`.
    Es256,
}

impl<'a> Arbitrary<'a> for SignerChoice {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u8::arbitrary(u)? {
            0..=239 => Self::Hs256,
            240..=247 => Self::EdDsa,
            _ => Self::Es256,
        })
    }
}

impl SignerChoice {
    fn kid(self) -> &'static str {
        match self {
            Self::Hs256 => "hs256",
            Self::EdDsa => "eddsa",
            Self::Es256 => "es256",
        }
    }

    fn alg_name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
        }
    }

    fn signer(self) -> &'static TokenSigner {
        static SIGNERS: OnceLock<[TokenSigner; 3]> = OnceLock::new();
        let signers = SIGNERS.get_or_init(|| {
            let pem = |alg| {
                let (_, pem) = PRIVATE_PEMS
                    .iter()
                    .find(|(a, _)| *a == alg)
                    .expect("harness key");
                TokenSigner::from_pem(alg, pem).expect("fixed key")
            };
            [
                TokenSigner::hmac(Algorithm::HS256, HMAC_SECRET).expect("fixed key"),
                pem(Algorithm::EdDSA),
                pem(Algorithm::ES256),
            ]
        });
        &signers[self as usize]
    }
}

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

const ALG_NAMES: [&str; 13] = [
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

const KID_NAMES: [&str; 11] = [
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

const AT_JWT: [&str; 5] = [
    "at+jwt",
    "AT+JWT",
    "application/at+jwt",
    "Application/At+Jwt",
    "APPLICATION/AT+jwt",
];
const OTHER_TYPES: [&str; 9] = [
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

const NAMES: [&str; 20] = [
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
    fn name(&self) -> String {
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

const TEXTS: [&str; 16] = [
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
    fn text(&self) -> String {
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
    fn json(&self) -> Json {
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
    fn json(&self) -> Json {
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
fn decimal(units: i128, min_frac: usize) -> String {
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
fn scientific(units: i128, upper: bool, plus: bool, integer_mantissa: bool) -> String {
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
    fn text(&self) -> String {
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

const SCOPES: [&str; 8] = [
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
    fn text(&self) -> String {
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

// ---------------------------------------------------------------------------------------------
// A JSON model: what the renderer writes and the oracle reads.

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
    text: String,
    value: NumVal,
}

/// The value of a [`Num`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum NumVal {
    /// Exactly this many 1/256 s.
    Units(i128),
    /// Finite but beyond every date and beyond `i128` units.
    Beyond,
    /// Beyond the f64 range: JSON readers that convert numbers refuse it.
    NotF64,
}

/// Number literals that matter, with their value.
const LITERALS: [(&str, NumVal); 14] = [
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
    fn generate(u: &mut Unstructured<'_>, depth: u8) -> arbitrary::Result<Self> {
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

    fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    fn string_array(&self) -> Option<Vec<String>> {
        match self {
            Self::Arr(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect(),
            _ => None,
        }
    }

    /// An object with a repeated member name, at any depth.
    fn has_duplicate(&self) -> bool {
        match self {
            Self::Arr(items) => items.iter().any(Self::has_duplicate),
            Self::Obj(members) => members.iter().enumerate().any(|(i, (name, value))| {
                members[..i].iter().any(|(other, _)| other == name) || value.has_duplicate()
            }),
            _ => false,
        }
    }

    /// A number beyond the f64 range, at any depth.
    fn has_not_f64(&self) -> bool {
        match self {
            Self::Num(n) => n.value == NumVal::NotF64,
            Self::Arr(items) => items.iter().any(Self::has_not_f64),
            Self::Obj(members) => members.iter().any(|(_, value)| value.has_not_f64()),
            _ => false,
        }
    }

    /// The value a plain JSON reader produces (numbers read by `serde_json` from their text;
    /// everything else built here).
    fn to_value(&self) -> Value {
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

fn pick<'s>(pool: &[&'s str], i: u8) -> &'s str {
    pool[usize::from(i) % pool.len()]
}

// ---------------------------------------------------------------------------------------------
// Rendering.

/// A member of a rendered object.
#[derive(Clone, Debug)]
struct Field {
    name: String,
    /// The name written with `\u` escapes whatever the layout says.
    escape_name: bool,
    value: Json,
}

fn field(name: &str, value: Json) -> Field {
    Field {
        name: name.to_owned(),
        escape_name: false,
        value,
    }
}

/// Puts the fields in the order the knobs say and adds the duplicate.
fn arrange(mut fields: Vec<Field>, order: u8, duplicate: Option<&Duplicate>) -> Vec<Field> {
    if !fields.is_empty() {
        let len = fields.len();
        fields.rotate_left(usize::from(order) % len);
        if order >= 128 {
            fields.reverse();
        }
    }
    if let Some(dup) = duplicate
        && !fields.is_empty()
    {
        let original = &fields[usize::from(dup.member) % fields.len()];
        let copy = Field {
            name: original.name.clone(),
            escape_name: dup.escape_name,
            value: dup.value.clone().unwrap_or_else(|| original.value.clone()),
        };
        let at = usize::from(dup.at) % (fields.len() + 1);
        fields.insert(at, copy);
    }
    fields
}

fn render(fields: &[Field], layout: Layout) -> String {
    let mut out = String::new();
    out.push('{');
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match layout.space {
            Space::Compact => {}
            Space::Spaced if i > 0 => out.push(' '),
            Space::Spaced => {}
            Space::Lines => out.push_str("\n\t"),
        }
        let name_escape = if f.escape_name || layout.escape_names {
            Escape::All
        } else {
            Escape::Minimal
        };
        write_str(&mut out, &f.name, name_escape);
        out.push(':');
        if !matches!(layout.space, Space::Compact) {
            out.push(' ');
        }
        write_value(&mut out, &f.value, layout);
    }
    if matches!(layout.space, Space::Lines) {
        out.push_str("\r\n");
    }
    out.push('}');
    out
}

fn write_value(out: &mut String, value: &Json, layout: Layout) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Num(n) => out.push_str(&n.text),
        Json::Str(s) => write_str(out, s, layout.escape),
        Json::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    if !matches!(layout.space, Space::Compact) {
                        out.push(' ');
                    }
                }
                write_value(out, item, layout);
            }
            out.push(']');
        }
        Json::Obj(members) => {
            let fields: Vec<Field> = members
                .iter()
                .map(|(name, value)| field(name, value.clone()))
                .collect();
            out.push_str(&render(&fields, layout));
        }
    }
}

fn write_str(out: &mut String, s: &str, escape: Escape) {
    out.push('"');
    for c in s.chars() {
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' if escape == Escape::Short => Some("\\n"),
            '\t' if escape == Escape::Short => Some("\\t"),
            '\r' if escape == Escape::Short => Some("\\r"),
            '\u{8}' if escape == Escape::Short => Some("\\b"),
            '\u{c}' if escape == Escape::Short => Some("\\f"),
            '/' if escape == Escape::Short => Some("\\/"),
            _ => None,
        };
        if let Some(short) = short
            && escape != Escape::All
        {
            out.push_str(short);
        } else if c < ' ' || escape == Escape::All || (escape == Escape::NonAscii && !c.is_ascii())
        {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04X}");
            }
        } else {
            out.push(c);
        }
    }
    out.push('"');
}

impl HeaderSpec {
    fn fields(&self, signer: SignerChoice) -> Vec<Field> {
        let mut fields = Vec::new();
        let alg = match &self.alg {
            AlgSpec::Signer => Some(Json::Str(signer.alg_name().to_owned())),
            AlgSpec::Named(i) => Some(Json::Str(pick(&ALG_NAMES, *i).to_owned())),
            AlgSpec::Any(s) => Some(Json::Str(s.clone())),
            AlgSpec::Missing => None,
            AlgSpec::Json(j) => Some(j.clone()),
        };
        fields.extend(alg.map(|v| field("alg", v)));
        let kid = match &self.kid {
            KidSpec::Signer => Some(Json::Str(signer.kid().to_owned())),
            KidSpec::Named(i) => Some(Json::Str(pick(&KID_NAMES, *i).to_owned())),
            KidSpec::Any(s) => Some(Json::Str(s.clone())),
            KidSpec::Missing => None,
            KidSpec::Json(j) => Some(j.clone()),
        };
        fields.extend(kid.map(|v| field("kid", v)));
        let typ = match &self.typ {
            TypSpec::AtJwt(i) => Some(Json::Str(pick(&AT_JWT, *i).to_owned())),
            TypSpec::Missing => None,
            TypSpec::Named(i) => Some(Json::Str(pick(&OTHER_TYPES, *i).to_owned())),
            TypSpec::Any(s) => Some(Json::Str(s.clone())),
            TypSpec::Json(j) => Some(j.clone()),
        };
        fields.extend(typ.map(|v| field("typ", v)));
        if let Some(crit) = &self.crit {
            let value = match crit {
                CritSpec::Names(names) => {
                    Json::Arr(names.iter().map(|n| Json::Str(n.name())).collect())
                }
                CritSpec::Json(j) => j.clone(),
            };
            fields.push(field("crit", value));
        }
        if let Some(b64) = &self.b64 {
            fields.push(field("b64", b64.clone()));
        }
        for (name, value) in &self.extras {
            fields.push(field(&name.name(), value.clone()));
        }
        arrange(fields, self.order, self.duplicate.as_ref())
    }
}

impl ClaimsSpec {
    fn fields(&self) -> Vec<Field> {
        fn member<T>(fields: &mut Vec<Field>, name: &str, m: &Member<T>, f: impl Fn(&T) -> Json) {
            match m {
                Member::Typical(t) => fields.push(field(name, f(t))),
                Member::Absent => {}
                Member::Json(j) => fields.push(field(name, j.clone())),
            }
        }
        fn optional<T>(
            fields: &mut Vec<Field>,
            name: &str,
            m: &Optional<T>,
            f: impl Fn(&T) -> Json,
        ) {
            match m {
                Optional::Absent => {}
                Optional::Typical(t) => fields.push(field(name, f(t))),
                Optional::Json(j) => fields.push(field(name, j.clone())),
            }
        }
        let items = |items: &Vec<ItemSpec>| Json::Arr(items.iter().map(ItemSpec::json).collect());
        let mut fields = Vec::new();
        member(&mut fields, "iss", &self.iss, |iss| match iss {
            IssSpec::Accepted(other) => {
                Json::Str(if *other { OTHER_ISSUER } else { ISSUER }.to_owned())
            }
            IssSpec::Text(text) => Json::Str(text.text()),
        });
        member(&mut fields, "sub", &self.sub, |t| Json::Str(t.text()));
        member(&mut fields, "aud", &self.aud, |aud| match aud {
            AudSpec::One(item) => item.json(),
            AudSpec::Many(list) => items(list),
        });
        member(&mut fields, "exp", &self.exp, DateSpec::json);
        optional(&mut fields, "nbf", &self.nbf, DateSpec::json);
        member(&mut fields, "iat", &self.iat, DateSpec::json);
        member(&mut fields, "jti", &self.jti, |t| Json::Str(t.text()));
        optional(&mut fields, "roles", &self.roles, items);
        optional(&mut fields, "realm_access", &self.realm_access, |realm| {
            let mut members = Vec::new();
            match &realm.roles {
                Member::Typical(list) => members.push(("roles".to_owned(), items(list))),
                Member::Absent => {}
                Member::Json(j) => members.push(("roles".to_owned(), j.clone())),
            }
            for (name, value) in &realm.extras {
                members.push((name.name(), value.clone()));
            }
            Json::Obj(members)
        });
        optional(&mut fields, "scope", &self.scope, |s| Json::Str(s.text()));
        optional(&mut fields, "scp", &self.scp, |scp| match scp {
            ScpSpec::List(list) => Json::Arr(
                list.iter()
                    .map(|item| match item {
                        ScpItem::Token(t) => Json::Str(t.text()),
                        ScpItem::Json(j) => j.clone(),
                    })
                    .collect(),
            ),
            ScpSpec::Delimited(s) => Json::Str(s.text()),
        });
        for (name, value) in &self.extras {
            fields.push(field(&name.name(), value.clone()));
        }
        arrange(fields, self.order, self.duplicate.as_ref())
    }
}

// ---------------------------------------------------------------------------------------------
// The policies, as configured and as the oracle knows them.

struct Model {
    algorithms: &'static [&'static str],
    typ_required: bool,
    understood: &'static [&'static str],
    issuers: &'static [&'static str],
    audiences: &'static [&'static str],
    leeway_units: i128,
    /// In the order the verifier reports a missing one (DESIGN section 2 lists them so; `nbf`
    /// sits after `exp`).
    required: &'static [&'static str],
    nested_roles: bool,
}

const ACCESS: Model = Model {
    algorithms: &[
        "HS256", "RS256", "PS256", "ES256", "ES384", "EdDSA", "RS512",
    ],
    typ_required: true,
    understood: &[UNDERSTOOD_CRITICAL],
    issuers: &[ISSUER, OTHER_ISSUER],
    audiences: &[AUDIENCE, SECOND_AUDIENCE],
    leeway_units: 60 * UNITS,
    required: &["exp", "iat", "sub", "iss", "aud", "jti"],
    nested_roles: true,
};

const PLAIN: Model = Model {
    algorithms: &["HS256", "ES256", "EdDSA"],
    typ_required: false,
    understood: &[],
    issuers: &[ISSUER],
    audiences: &[AUDIENCE],
    leeway_units: 3 * UNITS / 2,
    required: &["exp", "nbf", "sub"],
    nested_roles: false,
};

impl PolicyChoice {
    fn model(self) -> &'static Model {
        match self {
            Self::Access => &ACCESS,
            Self::Plain => &PLAIN,
        }
    }

    /// The verifier, configured as [`PolicyChoice::model`] describes.
    pub fn verifier(self) -> &'static Verifier {
        static ACCESS_VERIFIER: OnceLock<Verifier> = OnceLock::new();
        static PLAIN_VERIFIER: OnceLock<Verifier> = OnceLock::new();
        let clock = || UNIX_EPOCH + Duration::from_secs(NOW);
        match self {
            Self::Access => ACCESS_VERIFIER.get_or_init(|| {
                Verifier::builder(keys().clone())
                    .issuer(ISSUER)
                    .issuer(OTHER_ISSUER)
                    .audience(AUDIENCE)
                    .audience(SECOND_AUDIENCE)
                    .leeway(Duration::from_secs(60))
                    .require_type("at+jwt")
                    .and_then(|b| b.roles_claim("/realm_access/roles"))
                    .and_then(|b| b.understood_critical(UNDERSTOOD_CRITICAL))
                    .expect("fixed settings")
                    .clock(clock)
                    .build()
                    .expect("fixed verifier")
            }),
            Self::Plain => PLAIN_VERIFIER.get_or_init(|| {
                Verifier::builder(keys().clone())
                    .issuer(ISSUER)
                    .audience(AUDIENCE)
                    .leeway(Duration::from_millis(1500))
                    .required_claims(["exp", "sub", "nbf"])
                    .and_then(|b| {
                        b.algorithms([Algorithm::HS256, Algorithm::ES256, Algorithm::EdDSA])
                    })
                    .expect("fixed settings")
                    .clock(clock)
                    .build()
                    .expect("fixed verifier")
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The oracle.

/// What the verifier must answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Expected {
    /// Accepted, with these claims.
    Accepted(Box<ExpectedClaims>),
    /// Rejected with one of these (kind, claim) pairs; usually exactly one.
    Rejected(Vec<(ErrorKind, Option<&'static str>)>),
}

/// The claims an accepted token must yield.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ExpectedClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Vec<String>,
    exp: Option<i128>,
    nbf: Option<i128>,
    iat: Option<i128>,
    jti: Option<String>,
    roles: Vec<String>,
    scopes: Vec<String>,
    extra: Map<String, Value>,
}

impl Expected {
    fn one(kind: ErrorKind) -> Self {
        Self::Rejected(vec![(kind, None)])
    }

    fn claim(kind: ErrorKind, claim: &'static str) -> Self {
        Self::Rejected(vec![(kind, Some(claim))])
    }

    /// A short name for the outcome (`accepted`, or the kind's name).
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Self::Accepted(_) => "accepted".to_owned(),
            Self::Rejected(kinds) => format!("{:?}", kinds[0].0).to_ascii_lowercase(),
        }
    }
}

/// The token a case renders to, and what the verifier must answer for it.
#[derive(Debug)]
pub struct Rendered {
    /// The header JSON.
    pub header: String,
    /// The claims JSON.
    pub payload: String,
    /// The signed compact token.
    pub token: String,
    /// The oracle's verdict.
    pub expected: Expected,
}

impl Case {
    /// Renders, signs and judges this case.
    ///
    /// # Panics
    ///
    /// When the fixed signing keys fail.
    #[must_use]
    pub fn render(&self) -> Rendered {
        let header_fields = self.header.fields(self.signer);
        let claim_fields = self.claims.fields();
        let header = render(&header_fields, self.header_layout);
        let payload = render(&claim_fields, self.claims_layout);
        let token = self
            .signer
            .signer()
            .sign_raw(header.as_bytes(), payload.as_bytes())
            .expect("signing with a fixed key");
        let model = self.policy.model();
        let expected = if token.len() > MAX_TOKEN_LEN {
            Expected::one(ErrorKind::TooLong)
        } else {
            match header_verdict(&header_fields, model, self.signer) {
                Some(rejected) => rejected,
                None => claims_verdict(&claim_fields, model),
            }
        };
        Rendered {
            header,
            payload,
            token,
            expected,
        }
    }
}

/// Step 3 and 4 from the structure: `None` when the header passes and the signature verifies.
fn header_verdict(fields: &[Field], model: &Model, signer: SignerChoice) -> Option<Expected> {
    let malformed = Some(Expected::one(ErrorKind::Malformed));
    // A JSON object without duplicate members at any depth, `alg`, `kid`, `typ` strings,
    // `crit` an array of strings, `b64` a boolean.
    let (mut alg, mut kid, mut typ, mut crit, mut b64) = (None, None, None, None, None);
    let mut others: Vec<&str> = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if f.value.has_duplicate()
            || f.value.has_not_f64()
            || fields[..i].iter().any(|o| o.name == f.name)
        {
            return malformed;
        }
        match f.name.as_str() {
            "alg" => alg = Some(f.value.as_str().map(str::to_owned)),
            "kid" => kid = Some(f.value.as_str().map(str::to_owned)),
            "typ" => typ = Some(f.value.as_str().map(str::to_owned)),
            "crit" => crit = Some(f.value.string_array()),
            "b64" => {
                b64 = Some(match f.value {
                    Json::Bool(b) => Some(b),
                    _ => None,
                });
            }
            name => others.push(name),
        }
    }
    let Some(Some(alg)) = alg else {
        return malformed;
    };
    let kid = match kid {
        Some(None) => return malformed,
        Some(Some(kid)) => Some(kid),
        None => None,
    };
    let typ = match typ {
        Some(None) => return malformed,
        Some(Some(typ)) => Some(typ),
        None => None,
    };
    let crit = match crit {
        Some(None) => return malformed,
        Some(Some(crit)) => Some(crit),
        None => None,
    };
    let b64 = match b64 {
        Some(None) => return malformed,
        Some(Some(b64)) => Some(b64),
        None => None,
    };
    // `alg` on the allow-list, case-sensitively (RFC 7515 section 4.1.1).
    if !model.algorithms.contains(&alg.as_str()) {
        return Some(Expected::one(ErrorKind::Algorithm));
    }
    // The key by `kid`: every key of the set has one, so no `kid` selects nothing.
    let Some((key_kid, key_alg)) = kid
        .as_deref()
        .and_then(|kid| KEY_TABLE.iter().find(|(k, _)| *k == kid))
    else {
        return Some(Expected::one(ErrorKind::UnknownKey));
    };
    if *key_alg != alg {
        return Some(Expected::one(ErrorKind::Algorithm));
    }
    // RFC 7797 unencoded payloads are refused; `crit` must be non-empty, understood, name
    // members that are present (and not registered ones), without repeats.
    let unsupported = Some(Expected::one(ErrorKind::UnsupportedCritical));
    if b64 == Some(false) {
        return unsupported;
    }
    if let Some(crit) = crit {
        if crit.is_empty() {
            return unsupported;
        }
        for (i, name) in crit.iter().enumerate() {
            if !model.understood.contains(&name.as_str())
                || !others.contains(&name.as_str())
                || crit[..i].contains(name)
            {
                return unsupported;
            }
        }
    }
    // `typ`: a media type, ASCII case-insensitive, `application/` optional (RFC 7515 4.1.9).
    if model.typ_required {
        let matches = typ.is_some_and(|typ| {
            let lower = typ.to_ascii_lowercase();
            let bare = lower.strip_prefix("application/").unwrap_or(&lower);
            bare == "at+jwt"
        });
        if !matches {
            return Some(Expected::one(ErrorKind::WrongType));
        }
    }
    // The signature verifies only with the key that made it.
    if *key_kid != signer.kid() {
        return Some(Expected::one(ErrorKind::InvalidSignature));
    }
    None
}

/// RFC 6749 section 3.3 scope-token characters.
fn scope_char(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e)
}

fn delimited_scopes(s: &str) -> Option<Vec<String>> {
    s.bytes().all(|b| b == b' ' || scope_char(b)).then(|| {
        s.split(' ')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

fn listed_scopes(value: &Json) -> Option<Vec<String>> {
    match value {
        Json::Str(s) => delimited_scopes(s),
        Json::Arr(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .filter(|t| !t.is_empty() && t.bytes().all(scope_char))
                    .map(str::to_owned)
            })
            .collect(),
        _ => None,
    }
}

/// A NumericDate in units: a number in `0 ..= MAX_DATE` seconds.
fn date(value: &Json) -> Option<i128> {
    match value {
        Json::Num(Num {
            value: NumVal::Units(units),
            ..
        }) => Some(*units).filter(|u| (0..=MAX_DATE * UNITS).contains(u)),
        _ => None,
    }
}

/// Step 5 from the structure.
fn claims_verdict(fields: &[Field], model: &Model) -> Expected {
    let mut claims = ExpectedClaims::default();
    let (mut scope, mut scp) = (None, None);
    let mut present: Vec<&str> = Vec::new();
    // One pass in member order: the first member of the wrong type or repeated decides.
    for (i, f) in fields.iter().enumerate() {
        let name = f.name.as_str();
        let value = &f.value;
        let wrong = |claim: &'static str| {
            // Reporting the wrong type can mean reading a number the reader cannot hold.
            let mut allowed = vec![(ErrorKind::InvalidClaim, Some(claim))];
            if value.has_not_f64() {
                allowed.push((ErrorKind::Malformed, None));
            }
            Expected::Rejected(allowed)
        };
        match name {
            "iss" | "sub" | "jti" => {
                let Some(text) = value.as_str() else {
                    return wrong(registered(name));
                };
                let slot = match name {
                    "iss" => &mut claims.iss,
                    "sub" => &mut claims.sub,
                    _ => &mut claims.jti,
                };
                *slot = Some(text.to_owned());
            }
            "aud" => match value {
                Json::Str(s) => claims.aud = vec![s.clone()],
                _ => match value.string_array() {
                    Some(list) => claims.aud = list,
                    None => return wrong("aud"),
                },
            },
            "exp" | "nbf" | "iat" => {
                let Some(units) = date(value) else {
                    return Expected::claim(ErrorKind::InvalidClaim, registered(name));
                };
                let slot = match name {
                    "exp" => &mut claims.exp,
                    "nbf" => &mut claims.nbf,
                    _ => &mut claims.iat,
                };
                *slot = Some(units);
            }
            "roles" if !model.nested_roles => match value.string_array() {
                Some(roles) => claims.roles = roles,
                None => return wrong("roles"),
            },
            "scope" => match value.as_str().and_then(delimited_scopes) {
                Some(scopes) => scope = Some(scopes),
                None => return wrong("scope"),
            },
            "scp" => match listed_scopes(value) {
                Some(scopes) => scp = Some(scopes),
                None => return wrong("scp"),
            },
            _ => {
                if value.has_duplicate() || value.has_not_f64() {
                    return Expected::one(ErrorKind::Malformed);
                }
                claims.extra.insert(name.to_owned(), value.to_value());
            }
        }
        if fields[..i].iter().any(|o| o.name == f.name) {
            return Expected::one(ErrorKind::Malformed);
        }
        present.push(name);
    }
    // Two scope claims that could disagree.
    claims.scopes = match (scope, scp) {
        (Some(_), Some(_)) => return Expected::claim(ErrorKind::InvalidClaim, "scope"),
        (Some(s), None) | (None, Some(s)) => s,
        (None, None) => Vec::new(),
    };
    // Roles at `/realm_access/roles`: an array of strings when there.
    if model.nested_roles
        && let Some(Json::Obj(members)) = fields
            .iter()
            .find(|f| f.name == "realm_access")
            .map(|f| &f.value)
        && let Some((_, roles)) = members.iter().find(|(name, _)| name == "roles")
    {
        match roles.string_array() {
            Some(roles) => claims.roles = roles,
            None => return Expected::claim(ErrorKind::InvalidClaim, "roles"),
        }
    }
    if let Some(missing) = model.required.iter().find(|r| !present.contains(r)) {
        return Expected::claim(ErrorKind::MissingClaim, registered(missing));
    }
    let now = i128::from(NOW) * UNITS;
    let leeway = model.leeway_units;
    // RFC 7519: the current time must be before `exp` and not before `nbf` (with leeway).
    if claims.exp.is_some_and(|exp| now >= exp + leeway) {
        return Expected::claim(ErrorKind::Expired, "exp");
    }
    if claims.nbf.is_some_and(|nbf| now < nbf - leeway) {
        return Expected::claim(ErrorKind::NotYetValid, "nbf");
    }
    if claims.iat.is_some_and(|iat| iat > now + leeway) {
        return Expected::claim(ErrorKind::IssuedInFuture, "iat");
    }
    if !claims
        .iss
        .as_deref()
        .is_some_and(|iss| model.issuers.contains(&iss))
    {
        return Expected::claim(ErrorKind::WrongIssuer, "iss");
    }
    if !claims
        .aud
        .iter()
        .any(|aud| model.audiences.contains(&aud.as_str()))
    {
        return Expected::claim(ErrorKind::WrongAudience, "aud");
    }
    Expected::Accepted(Box::new(claims))
}

/// The `'static` name of a registered claim.
fn registered(name: &str) -> &'static str {
    ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"]
        .into_iter()
        .find(|r| *r == name)
        .expect("a registered claim")
}

fn observed(claims: &Claims) -> ExpectedClaims {
    let units = |date: Option<tower_jwt_auth::NumericDate>| {
        date.map(|d| {
            let scaled = d.as_secs_f64() * 256.0;
            assert!(
                scaled.fract() == 0.0,
                "a date that is not a 1/256 s multiple"
            );
            // Exact: dates are below 2^38 s.
            scaled as i128
        })
    };
    ExpectedClaims {
        iss: claims.issuer().map(str::to_owned),
        sub: claims.subject().map(str::to_owned),
        aud: claims.audience().to_vec(),
        exp: units(claims.expires_at()),
        nbf: units(claims.not_before()),
        iat: units(claims.issued_at()),
        jti: claims.jwt_id().map(str::to_owned),
        roles: claims.roles().to_vec(),
        scopes: claims.scopes().iter().map(str::to_owned).collect(),
        extra: claims.extra().clone(),
    }
}

/// Checks the verifier's answer against the oracle's.
///
/// # Panics
///
/// When they disagree (a bug in the crate or in the oracle), or when verifying the same token
/// twice (the second time through the header memo) answers differently.
pub fn check(case: &Case) -> Rendered {
    let rendered = case.render();
    let verifier = case.policy.verifier();
    let got = verifier.verify(&rendered.token);
    let context = || {
        format!(
            "policy {:?}, signer {:?}\nheader  {}\npayload {}\nexpected {:?}\ngot {:?}",
            case.policy, case.signer, rendered.header, rendered.payload, rendered.expected, got
        )
    };
    match (&rendered.expected, &got) {
        (Expected::Accepted(want), Ok(claims)) => {
            assert_eq!(**want, observed(claims), "{}", context());
            let scopes = claims.scopes().iter().collect::<Vec<_>>().join(" ");
            assert_eq!(claims.scopes().as_str(), scopes, "{}", context());
        }
        (Expected::Rejected(allowed), Err(err)) => assert!(
            allowed.contains(&(err.kind(), err.claim())),
            "{}",
            context()
        ),
        _ => panic!("verdicts differ\n{}", context()),
    }
    let again: Result<Claims, AuthError> = verifier.verify(&rendered.token);
    assert_eq!(again, got, "a second verification differs\n{}", context());
    rendered
}

/// Bytes → a [`Case`] → [`check`].
pub fn signed_claims(data: &[u8]) {
    if let Some(case) = case(data) {
        check(&case);
    }
}

/// The case these bytes decode to (for the seed generator and the corpus test).
#[must_use]
pub fn case(data: &[u8]) -> Option<Case> {
    Case::arbitrary_take_rest(Unstructured::new(data)).ok()
}
