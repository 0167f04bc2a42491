//! Loading a [`KeySet`]: every key format for every algorithm, and every way a key can be
//! refused (weak, private, mismatched, malformed), with a working key next to each refusal.

use crate::common;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tower_jwt_auth::{
    Algorithm, ConfigError, ErrorKind, KeySet, KeySetBuilder, TokenSigner, Verifier,
};

use crate::common::{builder_for, claims, fixture, hmac_secret, kid, public_pem, signer};

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

fn asymmetric() -> impl Iterator<Item = Algorithm> {
    Algorithm::ALL.into_iter().filter(|alg| !is_hmac(*alg))
}

/// The DER inside a PEM file.
fn pem_contents(name: &str) -> Vec<u8> {
    let text = common::fixture_str(name);
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    STANDARD.decode(body).unwrap()
}

/// A JSON fixture as a value.
fn json_fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// The public JWK fixture for `alg`'s key with `alg` and `kid` = [`kid`]`(alg)`; for HMAC an
/// `oct` key with the test secret.
fn jwk_for(alg: Algorithm) -> Value {
    let mut jwk = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            json!({"kty": "oct", "k": b64(hmac_secret(alg)), "use": "sig"})
        }
        Algorithm::ES256 => json_fixture("p256.pub.jwk"),
        Algorithm::ES384 => json_fixture("p384.pub.jwk"),
        Algorithm::EdDSA => json_fixture("ed25519.pub.jwk"),
        _ => json_fixture("rsa2048.pub.jwk"),
    };
    jwk["alg"] = json!(alg.as_str());
    jwk["kid"] = json!(kid(alg));
    jwk
}

/// `jwk` with `changes` merged in (`null` removes a member).
fn with(jwk: Value, changes: Value) -> Value {
    common::merge(jwk, changes)
}

fn verifier_for(keys: KeySet) -> Verifier {
    builder_for(keys).build().unwrap()
}

/// Asserts the key set verifies a token signed by `alg`'s private key with this kid (or
/// none), so loading the key really produced the right key.
#[track_caller]
fn verifies(keys: &KeySet, alg: Algorithm, token_kid: Option<&str>, label: &str) {
    let signer = match token_kid {
        Some(k) => signer(alg).with_kid(k),
        // Built without a kid.
        None if is_hmac(alg) => TokenSigner::hmac(alg, &hmac_secret(alg)).unwrap(),
        None => TokenSigner::from_pem(alg, &common::private_pem(alg)).unwrap(),
    };
    let token = signer.sign(&claims()).unwrap();
    verifier_for(keys.clone())
        .verify(&token)
        .unwrap_or_else(|err| panic!("{label}: {err:?}"));
}

#[track_caller]
fn config_err(result: Result<KeySetBuilder, ConfigError>, label: &str) -> ConfigError {
    match result {
        Ok(_) => panic!("{label}: accepted, expected a ConfigError"),
        Err(err) => err,
    }
}

#[track_caller]
fn set_err(result: Result<KeySet, ConfigError>, label: &str) -> ConfigError {
    match result {
        Ok(keys) => panic!("{label}: accepted ({keys:?}), expected a ConfigError"),
        Err(err) => err,
    }
}

// ------------------------------------------------------------------------------------------
// PEM and DER
// ------------------------------------------------------------------------------------------

#[test]
fn spki_pem_loads_for_every_asymmetric_algorithm() {
    for alg in asymmetric() {
        let keys = KeySet::builder()
            .pem(Some(&kid(alg)), alg, &public_pem(alg))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(keys.algorithm(Some(&kid(alg))), Some(alg));
        verifies(&keys, alg, Some(&kid(alg)), &format!("{alg} spki pem"));
        // The kid-less shortcut.
        let keys = KeySet::from_pem(alg, &public_pem(alg)).unwrap();
        assert_eq!(keys.algorithm(None), Some(alg));
        verifies(&keys, alg, None, &format!("{alg} KeySet::from_pem"));
    }
}

#[test]
fn pkcs1_rsa_public_key_pem_and_der_load() {
    let pkcs1_pem = fixture("rsa2048.pub.pkcs1.pem");
    assert!(common::fixture_str("rsa2048.pub.pkcs1.pem").contains("BEGIN RSA PUBLIC KEY"));
    let pkcs1_der = pem_contents("rsa2048.pub.pkcs1.pem");
    for alg in asymmetric().filter(|alg| kid(*alg).starts_with(['r', 'p'])) {
        let from_pem = KeySet::from_pem(alg, &pkcs1_pem).unwrap();
        verifies(&from_pem, alg, None, &format!("{alg} pkcs1 pem"));
        let from_der = KeySet::builder()
            .der(Some("k"), alg, &pkcs1_der)
            .unwrap()
            .build()
            .unwrap();
        verifies(&from_der, alg, Some("k"), &format!("{alg} pkcs1 der"));
    }
    // PKCS#1 is RSA-only.
    let err = config_err(
        KeySet::builder().pem(None, Algorithm::ES256, &pkcs1_pem),
        "pkcs1 for ES256",
    );
    assert!(
        matches!(err, ConfigError::KeyAlgorithmMismatch(_)),
        "{err:?}"
    );
}

#[test]
fn spki_der_loads_for_every_asymmetric_algorithm() {
    for alg in asymmetric() {
        let der = match alg {
            Algorithm::ES256 => fixture("p256.pub.der"),
            Algorithm::ES384 => fixture("p384.pub.der"),
            Algorithm::EdDSA => fixture("ed25519.pub.der"),
            _ => fixture("rsa2048.pub.der"),
        };
        // The DER fixture is the PEM fixture's content.
        assert_eq!(
            der,
            pem_contents(match alg {
                Algorithm::ES256 => "p256.pub.pem",
                Algorithm::ES384 => "p384.pub.pem",
                Algorithm::EdDSA => "ed25519.pub.pem",
                _ => "rsa2048.pub.pem",
            })
        );
        let keys = KeySet::builder()
            .der(Some(&kid(alg)), alg, &der)
            .unwrap()
            .build()
            .unwrap();
        verifies(&keys, alg, Some(&kid(alg)), &format!("{alg} spki der"));
    }
}

#[test]
fn private_key_pem_is_refused() {
    for (name, alg) in [
        ("rsa2048.pkcs8.pem", Algorithm::RS256),
        ("rsa2048.pkcs1.pem", Algorithm::RS256),
        ("p256.pkcs8.pem", Algorithm::ES256),
        ("p384.pkcs8.pem", Algorithm::ES384),
        ("ed25519.pkcs8.pem", Algorithm::EdDSA),
        ("rsa1024.pkcs8.pem", Algorithm::RS256),
    ] {
        let err = set_err(KeySet::from_pem(alg, &fixture(name)), name);
        assert_eq!(err, ConfigError::PrivateKeyMaterial, "{name}");
    }
    // Private-key DER is not a public key either.
    for (name, alg) in [
        ("rsa2048.pkcs1.der", Algorithm::RS256),
        ("p256.pkcs8.der", Algorithm::ES256),
        ("ed25519.pkcs8.der", Algorithm::EdDSA),
    ] {
        let err = config_err(KeySet::builder().der(None, alg, &fixture(name)), name);
        assert!(
            matches!(
                err,
                ConfigError::InvalidKey(_) | ConfigError::PrivateKeyMaterial
            ),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn unreadable_pem_and_der_are_invalid_keys() {
    let cert =
        b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2tDl3b1\n-----END CERTIFICATE-----\n";
    for (label, pem) in [
        ("not pem", b"hello".to_vec()),
        ("empty", Vec::new()),
        ("certificate label", cert.to_vec()),
        ("der given as pem", fixture("p256.pub.der")),
        (
            "garbage in a public key block",
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".to_vec(),
        ),
    ] {
        let err = config_err(KeySet::builder().pem(None, Algorithm::ES256, &pem), label);
        assert!(
            matches!(err, ConfigError::InvalidKey(_)),
            "{label}: {err:?}"
        );
    }
    let good = fixture("p256.pub.der");
    let mut trailing = good.clone();
    trailing.push(0);
    for (label, der) in [
        ("empty", Vec::new()),
        ("garbage", b"garbage".to_vec()),
        ("truncated", good[..good.len() - 1].to_vec()),
        ("trailing byte", trailing),
    ] {
        let err = config_err(KeySet::builder().der(None, Algorithm::ES256, &der), label);
        assert!(
            matches!(err, ConfigError::InvalidKey(_)),
            "{label}: {err:?}"
        );
    }
    assert!(KeySet::builder().der(None, Algorithm::ES256, &good).is_ok());
}

/// The refusal of an RSA key of `bits`: at least 2048 bits, at most what the backend verifies.
fn too_small(bits: usize) -> ConfigError {
    let max = match tower_jwt_auth::crypto_backend() {
        "rust-crypto" => 4096,
        _ => 8192,
    };
    ConfigError::RsaKeySize {
        bits,
        min: 2048,
        max,
    }
}

#[test]
fn rsa_keys_under_2048_bits_are_refused() {
    let err = set_err(
        KeySet::from_pem(Algorithm::RS256, &fixture("rsa1024.pub.pem")),
        "rsa1024 pem",
    );
    assert_eq!(err, too_small(1024));
    let err = config_err(
        KeySet::builder().der(None, Algorithm::PS256, &pem_contents("rsa1024.pub.pem")),
        "rsa1024 der",
    );
    assert_eq!(err, too_small(1024));
    let err = TokenSigner::from_pem(Algorithm::RS256, &fixture("rsa1024.pkcs8.pem")).unwrap_err();
    assert_eq!(err, too_small(1024));
    // Control: 2048 bits load.
    assert!(KeySet::from_pem(Algorithm::RS256, &fixture("rsa2048.pub.pem")).is_ok());
}

#[test]
fn p521_keys_are_refused() {
    let pem = fixture("p521.pub.pem");
    for alg in [Algorithm::ES256, Algorithm::ES384] {
        let err = set_err(KeySet::from_pem(alg, &pem), &format!("p521 for {alg}"));
        assert!(
            matches!(err, ConfigError::KeyAlgorithmMismatch(_)),
            "{alg}: {err:?}"
        );
    }
    assert!(TokenSigner::from_pem(Algorithm::ES256, &fixture("p521.pkcs8.pem")).is_err());
    assert!(TokenSigner::from_pem(Algorithm::ES384, &fixture("p521.pkcs8.pem")).is_err());
}

#[test]
fn a_key_must_fit_the_algorithm_it_is_bound_to() {
    let files = [
        ("rsa2048.pub.pem", "rsa"),
        ("p256.pub.pem", "p256"),
        ("p384.pub.pem", "p384"),
        ("ed25519.pub.pem", "ed25519"),
    ];
    let fits = |key: &str, alg: Algorithm| match key {
        "rsa" => kid(alg).starts_with(['r', 'p']),
        "p256" => alg == Algorithm::ES256,
        "p384" => alg == Algorithm::ES384,
        "ed25519" => alg == Algorithm::EdDSA,
        _ => unreachable!(),
    };
    let mut refused = 0;
    for (file, key) in files {
        for alg in Algorithm::ALL {
            let result = KeySet::from_pem(alg, &fixture(file));
            let label = format!("{key} key for {alg}");
            if fits(key, alg) {
                assert!(result.is_ok(), "{label}: {result:?}");
            } else {
                let err = set_err(result, &label);
                assert!(
                    matches!(err, ConfigError::KeyAlgorithmMismatch(_)),
                    "{label}: {err:?}"
                );
                refused += 1;
            }
        }
        // The same through DER.
        let der = pem_contents(file);
        for alg in Algorithm::ALL {
            let result = KeySet::builder().der(None, alg, &der);
            if fits(key, alg) {
                assert!(result.is_ok(), "{key} der for {alg}");
            } else {
                let err = config_err(result, &format!("{key} der for {alg}"));
                assert!(
                    matches!(err, ConfigError::KeyAlgorithmMismatch(_)),
                    "{key} der for {alg}: {err:?}"
                );
            }
        }
    }
    assert_eq!(
        refused,
        4 * 12 - 6 - 3,
        "every non-fitting combination was tried"
    );

    // Specifically: a P-384 key for ES256 and a P-256 key for ES384.
    let err = set_err(
        KeySet::from_pem(Algorithm::ES256, &fixture("p384.pub.pem")),
        "p384 for ES256",
    );
    assert!(
        matches!(err, ConfigError::KeyAlgorithmMismatch(_)),
        "{err:?}"
    );
    let err = set_err(
        KeySet::from_pem(Algorithm::ES384, &fixture("p256.pub.pem")),
        "p256 for ES384",
    );
    assert!(
        matches!(err, ConfigError::KeyAlgorithmMismatch(_)),
        "{err:?}"
    );
    // An HMAC secret cannot be bound to an asymmetric algorithm.
    for alg in asymmetric() {
        let err = set_err(KeySet::hmac(alg, &[7; 64]), &format!("hmac for {alg}"));
        assert!(
            matches!(err, ConfigError::KeyAlgorithmMismatch(_)),
            "{alg}: {err:?}"
        );
    }
}

#[test]
fn an_ec_point_off_the_curve_is_refused() {
    // Flip one bit of y in the SPKI (the point is the last 65 bytes of the P-256 DER).
    for (name, alg) in [
        ("p256.pub.der", Algorithm::ES256),
        ("p384.pub.der", Algorithm::ES384),
    ] {
        let good = fixture(name);
        assert!(
            KeySet::builder().der(None, alg, &good).is_ok(),
            "{name} control"
        );
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 0x01;
        let err = config_err(KeySet::builder().der(None, alg, &bad), name);
        assert!(
            matches!(
                err,
                ConfigError::InvalidKey(_) | ConfigError::KeyAlgorithmMismatch(_)
            ),
            "{name}: {err:?}"
        );
    }
    // The same through a JWK.
    for alg in [Algorithm::ES256, Algorithm::ES384] {
        let jwk = jwk_for(alg);
        let mut y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
        *y.last_mut().unwrap() ^= 0x01;
        let bad = with(jwk.clone(), json!({"y": b64(&y)}));
        let err = set_err(KeySet::from_jwk(bad.to_string()), &format!("{alg} jwk"));
        assert!(
            matches!(
                err,
                ConfigError::InvalidKey(_) | ConfigError::KeyAlgorithmMismatch(_)
            ),
            "{alg} jwk: {err:?}"
        );
        // The all-zero point (the point at infinity has no affine form).
        let size = y.len();
        let zero = with(
            jwk.clone(),
            json!({"x": b64(vec![0; size]), "y": b64(vec![0; size])}),
        );
        let err = set_err(
            KeySet::from_jwk(zero.to_string()),
            &format!("{alg} zero point"),
        );
        assert!(
            matches!(err, ConfigError::InvalidKey(_)),
            "{alg} zero: {err:?}"
        );
        // Coordinates of the wrong length.
        let short = with(jwk.clone(), json!({"x": b64(vec![1; size - 1])}));
        let err = set_err(
            KeySet::from_jwk(short.to_string()),
            &format!("{alg} short x"),
        );
        assert!(
            matches!(err, ConfigError::InvalidKey(_)),
            "{alg} short x: {err:?}"
        );
        assert!(KeySet::from_jwk(jwk.to_string()).is_ok(), "{alg} control");
    }
}

#[test]
fn compressed_ec_points_and_short_ed25519_keys_are_refused() {
    // The P-256 SPKI rebuilt around the compressed form of its point: 0x02 or 0x03, then x.
    let der = fixture("p256.pub.der");
    let (prefix, point) = der.split_at(der.len() - 65);
    assert_eq!(point[0], 0x04, "the fixture point is uncompressed");
    let algorithm_identifier = &prefix[2..prefix.len() - 3];
    let mut compressed = vec![0x30, 0x39];
    compressed.extend_from_slice(algorithm_identifier);
    compressed.extend_from_slice(&[0x03, 0x22, 0x00, 0x02 | (point[64] & 1)]);
    compressed.extend_from_slice(&point[1..33]);
    assert_eq!(compressed.len(), 0x39 + 2);
    let err = config_err(
        KeySet::builder().der(None, Algorithm::ES256, &compressed),
        "compressed P-256 point",
    );
    assert!(matches!(err, ConfigError::InvalidKey(_)), "{err:?}");

    let jwk = jwk_for(Algorithm::EdDSA);
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    for (label, bytes) in [("31 bytes", &x[..31]), ("empty", &x[..0])] {
        let bad = with(jwk.clone(), json!({ "x": b64(bytes) }));
        let err = set_err(KeySet::from_jwk(bad.to_string()), label);
        assert!(
            matches!(err, ConfigError::InvalidKey(_)),
            "{label}: {err:?}"
        );
    }
    let mut long = x.clone();
    long.push(0);
    let bad = with(jwk.clone(), json!({ "x": b64(&long) }));
    let err = set_err(KeySet::from_jwk(bad.to_string()), "33 bytes");
    assert!(
        matches!(err, ConfigError::InvalidKey(_)),
        "33 bytes: {err:?}"
    );
    assert!(KeySet::from_jwk(jwk.to_string()).is_ok(), "control");
}

#[test]
fn rsa_exponents_must_be_odd_and_at_least_three() {
    let jwk = jwk_for(Algorithm::RS256);
    for (label, e) in [
        ("e = 1", vec![1u8]),
        ("e = 2", vec![2]),
        ("e = 65536", vec![1, 0, 0]),
        ("e = 0", vec![0]),
        ("e empty", vec![]),
    ] {
        let bad = with(jwk.clone(), json!({ "e": b64(&e) }));
        let err = set_err(KeySet::from_jwk(bad.to_string()), label);
        assert!(
            matches!(err, ConfigError::InvalidKey(_)),
            "{label}: {err:?}"
        );
    }
    // An even modulus.
    let mut n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    *n.last_mut().unwrap() &= 0xfe;
    let bad = with(jwk.clone(), json!({ "n": b64(&n) }));
    let err = set_err(KeySet::from_jwk(bad.to_string()), "even n");
    assert!(matches!(err, ConfigError::InvalidKey(_)), "even n: {err:?}");
    // A 1024-bit modulus through a JWK.
    let short = with(jwk.clone(), json!({ "n": b64(&n[..128]) }));
    let err = set_err(KeySet::from_jwk(short.to_string()), "1024-bit n");
    assert!(
        matches!(err, ConfigError::RsaKeySize { bits, .. } if bits <= 1024),
        "1024-bit n: {err:?}"
    );
    assert!(KeySet::from_jwk(jwk.to_string()).is_ok(), "control");
}

// ------------------------------------------------------------------------------------------
// HMAC secrets
// ------------------------------------------------------------------------------------------

#[test]
fn hmac_secrets_must_be_at_least_the_hash_length() {
    for (alg, min_len) in [
        (Algorithm::HS256, 32),
        (Algorithm::HS384, 48),
        (Algorithm::HS512, 64),
    ] {
        for len in [0, 1, min_len / 2, min_len - 1] {
            let err = set_err(KeySet::hmac(alg, &vec![0x42; len]), &format!("{alg} {len}"));
            assert_eq!(
                err,
                ConfigError::WeakHmacSecret {
                    algorithm: alg,
                    min_len,
                    len
                },
                "{alg} with {len} bytes"
            );
            let err = TokenSigner::hmac(alg, &vec![0x42; len]).unwrap_err();
            assert!(
                matches!(err, ConfigError::WeakHmacSecret { .. }),
                "signer {alg} {len}"
            );
        }
        for len in [min_len, min_len + 1, 128] {
            let keys = KeySet::hmac(alg, &vec![0x42; len]).unwrap();
            let token = TokenSigner::hmac(alg, &vec![0x42; len])
                .unwrap()
                .sign(&claims())
                .unwrap();
            verifier_for(keys)
                .verify(&token)
                .unwrap_or_else(|err| panic!("{alg} with {len} bytes: {err:?}"));
        }
        // Through a JWK too.
        let jwk = with(jwk_for(alg), json!({ "k": b64(vec![1; min_len - 1]) }));
        let err = set_err(
            KeySet::from_jwk(jwk.to_string()),
            &format!("{alg} short jwk"),
        );
        assert!(matches!(err, ConfigError::WeakHmacSecret { len, .. } if len == min_len - 1));
        let err = set_err(
            KeySet::from_jwk(with(jwk_for(alg), json!({"k": ""})).to_string()),
            "empty k",
        );
        assert!(
            matches!(err, ConfigError::WeakHmacSecret { len: 0, .. }),
            "{err:?}"
        );
    }
}

// ------------------------------------------------------------------------------------------
// JWK and JWKS
// ------------------------------------------------------------------------------------------

#[test]
fn a_jwk_loads_for_every_algorithm() {
    for alg in Algorithm::ALL {
        let jwk = jwk_for(alg);
        let keys = KeySet::from_jwk(jwk.to_string()).unwrap();
        assert_eq!(keys.algorithm(Some(&kid(alg))), Some(alg), "{alg}");
        assert_eq!(keys.len(), 1);
        verifies(&keys, alg, Some(&kid(alg)), &format!("{alg} jwk"));
    }
    // The fixture files as they are.
    for (file, kid, alg) in [
        ("rsa2048.pub.jwk", "rsa-1", Algorithm::RS256),
        ("p256.pub.jwk", "ec-256", Algorithm::ES256),
        ("p384.pub.jwk", "ec-384", Algorithm::ES384),
        ("ed25519.pub.jwk", "ed-1", Algorithm::EdDSA),
    ] {
        let keys = KeySet::from_jwk(fixture(file)).unwrap();
        assert_eq!(
            keys.keys().collect::<Vec<_>>(),
            [(Some(kid), alg)],
            "{file}"
        );
        verifies(&keys, alg, Some(kid), file);
    }
}

#[test]
fn jwks_documents_load_for_every_algorithm() {
    let asym: Vec<Value> = asymmetric().map(jwk_for).collect();
    let hmac: Vec<Value> = Algorithm::ALL
        .into_iter()
        .filter(|a| is_hmac(*a))
        .map(jwk_for)
        .collect();
    let keys = KeySet::builder()
        .jwks(json!({ "keys": asym }).to_string())
        .unwrap()
        .jwks(json!({ "keys": hmac }).to_string())
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(keys.len(), 12);
    assert!(!keys.is_empty());
    assert!(keys.skipped().is_empty());
    for alg in Algorithm::ALL {
        assert_eq!(keys.algorithm(Some(&kid(alg))), Some(alg));
        verifies(&keys, alg, Some(&kid(alg)), &format!("{alg} from jwks"));
    }
    let listed: Vec<_> = keys.keys().collect();
    for alg in Algorithm::ALL {
        assert!(
            listed.contains(&(Some(kid(alg).as_str()), alg)),
            "{alg} listed"
        );
    }
}

#[test]
fn the_public_jwks_fixture_loads() {
    let keys = KeySet::from_jwks(fixture("public.jwks")).unwrap();
    assert_eq!(keys.len(), 4);
    assert!(keys.skipped().is_empty());
    let expected = [
        ("rsa-1", Algorithm::RS256),
        ("ec-256", Algorithm::ES256),
        ("ec-384", Algorithm::ES384),
        ("ed-1", Algorithm::EdDSA),
    ];
    assert_eq!(
        keys.keys().collect::<Vec<_>>(),
        expected.map(|(k, a)| (Some(k), a))
    );
    for (kid, alg) in expected {
        assert_eq!(keys.algorithm(Some(kid)), Some(alg));
        verifies(&keys, alg, Some(kid), kid);
    }
    assert_eq!(keys.algorithm(None), None, "no kid, several keys");
    assert_eq!(keys.algorithm(Some("nope")), None);
}

#[test]
fn a_jwk_alg_binds_the_key() {
    // The RS256 JWK does not verify a PS256 (or RS384) token signed by the same RSA key.
    let keys = KeySet::from_jwk(fixture("rsa2048.pub.jwk")).unwrap();
    let v = verifier_for(keys);
    for alg in asymmetric().filter(|alg| kid(*alg).starts_with(['r', 'p'])) {
        let token = signer(alg).with_kid("rsa-1").sign(&claims()).unwrap();
        match v.verify(&token) {
            Ok(_) => assert_eq!(alg, Algorithm::RS256, "{alg} accepted"),
            Err(err) => {
                assert_ne!(alg, Algorithm::RS256, "{err:?}");
                assert_eq!(err.kind(), ErrorKind::Algorithm, "{alg}");
            }
        }
    }
    // The same key material bound to PS256 by its JWK verifies PS256 and nothing else.
    let ps = with(json_fixture("rsa2048.pub.jwk"), json!({"alg": "PS256"}));
    let v = verifier_for(KeySet::from_jwk(ps.to_string()).unwrap());
    let ps256 = signer(Algorithm::PS256)
        .with_kid("rsa-1")
        .sign(&claims())
        .unwrap();
    v.verify(&ps256).unwrap();
    let rs256 = signer(Algorithm::RS256)
        .with_kid("rsa-1")
        .sign(&claims())
        .unwrap();
    assert_eq!(v.verify(&rs256).unwrap_err().kind(), ErrorKind::Algorithm);
}

#[test]
fn a_jwk_alg_that_contradicts_the_key_is_refused() {
    for (label, jwk) in [
        (
            "P-256 with ES384",
            with(jwk_for(Algorithm::ES256), json!({"alg": "ES384"})),
        ),
        (
            "P-384 with ES256",
            with(jwk_for(Algorithm::ES384), json!({"alg": "ES256"})),
        ),
        (
            "P-256 with RS256",
            with(jwk_for(Algorithm::ES256), json!({"alg": "RS256"})),
        ),
        (
            "Ed25519 with ES256",
            with(jwk_for(Algorithm::EdDSA), json!({"alg": "ES256"})),
        ),
        (
            "Ed25519 with HS256",
            with(jwk_for(Algorithm::EdDSA), json!({"alg": "HS256"})),
        ),
        (
            "RSA with ES256",
            with(jwk_for(Algorithm::RS256), json!({"alg": "ES256"})),
        ),
        (
            "RSA with HS256",
            with(jwk_for(Algorithm::RS256), json!({"alg": "HS256"})),
        ),
        (
            "RSA with EdDSA",
            with(jwk_for(Algorithm::RS256), json!({"alg": "EdDSA"})),
        ),
        (
            "oct with RS256",
            with(jwk_for(Algorithm::HS512), json!({"alg": "RS256"})),
        ),
        (
            "oct with EdDSA",
            with(jwk_for(Algorithm::HS512), json!({"alg": "EdDSA"})),
        ),
    ] {
        let err = set_err(KeySet::from_jwk(jwk.to_string()), label);
        assert!(
            matches!(err, ConfigError::KeyAlgorithmMismatch(_)),
            "{label}: {err:?}"
        );
        // One such key fails a whole JWKS.
        let doc = json!({ "keys": [jwk] }).to_string();
        let err = set_err(KeySet::from_jwks(doc), label);
        assert!(
            matches!(err, ConfigError::KeyAlgorithmMismatch(_)),
            "{label} in jwks: {err:?}"
        );
    }
    // EC and OKP keys without alg take the algorithm their curve implies.
    for alg in [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
        let jwk = with(jwk_for(alg), json!({"alg": null}));
        let keys = KeySet::from_jwk(jwk.to_string()).unwrap();
        assert_eq!(keys.algorithm(Some(&kid(alg))), Some(alg));
        verifies(
            &keys,
            alg,
            Some(&kid(alg)),
            &format!("{alg} implied by the curve"),
        );
    }
}

#[test]
fn private_jwks_are_refused() {
    for (label, jwk) in [
        (
            "ec d",
            with(jwk_for(Algorithm::ES256), json!({"d": "AAAA"})),
        ),
        (
            "okp d",
            with(jwk_for(Algorithm::EdDSA), json!({"d": "AAAA"})),
        ),
        (
            "rsa d",
            with(jwk_for(Algorithm::RS256), json!({"d": "AAAA"})),
        ),
        (
            "rsa p",
            with(jwk_for(Algorithm::RS256), json!({"p": "AAAA"})),
        ),
        (
            "rsa q",
            with(jwk_for(Algorithm::RS256), json!({"q": "AAAA"})),
        ),
        (
            "rsa dp",
            with(jwk_for(Algorithm::RS256), json!({"dp": "AAAA"})),
        ),
        (
            "rsa dq",
            with(jwk_for(Algorithm::RS256), json!({"dq": "AAAA"})),
        ),
        (
            "rsa qi",
            with(jwk_for(Algorithm::RS256), json!({"qi": "AAAA"})),
        ),
        (
            "rsa oth",
            with(jwk_for(Algorithm::RS256), json!({"oth": []})),
        ),
        ("d null", with(jwk_for(Algorithm::ES256), json!({"d": {}}))),
        (
            "d on an enc key",
            with(
                jwk_for(Algorithm::ES256),
                json!({"d": "AAAA", "use": "enc"}),
            ),
        ),
    ] {
        let err = set_err(KeySet::from_jwk(jwk.to_string()), label);
        assert_eq!(err, ConfigError::PrivateKeyMaterial, "{label}");
        // One private key fails the whole document, beside a good key.
        let doc = json!({ "keys": [jwk_for(Algorithm::EdDSA), jwk] }).to_string();
        let err = set_err(KeySet::from_jwks(doc), label);
        assert_eq!(err, ConfigError::PrivateKeyMaterial, "{label} in jwks");
    }
}

#[test]
fn unusable_jwks_are_skipped_and_recorded() {
    let rsa = jwk_for(Algorithm::RS256);
    let ec = jwk_for(Algorithm::ES256);
    let okp = jwk_for(Algorithm::EdDSA);
    let p521 = json!({
        "kty": "EC", "crv": "P-521", "kid": "p521",
        "x": b64(vec![1; 66]), "y": b64(vec![2; 66]),
    });
    let doc = json!({"keys": [
        with(rsa.clone(), json!({"kid": "enc", "use": "enc"})),
        with(ec.clone(), json!({"kid": "ops-sign", "key_ops": ["sign"]})),
        with(ec.clone(), json!({"kid": "ops-empty", "key_ops": []})),
        with(ec.clone(), json!({"kid": "ops-verify", "key_ops": ["verify"], "use": null})),
        json!({"kty": "XYZ", "kid": "kty"}),
        p521,
        json!({"kty": "OKP", "crv": "X25519", "kid": "x25519", "x": b64([9; 32])}),
        json!({"kty": "OKP", "crv": "Ed448", "kid": "ed448", "x": b64([9; 57])}),
        json!({"kty": "EC", "crv": "P-521", "alg": "ES512", "kid": "es512",
            "x": b64(vec![1; 66]), "y": b64(vec![2; 66])}),
        with(rsa.clone(), json!({"kid": "oaep", "alg": "RSA-OAEP"})),
        with(rsa.clone(), json!({"kid": "none", "alg": "none"})),
        with(rsa.clone(), json!({"kid": "rsa-no-alg", "alg": null})),
        with(okp.clone(), json!({"kid": null})),
        with(rsa.clone(), json!({"kid": "rsa-ok"})),
        with(okp.clone(), json!({"kid": "ed-ok"})),
    ]});
    let keys = KeySet::from_jwks(doc.to_string()).unwrap();
    let skipped: Vec<_> = keys
        .skipped()
        .iter()
        .map(|s| (s.kid(), s.reason()))
        .collect();
    assert_eq!(
        skipped,
        [
            (Some("enc"), "use is not sig"),
            (Some("ops-sign"), "key_ops does not include verify"),
            (Some("ops-empty"), "key_ops does not include verify"),
            (Some("kty"), "unsupported kty"),
            (Some("p521"), "unsupported curve"),
            (Some("x25519"), "unsupported curve"),
            (Some("ed448"), "unsupported curve"),
            (Some("es512"), "unsupported alg"),
            (Some("oaep"), "unsupported alg"),
            (Some("none"), "unsupported alg"),
            (Some("rsa-no-alg"), "rsa key without alg"),
            (None, "no kid in a multi-key set"),
        ]
    );
    assert_eq!(
        keys.keys().collect::<Vec<_>>(),
        [
            (Some("ops-verify"), Algorithm::ES256),
            (Some("rsa-ok"), Algorithm::RS256),
            (Some("ed-ok"), Algorithm::EdDSA),
        ]
    );
    for kid in ["enc", "ops-sign", "kty", "p521", "oaep", "rsa-no-alg"] {
        assert_eq!(keys.algorithm(Some(kid)), None, "{kid} is not selectable");
    }
    verifies(&keys, Algorithm::RS256, Some("rsa-ok"), "rsa-ok");
    verifies(&keys, Algorithm::ES256, Some("ops-verify"), "ops-verify");
    // A skipped key's kid selects nothing, even with a valid signature by that key.
    let token = signer(Algorithm::RS256)
        .with_kid("rsa-no-alg")
        .sign(&claims())
        .unwrap();
    let err = verifier_for(keys).verify(&token).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownKey);

    // oct without alg, in a symmetric document.
    let doc = json!({"keys": [
        with(jwk_for(Algorithm::HS256), json!({"kid": "oct-no-alg", "alg": null})),
        jwk_for(Algorithm::HS384),
    ]});
    let keys = KeySet::from_jwks(doc.to_string()).unwrap();
    let skipped: Vec<_> = keys
        .skipped()
        .iter()
        .map(|s| (s.kid(), s.reason()))
        .collect();
    assert_eq!(skipped, [(Some("oct-no-alg"), "symmetric key without alg")]);
    assert_eq!(keys.len(), 1);

    // A single JWK that would be skipped in a set is an error on its own.
    for (label, jwk) in [
        ("use enc", with(rsa.clone(), json!({"use": "enc"}))),
        ("rsa without alg", with(rsa.clone(), json!({"alg": null}))),
        ("unsupported alg", with(rsa.clone(), json!({"alg": "RS1"}))),
    ] {
        let err = set_err(KeySet::from_jwk(jwk.to_string()), label);
        assert!(
            matches!(err, ConfigError::InvalidJwk(_)),
            "{label}: {err:?}"
        );
    }
}

#[test]
fn a_default_rsa_algorithm_binds_rsa_keys_without_alg() {
    let no_alg = with(json_fixture("rsa2048.pub.jwk"), json!({"alg": null}));
    let doc = json!({ "keys": [no_alg, jwk_for(Algorithm::EdDSA)] }).to_string();
    let keys = KeySet::builder()
        .default_rsa_algorithm(Algorithm::PS256)
        .unwrap()
        .jwks(&doc)
        .unwrap()
        .build()
        .unwrap();
    assert!(keys.skipped().is_empty(), "{:?}", keys.skipped());
    assert_eq!(keys.algorithm(Some("rsa-1")), Some(Algorithm::PS256));
    verifies(&keys, Algorithm::PS256, Some("rsa-1"), "default PS256");
    let rs256 = signer(Algorithm::RS256)
        .with_kid("rsa-1")
        .sign(&claims())
        .unwrap();
    let err = verifier_for(keys).verify(&rs256).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Algorithm);

    // An explicit alg wins over the default.
    let keys = KeySet::builder()
        .default_rsa_algorithm(Algorithm::PS512)
        .unwrap()
        .jwk(fixture("rsa2048.pub.jwk"))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(keys.algorithm(Some("rsa-1")), Some(Algorithm::RS256));
    // A single JWK without alg, with the default.
    let keys = KeySet::builder()
        .default_rsa_algorithm(Algorithm::RS512)
        .unwrap()
        .jwk(with(json_fixture("rsa2048.pub.jwk"), json!({"alg": null})).to_string())
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(keys.algorithm(Some("rsa-1")), Some(Algorithm::RS512));

    for alg in Algorithm::ALL
        .into_iter()
        .filter(|alg| !kid(*alg).starts_with(['r', 'p']))
    {
        let err = config_err(KeySet::builder().default_rsa_algorithm(alg), alg.as_str());
        assert!(
            matches!(err, ConfigError::KeyAlgorithmMismatch(_)),
            "{alg}: {err:?}"
        );
    }
    // The default does not apply to oct keys.
    let doc = json!({"keys": [with(jwk_for(Algorithm::HS256), json!({"alg": null}))]});
    let err = set_err(
        KeySet::builder()
            .default_rsa_algorithm(Algorithm::RS256)
            .unwrap()
            .jwks(doc.to_string())
            .and_then(KeySetBuilder::build),
        "oct without alg",
    );
    assert_eq!(err, ConfigError::EmptyKeySet);
}

#[test]
fn kid_less_keys_in_single_and_multi_key_documents() {
    // One key without kid: usable, selected by tokens without kid.
    let jwk = with(jwk_for(Algorithm::ES256), json!({"kid": null}));
    let keys = KeySet::from_jwks(json!({ "keys": [jwk] }).to_string()).unwrap();
    assert_eq!(keys.keys().collect::<Vec<_>>(), [(None, Algorithm::ES256)]);
    verifies(&keys, Algorithm::ES256, None, "single kid-less key");
    let keys = KeySet::from_jwk(jwk.to_string()).unwrap();
    assert_eq!(keys.algorithm(None), Some(Algorithm::ES256));

    // The public fixture with one kid removed: that key is skipped.
    let mut doc = json_fixture("public.jwks");
    doc["keys"][1].as_object_mut().unwrap().remove("kid");
    let keys = KeySet::from_jwks(doc.to_string()).unwrap();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys.skipped().len(), 1);
    assert_eq!(keys.skipped()[0].kid(), None);
    assert_eq!(keys.skipped()[0].reason(), "no kid in a multi-key set");
    assert_eq!(keys.algorithm(None), None);
}

#[test]
fn malformed_jwks_documents_are_invalid_jwk() {
    let good = jwk_for(Algorithm::RS256).to_string();
    let n = jwk_for(Algorithm::RS256)["n"].as_str().unwrap().to_owned();
    let with_n = |n: &str| {
        let doc = json!({"keys": [with(jwk_for(Algorithm::RS256), json!({ "n": n }))]});
        doc.to_string()
    };
    let mut padded = n.clone();
    padded.push_str(&"=".repeat((4 - n.len() % 4) % 4));
    let cases = [
        ("not json", "not json".to_owned()),
        ("empty", String::new()),
        ("array", format!("[{good}]")),
        ("keys missing", "{}".to_owned()),
        ("keys an object", format!(r#"{{"keys":{good}}}"#)),
        ("keys a string", r#"{"keys":"x"}"#.to_owned()),
        ("keys null", r#"{"keys":null}"#.to_owned()),
        (
            "keys twice",
            format!(r#"{{"keys":[{good}],"keys":[{good}]}}"#),
        ),
        ("key a string", r#"{"keys":["RSA"]}"#.to_owned()),
        (
            "kty twice",
            format!(r#"{{"keys":[{{"kty":"RSA",{}]}}"#, &good[1..]),
        ),
        (
            "n twice",
            format!(r#"{{"keys":[{{"n":"{n}",{}]}}"#, &good[1..]),
        ),
        (
            "kid twice",
            format!(r#"{{"keys":[{{"kid":"x",{}]}}"#, &good[1..]),
        ),
        (
            "alg twice",
            format!(r#"{{"keys":[{{"alg":"PS256",{}]}}"#, &good[1..]),
        ),
        (
            "kid a number",
            json!({"keys": [with(jwk_for(Algorithm::RS256), json!({"kid": 1}))]}).to_string(),
        ),
        (
            "alg a number",
            json!({"keys": [with(jwk_for(Algorithm::RS256), json!({"alg": 256}))]}).to_string(),
        ),
        (
            "kty a number",
            json!({"keys": [with(jwk_for(Algorithm::RS256), json!({"kty": 1}))]}).to_string(),
        ),
        (
            "n a number",
            json!({"keys": [with(jwk_for(Algorithm::RS256), json!({"n": 1}))]}).to_string(),
        ),
        (
            "key_ops a string",
            json!({"keys": [with(jwk_for(Algorithm::RS256), json!({"key_ops": "verify"}))]})
                .to_string(),
        ),
        (
            "use a bool",
            json!({"keys": [with(jwk_for(Algorithm::RS256), json!({"use": true}))]}).to_string(),
        ),
        ("n padded", with_n(&padded)),
        (
            "n standard alphabet",
            with_n(&n.replace('-', "+").replace('_', "/")),
        ),
        (
            "n with a space",
            with_n(&format!("{} {}", &n[..10], &n[10..])),
        ),
        ("n not base64", with_n("!!!!")),
        (
            "kty missing",
            json!({"keys": [with(jwk_for(Algorithm::RS256), json!({"kty": null}))]}).to_string(),
        ),
        (
            "n missing",
            json!({"keys": [with(jwk_for(Algorithm::RS256), json!({"n": null}))]}).to_string(),
        ),
        (
            "e missing",
            json!({"keys": [with(jwk_for(Algorithm::RS256), json!({"e": null}))]}).to_string(),
        ),
        (
            "ec without crv",
            json!({"keys": [with(jwk_for(Algorithm::ES256), json!({"crv": null}))]}).to_string(),
        ),
        (
            "ec without y",
            json!({"keys": [with(jwk_for(Algorithm::ES256), json!({"y": null}))]}).to_string(),
        ),
        (
            "okp without crv",
            json!({"keys": [with(jwk_for(Algorithm::EdDSA), json!({"crv": null}))]}).to_string(),
        ),
        (
            "oct without k",
            json!({"keys": [with(jwk_for(Algorithm::HS256), json!({"k": null}))]}).to_string(),
        ),
    ];
    assert!(
        KeySet::from_jwks(format!(r#"{{"keys":[{good}]}}"#)).is_ok(),
        "control"
    );
    assert!(
        n.contains('-') || n.contains('_'),
        "the alphabet case changes n"
    );
    for (label, doc) in cases {
        let err = set_err(KeySet::from_jwks(&doc), label);
        assert!(
            matches!(err, ConfigError::InvalidJwk(_)),
            "{label}: {err:?}"
        );
    }
    // A single JWK the same way.
    for (label, jwk) in [
        ("not json", "{".to_owned()),
        ("not an object", "[]".to_owned()),
        ("kty twice", format!(r#"{{"kty":"RSA",{}"#, &good[1..])),
        (
            "kid a number",
            with(jwk_for(Algorithm::RS256), json!({"kid": 1})).to_string(),
        ),
    ] {
        let err = set_err(KeySet::from_jwk(jwk), label);
        assert!(
            matches!(err, ConfigError::InvalidJwk(_)),
            "jwk {label}: {err:?}"
        );
    }
}

#[test]
fn symmetric_and_asymmetric_keys_do_not_share_a_document() {
    let doc = json!({"keys": [jwk_for(Algorithm::HS256), jwk_for(Algorithm::RS256)]});
    assert_eq!(
        set_err(KeySet::from_jwks(doc.to_string()), "oct + rsa"),
        ConfigError::MixedKeySet
    );
    let doc = json!({"keys": [jwk_for(Algorithm::EdDSA), jwk_for(Algorithm::HS512)]});
    assert_eq!(
        set_err(KeySet::from_jwks(doc.to_string()), "okp + oct"),
        ConfigError::MixedKeySet
    );
    // Each alone is fine.
    assert!(KeySet::from_jwks(json!({"keys": [jwk_for(Algorithm::HS256)]}).to_string()).is_ok());
    assert!(KeySet::from_jwks(json!({"keys": [jwk_for(Algorithm::RS256)]}).to_string()).is_ok());
}

#[test]
fn duplicate_kids_are_refused() {
    // In one JWKS.
    let doc = json!({"keys": [
        jwk_for(Algorithm::ES256),
        with(jwk_for(Algorithm::EdDSA), json!({"kid": "es256"})),
    ]});
    assert_eq!(
        set_err(KeySet::from_jwks(doc.to_string()), "one jwks"),
        ConfigError::DuplicateKid(Some("es256".to_owned()))
    );
    // The same document twice.
    let err = config_err(
        KeySet::builder()
            .jwks(fixture("public.jwks"))
            .unwrap()
            .jwks(fixture("public.jwks")),
        "public.jwks twice",
    );
    assert_eq!(err, ConfigError::DuplicateKid(Some("rsa-1".to_owned())));
    // Across builder calls of different kinds.
    let err = config_err(
        KeySet::builder()
            .hmac(Some("k"), Algorithm::HS256, &hmac_secret(Algorithm::HS256))
            .unwrap()
            .pem(Some("k"), Algorithm::ES256, &public_pem(Algorithm::ES256)),
        "hmac then pem",
    );
    assert_eq!(err, ConfigError::DuplicateKid(Some("k".to_owned())));
    let err = config_err(
        KeySet::builder()
            .pem(
                Some("ec-256"),
                Algorithm::EdDSA,
                &public_pem(Algorithm::EdDSA),
            )
            .unwrap()
            .jwk(fixture("p256.pub.jwk")),
        "pem then jwk",
    );
    assert_eq!(err, ConfigError::DuplicateKid(Some("ec-256".to_owned())));
    // Two kid-less keys.
    let err = config_err(
        KeySet::builder()
            .hmac(None, Algorithm::HS256, &hmac_secret(Algorithm::HS256))
            .unwrap()
            .hmac(None, Algorithm::HS384, &hmac_secret(Algorithm::HS384)),
        "two kid-less hmac keys",
    );
    assert_eq!(err, ConfigError::DuplicateKid(None));
    let kidless = with(jwk_for(Algorithm::ES256), json!({"kid": null})).to_string();
    let err = config_err(
        KeySet::builder()
            .pem(None, Algorithm::EdDSA, &public_pem(Algorithm::EdDSA))
            .unwrap()
            .jwk(&kidless),
        "kid-less pem then kid-less jwk",
    );
    assert_eq!(err, ConfigError::DuplicateKid(None));
    // Kids are case-sensitive and exact: these are distinct.
    let keys = KeySet::builder()
        .hmac(Some("k"), Algorithm::HS256, &hmac_secret(Algorithm::HS256))
        .unwrap()
        .hmac(Some("K"), Algorithm::HS256, &hmac_secret(Algorithm::HS256))
        .unwrap()
        .hmac(Some("k "), Algorithm::HS256, &hmac_secret(Algorithm::HS256))
        .unwrap()
        .hmac(None, Algorithm::HS256, &hmac_secret(Algorithm::HS256))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(keys.len(), 4);
}

#[test]
fn an_empty_key_set_is_refused() {
    assert_eq!(
        set_err(KeySet::builder().build(), "builder"),
        ConfigError::EmptyKeySet
    );
    assert_eq!(
        set_err(KeySet::from_jwks(r#"{"keys":[]}"#), "empty jwks"),
        ConfigError::EmptyKeySet
    );
    let all_skipped = json!({"keys": [
        with(jwk_for(Algorithm::RS256), json!({"use": "enc"})),
        with(jwk_for(Algorithm::ES256), json!({"kid": "x", "crv": "P-521"})),
    ]});
    assert_eq!(
        set_err(KeySet::from_jwks(all_skipped.to_string()), "all skipped"),
        ConfigError::EmptyKeySet
    );
}

// ------------------------------------------------------------------------------------------
// Introspection and Debug
// ------------------------------------------------------------------------------------------

#[test]
fn introspection_lists_kids_and_algorithms() {
    let keys = common::all_keys();
    assert_eq!(keys.len(), 12);
    assert!(!keys.is_empty());
    let kids: Vec<String> = Algorithm::ALL.into_iter().map(kid).collect();
    let expected: Vec<_> = kids
        .iter()
        .zip(Algorithm::ALL)
        .map(|(kid, alg)| (Some(kid.as_str()), alg))
        .collect();
    assert_eq!(keys.keys().collect::<Vec<_>>(), expected, "insertion order");
    for alg in Algorithm::ALL {
        assert_eq!(keys.algorithm(Some(&kid(alg))), Some(alg));
    }
    assert_eq!(keys.algorithm(None), None, "ambiguous without kid");
    assert_eq!(keys.algorithm(Some("HS256")), None, "kids are exact");

    let single = KeySet::hmac(Algorithm::HS384, &hmac_secret(Algorithm::HS384)).unwrap();
    assert_eq!(single.len(), 1);
    assert_eq!(single.algorithm(None), Some(Algorithm::HS384));
    assert_eq!(
        single.algorithm(Some("x")),
        None,
        "a kid never selects a kid-less key"
    );
    assert_eq!(
        single.keys().collect::<Vec<_>>(),
        [(None, Algorithm::HS384)]
    );
    let verifier = verifier_for(single.clone());
    assert_eq!(verifier.keys().unwrap().len(), 1);
}

#[test]
fn debug_output_never_shows_secret_bytes() {
    let secret = b"SUPER-SECRET-HMAC-KEY-0123456789-ABCDEFGHIJ";
    let keys = KeySet::builder()
        .hmac(Some("shared"), Algorithm::HS256, secret)
        .unwrap();
    let builder_debug = format!("{keys:?}");
    let keys = keys.build().unwrap();
    let hmac_signer = TokenSigner::hmac(Algorithm::HS256, secret)
        .unwrap()
        .with_kid("shared");
    let verifier = verifier_for(keys.clone());
    let jwk_keys = KeySet::from_jwk(
        json!({"kty": "oct", "alg": "HS256", "kid": "j", "k": b64(secret)}).to_string(),
    )
    .unwrap();
    // The secret as text, as a byte list, and as base64url.
    let as_bytes = format!("{:?}", &secret[..8]);
    let as_bytes = as_bytes.trim_matches(['[', ']']);
    let encoded = b64(secret);
    let needles = ["SUPER-SECRET", as_bytes, &encoded[..16]];
    for (label, debug) in [
        ("KeySetBuilder", builder_debug),
        ("KeySet", format!("{keys:?}")),
        ("KeySet {:#?}", format!("{keys:#?}")),
        ("KeySet from jwk", format!("{jwk_keys:?}")),
        ("TokenSigner", format!("{hmac_signer:?}")),
        ("TokenSigner {:#?}", format!("{hmac_signer:#?}")),
        ("Verifier", format!("{verifier:?}")),
    ] {
        for needle in needles {
            assert!(!debug.contains(needle), "{label} shows {needle:?}: {debug}");
        }
    }
    assert!(format!("{keys:?}").contains("shared"), "kids are shown");

    // Private-key signers redact too.
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let debug = format!("{:?}", signer(alg));
        let pem = common::fixture_str(match alg {
            Algorithm::ES256 => "p256.pkcs8.pem",
            Algorithm::EdDSA => "ed25519.pkcs8.pem",
            _ => "rsa2048.pkcs8.pem",
        });
        let line = pem.lines().nth(1).unwrap();
        assert!(!debug.contains(&line[..16]), "{alg}: {debug}");
        assert!(debug.contains("redacted"), "{alg}: {debug}");
    }
}

#[test]
fn duplicate_members_of_any_name_are_invalid_jwk() {
    // `KeySetBuilder::jwks` documents `InvalidJwk` for "malformed JSON (including duplicate
    // members)", and the token path refuses duplicates of any name at any depth (two parsers
    // must never disagree about one document). Known members are covered above; these are
    // members the loader does not read itself.
    let good = jwk_for(Algorithm::EdDSA).to_string();
    let body = &good[1..];
    for (label, doc) in [
        (
            "x5t twice",
            format!(r#"{{"keys":[{{"x5t":"a","x5t":"b",{body}]}}"#),
        ),
        (
            "x5c twice",
            format!(r#"{{"keys":[{{"x5c":[],"x5c":["AA"],{body}]}}"#),
        ),
        (
            "unknown document member twice",
            format!(r#"{{"keys":[{good}],"next":1,"next":2}}"#),
        ),
    ] {
        let err = set_err(KeySet::from_jwks(&doc), label);
        assert!(
            matches!(err, ConfigError::InvalidJwk(_)),
            "{label}: {err:?}"
        );
    }
    let single = format!(r#"{{"x5t":"a","x5t":"b",{body}"#);
    let err = set_err(KeySet::from_jwk(&single), "single jwk, x5t twice");
    assert!(
        matches!(err, ConfigError::InvalidJwk(_)),
        "single jwk: {err:?}"
    );
    // Control: the same members once each.
    let once = format!(r#"{{"keys":[{{"x5t":"a","x5c":["AA"],{body}],"next":1}}"#);
    assert!(KeySet::from_jwks(&once).is_ok());
}

// ------------------------------------------------------------------------------------------
// An issuer's published JWKS (what RemoteJwks loads)
// ------------------------------------------------------------------------------------------

/// The issuer loader's keys and skip reasons, sorted.
#[allow(clippy::type_complexity)]
fn issuer_load(doc: &Value) -> Result<(KeySet, Vec<(Option<String>, &'static str)>), ConfigError> {
    let keys = KeySet::builder().issuer_jwks(doc.to_string())?.build()?;
    let mut skipped: Vec<_> = keys
        .skipped()
        .iter()
        .map(|s| (s.kid().map(str::to_owned), s.reason()))
        .collect();
    skipped.sort();
    Ok((keys, skipped))
}

#[test]
fn an_issuer_jwks_loads_what_the_strict_loader_loads() {
    let doc = json!({ "keys": asymmetric().map(jwk_for).collect::<Vec<_>>() });
    let (keys, skipped) = issuer_load(&doc).unwrap();
    assert!(skipped.is_empty());
    let strict = KeySet::from_jwks(doc.to_string()).unwrap();
    assert_eq!(
        keys.keys().collect::<Vec<_>>(),
        strict.keys().collect::<Vec<_>>()
    );
    for alg in asymmetric() {
        verifies(&keys, alg, Some(&kid(alg)), "issuer jwks");
    }
}

#[test]
fn one_odd_key_does_not_spoil_an_issuer_jwks() {
    let weak_rsa = json!({
        "kty": "RSA", "kid": "weak", "alg": "RS256",
        "n": b64([0xc5u8; 128]), "e": "AQAB",
    });
    let doc = json!({"keys": [
        jwk_for(Algorithm::ES256),
        weak_rsa,
        with(jwk_for(Algorithm::ES256), json!({"kid": "wrong-alg", "alg": "ES384"})),
        with(jwk_for(Algorithm::EdDSA), json!({"kid": "bad-x", "x": "not base64!"})),
        jwk_for(Algorithm::HS256),
        with(jwk_for(Algorithm::ES384), json!({"kid": "twin"})),
        with(jwk_for(Algorithm::EdDSA), json!({"kid": "twin"})),
        with(jwk_for(Algorithm::RS256), json!({"use": "enc", "kid": "enc"})),
    ]});
    // The strict loader refuses the document outright...
    assert!(KeySet::from_jwks(doc.to_string()).is_err());
    // ...the issuer loader keeps the good key and says why each other one went.
    let (keys, skipped) = issuer_load(&doc).unwrap();
    assert_eq!(
        keys.keys().collect::<Vec<_>>(),
        [(Some("es256"), Algorithm::ES256)]
    );
    assert_eq!(
        skipped,
        [
            (Some("bad-x".to_owned()), "invalid key"),
            (Some("enc".to_owned()), "use is not sig"),
            (
                Some("hs256".to_owned()),
                "symmetric key in an issuer's jwks"
            ),
            (Some("twin".to_owned()), "duplicate kid"),
            (Some("twin".to_owned()), "duplicate kid"),
            (Some("weak".to_owned()), "invalid key"),
            (Some("wrong-alg".to_owned()), "invalid key"),
        ]
    );
    verifies(&keys, Algorithm::ES256, Some("es256"), "the good key");
    // A token under the ambiguous kid finds no key.
    let twin = signer(Algorithm::ES256)
        .with_kid("twin")
        .sign(&claims())
        .unwrap();
    let verifier = verifier_for(keys);
    assert_eq!(
        verifier.verify(&twin).unwrap_err().kind(),
        ErrorKind::UnknownKey
    );
}

#[test]
fn an_issuer_jwks_with_secrets_or_bad_json_is_refused_whole() {
    for (label, leaked) in [
        (
            "ec d",
            with(jwk_for(Algorithm::ES256), json!({"d": "AAAA"})),
        ),
        (
            "rsa p",
            with(jwk_for(Algorithm::RS256), json!({"p": "AAAA"})),
        ),
        (
            "d on an enc key",
            with(
                jwk_for(Algorithm::EdDSA),
                json!({"d": "AAAA", "use": "enc"}),
            ),
        ),
        (
            "d on an unknown kty",
            json!({"kty": "foo", "kid": "x", "d": "AAAA"}),
        ),
    ] {
        let doc = json!({"keys": [jwk_for(Algorithm::ES384), leaked]});
        let err = config_err(KeySet::builder().issuer_jwks(doc.to_string()), label);
        assert_eq!(err, ConfigError::PrivateKeyMaterial, "{label}");
    }
    for bad in [
        "",
        "[]",
        r#"{"keys": {}}"#,
        r#"{"keys": [], "keys": []}"#,
        r#"{"keys": [{"kty": "EC", "kty": "EC"}]}"#,
    ] {
        let err = config_err(KeySet::builder().issuer_jwks(bad), bad);
        assert!(matches!(err, ConfigError::InvalidJwk(_)), "{bad}: {err:?}");
    }
    // Nothing usable: the set does not build.
    let only_secret = json!({"keys": [jwk_for(Algorithm::HS256)]});
    assert_eq!(
        issuer_load(&only_secret).unwrap_err(),
        ConfigError::EmptyKeySet
    );
    // A kid the builder already holds is a configuration conflict, not a skip.
    let err = config_err(
        KeySet::builder()
            .pem(
                Some("es256"),
                Algorithm::ES256,
                &public_pem(Algorithm::ES256),
            )
            .unwrap()
            .issuer_jwks(json!({"keys": [jwk_for(Algorithm::ES256)]}).to_string()),
        "kid taken",
    );
    assert_eq!(err, ConfigError::DuplicateKid(Some("es256".to_owned())));
}
