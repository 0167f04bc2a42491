//! Login back-pressure through the whole app (`AuthRouter` behind `RateLimitLogin`, beside
//! `/health` and a protected route): a flood of concurrent password logins larger than the
//! hasher admits gets 503 with `Retry-After` for the excess at once, the admitted ones finish
//! with 200, none hangs, and cheap routes keep answering while every hashing permit is held.
//!
//! No timing is asserted here (the load harness, `examples/loadgen`, measures latency). The
//! first test is deterministic: the runtime gets a single blocking thread and the test occupies
//! it, so admitted logins hold their permits and queue places without finishing until released.

use crate::common;
use crate::common::answer::{Answer, answer};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_jwt_auth::Claims;
use tower_jwt_auth::issuer::TokenIssuer;
use tower_jwt_auth::password::{HashingThreads, PasswordHasher};
use tower_jwt_auth::ratelimit::{ClientAddr, LoginLimits, MemoryLimiterStore, RateLimitLoginLayer};
use tower_jwt_auth::router::AuthRouter;

const PASSWORD: &str = "correct horse battery staple";
const LOGINS: usize = 64;
/// Far longer than any of these tests needs: only there to turn a hang into a failure.
const HANG: Duration = Duration::from_secs(120);

/// The app as `examples/server.rs` mounts it, with `hasher`, and `LOGINS` users `user-0`...
async fn app(hasher: PasswordHasher) -> (Router, AuthRouter) {
    let limiter =
        RateLimitLoginLayer::new(Arc::new(MemoryLimiterStore::new(LoginLimits::default())));
    let auth =
        AuthRouter::builder(TokenIssuer::generate_ed25519("https://api.test", "api").unwrap())
            .hasher(hasher)
            .rate_limit(limiter)
            .build()
            .unwrap();
    for i in 0..LOGINS {
        auth.create_user(&format!("user-{i}"), PASSWORD, &["user"], &[])
            .await
            .unwrap();
    }
    let app = Router::new()
        .route(
            "/me",
            get(|claims: Claims| async move { claims.subject().unwrap_or_default().to_owned() }),
        )
        .route_layer(auth.bearer_layer())
        .route("/health", get(|| async { "ok" }))
        .nest("/auth", auth.router());
    (app, auth)
}

/// Argon2id at 1 MiB, t = 1: cheap, with these admission bounds.
fn hasher(permits: usize, queued: usize, threads: HashingThreads) -> PasswordHasher {
    PasswordHasher::builder()
        .params(1024, 1, 1)
        .unwrap()
        .threads(threads)
        .max_concurrent(permits)
        .unwrap()
        .max_queued(queued)
        .retry_after(Duration::from_secs(2))
        .unwrap()
        .build()
        .unwrap()
}

/// User `i` logging in from a client address of its own, as separate people would.
fn login(i: usize) -> Request<Body> {
    let mut request = Request::post("/auth/token")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "grant_type=password&username=user-{i}&password=correct+horse+battery+staple"
        )))
        .unwrap();
    let octets = u8::try_from(i).unwrap();
    request
        .extensions_mut()
        .insert(ClientAddr(IpAddr::V4(Ipv4Addr::new(10, 0, 0, octets))));
    request
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    answer(app.clone().oneshot(request).await.unwrap()).await
}

fn request(path: &str, token: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::empty()).unwrap()
}

/// Counts answers by status; every 503 must say when to come back, and nothing else may occur.
fn tally(answers: &[Answer]) -> (usize, usize) {
    let mut ok = 0;
    let mut unavailable = 0;
    for answer in answers {
        match answer.status {
            StatusCode::OK => {
                assert!(answer.json()["access_token"].is_string(), "{answer:?}");
                ok += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(answer.header(RETRY_AFTER), Some("2"), "{answer:?}");
                assert_eq!(answer.json()["error"], "temporarily_unavailable");
                unavailable += 1;
            }
            other => panic!("a login answered {other}: {answer:?}"),
        }
    }
    (ok, unavailable)
}

#[test]
fn a_login_flood_gets_503_with_retry_after_beyond_the_queue_while_cheap_routes_answer() {
    const PERMITS: usize = 2;
    const QUEUED: usize = 3;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        // On tokio's blocking pool, so that holding its one thread holds the hashing.
        let (app, auth) = app(hasher(PERMITS, QUEUED, HashingThreads::BlockingPool)).await;
        let setup = send(&app, login(0)).await;
        assert_eq!(setup.status, StatusCode::OK);
        let token = setup.json()["access_token"].as_str().unwrap().to_owned();
        let before = auth.hasher().stats();

        // Occupy the only blocking thread: admitted logins can take their permits and queue
        // places, but no argon2 work can run until the test says so.
        let hold = common::BlockingHold::start();

        let logins: Vec<_> = (0..LOGINS)
            .map(|i| {
                let app = app.clone();
                tokio::spawn(async move { send(&app, login(i)).await })
            })
            .collect();
        // Let every login run as far as it can: the excess is refused without waiting.
        let refused = LOGINS - PERMITS - QUEUED;
        for _ in 0..10_000 {
            if logins.iter().filter(|l| l.is_finished()).count() >= refused {
                break;
            }
            tokio::task::yield_now().await;
        }
        let stats = auth.hasher().stats();
        assert_eq!(stats.overloaded - before.overloaded, refused as u64);
        assert_eq!(
            stats.verifications, before.verifications,
            "no argon2 ran yet"
        );
        assert_eq!(logins.iter().filter(|l| l.is_finished()).count(), refused);

        // Every permit and queue place is held by a login in flight: cheap routes still answer,
        // the protected one after verifying its token and checking revocation.
        let health = send(&app, request("/health", None)).await;
        assert_eq!(health.status, StatusCode::OK);
        let me = app
            .clone()
            .oneshot(request("/me", Some(&token)))
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK);
        let subject = auth.verifier().verify(&token).unwrap();
        assert_eq!(
            me.into_body().collect().await.unwrap().to_bytes(),
            subject.subject().unwrap().as_bytes()
        );

        hold.release().await;
        let mut answers = Vec::new();
        for l in logins {
            answers.push(
                tokio::time::timeout(HANG, l)
                    .await
                    .expect("a login hung")
                    .unwrap(),
            );
        }
        assert_eq!(tally(&answers), (PERMITS + QUEUED, refused));
        let after = auth.hasher().stats();
        assert_eq!(
            after.verifications - before.verifications,
            (PERMITS + QUEUED) as u64
        );

        // A refusal is not a failed guess: a refused user logs in at once when asked again.
        let refused_user = answers
            .iter()
            .position(|a| a.status == StatusCode::SERVICE_UNAVAILABLE)
            .unwrap();
        assert_eq!(send(&app, login(refused_user)).await.status, StatusCode::OK);
    });
}

/// The same flood on a multi-thread runtime, argon2 really running: whatever the interleaving,
/// every login ends, with 200 or 503 + `Retry-After`, and the hasher's counters agree with the
/// answers (each 200 one verification, each 503 one refusal).
#[test]
fn every_login_of_a_real_flood_ends_with_200_or_503_and_the_counters_agree() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        // The default threads: the hasher's own, at idle priority.
        let (app, auth) = app(hasher(1, 2, HashingThreads::IdlePriority)).await;
        let before = auth.hasher().stats();
        let logins: Vec<_> = (0..LOGINS)
            .map(|i| {
                let app = app.clone();
                tokio::spawn(async move { send(&app, login(i)).await })
            })
            .collect();
        let mut answers = Vec::new();
        for l in logins {
            answers.push(
                tokio::time::timeout(HANG, l)
                    .await
                    .expect("a login hung")
                    .unwrap(),
            );
        }
        let (ok, unavailable) = tally(&answers);
        assert!(ok >= 1, "the first admitted login always completes");
        let after = auth.hasher().stats();
        assert_eq!(after.verifications - before.verifications, ok as u64);
        assert_eq!(after.overloaded - before.overloaded, unavailable as u64);
        assert_eq!(ok + unavailable, LOGINS);
    });
}
