//! The per-thread header memo never changes a verdict: a remembered header still needs a valid
//! signature and valid claims, and outcomes never cross verifiers or key sets.

use crate::common;
use serde_json::json;
use tower_jwt_auth::{Algorithm, ErrorKind, KeySet, TokenSigner};

/// Verifies on a fresh thread, so the memo starts empty and every call after the first can hit.
fn on_fresh_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().unwrap()
}

#[test]
fn a_remembered_header_still_needs_the_signature() {
    on_fresh_thread(|| {
        let verifier = common::verifier();
        let valid = common::token(Algorithm::HS256, &common::claims());
        assert!(verifier.verify(&valid).is_ok());
        // Same header bytes, payload changed, signature kept: the memo answers step 3 only.
        let (header, rest) = valid.split_once('.').unwrap();
        let signature = rest.rsplit_once('.').unwrap().1;
        let other_payload = common::token(
            Algorithm::HS256,
            &common::claims_with(json!({"sub": "mallory"})),
        );
        let payload = other_payload.split('.').nth(1).unwrap();
        let forged = format!("{header}.{payload}.{signature}");
        for _ in 0..3 {
            assert_eq!(
                verifier.verify(&forged).unwrap_err().kind(),
                ErrorKind::InvalidSignature
            );
            assert!(verifier.verify(&valid).is_ok());
        }
    });
}

#[test]
fn a_remembered_header_still_needs_valid_claims() {
    on_fresh_thread(|| {
        let verifier = common::verifier();
        assert!(
            verifier
                .verify(&common::token(Algorithm::ES256, &common::claims()))
                .is_ok()
        );
        let expired = common::claims_with(json!({"exp": common::NOW - 31}));
        let token = common::token(Algorithm::ES256, &expired);
        assert_eq!(
            verifier.verify(&token).unwrap_err().kind(),
            ErrorKind::Expired
        );
    });
}

#[test]
fn outcomes_do_not_cross_key_sets_with_the_same_kid() {
    on_fresh_thread(|| {
        // Two key sets with the same kid and algorithm but different secrets, and identical
        // header bytes on their tokens.
        let first_secret = [1u8; 32];
        let second_secret = [2u8; 32];
        let keys = |secret: &[u8]| {
            KeySet::builder()
                .hmac(Some("k"), Algorithm::HS256, secret)
                .unwrap()
                .build()
                .unwrap()
        };
        let first = common::builder_for(keys(&first_secret)).build().unwrap();
        let second = common::builder_for(keys(&second_secret)).build().unwrap();
        let sign = |secret: &[u8]| {
            TokenSigner::hmac(Algorithm::HS256, secret)
                .unwrap()
                .with_kid("k")
                .sign(&common::claims())
                .unwrap()
        };
        let (by_first, by_second) = (sign(&first_secret), sign(&second_secret));
        assert_eq!(by_first.split('.').next(), by_second.split('.').next());
        for _ in 0..3 {
            assert!(first.verify(&by_first).is_ok());
            assert_eq!(
                first.verify(&by_second).unwrap_err().kind(),
                ErrorKind::InvalidSignature
            );
            assert!(second.verify(&by_second).is_ok());
            assert_eq!(
                second.verify(&by_first).unwrap_err().kind(),
                ErrorKind::InvalidSignature
            );
        }
    });
}

#[test]
fn outcomes_do_not_cross_verifiers_with_different_rules() {
    on_fresh_thread(|| {
        let any = common::verifier();
        let only_rsa = common::builder()
            .algorithms([Algorithm::RS256])
            .unwrap()
            .build()
            .unwrap();
        let typed = common::builder()
            .require_type("at+jwt")
            .unwrap()
            .build()
            .unwrap();
        let token = common::token(Algorithm::HS256, &common::claims());
        for _ in 0..3 {
            assert!(any.verify(&token).is_ok());
            assert_eq!(
                only_rsa.verify(&token).unwrap_err().kind(),
                ErrorKind::Algorithm
            );
            assert_eq!(
                typed.verify(&token).unwrap_err().kind(),
                ErrorKind::WrongType
            );
        }
    });
}

#[test]
fn verdicts_are_the_same_on_a_hit_and_a_miss() {
    on_fresh_thread(|| {
        let tokens: Vec<String> = Algorithm::ALL
            .into_iter()
            .flat_map(|alg| {
                [
                    common::token(alg, &common::claims()),
                    common::token(alg, &common::claims_with(json!({"aud": "other"}))),
                    common::token(alg, &common::claims_with(json!({"exp": "soon"}))),
                ]
            })
            .collect();
        // A verifier per round starts with no remembered header (fresh policy id): a miss.
        let cold: Vec<_> = tokens
            .iter()
            .map(|t| common::verifier().verify(t))
            .collect();
        let warm = common::verifier();
        for round in 0..3 {
            for (token, expected) in tokens.iter().zip(&cold) {
                assert_eq!(&warm.verify(token), expected, "round {round}");
            }
        }
    });
}
