//! What the login limiter costs, next to what it saves:
//!
//! - `limiter/memory/check`: one [`MemoryLimiterStore::check`] of a limited (client, username)
//!   (all three of its records present), called directly: ns per decision;
//! - `limiter/memory/record_failure`: one failure of one of 4,096 (client, username) pairs
//!   from 64 clients, a millisecond apart (records updated, nothing evicted);
//! - `limiter/memory/record_failure_full`: one failure of a new username in a store already at
//!   its cap (`DEFAULT_MAX_ENTRIES`), so every new entry makes room first;
//! - `layer/429`: a [`RateLimitLogin`] round trip that is refused: a small form body, a
//!   [`ClientAddr`], `tower::ServiceExt::oneshot`, the 429 collected (the inner service never
//!   runs);
//! - `router/429`: the same refusal through the [`AuthRouter`]'s `POST /token`;
//! - `login/real`: a successful password login through the same router and layer, with the
//!   default argon2id parameters (m = 19456 KiB, t = 2, p = 1).
//!
//! After criterion, a summary prints the median of the measured samples of each benchmark and
//! the ratio `login/real` ÷ `layer/429`: how many refused guesses cost as much as one login.
#![allow(clippy::unwrap_used, missing_docs)]

use std::convert::Infallible;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use criterion::{Criterion, SamplingMode};
use http::header::CONTENT_TYPE;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::runtime::Runtime;
use tower::{Layer, ServiceExt, service_fn};
use tower_jwt_auth::TokenIssuer;
use tower_jwt_auth::ratelimit::{
    ClientAddr, DEFAULT_MAX_ENTRIES, Decision, LimiterStore, LoginKey, LoginLimits,
    MemoryLimiterStore, RateLimitLogin, RateLimitLoginLayer,
};
use tower_jwt_auth::router::AuthRouter;

const NOW_MS: u64 = 1_750_000_000_000;
const PASSWORD: &str = "correct horse battery staple";
const LOGIN: &str = "grant_type=password&username=alice&password=correct+horse+battery+staple";
const GUESS: &str = "grant_type=password&username=alice&password=guess";
const FORM: &str = "application/x-www-form-urlencoded";
/// The client whose (client, alice) pair is limited.
const ATTACKER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
const OWNER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);

/// Samples of each benchmark in the order they ran, warm-up included: (iterations, elapsed).
type Record = Arc<Mutex<Vec<(String, Vec<(u64, Duration)>)>>>;

fn keep(record: &Record, name: &str, iterations: u64, elapsed: Duration) -> Duration {
    let mut record = record.lock().unwrap();
    match record.iter_mut().find(|(n, _)| n == name) {
        Some((_, samples)) => samples.push((iterations, elapsed)),
        None => record.push((name.to_owned(), vec![(iterations, elapsed)])),
    }
    elapsed
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The median ns per operation of the last `samples` samples of `name`.
fn median_ns(record: &Record, name: &str, samples: usize) -> f64 {
    let record = record.lock().unwrap();
    let (_, all) = record.iter().find(|(n, _)| n == name).unwrap();
    let measured = &all[all.len().saturating_sub(samples)..];
    median(
        measured
            .iter()
            .map(|(n, elapsed)| elapsed.as_secs_f64() * 1e9 / *n as f64)
            .collect(),
    )
}

fn fixed_clock() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(NOW_MS)
}

fn key(client: Ipv4Addr, username: &str) -> LoginKey<'_> {
    LoginKey {
        client: IpAddr::V4(client),
        username: Some(username),
    }
}

/// Six failures of (ATTACKER, alice) at [`NOW_MS`]: limited for a second, on the fixed clock
/// for ever.
fn limit_attacker(store: &MemoryLimiterStore) {
    for _ in 0..6 {
        let recorded = store.record_failure(&key(ATTACKER, "alice"), NOW_MS);
        recorded.into_ready().unwrap().unwrap();
    }
    let decision = store.check(&key(ATTACKER, "alice"), NOW_MS).into_ready();
    assert!(matches!(decision.unwrap().unwrap(), Decision::Limit { .. }));
}

fn request(client: Ipv4Addr, body: &'static str) -> Request<Body> {
    let mut request = Request::post("/token")
        .header(CONTENT_TYPE, FORM)
        .body(Body::from(body))
        .unwrap();
    request
        .extensions_mut()
        .insert(ClientAddr(IpAddr::V4(client)));
    request
}

/// `n` round trips of `request()` through `service`, each answered `expected`, bodies read.
fn round_trips<S, B>(
    runtime: &Runtime,
    service: &S,
    n: u64,
    expected: StatusCode,
    request: impl Fn() -> Request<Body>,
) -> Duration
where
    S: tower::Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone,
    B: http_body::Body<Data = bytes::Bytes>,
    B::Error: std::fmt::Debug,
{
    runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..n {
            let response = service.clone().oneshot(request()).await.unwrap();
            assert_eq!(response.status(), expected);
            black_box(response.into_body().collect().await.unwrap().to_bytes());
        }
        start.elapsed()
    })
}

fn main() {
    const FAST_SAMPLES: usize = 30;
    const LOGIN_SAMPLES: usize = 10;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let record: Record = Arc::default();
    let mut criterion = Criterion::default()
        .sample_size(FAST_SAMPLES)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();

    // Direct store calls.
    let store = MemoryLimiterStore::new(LoginLimits::default());
    limit_attacker(&store);
    let usernames: Vec<String> = (0..4096).map(|n| format!("user{n}")).collect();
    let clients: Vec<Ipv4Addr> = (0..64u32)
        .map(|n| Ipv4Addr::from(0xC612_0000 + n))
        .collect();
    let mut memory = criterion.benchmark_group("limiter/memory");
    memory.bench_function("check", |b| {
        b.iter_custom(|n| {
            let key = key(ATTACKER, "alice");
            let start = Instant::now();
            for _ in 0..n {
                let decision = store.check(black_box(&key), NOW_MS).into_ready();
                black_box(decision.unwrap().unwrap());
            }
            keep(&record, "limiter/memory/check", n, start.elapsed())
        });
    });
    let mut now = NOW_MS;
    memory.bench_function("record_failure", |b| {
        b.iter_custom(|n| {
            let start = Instant::now();
            for i in 0..n {
                let i = usize::try_from(i).unwrap();
                let username = &usernames[i % usernames.len()];
                let key = key(clients[i % clients.len()], username);
                now += 1;
                let recorded = store.record_failure(black_box(&key), now).into_ready();
                recorded.unwrap().unwrap();
            }
            keep(&record, "limiter/memory/record_failure", n, start.elapsed())
        });
    });
    // A store at its cap: every failure of a new username makes room first.
    let full = MemoryLimiterStore::new(LoginLimits::default());
    let mut next = 0usize;
    let mut full_now = NOW_MS;
    let fail_new = |full: &MemoryLimiterStore, next: &mut usize, now: &mut u64| {
        let username = format!("new{next}");
        let key = key(clients[*next % clients.len()], &username);
        *next += 1;
        *now += 1;
        full.record_failure(&key, *now)
            .into_ready()
            .unwrap()
            .unwrap();
    };
    while full.len() < DEFAULT_MAX_ENTRIES {
        fail_new(&full, &mut next, &mut full_now);
    }
    memory.sample_size(10);
    memory.sampling_mode(SamplingMode::Flat);
    memory.bench_function("record_failure_full", |b| {
        b.iter_custom(|n| {
            let start = Instant::now();
            for _ in 0..n {
                fail_new(&full, &mut next, &mut full_now);
            }
            keep(
                &record,
                "limiter/memory/record_failure_full",
                n,
                start.elapsed(),
            )
        });
    });
    memory.finish();
    assert!(full.len() <= DEFAULT_MAX_ENTRIES);

    // The layer alone: refused before the inner service, which would answer 500.
    let layer_store = Arc::new(MemoryLimiterStore::new(LoginLimits::default()));
    limit_attacker(&layer_store);
    let layer = RateLimitLoginLayer::new(Arc::clone(&layer_store) as Arc<dyn LimiterStore>)
        .clock(fixed_clock);
    let refused: RateLimitLogin<_> = layer.layer(service_fn(|_: Request<Body>| async {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        Ok::<_, Infallible>(response)
    }));

    // The router with the default hasher behind the same kind of layer.
    let router_store = Arc::new(MemoryLimiterStore::new(LoginLimits::default()));
    limit_attacker(&router_store);
    let limiter = RateLimitLoginLayer::new(Arc::clone(&router_store) as Arc<dyn LimiterStore>)
        .clock(fixed_clock);
    let issuer = TokenIssuer::generate_ed25519("https://auth.example", "api").unwrap();
    let auth = AuthRouter::builder(issuer)
        .rate_limit(limiter)
        .build()
        .unwrap();
    runtime
        .block_on(auth.create_user("alice", PASSWORD, &["user"], &["items:read"]))
        .unwrap();
    let app: Router = auth.router();

    let mut layer_group = criterion.benchmark_group("layer");
    layer_group.bench_function("429", |b| {
        b.iter_custom(|n| {
            let elapsed = round_trips(&runtime, &refused, n, StatusCode::TOO_MANY_REQUESTS, || {
                request(ATTACKER, GUESS)
            });
            keep(&record, "layer/429", n, elapsed)
        });
    });
    layer_group.finish();
    let mut router_group = criterion.benchmark_group("router");
    router_group.bench_function("429", |b| {
        b.iter_custom(|n| {
            let elapsed = round_trips(&runtime, &app, n, StatusCode::TOO_MANY_REQUESTS, || {
                request(ATTACKER, GUESS)
            });
            keep(&record, "router/429", n, elapsed)
        });
    });
    router_group.finish();

    let hashes_before = auth.hasher().stats();
    let mut login = criterion.benchmark_group("login");
    login.sample_size(LOGIN_SAMPLES);
    login.sampling_mode(SamplingMode::Flat);
    login.measurement_time(Duration::from_secs(5));
    login.bench_function("real", |b| {
        b.iter_custom(|n| {
            let elapsed = round_trips(&runtime, &app, n, StatusCode::OK, || request(OWNER, LOGIN));
            keep(&record, "login/real", n, elapsed)
        });
    });
    login.finish();
    criterion.final_summary();

    let stats = auth.hasher().stats();
    assert_eq!(
        stats.overloaded, hashes_before.overloaded,
        "no login was refused for capacity"
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("\nlimiter summary: medians of the measured samples, {cores} cores");
    let rows = [
        ("limiter/memory/check", FAST_SAMPLES),
        ("limiter/memory/record_failure", FAST_SAMPLES),
        ("limiter/memory/record_failure_full", 10),
        ("layer/429", FAST_SAMPLES),
        ("router/429", FAST_SAMPLES),
        ("login/real", LOGIN_SAMPLES),
    ];
    for (name, samples) in rows {
        let ns = median_ns(&record, name, samples);
        if ns >= 1e6 {
            println!("  {name:<36} {:>10.2} ms", ns / 1e6);
        } else if ns >= 1e3 {
            println!("  {name:<36} {:>10.2} µs", ns / 1e3);
        } else {
            println!("  {name:<36} {ns:>10.0} ns");
        }
    }
    let login = median_ns(&record, "login/real", LOGIN_SAMPLES);
    let layer = median_ns(&record, "layer/429", FAST_SAMPLES);
    let router = median_ns(&record, "router/429", FAST_SAMPLES);
    println!(
        "  login/real ÷ layer/429  = {:.0}  (one real login costs as much as that many refused guesses)",
        login / layer
    );
    println!("  login/real ÷ router/429 = {:.0}", login / router);
}
