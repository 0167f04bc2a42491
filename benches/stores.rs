//! What the stores cost on the request paths, backend beside backend, in one run:
//!
//! - `bearer/revocation/{memory,sqlite}`: the router's `BearerAuth` (HS256, revocation checked
//!   on every request) around a no-op inner service, with the in-memory denylist and with the
//!   SQL store's in-process replica. Also measured interleaved (rounds of each in turn, the
//!   median of the per-round ratios): the replica's target is at most 1.05x the memory store.
//! - `refresh/{memory,sqlite,postgres,redis}`: the router's refresh grant through
//!   `tower::ServiceExt::oneshot`, each refresh presenting the token the previous one returned
//!   (parse, rotate in the store, sign a new access token); one after another.
//! - `login/{memory,sqlite,postgres,redis}`: the password grant with the default argon2id
//!   parameters, one after another; then interleaved (each round a few logins on every
//!   backend in turn, the median of the per-round ratios to memory). Logins are bound by
//!   argon2: the SQL stores' target is within 10% of memory.
//!
//! The users (256, one password hashed once, which the logins go round so that none nears
//! the per-user session cap) live in the backend's own user store (memory for Redis, which
//! has none). The
//! PostgreSQL cluster and the `redis-server` are the tests' throw-away ones, started here on
//! loopback; a backend whose server is not installed is left out, and says so. A summary after
//! criterion prints the medians, refreshes and logins per second, and the ratios.
#![allow(clippy::unwrap_used, missing_docs)]

use std::convert::Infallible;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use criterion::{Criterion, SamplingMode};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};
use tower_jwt_auth::issuer::TokenIssuer;
use tower_jwt_auth::password::PasswordHasher;
use tower_jwt_auth::router::{AuthRouter, AuthRouterBuilder, Created, NewUser};
use tower_jwt_auth::sql::{Database, ReplicaOptions};

#[path = "../tests/common/postgres_server.rs"]
#[allow(dead_code)]
mod postgres_server;
#[path = "../tests/common/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

const PASSWORD: &str = "correct horse battery staple";
/// Users the logins go round.
const USERS: usize = 256;
const SAMPLES: usize = 10;
/// Interleaved rounds of the bearer comparison, and calls per round.
const ROUNDS: usize = 300;
const CALLS: u64 = 2_000;
/// Interleaved rounds of the login comparison, and logins per backend per round.
const LOGIN_ROUNDS: usize = 40;
const LOGINS_PER_ROUND: usize = 4;

/// Medians per row: (name, ns per operation) of every measured sample.
type Record = Arc<Mutex<Vec<(String, Vec<f64>)>>>;

fn keep(record: &Record, name: &str, n: u64, elapsed: Duration) -> Duration {
    let mut record = record.lock().unwrap();
    let per_op = elapsed.as_nanos() as f64 / n as f64;
    match record.iter_mut().find(|(row, _)| row == name) {
        Some((_, samples)) => samples.push(per_op),
        None => record.push((name.to_owned(), vec![per_op])),
    }
    elapsed
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One backend: the router on it, and what keeps its servers and files alive.
struct Backend {
    name: &'static str,
    auth: AuthRouter,
    _keep: Box<dyn std::any::Any>,
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn builder(hasher: &PasswordHasher) -> AuthRouterBuilder {
    let issuer = TokenIssuer::hmac(
        b"a secret of at least thirty-two bytes!",
        "https://auth.example",
        "api",
    )
    .unwrap();
    AuthRouter::builder(issuer).hasher(hasher.clone())
}

async fn on_database(db: Database, hasher: &PasswordHasher) -> AuthRouter {
    db.migrate().await.unwrap();
    let revocations = db.revocations(ReplicaOptions::default()).await.unwrap();
    builder(hasher)
        .users(Arc::new(db.users()))
        .refresh_store(Arc::new(db.refresh()))
        .revocation_store(Arc::new(revocations))
        .build()
        .unwrap()
}

fn backends(runtime: &Runtime, hasher: &PasswordHasher) -> Vec<Backend> {
    let mut out = vec![Backend {
        name: "memory",
        auth: builder(hasher).build().unwrap(),
        _keep: Box::new(()),
    }];
    let dir = TempDir(std::env::temp_dir().join(format!("tja-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let url = format!("sqlite://{}", dir.0.join("auth.db").display());
    out.push(Backend {
        name: "sqlite",
        auth: runtime
            .block_on(async { on_database(Database::connect(&url).await.unwrap(), hasher).await }),
        _keep: Box::new(dir),
    });
    if let Some(server) = postgres_server::Postgres::start("cargo bench --bench stores, */postgres")
    {
        let auth = runtime.block_on(async {
            on_database(Database::connect(&server.url()).await.unwrap(), hasher).await
        });
        out.push(Backend {
            name: "postgres",
            auth,
            _keep: Box::new(server),
        });
    }
    if let Some(server) = redis_server::Server::start("cargo bench --bench stores, */redis") {
        use tower_jwt_auth::redis::{RedisRefreshStore, RedisRevocationStore};
        let auth = runtime.block_on(async {
            let connection = server.connection().await;
            builder(hasher)
                .refresh_store(Arc::new(RedisRefreshStore::new(connection.clone())))
                .revocation_store(Arc::new(RedisRevocationStore::new(connection)))
                .build()
                .unwrap()
        });
        out.push(Backend {
            name: "redis",
            auth,
            _keep: Box::new(server),
        });
    }
    // Many users with one password (hashed once): the logins go round them, so no user nears
    // the session cap, as in production where each user has a few sessions.
    let hash = runtime.block_on(hasher.hash(PASSWORD)).unwrap();
    for backend in &out {
        runtime.block_on(async {
            for i in 0..USERS {
                let user = NewUser {
                    username: format!("user{i}"),
                    email: None,
                    password_hash: hash.clone(),
                    roles: vec!["user".to_owned()],
                    scopes: vec!["items:read".to_owned()],
                };
                let created = backend.auth.users().create(user).await.unwrap();
                assert!(matches!(created, Created::Created(_)));
            }
        });
    }
    out
}

async fn post(app: &Router, form: String) -> Value {
    let request = Request::post("/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

/// A password login of user `i` (modulo [`USERS`]).
async fn login(app: &Router, i: usize) -> Value {
    let form = format!(
        "grant_type=password&username=user{}&password=correct+horse+battery+staple",
        i % USERS
    );
    post(app, form).await
}

async fn refresh(app: &Router, token: &str) -> String {
    let reply = post(
        app,
        format!("grant_type=refresh_token&refresh_token={token}"),
    )
    .await;
    reply["refresh_token"].as_str().unwrap().to_owned()
}

/// `n` calls of the router's bearer layer around a no-op inner service, with `token`.
type BearerRun = Box<dyn FnMut(u64) -> Duration>;

fn bearer(auth: &AuthRouter, token: &str) -> BearerRun {
    let inner = tower::service_fn(|request: Request<()>| {
        black_box(request);
        std::future::ready(Ok::<_, Infallible>(Response::new(())))
    });
    let mut service = auth.bearer_layer().layer(inner);
    let authorization = HeaderValue::try_from(format!("Bearer {token}")).unwrap();
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
        let mut cx = Context::from_waker(Waker::noop());
        let start = Instant::now();
        for request in requests {
            assert!(service.poll_ready(&mut cx).is_ready());
            let Poll::Ready(Ok(response)) = pin!(service.call(request)).poll(&mut cx) else {
                panic!("the revocation check did not answer at once");
            };
            assert_eq!(response.status(), StatusCode::OK);
            black_box(response);
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
    let hasher = PasswordHasher::new();
    let backends = backends(&runtime, &hasher);
    let mut criterion = Criterion::default()
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();

    // The bearer layer, memory beside the SQLite replica.
    let mut runs: Vec<(&str, BearerRun)> = Vec::new();
    for backend in backends
        .iter()
        .filter(|b| matches!(b.name, "memory" | "sqlite"))
    {
        let token = runtime.block_on(login(&backend.auth.router(), 0));
        let token = token["access_token"].as_str().unwrap().to_owned();
        // Inside the runtime: the replica's task and clock need it.
        let _entered = runtime.enter();
        runs.push((backend.name, bearer(&backend.auth, &token)));
    }
    let _entered = runtime.enter();
    let mut group = criterion.benchmark_group("bearer/revocation");
    for (name, run) in &mut runs {
        let row = format!("bearer/revocation/{name}");
        group.bench_function(*name, |b| b.iter_custom(|n| keep(&record, &row, n, run(n))));
    }
    group.finish();
    let mut ratios = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        // Alternate which goes first, so neither always runs on a warmer cache.
        let (memory, sql) = if round % 2 == 0 {
            let memory = (runs[0].1)(CALLS);
            (memory, (runs[1].1)(CALLS))
        } else {
            let sql = (runs[1].1)(CALLS);
            ((runs[0].1)(CALLS), sql)
        };
        ratios.push(sql.as_secs_f64() / memory.as_secs_f64());
    }
    let bearer_ratio = median(ratios);

    // Refreshes and logins, backend by backend.
    let mut group = criterion.benchmark_group("refresh");
    group.sampling_mode(SamplingMode::Flat);
    for backend in &backends {
        let app = backend.auth.router();
        let mut token = runtime.block_on(login(&app, 1))["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let row = format!("refresh/{}", backend.name);
        group.bench_function(backend.name, |b| {
            b.iter_custom(|n| {
                let start = Instant::now();
                runtime.block_on(async {
                    for _ in 0..n {
                        token = refresh(&app, &token).await;
                    }
                });
                keep(&record, &row, n, start.elapsed())
            });
        });
    }
    group.finish();
    let mut group = criterion.benchmark_group("login");
    group.sampling_mode(SamplingMode::Flat);
    for backend in &backends {
        let app = backend.auth.router();
        let row = format!("login/{}", backend.name);
        let mut next = 0;
        group.bench_function(backend.name, |b| {
            b.iter_custom(|n| {
                let start = Instant::now();
                runtime.block_on(async {
                    for _ in 0..n {
                        black_box(login(&app, next).await);
                        next += 1;
                    }
                });
                keep(&record, &row, n, start.elapsed())
            });
        });
    }
    group.finish();

    // Logins interleaved: in each round a few logins on every backend, the order rotating;
    // the median of the per-round ratios to memory (the machine's drift cancels out).
    let apps: Vec<Router> = backends.iter().map(|b| b.auth.router()).collect();
    let mut login_ratios: Vec<Vec<f64>> = vec![Vec::new(); apps.len()];
    let mut next = 0;
    for round in 0..LOGIN_ROUNDS {
        let mut times = vec![0.0; apps.len()];
        for k in 0..apps.len() {
            let which = (round + k) % apps.len();
            let start = Instant::now();
            runtime.block_on(async {
                for _ in 0..LOGINS_PER_ROUND {
                    black_box(login(&apps[which], next).await);
                    next += 1;
                }
            });
            times[which] = start.elapsed().as_secs_f64();
        }
        for (which, time) in times.iter().enumerate() {
            login_ratios[which].push(time / times[0]);
        }
    }

    let record = record.lock().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let row = |name: &str| {
        record
            .iter()
            .find(|(row, _)| row == name)
            .map(|(_, samples)| median(samples[samples.len().saturating_sub(SAMPLES)..].to_vec()))
    };
    println!("\nstores summary: medians of the measured samples, {cores} cores");
    for (name, _) in record.iter() {
        let ns = row(name).unwrap();
        let rate = if name.starts_with("bearer/") {
            String::new()
        } else {
            format!("  ({:.0}/s)", 1e9 / ns)
        };
        println!("  {name:<28} {:>10.3} µs{rate}", ns / 1e3);
    }
    println!(
        "  bearer/revocation sqlite ÷ memory = {bearer_ratio:.3}  (interleaved, {ROUNDS} rounds of {CALLS}; target <= 1.05)"
    );
    for (backend, ratios) in backends.iter().zip(login_ratios).skip(1) {
        let target = if backend.name == "redis" {
            ""
        } else {
            "; target <= 1.10"
        };
        println!(
            "  login/{} ÷ login/memory = {:.3}  (interleaved, {LOGIN_ROUNDS} rounds of {LOGINS_PER_ROUND}{target})",
            backend.name,
            median(ratios)
        );
    }
    for kind in ["refresh"] {
        let Some(memory) = row(&format!("{kind}/memory")) else {
            continue;
        };
        for backend in ["sqlite", "postgres", "redis"] {
            if let Some(ns) = row(&format!("{kind}/{backend}")) {
                println!("  {kind}/{backend} ÷ {kind}/memory = {:.1}", ns / memory);
            }
        }
    }
}
