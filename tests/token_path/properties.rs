//! Property tests of the token path: random claims round-trip under every algorithm, every
//! single-byte change to a valid token is rejected, arbitrary input never panics and is judged
//! by the rules, and arbitrary JWKS documents never panic the key loader.
//!
//! Signing and verifying in a debug build is slow for RSA (and, with the `rust-crypto` backend,
//! for everything), so the case counts are set per test and lower on the `rust-crypto` backend;
//! the exhaustive mutation tests use short claims to keep the number of positions down.

use crate::common;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Map, Value, json};
use tower_jwt_auth::{
    Algorithm, DEFAULT_MAX_TOKEN_LEN, ErrorKind, KeySet, NumericDate, TokenSigner, Verifier,
    crypto_backend,
};

// ---------------------------------------------------------------------------------------------
// Shared fixtures, built once per test binary.

const NOW: f64 = common::NOW as f64;
const LEEWAY: f64 = 30.0;

/// Claim names the verifier reads itself (default mapping); everything else is `extra`.
const RESERVED: [&str; 10] = [
    "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "roles", "scope", "scp",
];

fn signers() -> &'static [TokenSigner] {
    static SIGNERS: OnceLock<Vec<TokenSigner>> = OnceLock::new();
    SIGNERS.get_or_init(|| Algorithm::ALL.into_iter().map(common::signer).collect())
}

/// The signer of [`common::signer`], built once (an RSA signer probes its key by signing).
fn signer(alg: Algorithm) -> &'static TokenSigner {
    let index = Algorithm::ALL.iter().position(|a| *a == alg).unwrap();
    &signers()[index]
}

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(common::verifier)
}

/// Signs exactly this header and payload text, as [`common::raw_token`] does, with a cached
/// signer.
fn raw_token(alg: Algorithm, header: &str, payload: &str) -> String {
    signer(alg)
        .sign_raw(header.as_bytes(), payload.as_bytes())
        .unwrap()
}

fn is_rsa(alg: Algorithm) -> bool {
    matches!(alg.as_str().get(..2), Some("RS" | "PS"))
}

/// Whether signatures are slow here: the pure-Rust backend is unoptimised in a debug build.
fn slow_backend() -> bool {
    crypto_backend() == "rust-crypto"
}

/// `cases` on the default backend, `slow_cases` on `rust-crypto`; no regression files are
/// written.
fn config(cases: u32, slow_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: if slow_backend() { slow_cases } else { cases },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn alg_strategy() -> impl Strategy<Value = Algorithm> {
    prop::sample::select(Algorithm::ALL.to_vec())
}

// ---------------------------------------------------------------------------------------------
// JSON strategies.

/// Strings with unicode, JSON-special characters (quotes, backslashes, control characters,
/// U+2028) and plain identifiers.
fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_:./-]{0,12}",
        "[\\x00-\\x1f\"\\\\/ a-zé€😀\u{2028}\u{fffd}]{0,12}",
        "\\PC{0,8}",
    ]
}

/// Floats whose shortest decimal form has at most 13 significant digits, so they survive a
/// JSON round trip exactly (serde_json's default parser is exact on those).
fn exact_float() -> impl Strategy<Value = f64> {
    (any::<i32>(), 0u32..4).prop_map(|(n, digits)| f64::from(n) / 10f64.powi(digits as i32))
}

/// Any JSON value, recursively; `exact` keeps to numbers that round-trip bit for bit.
fn json_value(exact: bool) -> impl Strategy<Value = Value> {
    let float = if exact {
        exact_float().boxed()
    } else {
        prop_oneof![
            exact_float(),
            any::<f64>(),
            prop::sample::select(vec![
                0.0,
                -0.0,
                1e300,
                -1e300,
                f64::MIN_POSITIVE,
                NumericDate::MAX_SECS,
                NumericDate::MAX_SECS + 1.0,
                NOW,
            ]),
        ]
        .boxed()
    };
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        float.prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        json_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(json_string(), inner, 0..4)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

// ---------------------------------------------------------------------------------------------
// a) Minted claims round-trip under every algorithm.

/// Claims minted for the round trip, with what the verifier must hand back.
#[derive(Clone, Debug)]
struct Minted {
    claims: Value,
    sub: String,
    jti: String,
    audience: Vec<String>,
    roles: Vec<String>,
    scopes: Vec<String>,
    exp: f64,
    iat: f64,
    nbf: Option<f64>,
    extra: Map<String, Value>,
}

/// A NumericDate `NOW + offset` seconds, whole (a JSON integer) or with milliseconds (a JSON
/// float), and the value it denotes.
fn date(offsets: std::ops::RangeInclusive<i64>) -> impl Strategy<Value = (Value, f64)> {
    (offsets, prop::option::of(0i64..1000)).prop_map(|(offset, millis)| {
        let whole = common::NOW as i64 + offset;
        match millis {
            None => (Value::from(whole as u64), whole as f64),
            Some(millis) => {
                let secs = (whole * 1000 + millis) as f64 / 1000.0;
                (Value::from(secs), secs)
            }
        }
    })
}

/// A scope token (RFC 6749 section 3.3): printable ASCII without space, `"` and `\\`.
fn scope_token() -> impl Strategy<Value = String> {
    prop_oneof!["[!#-\\[\\]-~]{1,10}", "[a-z:/.*]{1,6}"]
}

/// The model of the scope-token grammar.
fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn extra_name() -> impl Strategy<Value = String> {
    json_string().prop_filter("not a claim the verifier reads", |name| {
        !RESERVED.contains(&name.as_str())
    })
}

fn minted() -> impl Strategy<Value = Minted> {
    let identity = (json_string(), json_string());
    let audience = (
        prop::collection::vec(json_string(), 0..3),
        any::<bool>(),
        any::<prop::sample::Index>(),
    );
    let roles = (prop::collection::vec(json_string(), 0..4), any::<bool>());
    let scopes = (
        prop::collection::vec(scope_token(), 0..4),
        0u8..3,
        prop::sample::select(vec![" ", "  "]),
        any::<bool>(),
    );
    // exp > NOW - leeway, iat and nbf <= NOW + leeway: all valid.
    let dates = (
        date(-29..=86_400),
        date(-3_600..=29),
        prop::option::of(date(-3_600..=29)),
    );
    let extra = prop::collection::btree_map(extra_name(), json_value(true), 0..4);
    (identity, audience, roles, scopes, dates, extra).prop_map(
        |(
            (sub, jti),
            (others, single, at),
            (roles, roles_present),
            (scopes, form, separator, padded),
            ((exp, exp_secs), (iat, iat_secs), nbf),
            extra,
        )| {
            let mut claims = Map::new();
            claims.insert("iss".into(), json!(common::ISSUER));
            claims.insert("sub".into(), json!(sub));
            claims.insert("jti".into(), json!(jti));
            let audience = if single && others.is_empty() {
                claims.insert("aud".into(), json!(common::AUDIENCE));
                vec![common::AUDIENCE.to_owned()]
            } else {
                let mut list = others;
                list.insert(at.index(list.len() + 1), common::AUDIENCE.to_owned());
                claims.insert("aud".into(), json!(list));
                list
            };
            claims.insert("exp".into(), exp);
            claims.insert("iat".into(), iat);
            let nbf_secs = nbf.map(|(nbf, secs)| {
                claims.insert("nbf".into(), nbf);
                secs
            });
            if roles_present || !roles.is_empty() {
                claims.insert("roles".into(), json!(roles));
            }
            match form {
                0 => {
                    let mut scope = scopes.join(separator);
                    if padded {
                        scope = format!(" {scope} ");
                    }
                    claims.insert("scope".into(), json!(scope));
                }
                1 => {
                    claims.insert("scp".into(), json!(scopes));
                }
                _ if !scopes.is_empty() => {
                    claims.insert("scope".into(), json!(scopes.join(" ")));
                }
                _ => {}
            }
            let extra: Map<String, Value> = extra.into_iter().collect();
            for (name, value) in &extra {
                claims.insert(name.clone(), value.clone());
            }
            Minted {
                claims: Value::Object(claims),
                sub,
                jti,
                audience,
                roles,
                scopes,
                exp: exp_secs,
                iat: iat_secs,
                nbf: nbf_secs,
                extra,
            }
        },
    )
}

fn round_trip(alg: Algorithm, minted: &Minted) -> Result<(), TestCaseError> {
    let token = signer(alg).sign(&minted.claims).unwrap();
    let result = verifier().verify(&token);
    if token.len() > DEFAULT_MAX_TOKEN_LEN {
        prop_assert_eq!(result.unwrap_err().kind(), ErrorKind::TooLong);
        return Ok(());
    }
    let claims = result.map_err(|err| TestCaseError::fail(format!("{alg}: {err:?}")))?;
    let secs = |date: Option<NumericDate>| date.map(NumericDate::as_secs_f64);
    prop_assert_eq!(claims.issuer(), Some(common::ISSUER), "{}", alg);
    prop_assert_eq!(claims.subject(), Some(minted.sub.as_str()), "{}", alg);
    prop_assert_eq!(claims.jwt_id(), Some(minted.jti.as_str()), "{}", alg);
    prop_assert_eq!(claims.audience(), &minted.audience[..], "{}", alg);
    prop_assert_eq!(claims.roles(), &minted.roles[..], "{}", alg);
    prop_assert_eq!(claims.scopes(), &minted.scopes[..], "{}", alg);
    prop_assert_eq!(claims.scopes().as_str(), minted.scopes.join(" "), "{}", alg);
    prop_assert_eq!(secs(claims.expires_at()), Some(minted.exp), "{}", alg);
    prop_assert_eq!(secs(claims.issued_at()), Some(minted.iat), "{}", alg);
    prop_assert_eq!(secs(claims.not_before()), minted.nbf, "{}", alg);
    prop_assert_eq!(claims.extra(), &minted.extra, "{}", alg);
    for role in &minted.roles {
        prop_assert!(claims.has_role(role));
    }
    prop_assert!(claims.has_all_scopes(&minted.scopes));
    Ok(())
}

proptest! {
    #![proptest_config(config(64, 12))]

    /// HMAC, ECDSA and EdDSA: every case is minted and verified under each of them.
    #[test]
    fn minted_claims_round_trip_non_rsa(minted in minted()) {
        for alg in Algorithm::ALL.into_iter().filter(|alg| !is_rsa(*alg)) {
            round_trip(alg, &minted)?;
        }
    }
}

proptest! {
    #![proptest_config(config(16, 3))]

    /// RS256..PS512: fewer cases, RSA signing is slow in a debug build.
    #[test]
    fn minted_claims_round_trip_rsa(minted in minted()) {
        for alg in Algorithm::ALL.into_iter().filter(|alg| is_rsa(*alg)) {
            round_trip(alg, &minted)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// b) Every single-byte change to a valid token is rejected (exhaustive).

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The fewest claims the default verifier accepts, to keep the token (and the loop) short. They
/// serialise to 96 bytes, 128 base64url characters: a deleted character then leaves 127 (which
/// decode, so the signature is checked) and an inserted one 129 (an impossible length).
fn short_claims() -> Value {
    json!({
        "iss": common::ISSUER, "aud": common::AUDIENCE, "sub": "u1", "jti": "j",
        "iat": common::NOW, "exp": common::NOW + 600,
    })
}

/// What replaces the byte at one position: another base64url character, `.`, `=`, a space, a
/// non-ASCII character (two bytes, so the string stays UTF-8), `+` and `/`.
///
/// The other base64url character differs in the lowest of its six bits: at the end of a segment
/// those are unused trailing bits, which a lax decoder would ignore. On the default backend a
/// second one (the highest bit flipped) is tried too.
fn replacements(original: u8) -> Vec<String> {
    let mut out: Vec<String> = match BASE64URL.iter().position(|&c| c == original) {
        Some(index) => {
            let mut chars = vec![char::from(BASE64URL[index ^ 1]).to_string()];
            if !slow_backend() {
                chars.push(char::from(BASE64URL[index ^ 32]).to_string());
            }
            chars
        }
        None => vec!["A".to_owned()],
    };
    out.extend([".", "=", " ", "é", "+", "/"].map(str::to_owned));
    out.retain(|r| r.as_bytes() != [original]);
    out
}

fn assert_every_single_byte_change_is_rejected(alg: Algorithm) {
    let verifier = verifier();
    let token = signer(alg).sign(&short_claims()).unwrap();
    verifier
        .verify(&token)
        .unwrap_or_else(|err| panic!("{alg}: the unmodified token must verify: {err:?}"));
    let bytes = token.as_bytes();
    let mut checked = 0usize;
    let mut reject = |mutated: String, what: &str| {
        assert_ne!(mutated, token);
        if let Ok(claims) = verifier.verify(&mutated) {
            panic!("{alg}: {what} was accepted: {mutated} -> {claims:?}");
        }
        checked += 1;
    };
    for at in 0..bytes.len() {
        for replacement in replacements(bytes[at]) {
            let mutated = format!("{}{replacement}{}", &token[..at], &token[at + 1..]);
            reject(mutated, &format!("byte {at} replaced by {replacement:?}"));
        }
        let deleted = format!("{}{}", &token[..at], &token[at + 1..]);
        reject(deleted, &format!("byte {at} deleted"));
    }
    for at in 0..=bytes.len() {
        for inserted in ["A", "."] {
            let mutated = format!("{}{inserted}{}", &token[..at], &token[at..]);
            reject(mutated, &format!("{inserted:?} inserted at {at}"));
        }
    }
    assert!(checked > 3 * bytes.len(), "{alg}: {checked} mutations");
}

#[test]
fn single_byte_changes_are_rejected_hmac() {
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        assert_every_single_byte_change_is_rejected(alg);
    }
}

#[test]
fn single_byte_changes_are_rejected_rsa_pkcs1() {
    for alg in [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512] {
        assert_every_single_byte_change_is_rejected(alg);
    }
}

#[test]
fn single_byte_changes_are_rejected_rsa_pss() {
    for alg in [Algorithm::PS256, Algorithm::PS384, Algorithm::PS512] {
        assert_every_single_byte_change_is_rejected(alg);
    }
}

#[test]
fn single_byte_changes_are_rejected_es256() {
    assert_every_single_byte_change_is_rejected(Algorithm::ES256);
}

#[test]
fn single_byte_changes_are_rejected_es384() {
    assert_every_single_byte_change_is_rejected(Algorithm::ES384);
}

#[test]
fn single_byte_changes_are_rejected_eddsa() {
    assert_every_single_byte_change_is_rejected(Algorithm::EdDSA);
}

#[test]
fn the_mutation_tests_cover_every_algorithm() {
    // The per-family tests above list these by hand; keep them in step with `Algorithm::ALL`.
    let covered = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    assert_eq!(covered, Algorithm::ALL);
}

// ---------------------------------------------------------------------------------------------
// c) Arbitrary input never panics, and what verifies follows the rules.

/// Whether the verifier must accept a token with this header, signed with `alg`'s key.
fn header_acceptable(header: &Value, alg: Algorithm) -> bool {
    let Some(header) = header.as_object() else {
        return false;
    };
    header.get("alg") == Some(&json!(alg.as_str()))
        && header.get("kid") == Some(&json!(common::kid(alg)))
        && header.get("typ").is_none_or(Value::is_string)
        // No extension is understood by the default verifier, and `crit: []` is invalid.
        && !header.contains_key("crit")
        && header.get("b64").is_none_or(|b64| *b64 == json!(true))
}

/// A NumericDate as the crate reads it: a JSON number in `0..=MAX_SECS`.
fn numeric_date(value: &Value) -> Option<f64> {
    value
        .as_f64()
        .filter(|secs| (0.0..=NumericDate::MAX_SECS).contains(secs))
}

fn string_list(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|item| item.as_str().map(str::to_owned))
        .collect()
}

/// What a token with these claims must verify to under the default verifier at `NOW`, or
/// `None` when it must be rejected.
struct Expected {
    audience: Vec<String>,
    roles: Vec<String>,
    scopes: Vec<String>,
    exp: f64,
    iat: f64,
    nbf: Option<f64>,
    extra: Map<String, Value>,
}

fn claims_acceptable(payload: &Value) -> Option<Expected> {
    let claims = payload.as_object()?;
    let string = |name: &str| claims.get(name).and_then(Value::as_str);
    if string("iss")? != common::ISSUER {
        return None;
    }
    string("sub")?;
    string("jti")?;
    let audience = match claims.get("aud")? {
        Value::String(aud) => vec![aud.clone()],
        list => string_list(list)?,
    };
    if !audience.iter().any(|aud| aud == common::AUDIENCE) {
        return None;
    }
    let exp = numeric_date(claims.get("exp")?)?;
    let iat = numeric_date(claims.get("iat")?)?;
    let nbf = match claims.get("nbf") {
        Some(nbf) => Some(numeric_date(nbf)?),
        None => None,
    };
    if NOW >= exp + LEEWAY || iat > NOW + LEEWAY || nbf.is_some_and(|nbf| NOW < nbf - LEEWAY) {
        return None;
    }
    let roles = match claims.get("roles") {
        Some(roles) => string_list(roles)?,
        None => Vec::new(),
    };
    // Space-delimited; every token must follow the scope-token grammar.
    let split = |scope: &str| {
        scope
            .split(' ')
            .filter(|token| !token.is_empty())
            .map(|token| is_scope_token(token).then(|| token.to_owned()))
            .collect::<Option<Vec<_>>>()
    };
    let scopes = match (claims.get("scope"), claims.get("scp")) {
        (Some(_), Some(_)) => return None,
        (Some(scope), None) => split(scope.as_str()?)?,
        (None, Some(Value::String(scp))) => split(scp)?,
        // An array holds scope tokens, each following the grammar.
        (None, Some(scp)) => string_list(scp)?
            .into_iter()
            .map(|token| is_scope_token(&token).then_some(token))
            .collect::<Option<_>>()?,
        (None, None) => Vec::new(),
    };
    let extra = claims
        .iter()
        .filter(|(name, _)| !RESERVED.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    Some(Expected {
        audience,
        roles,
        scopes,
        exp,
        iat,
        nbf,
        extra,
    })
}

/// Signs `header` and `payload` (as JSON text) with `alg`'s real key and checks the verifier's
/// verdict against the rules: accepted exactly when the header and claims are acceptable and
/// the token is within the length cap, and then with the claims the payload holds.
fn check_verdict(alg: Algorithm, header: &Value, original: &Value) -> Result<(), TestCaseError> {
    let header_text = header.to_string();
    let payload_text = original.to_string();
    let token = raw_token(alg, &header_text, &payload_text);
    let result = verifier().verify(&token);
    // Judge the claims as the crate reads them: from the signed text. The crate parses dates
    // with correct rounding (`str::parse::<f64>`), which recovers the generated value exactly
    // from its shortest decimal form, while serde_json's default float parser may be one ulp
    // off; so dates keep the generated values.
    let mut payload: Value = serde_json::from_str(&payload_text).unwrap();
    if let (Some(read), Some(generated)) = (payload.as_object_mut(), original.as_object()) {
        for name in ["exp", "nbf", "iat"] {
            if let Some(value) = generated.get(name) {
                read.insert(name.to_owned(), value.clone());
            }
        }
    }
    let expected = if token.len() > DEFAULT_MAX_TOKEN_LEN || !header_acceptable(header, alg) {
        None
    } else {
        claims_acceptable(&payload)
    };
    match (result, expected) {
        (Err(_), None) => {}
        (Ok(claims), None) => {
            return Err(TestCaseError::fail(format!(
                "{alg}: accepted against the rules: header {header_text} payload {payload_text} \
                 -> {claims:?}"
            )));
        }
        (Err(err), Some(_)) => {
            return Err(TestCaseError::fail(format!(
                "{alg}: rejected ({err:?}) though the rules accept it: header {header_text} \
                 payload {payload_text}"
            )));
        }
        (Ok(claims), Some(expected)) => {
            let secs = |date: Option<NumericDate>| date.map(NumericDate::as_secs_f64);
            prop_assert_eq!(claims.issuer(), payload["iss"].as_str());
            prop_assert_eq!(claims.subject(), payload["sub"].as_str());
            prop_assert_eq!(claims.jwt_id(), payload["jti"].as_str());
            prop_assert_eq!(claims.audience(), &expected.audience[..]);
            prop_assert_eq!(claims.roles(), &expected.roles[..]);
            prop_assert_eq!(claims.scopes(), &expected.scopes[..]);
            prop_assert_eq!(claims.scopes().as_str(), expected.scopes.join(" "));
            prop_assert_eq!(secs(claims.expires_at()), Some(expected.exp));
            prop_assert_eq!(secs(claims.issued_at()), Some(expected.iat));
            prop_assert_eq!(secs(claims.not_before()), expected.nbf);
            prop_assert_eq!(claims.extra(), &expected.extra);
        }
    }
    Ok(())
}

/// A header member value: the signing key's own `alg` or `kid`, another name, or anything.
#[derive(Clone, Debug)]
enum HeaderValue {
    SigningAlg,
    SigningKid,
    Fixed(Value),
}

impl HeaderValue {
    fn resolve(&self, alg: Algorithm) -> Value {
        match self {
            Self::SigningAlg => json!(alg.as_str()),
            Self::SigningKid => json!(common::kid(alg)),
            Self::Fixed(value) => value.clone(),
        }
    }
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "alg", "kid", "typ", "crit", "jwk", "jku", "x5u", "x5c", "x5t", "b64", "cty", "zip",
        ])
        .prop_map(str::to_owned),
        1 => json_string(),
    ]
}

fn header_value() -> impl Strategy<Value = HeaderValue> {
    let names: Vec<Value> = Algorithm::ALL
        .iter()
        .map(|alg| json!(alg.as_str()))
        .chain(Algorithm::ALL.iter().map(|alg| json!(common::kid(*alg))))
        .chain(
            [
                "none",
                "NONE",
                "None",
                "ES512",
                "hs256",
                "HS256 ",
                "",
                "JWT",
                "at+jwt",
                "b64",
                "../keys/hs256",
                "https://attacker.example/jwks.json",
            ]
            .map(Value::from),
        )
        .collect();
    prop_oneof![
        2 => Just(HeaderValue::SigningAlg),
        2 => Just(HeaderValue::SigningKid),
        2 => prop::sample::select(names).prop_map(HeaderValue::Fixed),
        1 => prop::sample::select(vec![
            json!(true),
            json!(false),
            json!(null),
            json!([]),
            json!(["b64"]),
            json!(["exp"]),
            json!(["alg"]),
            json!({"kty": "oct", "k": "AAAA"}),
            json!(["MIIB"]),
        ])
        .prop_map(HeaderValue::Fixed),
        2 => json_value(false).prop_map(HeaderValue::Fixed),
    ]
}

/// A header: usually the signer's own (`alg`, `kid`, maybe `typ`) with members set or removed,
/// sometimes any JSON value at all.
fn header() -> impl Strategy<Value = (Algorithm, Value)> {
    let edits = prop::collection::vec(
        (header_name(), prop::option::weighted(0.8, header_value())),
        0..4,
    );
    (
        alg_strategy(),
        any::<bool>(),
        edits,
        prop::option::weighted(0.1, json_value(false)),
    )
        .prop_map(|(alg, typ, edits, whole)| {
            if let Some(whole) = whole {
                return (alg, whole);
            }
            let mut header = Map::new();
            if typ {
                header.insert("typ".into(), json!("JWT"));
            }
            header.insert("alg".into(), json!(alg.as_str()));
            header.insert("kid".into(), json!(common::kid(alg)));
            for (name, value) in edits {
                match value {
                    Some(value) => header.insert(name, value.resolve(alg)),
                    None => header.remove(&name),
                };
            }
            (alg, Value::Object(header))
        })
}

fn claim_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(RESERVED.to_vec()).prop_map(str::to_owned),
        1 => json_string(),
    ]
}

/// Claim values around the rules' edges: the accepted issuer and audience, dates at and around
/// each leeway boundary, out-of-range and wrongly typed dates, string lists.
fn claim_value() -> impl Strategy<Value = Value> {
    let now = common::NOW as i64;
    let edges = vec![
        json!(common::ISSUER),
        json!(format!("{}/", common::ISSUER)),
        json!(common::AUDIENCE),
        json!([common::AUDIENCE]),
        json!(["other", common::AUDIENCE]),
        json!(["other"]),
        json!([common::AUDIENCE, 1]),
        json!([]),
        json!(""),
        json!("a b  c"),
        json!(NOW - LEEWAY),
        json!(NOW - LEEWAY + 0.5),
        json!(NOW + LEEWAY),
        json!(NOW + LEEWAY + 0.5),
        json!(now + 30),
        json!(now + 31),
        json!(now - 30),
        json!(now - 29),
        json!(-1),
        json!(-0.5),
        json!(0),
        json!(NumericDate::MAX_SECS),
        json!(NumericDate::MAX_SECS + 1.0),
        json!(u64::MAX),
        json!(1e300),
        json!(common::NOW.to_string()),
    ];
    prop_oneof![
        3 => prop::sample::select(edges),
        2 => (-100_000i64..100_000).prop_map(move |offset| json!(now + offset)),
        1 => (-100.0f64..100.0).prop_map(|offset| json!(NOW + offset)),
        1 => prop::collection::vec(json_string(), 0..3).prop_map(Value::from),
        1 => json_string().prop_map(Value::from),
        2 => json_value(false),
    ]
}

/// A date claim set to a value near one of its leeway boundaries.
fn date_edit() -> impl Strategy<Value = (String, Option<Value>)> {
    // NOW - leeway is where `exp` ends, NOW + leeway where `nbf` and `iat` do.
    let now = common::NOW as i64;
    let value = prop_oneof![
        (prop::sample::select(vec![-30i64, 30]), -2i64..=2)
            .prop_map(move |(edge, offset)| json!(now + edge + offset)),
        (prop::sample::select(vec![-LEEWAY, LEEWAY]), -8i32..=8)
            .prop_map(|(edge, quarters)| json!(NOW + edge + f64::from(quarters) / 4.0)),
        (-100i64..=100).prop_map(move |offset| json!(now + offset)),
    ];
    (
        prop::sample::select(vec!["exp", "nbf", "iat"]).prop_map(str::to_owned),
        value.prop_map(Some),
    )
}

/// Claims: usually [`common::claims`] with members set or removed, sometimes any JSON value.
fn payload() -> impl Strategy<Value = Value> {
    let edit = prop_oneof![
        3 => (claim_name(), prop::option::weighted(0.8, claim_value())),
        1 => date_edit(),
    ];
    let edits = prop::collection::vec(edit, 0..4);
    (edits, prop::option::weighted(0.1, json_value(false))).prop_map(|(edits, whole)| {
        if let Some(whole) = whole {
            return whole;
        }
        let mut claims = common::claims();
        let members = claims.as_object_mut().unwrap();
        for (name, value) in edits {
            match value {
                Some(value) => members.insert(name, value),
                None => members.remove(&name),
            };
        }
        claims
    })
}

/// Base64url segments, with the occasional stray character, and some longer than any signature
/// (an 8192-bit RSA signature is 1366 characters).
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[A-Za-z0-9_-]{0,64}",
        1 => "[A-Za-z0-9_=+/ .-]{0,64}",
        1 => "[A-Za-z0-9_-]{1300,1500}",
    ]
}

proptest! {
    #![proptest_config(config(512, 256))]

    /// Arbitrary bytes (as lossy UTF-8) are rejected without panicking.
    #[test]
    fn arbitrary_bytes_are_rejected(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(verifier().verify(&text).is_err());
        prop_assert!(verifier().keys().unwrap().verify_jws(&text).is_err());
    }

    /// Token-shaped strings of random segments are rejected without panicking, also behind the
    /// real header of a key.
    #[test]
    fn random_segments_are_rejected(
        alg in alg_strategy(),
        real_header in any::<bool>(),
        segments in prop::collection::vec(segment(), 1..5),
    ) {
        use base64::Engine;
        let mut token = segments.join(".");
        if real_header {
            let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(common::header(alg));
            token = format!("{header}.{token}");
        }
        prop_assert!(verifier().verify(&token).is_err());
        prop_assert!(verifier().keys().unwrap().verify_jws(&token).is_err());
    }
}

proptest! {
    #![proptest_config(config(256, 24))]

    /// Arbitrary headers signed with the real key: accepted exactly when the rules accept them.
    #[test]
    fn arbitrary_headers_follow_the_rules((alg, header) in header()) {
        check_verdict(alg, &header, &common::claims())?;
    }

    /// Arbitrary claims signed with the real key: accepted exactly when the rules accept them,
    /// and then with those claims.
    #[test]
    fn arbitrary_claims_follow_the_rules(alg in alg_strategy(), payload in payload()) {
        let header: Value = serde_json::from_str(&common::header(alg)).unwrap();
        check_verdict(alg, &header, &payload)?;
    }

    /// Both at once.
    #[test]
    fn arbitrary_headers_and_claims_follow_the_rules((alg, header) in header(), payload in payload()) {
        check_verdict(alg, &header, &payload)?;
    }

    /// A member repeated in the header or the claims, at the top or nested, with the same value,
    /// is rejected as malformed although the signature is good.
    #[test]
    fn duplicate_members_are_rejected(
        alg in alg_strategy(),
        in_header in any::<bool>(),
        nested in any::<bool>(),
        pick in any::<prop::sample::Index>(),
    ) {
        let header = common::header(alg);
        let claims = common::claims().to_string();
        let with_duplicate = |json: &str| -> String {
            let object: Map<String, Value> = serde_json::from_str(json).unwrap();
            let members: Vec<(&String, &Value)> = object.iter().collect();
            let (name, value) = members[pick.index(members.len())];
            let repeated = format!("{}:{}", json!(name), value);
            let body = &json[1..json.len() - 1];
            if nested {
                format!("{{{body},\"nested\":{{{repeated},{repeated}}}}}")
            } else {
                format!("{{{body},{repeated}}}")
            }
        };
        let token = if in_header {
            raw_token(alg, &with_duplicate(&header), &claims)
        } else {
            raw_token(alg, &header, &with_duplicate(&claims))
        };
        prop_assert_eq!(verifier().verify(&token).unwrap_err().kind(), ErrorKind::Malformed);
    }
}

// ---------------------------------------------------------------------------------------------
// d) Arbitrary JWKS documents never panic the key loader.

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn jwk_name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec![
            "kty", "use", "key_ops", "alg", "kid", "crv", "n", "e", "x", "y", "k", "d", "p", "q",
            "dp", "dq", "qi", "oth", "x5c", "ext",
        ])
        .prop_map(str::to_owned),
        1 => json_string(),
    ]
}

/// JWK member values: the registered names, real key components, random base64url of the
/// sizes keys have, and anything.
fn jwk_value() -> impl Strategy<Value = Value> {
    let jwks: Value = serde_json::from_slice(&common::fixture("public.jwks")).unwrap();
    let mut components: Vec<Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|key| ["n", "e", "x", "y"].map(|name| key[name].clone()))
        .filter(|value| !value.is_null())
        .collect();
    components.extend(
        [
            "RSA", "EC", "OKP", "oct", "rsa", "AQAB", "AQ", "Aw", "", "P-256", "P-384", "P-521",
            "Ed25519", "Ed448", "X25519", "sig", "enc", "none", "ES512", "A256GCM", "RSA1_5",
        ]
        .map(Value::from),
    );
    components.extend(Algorithm::ALL.map(|alg| json!(alg.as_str())));
    components.extend([
        json!(["verify"]),
        json!(["sign"]),
        json!([]),
        json!(["verify", 1]),
    ]);
    let sizes = prop::sample::select(vec![
        0usize, 1, 31, 32, 33, 47, 48, 63, 64, 65, 97, 128, 255, 256, 257, 512, 513,
    ]);
    prop_oneof![
        3 => prop::sample::select(components),
        2 => sizes
            .prop_flat_map(|len| prop::collection::vec(any::<u8>(), len))
            .prop_map(|bytes| json!(base64url(&bytes))),
        1 => "[A-Za-z0-9_=+/-]{0,90}".prop_map(Value::from),
        2 => json_value(false),
    ]
}

fn jwk() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(jwk_name(), jwk_value(), 0..8)
        .prop_map(|members| Value::Object(members.into_iter().collect()))
}

fn jwks() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => prop::collection::vec(jwk(), 0..4).prop_map(|keys| json!({"keys": keys})),
        1 => json_value(false).prop_map(|keys| json!({"keys": keys})),
        1 => json_value(false),
    ]
}

proptest! {
    #![proptest_config(config(512, 128))]

    /// `from_jwks` (and `from_jwk` on each key) never panics; a set that loads is usable and
    /// verifying with it does not panic either.
    #[test]
    fn jwks_loading_never_panics(document in jwks()) {
        let text = document.to_string();
        if let Ok(keys) = KeySet::from_jwks(&text) {
            prop_assert!(!keys.is_empty());
            prop_assert_eq!(keys.keys().count(), keys.len());
            prop_assert!(keys.keys().all(|(_, alg)| Algorithm::ALL.contains(&alg)));
            let token = raw_token(Algorithm::HS256, r#"{"alg":"HS256"}"#, "{}");
            let _ = keys.verify_jws(&token);
        }
        if let Some(keys) = document.get("keys").and_then(Value::as_array) {
            for key in keys {
                let _ = KeySet::from_jwk(key.to_string());
            }
        }
    }

    /// Arbitrary bytes as a JWKS or JWK document never panic.
    #[test]
    fn jwks_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = KeySet::from_jwks(&bytes);
        let _ = KeySet::from_jwk(&bytes);
    }
}
