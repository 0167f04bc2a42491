//! `RateLimitLogin`: every rule of the default [`LoginLimits`], each next to a
//! control that shows what the rule must leave alone.
//!
//! Most tests drive the layer around a scripted login service ([`passwords`]: a few accounts,
//! form or JSON bodies, 200 for the right password, 400 `invalid_grant` for a wrong one) that
//! counts its calls and records the bytes it received. The last ones drive the real
//! [`AuthRouter`] with `.rate_limit(layer)` and cheap argon2 parameters. Time is the layer's
//! injected clock (milliseconds, moved by hand): nothing sleeps and nothing is timed (but for
//! one deadlock watchdog).
//!
//! [`checking_and_counting_any_key_returns`] and
//! [`a_refresh_grant_naming_a_username_does_not_clear_its_failures`] are the regression tests
//! of two bugs this suite found (a shard deadlock, and a refresh grant clearing a victim's
//! failures); [`concurrent_failures_cannot_pass_the_nist_hard_stop`] is the test of a third
//! (attempts in flight together all passing one check).

use crate::common::NOW;
use crate::common::answer::{Answer, answer};
use crate::common::stores::Later;
#[cfg(feature = "router")]
use crate::common::{AUDIENCE, ISSUER, fixture};

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
#[cfg(feature = "router")]
use std::net::SocketAddr;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[cfg(feature = "router")]
use axum::Router;
use axum::body::Body;
#[cfg(feature = "router")]
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use serde_json::json;
use tower::ServiceExt;
use tower::service_fn;
use tower::util::BoxCloneService;
#[cfg(feature = "router")]
use tower_jwt_auth::issuer::TokenIssuer;
use tower_jwt_auth::normalize_username;
#[cfg(feature = "router")]
use tower_jwt_auth::password::PasswordHasher;
use tower_jwt_auth::ratelimit::{
    Action, ClientAddr, DEFAULT_BODY_LIMIT, DEFAULT_MAX_ENTRIES, Decision, ForwardedHeader,
    LimitReason, LimiterStore, LoginKey, LoginLimits, LoginOutcome, MemoryLimiterStore,
    NIST_MAX_FAILURES, RateLimitLogin, RateLimitLoginLayer,
};
#[cfg(feature = "router")]
use tower_jwt_auth::router::AuthRouter;
use tower_jwt_auth::store::{StoreError, StoreErrorPolicy, StoreFuture};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";
const GRPC: &str = "application/grpc";
const PASSWORD: &str = "correct horse battery staple";
const WRONG: &str = "Tr0ub4dor&3";

const SECOND: u64 = 1000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

/// The scripted login's accounts: normalised username and password.
const ACCOUNTS: [(&str, &str); 3] = [
    ("alice", PASSWORD),
    ("bob", PASSWORD),
    ("élodie", "pässwörd € 😀 %41+&="),
];

/// The limiter's clock: milliseconds since the epoch, moved only by the test.
#[derive(Clone)]
struct Clock(Arc<AtomicU64>);

impl Clock {
    fn new() -> Self {
        Self(Arc::new(AtomicU64::new(NOW * SECOND)))
    }

    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// For `RateLimitLoginLayer::clock` (and the issuer and router in [`Site`]).
    fn system_time(&self) -> impl Fn() -> SystemTime + Send + Sync + 'static {
        let ms = Arc::clone(&self.0);
        move || UNIX_EPOCH + Duration::from_millis(ms.load(Ordering::SeqCst))
    }
}

/// Every request the inner login service received: its headers and its exact body bytes.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(HeaderMap, Bytes)>>>);

impl Seen {
    fn calls(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn last(&self) -> (HeaderMap, Bytes) {
        self.0.lock().unwrap().last().cloned().unwrap()
    }
}

/// What the limiter hands on: the body it read.
type Handed = Request<Full<Bytes>>;

type Inner = BoxCloneService<Handed, Response<Body>, Infallible>;

/// A login service (`service_fn`) that records each request in `seen` and answers it with
/// `answer(headers, body)`.
fn inner<A>(seen: &Seen, answer: A) -> Inner
where
    A: Fn(&HeaderMap, &[u8]) -> Response<Body> + Clone + Send + Sync + 'static,
{
    let seen = seen.clone();
    BoxCloneService::new(service_fn(move |request: Handed| {
        let (seen, answer) = (seen.clone(), answer.clone());
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let response = answer(&parts.headers, &body);
            seen.0.lock().unwrap().push((parts.headers, body));
            Ok::<_, Infallible>(response)
        }
    }))
}

/// The parameters of a form or a JSON object of strings.
fn params_of(headers: &HeaderMap, body: &[u8]) -> Option<HashMap<String, String>> {
    let content_type = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    if content_type.starts_with(FORM) {
        Some(form_urlencoded::parse(body).into_owned().collect())
    } else if content_type.starts_with(JSON) {
        serde_json::from_slice(body).ok()
    } else {
        None
    }
}

/// The scripted login: 200 and a token-like body for an account's password, 400
/// `invalid_grant` for anything else, 400 `invalid_request` without both parameters.
fn passwords(headers: &HeaderMap, body: &[u8]) -> Response<Body> {
    let Some(params) = params_of(headers, body) else {
        return oauth_error(400, "invalid_request");
    };
    let (Some(username), Some(password)) = (params.get("username"), params.get("password")) else {
        return oauth_error(400, "invalid_request");
    };
    let user = normalize_username(username).unwrap_or_default();
    if ACCOUNTS.contains(&(user.as_str(), password.as_str())) {
        let token = json!({"access_token": format!("token-for-{user}"), "token_type": "Bearer"});
        json_response(200, &token.to_string())
    } else {
        oauth_error(400, "invalid_grant")
    }
}

fn json_response(status: u16, body: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, JSON)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// An RFC 6749 §5.2 error.
fn oauth_error(status: u16, code: &str) -> Response<Body> {
    let body = json!({"error": code, "error_description": "scripted"});
    json_response(status, &body.to_string())
}

/// A trailers-only gRPC answer with this status.
fn grpc_answer(status: &'static str) -> Response<Body> {
    Response::builder()
        .header(CONTENT_TYPE, GRPC)
        .header("grpc-status", status)
        .body(Body::empty())
        .unwrap()
}

type Login = RateLimitLogin<Inner>;

/// A [`RateLimitLogin`] around a scripted login, its store and its clock.
struct Harness {
    login: Login,
    store: Arc<MemoryLimiterStore>,
    clock: Clock,
    seen: Seen,
}

impl Harness {
    /// The default limits around [`passwords`].
    fn new() -> Self {
        Self::with(|layer| layer, passwords)
    }

    /// `configure` sees the layer with a memory store and the clock already set.
    fn with<A>(
        configure: impl FnOnce(RateLimitLoginLayer) -> RateLimitLoginLayer,
        answer: A,
    ) -> Self
    where
        A: Fn(&HeaderMap, &[u8]) -> Response<Body> + Clone + Send + Sync + 'static,
    {
        let seen = Seen::default();
        let service = inner(&seen, answer);
        Self::around(service, seen, configure)
    }

    fn around(
        service: Inner,
        seen: Seen,
        configure: impl FnOnce(RateLimitLoginLayer) -> RateLimitLoginLayer,
    ) -> Self {
        let clock = Clock::new();
        let store = Arc::new(MemoryLimiterStore::new(LoginLimits::default()));
        let layer = RateLimitLoginLayer::new(Arc::clone(&store) as Arc<dyn LimiterStore>)
            .clock(clock.system_time());
        let login = tower::Layer::layer(&configure(layer), service);
        Self {
            login,
            store,
            clock,
            seen,
        }
    }

    /// Every helper clones the service, so its future borrows nothing.
    fn send(&self, request: Request<Body>) -> impl Future<Output = Answer> + Send + use<> {
        let login = self.login.clone();
        async move { answer(login.oneshot(request).await.unwrap()).await }
    }

    /// A form-encoded password grant from `client`.
    fn attempt(
        &self,
        client: &str,
        username: &str,
        password: &str,
    ) -> impl Future<Output = Answer> + Send + use<> {
        self.send(from(client, login_form(username, password)))
    }

    /// What the store says about `client` and `username` now, asked directly.
    fn decision(&self, client: &str, username: Option<&str>) -> Decision {
        let key = LoginKey {
            client: ip(client),
            username,
            action: Action::Login,
        };
        let check = self.store.check(&key, self.clock.now());
        check.into_ready().unwrap().unwrap()
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// The `n`th of many distinct clients (198.18.0.0/15, addresses for benchmarking).
fn client(n: usize) -> String {
    Ipv4Addr::from(0xC612_0000 + u32::try_from(n).unwrap()).to_string()
}

/// `request` as if it came from `client`.
fn from(client: &str, mut request: Request<Body>) -> Request<Body> {
    request.extensions_mut().insert(ClientAddr(ip(client)));
    request
}

fn post(content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post("/token")
        .header(CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap()
}

fn form(params: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

fn login_form(username: &str, password: &str) -> Request<Body> {
    let params = [
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
    ];
    post(FORM, form(&params))
}

fn login_json(username: &str, password: &str) -> Request<Body> {
    let body = json!({"grant_type": "password", "username": username, "password": password});
    post(JSON, body.to_string())
}

/// A request body that yields its chunks and declares no length (as `Transfer-Encoding:
/// chunked` arrives).
struct Chunked(VecDeque<Bytes>);

impl http_body::Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }
}

/// `body` in chunks of `size` bytes (cutting through UTF-8 sequences and `%`-escapes), without
/// a length.
fn chunked(body: &[u8], size: usize) -> Body {
    let bytes = Bytes::copy_from_slice(body);
    let chunks = (0..bytes.len())
        .step_by(size)
        .map(|start| bytes.slice(start..bytes.len().min(start + size)))
        .collect();
    Body::new(Chunked(chunks))
}

/// A 429 from the limiter: `Retry-After` in whole seconds, the JSON error, not cacheable.
#[track_caller]
fn assert_limited(answer: &Answer, retry_after: u64) {
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{answer:?}");
    let expected = retry_after.to_string();
    assert_eq!(
        answer.header(RETRY_AFTER),
        Some(expected.as_str()),
        "{answer:?}"
    );
    assert_eq!(answer.header(CONTENT_TYPE), Some(JSON));
    assert_eq!(answer.header(CACHE_CONTROL), Some("no-store"));
    assert_eq!(answer.json()["error"], "rate_limited");
}

/// An RFC 6749 §5.2 error with this status and code.
#[track_caller]
fn assert_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status.as_u16(), status, "{answer:?}");
    assert_eq!(answer.json()["error"], code, "{answer:?}");
}

/// The login refused the password (so the attempt got through the limiter).
#[track_caller]
fn assert_wrong_password(answer: &Answer) {
    assert_error(answer, 400, "invalid_grant");
}

#[track_caller]
fn assert_ok(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}

fn limited(reason: LimitReason, ms: u64) -> Decision {
    Decision::Limit {
        reason,
        retry_after: Duration::from_millis(ms),
    }
}

// ---------------------------------------------------------------------------------------------
// The store answers
// ---------------------------------------------------------------------------------------------

/// Regression (a deadlock this suite found): `MemoryLimiterStore::check` once locked the
/// username's shard while the guard of the pair's shard, a temporary of the same match arm,
/// was still alive. When both keys fall in one shard (1 in 16 keys) the thread locks a std
/// `Mutex` it holds and never returns; two threads taking two shards in opposite orders
/// deadlock as well. `attempt` now holds the three shards of an attempt together, so four
/// threads run checks, attempts and settlements over keys whose shards fall in every order.
/// Every test below that uses more than a few keys hangs if this regresses; this one runs on
/// watchdog threads so that it fails instead.
#[test]
fn checking_and_counting_any_key_returns() {
    let store = Arc::new(MemoryLimiterStore::new(LoginLimits::default()));
    let (done, finished) = std::sync::mpsc::channel();
    for thread in 0..4_usize {
        let (store, done) = (Arc::clone(&store), done.clone());
        std::thread::spawn(move || {
            for n in 0..2048 {
                // Keys walk in a different order on each thread.
                let k = if thread % 2 == 0 { n } else { 2047 - n };
                let username = format!("user{}", k % 256);
                let key = LoginKey {
                    client: ip(&client(k / 8 + 64 * thread)),
                    username: Some(&username),
                    action: Action::Login,
                };
                let now = NOW * SECOND;
                store.check(&key, now).into_ready().unwrap().unwrap();
                store.attempt(&key, now).into_ready().unwrap().unwrap();
                match n % 3 {
                    0 => store.succeeded(&key, now).into_ready().unwrap().unwrap(),
                    1 => store.refund(&key, now).into_ready().unwrap().unwrap(),
                    _ => {}
                }
            }
            done.send(()).unwrap();
        });
    }
    for _ in 0..4 {
        let answered = finished.recv_timeout(Duration::from_secs(60));
        assert!(answered.is_ok(), "MemoryLimiterStore deadlocked");
    }
}

// ---------------------------------------------------------------------------------------------
// Rule 1: (client, username)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_client_gets_five_free_failures_per_username_then_a_doubling_wait_capped_at_15_min() {
    let h = Harness::new();
    let attacker = "203.0.113.7";
    // Five failures are free and the sixth attempt still goes through...
    for n in 1..=6 {
        let answer = h.attempt(attacker, "alice", WRONG).await;
        assert_wrong_password(&answer);
        assert_eq!(h.seen.calls(), n);
    }
    // ...then the pair waits 1 s, even with the right password, and the login is not called.
    assert_limited(&h.attempt(attacker, "alice", PASSWORD).await, 1);
    assert_eq!(
        h.seen.calls(),
        6,
        "a refused attempt never reaches the login"
    );
    assert_eq!(
        h.decision(attacker, Some("alice")),
        limited(LimitReason::ClientAndUsername, SECOND)
    );
    // Controls: the same client for another username, the username from another client.
    assert_ok(&h.attempt(attacker, "bob", PASSWORD).await);
    assert_ok(&h.attempt("198.51.100.1", "alice", PASSWORD).await);

    // After the failure that follows each wait, the next wait doubles, up to 15 minutes.
    let waits = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900];
    for (i, wait) in waits.into_iter().enumerate() {
        if i > 0 {
            // Right after a failure, the whole wait.
            assert_limited(&h.attempt(attacker, "alice", WRONG).await, wait);
        }
        // Half a second later: the rest of the wait, rounded up.
        h.clock.advance(500);
        assert_limited(&h.attempt(attacker, "alice", PASSWORD).await, wait);
        // One millisecond before the end: `Retry-After: 1`, never 0.
        h.clock.advance(wait * SECOND - 501);
        assert_limited(&h.attempt(attacker, "alice", PASSWORD).await, 1);
        // The wait is over: one more failure gets through.
        h.clock.advance(1);
        let before = h.seen.calls();
        assert_wrong_password(&h.attempt(attacker, "alice", WRONG).await);
        assert_eq!(h.seen.calls(), before + 1, "after a wait of {wait} s");
    }
    assert_eq!(
        h.decision(attacker, Some("alice")),
        limited(LimitReason::ClientAndUsername, 15 * MINUTE)
    );
}

// ---------------------------------------------------------------------------------------------
// Rule 2: the username across clients, and the NIST lock
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_username_gets_twenty_free_failures_across_clients_then_a_wait_capped_at_5_min() {
    let h = Harness::new();
    // One failure from each client: no pair and no client comes near its own limit. Twenty are
    // free and the twenty-first attempt still goes through...
    for n in 0..21 {
        assert_wrong_password(&h.attempt(&client(n), "alice", WRONG).await);
    }
    // ...then the username waits 1 s, whoever asks and whatever the password.
    let fresh = client(1000);
    assert_limited(&h.attempt(&fresh, "alice", PASSWORD).await, 1);
    assert_eq!(
        h.decision(&fresh, Some("alice")),
        limited(LimitReason::Username, SECOND)
    );
    assert_eq!(h.seen.calls(), 21);
    // Control: the same fresh client for another username.
    assert_ok(&h.attempt(&fresh, "bob", PASSWORD).await);

    let waits = [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300];
    for (i, wait) in waits.into_iter().enumerate() {
        // A client that never failed before, every time.
        let fresh = client(21 + i);
        if i > 0 {
            assert_limited(&h.attempt(&fresh, "alice", WRONG).await, wait);
        }
        h.clock.advance(wait * SECOND - 1);
        assert_limited(&h.attempt(&fresh, "alice", PASSWORD).await, 1);
        h.clock.advance(1);
        assert_wrong_password(&h.attempt(&fresh, "alice", WRONG).await);
    }
    assert_eq!(
        h.decision(&fresh, Some("alice")),
        limited(LimitReason::Username, 5 * MINUTE)
    );
}

#[tokio::test]
async fn a_hundred_consecutive_failures_lock_the_account_for_an_hour() {
    let h = Harness::new();
    // 99 failures from 99 clients, each after the username's wait (at most 5 min) is over.
    for n in 0..99 {
        assert_wrong_password(&h.attempt(&client(n), "alice", WRONG).await);
        h.clock.advance(5 * MINUTE);
    }
    // 99 failures and no wait left: not locked.
    assert_eq!(h.decision(&client(1000), Some("alice")), Decision::Allow);
    // The hundredth locks the account for an hour.
    assert_wrong_password(&h.attempt(&client(99), "alice", WRONG).await);
    h.clock.advance(5 * MINUTE);
    // The username's wait is over; the lock is not, even for the right password from a client
    // that never failed.
    let lock_left = HOUR - 5 * MINUTE;
    assert_limited(
        &h.attempt(&client(1001), "alice", PASSWORD).await,
        lock_left / SECOND,
    );
    assert_eq!(
        h.decision(&client(1001), Some("alice")),
        limited(LimitReason::AccountLocked, lock_left)
    );
    assert_eq!(h.seen.calls(), usize::try_from(NIST_MAX_FAILURES).unwrap());
    // Control: other accounts are not locked.
    assert_ok(&h.attempt(&client(1001), "bob", PASSWORD).await);

    h.clock.advance(lock_left - 1);
    assert_limited(&h.attempt(&client(1002), "alice", PASSWORD).await, 1);
    // An hour after the hundredth failure, the owner logs in...
    h.clock.advance(1);
    assert_ok(&h.attempt(&client(1002), "alice", PASSWORD).await);
    // ...and that ends the run: the next failure is the first of a new one.
    assert_wrong_password(&h.attempt(&client(1003), "alice", WRONG).await);
    assert_eq!(h.decision(&client(1004), Some("alice")), Decision::Allow);
}

// ---------------------------------------------------------------------------------------------
// Rule 3: the client across usernames
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_client_failing_across_usernames_is_held_to_thirty_a_minute_after_a_burst_of_ten() {
    let h = Harness::new();
    let stuffer = "203.0.113.66";
    // Credential stuffing: a new username for every guess. A burst of ten goes through...
    for n in 0..10 {
        assert_wrong_password(&h.attempt(stuffer, &format!("user{n}"), WRONG).await);
    }
    // ...then this client waits 2 s for any username, even with a right password.
    assert_limited(&h.attempt(stuffer, "user10", WRONG).await, 2);
    assert_limited(&h.attempt(stuffer, "alice", PASSWORD).await, 2);
    assert_eq!(
        h.decision(stuffer, Some("alice")),
        limited(LimitReason::Client, 2 * SECOND)
    );
    assert_eq!(
        h.decision(stuffer, None),
        limited(LimitReason::Client, 2 * SECOND)
    );
    // Control: another client is not affected.
    assert_ok(&h.attempt("198.51.100.9", "alice", PASSWORD).await);

    // From now on one guess every 2 s: trying every 250 ms for a minute, 30 get through.
    let before = h.seen.calls();
    let mut through = 0;
    for n in 0..240 {
        h.clock.advance(250);
        let answer = h.attempt(stuffer, &format!("next{n}"), WRONG).await;
        match answer.status {
            StatusCode::BAD_REQUEST => through += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let retry_after: u64 = answer.header(RETRY_AFTER).unwrap().parse().unwrap();
                assert!((1..=2).contains(&retry_after), "{answer:?}");
            }
            _ => panic!("{answer:?}"),
        }
    }
    assert_eq!(through, 30);
    assert_eq!(h.seen.calls(), before + 30);
}

/// An IPv6 stuffer owns a whole /64 and sends every guess from a new address in it: counted
/// by network, the addresses share one burst. Another network is a different client, and a
/// layer told to count single addresses (`/128`) does so.
#[tokio::test]
async fn an_ipv6_client_is_its_network_not_each_address() {
    let h = Harness::new();
    for n in 0..10 {
        let address = format!("2001:db8:1:2::{:x}", n + 1);
        assert_wrong_password(&h.attempt(&address, &format!("user{n}"), WRONG).await);
    }
    assert_limited(&h.attempt("2001:db8:1:2:ffff::1", "user10", WRONG).await, 2);
    assert_eq!(
        h.decision("2001:db8:1:2::", Some("user10")),
        limited(LimitReason::Client, 2 * SECOND)
    );
    // Control: the neighbouring /64, and an IPv4 client.
    assert_ok(&h.attempt("2001:db8:1:3::1", "alice", PASSWORD).await);
    assert_ok(&h.attempt("203.0.113.1", "alice", PASSWORD).await);

    let single = Harness::with(|layer| layer.ipv6_prefix(128).unwrap(), passwords);
    for n in 0..20 {
        let address = format!("2001:db8:1:2::{:x}", n + 1);
        assert_wrong_password(&single.attempt(&address, &format!("user{n}"), WRONG).await);
    }
    for bits in [0, 31, 129] {
        let layer =
            RateLimitLoginLayer::new(Arc::new(MemoryLimiterStore::new(LoginLimits::default())));
        assert!(layer.ipv6_prefix(bits).is_err(), "/{bits}");
    }
}

// ---------------------------------------------------------------------------------------------
// Rule 4: the attacker is limited, not the victim
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_attacker_limited_on_a_username_does_not_lock_its_owner_out() {
    let h = Harness::new();
    let attacker = "203.0.113.7";
    for _ in 0..6 {
        assert_wrong_password(&h.attempt(attacker, "alice", WRONG).await);
    }
    assert_limited(&h.attempt(attacker, "alice", WRONG).await, 1);
    // The owner, from her own address, logs in.
    assert_ok(&h.attempt("198.51.100.23", "alice", PASSWORD).await);
    // Her success clears her own record, not the attacker's.
    assert_limited(&h.attempt(attacker, "alice", PASSWORD).await, 1);
    assert_eq!(
        h.decision(attacker, Some("alice")),
        limited(LimitReason::ClientAndUsername, SECOND)
    );
}

// ---------------------------------------------------------------------------------------------
// Rule 5: one account, one bucket, however it is spelled
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn spellings_of_one_username_share_its_counters_in_forms_and_json() {
    let h = Harness::new();
    let attacker = "203.0.113.7";
    let spellings = [
        login_form("Alice", WRONG),
        login_json(" ALICE ", WRONG),
        login_form("ＡＬＩＣＥ", WRONG),
        // Fullwidth, as JSON escapes.
        post(
            JSON,
            r#"{"username":"\uff41\uff4c\uff49\uff43\uff45","password":"x"}"#,
        ),
        login_form(" alice", WRONG),
        login_json("ALICE", WRONG),
    ];
    for request in spellings {
        assert_wrong_password(&h.send(from(attacker, request)).await);
    }
    // Six failures for one account: every spelling now waits.
    for request in [
        login_form("alice", PASSWORD),
        login_json("ＡＬＩＣＥ", PASSWORD),
        login_form("Alice ", PASSWORD),
    ] {
        assert_limited(&h.send(from(attacker, request)).await, 1);
    }
    // Controls: a different name, and the account from another client (any spelling).
    assert_wrong_password(&h.attempt(attacker, "alicia", WRONG).await);
    let json = h.send(from("198.51.100.2", login_json("ＡＬＩＣＥ", PASSWORD)));
    assert_ok(&json.await);
}

// ---------------------------------------------------------------------------------------------
// Rule 6: forwarding headers
// ---------------------------------------------------------------------------------------------

fn with_header(mut request: Request<Body>, name: &'static str, value: &str) -> Request<Body> {
    let name = HeaderName::from_static(name);
    request
        .headers_mut()
        .append(name, HeaderValue::from_str(value).unwrap());
    request
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let h = Harness::with(
        |layer| layer.trusted_proxies(["10.0.0.0/8"]).unwrap(),
        passwords,
    );
    let peer = "203.0.113.50";
    // The peer claims to forward a new client every time: it is still one client.
    for n in 0..6 {
        let request = from(peer, login_form("alice", WRONG));
        let request = with_header(request, "x-forwarded-for", &client(n));
        let request = with_header(request, "forwarded", &format!("for={}", client(100 + n)));
        assert_wrong_password(&h.send(request).await);
    }
    let request = with_header(
        from(peer, login_form("alice", PASSWORD)),
        "x-forwarded-for",
        "10.9.9.9",
    );
    assert_limited(&h.send(request).await, 1);
    let request = with_header(
        from(peer, login_form("alice", PASSWORD)),
        "forwarded",
        "for=192.0.2.1",
    );
    assert_limited(&h.send(request).await, 1);
    // Control: a different peer forwarding the same addresses is a different client.
    let request = from("203.0.113.51", login_form("alice", PASSWORD));
    assert_ok(
        &h.send(with_header(request, "x-forwarded-for", &client(0)))
            .await,
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_rightmost_untrusted_entry_is_the_client() {
    let h = Harness::with(
        |layer| layer.trusted_proxies(["10.0.0.0/8"]).unwrap(),
        passwords,
    );
    let proxy = "10.1.2.3";
    let via_proxy = |chain: &str, password: &str| {
        let request = from(proxy, login_form("alice", password));
        with_header(request, "x-forwarded-for", chain)
    };
    // The client wrote the left entries itself; the edge proxy appended 198.51.100.7 and an
    // inner proxy 10.0.0.2. Whatever the client writes, it is 198.51.100.7.
    for n in 0..6 {
        let chain = format!("{}, 198.51.100.7, 10.0.0.2", client(n));
        assert_wrong_password(&h.send(via_proxy(&chain, WRONG)).await);
    }
    assert_limited(&h.send(via_proxy("198.51.100.7", PASSWORD)).await, 1);
    assert_limited(
        &h.send(via_proxy("6.6.6.6, 198.51.100.7", PASSWORD)).await,
        1,
    );
    assert_eq!(
        h.decision("198.51.100.7", Some("alice")),
        limited(LimitReason::ClientAndUsername, SECOND)
    );
    // Controls: another client behind the same proxy, and the proxy itself, are not limited.
    assert_ok(&h.send(via_proxy("198.51.100.8", PASSWORD)).await);
    assert_ok(&h.send(from(proxy, login_form("alice", PASSWORD))).await);

    // `Forwarded` (RFC 7239), with a bracketed IPv6 node and a port, when the proxies write it.
    let h = Harness::with(
        |layer| {
            layer
                .trusted_proxies(["10.0.0.0/8"])
                .unwrap()
                .forwarded_header(ForwardedHeader::Forwarded)
        },
        passwords,
    );
    let forwarded = |node: &str, password: &str| {
        let request = from(proxy, login_form("bob", password));
        with_header(request, "forwarded", &format!("for={node};proto=https"))
    };
    for _ in 0..6 {
        let answer = h.send(forwarded(r#""[2001:db8::7]:4711""#, WRONG)).await;
        assert_wrong_password(&answer);
    }
    assert_limited(&h.send(forwarded("\"[2001:db8::7]\"", PASSWORD)).await, 1);
    assert_ok(&h.send(forwarded("192.0.2.60:8080", PASSWORD)).await);
}

/// nginx and AWS ALB append to `X-Forwarded-For` and pass a client's own `Forwarded` header
/// through: a client writing a new `Forwarded` per request is still one client, and one
/// writing `X-Forwarded-For` entries behind a `Forwarded`-writing proxy too.
#[tokio::test]
async fn only_the_header_the_proxies_write_is_read() {
    for (proxies_write, client_writes) in [
        (ForwardedHeader::XForwardedFor, "forwarded"),
        (ForwardedHeader::Forwarded, "x-forwarded-for"),
    ] {
        let h = Harness::with(
            |layer| {
                layer
                    .trusted_proxies(["10.0.0.0/8"])
                    .unwrap()
                    .forwarded_header(proxies_write)
            },
            passwords,
        );
        let real = "198.51.100.7";
        let appended = match proxies_write {
            ForwardedHeader::Forwarded => format!("for={real}"),
            _ => real.to_owned(),
        };
        let via_proxy = |n: usize, password: &str| {
            let request = from("10.1.2.3", login_form("alice", password));
            let own = match client_writes {
                "forwarded" => format!("for={}", client(n)),
                _ => client(n),
            };
            let request = with_header(request, client_writes, &own);
            with_header(request, proxies_write.as_str(), &appended)
        };
        for n in 0..6 {
            assert_wrong_password(&h.send(via_proxy(n, WRONG)).await);
        }
        assert_limited(&h.send(via_proxy(6, PASSWORD)).await, 1);
        assert_eq!(
            h.decision(real, Some("alice")),
            limited(LimitReason::ClientAndUsername, SECOND),
            "{proxies_write:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Rule 7: a success clears the pair
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_success_clears_the_client_and_username_record() {
    let h = Harness::new();
    let (with_success, without) = ("203.0.113.1", "203.0.113.2");
    for client in [with_success, without] {
        for _ in 0..5 {
            assert_wrong_password(&h.attempt(client, "alice", WRONG).await);
        }
    }
    // Let both clients' rate recover (10 s is 5 failures' worth), then only one logs in.
    h.clock.advance(10 * SECOND);
    assert_ok(&h.attempt(with_success, "alice", PASSWORD).await);
    // Five more failures from each: free again after the success...
    for _ in 0..5 {
        assert_wrong_password(&h.attempt(with_success, "alice", WRONG).await);
    }
    assert_eq!(h.decision(with_success, Some("alice")), Decision::Allow);
    // ...while the client without one went past its free failures at the first of them.
    assert_wrong_password(&h.attempt(without, "alice", WRONG).await);
    assert_limited(&h.attempt(without, "alice", WRONG).await, 1);
    // After the success the count starts again: the sixth goes through, then the wait.
    assert_wrong_password(&h.attempt(with_success, "alice", WRONG).await);
    assert_limited(&h.attempt(with_success, "alice", WRONG).await, 1);
}

// ---------------------------------------------------------------------------------------------
// Rule 8: gRPC
// ---------------------------------------------------------------------------------------------

/// A gRPC call; the scripted service answers with the status in `x-answer`.
fn grpc_call(client: &str, answer: &str) -> Request<Body> {
    // A 5-byte frame header and a protobuf message: no username the limiter could read.
    let message = b"\0\0\0\0\x0d\x0a\x05alice\x12\x04pass";
    let request = Request::post("/auth.Login/Token")
        .header(CONTENT_TYPE, "application/grpc+proto")
        .header("te", "trailers")
        .header("x-answer", answer)
        .body(Body::from(&message[..]))
        .unwrap();
    from(client, request)
}

fn scripted_grpc(headers: &HeaderMap, _: &[u8]) -> Response<Body> {
    match headers["x-answer"].to_str().unwrap() {
        "16" => grpc_answer("16"),
        "0" => grpc_answer("0"),
        "3" => grpc_answer("3"),
        // A streaming answer: the status comes in the trailers, not the headers.
        _ => Response::builder()
            .header(CONTENT_TYPE, GRPC)
            .body(Body::from(&b"\0\0\0\0\0"[..]))
            .unwrap(),
    }
}

#[tokio::test]
async fn grpc_unauthenticated_counts_and_a_limited_call_is_a_trailers_only_resource_exhausted() {
    let h = Harness::with(|layer| layer, scripted_grpc);
    let caller = "203.0.113.80";
    // grpc-status 16 (UNAUTHENTICATED) is a failure: ten get through (the client's burst)...
    for _ in 0..10 {
        let answer = h.send(grpc_call(caller, "16")).await;
        assert_eq!(answer.header("grpc-status"), Some("16"));
    }
    // ...and the eleventh is refused like tonic would: HTTP 200, grpc-status 8, no body.
    let refused = h.send(grpc_call(caller, "16")).await;
    assert_eq!(refused.status, StatusCode::OK);
    assert_eq!(refused.header(CONTENT_TYPE), Some(GRPC));
    assert_eq!(refused.header("grpc-status"), Some("8"), "{refused:?}");
    assert!(refused.header("grpc-message").is_some());
    assert_eq!(refused.header(RETRY_AFTER), Some("2"));
    assert!(refused.body.is_empty());
    assert_eq!(h.seen.calls(), 10);

    // Controls: OK, INVALID_ARGUMENT and a status in the trailers are not failures.
    for (n, status) in ["0", "3", "trailers"].into_iter().enumerate() {
        let other = client(n);
        for _ in 0..15 {
            let answer = h.send(grpc_call(&other, status)).await;
            assert_eq!(answer.status, StatusCode::OK);
            assert_ne!(answer.header("grpc-status"), Some("8"), "{status}");
        }
        assert_eq!(h.decision(&other, None), Decision::Allow, "{status}");
    }
    assert_eq!(h.seen.calls(), 10 + 3 * 15);
}

// ---------------------------------------------------------------------------------------------
// Rule 9: the body limit
// ---------------------------------------------------------------------------------------------

/// A password grant padded with a `note` parameter to exactly `len` bytes.
fn padded_login(len: usize) -> String {
    let start = form(&[
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", WRONG),
    ]);
    let prefix = format!("{start}&note=");
    assert!(prefix.len() < len);
    format!("{prefix}{}", "x".repeat(len - prefix.len()))
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_413_without_calling_the_login() {
    let h = Harness::new();
    let peer = "203.0.113.9";
    let over = padded_login(DEFAULT_BODY_LIMIT + 1);
    let at_limit = padded_login(DEFAULT_BODY_LIMIT);

    let declared = post(FORM, over.clone());
    let declared = with_header(declared, "content-length", &over.len().to_string());
    let too_large = [
        // A declared length over the limit: refused before reading.
        declared,
        // A length that lies: declared small, sent large. Refused while reading.
        with_header(post(FORM, over.clone()), "content-length", "10"),
        // No length: refused once more than the limit has arrived.
        post(FORM, chunked(over.as_bytes(), 1024)),
        post(FORM, over.clone()),
    ];
    for request in too_large {
        let answer = h.send(from(peer, request)).await;
        assert_error(&answer, 413, "invalid_request");
        assert_eq!(answer.header(RETRY_AFTER), None);
    }
    let grpc = Request::post("/auth.Login/Token")
        .header(CONTENT_TYPE, GRPC)
        .body(chunked(over.as_bytes(), 1000))
        .unwrap();
    let answer = h.send(from(peer, grpc)).await;
    assert_eq!(
        (answer.status, answer.header("grpc-status")),
        (StatusCode::OK, Some("8"))
    );
    assert_eq!(h.seen.calls(), 0, "the login never saw an oversized body");

    // Controls: exactly the limit, declared or streamed, reaches the login in full.
    let declared = post(FORM, at_limit.clone());
    let declared = with_header(declared, "content-length", &at_limit.len().to_string());
    for request in [declared, post(FORM, chunked(at_limit.as_bytes(), 1000))] {
        assert_wrong_password(&h.send(from(peer, request)).await);
        assert_eq!(h.seen.last().1, at_limit.as_bytes());
    }

    // A configured limit.
    let small = Harness::with(|layer| layer.body_limit(100), passwords);
    let answer = small.send(from(peer, post(FORM, padded_login(101)))).await;
    assert_error(&answer, 413, "invalid_request");
    assert_wrong_password(&small.send(from(peer, post(FORM, padded_login(100)))).await);
    assert_eq!(small.seen.calls(), 1);
}

// ---------------------------------------------------------------------------------------------
// Rule 10: the body reaches the login unchanged
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_login_gets_the_body_and_headers_byte_for_byte() {
    let h = Harness::new();
    let password = ACCOUNTS[2].1;
    let bodies: [(&str, Vec<u8>); 4] = [
        // Percent-escapes, `+` for space, an escaped `%`, `&`, `=` and UTF-8.
        (
            FORM,
            form(&[
                ("grant_type", "password"),
                ("username", "Élodie"),
                ("password", password),
                ("scope", "a b"),
            ])
            .into_bytes(),
        ),
        // Raw UTF-8 in a form, a parameter the limiter does not know, a charset parameter.
        (
            "application/x-www-form-urlencoded; charset=UTF-8",
            format!("username=ÉLODIE&extra=%%%zz&{}", form(&[("password", password)])).into_bytes(),
        ),
        // JSON escapes, and whitespace the limiter must not normalise away.
        (
            JSON,
            br#" { "username" : "\u00c9lodie", "password" : "p\u00e4ssw\u00f6rd \u20ac \ud83d\ude00 %41+&=", "scope": "a\/b" } "#
                .to_vec(),
        ),
        // Raw UTF-8 JSON.
        (
            "application/json; charset=utf-8",
            json!({"username": "élodie", "password": password})
                .to_string()
                .into_bytes(),
        ),
    ];
    for (n, (content_type, body)) in bodies.iter().enumerate() {
        for chunk in [usize::MAX, 3] {
            let request = if chunk == usize::MAX {
                post(content_type, body.clone())
            } else {
                post(content_type, chunked(body, chunk))
            };
            let request = with_header(request, "x-request-id", &format!("r{n}"));
            let answer = h.send(from("203.0.113.4", request)).await;
            assert_ok(&answer);
            assert_eq!(answer.json()["access_token"], "token-for-élodie");
            let (headers, received) = h.seen.last();
            assert_eq!(received, body.as_slice(), "body {n}, chunks of {chunk}");
            assert_eq!(headers[CONTENT_TYPE], content_type);
            assert_eq!(headers["x-request-id"], format!("r{n}").as_str());
        }
    }
    assert_eq!(h.seen.calls(), 8);
}

// ---------------------------------------------------------------------------------------------
// Rule 11: what counts
// ---------------------------------------------------------------------------------------------

/// A scripted login's one answer.
type Reply = fn() -> Response<Body>;

/// How many of ten attempts by one client for one username reach a login that always answers
/// `reply`: 6 when the answer is a failure (five free, the sixth, then a wait), 10 when not.
async fn reaching(reply: Reply) -> usize {
    let h = Harness::with(|layer| layer, move |_: &HeaderMap, _: &[u8]| reply());
    for _ in 0..10 {
        let answer = h.attempt("203.0.113.5", "alice", WRONG).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        // The inner answer reaches the client as it was, even when the limiter read it.
        let expected = self::answer(reply()).await;
        assert_eq!(answer.status, expected.status);
        assert_eq!(answer.body, expected.body);
    }
    h.seen.calls()
}

fn with_outcome(mut response: Response<Body>, outcome: LoginOutcome) -> Response<Body> {
    response.extensions_mut().insert(outcome);
    response
}

#[tokio::test]
async fn outcomes_are_read_from_the_status_the_oauth_error_and_the_login_outcome() {
    const FAILURE: usize = 6;
    const NOT_A_FAILURE: usize = 10;
    let cases: [(&str, Reply, usize); 12] = [
        (
            "400 invalid_grant",
            || oauth_error(400, "invalid_grant"),
            FAILURE,
        ),
        ("401", || oauth_error(401, "invalid_client"), FAILURE),
        (
            "401, no body",
            || Response::builder().status(401).body(Body::empty()).unwrap(),
            FAILURE,
        ),
        (
            "400 invalid_request",
            || oauth_error(400, "invalid_request"),
            NOT_A_FAILURE,
        ),
        (
            "400 unsupported_grant_type",
            || oauth_error(400, "unsupported_grant_type"),
            NOT_A_FAILURE,
        ),
        (
            "400, not json",
            || {
                Response::builder()
                    .status(400)
                    .body(Body::from("invalid_grant"))
                    .unwrap()
            },
            NOT_A_FAILURE,
        ),
        (
            "200",
            || json_response(200, r#"{"access_token":"t"}"#),
            NOT_A_FAILURE,
        ),
        (
            "503",
            || oauth_error(503, "temporarily_unavailable"),
            NOT_A_FAILURE,
        ),
        ("500", || oauth_error(500, "server_error"), NOT_A_FAILURE),
        // The extension overrides the status.
        (
            "200 + Failure",
            || with_outcome(json_response(200, "{}"), LoginOutcome::Failure),
            FAILURE,
        ),
        (
            "400 invalid_grant + Neither",
            || with_outcome(oauth_error(400, "invalid_grant"), LoginOutcome::Neither),
            NOT_A_FAILURE,
        ),
        (
            "401 + Success",
            || with_outcome(oauth_error(401, "invalid_grant"), LoginOutcome::Success),
            NOT_A_FAILURE,
        ),
    ];
    for (name, reply, expected) in cases {
        assert_eq!(reaching(reply).await, expected, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Rule 12: store errors
// ---------------------------------------------------------------------------------------------

/// A store that is down (until `up` is set, then it decides with `memory`), answering at once
/// (`boxed: false`) or later, like a network store.
#[derive(Default)]
struct DownStore {
    boxed: bool,
    calls: AtomicUsize,
    up: std::sync::atomic::AtomicBool,
    memory: MemoryLimiterStore,
}

impl DownStore {
    fn fail<T: Send + 'static>(&self) -> StoreFuture<T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.boxed {
            StoreFuture::boxed(async { Err(StoreError::new("connection refused")) })
        } else {
            StoreFuture::ready(Err(StoreError::new("connection refused")))
        }
    }
}

impl LimiterStore for DownStore {
    fn check(&self, _: &LoginKey<'_>, _: u64) -> StoreFuture<Decision> {
        self.fail()
    }

    fn attempt(&self, key: &LoginKey<'_>, now: u64) -> StoreFuture<Decision> {
        if self.up.load(Ordering::SeqCst) {
            self.calls.fetch_add(1, Ordering::SeqCst);
            return self.memory.attempt(key, now);
        }
        self.fail()
    }

    fn succeeded(&self, key: &LoginKey<'_>, now: u64) -> StoreFuture<()> {
        if self.up.load(Ordering::SeqCst) {
            self.calls.fetch_add(1, Ordering::SeqCst);
            return self.memory.succeeded(key, now);
        }
        self.fail()
    }

    fn refund(&self, _: &LoginKey<'_>, _: u64) -> StoreFuture<()> {
        self.fail()
    }
}

fn down(boxed: bool, policy: Option<StoreErrorPolicy>) -> (Login, Seen, Arc<DownStore>, Clock) {
    let store = Arc::new(DownStore {
        boxed,
        ..DownStore::default()
    });
    let clock = Clock::new();
    let mut layer = RateLimitLoginLayer::new(Arc::clone(&store) as Arc<dyn LimiterStore>)
        .clock(clock.system_time());
    if let Some(policy) = policy {
        layer = layer.on_store_error(policy);
    }
    let seen = Seen::default();
    let login = tower::Layer::layer(&layer, inner(&seen, passwords));
    (login, seen, store, clock)
}

/// With the shared store down, logins are limited in the instance's memory with the same
/// policy: the limits degrade to per-instance limits, they never vanish, and no answer depends
/// on the password while the attempt is limited.
#[tokio::test]
async fn a_failing_store_degrades_to_limits_in_process_memory() {
    for boxed in [false, true] {
        let (login, seen, store, clock) = down(boxed, None);
        let attempt = |password: &'static str| {
            let login = login.clone();
            async move {
                let request = from("203.0.113.3", login_form("alice", password));
                answer(login.oneshot(request).await.unwrap()).await
            }
        };
        for n in 1..=6 {
            assert_wrong_password(&attempt(WRONG).await);
            assert_eq!(seen.calls(), n);
        }
        // The seventh attempt waits, right password or not, without reaching the login.
        assert_limited(&attempt(PASSWORD).await, 1);
        assert_limited(&attempt(WRONG).await, 1);
        assert_eq!(seen.calls(), 6);
        // The store was asked once; for a second after its failure the layer does not wait on
        // it again.
        assert_eq!(store.calls.load(Ordering::SeqCst), 1);

        // A second later it is asked again (still down: the fallback keeps counting)...
        clock.advance(SECOND);
        assert_wrong_password(&attempt(WRONG).await);
        assert_eq!(store.calls.load(Ordering::SeqCst), 2);
        assert_limited(&attempt(PASSWORD).await, 2);
        // ...and once it answers, it decides again (it has counted nothing: a fresh start).
        store.up.store(true, Ordering::SeqCst);
        clock.advance(SECOND);
        assert_ok(&attempt(PASSWORD).await);
        // The attempt and its settlement.
        assert_eq!(store.calls.load(Ordering::SeqCst), 4);
    }
}

#[tokio::test]
async fn a_failing_store_answers_503_when_failing_closed() {
    for boxed in [false, true] {
        let (login, seen, _, _) = down(boxed, Some(StoreErrorPolicy::FailClosed));
        let request = from("203.0.113.3", login_form("alice", PASSWORD));
        let answer = answer(login.clone().oneshot(request).await.unwrap()).await;
        assert_error(&answer, 503, "temporarily_unavailable");
        assert_eq!(answer.header(RETRY_AFTER), Some("1"));
        let request = grpc_call("203.0.113.3", "0");
        let grpc = self::answer(login.clone().oneshot(request).await.unwrap()).await;
        assert_eq!(
            (grpc.status, grpc.header("grpc-status")),
            (StatusCode::OK, Some("14"))
        );
        assert_eq!(seen.calls(), 0);
    }
    // Control: failing closed with a working store changes nothing.
    let h = Harness::with(
        |layer| layer.on_store_error(StoreErrorPolicy::FailClosed),
        passwords,
    );
    assert_ok(&h.attempt("203.0.113.3", "alice", PASSWORD).await);
}

// ---------------------------------------------------------------------------------------------
// The peer address
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_request_without_a_peer_address_is_a_500_misconfiguration() {
    let h = Harness::new();
    let answer = h.send(login_form("alice", PASSWORD)).await;
    assert_error(&answer, 500, "server_error");
    let mut grpc = grpc_call("203.0.113.1", "0");
    grpc.extensions_mut().remove::<ClientAddr>();
    let grpc = h.send(grpc).await;
    assert_eq!(grpc.header("grpc-status"), Some("13"));
    assert_eq!(
        h.seen.calls(),
        0,
        "never limited as if every client were one"
    );
    // Control: the same request with an address.
    assert_ok(&h.attempt("203.0.113.1", "alice", PASSWORD).await);
}

#[cfg(feature = "router")]
#[tokio::test]
async fn axum_connect_info_is_the_peer_address_without_its_port() {
    let h = Harness::new();
    let connected = |addr: &str, password: &str| {
        let mut request = login_form("alice", password);
        let addr: SocketAddr = addr.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(addr));
        request
    };
    for port in 40_000..40_006 {
        let answer = h
            .send(connected(&format!("203.0.113.7:{port}"), WRONG))
            .await;
        assert_wrong_password(&answer);
    }
    // Another connection from the same address; the same address as a dual-stack socket
    // reports it; the same address as `ClientAddr`.
    assert_limited(&h.send(connected("203.0.113.7:50000", PASSWORD)).await, 1);
    let mapped = connected("[::ffff:203.0.113.7]:50001", PASSWORD);
    assert_limited(&h.send(mapped).await, 1);
    assert_limited(&h.attempt("::ffff:203.0.113.7", "alice", PASSWORD).await, 1);
    // Control: another address.
    assert_ok(&h.send(connected("203.0.113.8:40000", PASSWORD)).await);
}

// ---------------------------------------------------------------------------------------------
// Rule 13: memory
// ---------------------------------------------------------------------------------------------

/// Feeds `usernames` distinct usernames into a store with the default limits and cap, each
/// failing from `clients_per_username` of 65,536 clients, one millisecond apart (so no failure
/// record expires and every one is live, while no client comes near its rate limit: each is
/// charged about once a minute), and checks the cap every `every` usernames.
///
/// The bound: `len() <= max_entries() == DEFAULT_MAX_ENTRIES` (200,000 pairs, usernames and
/// clients together), whatever the number of keys. By size: a pair is a 40-byte key (`IpAddr`
/// and a `Box<str>`) and a 24-byte record in a hashbrown bucket (+1 control byte, at a load
/// of 7/8 to 7/16) plus the username's heap allocation (~32 bytes for short names): ~100-180
/// bytes. A username is ~60-120 bytes, a client ~35-75. Tables never shrink, so the worst case
/// is every shard's three tables each having grown to the shard's cap (12,500 -> 16,384 buckets):
/// 16 x 16,384 x (65 + 41 + 33) bytes ≈ 36 MB of tables, plus ≤ 200,000 live usernames' heap
/// (~6 MB): about 42 MB, flat.
fn fill(usernames: usize, every: usize, clients_per_username: usize) -> MemoryLimiterStore {
    let store = MemoryLimiterStore::new(LoginLimits::default());
    assert_eq!(store.max_entries(), DEFAULT_MAX_ENTRIES);
    let clients: Vec<IpAddr> = (0..1 << 16).map(|n| ip(&client(n))).collect();
    let mut peak = 0;
    for n in 0..usernames {
        let now = NOW * SECOND + u64::try_from(n).unwrap();
        let username = format!("user{n}");
        for c in 0..clients_per_username {
            let key = LoginKey {
                client: clients[(n + 7 * c) % clients.len()],
                username: Some(&username),
                action: Action::Login,
            };
            let counted = store.attempt(&key, now).into_ready();
            assert_eq!(counted.unwrap().unwrap(), Decision::Allow);
        }
        if n % every == 0 || n + 1 == usernames {
            let len = store.len();
            assert!(
                len <= store.max_entries(),
                "{len} entries after {n} usernames"
            );
            peak = peak.max(len);
        }
    }
    // Far more was offered than fits: the store filled up (so eviction ran) and held its cap.
    assert!(peak >= DEFAULT_MAX_ENTRIES * 3 / 4, "{peak}");
    store
}

#[test]
fn the_memory_store_holds_its_cap_once_full() {
    // 50,000 usernames (200,000 entries) fill the store; 2,000 more go through eviction.
    let store = fill(52_000, 1000, 3);
    // A full store still counts: six failures of a new pair, and it waits.
    let now = NOW * SECOND + 52_000;
    let key = LoginKey {
        client: ip("203.0.113.1"),
        username: Some("user51999"),
        action: Action::Login,
    };
    for _ in 0..6 {
        let counted = store.attempt(&key, now).into_ready().unwrap().unwrap();
        assert_eq!(counted, Decision::Allow);
    }
    let decision = store.check(&key, now).into_ready().unwrap().unwrap();
    assert_eq!(decision, limited(LimitReason::ClientAndUsername, SECOND));
    assert!(store.len() <= DEFAULT_MAX_ENTRIES);
}

/// The store is bounded ("memory stays flat under millions of distinct keys"): 1,000,000 usernames, each
/// failing once from one of 65,536 clients (2,065,536 entries offered), never hold more than
/// `DEFAULT_MAX_ENTRIES`.
#[test]
fn a_million_usernames_never_grow_the_memory_store_past_its_cap() {
    fill(1_000_000, 10_000, 1);
}

// ---------------------------------------------------------------------------------------------
// Rule 14: through the AuthRouter
// ---------------------------------------------------------------------------------------------

/// The real router with a limiter, cheap argon2, one clock for the issuer, the router and the
/// limiter, and two users with [`PASSWORD`].
#[cfg(feature = "router")]
struct Site {
    auth: AuthRouter,
    app: Router,
    store: Arc<MemoryLimiterStore>,
    clock: Clock,
}

#[cfg(feature = "router")]
impl Site {
    async fn new() -> Self {
        let clock = Clock::new();
        let store = Arc::new(MemoryLimiterStore::new(LoginLimits::default()));
        let limiter = RateLimitLoginLayer::new(Arc::clone(&store) as Arc<dyn LimiterStore>)
            .clock(clock.system_time());
        let issuer = TokenIssuer::from_pem(&fixture("ed25519.pkcs8.pem"), ISSUER, AUDIENCE)
            .unwrap()
            .clock(clock.system_time());
        let hasher = PasswordHasher::builder()
            .params(1024, 1, 1)
            .unwrap()
            .build()
            .unwrap();
        let auth = AuthRouter::builder(issuer)
            .hasher(hasher)
            .clock(clock.system_time())
            .rate_limit(limiter)
            .build()
            .unwrap();
        for user in ["alice", "mallory"] {
            auth.create_user(user, PASSWORD, &["user"], &["items:read"])
                .await
                .unwrap();
        }
        Self {
            app: auth.router(),
            auth,
            store,
            clock,
        }
    }

    fn token(
        &self,
        client: &str,
        params: &[(&str, &str)],
    ) -> impl Future<Output = Answer> + Send + use<> {
        let request = from(client, post(FORM, form(params)));
        let app = self.app.clone();
        async move { answer(app.oneshot(request).await.unwrap()).await }
    }

    fn password(
        &self,
        client: &str,
        username: &str,
        password: &str,
    ) -> impl Future<Output = Answer> + Send + use<> {
        let params = [
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ];
        self.token(client, &params)
    }

    fn refresh(&self, client: &str, token: &str) -> impl Future<Output = Answer> + Send + use<> {
        self.token(
            client,
            &[("grant_type", "refresh_token"), ("refresh_token", token)],
        )
    }

    fn decision(&self, client: &str, username: Option<&str>) -> Decision {
        let key = LoginKey {
            client: ip(client),
            username,
            action: Action::Login,
        };
        let check = self.store.check(&key, self.clock.now());
        check.into_ready().unwrap().unwrap()
    }
}

#[cfg(feature = "router")]
fn refresh_token(answer: &Answer) -> String {
    assert_ok(answer);
    answer.json()["refresh_token"].as_str().unwrap().to_owned()
}

#[cfg(feature = "router")]
#[tokio::test]
async fn through_the_router_a_limited_login_is_refused_before_any_hashing() {
    let site = Site::new().await;
    let attacker = "203.0.113.7";
    let start = site.auth.hasher().stats();
    for _ in 0..6 {
        assert_wrong_password(&site.password(attacker, "alice", WRONG).await);
    }
    let after_failures = site.auth.hasher().stats();
    assert_eq!(after_failures.verifications, start.verifications + 6);
    // Limited: 429, and argon2 never runs.
    for password in [PASSWORD, WRONG] {
        assert_limited(&site.password(attacker, "alice", password).await, 1);
    }
    assert_eq!(
        site.auth.hasher().stats(),
        after_failures,
        "no hashing for a 429"
    );
    // Control: the owner from elsewhere logs in, and that runs argon2.
    assert_ok(&site.password("198.51.100.20", "alice", PASSWORD).await);
    assert_eq!(
        site.auth.hasher().stats().verifications,
        after_failures.verifications + 1
    );

    // Unknown usernames fail the same way (a dummy verification each) and count the same.
    let dummies = site.auth.hasher().stats().dummy_verifications;
    let other = "203.0.113.8";
    for _ in 0..6 {
        assert_wrong_password(&site.password(other, "nobody", WRONG).await);
    }
    let before = site.auth.hasher().stats();
    assert_eq!(before.dummy_verifications, dummies + 6);
    assert_limited(&site.password(other, "nobody", WRONG).await, 1);
    assert_eq!(site.auth.hasher().stats(), before);
}

#[cfg(feature = "router")]
#[tokio::test]
async fn through_the_router_wrong_passwords_count_and_malformed_requests_do_not() {
    let site = Site::new().await;
    let peer = "203.0.113.7";
    let start = site.auth.hasher().stats();
    // Twelve malformed requests naming alice: past every free allowance, were they failures.
    let malformed: [&[(&str, &str)]; 3] = [
        &[("grant_type", "password"), ("username", "alice")],
        &[
            ("grant_type", "magic"),
            ("username", "alice"),
            ("password", WRONG),
        ],
        &[("username", "alice"), ("password", WRONG)],
    ];
    for _ in 0..4 {
        for params in malformed {
            let answer = site.token(peer, params).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
            assert_ne!(answer.json()["error"], "invalid_grant");
        }
    }
    assert_eq!(site.decision(peer, Some("alice")), Decision::Allow);
    assert_eq!(site.auth.hasher().stats(), start, "nothing was hashed");
    // Wrong passwords count: five free, the sixth, then a wait.
    for _ in 0..6 {
        assert_wrong_password(&site.password(peer, "alice", WRONG).await);
    }
    assert_limited(&site.password(peer, "alice", PASSWORD).await, 1);
    // The router's 200 is a success: it clears the pair.
    site.clock.advance(SECOND);
    assert_ok(&site.password(peer, "alice", PASSWORD).await);
    assert_eq!(site.decision(peer, Some("alice")), Decision::Allow);
}

#[cfg(feature = "router")]
#[tokio::test]
async fn through_the_router_refresh_failures_count_against_the_client_only() {
    let site = Site::new().await;
    let home = "198.51.100.20";
    let token = refresh_token(&site.password(home, "alice", PASSWORD).await);
    let prober = "203.0.113.9";
    for n in 0..10 {
        let answer = site.refresh(prober, &format!("guess-{n}")).await;
        assert_wrong_password(&answer);
    }
    // The prober is held to the client rate, for refreshes and logins alike...
    assert_limited(&site.refresh(prober, &token).await, 2);
    assert_limited(&site.password(prober, "alice", PASSWORD).await, 2);
    assert_eq!(
        site.decision(prober, None),
        limited(LimitReason::Client, 2 * SECOND)
    );
    // ...but no username was charged: alice's record is clean from anywhere else.
    assert_eq!(site.decision(home, Some("alice")), Decision::Allow);
    assert_eq!(site.decision(&client(0), Some("alice")), Decision::Allow);
    // Controls: her token (unused by the refused refresh) and her password work from home.
    let token = refresh_token(&site.refresh(home, &token).await);
    assert_ok(&site.password(home, "alice", PASSWORD).await);
    // Two seconds later the prober gets one more try.
    site.clock.advance(2 * SECOND);
    assert_ok(&site.refresh(prober, &token).await);
}

/// Regression (found by this suite): the limiter once took `username` from any body, while the
/// router ignores it in a refresh grant: a successful refresh that names someone else's username is counted as
/// that user's successful login, which clears the (client, username) record and the
/// username's run of failures (`MemoryLimiterStore::record_success`). An attacker with any
/// account of their own can so reset a victim's counters between guesses, escaping the
/// username backoff and the NIST lock entirely (only the per-client rate remains).
#[cfg(feature = "router")]
#[tokio::test]
async fn a_refresh_grant_naming_a_username_does_not_clear_its_failures() {
    let site = Site::new().await;
    let mallory = "203.0.113.66";
    let token = refresh_token(&site.password(mallory, "mallory", PASSWORD).await);
    // Twenty-one failures on alice from as many clients: the username now waits.
    for n in 0..21 {
        assert_wrong_password(&site.password(&client(n), "alice", WRONG).await);
    }
    assert_limited(&site.password(&client(100), "alice", WRONG).await, 1);
    site.clock.advance(SECOND);
    // Mallory refreshes her own session and adds `username=alice`. The router ignores the
    // parameter and answers 200...
    let params = [
        ("grant_type", "refresh_token"),
        ("refresh_token", token.as_str()),
        ("username", "alice"),
    ];
    assert_ok(&site.token(mallory, &params).await);
    // ...so the limiter must not take it as alice logging in: her run goes on, and one more
    // failure (the 22nd) means a 2 s wait.
    assert_wrong_password(&site.password(&client(21), "alice", WRONG).await);
    assert_eq!(
        site.decision(&client(101), Some("alice")),
        limited(LimitReason::Username, 2 * SECOND),
        "mallory's refresh reset alice's failures"
    );
}

/// Plain hyper: the layer takes hyper's `Incoming` body off a real connection, and the app
/// gives it the peer address from `accept`. Six wrong passwords reach the login byte for byte,
/// the seventh is a 429.
#[tokio::test]
async fn plain_hyper_connections_are_limited_with_their_incoming_bodies() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;

    let seen = Seen::default();
    let store = Arc::new(MemoryLimiterStore::new(LoginLimits::default()));
    let login = tower::Layer::layer(
        &RateLimitLoginLayer::new(store as Arc<dyn LimiterStore>),
        inner(&seen, passwords),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            let service = tower::ServiceBuilder::new()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ClientAddr(peer.ip()));
                    request
                })
                .service(login.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)),
            );
        }
    });
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let form = "grant_type=password&username=alice&password=wrong";
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let request = Request::post(format!("http://{addr}/token"))
            .header(CONTENT_TYPE, FORM)
            .body(Full::from(form))
            .unwrap();
        let response = client.request(request).await.unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(response.headers()[RETRY_AFTER], "1");
        }
    }
    server.abort();
    assert_eq!(statuses, [400, 400, 400, 400, 400, 400, 429]);
    assert_eq!(seen.calls(), 6);
    assert_eq!(seen.last().1, form.as_bytes());
}

// ---------------------------------------------------------------------------------------------
// Rule 15: attempts in flight together
// ---------------------------------------------------------------------------------------------

/// A login that records each request, then holds it until `gate` opens and refuses it.
fn held_login(seen: &Seen, gate: tokio::sync::watch::Receiver<bool>) -> Inner {
    let seen = seen.clone();
    BoxCloneService::new(service_fn(move |request: Handed| {
        let (seen, mut gate) = (seen.clone(), gate.clone());
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            seen.0.lock().unwrap().push((parts.headers, body));
            gate.wait_for(|open| *open).await.unwrap();
            Ok::<_, Infallible>(oauth_error(400, "invalid_grant"))
        }
    }))
}

/// Sends every `(client, username)` wrong-password attempt at once to a login that holds them
/// all in flight, lets each either reach the login or be refused, then lets the login answer.
/// Returns how many reached it.
async fn in_flight_together(attempts: &[(String, String)]) -> usize {
    let seen = Seen::default();
    let (open, gate) = tokio::sync::watch::channel(false);
    let h = Harness::around(held_login(&seen, gate), seen, |layer| layer);
    let refused = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = attempts
        .iter()
        .map(|(client, username)| {
            let attempt = h.attempt(client, username, WRONG);
            let refused = Arc::clone(&refused);
            tokio::spawn(async move {
                let answer = attempt.await;
                if answer.status == StatusCode::TOO_MANY_REQUESTS {
                    refused.fetch_add(1, Ordering::SeqCst);
                }
                answer.status
            })
        })
        .collect();
    // Every attempt either reaches the held login or is refused without it.
    let mut settled = false;
    for _ in 0..100_000 {
        if h.seen.calls() + refused.load(Ordering::SeqCst) == attempts.len() {
            settled = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(
        settled,
        "attempts neither reached the login nor were refused"
    );
    let reached = h.seen.calls();
    open.send(true).unwrap();
    for task in tasks {
        let status = task.await.unwrap();
        assert!(matches!(status.as_u16(), 400 | 429), "{status}");
    }
    assert_eq!(
        h.seen.calls(),
        reached,
        "a refused attempt reached the login later"
    );
    reached
}

/// The limiter promises a hard stop at or below 100 consecutive failures (NIST SP 800-63B). Were the store only
/// checked before the login and told the outcome after, attempts in flight together would all
/// pass the same check: 150 concurrent guesses for one account would all reach the password
/// check. Each allowed attempt is counted at once, so the rules hold as if the attempts came
/// one by one: 20 free failures for the username and the twenty-first, then its wait.
#[tokio::test]
async fn concurrent_failures_cannot_pass_the_nist_hard_stop() {
    // From 150 clients, so only the username rules apply.
    let attempts: Vec<_> = (0..150).map(|n| (client(n), "alice".to_owned())).collect();
    let reached = in_flight_together(&attempts).await;
    assert!(reached <= usize::try_from(NIST_MAX_FAILURES).unwrap());
    assert_eq!(
        reached, 21,
        "concurrent guesses for one account reached the login"
    );
}

/// The same holds for the pair's free failures and the client's burst.
#[tokio::test]
async fn concurrent_attempts_get_no_more_than_the_free_failures_and_the_burst() {
    let pair: Vec<_> = (0..40)
        .map(|_| ("203.0.113.7".to_owned(), "alice".to_owned()))
        .collect();
    assert_eq!(
        in_flight_together(&pair).await,
        6,
        "five free and the sixth"
    );
    let stuffing: Vec<_> = (0..40)
        .map(|n| ("203.0.113.7".to_owned(), format!("user{n}")))
        .collect();
    assert_eq!(
        in_flight_together(&stuffing).await,
        10,
        "the client's burst"
    );
}

/// Attempts whose callers go away before the answer learned nothing, so they are given back:
/// cancelling requests must not pile failures onto an account without a password check. While
/// they are in flight they count, so they cannot be used to pass the limits either. With a
/// store that answers later, the refund finishes on the runtime after the drop.
#[tokio::test]
async fn attempts_dropped_in_flight_count_while_in_flight_then_are_given_back() {
    for later in [false, true] {
        let seen = Seen::default();
        let (_open, gate) = tokio::sync::watch::channel(false);
        let memory = Arc::new(MemoryLimiterStore::new(LoginLimits::default()));
        let clock = Clock::new();
        let store: Arc<dyn LimiterStore> = if later {
            Arc::new(Later::new(MemoryLimiterStore::new(LoginLimits::default())))
        } else {
            Arc::clone(&memory) as Arc<dyn LimiterStore>
        };
        let login = tower::Layer::layer(
            &RateLimitLoginLayer::new(Arc::clone(&store)).clock(clock.system_time()),
            held_login(&seen, gate),
        );
        let attacker = "203.0.113.7";
        let decision = |store: &Arc<dyn LimiterStore>| {
            let store = Arc::clone(store);
            let now = clock.now();
            async move {
                let key = LoginKey {
                    client: ip(attacker),
                    username: Some("alice"),
                    action: Action::Login,
                };
                store.check(&key, now).await.unwrap()
            }
        };
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let request = from(attacker, login_form("alice", WRONG));
                tokio::spawn(login.clone().oneshot(request))
            })
            .collect();
        while seen.calls() < 6 {
            tokio::task::yield_now().await;
        }
        // In flight, the six count: a seventh waits.
        assert_eq!(
            decision(&store).await,
            limited(LimitReason::ClientAndUsername, SECOND),
            "later: {later}"
        );
        for task in tasks {
            task.abort();
            assert!(task.await.unwrap_err().is_cancelled());
        }
        // Dropped, they are given back (a later store's refunds finish on the runtime).
        for _ in 0..100 {
            if decision(&store).await == Decision::Allow {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(decision(&store).await, Decision::Allow, "later: {later}");
        if !later {
            // Only the client's entry stays, for its verification rate: a verification
            // started is spent, or cancelling would be a way around the rate.
            assert_eq!(memory.len(), 1, "every failure charge was given back");
        }
    }
}

/// A login service that fails (a tower error, not an answer) settles its attempt as neither
/// success nor failure: the failure charges are given back, the verification stays spent.
#[tokio::test]
async fn an_inner_service_error_gives_the_attempt_back() {
    let clock = Clock::new();
    let store = Arc::new(MemoryLimiterStore::new(LoginLimits::default()));
    let layer = RateLimitLoginLayer::new(Arc::clone(&store) as Arc<dyn LimiterStore>)
        .clock(clock.system_time());
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = {
        let calls = Arc::clone(&calls);
        service_fn(move |_: Handed| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<Response<Body>, _>("connection reset") }
        })
    };
    let login = tower::Layer::layer(&layer, failing);
    let attacker = "203.0.113.7";
    for _ in 0..20 {
        let request = from(attacker, login_form("alice", WRONG));
        assert_eq!(
            login.clone().oneshot(request).await.unwrap_err(),
            "connection reset"
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        20,
        "no failure counted: never limited within the verification burst"
    );
    let key = LoginKey {
        client: ip(attacker),
        username: Some("alice"),
        action: Action::Login,
    };
    let decision = store
        .check(&key, clock.now())
        .into_ready()
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            decision,
            Decision::Limit {
                reason: LimitReason::Verifications,
                ..
            }
        ),
        "the burst of verifications is spent: {decision:?}"
    );
    assert_eq!(store.len(), 1, "only the client's entry stays");
}

/// The service's own constructors and accessors, as tower-http's services have them.
#[tokio::test]
async fn the_service_is_built_and_taken_apart_like_tower_https() {
    // `new`: the layer's defaults around the inner service, counting into the store.
    let seen = Seen::default();
    let store = Arc::new(MemoryLimiterStore::new(LoginLimits::default()));
    let mut built = RateLimitLogin::new(
        inner(&seen, passwords),
        Arc::clone(&store) as Arc<dyn LimiterStore>,
    );
    let _: &mut Inner = built.get_mut();
    let _: &Inner = built.get_ref();
    let request = from("203.0.113.7", login_form("alice", WRONG));
    assert_wrong_password(&answer(built.clone().oneshot(request).await.unwrap()).await);
    assert!(!store.is_empty(), "the failure was counted");
    let _: Inner = built.into_inner();

    // `layer`: the layer itself, configured as usual.
    let h = Harness::new();
    let clock = h.clock.clone();
    let layered = tower::Layer::layer(
        &RateLimitLogin::layer(Arc::clone(&h.store) as Arc<dyn LimiterStore>)
            .clock(clock.system_time()),
        inner(&h.seen, passwords),
    );
    for _ in 0..6 {
        let request = from("203.0.113.7", login_form("alice", WRONG));
        assert_wrong_password(&answer(layered.clone().oneshot(request).await.unwrap()).await);
    }
    let request = from("203.0.113.7", login_form("alice", WRONG));
    assert_limited(&answer(layered.oneshot(request).await.unwrap()).await, 1);
    assert_eq!(
        h.seen.calls(),
        6,
        "five free failures and the sixth; the seventh waits"
    );
}
