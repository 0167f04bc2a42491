//! Shared fixtures: one key per algorithm (kid = the algorithm in lowercase), signers for them,
//! and a verifier with a fixed clock.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod answer;
pub mod layers;
pub mod metrics;
#[cfg(feature = "router")]
pub mod openapi;
#[cfg(feature = "postgres")]
pub mod postgres_server;
#[cfg(feature = "redis")]
pub mod redis_server;
#[cfg(feature = "smtp")]
pub mod smtp_server;
pub mod stores;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tower_jwt_auth::{Algorithm, KeySet, KeySource, TokenSigner, Verifier, VerifierBuilder};

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "api";
/// The fixed "now" of the verifier clock, in seconds since the epoch.
pub const NOW: u64 = 1_750_000_000;

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

pub fn fixture_str(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap()
}

/// The `kid` used for each algorithm's key in [`all_keys`] and [`signer`].
pub fn kid(alg: Algorithm) -> String {
    alg.as_str().to_ascii_lowercase()
}

/// An HMAC secret of exactly the minimum length for `alg`, distinct per algorithm.
pub fn hmac_secret(alg: Algorithm) -> Vec<u8> {
    let (len, fill) = match alg {
        Algorithm::HS256 => (32, 0x11),
        Algorithm::HS384 => (48, 0x22),
        Algorithm::HS512 => (64, 0x33),
        other => panic!("{other} is not an hmac algorithm"),
    };
    vec![fill; len]
}

/// The private-key PEM used to sign with `alg`.
pub fn private_pem(alg: Algorithm) -> Vec<u8> {
    fixture(match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => "rsa2048.pkcs8.pem",
        Algorithm::ES256 => "p256.pkcs8.pem",
        Algorithm::ES384 => "p384.pkcs8.pem",
        Algorithm::EdDSA => "ed25519.pkcs8.pem",
        hmac => panic!("{hmac} has no pem"),
    })
}

/// The public-key PEM (SPKI) that verifies `alg`.
pub fn public_pem(alg: Algorithm) -> Vec<u8> {
    fixture(match alg {
        Algorithm::ES256 => "p256.pub.pem",
        Algorithm::ES384 => "p384.pub.pem",
        Algorithm::EdDSA => "ed25519.pub.pem",
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => panic!("{alg} has no pem"),
        _ => "rsa2048.pub.pem",
    })
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// A signer for `alg` whose tokens carry `kid` = [`kid`]`(alg)`.
pub fn signer(alg: Algorithm) -> TokenSigner {
    let signer = if is_hmac(alg) {
        TokenSigner::hmac(alg, &hmac_secret(alg)).unwrap()
    } else {
        TokenSigner::from_pem(alg, &private_pem(alg)).unwrap()
    };
    signer.with_kid(kid(alg))
}

/// One key per algorithm, each under `kid` = [`kid`]`(alg)`.
pub fn all_keys() -> KeySet {
    Algorithm::ALL
        .into_iter()
        .fold(KeySet::builder(), |builder, alg| {
            let kid = kid(alg);
            if is_hmac(alg) {
                builder.hmac(Some(&kid), alg, &hmac_secret(alg)).unwrap()
            } else {
                builder.pem(Some(&kid), alg, &public_pem(alg)).unwrap()
            }
        })
        .build()
        .unwrap()
}

/// A monotonic clock that moves only when told to (for `RemoteJwksBuilder::clock`).
#[derive(Clone)]
pub struct ManualClock {
    base: Instant,
    offset_ms: Arc<AtomicU64>,
}

impl ManualClock {
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            offset_ms: Arc::default(),
        }
    }

    pub fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }

    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(u64::try_from(by.as_millis()).unwrap(), Ordering::SeqCst);
    }
}

pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A builder over [`all_keys`] with the test issuer and audience and the clock fixed at [`NOW`].
pub fn builder() -> VerifierBuilder {
    builder_for(all_keys())
}

pub fn builder_for(keys: impl Into<KeySource>) -> VerifierBuilder {
    Verifier::builder(keys)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .clock(|| at(NOW))
}

pub fn verifier() -> Verifier {
    builder().build().unwrap()
}

/// Valid claims at [`NOW`]: every default-required claim, plus `nbf`, roles and scopes.
pub fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "jti": "token-1",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 600,
        "roles": ["admin", "user"],
        "scope": "items:read items:write profile",
    })
}

/// The object `base` with the members of `changes` set (`null` removes a member).
pub fn merge(mut base: Value, changes: Value) -> Value {
    let object = base.as_object_mut().unwrap();
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            object.remove(name);
        } else {
            object.insert(name.clone(), value.clone());
        }
    }
    base
}

/// [`claims`] with `changes` merged in (`null` removes a member).
pub fn claims_with(changes: Value) -> Value {
    merge(claims(), changes)
}

/// A valid token for `alg` with these claims.
pub fn token(alg: Algorithm, claims: &Value) -> String {
    signer(alg).sign(claims).unwrap()
}

/// The JSON header [`signer`] would write for `alg`.
pub fn header(alg: Algorithm) -> String {
    format!(
        r#"{{"typ":"JWT","alg":"{}","kid":"{}"}}"#,
        alg.as_str(),
        kid(alg)
    )
}

/// Signs exactly this header and payload text with `alg`'s key.
pub fn raw_token(alg: Algorithm, header: &str, payload: &str) -> String {
    signer(alg)
        .sign_raw(header.as_bytes(), payload.as_bytes())
        .unwrap()
}

/// Occupies one of tokio's blocking-pool threads until released. On a runtime built with
/// `max_blocking_threads(1)`, work queued behind it (a `PasswordHasher` on
/// `HashingThreads::BlockingPool`) keeps its place in the hasher without running: the tests'
/// deterministic way to hold hashing, with no hook in the hasher.
pub struct BlockingHold {
    release: std::sync::mpsc::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl BlockingHold {
    /// Returns once the thread is occupied.
    pub fn start() -> Self {
        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let task = tokio::task::spawn_blocking(move || {
            started_tx.send(()).unwrap();
            released.recv().unwrap();
        });
        started.recv().unwrap();
        Self { release, task }
    }

    /// Frees the thread and waits until it is free.
    pub async fn release(self) {
        self.release.send(()).unwrap();
        self.task.await.unwrap();
    }
}
