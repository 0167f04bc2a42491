//! The token path (the crate docs' "The token path"), rule by rule.
//!
//! Every rule has a test that fails when the rule is removed: negative cases assert the exact
//! [`ErrorKind`] (and claim name), hostile tokens carry a valid signature by the real key wherever
//! the rule under test comes before the signature check, and each negative case sits next to a
//! positive control built the same way with the offending part fixed.

use crate::common;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tower_jwt_auth::{
    Algorithm, AuthError, Claims, DEFAULT_MAX_TOKEN_LEN, ErrorKind, KeySet, TokenSigner, Verifier,
};

use crate::common::{
    AUDIENCE, ISSUER, NOW, builder, builder_for, claims, claims_with, fixture, hmac_secret, kid,
    public_pem, verifier,
};

const HS256: Algorithm = Algorithm::HS256;

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

/// [`common::signer`] for every algorithm, built once: RSA signers are slow to build in debug
/// builds of the pure-Rust backend.
fn cached_signer(alg: Algorithm) -> &'static TokenSigner {
    static SIGNERS: OnceLock<Vec<TokenSigner>> = OnceLock::new();
    let signers = SIGNERS.get_or_init(|| Algorithm::ALL.into_iter().map(common::signer).collect());
    &signers[Algorithm::ALL.iter().position(|a| *a == alg).unwrap()]
}

/// [`common::token`] with a cached signer.
fn sign(alg: Algorithm, claims: &Value) -> String {
    cached_signer(alg).sign(claims).unwrap()
}

/// [`common::raw_token`] with a cached signer: exactly this header and payload text, signed
/// with `alg`'s real key.
fn sign_raw(alg: Algorithm, header: &str, payload: &str) -> String {
    cached_signer(alg)
        .sign_raw(header.as_bytes(), payload.as_bytes())
        .unwrap()
}

/// Signs an exact signing input (`header.payload` as text, possibly non-canonical base64url)
/// with the real HS256 key and appends the signature: the token is then validly signed even
/// though its segments are not canonical.
fn sign_input_hs256(signing_input: &str) -> String {
    // Building a signer installs the crate's crypto provider for jsonwebtoken.
    let _ = cached_signer(HS256);
    let key = jsonwebtoken::EncodingKey::from_secret(&hmac_secret(HS256));
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &key,
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    format!("{signing_input}.{signature}")
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64 the way a lax parser would: both alphabets, padding and whitespace ignored,
/// trailing bits ignored. Used to show that a non-canonical segment carries the same bytes.
fn lenient_decode(segment: &str) -> Vec<u8> {
    let cleaned: String = segment
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    let lax = GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    lax.decode(cleaned).unwrap()
}

/// The three segments of a compact token.
fn parts(token: &str) -> [&str; 3] {
    let mut it = token.split('.');
    let parts = [it.next().unwrap(), it.next().unwrap(), it.next().unwrap()];
    assert!(it.next().is_none(), "not three segments: {token}");
    parts
}

/// `header.payload` of a token.
fn signing_input(token: &str) -> &str {
    &token[..token.rfind('.').unwrap()]
}

/// The payload every test uses unless it says otherwise.
fn payload() -> String {
    claims().to_string()
}

/// The header [`common::header`] writes for HS256, with `changes` merged in (`null` removes a
/// member).
fn hs_header(changes: Value) -> String {
    common::merge(
        json!({"typ": "JWT", "alg": "HS256", "kid": "hs256"}),
        changes,
    )
    .to_string()
}

/// The default claims as JSON text with one member replaced by raw JSON text (so it can be
/// `null`, a duplicate, or a number serde_json would not write).
fn payload_with_raw(name: &str, raw: &str) -> String {
    let mut claims = claims();
    claims.as_object_mut().unwrap().remove(name);
    insert_member(&claims.to_string(), &format!("\"{name}\":{raw}"))
}

/// Inserts a member (raw text `"name":value`) at the start of a JSON object's text.
fn insert_member(object: &str, member: &str) -> String {
    assert!(object.starts_with('{') && object.len() > 2, "{object}");
    format!("{{{member},{}", &object[1..])
}

/// A set with only `alg`'s key, under `kid` = [`kid`]`(alg)`.
fn single_key(alg: Algorithm) -> KeySet {
    let builder = KeySet::builder();
    let builder = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => builder
            .hmac(Some(&kid(alg)), alg, &hmac_secret(alg))
            .unwrap(),
        _ => builder.pem(Some(&kid(alg)), alg, &public_pem(alg)).unwrap(),
    };
    builder.build().unwrap()
}

#[track_caller]
fn reject(v: &Verifier, token: &str, label: &str) -> AuthError {
    match v.verify(token) {
        Ok(_) => panic!("{label}: accepted, expected a rejection"),
        Err(err) => err,
    }
}

/// Asserts the token is rejected with exactly this kind.
#[track_caller]
fn expect_kind(v: &Verifier, token: &str, kind: ErrorKind, label: &str) {
    let err = reject(v, token, label);
    assert_eq!(err.kind(), kind, "{label}: {err:?}");
}

/// Asserts the token is rejected with exactly this kind, naming this claim.
#[track_caller]
fn expect_claim(v: &Verifier, token: &str, kind: ErrorKind, claim: &str, label: &str) {
    let err = reject(v, token, label);
    assert_eq!((err.kind(), err.claim()), (kind, Some(claim)), "{label}");
}

/// Asserts the token verifies.
#[track_caller]
fn accept(v: &Verifier, token: &str, label: &str) -> Claims {
    v.verify(token)
        .unwrap_or_else(|err| panic!("{label}: rejected with {err:?}"))
}

// ------------------------------------------------------------------------------------------
// Step 3: `alg`
// ------------------------------------------------------------------------------------------

#[test]
fn alg_none_is_refused_in_every_casing() {
    let v = verifier();
    let single = builder_for(single_key(HS256)).build().unwrap();
    for none in ["none", "None", "NONE", "nOnE"] {
        for (shape, header) in [
            ("with kid", hs_header(json!({"alg": none}))),
            ("without kid", hs_header(json!({"alg": none, "kid": null}))),
        ] {
            // Signed by the real HS256 key: nothing but `alg` is wrong.
            let signed = sign_raw(HS256, &header, &payload());
            let garbage = format!("{}.{}", signing_input(&signed), b64([0u8; 32]));
            for (label, token) in [("signed", &signed), ("garbage signature", &garbage)] {
                for (set, v) in [("all keys", &v), ("single key", &single)] {
                    expect_kind(
                        v,
                        token,
                        ErrorKind::Algorithm,
                        &format!("alg {none:?}, {shape}, {label}, {set}"),
                    );
                }
            }
            // An unsecured JWS (RFC 7519 section 6: empty signature) is refused already at
            // step 2, which requires a non-empty signature segment, before the header is read.
            let unsigned = format!("{}.", signing_input(&signed));
            for (set, v) in [("all keys", &v), ("single key", &single)] {
                expect_kind(
                    v,
                    &unsigned,
                    ErrorKind::Malformed,
                    &format!("alg {none:?}, {shape}, unsigned, {set}"),
                );
            }
        }
    }
    // Control: the same construction with `alg: HS256` verifies, with and without a kid.
    accept(
        &v,
        &sign_raw(HS256, &hs_header(json!({})), &payload()),
        "control",
    );
    accept(
        &single,
        &sign_raw(HS256, &hs_header(json!({"kid": null})), &payload()),
        "control without kid",
    );
}

#[test]
fn alg_names_are_exact_and_on_the_allow_list() {
    let v = verifier();
    for alg in [
        "hs256",
        "Hs256",
        "HS256 ",
        " HS256",
        "HS256\u{0}",
        "",
        "ES512",
        "RS1",
        "HS",
    ] {
        let token = sign_raw(HS256, &hs_header(json!({ "alg": alg })), &payload());
        expect_kind(&v, &token, ErrorKind::Algorithm, &format!("alg {alg:?}"));
    }
    for (label, alg) in [
        ("missing", Value::Null),
        ("number", json!(256)),
        ("array", json!(["HS256"])),
        ("object", json!({"name": "HS256"})),
        ("bool", json!(true)),
    ] {
        let header = if alg.is_null() {
            hs_header(json!({"alg": null}))
        } else {
            hs_header(json!({ "alg": alg }))
        };
        let token = sign_raw(HS256, &header, &payload());
        expect_kind(&v, &token, ErrorKind::Malformed, &format!("alg {label}"));
    }
    let explicit_null = sign_raw(
        HS256,
        r#"{"alg":null,"kid":"hs256","typ":"JWT"}"#,
        &payload(),
    );
    expect_kind(&v, &explicit_null, ErrorKind::Malformed, "alg null");
}

#[test]
fn the_verifier_allow_list_narrows_the_key_set() {
    let v = builder()
        .algorithms([Algorithm::ES256])
        .unwrap()
        .build()
        .unwrap();
    for alg in Algorithm::ALL {
        let token = sign(alg, &claims());
        if alg == Algorithm::ES256 {
            accept(&v, &token, "ES256 is allowed");
        } else {
            expect_kind(
                &v,
                &token,
                ErrorKind::Algorithm,
                &format!("{alg} not allowed"),
            );
        }
    }
}

#[test]
fn hmac_keyed_with_public_key_bytes_is_refused() {
    // The classic key confusion: an HS* token whose secret is a public key, presented under
    // that public key's kid.
    let cases = [
        ("rsa spki pem", Algorithm::RS256, fixture("rsa2048.pub.pem")),
        (
            "rsa pkcs1 pem",
            Algorithm::RS256,
            fixture("rsa2048.pub.pkcs1.pem"),
        ),
        ("rsa der", Algorithm::RS256, fixture("rsa2048.pub.der")),
        ("rsa jwk", Algorithm::RS256, fixture("rsa2048.pub.jwk")),
        (
            "rsa jwk, under ps512",
            Algorithm::PS512,
            fixture("rsa2048.pub.jwk"),
        ),
        ("p256 pem", Algorithm::ES256, fixture("p256.pub.pem")),
        ("p256 der", Algorithm::ES256, fixture("p256.pub.der")),
        ("p256 jwk", Algorithm::ES256, fixture("p256.pub.jwk")),
        ("p384 pem", Algorithm::ES384, fixture("p384.pub.pem")),
        ("p384 der", Algorithm::ES384, fixture("p384.pub.der")),
        ("p384 jwk", Algorithm::ES384, fixture("p384.pub.jwk")),
        ("ed25519 pem", Algorithm::EdDSA, fixture("ed25519.pub.pem")),
        ("ed25519 der", Algorithm::EdDSA, fixture("ed25519.pub.der")),
        ("ed25519 jwk", Algorithm::EdDSA, fixture("ed25519.pub.jwk")),
    ];
    let all = verifier();
    let mut checked = 0;
    for (label, key_alg, secret) in cases {
        let key_kid = kid(key_alg);
        // A service that only has this public key: HMAC is not even on its allow-list.
        let public_only = builder_for(single_key(key_alg)).build().unwrap();
        for hmac in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let Ok(attacker) = TokenSigner::hmac(hmac, &secret) else {
                // Too short to be an HMAC secret for this hash (ed25519 DER is 44 bytes).
                continue;
            };
            let header = json!({"alg": hmac.as_str(), "kid": key_kid, "typ": "JWT"}).to_string();
            let token = attacker
                .sign_raw(header.as_bytes(), payload().as_bytes())
                .unwrap();
            let label = format!("{hmac} keyed with {label}, kid {key_kid}");
            expect_kind(&all, &token, ErrorKind::Algorithm, &label);
            expect_kind(&public_only, &token, ErrorKind::Algorithm, &label);
            // Control: it really is a valid HMAC token for that secret.
            let as_secret = KeySet::builder()
                .hmac(Some(&key_kid), hmac, &secret)
                .unwrap()
                .build()
                .unwrap();
            accept(&builder_for(as_secret).build().unwrap(), &token, &label);
            checked += 1;
        }
    }
    assert!(checked >= 3 * 13, "only {checked} combinations ran");
}

#[test]
fn a_key_verifies_only_under_the_algorithm_it_is_bound_to() {
    let v = verifier();
    for key_alg in Algorithm::ALL {
        for header_alg in Algorithm::ALL {
            // A genuine signature by `key_alg`'s key, under its kid, with the header claiming
            // `header_alg`. Without the binding, the key's own verifier would accept it.
            let header =
                json!({"alg": header_alg.as_str(), "kid": kid(key_alg), "typ": "JWT"}).to_string();
            let token = sign_raw(key_alg, &header, &payload());
            let label = format!("{key_alg} key, header says {header_alg}");
            if header_alg == key_alg {
                accept(&v, &token, &label);
            } else {
                expect_kind(&v, &token, ErrorKind::Algorithm, &label);
            }
        }
    }
}

#[test]
fn every_algorithm_signature_under_every_other_kid_is_refused() {
    let v = verifier();
    for token_alg in Algorithm::ALL {
        for key_alg in Algorithm::ALL {
            // A valid `token_alg` token (header and signature agree) presented under the kid of
            // a key bound to `key_alg`.
            let header = json!({"alg": token_alg.as_str(), "kid": kid(key_alg)}).to_string();
            let token = sign_raw(token_alg, &header, &payload());
            let label = format!("{token_alg} token under kid {}", kid(key_alg));
            if token_alg == key_alg {
                accept(&v, &token, &label);
            } else {
                expect_kind(&v, &token, ErrorKind::Algorithm, &label);
            }
        }
    }
}

#[test]
fn same_family_algorithms_are_not_interchangeable() {
    let rsa_pem = fixture("rsa2048.pub.pem");
    let token_for = |alg: Algorithm, kid: &str| {
        let header = json!({"alg": alg.as_str(), "kid": kid, "typ": "JWT"}).to_string();
        sign_raw(alg, &header, &payload())
    };

    // The RSA key only under "rs256", bound to RS256: the other RSA algorithms are not even on
    // the allow-list.
    let rs256_only = KeySet::builder()
        .pem(Some("rs256"), Algorithm::RS256, &rsa_pem)
        .unwrap()
        .build()
        .unwrap();
    let v = builder_for(rs256_only).build().unwrap();
    accept(&v, &token_for(Algorithm::RS256, "rs256"), "RS256 control");
    for alg in [
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ] {
        let label = format!("valid {alg} signature by the RS256 key");
        expect_kind(&v, &token_for(alg, "rs256"), ErrorKind::Algorithm, &label);
    }

    // The same RSA key also under other kids for RS384 and PS256, so those algorithms are
    // allowed: only the binding of "rs256" to RS256 refuses them there.
    let rsa_bound = KeySet::builder()
        .pem(Some("rs256"), Algorithm::RS256, &rsa_pem)
        .unwrap()
        .pem(Some("rs384"), Algorithm::RS384, &rsa_pem)
        .unwrap()
        .pem(Some("ps256"), Algorithm::PS256, &rsa_pem)
        .unwrap()
        .build()
        .unwrap();
    let v = builder_for(rsa_bound).build().unwrap();
    for (alg, kid, ok) in [
        (Algorithm::RS384, "rs256", false),
        (Algorithm::PS256, "rs256", false),
        (Algorithm::RS256, "ps256", false),
        (Algorithm::PS256, "rs384", false),
        (Algorithm::RS384, "rs384", true),
        (Algorithm::PS256, "ps256", true),
        (Algorithm::RS256, "rs256", true),
    ] {
        let label = format!("{alg} token under kid {kid}");
        if ok {
            accept(&v, &token_for(alg, kid), &label);
        } else {
            expect_kind(&v, &token_for(alg, kid), ErrorKind::Algorithm, &label);
        }
    }

    // HMAC: one 64-byte secret bound to HS256 under "hs256" and to HS384 under "hs384".
    let secret = [0x5a; 64];
    let keys = KeySet::builder()
        .hmac(Some("hs256"), Algorithm::HS256, &secret)
        .unwrap()
        .hmac(Some("hs384"), Algorithm::HS384, &secret)
        .unwrap()
        .build()
        .unwrap();
    let v = builder_for(keys).build().unwrap();
    let hmac_token = |alg: Algorithm, kid: &str| {
        let header = json!({"alg": alg.as_str(), "kid": kid}).to_string();
        TokenSigner::hmac(alg, &secret)
            .unwrap()
            .sign_raw(header.as_bytes(), payload().as_bytes())
            .unwrap()
    };
    accept(&v, &hmac_token(Algorithm::HS384, "hs384"), "HS384 control");
    accept(&v, &hmac_token(Algorithm::HS256, "hs256"), "HS256 control");
    expect_kind(
        &v,
        &hmac_token(Algorithm::HS384, "hs256"),
        ErrorKind::Algorithm,
        "HS384 token under the HS256-bound kid",
    );
    expect_kind(
        &v,
        &hmac_token(Algorithm::HS256, "hs384"),
        ErrorKind::Algorithm,
        "HS256 token under the HS384-bound kid",
    );

    // EC: an ES384 header on the ES256 key, both with a P-384 signature and with the P-256
    // key's own ES256 signature.
    let keys = KeySet::builder()
        .pem(Some("es256"), Algorithm::ES256, &fixture("p256.pub.pem"))
        .unwrap()
        .pem(Some("es384"), Algorithm::ES384, &fixture("p384.pub.pem"))
        .unwrap()
        .build()
        .unwrap();
    let v = builder_for(keys).build().unwrap();
    let es384_header = json!({"alg": "ES384", "kid": "es256"}).to_string();
    expect_kind(
        &v,
        &sign_raw(Algorithm::ES384, &es384_header, &payload()),
        ErrorKind::Algorithm,
        "P-384 signature under the ES256 kid",
    );
    expect_kind(
        &v,
        &sign_raw(Algorithm::ES256, &es384_header, &payload()),
        ErrorKind::Algorithm,
        "P-256 signature with an ES384 header under the ES256 kid",
    );
    accept(&v, &token_for(Algorithm::ES256, "es256"), "ES256 control");
    accept(&v, &token_for(Algorithm::ES384, "es384"), "ES384 control");
}

// ------------------------------------------------------------------------------------------
// Step 3: `kid`
// ------------------------------------------------------------------------------------------

#[test]
fn unknown_and_hostile_kids_select_no_key() {
    let v = verifier();
    for hostile in [
        "unknown",
        "../../etc/passwd",
        "/dev/null",
        "' OR 1=1 --",
        "hs256' OR '1'='1",
        "HS256",
        "hs256 ",
        " hs256",
        "hs2",
        "hs256\u{0}",
        "",
        "${jndi:ldap://x}",
    ] {
        let token = sign_raw(HS256, &hs_header(json!({ "kid": hostile })), &payload());
        expect_kind(
            &v,
            &token,
            ErrorKind::UnknownKey,
            &format!("kid {hostile:?}"),
        );
    }
    accept(
        &v,
        &sign_raw(HS256, &hs_header(json!({"kid": "hs256"})), &payload()),
        "control",
    );
}

#[test]
fn a_ten_kilobyte_kid_is_stopped_by_the_length_cap() {
    let long_kid = "k".repeat(10 * 1024);
    let token = sign_raw(HS256, &hs_header(json!({ "kid": long_kid })), &payload());
    assert!(token.len() > DEFAULT_MAX_TOKEN_LEN);
    expect_kind(
        &verifier(),
        &token,
        ErrorKind::TooLong,
        "10 KB kid, default cap",
    );

    let raised = builder().max_token_len(64 * 1024).unwrap().build().unwrap();
    expect_kind(
        &raised,
        &token,
        ErrorKind::UnknownKey,
        "10 KB kid, raised cap",
    );

    // Control: a key registered under that kid verifies it once the cap allows the length, so
    // the TooLong above came from the cap alone.
    let keys = KeySet::builder()
        .hmac(Some(&long_kid), HS256, &hmac_secret(HS256))
        .unwrap()
        .build()
        .unwrap();
    let with_key = builder_for(keys.clone()).max_token_len(64 * 1024).unwrap();
    accept(&with_key.build().unwrap(), &token, "10 KB kid with its key");
    expect_kind(
        &builder_for(keys).build().unwrap(),
        &token,
        ErrorKind::TooLong,
        "10 KB kid with its key, default cap",
    );
}

#[test]
fn a_kid_that_is_not_a_string_is_malformed() {
    // Against a single-key set, where a kid treated as absent would select the key.
    let single = builder_for(single_key(HS256)).build().unwrap();
    for (label, kid) in [
        ("number", "7"),
        ("null", "null"),
        ("object", r#"{"kid":"hs256"}"#),
        ("array", r#"["hs256"]"#),
        ("bool", "true"),
    ] {
        let header = format!(r#"{{"alg":"HS256","typ":"JWT","kid":{kid}}}"#);
        let token = sign_raw(HS256, &header, &payload());
        expect_kind(
            &single,
            &token,
            ErrorKind::Malformed,
            &format!("kid {label}"),
        );
    }
    let header = r#"{"alg":"HS256","typ":"JWT","kid":"hs256"}"#;
    accept(&single, &sign_raw(HS256, header, &payload()), "string kid");
    let header = r#"{"alg":"HS256","typ":"JWT"}"#;
    accept(&single, &sign_raw(HS256, header, &payload()), "no kid");
}

#[test]
fn a_token_without_kid_needs_an_unambiguous_key() {
    let no_kid = |alg: Algorithm| {
        let header = json!({"alg": alg.as_str(), "typ": "JWT"}).to_string();
        sign_raw(alg, &header, &payload())
    };
    let all = verifier();
    for alg in Algorithm::ALL {
        expect_kind(
            &all,
            &no_kid(alg),
            ErrorKind::UnknownKey,
            &format!("{alg} without kid, multi-key set"),
        );
        let single = builder_for(single_key(alg)).build().unwrap();
        accept(
            &single,
            &no_kid(alg),
            &format!("{alg} without kid, single-key set"),
        );
    }

    // A set with a kid-less key beside keyed ones: a token without kid uses the kid-less key.
    let keys = KeySet::builder()
        .hmac(None, HS256, &hmac_secret(HS256))
        .unwrap()
        .pem(
            Some("es256"),
            Algorithm::ES256,
            &public_pem(Algorithm::ES256),
        )
        .unwrap()
        .build()
        .unwrap();
    let v = builder_for(keys).build().unwrap();
    accept(&v, &no_kid(HS256), "kid-less key selected");
    expect_kind(
        &v,
        &no_kid(Algorithm::ES256),
        ErrorKind::Algorithm,
        "kid-less HS256 key",
    );
    accept(
        &v,
        &sign(Algorithm::ES256, &claims()),
        "ES256 under its kid",
    );
    // A kid never falls back to the kid-less key.
    expect_kind(
        &v,
        &sign(HS256, &claims()),
        ErrorKind::UnknownKey,
        "kid hs256",
    );
}

// ------------------------------------------------------------------------------------------
// Step 3: `crit`
// ------------------------------------------------------------------------------------------

#[test]
fn critical_extensions_must_be_understood_and_present() {
    let plain = verifier();
    let understands = builder()
        .understood_critical("x-ext")
        .unwrap()
        .build()
        .unwrap();
    use ErrorKind::{Malformed, UnsupportedCritical};
    // (label, header changes, result with `plain`, result with `understands`)
    let cases: [(&str, Value, Option<ErrorKind>, Option<ErrorKind>); 13] = [
        ("no crit", json!({}), None, None),
        (
            "understood and present",
            json!({"crit": ["x-ext"], "x-ext": 1}),
            Some(UnsupportedCritical),
            None,
        ),
        (
            "unknown name",
            json!({"crit": ["x-unknown"], "x-unknown": 1}),
            Some(UnsupportedCritical),
            Some(UnsupportedCritical),
        ),
        (
            "one understood, one not",
            json!({"crit": ["x-ext", "x-unknown"], "x-ext": 1, "x-unknown": 1}),
            Some(UnsupportedCritical),
            Some(UnsupportedCritical),
        ),
        (
            "empty list",
            json!({"crit": []}),
            Some(UnsupportedCritical),
            Some(UnsupportedCritical),
        ),
        (
            "names a member not present",
            json!({"crit": ["x-ext"]}),
            Some(UnsupportedCritical),
            Some(UnsupportedCritical),
        ),
        (
            "repeated name",
            json!({"crit": ["x-ext", "x-ext"], "x-ext": 1}),
            Some(UnsupportedCritical),
            Some(UnsupportedCritical),
        ),
        (
            "registered name",
            json!({"crit": ["alg"]}),
            Some(UnsupportedCritical),
            Some(UnsupportedCritical),
        ),
        (
            "not an array",
            json!({"crit": "x-ext", "x-ext": 1}),
            Some(Malformed),
            Some(Malformed),
        ),
        (
            "array of non-strings",
            json!({"crit": [1], "x-ext": 1}),
            Some(Malformed),
            Some(Malformed),
        ),
        (
            "b64 false",
            json!({"b64": false}),
            Some(UnsupportedCritical),
            Some(UnsupportedCritical),
        ),
        (
            "b64 false, declared critical",
            json!({"b64": false, "crit": ["b64"]}),
            Some(UnsupportedCritical),
            Some(UnsupportedCritical),
        ),
        (
            "b64 not a bool",
            json!({"b64": "false"}),
            Some(Malformed),
            Some(Malformed),
        ),
    ];
    for (label, changes, with_plain, with_understood) in cases {
        // Signed by the real key: only the critical extension is in question.
        let token = sign_raw(HS256, &hs_header(changes), &payload());
        for (which, v, expected) in [
            ("plain", &plain, with_plain),
            ("understands x-ext", &understands, with_understood),
        ] {
            let label = format!("{label} ({which})");
            match expected {
                None => {
                    accept(v, &token, &label);
                }
                Some(kind) => expect_kind(v, &token, kind, &label),
            }
        }
    }
    let null_crit = sign_raw(
        HS256,
        r#"{"alg":"HS256","kid":"hs256","crit":null}"#,
        &payload(),
    );
    expect_kind(&understands, &null_crit, Malformed, "crit null");
}

// ------------------------------------------------------------------------------------------
// Step 3: `jku`, `x5u`, `jwk`, `x5c` are never used to find a key
// ------------------------------------------------------------------------------------------

/// An attacker's own P-256 key (generated for this test; it protects nothing).
const ATTACKER_P256_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgM7IL2qUoThJw8olv
X3h7W1lpFk9Ws1ERDEyP4+O5RDyhRANCAARHzAeyzSJz0klxt201cyTIay053kYE
gY4uueokphLLZt7ILklx9G87qiDl8bNH51lMr/cNePdNMTqJq1zwOAil
-----END PRIVATE KEY-----
";
const ATTACKER_X: &str = "R8wHss0ic9JJcbdtNXMkyGstOd5GBIGOLrnqJKYSy2Y";
const ATTACKER_Y: &str = "3sguSXH0bzuqIOXxs0fnWUyv9w14900xOomrXPA4CKU";

#[test]
fn keys_embedded_in_the_header_are_ignored() {
    let attacker = TokenSigner::from_pem(Algorithm::ES256, ATTACKER_P256_PKCS8.as_bytes()).unwrap();
    let attacker_jwk = json!({
        "kty": "EC", "crv": "P-256", "x": ATTACKER_X, "y": ATTACKER_Y,
        "use": "sig", "alg": "ES256", "kid": "attacker",
    });
    let header = |kid: Option<&str>| {
        let mut header = json!({
            "alg": "ES256",
            "typ": "JWT",
            "jwk": attacker_jwk,
            "jku": "https://attacker.example/jwks.json",
            "x5u": "https://attacker.example/cert.pem",
            "x5c": ["MIIBszCCAVmgAwIBAgIUQ2tDl3b1"],
        });
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        header.to_string()
    };
    let by_attacker = |kid: Option<&str>| {
        attacker
            .sign_raw(header(kid).as_bytes(), payload().as_bytes())
            .unwrap()
    };

    // Control: the attacker's tokens are genuinely valid for the embedded key.
    let attacker_keys = KeySet::from_jwk(attacker_jwk.to_string()).unwrap();
    let trusts_attacker = builder_for(attacker_keys).build().unwrap();
    accept(
        &trusts_attacker,
        &by_attacker(Some("attacker")),
        "attacker key control",
    );

    let all = verifier();
    let single_es256 = builder_for(single_key(Algorithm::ES256)).build().unwrap();
    // The kid picks our ES256 key, which did not make this signature.
    expect_kind(
        &all,
        &by_attacker(Some("es256")),
        ErrorKind::InvalidSignature,
        "kid of our key, attacker signature",
    );
    // A kid we do not have: the embedded jwk is no fallback, and jku is not fetched.
    expect_kind(
        &all,
        &by_attacker(Some("attacker")),
        ErrorKind::UnknownKey,
        "attacker's kid",
    );
    // No kid: ambiguous in a multi-key set; in a single-key set our key is used and fails.
    expect_kind(
        &all,
        &by_attacker(None),
        ErrorKind::UnknownKey,
        "no kid, multi-key",
    );
    expect_kind(
        &single_es256,
        &by_attacker(None),
        ErrorKind::InvalidSignature,
        "no kid, single key",
    );

    // Control: the same header signed by our key verifies: the members are ignored, not
    // refused.
    accept(
        &all,
        &sign_raw(Algorithm::ES256, &header(Some("es256")), &payload()),
        "our key, same header",
    );
    accept(
        &single_es256,
        &sign_raw(Algorithm::ES256, &header(None), &payload()),
        "our key, same header, no kid",
    );
}

// ------------------------------------------------------------------------------------------
// Step 3: `typ`
// ------------------------------------------------------------------------------------------

#[test]
fn typ_is_checked_only_when_required() {
    let at_jwt = builder().require_type("at+jwt").unwrap().build().unwrap();
    let any = verifier();
    let with_typ = |typ: Option<&str>| {
        let changes = match typ {
            Some(typ) => json!({ "typ": typ }),
            None => json!({"typ": null}),
        };
        sign_raw(HS256, &hs_header(changes), &payload())
    };
    for typ in [
        "at+jwt",
        "AT+JWT",
        "At+Jwt",
        "application/at+jwt",
        "Application/AT+JWT",
    ] {
        accept(&at_jwt, &with_typ(Some(typ)), &format!("typ {typ:?}"));
    }
    for typ in [
        "JWT",
        "jwt",
        "at+jwt ",
        "at+JWS",
        "application/jwt",
        "text/at+jwt",
        "application/",
        "",
        "at+jwt; charset=utf-8",
    ] {
        expect_kind(
            &at_jwt,
            &with_typ(Some(typ)),
            ErrorKind::WrongType,
            &format!("typ {typ:?}"),
        );
    }
    expect_kind(
        &at_jwt,
        &with_typ(None),
        ErrorKind::WrongType,
        "typ missing",
    );
    for (label, typ) in [
        ("number", "1"),
        ("null", "null"),
        ("array", r#"["at+jwt"]"#),
    ] {
        let header = format!(r#"{{"alg":"HS256","kid":"hs256","typ":{typ}}}"#);
        let token = sign_raw(HS256, &header, &payload());
        expect_kind(
            &at_jwt,
            &token,
            ErrorKind::Malformed,
            &format!("typ {label}"),
        );
        expect_kind(
            &any,
            &token,
            ErrorKind::Malformed,
            &format!("typ {label}, no policy"),
        );
    }

    // Without the requirement, any string typ, or none, passes.
    for typ in [
        Some("JWT"),
        Some("at+jwt"),
        Some("anything/else"),
        Some(""),
        None,
    ] {
        accept(&any, &with_typ(typ), &format!("no policy, typ {typ:?}"));
    }
    // The signer's at+jwt tokens pass the requirement across algorithms.
    for alg in Algorithm::ALL {
        let token = cached_signer(alg)
            .clone()
            .with_type("at+jwt")
            .sign(&claims())
            .unwrap();
        accept(&at_jwt, &token, &format!("{alg} at+jwt"));
        expect_kind(
            &at_jwt,
            &sign(alg, &claims()),
            ErrorKind::WrongType,
            &format!("{alg} JWT"),
        );
    }
}

// ------------------------------------------------------------------------------------------
// Step 2: structure and canonical base64url
// ------------------------------------------------------------------------------------------

/// Ways to write `segment` non-canonically, each decoding (leniently) to the same bytes.
fn non_canonical(segment: &str) -> Vec<(String, String)> {
    let mid = segment.len() / 2;
    let (head, tail) = segment.split_at(mid);
    let mut variants = vec![
        ("space".to_owned(), format!("{head} {tail}")),
        ("tab".to_owned(), format!("{head}\t{tail}")),
        ("newline".to_owned(), format!("{head}\n{tail}")),
        ("crlf".to_owned(), format!("{head}\r\n{tail}")),
        ("leading space".to_owned(), format!(" {segment}")),
        ("trailing newline".to_owned(), format!("{segment}\n")),
    ];
    // Padding and unused trailing bits exist only when the length is not a multiple of 4.
    if !segment.len().is_multiple_of(4) {
        let padding = "=".repeat(4 - segment.len() % 4);
        variants.push(("padding".to_owned(), format!("{segment}{padding}")));
        variants.push(("one padding char".to_owned(), format!("{segment}=")));
        variants.push((
            "non-zero trailing bits".to_owned(),
            flip_unused_bit(segment),
        ));
    }
    if let Some(at) = segment.find('-') {
        variants.push(("'+' for '-'".to_owned(), replace_at(segment, at, '+')));
    }
    if let Some(at) = segment.find('_') {
        variants.push(("'/' for '_'".to_owned(), replace_at(segment, at, '/')));
    }
    for (label, variant) in &variants {
        assert_eq!(
            lenient_decode(variant),
            lenient_decode(segment),
            "{label} must only change the encoding"
        );
    }
    variants
}

fn replace_at(s: &str, at: usize, c: char) -> String {
    let mut out = s.to_owned();
    out.replace_range(at..=at, &c.to_string());
    out
}

/// Changes the last character so only bits the decoder must ignore differ.
fn flip_unused_bit(segment: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = *segment.as_bytes().last().unwrap();
    let value = ALPHABET.iter().position(|&c| c == last).unwrap();
    // With 2 or 3 characters in the last quantum, at least the lowest 2 bits are unused.
    let flipped = char::from(ALPHABET[value ^ 1]);
    let mut out = segment[..segment.len() - 1].to_owned();
    out.push(flipped);
    out
}

/// JSON text whose base64url contains both `-` and `_` and has a length that is not a multiple
/// of 4: `filler` (`>>>???`) encodes to `-` and `_` at one of three alignments.
fn json_with_url_chars(object: &str) -> String {
    for offset in 0..12 {
        let text = insert_member(object, &format!("{}\"x\":\">>>???\"", " ".repeat(offset)));
        let encoded = b64(&text);
        if encoded.contains('-') && encoded.contains('_') && !encoded.len().is_multiple_of(4) {
            return text;
        }
    }
    panic!("no alignment gives '-' and '_'");
}

#[test]
fn non_canonical_base64url_in_header_or_payload_is_malformed_even_when_signed() {
    let v = verifier();
    let header = json_with_url_chars(&hs_header(json!({})));
    let payload = json_with_url_chars(&payload());
    let (h, p) = (b64(&header), b64(&payload));
    // Control: the canonical form, signed the same way, verifies.
    accept(&v, &sign_input_hs256(&format!("{h}.{p}")), "canonical");

    for (label, bad) in non_canonical(&h) {
        // The signature covers the exact (non-canonical) text: a lax decoder would accept it.
        let token = sign_input_hs256(&format!("{bad}.{p}"));
        expect_kind(
            &v,
            &token,
            ErrorKind::Malformed,
            &format!("header: {label}"),
        );
    }
    for (label, bad) in non_canonical(&p) {
        let token = sign_input_hs256(&format!("{h}.{bad}"));
        expect_kind(
            &v,
            &token,
            ErrorKind::Malformed,
            &format!("payload: {label}"),
        );
    }
    // The standard alphabet wholesale.
    let standard = |s: &str| s.replace('-', "+").replace('_', "/");
    let token = sign_input_hs256(&format!("{}.{}", standard(&h), standard(&p)));
    expect_kind(&v, &token, ErrorKind::Malformed, "standard alphabet");
}

#[test]
fn non_canonical_base64url_in_the_signature_is_malformed() {
    let v = verifier();
    let mut seen = std::collections::BTreeSet::new();
    for alg in Algorithm::ALL {
        let token = sign(alg, &claims());
        accept(&v, &token, &format!("{alg} control"));
        let [h, p, s] = parts(&token);
        for (label, bad) in non_canonical(s) {
            seen.insert(label.clone());
            // The signature bytes are unchanged: only the encoding rule can refuse this.
            let token = format!("{h}.{p}.{bad}");
            expect_kind(
                &v,
                &token,
                ErrorKind::Malformed,
                &format!("{alg} signature: {label}"),
            );
        }
    }
    // Every kind of variant ran for at least one algorithm.
    assert_eq!(seen.len(), 11, "{seen:?}");
}

#[test]
fn exactly_three_non_empty_segments() {
    let v = verifier();
    let token = sign(HS256, &claims());
    accept(&v, &token, "control");
    let [h, p, s] = parts(&token);
    for (label, bad) in [
        ("empty string", String::new()),
        ("one segment", h.to_owned()),
        ("two segments", format!("{h}.{p}")),
        ("two segments, trailing dot", format!("{h}.{p}.")),
        ("four segments", format!("{token}.{s}")),
        ("four segments, empty last", format!("{token}.")),
        ("five segments (JWE shape)", format!("{h}.{p}.{s}.{s}.{s}")),
        ("leading dot", format!(".{token}")),
        ("empty header", format!(".{p}.{s}")),
        ("empty signature", format!("{h}.{p}.")),
        ("only dots", "..".to_owned()),
        ("four dots", "....".to_owned()),
        ("no dots", token.replace('.', "")),
    ] {
        expect_kind(&v, &bad, ErrorKind::Malformed, label);
    }
}

#[test]
fn an_empty_payload_is_refused_before_the_signature() {
    let v = verifier();
    let h = b64(hs_header(json!({})));
    // A garbage signature: were the payload checked after the signature, this would be an
    // InvalidSignature.
    let garbage = format!("{h}..{}", b64([7u8; 32]));
    expect_kind(
        &v,
        &garbage,
        ErrorKind::Malformed,
        "empty payload, garbage signature",
    );
    // A valid signature over `header.`.
    let signed = sign_input_hs256(&format!("{h}."));
    expect_kind(
        &v,
        &signed,
        ErrorKind::Malformed,
        "empty payload, valid signature",
    );
    // Control: plain JWS (KeySet::verify_jws) allows an empty payload, so the verifier's JWT
    // rule is what refuses it; and a garbage signature there is an InvalidSignature.
    let keys = single_key(HS256);
    assert_eq!(keys.verify_jws(&signed).unwrap().payload(), b"");
    assert_eq!(
        keys.verify_jws(&garbage).unwrap_err().kind(),
        ErrorKind::InvalidSignature
    );
}

#[test]
fn verify_jws_runs_steps_one_to_four() {
    let keys = common::all_keys();
    let plain = sign_raw(HS256, &hs_header(json!({})), "not json at all");
    let jws = keys.verify_jws(&plain).unwrap();
    assert_eq!(jws.payload(), b"not json at all");
    assert_eq!(jws.algorithm(), HS256);
    assert!(
        !format!("{jws:?}").contains("not json"),
        "Debug shows no payload"
    );
    let header: Value = serde_json::from_slice(jws.header()).unwrap();
    assert_eq!(header["kid"], "hs256");

    for (label, token, kind) in [
        (
            "alg none",
            sign_raw(HS256, &hs_header(json!({"alg": "none"})), "x"),
            ErrorKind::Algorithm,
        ),
        (
            "unknown kid",
            sign_raw(HS256, &hs_header(json!({"kid": "nope"})), "x"),
            ErrorKind::UnknownKey,
        ),
        (
            "crit",
            sign_raw(HS256, &hs_header(json!({"crit": ["x"], "x": 1})), "x"),
            ErrorKind::UnsupportedCritical,
        ),
        (
            "duplicate header member",
            sign_raw(HS256, r#"{"alg":"HS256","kid":"hs256","kid":"hs256"}"#, "x"),
            ErrorKind::Malformed,
        ),
        (
            "bad signature",
            format!("{}.{}", signing_input(&plain), b64([1u8; 32])),
            ErrorKind::InvalidSignature,
        ),
        (
            "too long",
            "a".repeat(DEFAULT_MAX_TOKEN_LEN + 1),
            ErrorKind::TooLong,
        ),
    ] {
        assert_eq!(keys.verify_jws(&token).unwrap_err().kind(), kind, "{label}");
    }
}

// ------------------------------------------------------------------------------------------
// Step 3 and 5: strict JSON
// ------------------------------------------------------------------------------------------

#[test]
fn duplicate_header_members_are_malformed() {
    let v = verifier();
    let single = builder_for(single_key(HS256)).build().unwrap();
    for (label, header) in [
        (
            "alg twice",
            r#"{"alg":"HS256","alg":"HS256","kid":"hs256"}"#,
        ),
        (
            "alg twice, second none",
            r#"{"alg":"HS256","kid":"hs256","alg":"none"}"#,
        ),
        (
            "escaped alg",
            r#"{"alg":"HS256","kid":"hs256","\u0061lg":"HS256"}"#,
        ),
        (
            "kid twice",
            r#"{"alg":"HS256","kid":"hs256","kid":"hs256"}"#,
        ),
        (
            "kid twice, different",
            r#"{"alg":"HS256","kid":"es256","kid":"hs256"}"#,
        ),
        (
            "escaped kid",
            r#"{"alg":"HS256","k\u0069d":"hs256","kid":"hs256"}"#,
        ),
        (
            "typ twice",
            r#"{"alg":"HS256","kid":"hs256","typ":"JWT","typ":"JWT"}"#,
        ),
        (
            "crit twice",
            r#"{"alg":"HS256","kid":"hs256","crit":["x"],"crit":["x"],"x":1}"#,
        ),
        (
            "unknown twice",
            r#"{"alg":"HS256","kid":"hs256","x":1,"x":1}"#,
        ),
        (
            "unknown twice, escaped",
            r#"{"alg":"HS256","kid":"hs256","x":1,"\u0078":2}"#,
        ),
        (
            "jku twice",
            r#"{"alg":"HS256","kid":"hs256","jku":"a","jku":"a"}"#,
        ),
        (
            "nested duplicate",
            r#"{"alg":"HS256","kid":"hs256","x":{"y":1,"y":1}}"#,
        ),
        (
            "duplicate in array",
            r#"{"alg":"HS256","kid":"hs256","x":[{"y":1,"y":1}]}"#,
        ),
        (
            "nested in jwk",
            r#"{"alg":"HS256","kid":"hs256","jwk":{"kty":"oct","kty":"oct"}}"#,
        ),
    ] {
        let token = sign_raw(HS256, header, &payload());
        expect_kind(&v, &token, ErrorKind::Malformed, label);
        expect_kind(&single, &token, ErrorKind::Malformed, label);
    }
    // Control: the same shapes without duplicates.
    let header = r#"{"alg":"HS256","kid":"hs256","x":1,"\u0079":{"y":1,"z":[{"y":1}]}}"#;
    accept(&v, &sign_raw(HS256, header, &payload()), "no duplicates");
}

#[test]
fn duplicate_claims_are_malformed() {
    let v = verifier();
    let base = payload();
    for (label, member) in [
        ("sub twice", r#""sub":"user-1""#.to_owned()),
        ("sub twice, different", r#""sub":"admin""#.to_owned()),
        ("escaped sub", r#""\u0073ub":"user-1""#.to_owned()),
        ("exp twice", format!(r#""exp":{}"#, NOW + 600)),
        (
            "exp twice, expired first",
            format!(r#""exp":{}"#, NOW - 1000),
        ),
        ("iat twice", format!(r#""iat":{NOW}"#)),
        ("nbf twice", format!(r#""nbf":{NOW}"#)),
        ("iss twice", format!(r#""iss":"{ISSUER}""#)),
        ("aud twice", format!(r#""aud":"{AUDIENCE}""#)),
        ("jti twice", r#""jti":"token-1""#.to_owned()),
        ("roles twice", r#""roles":["admin"]"#.to_owned()),
        ("scope twice", r#""scope":"items:read""#.to_owned()),
    ] {
        let token = sign_raw(
            HS256,
            &common::header(HS256),
            &insert_member(&base, &member),
        );
        expect_kind(&v, &token, ErrorKind::Malformed, label);
    }
    for (label, payload) in [
        ("unknown twice", insert_member(&base, r#""x":1,"x":1"#)),
        (
            "unknown twice, escaped",
            insert_member(&base, r#""x":1,"\u0078":1"#),
        ),
        (
            "nested duplicate",
            insert_member(&base, r#""org":{"id":1,"id":2}"#),
        ),
        (
            "deeply nested",
            insert_member(&base, r#""a":[{"b":{"c":1,"c":1}}]"#),
        ),
    ] {
        let token = sign_raw(HS256, &common::header(HS256), &payload);
        expect_kind(&v, &token, ErrorKind::Malformed, label);
    }
    let token = sign_raw(
        HS256,
        &common::header(HS256),
        &insert_member(
            &base,
            r#""x":1,"org":{"id":1,"name":"a"},"a":[{"b":{"c":1}}]"#,
        ),
    );
    accept(&v, &token, "control without duplicates");

    // A nested duplicate inside a mapped roles claim too.
    let nested = builder()
        .roles_claim("/realm_access/roles")
        .unwrap()
        .build()
        .unwrap();
    let token = sign_raw(
        HS256,
        &common::header(HS256),
        &insert_member(&base, r#""realm_access":{"roles":["a"],"roles":["b"]}"#),
    );
    expect_kind(
        &nested,
        &token,
        ErrorKind::Malformed,
        "duplicate inside realm_access",
    );
}

#[test]
fn header_and_payload_must_be_json_objects() {
    let v = verifier();
    let single = builder_for(single_key(HS256)).build().unwrap();
    let not_objects = [
        ("array", r#"["alg","HS256"]"#),
        ("string", r#""HS256""#),
        ("number", "256"),
        ("null", "null"),
        ("bool", "true"),
        ("empty", ""),
        ("whitespace", "  "),
        ("trailing data", r#"{"alg":"HS256","kid":"hs256"}{}"#),
        ("trailing comma", r#"{"alg":"HS256","kid":"hs256",}"#),
        ("not json", "alg=HS256"),
        ("truncated", r#"{"alg":"HS256","kid":"hs2"#),
    ];
    for (label, header) in not_objects {
        let token = sign_raw(HS256, header, &payload());
        expect_kind(
            &single,
            &token,
            ErrorKind::Malformed,
            &format!("header {label}"),
        );
    }
    let invalid_utf8 = cached_signer(HS256)
        .sign_raw(
            b"{\"alg\":\"HS256\",\"kid\":\"\xff\"}",
            payload().as_bytes(),
        )
        .unwrap();
    expect_kind(&v, &invalid_utf8, ErrorKind::Malformed, "header not utf-8");

    let full = payload();
    for (label, payload) in [
        ("array", "[]".to_owned()),
        ("array of claims", r#"[{"sub":"a"}]"#.to_owned()),
        ("string", r#""sub""#.to_owned()),
        ("number", "1".to_owned()),
        ("null", "null".to_owned()),
        ("bool", "false".to_owned()),
        ("whitespace", " ".to_owned()),
        ("trailing data", format!("{full}x")),
        ("two objects", format!("{full}{full}")),
        ("truncated", full[..20].to_owned()),
    ] {
        let token = sign_raw(HS256, &common::header(HS256), &payload);
        expect_kind(
            &v,
            &token,
            ErrorKind::Malformed,
            &format!("payload {label}"),
        );
    }
    let mut bytes = payload().into_bytes();
    let at = bytes.len() - 1;
    bytes.splice(at..at, *b",\"x\":\"\xff\"");
    let token = cached_signer(HS256)
        .sign_raw(common::header(HS256).as_bytes(), &bytes)
        .unwrap();
    expect_kind(&v, &token, ErrorKind::Malformed, "payload not utf-8");
    // Control: surrounding whitespace in the JSON text itself is fine.
    let token = sign_raw(HS256, &common::header(HS256), &format!(" {} \n", payload()));
    accept(&v, &token, "whitespace around the object");
}

// ------------------------------------------------------------------------------------------
// Step 4: the signature
// ------------------------------------------------------------------------------------------

#[test]
fn any_change_to_header_payload_or_signature_breaks_the_signature() {
    let v = verifier();
    for alg in Algorithm::ALL {
        let token = sign(alg, &claims());
        accept(&v, &token, &format!("{alg} control"));
        let [h, p, s] = parts(&token);
        let mut signature = URL_SAFE_NO_PAD.decode(s).unwrap();

        let other_payload = b64(claims_with(json!({"sub": "admin"})).to_string());
        let other_header = b64(format!(
            r#"{{"typ":"at+jwt","alg":"{}","kid":"{}"}}"#,
            alg.as_str(),
            kid(alg)
        ));
        let other_token = sign(alg, &claims_with(json!({"jti": "other"})));
        let [_, _, other_signature] = parts(&other_token);
        let truncated = b64(&signature[..signature.len() - 1]);
        let mut extended = signature.clone();
        extended.push(0);
        let extended = b64(&extended);
        signature[0] ^= 0x01;
        let flipped_first = b64(&signature);
        signature[0] ^= 0x01;
        let last = signature.len() - 1;
        signature[last] ^= 0x80;
        let flipped_last = b64(&signature);
        for (label, bad) in [
            ("payload swapped", format!("{h}.{other_payload}.{s}")),
            ("header swapped", format!("{other_header}.{p}.{s}")),
            (
                "signature of another token",
                format!("{h}.{p}.{other_signature}"),
            ),
            ("first bit flipped", format!("{h}.{p}.{flipped_first}")),
            ("last byte flipped", format!("{h}.{p}.{flipped_last}")),
            ("truncated", format!("{h}.{p}.{truncated}")),
            ("extended", format!("{h}.{p}.{extended}")),
            ("one byte", format!("{h}.{p}.AA")),
            (
                "all zero",
                format!("{h}.{p}.{}", b64(vec![0; signature.len()])),
            ),
        ] {
            expect_kind(
                &v,
                &bad,
                ErrorKind::InvalidSignature,
                &format!("{alg}: {label}"),
            );
        }
        // A signature longer than any algorithm produces is refused too.
        let huge = format!("{h}.{p}.{}", b64(vec![1u8; 1500]));
        let kind = reject(&v, &huge, "huge signature").kind();
        assert!(
            matches!(kind, ErrorKind::Malformed | ErrorKind::InvalidSignature),
            "{alg}: huge signature gave {kind:?}"
        );
    }
}

// ------------------------------------------------------------------------------------------
// Step 5: claims
// ------------------------------------------------------------------------------------------

#[test]
fn exp_and_iat_are_required_by_default_nbf_is_not() {
    let v = verifier();
    for name in ["exp", "iat", "sub", "iss", "aud", "jti"] {
        let token = sign(HS256, &claims_with(json!({ name: null })));
        expect_claim(
            &v,
            &token,
            ErrorKind::MissingClaim,
            name,
            &format!("{name} missing"),
        );
    }
    accept(
        &v,
        &sign(HS256, &claims_with(json!({"nbf": null}))),
        "nbf optional",
    );

    let nbf_required = builder().required_claims(["nbf"]).unwrap().build().unwrap();
    let token = sign(HS256, &claims_with(json!({"nbf": null})));
    expect_claim(
        &nbf_required,
        &token,
        ErrorKind::MissingClaim,
        "nbf",
        "nbf required",
    );
    accept(&nbf_required, &sign(HS256, &claims()), "nbf present");
}

#[test]
fn wrongly_typed_or_out_of_range_dates_are_invalid() {
    let v = verifier();
    let bad_values = [
        ("string", format!("\"{}\"", NOW + 10)),
        ("bool", "true".to_owned()),
        ("null", "null".to_owned()),
        ("array", format!("[{}]", NOW + 10)),
        ("object", format!("{{\"secs\":{}}}", NOW + 10)),
        ("1e300", "1e300".to_owned()),
        ("-1", "-1".to_owned()),
        ("-0.5", "-0.5".to_owned()),
        ("negative large", "-1750000000".to_owned()),
        ("year 10000", "253402300800".to_owned()),
        ("u64 max", "18446744073709551615".to_owned()),
        ("beyond u64", "18446744073709551616".to_owned()),
    ];
    for name in ["exp", "nbf", "iat"] {
        for (label, raw) in &bad_values {
            let token = sign_raw(HS256, &common::header(HS256), &payload_with_raw(name, raw));
            expect_claim(
                &v,
                &token,
                ErrorKind::InvalidClaim,
                name,
                &format!("{name} {label}"),
            );
        }
    }
    // Controls: the largest accepted date, and zero.
    let token = sign_raw(
        HS256,
        &common::header(HS256),
        &payload_with_raw("exp", "253402300799"),
    );
    let claims = accept(&v, &token, "exp 9999-12-31T23:59:59Z");
    assert_eq!(claims.expires_at().unwrap().as_secs(), 253_402_300_799);
    let token = sign_raw(HS256, &common::header(HS256), &payload_with_raw("iat", "0"));
    accept(&v, &token, "iat 0");
    let token = sign_raw(
        HS256,
        &common::header(HS256),
        &payload_with_raw("nbf", "0.0"),
    );
    accept(&v, &token, "nbf 0.0");
    let token = sign_raw(
        HS256,
        &common::header(HS256),
        &payload_with_raw("exp", "1.75e10"),
    );
    accept(&v, &token, "exp in exponent notation");
}

#[test]
fn a_date_beyond_the_f64_range_is_an_invalid_claim() {
    // 1e400 is a JSON number by the grammar (RFC 8259 section 6) but beyond f64. It is an
    // out-of-range value of a well-formed payload, which `ErrorKind::InvalidClaim` documents
    // ("a claim has the wrong JSON type or an out-of-range value"), like 1e300 above.
    let v = verifier();
    for name in ["exp", "nbf", "iat"] {
        for raw in ["1e400", "-1e400"] {
            let token = sign_raw(HS256, &common::header(HS256), &payload_with_raw(name, raw));
            expect_claim(
                &v,
                &token,
                ErrorKind::InvalidClaim,
                name,
                &format!("{name} {raw}"),
            );
        }
    }
}

#[test]
fn fractional_dates_are_accepted() {
    let v = verifier();
    let now = NOW as f64;
    let token = sign(
        HS256,
        &claims_with(json!({"exp": now + 600.5, "nbf": now - 0.5, "iat": now - 0.25})),
    );
    let claims = accept(&v, &token, "fractional dates");
    assert_eq!(claims.expires_at().unwrap().as_secs_f64(), now + 600.5);
    assert_eq!(claims.not_before().unwrap().as_secs_f64(), now - 0.5);
    assert_eq!(claims.issued_at().unwrap().as_secs_f64(), now - 0.25);
    assert_eq!(claims.expires_at().unwrap().as_secs(), NOW + 600);
}

#[test]
fn time_claims_honour_the_default_leeway_at_the_boundaries() {
    let v = verifier();
    let now = NOW as f64;
    // (label, changes, None = accepted or Some((kind, claim)))
    let cases = [
        ("exp = now - 29", json!({"exp": NOW - 29}), None),
        ("exp = now - 29.5", json!({"exp": now - 29.5}), None),
        (
            "exp = now - 30",
            json!({"exp": NOW - 30}),
            Some((ErrorKind::Expired, "exp")),
        ),
        (
            "exp = now - 30.5",
            json!({"exp": now - 30.5}),
            Some((ErrorKind::Expired, "exp")),
        ),
        (
            "exp = 0",
            json!({"exp": 0}),
            Some((ErrorKind::Expired, "exp")),
        ),
        ("nbf = now + 30", json!({"nbf": NOW + 30}), None),
        ("nbf = now + 29.5", json!({"nbf": now + 29.5}), None),
        (
            "nbf = now + 30.5",
            json!({"nbf": now + 30.5}),
            Some((ErrorKind::NotYetValid, "nbf")),
        ),
        (
            "nbf = now + 31",
            json!({"nbf": NOW + 31}),
            Some((ErrorKind::NotYetValid, "nbf")),
        ),
        ("iat = now + 30", json!({"iat": NOW + 30}), None),
        (
            "iat = now + 30.5",
            json!({"iat": now + 30.5}),
            Some((ErrorKind::IssuedInFuture, "iat")),
        ),
        (
            "iat = now + 31",
            json!({"iat": NOW + 31}),
            Some((ErrorKind::IssuedInFuture, "iat")),
        ),
        ("iat long ago", json!({"iat": NOW - 86_400 * 365}), None),
    ];
    for (label, changes, expected) in cases {
        let token = sign(HS256, &claims_with(changes));
        match expected {
            None => {
                accept(&v, &token, label);
            }
            Some((kind, claim)) => expect_claim(&v, &token, kind, claim, label),
        }
    }
}

#[test]
fn a_custom_leeway_moves_the_boundaries() {
    let strict = builder().leeway(Duration::ZERO).build().unwrap();
    let loose = builder().leeway(Duration::from_secs(120)).build().unwrap();
    let now = NOW as f64;
    // (label, changes, with zero leeway, with 120 s leeway); None = accepted.
    let cases = [
        ("exp = now + 1", json!({"exp": NOW + 1}), None, None),
        ("exp = now + 0.5", json!({"exp": now + 0.5}), None, None),
        (
            "exp = now",
            json!({"exp": NOW}),
            Some(ErrorKind::Expired),
            None,
        ),
        (
            "exp = now - 29",
            json!({"exp": NOW - 29}),
            Some(ErrorKind::Expired),
            None,
        ),
        (
            "exp = now - 119",
            json!({"exp": NOW - 119}),
            Some(ErrorKind::Expired),
            None,
        ),
        (
            "exp = now - 120",
            json!({"exp": NOW - 120}),
            Some(ErrorKind::Expired),
            Some(ErrorKind::Expired),
        ),
        ("nbf = now", json!({"nbf": NOW}), None, None),
        (
            "nbf = now + 0.5",
            json!({"nbf": now + 0.5}),
            Some(ErrorKind::NotYetValid),
            None,
        ),
        (
            "nbf = now + 30",
            json!({"nbf": NOW + 30}),
            Some(ErrorKind::NotYetValid),
            None,
        ),
        (
            "nbf = now + 121",
            json!({"nbf": NOW + 121}),
            Some(ErrorKind::NotYetValid),
            Some(ErrorKind::NotYetValid),
        ),
        ("iat = now", json!({"iat": NOW}), None, None),
        (
            "iat = now + 1",
            json!({"iat": NOW + 1}),
            Some(ErrorKind::IssuedInFuture),
            None,
        ),
        (
            "iat = now + 120",
            json!({"iat": NOW + 120}),
            Some(ErrorKind::IssuedInFuture),
            None,
        ),
        (
            "iat = now + 121",
            json!({"iat": NOW + 121}),
            Some(ErrorKind::IssuedInFuture),
            Some(ErrorKind::IssuedInFuture),
        ),
    ];
    for (label, changes, zero, wide) in cases {
        let token = sign(HS256, &claims_with(changes));
        for (which, v, expected) in [("zero leeway", &strict, zero), ("120 s", &loose, wide)] {
            let label = format!("{label}, {which}");
            match expected {
                None => {
                    accept(v, &token, &label);
                }
                Some(kind) => expect_kind(v, &token, kind, &label),
            }
        }
    }
}

#[test]
fn the_clock_is_the_injected_one() {
    let token = sign(HS256, &claims());
    let later = builder()
        .clock(|| common::at(NOW + 600 + 30))
        .build()
        .unwrap();
    expect_claim(
        &later,
        &token,
        ErrorKind::Expired,
        "exp",
        "clock at exp + leeway",
    );
    let earlier = builder().clock(|| common::at(NOW - 31)).build().unwrap();
    expect_claim(
        &earlier,
        &token,
        ErrorKind::NotYetValid,
        "nbf",
        "clock before nbf",
    );
    let just_before = builder()
        .clock(|| common::at(NOW + 600 + 29))
        .build()
        .unwrap();
    accept(&just_before, &token, "clock just inside the leeway");
}

#[test]
fn iss_must_be_an_exactly_matching_string() {
    let v = verifier();
    for (label, iss) in [
        ("prefix", json!("https://issuer.tes")),
        ("superstring", json!("https://issuer.test/")),
        ("suffix added", json!("https://issuer.test.evil")),
        ("different case", json!("HTTPS://ISSUER.TEST")),
        ("whitespace", json!(" https://issuer.test")),
        ("empty", json!("")),
        ("other", json!("https://evil.test")),
    ] {
        let token = sign(HS256, &claims_with(json!({ "iss": iss })));
        expect_claim(
            &v,
            &token,
            ErrorKind::WrongIssuer,
            "iss",
            &format!("iss {label}"),
        );
    }
    for (label, iss) in [
        ("number", "42"),
        ("array of the issuer", r#"["https://issuer.test"]"#),
        ("object", r#"{"iss":"https://issuer.test"}"#),
        ("bool", "true"),
        ("null", "null"),
    ] {
        let token = sign_raw(HS256, &common::header(HS256), &payload_with_raw("iss", iss));
        expect_claim(
            &v,
            &token,
            ErrorKind::InvalidClaim,
            "iss",
            &format!("iss {label}"),
        );
    }
    // An escaped but equal string is the same string.
    let token = sign_raw(
        HS256,
        &common::header(HS256),
        &payload_with_raw("iss", r#""https:\/\/issuer.test""#),
    );
    accept(&v, &token, "escaped solidus");

    let several = builder().issuer("https://second.test").build().unwrap();
    for iss in [ISSUER, "https://second.test"] {
        let token = sign(HS256, &claims_with(json!({ "iss": iss })));
        accept(&several, &token, &format!("accepted issuer {iss}"));
    }
    let token = sign(HS256, &claims_with(json!({"iss": "https://third.test"})));
    expect_claim(
        &several,
        &token,
        ErrorKind::WrongIssuer,
        "iss",
        "third issuer",
    );
}

#[test]
fn aud_must_contain_an_accepted_audience() {
    let v = verifier();
    let aud = |aud: Value| sign(HS256, &claims_with(json!({ "aud": aud })));
    accept(&v, &aud(json!("api")), "string");
    accept(&v, &aud(json!(["api"])), "array of ours");
    let claims = accept(
        &v,
        &aud(json!(["other", "api", "third"])),
        "ours among others",
    );
    assert_eq!(claims.audience(), ["other", "api", "third"]);
    for (label, value) in [
        ("empty array", json!([])),
        ("array of others", json!(["other", "third"])),
        ("other string", json!("other")),
        ("different case", json!("API")),
        ("prefix", json!("ap")),
        ("superstring", json!("api2")),
        ("space separated", json!("api other")),
        ("empty string", json!("")),
    ] {
        expect_claim(
            &v,
            &aud(value),
            ErrorKind::WrongAudience,
            "aud",
            &format!("aud {label}"),
        );
    }
    for (label, raw) in [
        ("number", "7"),
        ("array with a number", r#"["api",7]"#),
        ("nested array", r#"[["api"]]"#),
        ("object", r#"{"aud":"api"}"#),
        ("bool", "false"),
        ("null", "null"),
    ] {
        let token = sign_raw(HS256, &common::header(HS256), &payload_with_raw("aud", raw));
        expect_claim(
            &v,
            &token,
            ErrorKind::InvalidClaim,
            "aud",
            &format!("aud {label}"),
        );
    }
    let token = sign(HS256, &claims_with(json!({"aud": null})));
    expect_claim(&v, &token, ErrorKind::MissingClaim, "aud", "aud missing");

    let several = builder().audience("billing").build().unwrap();
    accept(&several, &aud(json!("billing")), "second accepted audience");
    accept(
        &several,
        &aud(json!(["x", "billing"])),
        "second accepted, in an array",
    );
    accept(&several, &aud(json!("api")), "first accepted audience");
    expect_claim(
        &several,
        &aud(json!(["x", "y"])),
        ErrorKind::WrongAudience,
        "aud",
        "neither",
    );
}

#[test]
fn sub_and_jti_must_be_strings() {
    let v = verifier();
    for name in ["sub", "jti"] {
        for (label, raw) in [
            ("number", "7"),
            ("object", r#"{"id":"u"}"#),
            ("null", "null"),
            ("array", r#"["u"]"#),
            ("bool", "true"),
        ] {
            let token = sign_raw(HS256, &common::header(HS256), &payload_with_raw(name, raw));
            expect_claim(
                &v,
                &token,
                ErrorKind::InvalidClaim,
                name,
                &format!("{name} {label}"),
            );
        }
    }
    let token = sign_raw(
        HS256,
        &common::header(HS256),
        &payload_with_raw("sub", r#""""#),
    );
    accept(&v, &token, "empty sub is a string");

    // required_claims([]) makes them optional; a wrong type still fails.
    let lax = builder()
        .required_claims(std::iter::empty::<&str>())
        .unwrap()
        .build()
        .unwrap();
    let token = sign(
        HS256,
        &claims_with(json!({"sub": null, "jti": null, "exp": null, "iat": null})),
    );
    expect_claim(
        &v,
        &token,
        ErrorKind::MissingClaim,
        "exp",
        "strict verifier",
    );
    let claims = accept(&lax, &token, "nothing required");
    assert_eq!((claims.subject(), claims.jwt_id()), (None, None));
    assert_eq!(claims.expires_at(), None);
    let token = sign_raw(HS256, &common::header(HS256), &payload_with_raw("sub", "7"));
    expect_claim(
        &lax,
        &token,
        ErrorKind::InvalidClaim,
        "sub",
        "optional but wrongly typed",
    );
}

#[test]
fn registered_claims_are_exposed_typed() {
    let claims = accept(&verifier(), &sign(HS256, &claims()), "default claims");
    assert_eq!(claims.issuer(), Some(ISSUER));
    assert_eq!(claims.subject(), Some("user-1"));
    assert_eq!(claims.jwt_id(), Some("token-1"));
    assert_eq!(claims.audience(), [AUDIENCE]);
    assert_eq!(claims.issued_at().unwrap().as_secs(), NOW);
    assert_eq!(claims.not_before().unwrap().as_secs(), NOW);
    assert_eq!(claims.expires_at().unwrap().as_secs(), NOW + 600);
    assert_eq!(
        claims.expires_at().unwrap().to_system_time(),
        common::at(NOW + 600)
    );
}

// ------------------------------------------------------------------------------------------
// Step 1: the length cap
// ------------------------------------------------------------------------------------------

#[test]
fn the_length_cap_applies_before_decoding() {
    let v = verifier();
    // Garbage: one byte over the cap is TooLong, at the cap it is (merely) Malformed.
    let over = "a".repeat(DEFAULT_MAX_TOKEN_LEN + 1);
    expect_kind(&v, &over, ErrorKind::TooLong, "cap + 1 bytes of garbage");
    let at_cap = "a".repeat(DEFAULT_MAX_TOKEN_LEN);
    expect_kind(&v, &at_cap, ErrorKind::Malformed, "cap bytes of garbage");
    let dots = ".".repeat(DEFAULT_MAX_TOKEN_LEN + 1);
    expect_kind(&v, &dots, ErrorKind::TooLong, "cap + 1 dots");

    // A valid token against a cap at its length and one below.
    let token = sign(HS256, &claims());
    let exact = builder()
        .max_token_len(token.len())
        .unwrap()
        .build()
        .unwrap();
    accept(&exact, &token, "length exactly the cap");
    let below = builder()
        .max_token_len(token.len() - 1)
        .unwrap()
        .build()
        .unwrap();
    expect_kind(&below, &token, ErrorKind::TooLong, "length cap - 1");

    // A valid token just over the default cap (a large claim), and with the cap raised.
    let filler = "x".repeat(DEFAULT_MAX_TOKEN_LEN);
    let big = sign(HS256, &claims_with(json!({ "filler": filler })));
    assert!(big.len() > DEFAULT_MAX_TOKEN_LEN);
    expect_kind(&v, &big, ErrorKind::TooLong, "valid but too long");
    let raised = builder().max_token_len(big.len()).unwrap().build().unwrap();
    accept(&raised, &big, "valid with the cap raised");
    // An expired, badly signed, oversized token is still just TooLong.
    let bad = format!("{}.{}", signing_input(&big), b64([0u8; 32]));
    expect_kind(&v, &bad, ErrorKind::TooLong, "too long and badly signed");
}

// ------------------------------------------------------------------------------------------
// Roles and scopes
// ------------------------------------------------------------------------------------------

#[test]
fn roles_and_scopes_are_normalised_once() {
    let v = verifier();
    let claims = accept(&v, &sign(HS256, &claims()), "default claims");
    assert_eq!(claims.roles(), ["admin", "user"]);
    assert_eq!(claims.scopes(), ["items:read", "items:write", "profile"]);

    for (label, changes, scopes) in [
        (
            "scope string",
            json!({"scope": "a b  c"}),
            vec!["a", "b", "c"],
        ),
        (
            "scp array",
            json!({"scope": null, "scp": ["a", "b"]}),
            vec!["a", "b"],
        ),
        (
            "scp string",
            json!({"scope": null, "scp": "a b"}),
            vec!["a", "b"],
        ),
        ("no scopes", json!({"scope": null}), vec![]),
        ("empty scope", json!({"scope": ""}), vec![]),
    ] {
        let claims = accept(&v, &sign(HS256, &claims_with(changes)), label);
        assert_eq!(claims.scopes(), scopes, "{label}");
    }
    let claims = accept(
        &v,
        &sign(HS256, &claims_with(json!({"roles": null}))),
        "no roles",
    );
    assert!(claims.roles().is_empty());

    let token = sign(HS256, &claims_with(json!({"scp": ["items:read"]})));
    expect_claim(
        &v,
        &token,
        ErrorKind::InvalidClaim,
        "scope",
        "both scope and scp",
    );
    let token = sign(HS256, &claims_with(json!({"scope": null, "scp": []})));
    accept(&v, &token, "scp alone, empty");

    for (label, value) in [
        ("string", json!("admin")),
        ("array with a number", json!(["admin", 1])),
        ("object", json!({"admin": true})),
        ("nested array", json!([["admin"]])),
        ("number", json!(1)),
    ] {
        let token = sign(HS256, &claims_with(json!({ "roles": value })));
        expect_claim(
            &v,
            &token,
            ErrorKind::InvalidClaim,
            "roles",
            &format!("roles {label}"),
        );
    }
    for (label, value) in [
        ("array", json!(["items:read"])),
        ("number", json!(1)),
        ("object", json!({})),
    ] {
        let token = sign(HS256, &claims_with(json!({ "scope": value })));
        expect_claim(
            &v,
            &token,
            ErrorKind::InvalidClaim,
            "scope",
            &format!("scope {label}"),
        );
    }
    let token = sign(HS256, &claims_with(json!({"scope": null, "scp": 5})));
    expect_claim(&v, &token, ErrorKind::InvalidClaim, "scp", "scp number");
    let token = sign(HS256, &claims_with(json!({"scope": null, "scp": ["a", 5]})));
    expect_claim(
        &v,
        &token,
        ErrorKind::InvalidClaim,
        "scp",
        "scp with a number",
    );
    // RFC 6749 section 3.3: a scope token is non-empty and has no space.
    for (label, value) in [
        ("a token with a space", json!(["items:read items:write"])),
        ("an empty token", json!(["items:read", ""])),
        ("a lone space", json!([" "])),
    ] {
        let token = sign(HS256, &claims_with(json!({"scope": null, "scp": value})));
        expect_claim(
            &v,
            &token,
            ErrorKind::InvalidClaim,
            "scp",
            &format!("scp {label}"),
        );
    }
    let token = sign(HS256, &claims_with(json!({"scope": "  a   b  "})));
    let claims = accept(&v, &token, "scope with extra spaces");
    assert_eq!(claims.scopes().as_str(), "a b");
    assert_eq!(claims.scopes().len(), 2);
    assert_eq!(claims.scopes().iter().collect::<Vec<_>>(), ["a", "b"]);
    assert!(claims.scopes().contains("b") && !claims.scopes().contains(""));
    let token = sign(HS256, &claims_with(json!({"scope": "   "})));
    assert!(accept(&v, &token, "blank scope").scopes().is_empty());
    let raw = payload_with_raw("roles", "null");
    expect_claim(
        &v,
        &sign_raw(HS256, &common::header(HS256), &raw),
        ErrorKind::InvalidClaim,
        "roles",
        "roles null",
    );
}

#[test]
fn role_and_scope_checks_are_exact_and_case_sensitive() {
    let claims = accept(&verifier(), &sign(HS256, &claims()), "default claims");
    assert!(claims.has_role("admin") && claims.has_role("user"));
    for role in [
        "Admin",
        "ADMIN",
        "admi",
        "admins",
        " admin",
        "",
        "admin user",
    ] {
        assert!(!claims.has_role(role), "role {role:?}");
    }
    assert!(claims.has_scope("items:read") && claims.has_scope("profile"));
    for scope in [
        "Items:read",
        "items",
        "items:",
        "items:read ",
        "",
        "items:read items:write",
    ] {
        assert!(!claims.has_scope(scope), "scope {scope:?}");
    }
    assert!(claims.has_all_scopes(["items:read", "items:write"]));
    assert!(claims.has_all_scopes(vec!["profile".to_owned()]));
    assert!(claims.has_all_scopes(std::iter::empty::<&str>()));
    assert!(!claims.has_all_scopes(["items:read", "items:delete"]));
    assert!(!claims.has_all_scopes(["ITEMS:READ"]));
    // Roles are not scopes and vice versa.
    assert!(!claims.has_scope("admin") && !claims.has_role("profile"));
}

#[test]
fn roles_and_scopes_can_live_elsewhere() {
    let v = builder()
        .roles_claim("/realm_access/roles")
        .unwrap()
        .build()
        .unwrap();
    let token = sign(
        HS256,
        &claims_with(json!({"realm_access": {"roles": ["reader"]}, "roles": ["admin"]})),
    );
    let claims = accept(&v, &token, "nested roles");
    assert_eq!(claims.roles(), ["reader"]);
    assert!(
        !claims.has_role("admin"),
        "the top-level roles claim is not used"
    );
    let token = sign(
        HS256,
        &claims_with(json!({"realm_access": {"roles": "reader"}})),
    );
    expect_claim(
        &v,
        &token,
        ErrorKind::InvalidClaim,
        "roles",
        "nested roles string",
    );
    let token = sign(HS256, &claims_with(json!({"realm_access": {"roles": [1]}})));
    expect_claim(
        &v,
        &token,
        ErrorKind::InvalidClaim,
        "roles",
        "nested roles number",
    );
    let token = sign(HS256, &claims_with(json!({"realm_access": {}})));
    assert!(accept(&v, &token, "nested roles absent").roles().is_empty());

    let groups = builder().roles_claim("groups").unwrap().build().unwrap();
    let token = sign(HS256, &claims_with(json!({"groups": ["ops"]})));
    let claims = accept(&groups, &token, "top-level groups");
    assert_eq!(claims.roles(), ["ops"]);
    let token = sign(HS256, &claims_with(json!({"groups": "ops"})));
    expect_claim(
        &groups,
        &token,
        ErrorKind::InvalidClaim,
        "roles",
        "groups string",
    );

    let perms = builder().scopes_claim("perms").unwrap().build().unwrap();
    let token = sign(HS256, &claims_with(json!({"perms": ["p:1", "p:2"]})));
    let claims = accept(&perms, &token, "scopes from perms array");
    assert_eq!(claims.scopes(), ["p:1", "p:2"]);
    assert!(
        !claims.has_scope("items:read"),
        "scope is not used once mapped"
    );
    let token = sign(HS256, &claims_with(json!({"perms": "p:1 p:2"})));
    assert_eq!(
        accept(&perms, &token, "perms string").scopes(),
        ["p:1", "p:2"]
    );
    let token = sign(HS256, &claims_with(json!({"perms": 5})));
    expect_claim(
        &perms,
        &token,
        ErrorKind::InvalidClaim,
        "scope",
        "perms number",
    );

    let nested = builder()
        .scopes_claim("/authz/scopes")
        .unwrap()
        .build()
        .unwrap();
    let token = sign(HS256, &claims_with(json!({"authz": {"scopes": "a b"}})));
    assert_eq!(
        accept(&nested, &token, "nested scopes").scopes(),
        ["a", "b"]
    );
    let token = sign(HS256, &claims_with(json!({"authz": {"scopes": {"a": 1}}})));
    expect_claim(
        &nested,
        &token,
        ErrorKind::InvalidClaim,
        "scope",
        "nested scopes object",
    );
    for (label, value) in [
        ("array with a space", json!({"authz": {"scopes": ["a b"]}})),
        (
            "array with a number",
            json!({"authz": {"scopes": ["a", 1]}}),
        ),
    ] {
        let token = sign(HS256, &claims_with(value));
        expect_claim(&nested, &token, ErrorKind::InvalidClaim, "scope", label);
    }
    let token = sign(HS256, &claims_with(json!({"perms": ["p:1", "p 2"]})));
    expect_claim(
        &perms,
        &token,
        ErrorKind::InvalidClaim,
        "scope",
        "perms with a space",
    );
}

// ------------------------------------------------------------------------------------------
// Claims<Extra>
// ------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
struct Tenant {
    tenant: String,
    plan: Option<String>,
}

#[test]
fn extra_claims_deserialise_into_the_applications_type() {
    let v = verifier();
    let token = sign(
        HS256,
        &claims_with(json!({"tenant": "acme", "plan": "gold"})),
    );
    let claims: Claims<Tenant> = v.verify_as(&token).unwrap();
    assert_eq!(claims.extra().tenant, "acme");
    assert_eq!(claims.extra().plan.as_deref(), Some("gold"));
    assert_eq!(claims.subject(), Some("user-1"));
    assert!(claims.has_role("admin") && claims.has_scope("profile"));
    // A clone is another handle on the same claims; by value, the remaining claims are
    // cloned out of a shared handle and moved out of the last one.
    let other = claims.clone();
    assert_eq!(other, claims);
    assert_eq!(other.into_extra().tenant, "acme");
    assert_eq!(claims.into_extra().tenant, "acme");

    let token = sign(HS256, &claims_with(json!({"tenant": "acme"})));
    let claims: Claims<Tenant> = v.verify_as(&token).unwrap();
    assert_eq!(claims.extra().plan, None);

    for (label, changes) in [
        ("tenant missing", json!({})),
        ("tenant a number", json!({"tenant": 7})),
        ("plan an array", json!({"tenant": "acme", "plan": ["gold"]})),
    ] {
        let token = sign(HS256, &claims_with(changes));
        let err = v.verify_as::<Tenant>(&token).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidClaim, "{label}");
        // The same token is fine for the default map.
        accept(&v, &token, label);
    }

    // The default extra is the map of the claims the crate does not consume.
    let token = sign(
        HS256,
        &claims_with(json!({"tenant": "acme", "org": {"id": 1}})),
    );
    let claims = accept(&v, &token, "default extra");
    let extra = claims.extra();
    assert_eq!(extra["tenant"], "acme");
    assert_eq!(extra["org"], json!({"id": 1}));
    for consumed in [
        "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "roles", "scope",
    ] {
        assert!(!extra.contains_key(consumed), "{consumed} in extra");
    }
}

// ------------------------------------------------------------------------------------------
// Errors: no token bytes, and the documented order
// ------------------------------------------------------------------------------------------

#[test]
fn errors_never_contain_token_bytes() {
    let v = builder().require_type("at+jwt").unwrap().build().unwrap();
    let leaky_claims = claims_with(json!({
        "sub": "LEAKY-SUB", "jti": "LEAKY-JTI", "note": "LEAKY-PAYLOAD",
    }));
    let at_jwt = |claims: &Value| {
        let header = json!({"alg": "HS256", "kid": "hs256", "typ": "at+jwt"}).to_string();
        sign_raw(HS256, &header, &claims.to_string())
    };
    let valid = at_jwt(&leaky_claims);
    accept(&v, &valid, "control");
    let with_header =
        |header: Value| sign_raw(HS256, &header.to_string(), &leaky_claims.to_string());
    let cases = [
        (
            "unknown kid",
            with_header(json!({"alg": "HS256", "kid": "LEAKY-KID", "typ": "at+jwt"})),
        ),
        (
            "alg",
            with_header(json!({"alg": "LEAKY-ALG", "kid": "hs256"})),
        ),
        (
            "typ",
            with_header(json!({"alg": "HS256", "kid": "hs256", "typ": "LEAKY-TYP"})),
        ),
        (
            "crit",
            with_header(json!({"alg": "HS256", "kid": "hs256", "typ": "at+jwt",
                "crit": ["LEAKY-CRIT"], "LEAKY-CRIT": 1})),
        ),
        (
            "bad signature",
            format!(
                "{}.{}",
                signing_input(&valid),
                b64(b"LEAKY-SIGNATURE-BYTES!")
            ),
        ),
        (
            "expired",
            at_jwt(&claims_with(json!({"sub": "LEAKY-SUB", "exp": NOW - 3600}))),
        ),
        (
            "issuer",
            at_jwt(&claims_with(
                json!({"sub": "LEAKY-SUB", "iss": "LEAKY-ISS"}),
            )),
        ),
        (
            "audience",
            at_jwt(&claims_with(
                json!({"sub": "LEAKY-SUB", "aud": "LEAKY-AUD"}),
            )),
        ),
        (
            "sub type",
            at_jwt(&claims_with(json!({"sub": {"LEAKY-SUB": 1}}))),
        ),
        (
            "roles",
            at_jwt(&claims_with(
                json!({"sub": "LEAKY-SUB", "roles": "LEAKY-ROLE"}),
            )),
        ),
        ("malformed", format!("LEAKY.{}", &valid)),
        (
            "too long",
            format!("LEAKY{}", "A".repeat(DEFAULT_MAX_TOKEN_LEN)),
        ),
        (
            "duplicate",
            sign_raw(
                HS256,
                r#"{"alg":"HS256","kid":"hs256","typ":"at+jwt"}"#,
                r#"{"sub":"LEAKY-SUB","sub":"LEAKY-SUB"}"#,
            ),
        ),
    ];
    let mut kinds = Vec::new();
    for (label, token) in &cases {
        let err = reject(&v, token, label);
        kinds.push(err.kind());
        let [h, p, s] = {
            let mut it = token.splitn(3, '.');
            [
                it.next().unwrap_or(""),
                it.next().unwrap_or(""),
                it.next().unwrap_or(""),
            ]
        };
        for shown in [
            format!("{err}"),
            format!("{err:?}"),
            err.kind().as_str().to_owned(),
        ] {
            assert!(!shown.contains("LEAKY"), "{label}: {shown}");
            for segment in [h, p, s] {
                let probe = &segment[..segment.len().min(12)];
                assert!(
                    probe.len() < 4 || !shown.contains(probe),
                    "{label}: {shown}"
                );
            }
        }
    }
    kinds.sort_by_key(|k| k.as_str());
    kinds.dedup();
    assert!(kinds.len() >= 10, "the cases cover many kinds: {kinds:?}");
}

#[test]
fn errors_come_in_the_documented_order() {
    let v = builder()
        .require_type("at+jwt")
        .unwrap()
        .understood_critical("x-ext")
        .unwrap()
        .build()
        .unwrap();
    let good_header = json!({"alg": "HS256", "kid": "hs256", "typ": "at+jwt"});
    let header_with = |changes: Value| {
        let mut header = good_header.clone();
        for (name, value) in changes.as_object().unwrap() {
            header[name] = value.clone();
        }
        header.to_string()
    };
    let signed = |header: &str, claims: &Value| sign_raw(HS256, header, &claims.to_string());
    let bad_sig = |token: String| format!("{}.{}", signing_input(&token), b64([9u8; 32]));
    let good = signed(&good_header.to_string(), &claims());
    accept(&v, &good, "control");

    let expired = claims_with(json!({"exp": NOW - 3600}));
    let cases = [
        // 1 before everything.
        (
            "too long and malformed",
            format!("{}!", "=".repeat(DEFAULT_MAX_TOKEN_LEN)),
            ErrorKind::TooLong,
        ),
        // 2 before 3.
        (
            "alg none and non-canonical signature",
            format!(
                "{}=",
                signed(&header_with(json!({"alg": "none"})), &claims())
            ),
            ErrorKind::Malformed,
        ),
        (
            "alg none and two segments",
            signing_input(&signed(&header_with(json!({"alg": "none"})), &claims())).to_owned(),
            ErrorKind::Malformed,
        ),
        // Within 3: parsing, alg, kid, crit, typ.
        (
            "duplicate header member and alg none",
            sign_raw(
                HS256,
                r#"{"alg":"none","alg":"none","kid":"nope"}"#,
                &payload(),
            ),
            ErrorKind::Malformed,
        ),
        (
            "alg none and unknown kid",
            signed(
                &header_with(json!({"alg": "none", "kid": "nope"})),
                &claims(),
            ),
            ErrorKind::Algorithm,
        ),
        (
            "alg not bound to the key and unknown crit",
            signed(
                &header_with(json!({"alg": "HS384", "crit": ["x-no"], "x-no": 1})),
                &claims(),
            ),
            ErrorKind::Algorithm,
        ),
        (
            "unknown kid and unknown crit",
            signed(
                &header_with(json!({"kid": "nope", "crit": ["x-no"], "x-no": 1})),
                &claims(),
            ),
            ErrorKind::UnknownKey,
        ),
        (
            "unknown crit and wrong typ",
            signed(
                &header_with(json!({"typ": "JWT", "crit": ["x-no"], "x-no": 1})),
                &claims(),
            ),
            ErrorKind::UnsupportedCritical,
        ),
        // 3 before 4.
        (
            "wrong typ and bad signature",
            bad_sig(signed(&header_with(json!({"typ": "JWT"})), &claims())),
            ErrorKind::WrongType,
        ),
        (
            "unknown kid and bad signature",
            bad_sig(signed(&header_with(json!({"kid": "nope"})), &claims())),
            ErrorKind::UnknownKey,
        ),
        // 4 before 5.
        (
            "expired and bad signature",
            bad_sig(signed(&good_header.to_string(), &expired)),
            ErrorKind::InvalidSignature,
        ),
        (
            "duplicate claim and bad signature",
            bad_sig(sign_raw(
                HS256,
                &good_header.to_string(),
                &insert_member(&payload(), r#""sub":"x""#),
            )),
            ErrorKind::InvalidSignature,
        ),
        (
            "payload not json and bad signature",
            bad_sig(sign_raw(HS256, &good_header.to_string(), "not json")),
            ErrorKind::InvalidSignature,
        ),
        // Within 5: parse (types), required, exp, nbf, iat, iss, aud.
        (
            "wrongly typed sub and missing exp",
            signed(
                &good_header.to_string(),
                &claims_with(json!({"sub": 7, "exp": null})),
            ),
            ErrorKind::InvalidClaim,
        ),
        (
            "missing jti and expired",
            signed(
                &good_header.to_string(),
                &claims_with(json!({"jti": null, "exp": NOW - 3600})),
            ),
            ErrorKind::MissingClaim,
        ),
        (
            "expired and issued in the future",
            signed(
                &good_header.to_string(),
                &claims_with(json!({"exp": NOW - 3600, "iat": NOW + 3600})),
            ),
            ErrorKind::Expired,
        ),
        (
            "not yet valid and wrong audience",
            signed(
                &good_header.to_string(),
                &claims_with(json!({"nbf": NOW + 3600, "aud": "other"})),
            ),
            ErrorKind::NotYetValid,
        ),
        (
            "expired and wrong issuer",
            signed(
                &good_header.to_string(),
                &claims_with(json!({"exp": NOW - 3600, "iss": "other"})),
            ),
            ErrorKind::Expired,
        ),
        (
            "wrong issuer and wrong audience",
            signed(
                &good_header.to_string(),
                &claims_with(json!({"iss": "other", "aud": "other"})),
            ),
            ErrorKind::WrongIssuer,
        ),
    ];
    for (label, token, kind) in cases {
        expect_kind(&v, &token, kind, label);
    }
}
