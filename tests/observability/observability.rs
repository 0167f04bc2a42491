//! Observability: the `tracing` events and `metrics` counters of every rejection family,
//! captured on the test's own thread (a subscriber layer that records each event's target,
//! level and fields, and metrics-util's `DebuggingRecorder` as the thread's local recorder;
//! the tests run on current-thread runtimes, so everything the code under test does happens
//! where they are installed).
//!
//! For each family: the exact counter series and counts, the event's target, level and
//! `reason`; and, over a whole login session, that no captured field holds a token (or any
//! segment of one), a password, a refresh token, an `Authorization` value or a username.

use crate::common;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use metrics_util::debugging::{DebuggingRecorder, Snapshotter};
use serde_json::{Value, json};
use tower::{Layer as _, ServiceExt, service_fn};
use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{Layer, Registry};

use tower_jwt_auth::Algorithm;
use tower_jwt_auth::bearer::BearerAuthLayer;
use tower_jwt_auth::issuer::TokenIssuer;
use tower_jwt_auth::password::{HashingThreads, PasswordHasher};
use tower_jwt_auth::ratelimit::{ClientAddr, LoginLimits, MemoryLimiterStore, RateLimitLoginLayer};
use tower_jwt_auth::require::{RequireRoleLayer, RequireScopeLayer};
use tower_jwt_auth::revocation::{MemoryRevocationStore, RevocationStore};
use tower_jwt_auth::router::AuthRouter;
use tower_jwt_auth::store::StoreErrorPolicy;
use tower_jwt_auth::telemetry::{
    ACCESS_DENIED_TOTAL, LOGIN_RATE_LIMITED_TOTAL, LOGINS_TOTAL, PASSWORD_HASHER_OVERLOADED_TOTAL,
    REFRESH_REUSE_TOTAL, REFRESHES_TOTAL, STORE_ERRORS_TOTAL, TARGET_BEARER, TARGET_PASSWORD,
    TARGET_RATE_LIMIT, TARGET_REQUIRE, TARGET_ROUTER, TARGET_STORE, VERIFICATION_CACHE_TOTAL,
    VERIFICATIONS_TOTAL,
};

use crate::common::answer::answer;
use crate::common::layers::Inner;
use crate::common::metrics::series;
use crate::common::stores::ScriptedRevocation;
use crate::common::{AUDIENCE, ISSUER, NOW, claims, claims_with, fixture, token};

// ---------------------------------------------------------------------------------------------
// Capture
// ---------------------------------------------------------------------------------------------

/// One captured event: its target, level and every field (`message` included) as text.
#[derive(Clone, Debug)]
struct Event {
    target: String,
    level: Level,
    fields: BTreeMap<String, String>,
}

impl Event {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// A subscriber layer that keeps every event.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Event>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber> Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Event {
            target: event.metadata().target().to_owned(),
            level: *event.metadata().level(),
            fields,
        });
    }
}

/// What the code under test logged and counted, since it was installed.
struct Observed {
    events: Events,
    recorder: DebuggingRecorder,
    snapshotter: Snapshotter,
}

/// Keeps the subscriber and the recorder installed on this thread.
type Installed<'a> = (
    metrics::LocalRecorderGuard<'a>,
    tracing::subscriber::DefaultGuard,
);

impl Observed {
    fn new() -> Self {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        Self {
            events: Events::default(),
            recorder,
            snapshotter,
        }
    }

    fn install(&self) -> Installed<'_> {
        let subscriber = Registry::default().with(self.events.clone());
        (
            metrics::set_default_local_recorder(&self.recorder),
            tracing::subscriber::set_default(subscriber),
        )
    }

    /// The crate's counters that moved since the last call, as `name{label=value,…}` → count.
    fn counted(&self) -> BTreeMap<String, u64> {
        common::metrics::counted(&self.snapshotter)
    }

    /// Every event so far; `take` empties the list.
    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.0.lock().unwrap())
    }

    /// (level, reason) of the events with `target` since the last `take`, in order.
    fn reasons(&self, target: &str) -> Vec<(Level, String)> {
        self.take()
            .into_iter()
            .filter(|e| e.target == target)
            .map(|e| {
                let reason = e
                    .field("reason")
                    .unwrap_or_else(|| panic!("no reason: {e:?}"));
                (e.level, reason.to_owned())
            })
            .collect()
    }
}

fn reasons(entries: &[(Level, &str)]) -> Vec<(Level, String)> {
    entries.iter().map(|(l, r)| (*l, (*r).to_owned())).collect()
}

// ---------------------------------------------------------------------------------------------
// The verification cache
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn verification_cache_lookups_are_counted_as_hits_and_misses() {
    let observed = Observed::new();
    let _installed = observed.install();
    let verifier = common::builder().cache(16).unwrap().build().unwrap();
    let layer = BearerAuthLayer::new(verifier.clone());
    let valid = token(Algorithm::ES256, &claims());
    let expired = token(Algorithm::ES256, &claims_with(json!({"exp": NOW - 60})));
    for _ in 0..3 {
        assert_eq!(
            status(&layer, get_with(&[&format!("Bearer {valid}")])).await,
            StatusCode::OK
        );
    }
    let refused = status(&layer, get_with(&[&format!("Bearer {expired}")])).await;
    assert_eq!(refused, StatusCode::UNAUTHORIZED);
    // A direct call is a lookup too.
    assert!(verifier.verify(&valid).is_ok());
    assert_eq!(
        observed.counted(),
        series(&[
            (VERIFICATION_CACHE_TOTAL, "result=hit", 3),
            (VERIFICATION_CACHE_TOTAL, "result=miss", 2),
            (VERIFICATIONS_TOTAL, "result=ok", 3),
            (VERIFICATIONS_TOTAL, "result=failed,reason=expired", 1),
        ])
    );
    let stats = verifier.cache_stats().unwrap();
    assert_eq!((stats.hits(), stats.misses()), (3, 2));
}

// ---------------------------------------------------------------------------------------------
// BearerAuth
// ---------------------------------------------------------------------------------------------

fn get_with(authorization: &[&str]) -> Request<String> {
    let mut request = Request::builder().uri("/");
    for value in authorization {
        request = request.header("authorization", *value);
    }
    request.body(String::new()).unwrap()
}

async fn status(layer: &BearerAuthLayer, request: Request<String>) -> StatusCode {
    let service = layer.layer(Inner::default());
    answer(service.oneshot(request).await.unwrap()).await.status
}

#[tokio::test]
async fn bearer_auth_counts_each_decision_and_logs_each_rejection_with_its_reason() {
    let observed = Observed::new();
    let _installed = observed.install();
    let layer = BearerAuthLayer::new(common::verifier());
    let good = token(Algorithm::HS256, &claims());
    let expired = token(
        Algorithm::HS256,
        &claims_with(json!({"iat": NOW - 900, "nbf": NOW - 900, "exp": NOW - 600})),
    );
    let wrong_issuer = token(
        Algorithm::HS256,
        &claims_with(json!({"iss": "https://evil"})),
    );
    let forged = format!("{}AAAA", &good[..good.len() - 4]);

    let cases = [
        (vec![format!("Bearer {good}")], StatusCode::OK),
        (vec![format!("Bearer {good}")], StatusCode::OK),
        (vec![], StatusCode::UNAUTHORIZED),
        (vec![format!("Bearer {expired}")], StatusCode::UNAUTHORIZED),
        (vec![format!("Bearer {forged}")], StatusCode::UNAUTHORIZED),
        (
            vec![format!("Bearer {wrong_issuer}")],
            StatusCode::UNAUTHORIZED,
        ),
        (vec!["Bearer a.b".to_owned()], StatusCode::UNAUTHORIZED),
        (
            vec!["Bearer not a token".to_owned()],
            StatusCode::BAD_REQUEST,
        ),
        (
            vec![format!("Bearer {good}"), format!("Bearer {good}")],
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (headers, want) in cases {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        assert_eq!(
            status(&layer, get_with(&headers)).await,
            want,
            "{headers:?}"
        );
    }

    // An optional layer lets an anonymous request through, and still refuses a bad token.
    let optional = BearerAuthLayer::new(common::verifier()).optional();
    assert_eq!(status(&optional, get_with(&[])).await, StatusCode::OK);
    let bad = format!("Bearer {expired}");
    assert_eq!(
        status(&optional, get_with(&[&bad])).await,
        StatusCode::UNAUTHORIZED
    );

    assert_eq!(
        observed.counted(),
        series(&[
            (VERIFICATIONS_TOTAL, "result=ok", 2),
            (VERIFICATIONS_TOTAL, "result=anonymous", 1),
            (VERIFICATIONS_TOTAL, "result=failed,reason=missing", 1),
            (VERIFICATIONS_TOTAL, "result=failed,reason=expired", 2),
            (
                VERIFICATIONS_TOTAL,
                "result=failed,reason=invalid_signature",
                1
            ),
            (VERIFICATIONS_TOTAL, "result=failed,reason=wrong_issuer", 1),
            (VERIFICATIONS_TOTAL, "result=failed,reason=malformed", 1),
            (
                VERIFICATIONS_TOTAL,
                "result=failed,reason=invalid_request",
                2
            ),
        ])
    );
    let events: Vec<Event> = observed
        .take()
        .into_iter()
        .filter(|e| e.target == TARGET_BEARER)
        .collect();
    let seen: Vec<(Level, &str, Option<&str>)> = events
        .iter()
        .map(|e| (e.level, e.field("reason").unwrap(), e.field("claim")))
        .collect();
    assert_eq!(
        seen,
        [
            (Level::DEBUG, "missing", None),
            (Level::DEBUG, "expired", Some("exp")),
            (Level::DEBUG, "invalid_signature", None),
            (Level::DEBUG, "wrong_issuer", Some("iss")),
            (Level::DEBUG, "malformed", None),
            (Level::DEBUG, "invalid_request", None),
            (Level::DEBUG, "invalid_request", None),
            (Level::DEBUG, "expired", Some("exp")),
        ]
    );
}

#[tokio::test]
async fn revocation_verdicts_and_store_outages_are_counted_once_and_outages_logged_loudly() {
    let observed = Observed::new();
    let _installed = observed.install();
    let good = format!("Bearer {}", token(Algorithm::HS256, &claims()));
    let with =
        |store: Arc<ScriptedRevocation>| BearerAuthLayer::new(common::verifier()).revocation(store);

    assert_eq!(
        status(
            &with(ScriptedRevocation::answering(Ok(true))),
            get_with(&[&good])
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(
            &with(ScriptedRevocation::answering(Ok(false))),
            get_with(&[&good])
        )
        .await,
        StatusCode::OK
    );
    let down = ScriptedRevocation::answering(Err("connection refused"));
    assert_eq!(
        status(&with(down), get_with(&[&good])).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let open = with(ScriptedRevocation::answering(Err("connection refused")))
        .on_store_error(StoreErrorPolicy::FailOpen);
    assert_eq!(status(&open, get_with(&[&good])).await, StatusCode::OK);

    assert_eq!(
        observed.counted(),
        series(&[
            (VERIFICATIONS_TOTAL, "result=failed,reason=revoked", 1),
            (VERIFICATIONS_TOTAL, "result=ok", 2),
            (VERIFICATIONS_TOTAL, "result=failed,reason=unavailable", 1),
            (STORE_ERRORS_TOTAL, "store=revocation", 2),
        ])
    );
    let events = observed.take();
    let summary: Vec<(&str, Level, &str)> = events
        .iter()
        .filter(|e| e.target.starts_with("tower_jwt_auth"))
        .map(|e| (e.target.as_str(), e.level, e.field("reason").unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            (TARGET_BEARER, Level::DEBUG, "revoked"),
            (TARGET_STORE, Level::ERROR, "store_unavailable"),
            (TARGET_BEARER, Level::WARN, "unavailable"),
            (TARGET_STORE, Level::ERROR, "store_unavailable"),
        ]
    );
    let outages: Vec<&Event> = events.iter().filter(|e| e.target == TARGET_STORE).collect();
    assert_eq!(outages[0].field("store"), Some("revocation"));
    assert!(outages[0].field("message").unwrap().contains("fail closed"));
    assert!(outages[1].field("message").unwrap().contains("fail open"));
    assert!(
        outages[1]
            .field("error")
            .unwrap()
            .contains("connection refused")
    );
}

#[tokio::test]
async fn a_memory_revocation_store_is_counted_like_any_other() {
    let observed = Observed::new();
    let _installed = observed.install();
    let store = Arc::new(MemoryRevocationStore::new().clock(|| NOW));
    store
        .revoke_token(ISSUER, "token-1", NOW + 3600)
        .await
        .unwrap();
    let layer = BearerAuthLayer::new(common::verifier()).revocation(store);
    let revoked = format!("Bearer {}", token(Algorithm::HS256, &claims()));
    let other = format!(
        "Bearer {}",
        token(Algorithm::HS256, &claims_with(json!({"jti": "token-2"})))
    );
    assert_eq!(
        status(&layer, get_with(&[&revoked])).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(&layer, get_with(&[&other])).await, StatusCode::OK);
    assert_eq!(
        observed.counted(),
        series(&[
            (VERIFICATIONS_TOTAL, "result=failed,reason=revoked", 1),
            (VERIFICATIONS_TOTAL, "result=ok", 1),
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// RequireRole, RequireScope
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn role_and_scope_shortfalls_are_counted_by_check_and_logged_with_what_was_required() {
    let observed = Observed::new();
    let _installed = observed.install();
    let scoped = BearerAuthLayer::new(common::verifier()).layer(
        RequireScopeLayer::all(["items:delete"])
            .unwrap()
            .layer(Inner::default()),
    );
    let roled = BearerAuthLayer::new(common::verifier()).layer(
        RequireRoleLayer::any(["auditor"])
            .unwrap()
            .layer(Inner::default()),
    );
    // Without BearerAuth in front there are no claims: 401 `missing` from the check itself.
    let unauthenticated = RequireRoleLayer::any(["admin"])
        .unwrap()
        .layer(Inner::default());
    let good = format!("Bearer {}", token(Algorithm::HS256, &claims()));

    let denied = scoped.oneshot(get_with(&[&good])).await.unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    for _ in 0..2 {
        let denied = roled.clone().oneshot(get_with(&[&good])).await.unwrap();
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    }
    let anonymous = unauthenticated.oneshot(get_with(&[&good])).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(
        observed.counted(),
        series(&[
            (VERIFICATIONS_TOTAL, "result=ok", 3),
            (
                ACCESS_DENIED_TOTAL,
                "check=scope,reason=insufficient_scope",
                1
            ),
            (
                ACCESS_DENIED_TOTAL,
                "check=role,reason=insufficient_scope",
                2
            ),
            (ACCESS_DENIED_TOTAL, "check=role,reason=missing", 1),
        ])
    );
    let events: Vec<Event> = observed
        .take()
        .into_iter()
        .filter(|e| e.target == TARGET_REQUIRE)
        .collect();
    let seen: Vec<(Level, &str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.level,
                e.field("reason").unwrap(),
                e.field("check").unwrap(),
                e.field("required").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                Level::DEBUG,
                "insufficient_scope",
                "scope",
                r#"["items:delete"]"#
            ),
            (Level::DEBUG, "insufficient_scope", "role", r#"["auditor"]"#),
            (Level::DEBUG, "insufficient_scope", "role", r#"["auditor"]"#),
            (Level::DEBUG, "missing", "role", r#"["admin"]"#),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// RateLimitLogin
// ---------------------------------------------------------------------------------------------

/// A login request from `client` for `username`, with a password that must never be logged.
fn login_attempt(client: &str, username: &str) -> Request<Full<Bytes>> {
    let body = format!("grant_type=password&username={username}&password=hunter2-guess");
    let mut request = Request::post("/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::from(body))
        .unwrap();
    request
        .extensions_mut()
        .insert(ClientAddr(client.parse::<IpAddr>().unwrap()));
    request
}

/// Every login fails (401).
async fn refuse(_: Request<Full<Bytes>>) -> Result<Response<String>, Infallible> {
    Ok(Response::builder().status(401).body(String::new()).unwrap())
}

async fn attempt(limits: &LoginLimits, tries: &[(&str, &str)]) -> Vec<u16> {
    let layer = RateLimitLoginLayer::new(Arc::new(MemoryLimiterStore::new(limits.clone())));
    let login = layer.layer(service_fn(refuse));
    let mut statuses = Vec::new();
    for (client, username) in tries {
        let response = login
            .clone()
            .oneshot(login_attempt(client, username))
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn each_limit_is_counted_by_name_and_an_account_lock_is_a_warning() {
    let observed = Observed::new();
    let _installed = observed.install();
    let hour = Duration::from_secs(3600);
    let a = "203.0.113.7";

    // (client, username): five free failures, the seventh attempt waits.
    let pair = attempt(&LoginLimits::default(), &[(a, "alice"); 7]).await;
    assert_eq!(pair, [401, 401, 401, 401, 401, 401, 429]);
    // Username across clients: one free failure, then the next client waits too.
    let by_user = LoginLimits::default().per_username(1, hour, hour).unwrap();
    let user = attempt(
        &by_user,
        &[(a, "bob"), ("198.51.100.1", "bob"), ("198.51.100.2", "bob")],
    )
    .await;
    assert_eq!(user, [401, 401, 429]);
    // Account lock after two failures.
    let lock = LoginLimits::default().lock_account(2, hour).unwrap();
    assert_eq!(attempt(&lock, &[(a, "carol"); 3]).await, [401, 401, 429]);
    // The client across usernames: a burst of two.
    let client = LoginLimits::default().per_client(1, hour, 2).unwrap();
    let spread = attempt(&client, &[(a, "d1"), (a, "d2"), (a, "d3")]).await;
    assert_eq!(spread, [401, 401, 429]);

    assert_eq!(
        observed.counted(),
        series(&[
            (LOGIN_RATE_LIMITED_TOTAL, "limit=client_and_username", 1),
            (LOGIN_RATE_LIMITED_TOTAL, "limit=username", 1),
            (LOGIN_RATE_LIMITED_TOTAL, "limit=account_locked", 1),
            (LOGIN_RATE_LIMITED_TOTAL, "limit=client", 1),
        ])
    );
    let events: Vec<Event> = observed
        .take()
        .into_iter()
        .filter(|e| e.target == TARGET_RATE_LIMIT)
        .collect();
    let seen: Vec<(Level, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.level,
                e.field("reason").unwrap(),
                e.field("client").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Level::INFO, "client_and_username", a),
            (Level::INFO, "username", "198.51.100.2"),
            (Level::WARN, "account_locked", a),
            (Level::INFO, "client", a),
        ]
    );
    for event in &events {
        assert!(
            event
                .field("retry_after_secs")
                .unwrap()
                .parse::<u64>()
                .unwrap()
                >= 1
        );
    }
}

#[tokio::test]
async fn oversized_bodies_missing_peers_and_limiter_outages_are_logged_with_their_reason() {
    let observed = Observed::new();
    let _installed = observed.install();
    let layer = RateLimitLoginLayer::new(Arc::new(MemoryLimiterStore::new(LoginLimits::default())));
    let login = layer.layer(service_fn(refuse));

    let mut big = login_attempt("203.0.113.7", "alice");
    *big.body_mut() = Full::from(vec![b'a'; 9000]);
    assert_eq!(login.clone().oneshot(big).await.unwrap().status(), 413);
    let mut anonymous = login_attempt("203.0.113.7", "alice");
    anonymous.extensions_mut().remove::<ClientAddr>();
    assert_eq!(login.oneshot(anonymous).await.unwrap().status(), 500);

    assert_eq!(
        observed.reasons(TARGET_RATE_LIMIT),
        reasons(&[
            (Level::DEBUG, "body_too_large"),
            (Level::ERROR, "no_peer_address")
        ])
    );
    assert_eq!(
        observed.counted(),
        BTreeMap::new(),
        "neither is a rate limit"
    );
}

// ---------------------------------------------------------------------------------------------
// The login router
// ---------------------------------------------------------------------------------------------

const USERNAME: &str = "alice-observed";
const PASSWORD: &str = "correct horse battery staple";
const WRONG: &str = "Tr0ub4dor&3-wrong";

struct App {
    app: Router,
}

impl App {
    async fn new() -> Self {
        Self::with(
            PasswordHasher::builder()
                .params(1024, 1, 1)
                .unwrap()
                .build()
                .unwrap(),
        )
        .await
    }

    /// The router with a login rate limiter in front of `/token` (which reads the username
    /// and password too), a protected `/me`, and one user.
    async fn with(hasher: PasswordHasher) -> Self {
        let issuer =
            TokenIssuer::from_pem(&fixture("ed25519.pkcs8.pem"), ISSUER, AUDIENCE).unwrap();
        let limiter =
            RateLimitLoginLayer::new(Arc::new(MemoryLimiterStore::new(LoginLimits::default())));
        let auth = AuthRouter::builder(issuer)
            .hasher(hasher)
            .rate_limit(limiter)
            .build()
            .unwrap();
        auth.create_user(USERNAME, PASSWORD, &["user"], &["items:read"])
            .await
            .unwrap();
        let app = Router::new()
            .route("/me", get(|| async { "me" }))
            .route_layer(auth.bearer_layer())
            .nest("/auth", auth.router());
        Self { app }
    }

    async fn send(&self, mut request: Request<Body>) -> (StatusCode, Value) {
        request
            .extensions_mut()
            .insert(ClientAddr("192.0.2.10".parse::<IpAddr>().unwrap()));
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn token(&self, params: &[(&str, &str)]) -> (StatusCode, Value) {
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let request = Request::post("/auth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap();
        self.send(request).await
    }

    async fn login(&self, username: &str, password: &str) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .await
    }

    async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    async fn me(&self, access_token: &str) -> StatusCode {
        let request = Request::get("/me")
            .header("authorization", format!("Bearer {access_token}"))
            .body(Body::empty())
            .unwrap();
        self.send(request).await.0
    }
}

fn text(value: &Value, member: &str) -> String {
    value[member].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn logins_refreshes_and_their_failures_are_counted_by_the_answers_error_code() {
    let observed = Observed::new();
    let _installed = observed.install();
    let app = App::new().await;

    let (ok, tokens) = app.login(USERNAME, PASSWORD).await;
    assert_eq!(ok, StatusCode::OK);
    assert_eq!(app.login(USERNAME, WRONG).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.login("nobody-here", WRONG).await.0,
        StatusCode::BAD_REQUEST
    );
    let (status, body) = app
        .token(&[
            ("grant_type", "password"),
            ("username", USERNAME),
            ("password", PASSWORD),
            ("scope", "items:write"),
        ])
        .await;
    assert_eq!(
        (status, text(&body, "error").as_str()),
        (StatusCode::BAD_REQUEST, "invalid_scope")
    );
    // A client secret where only public clients exist: 401 invalid_client.
    let (status, _) = app
        .token(&[
            ("grant_type", "password"),
            ("username", USERNAME),
            ("password", PASSWORD),
            ("client_id", "web"),
            ("client_secret", "s3cret-s3cret"),
        ])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login(USERNAME, "").await.0, StatusCode::BAD_REQUEST);
    // No supported grant type: logged, counted under neither grant.
    assert_eq!(
        app.token(&[("grant_type", "client_credentials")]).await.0,
        StatusCode::BAD_REQUEST
    );

    let (ok, rotated) = app.refresh(&text(&tokens, "refresh_token")).await;
    assert_eq!(ok, StatusCode::OK);
    assert_eq!(
        app.refresh("not-a-refresh-token").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.me(&text(&rotated, "access_token")).await,
        StatusCode::OK
    );

    assert_eq!(
        observed.counted(),
        series(&[
            (LOGINS_TOTAL, "result=ok", 1),
            (LOGINS_TOTAL, "result=failed,reason=invalid_grant", 2),
            (LOGINS_TOTAL, "result=failed,reason=invalid_scope", 1),
            (LOGINS_TOTAL, "result=failed,reason=invalid_client", 1),
            (LOGINS_TOTAL, "result=failed,reason=invalid_request", 1),
            (REFRESHES_TOTAL, "result=ok", 1),
            (REFRESHES_TOTAL, "result=failed,reason=invalid_grant", 1),
            (VERIFICATIONS_TOTAL, "result=ok", 1),
        ])
    );
    let events: Vec<Event> = observed
        .take()
        .into_iter()
        .filter(|e| e.target == TARGET_ROUTER && e.level == Level::DEBUG)
        .collect();
    let seen: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.field("reason").unwrap(),
                e.field("endpoint").unwrap(),
                e.field("grant").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("invalid_grant", "token", "password"),
            ("invalid_grant", "token", "password"),
            ("invalid_scope", "token", "password"),
            ("invalid_client", "token", "password"),
            ("invalid_request", "token", "password"),
            ("unsupported_grant_type", "token", "other"),
            ("invalid_grant", "token", "refresh_token"),
        ]
    );
}

#[tokio::test]
async fn a_replayed_refresh_token_is_counted_and_warned_about_with_user_and_session() {
    let observed = Observed::new();
    let _installed = observed.install();
    let app = App::new().await;
    let (_, tokens) = app.login(USERNAME, PASSWORD).await;
    let first = text(&tokens, "refresh_token");
    let (ok, rotated) = app.refresh(&first).await;
    assert_eq!(ok, StatusCode::OK);
    observed.counted();
    observed.take();

    // The replay ends the session: the rotated token stops working too.
    assert_eq!(app.refresh(&first).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.refresh(&text(&rotated, "refresh_token")).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.me(&text(&rotated, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );

    assert_eq!(
        observed.counted(),
        series(&[
            (REFRESH_REUSE_TOTAL, "", 1),
            (REFRESHES_TOTAL, "result=failed,reason=invalid_grant", 2),
            (VERIFICATIONS_TOTAL, "result=failed,reason=revoked", 1),
        ])
    );
    let warnings: Vec<Event> = observed
        .take()
        .into_iter()
        .filter(|e| e.level == Level::WARN)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let warning = &warnings[0];
    assert_eq!(warning.target, TARGET_ROUTER);
    assert_eq!(warning.field("reason"), Some("refresh_reuse"));
    let claims = decode_claims(&text(&rotated, "access_token"));
    assert_eq!(warning.field("user"), claims["sub"].as_str());
    assert_eq!(warning.field("sid"), claims["sid"].as_str());
}

fn decode_claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// As `tests/router/router.rs` makes the hasher busy: hashing on tokio's blocking pool, one blocking
/// thread, held by the test, so a login's argon2 task stays queued in the hasher's only place
/// and the next login is refused.
#[test]
fn a_hasher_at_capacity_is_counted_and_warned_about() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let observed = Observed::new();
    let _installed = observed.install();
    runtime.block_on(async {
        let hasher = PasswordHasher::builder()
            .params(1024, 1, 1)
            .unwrap()
            .threads(HashingThreads::BlockingPool)
            .max_concurrent(1)
            .unwrap()
            .max_queued(0)
            .build()
            .unwrap();
        let app = App::with(hasher).await;
        observed.take();
        let hold = common::BlockingHold::start();

        let mut queued = Box::pin(app.login(USERNAME, PASSWORD));
        assert!(futures_poll_once(&mut queued).await.is_pending());
        let (status, body) = app.login(USERNAME, PASSWORD).await;
        assert_eq!(
            (status, text(&body, "error").as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
        );

        hold.release().await;
        assert_eq!(queued.await.0, StatusCode::OK);
    });
    assert_eq!(
        observed.counted(),
        series(&[
            (PASSWORD_HASHER_OVERLOADED_TOTAL, "", 1),
            (
                LOGINS_TOTAL,
                "result=failed,reason=temporarily_unavailable",
                1
            ),
            (LOGINS_TOTAL, "result=ok", 1),
        ])
    );
    let loud: Vec<(String, Level, String)> = observed
        .take()
        .into_iter()
        .filter(|e| e.level < Level::INFO)
        .map(|e| {
            let reason = e.field("reason").unwrap().to_owned();
            (e.target, e.level, reason)
        })
        .collect();
    assert_eq!(
        loud,
        [(
            TARGET_PASSWORD.to_owned(),
            Level::WARN,
            "overloaded".to_owned()
        )]
    );
}

/// Polls `future` once.
async fn futures_poll_once<F: std::future::Future + Unpin>(
    future: &mut F,
) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *future).poll(cx)))
        .await
}

// ---------------------------------------------------------------------------------------------
// Secrets never reach an event
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn no_event_field_holds_a_token_a_password_a_refresh_token_or_a_username() {
    let observed = Observed::new();
    let _installed = observed.install();
    let app = App::new().await;

    // A whole session, with every failure a careless log line would reveal something in.
    let (_, tokens) = app.login(USERNAME, PASSWORD).await;
    let access = text(&tokens, "access_token");
    let refresh = text(&tokens, "refresh_token");
    app.login(USERNAME, WRONG).await;
    app.login("someone-else", WRONG).await;
    app.me(&access).await;
    app.me(&format!("{access}x")).await;
    let (_, rotated) = app.refresh(&refresh).await;
    app.refresh(&refresh).await; // replay: the session ends
    app.me(&text(&rotated, "access_token")).await;
    let logout = Request::post("/auth/logout")
        .header(
            "authorization",
            format!("Bearer {}", text(&rotated, "access_token")),
        )
        .body(Body::empty())
        .unwrap();
    app.send(logout).await;

    let events = observed.take();
    assert!(events.len() >= 8, "the session was logged: {events:?}");
    let mut secrets = vec![
        PASSWORD.to_owned(),
        WRONG.to_owned(),
        USERNAME.to_owned(),
        "someone-else".to_owned(),
        refresh.clone(),
        text(&rotated, "refresh_token"),
        "Bearer ".to_owned(),
    ];
    for token in [&access, &text(&rotated, "access_token")] {
        secrets.extend(token.split('.').map(str::to_owned));
    }
    for event in &events {
        for (name, value) in &event.fields {
            for secret in &secrets {
                assert!(
                    !value.contains(secret.as_str()),
                    "{}: field {name} = {value:?} holds {secret:?}",
                    event.target
                );
            }
        }
    }
}
