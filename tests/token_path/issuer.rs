//! [`TokenIssuer`]: for every key type, tokens verify through the issuer's own verifier and
//! through a verifier built only from its published JWKS, with every claim as granted; the JWKS
//! never carries private members; other keys and expired tokens are refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tower_jwt_auth::issuer::{AccessGrant, IssuedToken, TokenIssuer};
use tower_jwt_auth::{Algorithm, DEFAULT_LEEWAY, ErrorKind, KeySet, Verifier};

use crate::common::{AUDIENCE, ISSUER, NOW, at, fixture, fixture_str};

const SECRET: &[u8] = b"an hs256 secret of 32 bytes or more";
const TTL: u64 = 600;

/// The RFC 7638 SHA-256 thumbprints of the fixture keys, computed independently (Python's
/// `hashlib` over the canonical JSON of `tests/data/keys/*.pub.jwk`).
const RSA2048_THUMBPRINT: &str = "6bSEqK3_IHcA7ECk3hDvK3PAM-twZEG2A6ori_-dQT0";
const P256_THUMBPRINT: &str = "0Hs8PJhPc4io_igTuSzwXRKpIUy15je0WknSSN7_wKk";
const P384_THUMBPRINT: &str = "p_ZugjkZFWcX359JDT9Uxek3YQghO12LlmypiuTSEbs";
const ED25519_THUMBPRINT: &str = "SffMR9rxomPoF7Spwl13UhRUdjTQ7V1i1fZO6-GfcOg";

/// The only members a published JWK may have.
const PUBLIC_MEMBERS: [&str; 9] = ["kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"];
/// Private (or symmetric) JWK members, RFC 7518 section 6.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn with_ttl(issuer: TokenIssuer) -> TokenIssuer {
    issuer
        .with_access_ttl(Duration::from_secs(TTL))
        .unwrap()
        .clock(|| at(NOW))
}

fn from_pem(file: &str) -> TokenIssuer {
    with_ttl(TokenIssuer::from_pem(&fixture(file), ISSUER, AUDIENCE).unwrap())
}

/// One issuer per key type, the fixture file (if any), the algorithm and the expected `kid`.
fn issuers() -> Vec<(&'static str, TokenIssuer, Algorithm)> {
    vec![
        (
            "hmac",
            with_ttl(TokenIssuer::hmac(SECRET, ISSUER, AUDIENCE).unwrap()),
            Algorithm::HS256,
        ),
        (
            "rsa2048.pkcs1.pem",
            from_pem("rsa2048.pkcs1.pem"),
            Algorithm::RS256,
        ),
        (
            "rsa2048.pkcs8.pem",
            from_pem("rsa2048.pkcs8.pem"),
            Algorithm::RS256,
        ),
        (
            "p256.pkcs8.pem",
            from_pem("p256.pkcs8.pem"),
            Algorithm::ES256,
        ),
        (
            "p384.pkcs8.pem",
            from_pem("p384.pkcs8.pem"),
            Algorithm::ES384,
        ),
        (
            "ed25519.pkcs8.pem",
            from_pem("ed25519.pkcs8.pem"),
            Algorithm::EdDSA,
        ),
        (
            "generated",
            with_ttl(TokenIssuer::generate_ed25519(ISSUER, AUDIENCE).unwrap()),
            Algorithm::EdDSA,
        ),
    ]
}

fn scopes() -> Vec<String> {
    vec!["items:read".to_owned(), "profile".to_owned()]
}

fn roles() -> Vec<String> {
    vec!["admin".to_owned(), "user".to_owned()]
}

fn issue(issuer: &TokenIssuer) -> IssuedToken {
    let (scopes, roles) = (scopes(), roles());
    let grant = AccessGrant::new("user-1", "web-app", "session-1")
        .with_scopes(&scopes)
        .with_roles(&roles);
    issuer.issue(&grant).unwrap()
}

/// A verifier that knows nothing of the issuer but what it publishes: its JWKS document as
/// text (or, for HMAC, the shared secret under the issuer's `kid`).
fn independent_verifier(issuer: &TokenIssuer, now: u64) -> Verifier {
    let keys = if issuer.algorithm() == Algorithm::HS256 {
        KeySet::builder()
            .hmac(Some(issuer.kid()), Algorithm::HS256, SECRET)
            .unwrap()
            .build()
            .unwrap()
    } else {
        KeySet::from_jwks(serde_json::to_string(&issuer.jwks()).unwrap()).unwrap()
    };
    Verifier::builder(keys)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .require_type("at+jwt")
        .unwrap()
        .clock(move || at(now))
        .build()
        .unwrap()
}

fn header(token: &str) -> Value {
    let encoded = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap()
}

#[test]
fn every_key_type_verifies_through_its_own_verifier_and_through_its_jwks() {
    for (name, issuer, alg) in issuers() {
        assert_eq!(issuer.algorithm(), alg, "{name}");
        let issued = issue(&issuer);
        assert_eq!(
            (issued.issued_at, issued.expires_at, issued.expires_in()),
            (NOW, NOW + TTL, TTL),
            "{name}"
        );
        assert_eq!(
            header(&issued.token),
            json!({"typ": "at+jwt", "alg": alg.as_str(), "kid": issuer.kid()}),
            "{name}"
        );

        for verifier in [
            issuer.verifier().unwrap(),
            independent_verifier(&issuer, NOW),
        ] {
            let claims = verifier
                .verify(&issued.token)
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            assert_eq!(claims.issuer(), Some(ISSUER), "{name}");
            assert_eq!(claims.audience(), [AUDIENCE], "{name}");
            assert_eq!(claims.subject(), Some("user-1"), "{name}");
            assert_eq!(claims.client_id(), Some("web-app"), "{name}");
            assert_eq!(claims.session_id(), Some("session-1"), "{name}");
            assert_eq!(claims.jwt_id(), Some(issued.jti.as_str()), "{name}");
            assert_eq!(claims.roles(), roles(), "{name}");
            assert_eq!(claims.scopes().as_str(), "items:read profile", "{name}");
            let (iat, exp) = (claims.issued_at().unwrap(), claims.expires_at().unwrap());
            assert_eq!((iat.as_secs(), exp.as_secs()), (NOW, NOW + TTL), "{name}");
            assert_eq!(exp.as_secs() - iat.as_secs(), TTL, "{name}");
        }
    }
}

#[test]
fn kids_are_rfc_7638_thumbprints_and_stable() {
    for (file, thumbprint) in [
        ("rsa2048.pkcs1.pem", RSA2048_THUMBPRINT),
        ("rsa2048.pkcs8.pem", RSA2048_THUMBPRINT),
        ("p256.pkcs8.pem", P256_THUMBPRINT),
        ("p384.pkcs8.pem", P384_THUMBPRINT),
        ("ed25519.pkcs8.pem", ED25519_THUMBPRINT),
    ] {
        assert_eq!(from_pem(file).kid(), thumbprint, "{file}");
    }
    // HMAC: the same secret gives the same kid in every process, another secret another kid.
    let hmac = |secret: &[u8]| {
        TokenIssuer::hmac(secret, ISSUER, AUDIENCE)
            .unwrap()
            .kid()
            .to_owned()
    };
    assert_eq!(hmac(SECRET), hmac(SECRET));
    assert_ne!(hmac(SECRET), hmac(&[1; 32]));
    // A generated key is a new key.
    let generated = || TokenIssuer::generate_ed25519(ISSUER, AUDIENCE).unwrap();
    assert_ne!(generated().kid(), generated().kid());
}

#[test]
fn the_jwks_publishes_the_public_key_and_nothing_private() {
    for (name, issuer, alg) in issuers() {
        let jwks = issuer.jwks();
        let text = serde_json::to_string(&jwks).unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        if alg == Algorithm::HS256 {
            assert_eq!(jwks, json!({"keys": []}));
            assert!(!text.contains(&URL_SAFE_NO_PAD.encode(SECRET)[..10]));
            continue;
        }
        assert_eq!(keys.len(), 1, "{name}");
        let jwk = keys[0].as_object().unwrap();
        for member in jwk.keys() {
            assert!(
                PUBLIC_MEMBERS.contains(&member.as_str()),
                "{name}: {member}"
            );
        }
        for private in PRIVATE_MEMBERS {
            assert!(!jwk.contains_key(private), "{name}: {private}");
            assert!(
                !text.contains(&format!("\"{private}\"")),
                "{name}: {private}"
            );
        }
        assert_eq!(jwk["use"], "sig", "{name}");
        assert_eq!(jwk["alg"], alg.as_str(), "{name}");
        assert_eq!(jwk["kid"], issuer.kid(), "{name}");
    }

    // The published key is the fixture's public key, member for member.
    for (private, public) in [
        ("rsa2048.pkcs1.pem", "rsa2048.pub.jwk"),
        ("p256.pkcs8.pem", "p256.pub.jwk"),
        ("p384.pkcs8.pem", "p384.pub.jwk"),
        ("ed25519.pkcs8.pem", "ed25519.pub.jwk"),
    ] {
        let issuer = from_pem(private);
        let mut expected: Value = serde_json::from_str(&fixture_str(public)).unwrap();
        expected["kid"] = Value::from(issuer.kid());
        assert_eq!(issuer.jwks(), json!({"keys": [expected]}), "{private}");
    }
}

#[test]
fn tokens_of_another_key_are_rejected() {
    let ours = from_pem("p256.pkcs8.pem");
    let verifier = ours.verifier().unwrap();
    let kind = |token: &str| verifier.verify(token).unwrap_err().kind();

    // A key of another algorithm: refused whatever its kid.
    let generated = || with_ttl(TokenIssuer::generate_ed25519(ISSUER, AUDIENCE).unwrap());
    let theirs = generated();
    assert_eq!(kind(&issue(&theirs).token), ErrorKind::Algorithm);
    assert_eq!(
        kind(&issue(&theirs.with_kid(ours.kid())).token),
        ErrorKind::Algorithm
    );

    // The same algorithm, another key: another kid, or under the real kid a bad signature.
    let (real, forger) = (generated(), generated());
    let forged_kid = issue(&forger).token;
    let forged_signature = issue(&forger.with_kid(real.kid())).token;
    for verifier in [real.verifier().unwrap(), independent_verifier(&real, NOW)] {
        let kind = |token: &str| verifier.verify(token).unwrap_err().kind();
        assert_eq!(kind(&forged_kid), ErrorKind::UnknownKey);
        assert_eq!(kind(&forged_signature), ErrorKind::InvalidSignature);
    }
    let hmac = with_ttl(TokenIssuer::hmac(SECRET, ISSUER, AUDIENCE).unwrap());
    let forger = TokenIssuer::hmac(&[9; 32], ISSUER, AUDIENCE).unwrap();
    let forged = issue(&forger.with_kid(hmac.kid())).token;
    assert_eq!(
        hmac.verifier().unwrap().verify(&forged).unwrap_err().kind(),
        ErrorKind::InvalidSignature
    );

    // Our key, but another issuer or audience.
    let pem = fixture("p256.pkcs8.pem");
    for (iss, aud, expected) in [
        ("https://other.test", AUDIENCE, ErrorKind::WrongIssuer),
        (ISSUER, "other-api", ErrorKind::WrongAudience),
    ] {
        let issuer = with_ttl(TokenIssuer::from_pem(&pem, iss, aud).unwrap());
        assert_eq!(kind(&issue(&issuer).token), expected);
    }
}

#[test]
fn expiry_follows_the_injected_clock() {
    for (name, issuer, _) in issuers() {
        let issued = issue(&issuer);
        let leeway = DEFAULT_LEEWAY.as_secs();
        assert!(
            independent_verifier(&issuer, NOW + TTL - 1)
                .verify(&issued.token)
                .is_ok()
        );
        let late = independent_verifier(&issuer, NOW + TTL + leeway + 1);
        let err = late.verify(&issued.token).unwrap_err();
        assert_eq!(
            (err.kind(), err.claim()),
            (ErrorKind::Expired, Some("exp")),
            "{name}"
        );
    }

    // The issuer's own verifier reads the issuer's clock.
    let now = Arc::new(AtomicU64::new(NOW));
    let clock = Arc::clone(&now);
    let issuer = TokenIssuer::from_pem(&fixture("ed25519.pkcs8.pem"), ISSUER, AUDIENCE)
        .unwrap()
        .clock(move || at(clock.load(Ordering::SeqCst)));
    let verifier = issuer.verifier().unwrap();
    let issued = issue(&issuer);
    assert_eq!(
        issued.expires_at,
        NOW + TokenIssuer::DEFAULT_ACCESS_TTL.as_secs()
    );
    assert!(verifier.verify(&issued.token).is_ok());
    now.store(
        issued.expires_at + DEFAULT_LEEWAY.as_secs() + 1,
        Ordering::SeqCst,
    );
    assert_eq!(
        verifier.verify(&issued.token).unwrap_err().kind(),
        ErrorKind::Expired
    );
}

#[test]
fn accessors_report_the_configuration() {
    let issuer = from_pem("p384.pkcs8.pem");
    assert_eq!(issuer.issuer(), ISSUER);
    assert_eq!(issuer.audience(), AUDIENCE);
    assert_eq!(issuer.algorithm(), Algorithm::ES384);
    assert_eq!(issuer.kid(), P384_THUMBPRINT);
    assert_eq!(issuer.access_ttl(), Duration::from_secs(TTL));
    let keys = issuer.key_set().unwrap();
    assert_eq!(
        keys.algorithm(Some(P384_THUMBPRINT)),
        Some(Algorithm::ES384)
    );
    assert!(keys.skipped().is_empty());
}
