//! What the login limiter costs, next to what it saves. Store calls, called directly on the
//! default policy ([`LoginLimits::default`]):
//!
//! - `limiter/memory/check`: one [`LimiterStore::check`] (a look, counting nothing) of a limited
//!   (client, username) pair: ns per decision;
//! - `limiter/memory/attempt_limited`: one [`LimiterStore::attempt`] of the same limited pair,
//!   refused and so counting nothing: the cost of deciding a refused guess;
//! - `limiter/memory/attempt_succeeded`: an allowed `attempt` of one of 4,096 (client,
//!   username) pairs from 64 clients, then [`LimiterStore::succeeded`]: the two store calls of a
//!   successful login (three records written, then cleared or refunded, so the store stays
//!   empty);
//! - `limiter/memory/attempt_full`: an allowed `attempt` of a new username in a store already
//!   at its cap ([`DEFAULT_MAX_ENTRIES`]), so new entries make room first (the sweeps and
//!   evictions amortised over the attempts); the clients come from a pool of 65,536 addresses
//!   and the clock moves 1 ms per attempt, so each client is charged about once a minute and
//!   none reaches its rate limit;
//! - with feature `redis`, the same calls on a `RedisLimiterStore` of a private
//!   `redis-server` (started from `PATH`; the rows are skipped, loudly, when there is none),
//!   awaited one after another on one connection: `limiter/redis/attempt_limited`,
//!   `limiter/redis/attempt_succeeded` (two round trips), `limiter/redis/check` and, as the
//!   floor under them, `limiter/redis/ping` (a bare round trip on the same connection), µs per
//!   decision;
//! - `username/normalize_ascii`, `username/normalize_unicode`: one [`normalize_username`] of
//!   `Alice` and of `Ｓtraße`, what the layer does to every username it reads;
//! - `layer/429`: a [`RateLimitLogin`] round trip that is refused: a small form body, a
//!   [`ClientAddr`], `tower::ServiceExt::oneshot`, the 429 collected (the inner service never
//!   runs);
//! - `router/429`: the same refusal through the [`AuthRouter`]'s `POST /token`;
//! - `login/real`: a successful password login through the same router and layer, with the
//!   default argon2id parameters (m = 19456 KiB, t = 2, p = 1).
//!
//! Every row checks, before it is measured and on every iteration, that the store decides what
//! the row claims (limited, or allowed). After criterion, a summary prints the median of the
//! measured samples of each row and the ratios `login/real ÷ layer/429` (how many refused
//! guesses cost as much as one login) and, with Redis, `limiter/redis/attempt_limited ÷
//! limiter/memory/attempt_limited`.
#![allow(clippy::unwrap_used, missing_docs)]

// The bench uses only `start`, `connection` and the drop that kills the server; the outage
// helpers are for tests/stores/redis.rs.
#[cfg(feature = "redis")]
#[allow(dead_code)]
#[path = "../tests/common/redis_server.rs"]
mod redis_server;

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
use http_body_util::{BodyExt, Full};
use tokio::runtime::Runtime;
use tower::{Layer, ServiceExt, service_fn};
use tower_jwt_auth::issuer::TokenIssuer;
use tower_jwt_auth::normalize_username;
use tower_jwt_auth::ratelimit::{
    Action, ClientAddr, DEFAULT_MAX_ENTRIES, Decision, LimitReason, LimiterStore, LoginKey,
    LoginLimits, MemoryLimiterStore, RateLimitLogin, RateLimitLoginLayer,
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
/// 198.18.0.0, the start of the benchmarking network 198.18.0.0/15 the other clients come from.
const BENCH_NET: u32 = 0xC612_0000;

const FAST_SAMPLES: usize = 30;
const FULL_SAMPLES: usize = 10;
const LOGIN_SAMPLES: usize = 10;

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

/// The median ns per operation of the last `samples` samples of `name` (criterion warms up
/// first, then takes exactly that many), or `None` when it did not run (filtered out).
fn median_ns(record: &Record, name: &str, samples: usize) -> Option<f64> {
    let record = record.lock().unwrap();
    let (_, all) = record.iter().find(|(n, _)| n == name)?;
    let measured = &all[all.len().saturating_sub(samples)..];
    Some(median(
        measured
            .iter()
            .map(|(n, elapsed)| elapsed.as_secs_f64() * 1e9 / *n as f64)
            .collect(),
    ))
}

fn fixed_clock() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(NOW_MS)
}

fn key(client: Ipv4Addr, username: &str) -> LoginKey<'_> {
    LoginKey {
        client: IpAddr::V4(client),
        username: Some(username),
        action: Action::Login,
    }
}

/// `n` addresses of 198.18.0.0/15.
fn bench_clients(n: u32) -> Vec<Ipv4Addr> {
    assert!(n <= 1 << 17, "198.18.0.0/15 holds 131,072 addresses");
    (0..n).map(|i| Ipv4Addr::from(BENCH_NET + i)).collect()
}

/// Whether `decision` refuses for the (client, username) backoff.
fn pair_limited(decision: Decision) -> bool {
    matches!(
        decision,
        Decision::Limit {
            reason: LimitReason::ClientAndUsername,
            ..
        }
    )
}

/// Six allowed attempts of (ATTACKER, alice) at [`NOW_MS`], each counted as a failure: five
/// are free, so the pair must then wait a second; on the fixed clock, for ever. Checks that
/// both a look and an attempt are refused, and that the refused attempt counted nothing.
async fn limit_attacker(store: &dyn LimiterStore) {
    let key = key(ATTACKER, "alice");
    for _ in 0..6 {
        assert_eq!(store.attempt(&key, NOW_MS).await.unwrap(), Decision::Allow);
    }
    let refused = store.attempt(&key, NOW_MS).await.unwrap();
    assert!(pair_limited(refused), "{refused:?}");
    assert_eq!(store.attempt(&key, NOW_MS).await.unwrap(), refused);
    assert_eq!(store.check(&key, NOW_MS).await.unwrap(), refused);
}

/// The answer of a memory store, which is always ready.
fn ready<T>(future: tower_jwt_auth::store::StoreFuture<T>) -> T {
    future.into_ready().unwrap().unwrap()
}

fn memory_rows(criterion: &mut Criterion, runtime: &Runtime, record: &Record) {
    let limited = MemoryLimiterStore::new(LoginLimits::default());
    runtime.block_on(limit_attacker(&limited));
    let usernames: Vec<String> = (0..4096).map(|n| format!("user{n}")).collect();
    let clients = bench_clients(64);
    let clean = MemoryLimiterStore::new(LoginLimits::default());
    let first = key(clients[0], &usernames[0]);
    assert_eq!(ready(clean.attempt(&first, NOW_MS)), Decision::Allow);
    ready(clean.succeeded(&first, NOW_MS));
    assert_eq!(
        clean.len(),
        1,
        "a success leaves only its client's verification charge"
    );

    let mut group = criterion.benchmark_group("limiter/memory");
    group.bench_function("check", |b| {
        b.iter_custom(|n| {
            let key = key(ATTACKER, "alice");
            let start = Instant::now();
            for _ in 0..n {
                let decision = ready(limited.check(black_box(&key), NOW_MS));
                assert!(pair_limited(black_box(decision)));
            }
            keep(record, "limiter/memory/check", n, start.elapsed())
        });
    });
    group.bench_function("attempt_limited", |b| {
        b.iter_custom(|n| {
            let key = key(ATTACKER, "alice");
            let start = Instant::now();
            for _ in 0..n {
                let decision = ready(limited.attempt(black_box(&key), NOW_MS));
                assert!(pair_limited(black_box(decision)));
            }
            keep(record, "limiter/memory/attempt_limited", n, start.elapsed())
        });
    });
    let mut now = NOW_MS;
    group.bench_function("attempt_succeeded", |b| {
        b.iter_custom(|n| {
            let start = Instant::now();
            for i in 0..n {
                let i = usize::try_from(i).unwrap();
                let key = key(clients[i % clients.len()], &usernames[i % usernames.len()]);
                // Each client comes back every 64 × 16 ms, just over the default verification
                // interval (1 s): successes within the client's rate, as a user's would be.
                now += 16;
                let decision = ready(clean.attempt(black_box(&key), now));
                assert_eq!(decision, Decision::Allow);
                ready(clean.succeeded(black_box(&key), now));
            }
            keep(
                record,
                "limiter/memory/attempt_succeeded",
                n,
                start.elapsed(),
            )
        });
    });
    assert!(
        clean.len() <= clients.len(),
        "successes left {} entries beside the clients' verification charges",
        clean.len()
    );

    // A store at its cap. Each shard holds at most 1/16 of it and, when full, sweeps and evicts
    // down to 7/8 of that, so the total stays between about 7/8 of the cap and the cap (a fill
    // waiting for `len() == cap` need never end). Filled instead with one attempt of a new
    // username per entry of the cap: two new entries each, four hundred thousand in all, so
    // every shard fills and makes room several times before the measurement.
    let full = MemoryLimiterStore::new(LoginLimits::default());
    let pool = bench_clients(65_536);
    let mut next = 0usize;
    let mut full_now = NOW_MS;
    let mut attempt_new = |usernames: &[String]| {
        let start = Instant::now();
        for username in usernames {
            full_now += 1;
            let key = key(pool[next % pool.len()], username);
            next += 1;
            let decision = ready(full.attempt(black_box(&key), full_now));
            assert_eq!(decision, Decision::Allow);
        }
        start.elapsed()
    };
    let new_usernames = |from: usize, n: usize| -> Vec<String> {
        (from..from + n).map(|i| format!("new{i}")).collect()
    };
    attempt_new(&new_usernames(0, DEFAULT_MAX_ENTRIES));
    let filled = full.len();
    assert!(
        (DEFAULT_MAX_ENTRIES / 4 * 3..=DEFAULT_MAX_ENTRIES).contains(&filled),
        "the store holds {filled} entries"
    );
    let mut named = DEFAULT_MAX_ENTRIES;
    group.sample_size(FULL_SAMPLES);
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("attempt_full", |b| {
        b.iter_custom(|n| {
            // The usernames are made outside the timed loop.
            let n_usize = usize::try_from(n).unwrap();
            let usernames = new_usernames(named, n_usize);
            named += n_usize;
            let elapsed = attempt_new(&usernames);
            keep(record, "limiter/memory/attempt_full", n, elapsed)
        });
    });
    group.finish();
    println!(
        "limiter/memory/attempt_full: {filled} entries after the fill, {} after the bench \
         (cap {DEFAULT_MAX_ENTRIES})",
        full.len()
    );
    assert!(full.len() <= DEFAULT_MAX_ENTRIES);
}

/// The Redis rows, or why there are none: the line the summary prints instead.
#[cfg(not(feature = "redis"))]
fn redis_rows(_: &mut Criterion, _: &Runtime, _: &Record) -> Result<(), &'static str> {
    Err("not built (cargo bench --bench limiter --features redis)")
}

/// The Redis rows, or why there are none: the line the summary prints instead.
#[cfg(feature = "redis")]
fn redis_rows(
    criterion: &mut Criterion,
    runtime: &Runtime,
    record: &Record,
) -> Result<(), &'static str> {
    use tower_jwt_auth::redis::RedisLimiterStore;

    let Some(server) = redis_server::Server::start("cargo bench --bench limiter, limiter/redis/*")
    else {
        return Err("SKIPPED: redis-server not found on PATH");
    };
    // One connection for both stores; the successes' keys under a prefix of their own.
    let connection = runtime.block_on(server.connection());
    let limited = RedisLimiterStore::new(connection.clone(), LoginLimits::default());
    runtime.block_on(limit_attacker(&limited));
    let clean =
        RedisLimiterStore::new(connection.clone(), LoginLimits::default()).prefix("bench-clean:");
    let usernames: Vec<String> = (0..4096).map(|n| format!("user{n}")).collect();
    let clients = bench_clients(64);
    // The failure counters; the clients' verification rates (`rl:v:`) stay, as they should.
    let clean_keys = || {
        let mut keys = runtime.block_on(keys(&connection, "bench-clean:*"));
        keys.retain(|key| !key.starts_with("bench-clean:rl:v:"));
        keys
    };
    let first = key(clients[0], &usernames[0]);
    let decision = runtime.block_on(clean.attempt(&first, NOW_MS)).unwrap();
    assert_eq!(decision, Decision::Allow);
    assert_eq!(
        clean_keys().len(),
        3,
        "an attempt counts on pair, username and client"
    );
    runtime.block_on(clean.succeeded(&first, NOW_MS)).unwrap();
    assert_eq!(
        clean_keys(),
        Vec::<String>::new(),
        "a success leaves no failure counter behind"
    );

    let mut group = criterion.benchmark_group("limiter/redis");
    group.bench_function("attempt_limited", |b| {
        b.iter_custom(|n| {
            let elapsed = runtime.block_on(async {
                let key = key(ATTACKER, "alice");
                let start = Instant::now();
                for _ in 0..n {
                    let decision = limited.attempt(black_box(&key), NOW_MS).await.unwrap();
                    assert!(pair_limited(black_box(decision)));
                }
                start.elapsed()
            });
            keep(record, "limiter/redis/attempt_limited", n, elapsed)
        });
    });
    let mut now = NOW_MS;
    group.bench_function("attempt_succeeded", |b| {
        b.iter_custom(|n| {
            let elapsed = runtime.block_on(async {
                let start = Instant::now();
                for i in 0..n {
                    let i = usize::try_from(i).unwrap();
                    let key = key(clients[i % clients.len()], &usernames[i % usernames.len()]);
                    // As in the memory rows: each client within its verification rate.
                    now += 16;
                    let decision = clean.attempt(black_box(&key), now).await.unwrap();
                    assert_eq!(decision, Decision::Allow);
                    clean.succeeded(black_box(&key), now).await.unwrap();
                }
                start.elapsed()
            });
            keep(record, "limiter/redis/attempt_succeeded", n, elapsed)
        });
    });
    group.bench_function("check", |b| {
        b.iter_custom(|n| {
            let elapsed = runtime.block_on(async {
                let key = key(ATTACKER, "alice");
                let start = Instant::now();
                for _ in 0..n {
                    let decision = limited.check(black_box(&key), NOW_MS).await.unwrap();
                    assert!(pair_limited(black_box(decision)));
                }
                start.elapsed()
            });
            keep(record, "limiter/redis/check", n, elapsed)
        });
    });
    // The transport alone: a PING on the same connection, the floor under every row above.
    group.bench_function("ping", |b| {
        b.iter_custom(|n| {
            let elapsed = runtime.block_on(async {
                let mut connection = connection.clone();
                let start = Instant::now();
                for _ in 0..n {
                    let pong: String = ::redis::cmd("PING")
                        .query_async(&mut connection)
                        .await
                        .unwrap();
                    assert_eq!(black_box(pong), "PONG");
                }
                start.elapsed()
            });
            keep(record, "limiter/redis/ping", n, elapsed)
        });
    });
    group.finish();
    assert_eq!(
        clean_keys(),
        Vec::<String>::new(),
        "successes left keys behind"
    );
    drop(server);
    Ok(())
}

/// The keys matching `pattern`.
#[cfg(feature = "redis")]
async fn keys(connection: &::redis::aio::ConnectionManager, pattern: &str) -> Vec<String> {
    ::redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut connection.clone())
        .await
        .unwrap()
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

    memory_rows(&mut criterion, &runtime, &record);
    let redis = redis_rows(&mut criterion, &runtime, &record);

    // The layer alone: refused before the inner service, which would answer 500.
    let layer_store = Arc::new(MemoryLimiterStore::new(LoginLimits::default()));
    runtime.block_on(limit_attacker(&*layer_store));
    let layer = RateLimitLoginLayer::new(Arc::clone(&layer_store) as Arc<dyn LimiterStore>)
        .clock(fixed_clock);
    let refused: RateLimitLogin<_> =
        layer.layer(service_fn(|_: Request<Full<bytes::Bytes>>| async {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            Ok::<_, Infallible>(response)
        }));

    // The router with the default hasher behind the same kind of layer. The clock stands
    // still, so the owner's logins get a verification burst that lasts the whole row.
    let router_limits = LoginLimits::default()
        .per_client_verifications(1, Duration::from_secs(1), 1_000_000)
        .unwrap();
    let router_store = Arc::new(MemoryLimiterStore::new(router_limits));
    runtime.block_on(limit_attacker(&*router_store));
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

    // What the layer spends on the username: RFC 8265 preparation, run until stable, and the
    // script checks, for an ASCII name and for one with case folding and NFC to do.
    let mut names = criterion.benchmark_group("username");
    for (row, name) in [
        ("normalize_ascii", "Alice"),
        ("normalize_unicode", "Ｓtraße"),
    ] {
        names.bench_function(row, |b| {
            b.iter_custom(|n| {
                let start = Instant::now();
                for _ in 0..n {
                    black_box(normalize_username(black_box(name)).unwrap());
                }
                keep(&record, &format!("username/{row}"), n, start.elapsed())
            });
        });
    }
    names.finish();

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
    summary(&record, redis);
}

fn summary(record: &Record, redis: Result<(), &str>) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("\nlimiter summary: medians of the measured samples, {cores} cores");
    let memory = [
        ("limiter/memory/check", FAST_SAMPLES, ""),
        ("limiter/memory/attempt_limited", FAST_SAMPLES, ""),
        (
            "limiter/memory/attempt_succeeded",
            FAST_SAMPLES,
            "  (attempt + succeeded)",
        ),
        ("limiter/memory/attempt_full", FULL_SAMPLES, ""),
    ];
    let on_redis = [
        ("limiter/redis/attempt_limited", FAST_SAMPLES, ""),
        (
            "limiter/redis/attempt_succeeded",
            FAST_SAMPLES,
            "  (attempt + succeeded: 2 round trips)",
        ),
        ("limiter/redis/check", FAST_SAMPLES, ""),
        (
            "limiter/redis/ping",
            FAST_SAMPLES,
            "  (the round trip alone)",
        ),
    ];
    let layers = [
        ("username/normalize_ascii", FAST_SAMPLES, ""),
        ("username/normalize_unicode", FAST_SAMPLES, ""),
        ("layer/429", FAST_SAMPLES, ""),
        ("router/429", FAST_SAMPLES, ""),
        ("login/real", LOGIN_SAMPLES, ""),
    ];
    let line = |name: &str, ns: Option<f64>, note: &str| match ns {
        None => println!("  {name:<34} {:>10}", "not run"),
        Some(ns) if ns >= 1e6 => println!("  {name:<34} {:>10.2} ms{note}", ns / 1e6),
        Some(ns) if ns >= 1e3 => println!("  {name:<34} {:>10.2} µs{note}", ns / 1e3),
        Some(ns) => println!("  {name:<34} {ns:>10.0} ns{note}"),
    };
    for (name, samples, note) in memory {
        line(name, median_ns(record, name, samples), note);
    }
    match redis {
        Ok(()) => {
            for (name, samples, note) in on_redis {
                line(name, median_ns(record, name, samples), note);
            }
        }
        Err(why) => println!("  {:<34} {why}", "limiter/redis/*"),
    }
    for (name, samples, note) in layers {
        line(name, median_ns(record, name, samples), note);
    }

    let ns = |name: &str, samples: usize| median_ns(record, name, samples);
    let login = ns("login/real", LOGIN_SAMPLES);
    if let (Some(login), Some(layer)) = (login, ns("layer/429", FAST_SAMPLES)) {
        println!(
            "  login/real ÷ layer/429  = {:.0}  (one real login costs as much as that many refused guesses)",
            login / layer
        );
    }
    if let (Some(login), Some(router)) = (login, ns("router/429", FAST_SAMPLES)) {
        println!("  login/real ÷ router/429 = {:.0}", login / router);
    }
    if let (Some(redis), Some(memory)) = (
        ns("limiter/redis/attempt_limited", FAST_SAMPLES),
        ns("limiter/memory/attempt_limited", FAST_SAMPLES),
    ) {
        println!(
            "  limiter/redis/attempt_limited ÷ limiter/memory/attempt_limited = {:.0}  \
             (a refused guess decided over loopback Redis against in memory)",
            redis / memory
        );
    }
    if let (Some(attempt), Some(ping)) = (
        ns("limiter/redis/attempt_limited", FAST_SAMPLES),
        ns("limiter/redis/ping", FAST_SAMPLES),
    ) {
        println!(
            "  limiter/redis/attempt_limited ÷ limiter/redis/ping = {:.2}  \
             (the script's cost over a bare round trip)",
            attempt / ping
        );
    }
}
