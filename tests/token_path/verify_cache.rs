//! The verification cache (`VerifierBuilder::cache`): each of its rules through the public API
//! (a hit re-checks the time claims, entries end at `exp`, a changed token is another token,
//! revocation still runs behind `BearerAuthLayer`, a key-set change drops the cache, bounded),
//! and a property test that a cached verifier always answers as an uncached one.

use crate::common;
use crate::common::answer::{Answer, answer};
use crate::common::layers::{Inner, bearer};

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use http::StatusCode;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use tower::{Layer, ServiceExt};
use tower_jwt_auth::bearer::BearerAuthLayer;
use tower_jwt_auth::revocation::{MemoryRevocationStore, RevocationStore};
use tower_jwt_auth::{
    Algorithm, CacheStats, ConfigError, ErrorKind, MAX_CACHE_CAPACITY, Verifier, VerifierBuilder,
};

const NOW: i64 = common::NOW as i64;

/// A clock the test moves: seconds since the epoch.
#[derive(Clone)]
struct Clock(Arc<AtomicI64>);

impl Clock {
    fn new() -> Self {
        Self(Arc::new(AtomicI64::new(NOW)))
    }

    fn set(&self, secs: i64) {
        self.0.store(secs, Ordering::SeqCst);
    }

    fn install(&self, builder: VerifierBuilder) -> VerifierBuilder {
        let secs = Arc::clone(&self.0);
        builder.clock(move || {
            let secs = secs.load(Ordering::SeqCst);
            UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
        })
    }
}

fn cached(clock: &Clock, capacity: usize) -> Verifier {
    clock
        .install(common::builder())
        .cache(capacity)
        .unwrap()
        .build()
        .unwrap()
}

fn token(alg: Algorithm, changes: Value) -> String {
    common::token(alg, &common::claims_with(changes))
}

fn stats(verifier: &Verifier) -> (u64, u64, usize) {
    let stats: CacheStats = verifier.cache_stats().unwrap();
    (stats.hits(), stats.misses(), stats.entries())
}

#[test]
fn a_hit_gives_the_claims_a_full_verification_gives() {
    let clock = Clock::new();
    let verifier = cached(&clock, 100);
    let plain = clock.install(common::builder()).build().unwrap();
    assert_eq!(plain.cache_stats(), None, "off unless asked for");
    for alg in [Algorithm::HS256, Algorithm::ES256, Algorithm::EdDSA] {
        let token = token(alg, json!({"extra": {"nested": [1, 2.5, "x"]}}));
        let expected = plain.verify(&token).unwrap();
        assert_eq!(verifier.verify(&token).unwrap(), expected);
        assert_eq!(verifier.verify(&token).unwrap(), expected);
        // Another claims type on a hit deserialises the same stored claims.
        #[derive(serde::Deserialize, PartialEq, Debug)]
        struct Extra {
            extra: Value,
        }
        let typed = verifier.verify_as::<Extra>(&token).unwrap();
        assert_eq!(typed.extra().extra, json!({"nested": [1, 2.5, "x"]}));
        assert_eq!(typed.subject(), expected.subject());
        // A type the claims do not fit fails on a hit as it does without the cache.
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Wrong {
            extra: String,
        }
        assert_eq!(
            verifier.verify_as::<Wrong>(&token).unwrap_err().kind(),
            plain.verify_as::<Wrong>(&token).unwrap_err().kind()
        );
    }
    assert_eq!(stats(&verifier), (9, 3, 3));
}

#[test]
fn a_hit_rechecks_exp_nbf_and_iat_against_the_clock_now() {
    let clock = Clock::new();
    let verifier = cached(&clock, 100);
    let token = token(
        Algorithm::ES256,
        json!({"iat": NOW, "nbf": NOW + 100, "exp": NOW + 600}),
    );
    // Not yet valid at NOW (nbf 100 s ahead, leeway 30 s): refused, so not stored.
    assert_eq!(
        verifier.verify(&token).unwrap_err().kind(),
        ErrorKind::NotYetValid
    );
    assert_eq!(stats(&verifier), (0, 1, 0));
    clock.set(NOW + 100);
    assert!(verifier.verify(&token).is_ok());
    assert_eq!(stats(&verifier), (0, 2, 1));
    // A clock set back (NTP step, a test clock) is judged afresh on a hit: nbf, then iat.
    clock.set(NOW + 69);
    assert_eq!(
        verifier.verify(&token).unwrap_err().kind(),
        ErrorKind::NotYetValid
    );
    assert_eq!(stats(&verifier), (1, 2, 1), "a hit, refused by its claims");
    let iat_only = token_with_iat_ahead_of_nbf();
    clock.set(NOW + 200);
    assert!(verifier.verify(&iat_only).is_ok());
    clock.set(NOW + 169);
    assert_eq!(
        verifier.verify(&iat_only).unwrap_err().kind(),
        ErrorKind::IssuedInFuture
    );
    // Forward again, the stored entry serves.
    clock.set(NOW + 300);
    assert!(verifier.verify(&token).is_ok());
    assert!(verifier.verify(&iat_only).is_ok());
    let (hits, ..) = stats(&verifier);
    assert_eq!(hits, 4);
}

fn token_with_iat_ahead_of_nbf() -> String {
    token(
        Algorithm::HS256,
        json!({"jti": "iat", "iat": NOW + 200, "nbf": null, "exp": NOW + 600}),
    )
}

#[test]
fn entries_end_at_exp_and_the_leeway_is_judged_in_full() {
    let clock = Clock::new();
    let verifier = cached(&clock, 100);
    let token = token(Algorithm::ES256, json!({"exp": NOW + 60}));
    assert!(verifier.verify(&token).is_ok());
    clock.set(NOW + 59);
    assert!(verifier.verify(&token).is_ok());
    assert_eq!(stats(&verifier), (1, 1, 1));
    // From exp on, a miss: verified in full, accepted within the 30 s leeway, not stored.
    clock.set(NOW + 60);
    assert!(verifier.verify(&token).is_ok());
    assert_eq!(stats(&verifier), (1, 2, 0));
    clock.set(NOW + 89);
    assert!(verifier.verify(&token).is_ok());
    assert_eq!(stats(&verifier), (1, 3, 0));
    clock.set(NOW + 90);
    assert_eq!(
        verifier.verify(&token).unwrap_err().kind(),
        ErrorKind::Expired
    );
    // A token without exp (where the policy allows one) is never stored.
    let lenient = clock
        .install(common::builder())
        .required_claims(["sub"])
        .unwrap()
        .cache(100)
        .unwrap()
        .build()
        .unwrap();
    let forever = self::token(Algorithm::HS256, json!({"exp": null}));
    for _ in 0..3 {
        assert!(lenient.verify(&forever).is_ok());
    }
    assert_eq!(stats(&lenient), (0, 3, 0));
}

#[test]
fn a_changed_token_is_verified_in_full_and_refused() {
    let clock = Clock::new();
    let verifier = cached(&clock, 100);
    for alg in [Algorithm::HS256, Algorithm::ES256] {
        let token = token(alg, json!({}));
        assert!(verifier.verify(&token).is_ok());
        let (header_payload, signature) = token.rsplit_once('.').unwrap();
        // Another token with the same header and payload: a forged signature, a signature
        // with a character added, the payload without its signature.
        let mut forged = signature.as_bytes().to_vec();
        forged[5] = if forged[5] == b'A' { b'B' } else { b'A' };
        let forged = format!("{header_payload}.{}", String::from_utf8(forged).unwrap());
        assert_eq!(
            verifier.verify(&forged).unwrap_err().kind(),
            ErrorKind::InvalidSignature
        );
        assert!(verifier.verify(&format!("{token}A")).is_err());
        assert_eq!(
            verifier
                .verify(&format!("{header_payload}."))
                .unwrap_err()
                .kind(),
            ErrorKind::Malformed
        );
        assert!(verifier.verify(&token).is_ok());
    }
    // Two verified tokens, one stored each; the refused ones were never stored.
    let (hits, _, entries) = stats(&verifier);
    assert_eq!((hits, entries), (2, 2));
}

#[test]
fn a_token_over_the_length_cap_is_refused_before_the_cache() {
    let clock = Clock::new();
    let verifier = clock
        .install(common::builder())
        .max_token_len(400)
        .unwrap()
        .cache(10)
        .unwrap()
        .build()
        .unwrap();
    let long = token(Algorithm::HS256, json!({"pad": "x".repeat(400)}));
    assert_eq!(
        verifier.verify(&long).unwrap_err().kind(),
        ErrorKind::TooLong
    );
    assert_eq!(stats(&verifier), (0, 0, 0), "not even looked up");
}

#[test]
fn the_cache_holds_at_most_its_capacity() {
    let clock = Clock::new();
    let verifier = cached(&clock, 50);
    let tokens: Vec<String> = (0..200)
        .map(|i| token(Algorithm::HS256, json!({"jti": format!("t-{i}")})))
        .collect();
    for token in &tokens {
        assert!(verifier.verify(token).is_ok());
        assert!(verifier.cache_stats().unwrap().entries() <= 50);
    }
    assert_eq!(verifier.cache_stats().unwrap().capacity(), 50);
    // Evicted tokens still verify, in full.
    for token in &tokens {
        assert!(verifier.verify(token).is_ok());
    }
}

#[test]
fn threads_sharing_a_small_cache_each_get_their_own_tokens_claims() {
    let clock = Clock::new();
    let verifier = cached(&clock, 8);
    let tokens: Vec<(String, String)> = (0..24)
        .map(|i| {
            let sub = format!("user-{i}");
            (token(Algorithm::ES256, json!({"sub": sub})), sub)
        })
        .collect();
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let (verifier, tokens) = (&verifier, &tokens);
            scope.spawn(move || {
                for round in 0..300 {
                    let (token, sub) = &tokens[(round * 7 + thread * 5) % tokens.len()];
                    let claims = verifier.verify(token).unwrap();
                    assert_eq!(claims.subject(), Some(sub.as_str()));
                }
            });
        }
    });
    let stats = verifier.cache_stats().unwrap();
    assert_eq!(stats.hits() + stats.misses(), 1200);
    assert!(stats.hits() > 0 && stats.entries() <= 8, "{stats:?}");
}

#[test]
fn capacity_must_be_sensible() {
    let builder = || common::builder();
    for capacity in [0, MAX_CACHE_CAPACITY + 1, usize::MAX] {
        assert!(matches!(
            builder().cache(capacity),
            Err(ConfigError::InvalidSetting(_))
        ));
    }
    assert!(builder().cache(1).is_ok());
    assert!(builder().cache(MAX_CACHE_CAPACITY).is_ok());
}

#[test]
fn members_of_an_issuer_set_keep_their_own_caches() {
    let clock = Clock::new();
    let one = cached(&clock, 10);
    let other = clock
        .install(tower_jwt_auth::Verifier::builder(common::all_keys()))
        .issuer("https://other.test")
        .audience(common::AUDIENCE)
        .cache(10)
        .unwrap()
        .build()
        .unwrap();
    let set = Verifier::by_issuer([one.clone(), other.clone()]).unwrap();
    assert_eq!(set.cache_stats(), None);
    let mine = token(Algorithm::ES256, json!({}));
    let theirs = token(Algorithm::ES256, json!({"iss": "https://other.test"}));
    for _ in 0..2 {
        assert!(set.verify(&mine).is_ok());
        assert!(set.verify(&theirs).is_ok());
    }
    assert_eq!(stats(&one), (1, 1, 1));
    assert_eq!(stats(&other), (1, 1, 1));
}

async fn send(layer: &BearerAuthLayer, token: &str) -> Answer {
    let service = layer.layer(Inner::default());
    answer(service.oneshot(bearer(token)).await.unwrap()).await
}

#[tokio::test]
async fn revocation_still_runs_on_a_hit() {
    let clock = Clock::new();
    let verifier = cached(&clock, 10);
    let store = Arc::new(MemoryRevocationStore::new().clock(|| common::NOW));
    let layer = BearerAuthLayer::new(verifier.clone()).revocation(store.clone());
    let token = token(Algorithm::ES256, json!({"jti": "r-1", "sid": "s-1"}));
    assert_eq!(send(&layer, &token).await.status, StatusCode::OK);
    assert_eq!(send(&layer, &token).await.status, StatusCode::OK);
    assert_eq!(stats(&verifier), (1, 1, 1));

    store
        .revoke_token(common::ISSUER, "r-1", common::NOW + 3600)
        .await
        .unwrap();
    let refused = send(&layer, &token).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.kind(), Some(ErrorKind::Revoked));
    assert_eq!(
        stats(&verifier),
        (2, 1, 1),
        "the verifier answered from the cache; the store refused"
    );

    // The session denylist and the per-user not-before too.
    let other = self::token(Algorithm::ES256, json!({"jti": "r-2", "sid": "s-2"}));
    assert_eq!(send(&layer, &other).await.status, StatusCode::OK);
    store
        .revoke_session(common::ISSUER, "s-2", common::NOW + 3600)
        .await
        .unwrap();
    assert_eq!(send(&layer, &other).await.kind(), Some(ErrorKind::Revoked));
    let third = self::token(Algorithm::ES256, json!({"jti": "r-3", "sid": "s-3"}));
    assert_eq!(send(&layer, &third).await.status, StatusCode::OK);
    store
        .revoke_subject_before(
            common::ISSUER,
            "user-1",
            common::NOW + 1,
            common::NOW + 3600,
        )
        .await
        .unwrap();
    assert_eq!(send(&layer, &third).await.kind(), Some(ErrorKind::Revoked));
    let (hits, ..) = stats(&verifier);
    assert_eq!(hits, 4);
}

/// A key-set change (a refresh that brought another JWKS) drops the cache: a token whose key
/// was retired stops verifying at once, although its claims are still stored.
#[cfg(feature = "testing")]
#[tokio::test]
async fn a_retired_key_stops_verifying_cached_tokens_at_the_next_refresh() {
    use tower_jwt_auth::testing::TestIssuer;

    let issuer = TestIssuer::start().await.unwrap();
    let keys = issuer.remote_jwks().unwrap().build().unwrap();
    let verifier = Verifier::builder(keys.clone())
        .issuer(issuer.issuer())
        .audience(issuer.audience())
        .cache(100)
        .unwrap()
        .build()
        .unwrap();
    let old = issuer.token().sign().unwrap();
    for _ in 0..3 {
        assert!(verifier.verify_async(&old).await.is_ok());
    }
    assert_eq!(stats(&verifier), (2, 1, 1));

    // A refresh that brings the same document keeps the key set, and the cache with it.
    keys.refresh().await.unwrap();
    assert!(verifier.verify(&old).is_ok());
    assert_eq!(stats(&verifier), (3, 1, 1));

    let new_kid = issuer.rotate().unwrap();
    let old_kid = issuer
        .published_kids()
        .into_iter()
        .find(|kid| *kid != new_kid)
        .unwrap();
    assert!(issuer.retire(&old_kid));
    keys.refresh().await.unwrap();
    assert_eq!(
        verifier.verify(&old).unwrap_err().kind(),
        ErrorKind::UnknownKey
    );
    assert_eq!(stats(&verifier), (3, 2, 0), "dropped whole, then a miss");
    let new = issuer.token().sign().unwrap();
    assert!(verifier.verify(&new).is_ok());
    assert!(verifier.verify(&new).is_ok());
    assert_eq!(stats(&verifier), (4, 3, 1));
}

// ---------------------------------------------------------------------------------------------
// Cached and uncached verification always agree.

/// A token to present: claims around NOW, sometimes wrong, sometimes a byte changed.
#[derive(Clone, Debug)]
struct Case {
    alg: Algorithm,
    claims: Value,
    /// A byte of the token to replace, and with what.
    tamper: Option<(usize, u8)>,
}

/// A time claim: mostly in a range where the token is valid around NOW, sometimes anywhere
/// near it (or absent), so that clock moves take tokens in and out of validity.
fn time(valid: std::ops::Range<i64>) -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        6 => valid.prop_map(|d| json!(NOW + d)),
        2 => (-200i64..300).prop_map(|d| json!(NOW + d)),
        1 => (-200.0f64..300.0).prop_map(|d| json!(NOW as f64 + d)),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let alg = prop_oneof![Just(Algorithm::HS256), Just(Algorithm::ES256)];
    let iss = prop_oneof![
        4 => Just(json!(common::ISSUER)),
        1 => Just(json!("https://other.test")),
        1 => Just(Value::Null),
    ];
    let aud = prop_oneof![
        3 => Just(json!(common::AUDIENCE)),
        1 => Just(json!(["x", common::AUDIENCE])),
        1 => Just(json!("billing")),
    ];
    let roles = prop_oneof![
        3 => Just(json!(["admin"])),
        1 => Just(json!("admin")),
    ];
    (
        alg,
        (iss, aud, roles, time(60..400), time(-300..0), time(-300..0)),
        any::<u16>(),
        proptest::option::weighted(0.15, (any::<prop::sample::Index>(), any::<u8>())),
    )
        .prop_map(|(alg, (iss, aud, roles, exp, nbf, iat), jti, tamper)| {
            let claims = common::claims_with(json!({
                "iss": iss, "aud": aud, "roles": roles, "exp": exp, "nbf": nbf, "iat": iat,
                "jti": format!("j-{jti}"),
            }));
            Case {
                alg,
                claims,
                tamper: tamper.map(|(index, byte)| (index.index(1 << 16), byte)),
            }
        })
}

fn present(case: &Case) -> String {
    let mut token = common::token(case.alg, &case.claims).into_bytes();
    if let Some((index, byte)) = case.tamper {
        let at = index % token.len();
        token[at] = byte;
    }
    String::from_utf8_lossy(&token).into_owned()
}

/// Whatever the tokens, their order and the clock's moves (forward and back, across `exp`),
/// a verifier with the cache answers exactly as one without: the same claims, or the same
/// error. Run by hand rather than with `proptest!` so that the test can also check that the
/// cache was used: hits, including hits then refused by the re-checked claims.
#[test]
fn cached_and_uncached_verification_always_agree() {
    let hits = AtomicU64::new(0);
    let refused_hits = AtomicU64::new(0);
    let strategy = (
        prop::collection::vec(case(), 1..6),
        prop::collection::vec((any::<prop::sample::Index>(), -40i64..50), 1..40),
        prop_oneof![Just(1usize), Just(2), Just(64)],
    );
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&strategy, |(cases, steps, capacity)| {
        let clock = Clock::new();
        let with_cache = cached(&clock, capacity);
        let without = clock.install(common::builder()).build().unwrap();
        let tokens: Vec<String> = cases.iter().map(present).collect();
        let mut now = NOW;
        for (pick, step) in steps {
            now += step;
            clock.set(now);
            let token = &tokens[pick.index(tokens.len())];
            let before = with_cache.cache_stats().unwrap().hits();
            let expected = without.verify(token);
            let got = with_cache.verify(token);
            let stats = with_cache.cache_stats().unwrap();
            if stats.hits() > before {
                hits.fetch_add(1, Ordering::Relaxed);
                if got.is_err() {
                    refused_hits.fetch_add(1, Ordering::Relaxed);
                }
            }
            match (&expected, &got) {
                (Ok(expected), Ok(got)) => prop_assert_eq!(expected, got),
                (Err(expected), Err(got)) => prop_assert_eq!(
                    (expected.kind(), expected.to_string()),
                    (got.kind(), got.to_string())
                ),
                _ => prop_assert!(
                    false,
                    "at {}: uncached {:?}, cached {:?}",
                    now,
                    expected,
                    got
                ),
            }
            prop_assert!(stats.entries() <= capacity);
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let (hits, refused_hits) = (hits.into_inner(), refused_hits.into_inner());
    assert!(hits >= 100, "the cache was hardly used: {hits} hits");
    assert!(refused_hits >= 1, "no stored token was refused on a hit");
}
