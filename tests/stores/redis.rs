//! The Redis stores against a real `redis-server`, which each test starts on a free loopback
//! port (`--save "" --appendonly no`) and kills when it ends: two `AuthRouter` instances
//! sharing one Redis (reuse detection, the refresh race, logout, the limiter), the keys' TTLs,
//! an outage (killed server) and a hang (stopped server) and the recovery from each, and the
//! limiter's parity with `MemoryLimiterStore`.
//!
//! Without `redis-server` on `PATH`, every test says `SKIPPED` on stderr and returns
//! (`.ci/run` installs it). Redis expires keys on its own clock, so one test waits for real
//! expiry (keys of 1.2 to 2.2 s, long enough to be seen before they go on a slow machine),
//! polling with a bounded loop; the others read `PTTL`. Waits for a restarted server are
//! bounded loops too.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use redis::aio::ConnectionManager;
use serde_json::Value;
use tower::ServiceExt;
use tower_jwt_auth::Claims;
use tower_jwt_auth::issuer::TokenIssuer;
use tower_jwt_auth::password::PasswordHasher;
use tower_jwt_auth::ratelimit::{
    Action, ClientAddr, Decision, LimiterStore, LoginKey, LoginLimits, RateLimitLoginLayer,
};
use tower_jwt_auth::redis::{
    DEFAULT_TIMEOUT, RedisLimiterStore, RedisRefreshStore, RedisRevocationStore,
};
use tower_jwt_auth::revocation::{RevocationQuery, RevocationStore};
use tower_jwt_auth::router::{AuthRouter, MemoryUserStore, RefreshStore, Rotation, TokenHash};

// ---------------------------------------------------------------------------------------------
// A redis-server of the test's own
// ---------------------------------------------------------------------------------------------

use crate::common::redis_server::Server;
use crate::conformance::{self, session};

/// The running server, or return from the test after printing `SKIPPED`.
macro_rules! server_or_skip {
    ($test:literal) => {
        match Server::start($test) {
            Some(server) => server,
            None => return,
        }
    };
}

async fn pttl(connection: &mut ConnectionManager, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(connection)
        .await
        .unwrap()
}

#[track_caller]
fn assert_about(actual_ms: i64, expected_ms: i64, what: &str) {
    // Up to a second is lost to whole-second instants, the rest of the slack to a slow machine;
    // the lifetimes compared are minutes apart.
    assert!(
        actual_ms > 0 && (expected_ms - 3_000..=expected_ms + 50).contains(&actual_ms),
        "{what}: PTTL {actual_ms} ms, expected about {expected_ms} ms"
    );
}

/// Polls `done` every 50 ms until it holds, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if done().await {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Two router instances on one Redis
// ---------------------------------------------------------------------------------------------

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "api";
const PASSWORD: &str = "correct horse battery staple";
const WRONG: &str = "Tr0ub4dor&3";
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

fn issuer() -> TokenIssuer {
    TokenIssuer::hmac(b"a secret of at least thirty-two bytes!", ISSUER, AUDIENCE).unwrap()
}

fn cheap_hasher() -> PasswordHasher {
    PasswordHasher::builder()
        .params(1024, 1, 1)
        .unwrap()
        .build()
        .unwrap()
}

/// One instance of the app: its router state and its routes (`/me` behind the bearer layer,
/// the router at `/auth`).
#[derive(Clone)]
struct Instance {
    auth: AuthRouter,
    app: Router,
}

impl Instance {
    fn new(auth: AuthRouter) -> Self {
        let app = Router::new()
            .route(
                "/me",
                get(|claims: Claims| async move { claims.subject().unwrap_or("").to_owned() }),
            )
            .route_layer(auth.bearer_layer())
            .nest("/auth", auth.router());
        Self { auth, app }
    }

    /// An instance with Redis refresh and revocation stores of its own connection (and
    /// optionally a limiter), sharing `users` and the issuer's key with the other instances.
    async fn on_redis(
        server: &Server,
        users: &Arc<MemoryUserStore>,
        limiter: Option<RateLimitLoginLayer>,
    ) -> Self {
        let connection = server.connection().await;
        let mut builder = AuthRouter::builder(issuer())
            .hasher(cheap_hasher())
            .users(users.clone())
            .refresh_store(Arc::new(RedisRefreshStore::new(connection.clone())))
            .revocation_store(Arc::new(RedisRevocationStore::new(connection)));
        if let Some(limiter) = limiter {
            builder = builder.rate_limit(limiter);
        }
        Self::new(builder.build().unwrap())
    }

    async fn send_with_headers(
        &self,
        mut request: Request<Body>,
    ) -> (StatusCode, Value, HeaderMap) {
        request.extensions_mut().insert(ClientAddr(CLIENT));
        let response = self.app.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body: Bytes = body.collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (parts.status, json, parts.headers)
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let (status, json, _) = self.send_with_headers(request).await;
        (status, json)
    }

    fn token_request(form: &[(&str, &str)]) -> Request<Body> {
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(' ', "+").replace('&', "%26")))
            .collect::<Vec<_>>()
            .join("&");
        Request::post("/auth/token")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    }

    async fn login_with_headers(&self, password: &str) -> (StatusCode, Value, HeaderMap) {
        let form = [
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", password),
        ];
        self.send_with_headers(Self::token_request(&form)).await
    }

    async fn login(&self, password: &str) -> (StatusCode, Value) {
        let (status, json, _) = self.login_with_headers(password).await;
        (status, json)
    }

    async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        self.send(Self::token_request(&form)).await
    }

    async fn with_bearer(&self, method: &str, path: &str, access_token: &str) -> StatusCode {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(AUTHORIZATION, format!("Bearer {access_token}"))
            .body(Body::empty())
            .unwrap();
        self.send(request).await.0
    }

    async fn me(&self, access_token: &str) -> StatusCode {
        self.with_bearer("GET", "/me", access_token).await
    }
}

/// The access and refresh tokens of a 200 answer.
#[track_caller]
fn tokens((status, body): (StatusCode, Value)) -> (String, String) {
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// Two instances on one server, and the user `alice`.
async fn two_instances(server: &Server) -> (Instance, Instance) {
    let users = Arc::new(MemoryUserStore::new());
    let a = Instance::on_redis(server, &users, None).await;
    let b = Instance::on_redis(server, &users, None).await;
    a.auth
        .create_user("alice", PASSWORD, &["user"], &["items:read"])
        .await
        .unwrap();
    (a, b)
}

#[tokio::test]
async fn a_replay_on_one_instance_revokes_the_family_on_both() {
    let server = server_or_skip!("a_replay_on_one_instance_revokes_the_family_on_both");
    let (a, b) = two_instances(&server).await;
    let (access0, refresh0) = tokens(a.login(PASSWORD).await);
    assert_eq!(b.me(&access0).await, StatusCode::OK);

    // Rotated on A, the new pair works on B.
    let (access1, refresh1) = tokens(a.refresh(&refresh0).await);
    assert_eq!(b.me(&access1).await, StatusCode::OK);

    // Replaying the rotated token on B is reuse: refused, and the family ends everywhere.
    let (status, body) = b.refresh(&refresh0).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, _) = a.refresh(&refresh1).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "A's current token died with its family"
    );
    // The session id is denylisted: the family's access tokens stop working on both at once.
    for instance in [&a, &b] {
        assert_eq!(instance.me(&access1).await, StatusCode::UNAUTHORIZED);
        assert_eq!(instance.me(&access0).await, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_across_instances_let_exactly_one_through() {
    let server = server_or_skip!("concurrent_refreshes_across_instances_let_exactly_one_through");
    let (a, b) = two_instances(&server).await;
    for round in 0..3 {
        let (_, refresh) = tokens(a.login(PASSWORD).await);
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let instance = if i % 2 == 0 { a.clone() } else { b.clone() };
                let refresh = refresh.clone();
                tokio::spawn(async move { instance.refresh(&refresh).await })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (status, body) = task.await.unwrap();
            match status {
                StatusCode::OK => winners.push(body),
                StatusCode::BAD_REQUEST => assert_eq!(body["error"], "invalid_grant"),
                other => panic!("round {round}: unexpected {other}: {body}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one refresh succeeds"
        );
        // The others were replays of a rotated token: the family is gone, the winner's too.
        let winner = winners[0]["refresh_token"].as_str().unwrap();
        assert_eq!(b.refresh(winner).await.0, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn a_logout_on_one_instance_is_seen_by_the_others_bearer_layer() {
    let server = server_or_skip!("a_logout_on_one_instance_is_seen_by_the_others_bearer_layer");
    let (a, b) = two_instances(&server).await;

    let (access, refresh) = tokens(a.login(PASSWORD).await);
    assert_eq!(b.me(&access).await, StatusCode::OK);
    assert_eq!(
        a.with_bearer("POST", "/auth/logout", &access).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(b.me(&access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(b.refresh(&refresh).await.0, StatusCode::BAD_REQUEST);

    // Log out everywhere on B: both of the user's sessions end, wherever they started.
    let (on_a, refresh_a) = tokens(a.login(PASSWORD).await);
    let (on_b, refresh_b) = tokens(b.login(PASSWORD).await);
    assert_eq!(
        b.with_bearer("POST", "/auth/logout/all", &on_b).await,
        StatusCode::NO_CONTENT
    );
    for instance in [&a, &b] {
        assert_eq!(instance.me(&on_a).await, StatusCode::UNAUTHORIZED);
        assert_eq!(instance.me(&on_b).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(a.refresh(&refresh_a).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(a.refresh(&refresh_b).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn failures_on_one_instance_count_on_the_other() {
    let server = server_or_skip!("failures_on_one_instance_count_on_the_other");
    let clock = Arc::new(AtomicU64::new(1_750_000_000_000));
    let users = Arc::new(MemoryUserStore::new());
    let mut instances = Vec::new();
    for _ in 0..2 {
        let store = RedisLimiterStore::new(server.connection().await, LoginLimits::default());
        let clock = Arc::clone(&clock);
        let limiter = RateLimitLoginLayer::new(Arc::new(store))
            .clock(move || UNIX_EPOCH + Duration::from_millis(clock.load(Ordering::SeqCst)));
        instances.push(Instance::on_redis(&server, &users, Some(limiter)).await);
    }
    let (a, b) = (&instances[0], &instances[1]);
    a.auth
        .create_user("alice", PASSWORD, &["user"], &[])
        .await
        .unwrap();

    // Five failures are free and the sixth goes through, split over both instances...
    for instance in [a, b, a, b, a, b] {
        assert_eq!(instance.login(WRONG).await.0, StatusCode::BAD_REQUEST);
    }
    // ...then the pair waits 1 s, whichever instance it asks, even with the right password.
    for instance in [a, b] {
        let (status, body, headers) = instance.login_with_headers(PASSWORD).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(headers[RETRY_AFTER], "1");
    }
    clock.fetch_add(1_000, Ordering::SeqCst);
    tokens(b.login(PASSWORD).await);
    // The success cleared the pair for both.
    assert_eq!(a.login(WRONG).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(b.login(WRONG).await.0, StatusCode::BAD_REQUEST);
}

/// Attempts in flight together on two instances pass one decision at a time: of 150
/// concurrent guesses for one account from 150 clients, split over two stores on two
/// connections, exactly the twenty free failures and the twenty-first are allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_attempts_on_two_instances_cannot_pass_the_username_limit() {
    let server =
        server_or_skip!("concurrent_attempts_on_two_instances_cannot_pass_the_username_limit");
    let stores = [
        RedisLimiterStore::new(server.connection().await, LoginLimits::default()),
        RedisLimiterStore::new(server.connection().await, LoginLimits::default()),
    ];
    let now_ms = u64::try_from(unix_now().as_millis()).unwrap();
    let tasks: Vec<_> = (0..150u32)
        .map(|n| {
            let store = stores[n as usize % 2].clone();
            tokio::spawn(async move {
                let key = LoginKey {
                    client: IpAddr::V4(Ipv4Addr::from(0xC612_0000 + n)),
                    username: Some("alice"),
                    action: Action::Login,
                };
                store.attempt(&key, now_ms).await.unwrap()
            })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        if task.await.unwrap() == Decision::Allow {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 21);
}

// ---------------------------------------------------------------------------------------------
// TTLs
// ---------------------------------------------------------------------------------------------

fn hex(hash: &TokenHash) -> String {
    hash.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn keys_carry_the_remaining_lifetime_of_what_they_hold() {
    let server = server_or_skip!("keys_carry_the_remaining_lifetime_of_what_they_hold");
    let mut redis = server.connection().await;
    let now = unix_now().as_secs();

    // Revocations: until the entry stops mattering; a second one never shortens it.
    let revocation = RedisRevocationStore::new(redis.clone());
    revocation
        .revoke_token(ISSUER, "jti-1", now + 900)
        .await
        .unwrap();
    revocation
        .revoke_token(ISSUER, "jti-1", now + 60)
        .await
        .unwrap();
    let token_key = format!("tjwt:rv:t:{}:{ISSUER}:jti-1", ISSUER.len());
    assert_about(pttl(&mut redis, &token_key).await, 900_000, "revoked token");
    revocation
        .revoke_session(ISSUER, "sid-1", now + 300)
        .await
        .unwrap();
    let session_key = format!("tjwt:rv:s:{}:{ISSUER}:sid-1", ISSUER.len());
    assert_about(
        pttl(&mut redis, &session_key).await,
        300_000,
        "revoked session",
    );
    revocation
        .revoke_subject_before(ISSUER, "alice", now, now + 600)
        .await
        .unwrap();
    // An earlier cut-off and a shorter life: neither moves back.
    revocation
        .revoke_subject_before(ISSUER, "alice", now - 100, now + 30)
        .await
        .unwrap();
    let subject_key = format!("tjwt:rv:u:{}:{ISSUER}:alice", ISSUER.len());
    assert_about(
        pttl(&mut redis, &subject_key).await,
        600_000,
        "subject cut-off",
    );
    let alice = RevocationQuery::new(ISSUER).subject("alice");
    assert!(
        revocation
            .is_revoked(&alice.issued_at(now - 1))
            .await
            .unwrap()
    );
    assert!(!revocation.is_revoked(&alice.issued_at(now)).await.unwrap());
    assert!(revocation.is_revoked(&alice).await.unwrap(), "no iat");
    // Already irrelevant: nothing written.
    revocation
        .revoke_token(ISSUER, "old", now - 1)
        .await
        .unwrap();
    let old_key = format!("tjwt:rv:t:{}:{ISSUER}:old", ISSUER.len());
    assert_eq!(pttl(&mut redis, &old_key).await, -2);

    // A family: its record lives as long as its current token (idle expiry), token entries
    // and the user's set as long as the session (absolute expiry).
    let refresh = RedisRefreshStore::new(redis.clone());
    let (first, second) = (TokenHash::of("first"), TokenHash::of("second"));
    refresh
        .create(session("s-1", "u-1", now, now + 3_600), first, now + 600)
        .await
        .unwrap();
    assert_about(pttl(&mut redis, "tjwt:rf:s:s-1").await, 600_000, "family");
    let first_key = format!("tjwt:rf:t:{}", hex(&first));
    assert_about(pttl(&mut redis, &first_key).await, 3_600_000, "token entry");
    assert_about(
        pttl(&mut redis, "tjwt:rf:u:u-1").await,
        3_600_000,
        "user's set",
    );
    let rotated = refresh
        .rotate(&first, second, now, now + 1_200, None)
        .await
        .unwrap();
    assert!(matches!(rotated, Rotation::Rotated(s) if s.session_id == "s-1"));
    assert_about(
        pttl(&mut redis, "tjwt:rf:s:s-1").await,
        1_200_000,
        "family after rotation",
    );
    assert_about(
        pttl(&mut redis, "tjwt:rf:r:s-1").await,
        1_200_000,
        "rotated hashes",
    );
    let second_key = format!("tjwt:rf:t:{}", hex(&second));
    assert_about(
        pttl(&mut redis, &second_key).await,
        3_600_000,
        "new token entry",
    );
    // The idle expiry is capped by the absolute one.
    refresh
        .rotate(&second, TokenHash::of("third"), now, now + 99_999, None)
        .await
        .unwrap();
    assert_about(
        pttl(&mut redis, "tjwt:rf:s:s-1").await,
        3_600_000,
        "capped family",
    );

    // The limiter: failure records until forgotten, the client's arrival time until reached.
    let limiter = RedisLimiterStore::new(redis.clone(), LoginLimits::default());
    let key = LoginKey {
        client: CLIENT,
        username: Some("alice"),
        action: Action::Login,
    };
    let now_ms = u64::try_from(unix_now().as_millis()).unwrap();
    assert_eq!(
        limiter.attempt(&key, now_ms).await.unwrap(),
        Decision::Allow
    );
    let day = 24 * 3_600_000;
    let keys = [
        "tjwt:rl:p:203.0.113.7 alice",
        "tjwt:rl:a:alice",
        "tjwt:rl:c:203.0.113.7",
    ];
    let mut ttls = async |what: &str, expected: [i64; 3]| {
        for (key, expected) in keys.into_iter().zip(expected) {
            let ttl = pttl(&mut redis, key).await;
            if expected < 0 {
                assert_eq!(ttl, expected, "{what}: {key}");
            } else {
                assert_about(ttl, expected, &format!("{what}: {key}"));
            }
        }
    };
    ttls("one attempt", [day, day, 2_000]).await;
    // A success clears both failure records and gives the client's charge back.
    limiter.succeeded(&key, now_ms).await.unwrap();
    ttls("success", [-2, -2, -2]).await;
    // A refund of one of two charges leaves one, with the time it had; of the last, nothing.
    for _ in 0..2 {
        limiter.attempt(&key, now_ms).await.unwrap();
    }
    limiter.refund(&key, now_ms).await.unwrap();
    ttls("one of two refunded", [day, day, 2_000]).await;
    limiter.refund(&key, now_ms).await.unwrap();
    ttls("both refunded", [-2, -2, -2]).await;
}

#[tokio::test]
async fn entries_disappear_when_their_lifetime_ends() {
    let server = server_or_skip!("entries_disappear_when_their_lifetime_ends");
    let mut redis = server.connection().await;
    let revocation = RedisRevocationStore::new(redis.clone());
    let refresh = RedisRefreshStore::new(redis.clone());

    // `until` is whole seconds: pick the second that ends 1.2 to 2.2 s from now.
    let now = unix_now();
    let until = (now + Duration::from_millis(2_200)).as_secs();
    revocation
        .revoke_token(ISSUER, "short", until)
        .await
        .unwrap();
    let query = RevocationQuery::new(ISSUER).token_id("short");
    assert!(revocation.is_revoked(&query).await.unwrap());

    // A family with two seconds of idle life.
    let secs = now.as_secs();
    let token = TokenHash::of("short-lived");
    refresh
        .create(session("s-short", "u", secs, secs + 3_600), token, secs + 2)
        .await
        .unwrap();
    assert!(refresh.get(&token, secs).await.unwrap().is_some());

    let key = format!("tjwt:rv:t:{}:{ISSUER}:short", ISSUER.len());
    eventually(Duration::from_secs(5), "revocation expired", || {
        let (revocation, mut redis, key) = (revocation.clone(), redis.clone(), key.clone());
        async move {
            !revocation.is_revoked(&query).await.unwrap() && pttl(&mut redis, &key).await == -2
        }
    })
    .await;
    eventually(Duration::from_secs(5), "family expired", || {
        let mut redis = redis.clone();
        async move { pttl(&mut redis, "tjwt:rf:s:s-short").await == -2 }
    })
    .await;
    // Whatever the caller's clock says, the family is gone from Redis.
    assert_eq!(refresh.get(&token, secs).await.unwrap(), None);
    assert_eq!(refresh.find_session(&token).await.unwrap(), None);
    let left: i64 = redis::cmd("EXISTS")
        .arg("tjwt:rf:s:s-short")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

// ---------------------------------------------------------------------------------------------
// The refresh store on its own
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_stores_conform_and_keep_to_their_prefix() {
    let server = server_or_skip!("the_redis_stores_conform_and_keep_to_their_prefix");
    let connection = server.connection().await;
    conformance::refresh_store(&RedisRefreshStore::new(connection.clone()).prefix("app2:")).await;
    conformance::concurrent_rotations(Arc::new(
        RedisRefreshStore::new(connection.clone()).prefix("app3:"),
    ))
    .await;
    conformance::revocation_store(&RedisRevocationStore::new(connection.clone()).prefix("app4:"))
        .await;
    conformance::refresh_retries(&RedisRefreshStore::new(connection.clone()).prefix("app6:")).await;
    conformance::concurrent_retries(Arc::new(
        RedisRefreshStore::new(connection.clone()).prefix("app7:"),
    ))
    .await;
    conformance::concurrent_attempts(Arc::new(
        RedisLimiterStore::new(connection.clone(), conformance::concurrent_policy())
            .prefix("app5:"),
    ))
    .await;

    // Every key carried the prefix.
    let mut redis = server.connection().await;
    let stray: Vec<String> = redis::cmd("KEYS")
        .arg("tjwt:*")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(stray.is_empty(), "{stray:?}");
}

// ---------------------------------------------------------------------------------------------
// Outage and recovery
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_closed_for_tokens_keeps_logins_limited_and_tells_nothing_then_recovers() {
    let mut server = server_or_skip!(
        "an_outage_fails_closed_for_tokens_keeps_logins_limited_and_tells_nothing_then_recovers"
    );
    let users = Arc::new(MemoryUserStore::new());
    // Two instances, each with its own limiter on the one Redis (each limits in its own memory
    // during an outage). `shared` has everything in Redis: revocation (BearerAuth), refresh
    // families, the limiter.
    let connection = server.connection().await;
    let limiter = || {
        let store = RedisLimiterStore::new(connection.clone(), LoginLimits::default());
        RateLimitLoginLayer::new(Arc::new(store))
    };
    let shared = Instance::on_redis(&server, &users, Some(limiter())).await;
    // `limited` has only the limiter in Redis, so a login's outcome shows what the limiter
    // decided.
    let limited = Instance::new(
        AuthRouter::builder(issuer())
            .hasher(cheap_hasher())
            .users(users.clone())
            .rate_limit(limiter())
            .build()
            .unwrap(),
    );
    shared
        .auth
        .create_user("alice", PASSWORD, &["user"], &[])
        .await
        .unwrap();
    let (access, refresh) = tokens(shared.login(PASSWORD).await);
    assert_eq!(shared.me(&access).await, StatusCode::OK);
    for _ in 0..6 {
        assert_eq!(limited.login(WRONG).await.0, StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        limited.login(PASSWORD).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    server.kill();
    let started = Instant::now();
    // The revocation store cannot answer: BearerAuth fails closed.
    assert_eq!(shared.me(&access).await, StatusCode::SERVICE_UNAVAILABLE);
    // The refresh store cannot answer: the token endpoint says so, for a live refresh token
    // and a made-up one alike.
    let (status, body) = shared.refresh(&refresh).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let made_up = "x".repeat(43);
    assert_eq!(
        shared.refresh(&made_up).await,
        (status, body),
        "a refresh answer must not tell a live token from a made-up one"
    );
    // A login that needs the refresh store: the right and a wrong password get the same 503,
    // before any hashing.
    let hashed = |auth: &AuthRouter| {
        let stats = auth.hasher().stats();
        stats.verifications + stats.dummy_verifications
    };
    let before = hashed(&shared.auth);
    let right = shared.login_with_headers(PASSWORD).await;
    let wrong = shared.login_with_headers(WRONG).await;
    assert_eq!(right.0, StatusCode::SERVICE_UNAVAILABLE, "{}", right.1);
    assert_eq!((&right.0, &right.1), (&wrong.0, &wrong.1));
    assert_eq!(right.2.get(RETRY_AFTER), wrong.2.get(RETRY_AFTER));
    assert_eq!(hashed(&shared.auth), before, "no password was checked");
    // The limiter cannot answer: limits move into this instance's memory, with the same
    // policy; they do not vanish. Six failures are free, the seventh attempt waits, right
    // password or not.
    for _ in 0..6 {
        assert_eq!(limited.login(WRONG).await.0, StatusCode::BAD_REQUEST);
    }
    let (status, _, headers) = limited.login_with_headers(PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key(RETRY_AFTER));
    assert_eq!(limited.login(WRONG).await.0, StatusCode::TOO_MANY_REQUESTS);
    let outage = started.elapsed();
    eprintln!("the calls during the outage took {outage:?}");
    assert!(
        outage < 16 * (DEFAULT_TIMEOUT + Duration::from_millis(500)),
        "the calls during the outage took {outage:?}"
    );

    // Back on the same port (empty: no persistence). The same stores recover by themselves.
    server.restart();
    let restarted = Instant::now();
    eventually(Duration::from_secs(15), "bearer auth recovered", || {
        let (shared, access) = (shared.clone(), access.clone());
        async move { shared.me(&access).await == StatusCode::OK }
    })
    .await;
    eprintln!(
        "bearer auth recovered {:?} after the restart",
        restarted.elapsed()
    );
    // The family did not survive the restart, so log in again, then refresh.
    let (access, refresh) = tokens(shared.login(PASSWORD).await);
    tokens(shared.refresh(&refresh).await);
    assert_eq!(shared.me(&access).await, StatusCode::OK);
    // The limiter counts again: the failures above reached Redis' new empty memory only
    // after recovery, so six are free and the next attempt waits.
    eventually(Duration::from_secs(15), "limiter recovered", || {
        let limited = limited.clone();
        async move { limited.login(WRONG).await.0 == StatusCode::TOO_MANY_REQUESTS }
    })
    .await;
    eprintln!(
        "everything recovered {:?} after the restart",
        restarted.elapsed()
    );
}

#[tokio::test]
async fn a_hung_server_fails_every_store_within_its_timeout() {
    let server = server_or_skip!("a_hung_server_fails_every_store_within_its_timeout");
    let connection = server.connection().await;
    let timeout = Duration::from_millis(300);
    let revocation = RedisRevocationStore::new(connection.clone()).timeout(timeout);
    let refresh = RedisRefreshStore::new(connection.clone()).timeout(timeout);
    let limiter = RedisLimiterStore::new(connection, LoginLimits::default()).timeout(timeout);
    let query = RevocationQuery::new(ISSUER).token_id("t").session_id("s");
    let key = LoginKey {
        client: CLIENT,
        username: Some("alice"),
        action: Action::Login,
    };
    let now = unix_now();
    let now_ms = u64::try_from(now.as_millis()).unwrap();
    assert!(!revocation.is_revoked(&query).await.unwrap());

    server.signal("STOP");
    let started = Instant::now();
    let errors = [
        revocation.is_revoked(&query).await.map(drop).unwrap_err(),
        revocation
            .revoke_token(ISSUER, "t", now.as_secs() + 60)
            .await
            .unwrap_err(),
        refresh
            .get(&TokenHash::of("x"), now.as_secs())
            .await
            .unwrap_err(),
        limiter.check(&key, now_ms).await.map(drop).unwrap_err(),
        limiter.attempt(&key, now_ms).await.map(drop).unwrap_err(),
        limiter.succeeded(&key, now_ms).await.unwrap_err(),
        limiter.refund(&key, now_ms).await.unwrap_err(),
    ];
    let waited = started.elapsed();
    for error in &errors {
        assert_eq!(error.message(), "redis timed out");
    }
    // Seven calls, each given up after 300 ms.
    assert!(waited < Duration::from_secs(4), "{waited:?}");

    server.signal("CONT");
    eventually(Duration::from_secs(10), "answers again", || {
        let revocation = revocation.clone();
        async move { revocation.is_revoked(&query).await.is_ok() }
    })
    .await;
    revocation
        .revoke_session(ISSUER, "s", now.as_secs() + 60)
        .await
        .unwrap();
    assert!(revocation.is_revoked(&query).await.unwrap());
    assert_eq!(limiter.check(&key, now_ms).await.unwrap(), Decision::Allow);
}

// ---------------------------------------------------------------------------------------------
// Parity with the memory limiter
// ---------------------------------------------------------------------------------------------

#[test]
fn the_redis_limiter_decides_as_the_memory_limiter() {
    let server = server_or_skip!("the_redis_limiter_decides_as_the_memory_limiter");
    let url = server.url();
    conformance::within(Duration::from_secs(30), move || {
        Box::pin(async move {
            let connection = tower_jwt_auth::redis::connect(&url).await.unwrap();
            conformance::limiter_parity(|limits, index| {
                Arc::new(
                    RedisLimiterStore::new(connection.clone(), limits)
                        .prefix(&format!("parity{index}:")),
                ) as Arc<dyn LimiterStore>
            })
            .await;
        })
    });
    drop(server);
}
