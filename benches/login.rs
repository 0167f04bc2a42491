//! What a login costs with the default argon2id parameters (m = 19456 KiB, t = 2, p = 1, the
//! OWASP minimum), on a tokio multi-thread runtime:
//!
//! - `password/hash`, `password/verify`: one [`PasswordHasher`] call through the async API
//!   (admission, the hop to the blocking pool, argon2id), one after another;
//! - `login/callers/{1,2,8}`: the [`AuthRouter`]'s `POST /token` password grant through
//!   `tower::ServiceExt::oneshot` (body parsing, user lookup, verification, a new refresh family,
//!   an Ed25519 access token), with 1, 2 and 8 tasks logging in concurrently, each one login
//!   after another. One iteration is one login per caller; criterion's throughput line is in
//!   logins per second.
//! - `forgot/{known,unknown}`: `POST /password/forgot` naming an account that exists (with an
//!   address) and one that does not, alternately measured: the answer must not depend on it
//!   (the lookup and the mail happen after the answer, in the background).
//!
//! The router's hasher is the default one: at most as many hashes run as the machine has cores
//! and four times as many wait, so at 8 callers there is room for every caller on 2 cores or
//! more; a login refused for capacity (503) is counted, not timed as a login. After criterion,
//! a summary prints the median of the measured samples of each benchmark: ms per operation,
//! and logins per second from successful (200) logins only, with the counts of 200s and 503s.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use criterion::{Criterion, SamplingMode, Throughput};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::runtime::Runtime;
use tower::ServiceExt;
use tower_jwt_auth::issuer::TokenIssuer;
use tower_jwt_auth::mail::{MailFuture, Mailer, Message};
use tower_jwt_auth::password::{PasswordHasher, Verified};
use tower_jwt_auth::router::{AuthRouter, Registration};

const PASSWORD: &str = "correct horse battery staple";
const LOGIN: &str = "grant_type=password&username=alice&password=correct+horse+battery+staple";
const CALLERS: [usize; 3] = [1, 2, 8];
const SAMPLES: usize = 10;

/// One call of a timing closure: `iterations` operations of each of `callers` callers.
#[derive(Clone, Copy, Debug)]
struct Sample {
    iterations: u64,
    callers: usize,
    elapsed: Duration,
    ok: u64,
    busy: u64,
}

/// Every sample of every benchmark in the order they ran, warm-up included (criterion warms up
/// first and then takes exactly `SAMPLES` samples, so the measured ones are the last `SAMPLES`).
type Record = Arc<Mutex<Vec<(String, Vec<Sample>)>>>;

fn keep(record: &Record, name: &str, sample: Sample) -> Duration {
    let mut record = record.lock().unwrap();
    match record.iter_mut().find(|(n, _)| n == name) {
        Some((_, samples)) => samples.push(sample),
        None => record.push((name.to_owned(), vec![sample])),
    }
    sample.elapsed
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn login_request() -> Request<Body> {
    Request::post("/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(LOGIN))
        .unwrap()
}

/// `callers` tasks, each logging in `iterations` times one after another; the wall time of the
/// whole batch and the answers.
fn logins(runtime: &Runtime, app: &Router, callers: usize, iterations: u64) -> Sample {
    runtime.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move {
                    let (mut ok, mut busy) = (0, 0);
                    for _ in 0..iterations {
                        let response = app.clone().oneshot(login_request()).await.unwrap();
                        match response.status() {
                            StatusCode::OK => ok += 1,
                            StatusCode::SERVICE_UNAVAILABLE => busy += 1,
                            status => panic!("login answered {status}"),
                        }
                        black_box(response.into_body().collect().await.unwrap());
                    }
                    (ok, busy)
                })
            })
            .collect();
        let (mut ok, mut busy) = (0, 0);
        for task in tasks {
            let (o, b) = task.await.unwrap();
            ok += o;
            busy += b;
        }
        Sample {
            iterations,
            callers,
            elapsed: start.elapsed(),
            ok,
            busy,
        }
    })
}

/// A mailer that drops what it is given.
struct Discard;

impl Mailer for Discard {
    fn send(&self, message: Message) -> MailFuture {
        drop(black_box(message));
        Box::pin(std::future::ready(Ok(())))
    }
}

/// `POST /password/forgot` naming `who`, `iterations` times; the wall time.
fn forgot(runtime: &Runtime, app: &Router, who: &'static str, iterations: u64) -> Duration {
    runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..iterations {
            let request = Request::post("/password/forgot")
                .header("content-type", "application/json")
                .body(Body::from(who))
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::ACCEPTED);
            black_box(response.into_body().collect().await.unwrap());
        }
        start.elapsed()
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn summary(record: &Record, hasher: &PasswordHasher) {
    let record = record.lock().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\nlogin summary: argon2id m=19456 KiB t=2 p=1, {cores} cores, medians of the last {SAMPLES} samples"
    );
    println!("  router's hasher: {hasher:?}");
    for (name, samples) in record.iter() {
        let measured = &samples[samples.len().saturating_sub(SAMPLES)..];
        let ok: u64 = measured.iter().map(|s| s.ok).sum();
        let busy: u64 = measured.iter().map(|s| s.busy).sum();
        if name.starts_with("password/") {
            let ms = median(
                measured
                    .iter()
                    .map(|s| s.elapsed.as_secs_f64() * 1e3 / s.iterations as f64)
                    .collect(),
            );
            println!("  {name:<18} {ms:>8.1} ms/op");
        } else {
            let rate = median(
                measured
                    .iter()
                    .map(|s| s.ok as f64 / s.elapsed.as_secs_f64())
                    .collect(),
            );
            // Wall time of one login when every caller is busy: the batch over all logins.
            let ms = median(
                measured
                    .iter()
                    .map(|s| {
                        s.elapsed.as_secs_f64() * 1e3 / (s.iterations * s.callers as u64) as f64
                    })
                    .collect(),
            );
            println!(
                "  {name:<18} {rate:>8.1} logins/s  ({ms:.1} ms per login; {ok} answered 200, {busy} answered 503)"
            );
        }
    }
}

fn main() {
    let runtime = runtime();
    let record: Record = Arc::default();

    let hasher = PasswordHasher::new();
    let stored = runtime.block_on(hasher.hash(PASSWORD)).unwrap();
    assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));

    let issuer = TokenIssuer::generate_ed25519("https://auth.example", "api").unwrap();
    let auth = AuthRouter::builder(issuer).build().unwrap();
    runtime
        .block_on(auth.create_user("alice", PASSWORD, &["user"], &["items:read"]))
        .unwrap();
    let app: Router = auth.router();
    assert_eq!(logins(&runtime, &app, 1, 1).ok, 1);

    let mut criterion = Criterion::default()
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();

    let mut password = criterion.benchmark_group("password");
    password.sampling_mode(SamplingMode::Flat);
    password.bench_function("hash", |b| {
        b.iter_custom(|n| {
            let start = Instant::now();
            runtime.block_on(async {
                for _ in 0..n {
                    black_box(hasher.hash(black_box(PASSWORD)).await.unwrap());
                }
            });
            let elapsed = start.elapsed();
            keep(
                &record,
                "password/hash",
                Sample {
                    iterations: n,
                    callers: 1,
                    elapsed,
                    ok: n,
                    busy: 0,
                },
            )
        });
    });
    password.bench_function("verify", |b| {
        b.iter_custom(|n| {
            let start = Instant::now();
            runtime.block_on(async {
                for _ in 0..n {
                    let verified = hasher.verify(black_box(PASSWORD), &stored).await.unwrap();
                    assert_eq!(
                        verified,
                        Verified::Match {
                            needs_rehash: false
                        }
                    );
                }
            });
            let elapsed = start.elapsed();
            keep(
                &record,
                "password/verify",
                Sample {
                    iterations: n,
                    callers: 1,
                    elapsed,
                    ok: n,
                    busy: 0,
                },
            )
        });
    });
    password.finish();

    let mut login = criterion.benchmark_group("login");
    login.sampling_mode(SamplingMode::Flat);
    for callers in CALLERS {
        login.throughput(Throughput::Elements(callers as u64));
        let name = format!("callers/{callers}");
        login.bench_function(&name, |b| {
            b.iter_custom(|n| {
                let sample = logins(&runtime, &app, callers, n);
                keep(&record, &format!("login/{name}"), sample)
            });
        });
    }
    login.finish();

    // An account with an address, registered through the router like any user.
    let mailing =
        AuthRouter::builder(TokenIssuer::generate_ed25519("https://auth.example", "api").unwrap())
            .registration(Registration::default())
            .mail(Arc::new(Discard), "https://app.example")
            .unwrap()
            .build()
            .unwrap();
    let mailing: Router = mailing.router();
    let register = Request::post("/register")
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"username":"bob","password":"correct horse battery staple","email":"bob@example.com"}"#,
        ))
        .unwrap();
    let created = runtime.block_on(mailing.clone().oneshot(register)).unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let mut group = criterion.benchmark_group("forgot");
    for (name, who) in [
        ("known", r#"{"email":"bob@example.com"}"#),
        ("unknown", r#"{"email":"nobody@example.com"}"#),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|n| forgot(&runtime, &mailing, who, n));
        });
    }
    group.finish();

    criterion.final_summary();
    summary(&record, auth.hasher());
}
