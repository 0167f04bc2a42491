//! Writes the seed corpus: valid and near-valid tokens signed with the harness keys, and JWKS
//! documents around the loader's rules.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --bin seeds` (stable is enough), or with target
//! names to write only those (`-- signed_claims`). ECDSA and PSS signatures are randomised, so
//! re-running changes those files; commit only when the seed set itself changes.
//!
//! The `signed_claims` seeds are inputs, not tokens: structured cases found by decoding
//! deterministic pseudo-random bytes, the first for each outcome the oracle predicts, named
//! `<policy>_<signer>_<outcome>`. Every case tried is also checked, so this is a quick
//! self-test of the oracle on stable.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tower_jwt_auth::{Algorithm, TokenSigner};
use tower_jwt_auth_fuzz::{AUDIENCE, HMAC_SECRET, ISSUER, NOW, PRIVATE_PEMS, kid};
use tower_jwt_auth_fuzz::{SignerChoice, case, check};

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).expect("create corpus dir");
    dir
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    fs::write(dir.join(name), bytes).expect("write seed");
}

fn claims() -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "jti": "seed-1",
        "iat": NOW, "nbf": NOW, "exp": NOW + 3600,
        "roles": ["admin", "user"], "scope": "items:read items:write",
    })
}

fn with(changes: Value) -> Value {
    let mut claims = claims();
    let object = claims.as_object_mut().expect("object");
    for (name, value) in changes.as_object().expect("object") {
        if value.is_null() {
            object.remove(name);
        } else {
            object.insert(name.clone(), value.clone());
        }
    }
    claims
}

fn hs256() -> TokenSigner {
    TokenSigner::hmac(Algorithm::HS256, HMAC_SECRET)
        .expect("hmac")
        .with_kid("hs256")
}

fn main() {
    let only: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |target: &str| only.is_empty() || only.iter().any(|t| t == target);
    if wanted("verify_token") || wanted("jwks_document") {
        token_and_jwks_seeds();
    }
    if wanted("signed_claims") {
        signed_claims_seeds();
    }
}

/// Decodes deterministic pseudo-random byte strings (mostly zeros, which decode to the valid
/// choices) and keeps the first case for each (policy, signer, outcome); HS256 for every
/// outcome, the asymmetric keys for acceptance and a bad signature.
fn signed_claims_seeds() {
    let dir = corpus("signed_claims");
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..300_000u32 {
        let len = if round == 0 { 0 } else { next() % 160 };
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let r = next();
                if r % 3 == 0 { (r >> 8) as u8 } else { 0 }
            })
            .collect();
        let Some(case) = case(&bytes) else { continue };
        let label = check(&case).expected.label();
        if case.signer != SignerChoice::Hs256 && label != "accepted" && label != "invalidsignature"
        {
            continue;
        }
        let name = format!("{:?}_{:?}_{label}", case.policy, case.signer).to_ascii_lowercase();
        if seen.insert(name.clone()) {
            write(&dir, &name, &bytes);
        }
    }
    println!("signed_claims seeds: {seen:?}");
}

fn token_and_jwks_seeds() {
    let tokens = corpus("verify_token");
    let hs = hs256();
    let sign = |signer: &TokenSigner, claims: &Value| signer.sign(claims).expect("sign");
    let raw = |header: &str, payload: &str| {
        hs.sign_raw(header.as_bytes(), payload.as_bytes())
            .expect("sign")
    };
    let payload = claims().to_string();

    write(&tokens, "valid_hs256", sign(&hs, &claims()));
    for (alg, pem) in PRIVATE_PEMS {
        let signer = TokenSigner::from_pem(alg, pem)
            .expect("pem")
            .with_kid(kid(alg));
        write(
            &tokens,
            &format!("valid_{}", kid(alg)),
            sign(&signer, &claims()),
        );
    }
    write(
        &tokens,
        "valid_at_jwt",
        sign(&hs.clone().with_type("at+jwt"), &claims()),
    );
    write(
        &tokens,
        "valid_fractional_dates",
        sign(
            &hs,
            &with(json!({"exp": NOW as f64 + 0.5, "iat": NOW as f64 - 0.25})),
        ),
    );
    write(
        &tokens,
        "valid_aud_array",
        sign(&hs, &with(json!({"aud": ["other", AUDIENCE]}))),
    );
    write(
        &tokens,
        "valid_scp_array",
        sign(&hs, &with(json!({"scope": null, "scp": ["a", "b"]}))),
    );
    write(
        &tokens,
        "valid_extra_claims",
        sign(
            &hs,
            &with(json!({"realm_access": {"roles": ["x"]}, "n": [1, 2.5, null, true]})),
        ),
    );
    write(
        &tokens,
        "expired",
        sign(&hs, &with(json!({"exp": NOW - 31}))),
    );
    write(
        &tokens,
        "not_yet_valid",
        sign(&hs, &with(json!({"nbf": NOW + 31}))),
    );
    write(
        &tokens,
        "issued_in_future",
        sign(&hs, &with(json!({"iat": NOW + 31}))),
    );
    write(
        &tokens,
        "wrong_issuer",
        sign(&hs, &with(json!({"iss": "https://issuer.fuzz.evil"}))),
    );
    write(
        &tokens,
        "wrong_audience",
        sign(&hs, &with(json!({"aud": []}))),
    );
    write(
        &tokens,
        "missing_sub",
        sign(&hs, &with(json!({"sub": null}))),
    );
    write(&tokens, "exp_huge", sign(&hs, &with(json!({"exp": 1e300}))));
    write(
        &tokens,
        "exp_string",
        sign(&hs, &with(json!({"exp": "1750003600"}))),
    );
    write(
        &tokens,
        "iss_array",
        sign(&hs, &with(json!({"iss": [ISSUER]}))),
    );
    write(
        &tokens,
        "roles_string",
        sign(&hs, &with(json!({"roles": "admin"}))),
    );
    write(
        &tokens,
        "scope_and_scp",
        sign(&hs, &with(json!({"scp": ["a"]}))),
    );
    write(
        &tokens,
        "alg_none",
        format!(
            "{}.",
            raw(r#"{"alg":"none"}"#, &payload)
                .rsplit_once('.')
                .expect("dot")
                .0
        ),
    );
    write(
        &tokens,
        "alg_none_upper",
        raw(r#"{"alg":"NONE","kid":"hs256"}"#, &payload),
    );
    write(
        &tokens,
        "alg_rs256_on_hmac",
        raw(r#"{"alg":"RS256","kid":"hs256"}"#, &payload),
    );
    write(
        &tokens,
        "kid_unknown",
        raw(r#"{"alg":"HS256","kid":"../../etc/passwd"}"#, &payload),
    );
    write(
        &tokens,
        "kid_number",
        raw(r#"{"alg":"HS256","kid":7}"#, &payload),
    );
    write(&tokens, "no_kid", raw(r#"{"alg":"HS256"}"#, &payload));
    write(
        &tokens,
        "crit_unknown",
        raw(
            r#"{"alg":"HS256","kid":"hs256","crit":["x"],"x":1}"#,
            &payload,
        ),
    );
    write(
        &tokens,
        "b64_false",
        raw(
            r#"{"alg":"HS256","kid":"hs256","b64":false,"crit":["b64"]}"#,
            &payload,
        ),
    );
    write(
        &tokens,
        "valid_jwk_and_jku_ignored",
        raw(
            r#"{"alg":"HS256","kid":"hs256","jwk":{"kty":"oct","k":"AAAA"},"jku":"https://evil"}"#,
            &payload,
        ),
    );
    write(
        &tokens,
        "header_duplicate",
        raw(r#"{"alg":"HS256","kid":"hs256","alg":"HS256"}"#, &payload),
    );
    write(&tokens, "header_array", raw(r#"["HS256"]"#, &payload));
    write(
        &tokens,
        "claims_duplicate",
        raw(&hs256_header(), &payload.replacen('{', r#"{"sub":"a","#, 1)),
    );
    write(
        &tokens,
        "claims_nested_duplicate",
        raw(
            &hs256_header(),
            &payload.replacen('{', r#"{"o":{"k":1,"k":2},"#, 1),
        ),
    );
    write(
        &tokens,
        "claims_not_object",
        raw(&hs256_header(), "[1,2,3]"),
    );
    let valid = sign(&hs, &claims());
    write(&tokens, "four_segments", format!("{valid}.e30"));
    write(
        &tokens,
        "two_segments",
        valid.rsplit_once('.').expect("dot").0,
    );
    write(&tokens, "padded_signature", format!("{valid}="));
    write(&tokens, "whitespace", valid.replacen('.', ". ", 1));
    write(&tokens, "empty", "");
    write(
        &tokens,
        "near_cap",
        format!("{valid}{}", "A".repeat(8192 - valid.len())),
    );

    let jwks = corpus("jwks_document");
    let key_file = |name: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/keys")
            .join(name);
        fs::read_to_string(path).expect("key file")
    };
    write(&jwks, "public", key_file("public.jwks"));
    for name in ["rsa2048", "p256", "p384", "ed25519"] {
        let jwk: Value = serde_json::from_str(&key_file(&format!("{name}.pub.jwk"))).expect("jwk");
        write(
            &jwks,
            &format!("single_{name}"),
            json!({"keys": [jwk.clone()]}).to_string(),
        );
        let mut without_alg = jwk.clone();
        without_alg.as_object_mut().expect("object").remove("alg");
        write(
            &jwks,
            &format!("no_alg_{name}"),
            json!({"keys": [without_alg]}).to_string(),
        );
        let mut enc = jwk.clone();
        enc["use"] = json!("enc");
        write(
            &jwks,
            &format!("use_enc_{name}"),
            json!({"keys": [enc, jwk]}).to_string(),
        );
    }
    let oct = json!({"kty": "oct", "alg": "HS256", "kid": "o", "k": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"});
    let ec: Value = serde_json::from_str(&key_file("p256.pub.jwk")).expect("jwk");
    write(&jwks, "oct", json!({"keys": [oct]}).to_string());
    write(&jwks, "mixed", json!({"keys": [oct, ec]}).to_string());
    write(
        &jwks,
        "duplicate_kid",
        json!({"keys": [ec, ec]}).to_string(),
    );
    let mut private = ec.clone();
    private["d"] = json!("yy49oPcINGK2ps0LmtxpB6UTEOiITghHBif6wDqmJ3c");
    write(&jwks, "private", json!({"keys": [private]}).to_string());
    let mut off_curve = ec.clone();
    off_curve["y"] = json!("UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgnw");
    write(&jwks, "off_curve", json!({"keys": [off_curve]}).to_string());
    write(
        &jwks,
        "p521",
        json!({"keys": [{"kty": "EC", "crv": "P-521", "kid": "x", "x": "AA", "y": "AA"}]})
            .to_string(),
    );
    write(
        &jwks,
        "duplicate_member",
        r#"{"keys":[{"kty":"OKP","kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
    );
    write(&jwks, "not_array", r#"{"keys":{}}"#);
    write(&jwks, "empty", r#"{"keys":[]}"#);
}

fn hs256_header() -> String {
    format!(r#"{{"alg":"HS256","kid":"{}"}}"#, "hs256")
}
