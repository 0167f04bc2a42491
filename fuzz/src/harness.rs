//! What each fuzz target does with its input, and the invariants it checks beyond "no panic".
//!
//! Shared by the cargo-fuzz targets (`fuzz_targets/`) and by the main crate's
//! `tests/token_path/fuzz_corpus.rs`, which replays every committed corpus input on stable.

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use tower_jwt_auth::{Algorithm, AuthError, KeySet, Verifier, VerifierBuilder};

/// The fixed clock of the fuzzed verifier.
pub const NOW: u64 = 1_750_000_000;
/// The accepted issuer.
pub const ISSUER: &str = "https://issuer.fuzz";
/// The accepted audience.
pub const AUDIENCE: &str = "fuzz";
/// The HS256 secret (kid `hs256`).
pub const HMAC_SECRET: &[u8] = b"fuzzing-secret-fuzzing-secret-32";

macro_rules! key_file {
    ($name:literal) => {
        include_bytes!(concat!("../../tests/data/keys/", $name))
    };
}

/// Public keys, kid = the algorithm in lowercase.
const PUBLIC_PEMS: [(Algorithm, &[u8]); 6] = [
    (Algorithm::RS256, key_file!("rsa2048.pub.pem")),
    (Algorithm::PS256, key_file!("rsa2048.pub.pem")),
    (Algorithm::ES256, key_file!("p256.pub.pem")),
    (Algorithm::ES384, key_file!("p384.pub.pem")),
    (Algorithm::EdDSA, key_file!("ed25519.pub.pem")),
    (Algorithm::RS512, key_file!("rsa2048.pub.pem")),
];

/// Private keys matching [`PUBLIC_PEMS`], for the seed generator.
pub const PRIVATE_PEMS: [(Algorithm, &[u8]); 6] = [
    (Algorithm::RS256, key_file!("rsa2048.pkcs8.pem")),
    (Algorithm::PS256, key_file!("rsa2048.pkcs8.pem")),
    (Algorithm::ES256, key_file!("p256.pkcs8.pem")),
    (Algorithm::ES384, key_file!("p384.pkcs8.pem")),
    (Algorithm::EdDSA, key_file!("ed25519.pkcs8.pem")),
    (Algorithm::RS512, key_file!("rsa2048.pkcs8.pem")),
];

/// The kid each key is registered under.
pub fn kid(alg: Algorithm) -> String {
    alg.as_str().to_ascii_lowercase()
}

/// The fuzzed key set: HS256 plus the keys of [`PUBLIC_PEMS`].
pub fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let builder = KeySet::builder()
            .hmac(Some("hs256"), Algorithm::HS256, HMAC_SECRET)
            .expect("fixed hmac key");
        PUBLIC_PEMS
            .iter()
            .fold(builder, |builder, (alg, pem)| {
                builder
                    .pem(Some(&kid(*alg)), *alg, pem)
                    .expect("fixed public key")
            })
            .build()
            .expect("fixed key set")
    })
}

/// The default policy for `issuer` over [`keys`], `at+jwt` not required, clock fixed at
/// [`NOW`].
fn policy(issuer: &str) -> VerifierBuilder {
    Verifier::builder(keys().clone())
        .issuer(issuer)
        .audience(AUDIENCE)
        .clock(|| UNIX_EPOCH + Duration::from_secs(NOW))
}

/// The fuzzed verifier: [`policy`] for [`ISSUER`].
pub fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| policy(ISSUER).build().expect("fixed verifier"))
}

/// [`verifier`] with a verification cache of four tokens: small, so that valid inputs evict
/// one another and the slot of a cached token is often met by other bytes.
pub fn cached() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        policy(ISSUER)
            .cache(4)
            .expect("fixed capacity")
            .build()
            .expect("fixed verifier")
    })
}

/// The second issuer of [`by_issuer`].
pub const OTHER_ISSUER: &str = "https://other.fuzz";

/// [`verifier`] and a verifier for [`OTHER_ISSUER`] over the same keys, chosen by `iss`.
pub fn by_issuer() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let other = policy(OTHER_ISSUER).build().expect("fixed verifier");
        Verifier::by_issuer([verifier().clone(), other]).expect("fixed set")
    })
}

/// Bytes (as lossy UTF-8) through `Verifier::verify`, and through a set chosen by `iss`.
///
/// Invariants: an accepted token satisfies the policy, verifies the same way twice, and passes
/// the JWS-level check too; a rejection's message is fixed text that cannot echo input. The
/// set accepts exactly what the verifier for the token's issuer accepts, with the same claims.
/// The verifier with a cache answers exactly as the one without, before and after the token
/// may have entered it.
pub fn verify_token(data: &[u8]) {
    let token = String::from_utf8_lossy(data);
    let uncached = verifier().verify(&token);
    for _ in 0..2 {
        match (cached().verify(&token), &uncached) {
            (Ok(claims), Ok(expected)) => assert_eq!(&claims, expected, "cache changed claims"),
            (Err(err), Err(expected)) => assert_eq!(
                (err.kind(), err.to_string()),
                (expected.kind(), expected.to_string()),
                "cache changed the error"
            ),
            (got, _) => panic!("the cache answered {got:?} where verify answered {uncached:?}"),
        }
    }
    let chosen = by_issuer().verify(&token);
    match &chosen {
        Ok(claims) => assert!(
            claims.issuer() == Some(OTHER_ISSUER)
                || verifier().verify(&token).as_ref() == Ok(claims),
            "the set accepted what its member refuses"
        ),
        Err(err) => check_error(err),
    }
    match verifier().verify(&token) {
        Ok(claims) => {
            assert!(token.len() <= tower_jwt_auth::DEFAULT_MAX_TOKEN_LEN);
            assert_eq!(claims.issuer(), Some(ISSUER));
            assert!(claims.audience().iter().any(|aud| aud == AUDIENCE));
            let exp = claims.expires_at().expect("exp is required");
            assert!(exp.as_secs_f64() + 30.0 > NOW as f64);
            assert!(claims.subject().is_some() && claims.jwt_id().is_some());
            assert!(
                claims
                    .issued_at()
                    .is_some_and(|iat| iat.as_secs_f64() <= NOW as f64 + 30.0)
            );
            assert_eq!(verifier().verify(&token).as_ref(), Ok(&claims));
            assert!(keys().verify_jws(&token).is_ok());
            assert_eq!(
                chosen.as_ref(),
                Ok(&claims),
                "the set refused its member's token"
            );
        }
        Err(err) => check_error(&err),
    }
}

fn check_error(err: &AuthError) {
    // The message is fixed text: the kind's description, plus the name of a registered claim.
    let expected = match err.claim() {
        Some(claim) => format!("{} (`{claim}`)", err.kind().description()),
        None => err.kind().description().to_owned(),
    };
    assert_eq!(err.to_string(), expected);
    assert!(err.claim().is_none_or(|claim| CLAIMS.contains(&claim)));
}

const CLAIMS: [&str; 10] = [
    "exp", "nbf", "iat", "iss", "sub", "aud", "jti", "roles", "scope", "scp",
];

/// Bytes through `KeySet::from_jwks`, and through the issuer-JWKS loader remote keys use.
///
/// Invariants: a key set that loads is non-empty and reports each key's algorithm under its
/// kid; every kid is unique. The issuer loader never yields an HMAC key, and keeps every
/// asymmetric key the strict loader accepts.
pub fn jwks_document(data: &[u8]) {
    let issuer = KeySet::builder()
        .issuer_jwks(data)
        .and_then(tower_jwt_auth::KeySetBuilder::build);
    if let Ok(issuer) = &issuer {
        check_key_set(issuer);
        assert!(
            issuer
                .keys()
                .all(|(_, alg)| !alg.as_str().starts_with("HS")),
            "a secret from an issuer's jwks"
        );
    }
    let Ok(keys) = KeySet::from_jwks(data) else {
        return;
    };
    for (kid, alg) in keys
        .keys()
        .filter(|(_, alg)| !alg.as_str().starts_with("HS"))
    {
        let kept = issuer.as_ref().ok().and_then(|set| set.algorithm(kid));
        assert_eq!(kept, Some(alg), "the issuer loader dropped a usable key");
    }
    check_key_set(&keys);
}

/// A loaded set is non-empty, its kids unique, each reporting its algorithm.
fn check_key_set(keys: &KeySet) {
    assert!(!keys.is_empty());
    let listed: Vec<_> = keys
        .keys()
        .map(|(kid, alg)| (kid.map(str::to_owned), alg))
        .collect();
    for (i, (kid, alg)) in listed.iter().enumerate() {
        assert!(
            listed[..i].iter().all(|(other, _)| other != kid),
            "duplicate kid survived"
        );
        if let Some(kid) = kid {
            assert_eq!(keys.algorithm(Some(kid)), Some(*alg));
        }
    }
    // A loaded set verifies without panicking (nothing here is signed by it).
    let _ = keys.verify_jws("eyJhbGciOiJIUzI1NiJ9.e30.AAAA");
}
