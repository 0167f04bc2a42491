//! Verification throughput of a realistic access token, side by side in one run:
//!
//! - `floor/hs256`: HMAC-SHA256 with a prebuilt key, base64url decode of the payload and a
//!   typed serde parse: the least any HS256 verifier can do;
//! - `jsonwebtoken/decode/*`: plain `jsonwebtoken::decode` with equivalent validation;
//! - `verify/*`: this crate's `Verifier::verify` (every check of the token path);
//! - `signature_only/*`: the backend's verifier alone, key parsed once, signature pre-decoded;
//! - `layer/hs256`: a `BearerAuth` service call around a no-op inner service;
//! - `cached/*`: `Verifier::verify` with the verification cache on, the token already in it
//!   (a hit: the lookup, the claims re-validated and handed out);
//! - `remote/*` (with `--features remote-jwks`): `Verifier::verify` over a warm `RemoteJwks`
//!   that fetched the same public key from a loopback issuer, against `verify/*` over a static
//!   `KeySet`.
//!
//! After criterion, an interleaved phase times every body again in alternating ~1 ms batches
//! and takes each ratio as the median of per-round ratios: on a shared machine whose speed
//! drifts between benchmarks, that is the figure to quote. `python3 benches/ratios.py` prints
//! both and checks the targets. `PAIRED_ROUNDS` sets the rounds (default 400).
#![allow(clippy::unwrap_used, missing_docs)]

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::Criterion;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use tower_jwt_auth::bearer::BearerAuthLayer;
use tower_jwt_auth::{Algorithm, Claims, KeySet, TokenSigner, Verifier};
use tower_layer::Layer;
use tower_service::Service;

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
    /// The same policy and keys with the verification cache on, the token already in it.
    cached: Verifier,
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
    let builder = || {
        Verifier::builder(keys.clone())
            .issuer(ISSUER)
            .audience(AUDIENCE)
    };
    let verifier = builder().build().unwrap();
    verifier.verify(&token).unwrap();
    let cached = builder().cache(10_000).unwrap().build().unwrap();
    cached.verify(&token).unwrap();
    Case {
        name,
        alg,
        token,
        verifier,
        cached,
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

/// `remote/*`: the asymmetric cases' tokens, verified by a verifier whose keys a `RemoteJwks`
/// fetched from a loopback issuer (wiremock) serving the same public keys as a JWKS. The
/// runtime that served the fetch is kept; verification runs on the bench thread, as a request
/// handler's would, with the cache warm (`max-age` of a day).
#[cfg(feature = "remote-jwks")]
fn remote_cases(cases: &'static [Case]) -> Vec<(String, &'static Case, Verifier)> {
    use tower_jwt_auth::remote::RemoteJwks;
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let jwk = |file: &str, alg: Algorithm| {
        let mut jwk: serde_json::Value = serde_json::from_slice(&key_file(file)).unwrap();
        jwk["kid"] = "key-1".into();
        jwk["alg"] = alg.as_str().into();
        serde_json::json!({ "keys": [jwk] })
    };
    let runtime: &'static tokio::runtime::Runtime =
        Box::leak(Box::new(tokio::runtime::Runtime::new().unwrap()));
    let server: &'static MockServer = Box::leak(Box::new(runtime.block_on(MockServer::start())));
    cases
        .iter()
        .filter(|case| case.alg != Algorithm::HS256)
        .map(|case| {
            let file = match case.alg {
                Algorithm::RS256 => "rsa2048.pub.jwk",
                Algorithm::ES256 => "p256.pub.jwk",
                _ => "ed25519.pub.jwk",
            };
            let at = format!("/{}", case.name);
            runtime.block_on(
                Mock::given(path(at.as_str()))
                    .respond_with(
                        ResponseTemplate::new(200)
                            .set_body_json(jwk(file, case.alg))
                            .insert_header("cache-control", "max-age=86400"),
                    )
                    .mount(server),
            );
            let keys = RemoteJwks::jwks_url(&format!("{}{at}", server.uri()))
                .unwrap()
                .build()
                .unwrap();
            runtime.block_on(keys.refresh()).unwrap();
            let verifier = Verifier::builder(keys)
                .issuer(ISSUER)
                .audience(AUDIENCE)
                .build()
                .unwrap();
            verifier.verify(&case.token).unwrap();
            (format!("remote/{}", case.name), case, verifier)
        })
        .collect()
}

fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    alg.as_str().parse().unwrap()
}

/// A named benchmark: runs its body `n` times and returns the time that took, so that
/// per-iteration setup (building requests) can stay outside the timed region.
type Candidate = (String, Box<dyn Fn(u64) -> Duration>);

/// A candidate whose body needs no setup.
fn timed(body: impl Fn() + 'static) -> Box<dyn Fn(u64) -> Duration> {
    Box::new(move |n| {
        let start = Instant::now();
        for _ in 0..n {
            body();
        }
        start.elapsed()
    })
}

/// `layer/hs256`: a `BearerAuth` service call (poll_ready, call, poll the future) around a
/// no-op inner service. Requests are built before the clock starts and dropped after it stops;
/// the claims the layer attached are dropped inside, as `verify/hs256` drops its claims.
fn layer_candidate(case: &'static Case) -> Box<dyn Fn(u64) -> Duration> {
    let spent: Rc<RefCell<Vec<Request<()>>>> = Rc::default();
    let sink = Rc::clone(&spent);
    let inner = tower::service_fn(move |mut request: Request<()>| {
        black_box(request.extensions_mut().remove::<Claims>());
        sink.borrow_mut().push(request);
        std::future::ready(Ok::<_, Infallible>(Response::new(())))
    });
    let service = RefCell::new(BearerAuthLayer::new(case.verifier.clone()).layer(inner));
    let authorization = HeaderValue::try_from(format!("Bearer {}", case.token)).unwrap();
    Box::new(move |n| {
        let requests: Vec<Request<()>> = (0..n)
            .map(|_| {
                let mut request = Request::new(());
                request
                    .headers_mut()
                    .insert(AUTHORIZATION, authorization.clone());
                request
            })
            .collect();
        let mut service = service.borrow_mut();
        let mut cx = Context::from_waker(Waker::noop());
        spent.borrow_mut().reserve(requests.len());
        let start = Instant::now();
        for request in requests {
            assert!(service.poll_ready(&mut cx).is_ready());
            let response = pin!(service.call(request)).poll(&mut cx);
            let Poll::Ready(Ok(response)) = response else {
                panic!("not ready")
            };
            assert_eq!(response.status(), StatusCode::OK);
            black_box(response);
        }
        let elapsed = start.elapsed();
        spent.borrow_mut().clear();
        elapsed
    })
}

fn candidates(cases: &'static [Case]) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();

    // The floor: prebuilt HMAC key, signature and payload decode, typed parse. No header, no
    // policy.
    let hs = &cases[0];
    let floor =
        (provider().verifier_factory)(&jsonwebtoken::Algorithm::HS256, &hs.decoding_key).unwrap();
    out.push((
        "floor/hs256".into(),
        timed(move || {
            let token = black_box(hs.token.as_str());
            let (message, signature) = token.rsplit_once('.').unwrap();
            let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
            floor.verify(message.as_bytes(), &signature).unwrap();
            let payload = message.split_once('.').unwrap().1;
            let payload = URL_SAFE_NO_PAD.decode(payload).unwrap();
            black_box(serde_json::from_slice::<AccessClaims>(&payload).unwrap());
        }),
    ));

    for case in cases {
        let mut validation = Validation::new(jwt_alg(case.alg));
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.leeway = 30;
        validation.validate_nbf = true;
        out.push((
            format!("jsonwebtoken/decode/{}", case.name),
            timed(move || {
                let token = black_box(case.token.as_str());
                black_box(
                    jsonwebtoken::decode::<AccessClaims>(token, &case.decoding_key, &validation)
                        .unwrap(),
                );
            }),
        ));
    }

    for case in cases {
        out.push((
            format!("verify/{}", case.name),
            timed(move || {
                black_box(case.verifier.verify(black_box(&case.token)).unwrap());
            }),
        ));
    }

    for case in cases {
        out.push((
            format!("cached/{}", case.name),
            timed(move || {
                black_box(case.cached.verify(black_box(&case.token)).unwrap());
            }),
        ));
    }

    out.push(("layer/hs256".into(), layer_candidate(&cases[0])));

    #[cfg(feature = "remote-jwks")]
    for (name, case, verifier) in remote_cases(cases) {
        out.push((
            name,
            timed(move || {
                black_box(verifier.verify(black_box(&case.token)).unwrap());
            }),
        ));
    }

    for case in cases.iter().filter(|case| case.alg != Algorithm::HS256) {
        let verifier =
            (provider().verifier_factory)(&jwt_alg(case.alg), &case.decoding_key).unwrap();
        let (message, signature) = case.token.rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        out.push((
            format!("signature_only/{}", case.name),
            timed(move || {
                verifier
                    .verify(black_box(message.as_bytes()), black_box(&signature))
                    .unwrap();
            }),
        ));
    }
    out
}

/// Interleaved measurement: every round times a batch of about a millisecond of each candidate,
/// back to back, in a rotating order. Each tracked ratio is the median over rounds of the
/// ratio within the round, so drift in the (shared, noisy) machine's speed that lasts longer
/// than a round cancels out. Written to `target/criterion/paired.json` for `ratios.py`.
fn paired(candidates: &[Candidate], rounds: usize) {
    let batch: Vec<u32> = candidates
        .iter()
        .map(|(_, run)| {
            let mut n = 1u64;
            while run(n) < Duration::from_millis(20) {
                n *= 2;
            }
            // About a millisecond per batch.
            u32::try_from(n / 20).unwrap_or(u32::MAX).max(1)
        })
        .collect();
    let mut per_round = vec![Vec::with_capacity(rounds); candidates.len()];
    for round in 0..rounds {
        for offset in 0..candidates.len() {
            let i = (round + offset) % candidates.len();
            let elapsed = (candidates[i].1)(u64::from(batch[i]));
            per_round[i].push(elapsed.as_nanos() as f64 / f64::from(batch[i]));
        }
    }
    let index = |name: &str| candidates.iter().position(|(n, _)| n == name).unwrap();
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let mut json = String::from("{\n  \"rounds\": ");
    json += &format!("{rounds},\n  \"median_ns\": {{");
    for (i, (name, _)) in candidates.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        json += &format!("{sep}\n    \"{name}\": {:.1}", median(per_round[i].clone()));
    }
    json += "\n  },\n  \"ratios\": {";
    let mut pairs = vec![
        ("verify/hs256", "floor/hs256"),
        ("jsonwebtoken/decode/hs256", "verify/hs256"),
        ("verify/rs256", "signature_only/rs256"),
        ("verify/es256", "signature_only/es256"),
        ("verify/eddsa", "signature_only/eddsa"),
        ("jsonwebtoken/decode/rs256", "verify/rs256"),
        ("jsonwebtoken/decode/es256", "verify/es256"),
        ("jsonwebtoken/decode/eddsa", "verify/eddsa"),
        ("verify/hs256", "cached/hs256"),
        ("verify/rs256", "cached/rs256"),
        ("verify/es256", "cached/es256"),
        ("verify/eddsa", "cached/eddsa"),
        ("cached/es256", "verify/hs256"),
    ];
    // Costs over a bare verification, in nanoseconds: the layer's, and the remote source's.
    let mut deltas = vec![("layer/hs256", "verify/hs256")];
    if candidates
        .iter()
        .any(|(name, _)| name.starts_with("remote/"))
    {
        let remote = [
            ("remote/rs256", "verify/rs256"),
            ("remote/es256", "verify/es256"),
            ("remote/eddsa", "verify/eddsa"),
        ];
        pairs.extend(remote);
        deltas.extend(remote);
    }
    println!("interleaved, {rounds} rounds: median of per-round ratios");
    for (k, (a, b)) in pairs.iter().enumerate() {
        let (ia, ib) = (index(a), index(b));
        let ratio = median(
            (0..rounds)
                .map(|r| per_round[ia][r] / per_round[ib][r])
                .collect(),
        );
        println!("  {a} / {b}: {ratio:.3}");
        let sep = if k == 0 { "" } else { "," };
        json += &format!("{sep}\n    \"{a} / {b}\": {ratio:.4}");
    }
    json += "\n  },\n  \"deltas_ns\": {";
    for (k, (a, b)) in deltas.iter().enumerate() {
        let (ia, ib) = (index(a), index(b));
        let delta = median(
            (0..rounds)
                .map(|r| per_round[ia][r] - per_round[ib][r])
                .collect(),
        );
        println!("  {a} - {b}: {delta:.0} ns");
        let sep = if k == 0 { "" } else { "," };
        json += &format!("{sep}\n    \"{a} - {b}\": {delta:.1}");
    }
    json += "\n  }\n}\n";
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/criterion");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(format!("{dir}/paired.json"), json).unwrap();
}

fn main() {
    let cases: &'static [Case] = Vec::leak(cases());
    println!("token length: {} bytes (hs256)", cases[0].token.len());
    let candidates = candidates(cases);
    // `cargo bench` passes --bench; `cargo test --benches` does not and runs each body once.
    let benchmarking = std::env::args().any(|arg| arg == "--bench");
    let mut criterion = Criterion::default().configure_from_args();
    for (name, run) in &candidates {
        criterion.bench_function(name, |b| b.iter_custom(run));
    }
    criterion.final_summary();
    if benchmarking {
        let rounds = std::env::var("PAIRED_ROUNDS").map_or(400, |r| r.parse().unwrap());
        paired(&candidates, rounds);
    }
}
