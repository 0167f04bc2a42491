//! Verification throughput of a realistic access token, side by side in one run:
//!
//! - `floor/hs256`: HMAC-SHA256 with a prebuilt key, base64url decode of the payload and a
//!   typed serde parse: the least any HS256 verifier can do;
//! - `jsonwebtoken/decode/*`: plain `jsonwebtoken::decode` with equivalent validation;
//! - `verify/*`: this crate's `Verifier::verify` (every check of the token path);
//! - `signature_only/*`: the backend's verifier alone, key parsed once, signature pre-decoded.
//!
//! `python3 benches/ratios.py` prints the medians of the last run and the ratios the project
//! tracks.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use tower_jwt_auth::{Algorithm, KeySet, TokenSigner, Verifier};

const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "api.example.com";

/// The same fields a verifier reads, as a plain serde struct.
#[derive(Deserialize)]
#[allow(dead_code)]
struct AccessClaims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    iat: u64,
    nbf: u64,
    jti: String,
    roles: Vec<String>,
    scope: String,
}

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn claims() -> serde_json::Value {
    let now = jsonwebtoken::get_current_timestamp();
    serde_json::json!({
        "iss": ISSUER,
        "sub": "user-3f8e2a1c7b4d",
        "aud": AUDIENCE,
        "exp": now + 3600,
        "iat": now,
        "nbf": now,
        "jti": "b7e4c1a92f3d4c8e9a1b",
        "roles": ["admin", "user"],
        "scope": "items:read items:write profile",
    })
}

#[cfg(feature = "rust-crypto")]
fn provider() -> &'static CryptoProvider {
    &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
}

#[cfg(not(feature = "rust-crypto"))]
fn provider() -> &'static CryptoProvider {
    &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
}

struct Case {
    name: &'static str,
    alg: Algorithm,
    token: String,
    verifier: Verifier,
    decoding_key: DecodingKey,
}

fn case(
    name: &'static str,
    alg: Algorithm,
    signer: TokenSigner,
    keys: KeySet,
    key: DecodingKey,
) -> Case {
    let token = signer.with_kid("key-1").sign(&claims()).unwrap();
    let verifier = Verifier::builder(keys)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    verifier.verify(&token).unwrap();
    Case {
        name,
        alg,
        token,
        verifier,
        decoding_key: key,
    }
}

fn cases() -> Vec<Case> {
    let secret = b"0123456789abcdef0123456789abcdef";
    let public = |alg, file| {
        KeySet::builder()
            .pem(Some("key-1"), alg, &key_file(file))
            .unwrap()
            .build()
            .unwrap()
    };
    let signer = |alg, file| TokenSigner::from_pem(alg, &key_file(file)).unwrap();
    vec![
        case(
            "hs256",
            Algorithm::HS256,
            TokenSigner::hmac(Algorithm::HS256, secret).unwrap(),
            KeySet::builder()
                .hmac(Some("key-1"), Algorithm::HS256, secret)
                .unwrap()
                .build()
                .unwrap(),
            DecodingKey::from_secret(secret),
        ),
        case(
            "rs256",
            Algorithm::RS256,
            signer(Algorithm::RS256, "rsa2048.pkcs8.pem"),
            public(Algorithm::RS256, "rsa2048.pub.pem"),
            DecodingKey::from_rsa_pem(&key_file("rsa2048.pub.pem")).unwrap(),
        ),
        case(
            "es256",
            Algorithm::ES256,
            signer(Algorithm::ES256, "p256.pkcs8.pem"),
            public(Algorithm::ES256, "p256.pub.pem"),
            DecodingKey::from_ec_pem(&key_file("p256.pub.pem")).unwrap(),
        ),
        case(
            "eddsa",
            Algorithm::EdDSA,
            signer(Algorithm::EdDSA, "ed25519.pkcs8.pem"),
            public(Algorithm::EdDSA, "ed25519.pub.pem"),
            DecodingKey::from_ed_pem(&key_file("ed25519.pub.pem")).unwrap(),
        ),
    ]
}

fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    alg.as_str().parse().unwrap()
}

fn benches(c: &mut Criterion) {
    let cases = cases();
    println!("token length: {} bytes (hs256)", cases[0].token.len());

    // The floor: prebuilt HMAC key, signature and payload decode, typed parse. No header, no
    // policy.
    {
        let hs = &cases[0];
        let verifier =
            (provider().verifier_factory)(&jsonwebtoken::Algorithm::HS256, &hs.decoding_key)
                .unwrap();
        let token = hs.token.as_str();
        c.bench_function("floor/hs256", |b| {
            b.iter(|| {
                let token = black_box(token);
                let (message, signature) = token.rsplit_once('.').unwrap();
                let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
                verifier.verify(message.as_bytes(), &signature).unwrap();
                let payload = message.split_once('.').unwrap().1;
                let payload = URL_SAFE_NO_PAD.decode(payload).unwrap();
                black_box(serde_json::from_slice::<AccessClaims>(&payload).unwrap())
            })
        });
    }

    for case in &cases {
        let mut validation = Validation::new(jwt_alg(case.alg));
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.leeway = 30;
        validation.validate_nbf = true;
        let token = case.token.as_str();
        c.bench_function(&format!("jsonwebtoken/decode/{}", case.name), |b| {
            b.iter(|| {
                black_box(
                    jsonwebtoken::decode::<AccessClaims>(
                        black_box(token),
                        &case.decoding_key,
                        &validation,
                    )
                    .unwrap(),
                )
            })
        });
    }

    for case in &cases {
        let token = case.token.as_str();
        c.bench_function(&format!("verify/{}", case.name), |b| {
            b.iter(|| black_box(case.verifier.verify(black_box(token)).unwrap()))
        });
    }

    for case in cases.iter().filter(|case| case.alg != Algorithm::HS256) {
        let verifier =
            (provider().verifier_factory)(&jwt_alg(case.alg), &case.decoding_key).unwrap();
        let (message, signature) = case.token.rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        c.bench_function(&format!("signature_only/{}", case.name), |b| {
            b.iter(|| {
                verifier
                    .verify(black_box(message.as_bytes()), black_box(&signature))
                    .unwrap()
            })
        });
    }
}

criterion_group!(verify, benches);
criterion_main!(verify);
