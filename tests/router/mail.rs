//! Account mail over HTTP (in-process, `oneshot`): `POST /password/forgot` answers the same
//! whoever it names, a mailed reset link works once, within its lifetime, until a newer one or
//! a password change replaces it, and ends every session; e-mail verification holds back
//! logins until the mailed link is used. The app's own `Mailer` collects the messages here; the
//! SMTP path runs against a real `aiosmtpd` at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_jwt_auth::Claims;
use tower_jwt_auth::issuer::TokenIssuer;
use tower_jwt_auth::mail::{MailError, MailFuture, Mailer, Message};
use tower_jwt_auth::password::PasswordHasher;
use tower_jwt_auth::ratelimit::{ClientAddr, LoginLimits, MemoryLimiterStore, RateLimitLoginLayer};
use tower_jwt_auth::router::{
    AuthRouter, AuthRouterBuilder, MAIL_INTERVAL, Registration, UserChange,
};

use crate::common::answer::{Answer, answer};

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a new password, long enough";
const PUBLIC_URL: &str = "https://app.example";
const RESET_LINK: &str = "https://app.example/reset-password";
const VERIFY_LINK: &str = "https://app.example/verify-email";

/// The application's mailer: keeps what it is given (or refuses everything).
#[derive(Default)]
struct Outbox {
    sent: Mutex<Vec<Message>>,
    refuse: bool,
}

impl Mailer for Outbox {
    fn send(&self, message: Message) -> MailFuture {
        if self.refuse {
            return Box::pin(std::future::ready(Err(MailError::new("relay refused"))));
        }
        self.sent.lock().unwrap().push(message);
        Box::pin(std::future::ready(Ok(())))
    }
}

impl Outbox {
    fn sent(&self) -> Vec<Message> {
        self.sent.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) for at least `count` messages; all of them.
    async fn wait_for(&self, count: usize) -> Vec<Message> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let sent = self.sent();
            if sent.len() >= count {
                return sent;
            }
            assert!(Instant::now() < deadline, "{} of {count} mails", sent.len());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits for message number `index` (from 0) and answers its link's token.
    async fn token(&self, index: usize, link: &str) -> String {
        let message = self.wait_for(index + 1).await.swap_remove(index);
        token_in(&message.body, link)
    }
}

/// The `token` of the link in `body` that starts with `link`.
#[track_caller]
fn token_in(body: &str, link: &str) -> String {
    let start = body.find(&format!("{link}?token=")).unwrap_or_else(|| {
        panic!("no {link} link in {body:?}");
    }) + link.len()
        + "?token=".len();
    let token: String = body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    assert_eq!(token.len(), 43, "256 bits, base64url: {token}");
    token
}

/// The router at `/auth` with mail and registration, on a clock the test moves.
struct App {
    auth: AuthRouter,
    app: Router,
    outbox: Arc<Outbox>,
    offset: Arc<AtomicU64>,
}

fn cheap_hasher() -> PasswordHasher {
    PasswordHasher::builder()
        .params(1024, 1, 1)
        .unwrap()
        .build()
        .unwrap()
}

impl App {
    fn memory() -> Self {
        Self::with(Outbox::default(), |builder| builder)
    }

    fn with(
        outbox: Outbox,
        configure: impl FnOnce(AuthRouterBuilder) -> AuthRouterBuilder,
    ) -> Self {
        let outbox = Arc::new(outbox);
        let offset = Arc::new(AtomicU64::new(0));
        let clock = Arc::clone(&offset);
        let issuer = TokenIssuer::generate_ed25519("https://issuer.test", "api").unwrap();
        let builder = AuthRouter::builder(issuer)
            .hasher(cheap_hasher())
            .clock(move || SystemTime::now() + Duration::from_secs(clock.load(Ordering::SeqCst)))
            .registration(Registration {
                roles: vec!["user".to_owned()],
                scopes: vec!["items:read".to_owned()],
            })
            .mail(Arc::clone(&outbox) as Arc<dyn Mailer>, PUBLIC_URL)
            .unwrap();
        let auth = configure(builder).build().unwrap();
        let me = |claims: Claims| async move { claims.subject().unwrap_or("").to_owned() };
        let app = Router::new()
            .route("/api/me", get(me))
            .route_layer(auth.bearer_layer())
            .nest("/auth", auth.router());
        let app = crate::common::openapi::documented(&auth, app);
        Self {
            auth,
            app,
            outbox,
            offset,
        }
    }

    /// On an SQLite database of its own.
    #[cfg(feature = "sqlite")]
    async fn sqlite(configure: impl FnOnce(AuthRouterBuilder) -> AuthRouterBuilder) -> Self {
        use tower_jwt_auth::sql::{Database, ReplicaOptions};
        let db = Database::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        let revocations = db.revocations(ReplicaOptions::default()).await.unwrap();
        Self::with(Outbox::default(), |builder| {
            configure(
                builder
                    .users(Arc::new(db.users()))
                    .refresh_store(Arc::new(db.refresh()))
                    .revocation_store(Arc::new(revocations)),
            )
        })
    }

    /// Moves the router's clock on.
    fn advance(&self, by: Duration) {
        self.offset.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    async fn send(&self, mut request: Request<Body>) -> Answer {
        request
            .extensions_mut()
            .insert(ClientAddr("192.0.2.20".parse().unwrap()));
        answer(self.app.clone().oneshot(request).await.unwrap()).await
    }

    async fn post(&self, path: &str, body: &Value, bearer: Option<&str>) -> Answer {
        let mut request = Request::post(path).header(CONTENT_TYPE, "application/json");
        if let Some(token) = bearer {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(Body::from(body.to_string())).unwrap())
            .await
    }

    async fn register(&self, name: &str, email: Option<&str>) -> Answer {
        let mut body = json!({"username": name, "password": PASSWORD});
        if let Some(email) = email {
            body["email"] = json!(email);
        }
        self.post("/auth/register", &body, None).await
    }

    async fn login(&self, name: &str, password: &str) -> Answer {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "password"),
                ("username", name),
                ("password", password),
            ])
            .finish();
        let request = Request::post("/auth/token")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        self.send(request).await
    }

    /// (access, refresh) of a successful login.
    async fn session(&self, name: &str, password: &str) -> (String, String) {
        let answer = self.login(name, password).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        let body = answer.json();
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    async fn refresh(&self, token: &str) -> StatusCode {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("grant_type", "refresh_token"), ("refresh_token", token)])
            .finish();
        let request = Request::post("/auth/token")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        self.send(request).await.status
    }

    async fn api(&self, access: &str) -> StatusCode {
        let request = Request::get("/api/me")
            .header(AUTHORIZATION, format!("Bearer {access}"))
            .body(Body::empty())
            .unwrap();
        self.send(request).await.status
    }

    async fn forgot(&self, body: Value) -> Answer {
        self.post("/auth/password/forgot", &body, None).await
    }

    async fn reset(&self, token: &str, password: &str) -> Answer {
        let body = json!({"token": token, "new_password": password});
        self.post("/auth/password/reset", &body, None).await
    }
}

#[track_caller]
fn assert_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status.as_u16(), status, "{answer:?}");
    assert_eq!(answer.json()["error"], code, "{answer:?}");
}

// ---------------------------------------------------------------------------------------------
// POST /password/forgot

#[tokio::test]
async fn forgot_answers_the_same_whoever_it_names() {
    let app = App::memory();
    assert_eq!(
        app.register("ann", Some("ann@example.test")).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.register("dave", Some("dave@example.test")).await.status,
        StatusCode::CREATED
    );
    assert_eq!(app.register("bob", None).await.status, StatusCode::CREATED);
    let carol = app
        .register("carol", Some("carol@example.test"))
        .await
        .json();
    let disable = UserChange {
        disabled: Some(true),
        ..UserChange::default()
    };
    app.auth
        .users()
        .update(carol["sub"].as_str().unwrap(), disable, None)
        .await
        .unwrap();

    let requests = [
        json!({"email": "ANN@Example.test"}),
        json!({"email": "nobody@example.test"}),
        json!({"username": "Dave"}),
        json!({"username": "nobody"}),
        json!({"username": "bob"}),
        json!({"email": "carol@example.test"}),
        json!({"username": "ann"}),
    ];
    let mut answers = Vec::new();
    for body in &requests {
        answers.push(app.forgot(body.clone()).await);
    }
    let first = answers[0].observable();
    assert_eq!(first.0, StatusCode::ACCEPTED, "{:?}", answers[0]);
    for (answer, body) in answers.iter().zip(&requests) {
        assert_eq!(answer.observable(), first, "{body}");
    }
    assert_eq!(answers[0].header("cache-control"), Some("no-store"));

    // Mail for the two enabled accounts with an address; the second request for ann came
    // within the interval and sent nothing. (Every job has run once the known ones arrived
    // and a moment passed: they need no I/O here.)
    let sent = app.outbox.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent_after = app.outbox.sent();
    assert_eq!(sent_after.len(), 2, "{sent_after:?}");
    let mut recipients: Vec<_> = sent.iter().map(|m| m.to.as_str()).collect();
    recipients.sort_unstable();
    assert_eq!(recipients, ["ann@example.test", "dave@example.test"]);
    let ann = sent.iter().find(|m| m.to == "ann@example.test").unwrap();
    assert_eq!(ann.subject, "Reset your password");
    assert!(ann.body.starts_with("Hello ann,"), "{}", ann.body);
    assert!(ann.body.contains("within 30 minutes"), "{}", ann.body);
    token_in(&ann.body, RESET_LINK);
}

#[tokio::test]
async fn forgot_refuses_malformed_bodies_and_a_failing_mailer_changes_nothing() {
    let app = App::memory();
    for body in [
        json!({}),
        json!({"email": "a@b.example", "username": "a"}),
        json!({"email": "a@b.example", "extra": 1}),
        json!({"email": 7}),
    ] {
        assert_error(&app.forgot(body).await, 400, "invalid_request");
    }
    let request = Request::post("/auth/password/forgot")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("email=a%40b.example"))
        .unwrap();
    assert_error(&app.send(request).await, 400, "invalid_request");

    let refusing = App::with(
        Outbox {
            refuse: true,
            ..Outbox::default()
        },
        |builder| builder,
    );
    refusing.register("ann", Some("ann@example.test")).await;
    let answer = refusing.forgot(json!({"username": "ann"})).await;
    assert_eq!(
        answer.observable(),
        app.forgot(json!({"username": "x"})).await.observable()
    );
    assert!(!refusing.session("ann", PASSWORD).await.0.is_empty());
}

// ---------------------------------------------------------------------------------------------
// POST /password/reset

async fn a_reset_link_works_once_and_ends_every_session(app: App) {
    app.register("ann", Some("ann@example.test")).await;
    let (access, refresh) = app.session("ann", PASSWORD).await;
    assert_eq!(
        app.forgot(json!({"email": "ann@example.test"}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let token = app.outbox.token(0, RESET_LINK).await;

    // A new password that breaks the policy is refused, and the link stays good.
    assert_error(&app.reset(&token, "short").await, 400, "invalid_request");
    let reset = app.reset(&token, NEW_PASSWORD).await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT, "{reset:?}");

    // Every session ended, the old password is refused, the new one works.
    assert_eq!(app.api(&access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&refresh).await, StatusCode::BAD_REQUEST);
    assert_error(&app.login("ann", PASSWORD).await, 400, "invalid_grant");
    let (access, _) = app.session("ann", NEW_PASSWORD).await;
    assert_eq!(app.api(&access).await, StatusCode::OK);

    // Used, it answers exactly as an unknown token does.
    let again = app.reset(&token, "yet another password").await;
    let unknown = app
        .reset(
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "yet another password",
        )
        .await;
    assert_error(&again, 400, "invalid_grant");
    assert_eq!(again.observable(), unknown.observable());
    let (_, _) = app.session("ann", NEW_PASSWORD).await;
}

#[tokio::test]
async fn a_reset_link_works_once_and_ends_every_session_in_memory() {
    a_reset_link_works_once_and_ends_every_session(App::memory()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_reset_link_works_once_and_ends_every_session_on_sqlite() {
    a_reset_link_works_once_and_ends_every_session(App::sqlite(|b| b).await).await;
}

#[tokio::test]
async fn a_reset_link_expires_and_is_replaced_by_a_newer_one_or_a_password_change() {
    let app = App::with(Outbox::default(), |builder| {
        builder.reset_ttl(Duration::from_secs(120)).unwrap()
    });
    app.register("ann", Some("ann@example.test")).await;
    let unknown = app.reset("nonsense", NEW_PASSWORD).await;
    assert_error(&unknown, 400, "invalid_grant");

    // Expired.
    app.forgot(json!({"username": "ann"})).await;
    let expired = app.outbox.token(0, RESET_LINK).await;
    assert!(app.outbox.sent()[0].body.contains("within 2 minutes"));
    app.advance(Duration::from_secs(120));
    assert_eq!(
        app.reset(&expired, NEW_PASSWORD).await.observable(),
        unknown.observable()
    );

    // Replaced by a newer request once the interval has passed.
    app.forgot(json!({"username": "ann"})).await;
    let older = app.outbox.token(1, RESET_LINK).await;
    app.advance(MAIL_INTERVAL);
    app.forgot(json!({"username": "ann"})).await;
    let newer = app.outbox.token(2, RESET_LINK).await;
    assert_eq!(
        app.reset(&older, NEW_PASSWORD).await.observable(),
        unknown.observable()
    );

    // Replaced by a password change: the newer one is useless too.
    let (access, _) = app.session("ann", PASSWORD).await;
    let change = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    let changed = app.post("/auth/password", &change, Some(&access)).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{changed:?}");
    assert_eq!(
        app.reset(&newer, "yet another password").await.observable(),
        unknown.observable()
    );
    app.session("ann", NEW_PASSWORD).await;
}

#[tokio::test]
async fn concurrent_resets_with_one_link_succeed_once() {
    let app = App::memory();
    app.register("ann", Some("ann@example.test")).await;
    app.forgot(json!({"username": "ann"})).await;
    let token = app.outbox.token(0, RESET_LINK).await;
    let app = Arc::new(app);
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let app = Arc::clone(&app);
            let token = token.clone();
            tokio::spawn(async move {
                app.reset(&token, &format!("new password number {i}"))
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let done = statuses
        .iter()
        .filter(|s| **s == StatusCode::NO_CONTENT)
        .count();
    assert_eq!(done, 1, "{statuses:?}");
    // The others: the used link's 400, or 503 from a hasher already full (the link is only
    // used up after hashing, so that refusal costs nothing).
    assert!(
        statuses.iter().all(|s| matches!(
            *s,
            StatusCode::NO_CONTENT | StatusCode::BAD_REQUEST | StatusCode::SERVICE_UNAVAILABLE
        )),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_disabled_account_cannot_be_reset() {
    let app = App::memory();
    let ann = app.register("ann", Some("ann@example.test")).await.json();
    app.forgot(json!({"username": "ann"})).await;
    let token = app.outbox.token(0, RESET_LINK).await;
    let disable = UserChange {
        disabled: Some(true),
        ..UserChange::default()
    };
    app.auth
        .users()
        .update(ann["sub"].as_str().unwrap(), disable, None)
        .await
        .unwrap();
    assert_error(&app.reset(&token, NEW_PASSWORD).await, 400, "invalid_grant");
}

// ---------------------------------------------------------------------------------------------
// Limits

#[tokio::test]
async fn mail_requests_and_wrong_tokens_are_limited_per_client() {
    let limits = LoginLimits::default()
        .per_client_registrations(3, Duration::from_secs(3600), 3)
        .unwrap()
        .per_client(3, Duration::from_secs(3600), 3)
        .unwrap();
    let limiter = RateLimitLoginLayer::new(Arc::new(MemoryLimiterStore::new(limits)));
    let app = App::with(Outbox::default(), |builder| builder.rate_limit(limiter));
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            app.forgot(json!({"username": "nobody"}))
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses, [202, 202, 202, 429]);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(app.reset("nonsense", NEW_PASSWORD).await.status.as_u16());
    }
    assert_eq!(statuses[..3], [400, 400, 400]);
    assert_eq!(statuses[4], 429, "{statuses:?}");
}

// ---------------------------------------------------------------------------------------------
// E-mail verification

fn verifying(builder: AuthRouterBuilder) -> AuthRouterBuilder {
    builder.email_verification(true)
}

async fn logins_wait_for_a_verified_address(app: App) {
    assert_error(&app.register("ann", None).await, 400, "invalid_request");
    let created = app.register("ann", Some("ann@example.test")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.json()["email_verified"], false);
    let taken = app.register("anna", Some("Ann@EXAMPLE.test")).await;
    assert_error(&taken, 409, "email_taken");
    let message = app.outbox.wait_for(1).await.swap_remove(0);
    assert_eq!(message.to, "ann@example.test");
    assert_eq!(message.subject, "Confirm your e-mail address");
    let token = token_in(&message.body, VERIFY_LINK);

    // Only with the right password does the answer say why.
    let wrong = app.login("ann", "not the password").await;
    assert_error(&wrong, 400, "invalid_grant");
    assert_eq!(
        wrong.json()["error_description"],
        "invalid username or password"
    );
    let unverified = app.login("ann", PASSWORD).await;
    assert_error(&unverified, 400, "invalid_grant");
    assert_eq!(
        unverified.json()["error_description"],
        "the email address is not verified yet"
    );

    let verify = |token: String| {
        let app = &app;
        async move {
            app.post("/auth/email/verify", &json!({"token": token}), None)
                .await
        }
    };
    assert_error(&verify("nonsense".to_owned()).await, 400, "invalid_grant");
    let verified = verify(token.clone()).await;
    assert_eq!(verified.status, StatusCode::NO_CONTENT, "{verified:?}");
    assert_error(&verify(token).await, 400, "invalid_grant");
    let (access, _) = app.session("ann", PASSWORD).await;
    let me = app
        .send(
            Request::get("/auth/me")
                .header(AUTHORIZATION, format!("Bearer {access}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(me.json()["email_verified"], true);

    // A verified address gets no more verification mail; an unverified one does, and the
    // newer link replaces the older.
    let resend = |body: Value| {
        let app = &app;
        async move { app.post("/auth/email/verify/resend", &body, None).await }
    };
    assert_eq!(
        resend(json!({"username": "ann"})).await.status,
        StatusCode::ACCEPTED
    );
    app.register("bob", Some("bob@example.test")).await;
    let first = app.outbox.token(1, VERIFY_LINK).await;
    app.advance(MAIL_INTERVAL);
    let again = resend(json!({"email": "BOB@example.test"})).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(
        again.observable(),
        resend(json!({"username": "nobody"})).await.observable()
    );
    let second = app.outbox.token(2, VERIFY_LINK).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        app.outbox.sent().len(),
        3,
        "nothing for ann, nor for nobody"
    );
    assert_error(&verify(first).await, 400, "invalid_grant");
    assert_eq!(verify(second).await.status, StatusCode::NO_CONTENT);
    app.session("bob", PASSWORD).await;

    // Accounts without an address (made by the application) are not held back.
    app.auth
        .create_user("admin", PASSWORD, &["admin"], &[])
        .await
        .unwrap();
    app.session("admin", PASSWORD).await;
}

#[tokio::test]
async fn logins_wait_for_a_verified_address_in_memory() {
    logins_wait_for_a_verified_address(App::with(Outbox::default(), verifying)).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn logins_wait_for_a_verified_address_on_sqlite() {
    logins_wait_for_a_verified_address(App::sqlite(verifying).await).await;
}

#[tokio::test]
async fn mail_routes_exist_only_when_configured() {
    let issuer = || TokenIssuer::generate_ed25519("https://issuer.test", "api").unwrap();
    let error = AuthRouter::builder(issuer())
        .email_verification(true)
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("mailer"), "{error}");
    let mailer = || Arc::new(Outbox::default()) as Arc<dyn Mailer>;
    for bad in [
        "http://app.example",
        "https://app.example/?x=1",
        "app.example",
    ] {
        assert!(
            AuthRouter::builder(issuer()).mail(mailer(), bad).is_err(),
            "{bad}"
        );
    }
    assert!(
        AuthRouter::builder(issuer())
            .reset_ttl(Duration::from_secs(30))
            .is_err()
    );
    assert!(
        AuthRouter::builder(issuer())
            .mail_links("reset", "/v")
            .is_err()
    );
    assert!(
        AuthRouter::builder(issuer())
            .mail_links("/r?x", "/v")
            .is_err()
    );

    let status = |router: Router, path: &'static str| async move {
        let request = Request::post(path)
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"token":"x"}"#))
            .unwrap();
        router.oneshot(request).await.unwrap().status()
    };
    let bare: Router = AuthRouter::builder(issuer()).build().unwrap().router();
    assert_eq!(
        status(bare.clone(), "/password/forgot").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(status(bare, "/password/reset").await, StatusCode::NOT_FOUND);
    let mail_only: Router = AuthRouter::builder(issuer())
        .mail(mailer(), PUBLIC_URL)
        .unwrap()
        .build()
        .unwrap()
        .router();
    assert_eq!(
        status(mail_only.clone(), "/email/verify").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(mail_only, "/password/reset").await,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn links_follow_the_configured_paths() {
    let app = App::with(Outbox::default(), |builder| {
        builder
            .mail_links("/account/reset", "/account/verify")
            .unwrap()
    });
    app.register("ann", Some("ann@example.test")).await;
    app.forgot(json!({"username": "ann"})).await;
    app.outbox
        .token(0, "https://app.example/account/reset")
        .await;
}

// ---------------------------------------------------------------------------------------------
// Over SMTP, to a real server

#[cfg(all(feature = "smtp", feature = "sqlite"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_mail_goes_out_over_smtp() {
    use crate::common::smtp_server::SmtpServer;
    use tower_jwt_auth::mail::SmtpMailer;

    let Some(server) = SmtpServer::start("a_reset_mail_goes_out_over_smtp") else {
        return;
    };
    let mailer = SmtpMailer::builder(&server.url(), "Example <no-reply@app.example>")
        .unwrap()
        .build()
        .unwrap();
    let app = App::sqlite(|builder| {
        builder
            .mail(Arc::new(mailer), PUBLIC_URL)
            .unwrap()
            .email_verification(true)
    })
    .await;
    app.register("ann", Some("ann@example.test")).await;
    let verification = server.wait_for(1).await.swap_remove(0);
    assert_eq!(
        verification.header("To").as_deref(),
        Some("ann@example.test")
    );
    assert_eq!(
        verification.header("From").as_deref(),
        Some("Example <no-reply@app.example>")
    );
    let token = verification.token_after(VERIFY_LINK).unwrap();
    let verified = app
        .post("/auth/email/verify", &json!({"token": token}), None)
        .await;
    assert_eq!(verified.status, StatusCode::NO_CONTENT, "{verified:?}");

    app.forgot(json!({"email": "ann@example.test"})).await;
    let reset = server.wait_for(2).await.swap_remove(1);
    assert_eq!(
        reset.header("Subject").as_deref(),
        Some("Reset your password")
    );
    assert!(reset.body().contains("Hello ann,"), "{}", reset.raw);
    let token = reset.token_after(RESET_LINK).unwrap();
    assert_eq!(
        app.reset(&token, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
    app.session("ann", NEW_PASSWORD).await;
}

/// STARTTLS and implicit TLS for real: delivered when the server's certificate chains to a
/// trusted root, refused (nothing sent in the clear) when it does not, or when a server
/// offers no STARTTLS at all.
#[cfg(feature = "smtp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_connections_are_encrypted_and_verified() {
    use crate::common::smtp_server::{Encryption, SmtpServer};
    use tower_jwt_auth::mail::SmtpMailer;

    let ca = std::fs::read(format!(
        "{}/tests/data/tls/ca.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let message = || Message {
        to: "ann@example.test".to_owned(),
        subject: "Hello".to_owned(),
        body: "a link: https://app.example/x?token=y".to_owned(),
    };
    for (encryption, scheme) in [
        (Encryption::StartTls, "smtp"),
        (Encryption::Implicit, "smtps"),
    ] {
        let what = "smtp_connections_are_encrypted_and_verified";
        let Some(server) = SmtpServer::start_with(what, encryption) else {
            return;
        };
        let url = format!("{scheme}://localhost:{}", server.port());
        let builder = || SmtpMailer::builder(&url, "no-reply@app.example").unwrap();
        let untrusted = builder().timeout(Duration::from_secs(5)).build().unwrap();
        let error = untrusted.send(message()).await.unwrap_err();
        assert!(
            error.to_string().contains("SMTP"),
            "{encryption:?}: {error}"
        );
        let trusted = builder()
            .root_certificate_pem(&ca)
            .unwrap()
            .build()
            .unwrap();
        trusted.send(message()).await.unwrap();
        let received = server.wait_for(1).await;
        assert_eq!(
            received.len(),
            1,
            "{encryption:?}: only the verified connection delivered"
        );
        assert!(received[0].body().contains("token=y"));
    }
    // A plain server: STARTTLS is required, so nothing goes out.
    let Some(plain) = SmtpServer::start("smtp_connections_are_encrypted_and_verified") else {
        return;
    };
    let url = format!("smtp://localhost:{}", plain.port());
    let mailer = SmtpMailer::builder(&url, "no-reply@app.example")
        .unwrap()
        .root_certificate_pem(&ca)
        .unwrap()
        .build()
        .unwrap();
    assert!(mailer.send(message()).await.is_err());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(plain.messages().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Failures on the way out

/// Refuses while `refusing`, records every attempt; used to show that a failed send leaves no
/// link behind to block the next request.
#[derive(Default)]
struct Flaky {
    refusing: std::sync::atomic::AtomicBool,
    attempts: std::sync::atomic::AtomicUsize,
    sent: Mutex<Vec<Message>>,
}

impl Mailer for Flaky {
    fn send(&self, message: Message) -> MailFuture {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.refusing.load(Ordering::SeqCst) {
            return Box::pin(std::future::ready(Err(MailError::new("relay refused"))));
        }
        self.sent.lock().unwrap().push(message);
        Box::pin(std::future::ready(Ok(())))
    }
}

#[tokio::test]
async fn after_a_failed_send_the_next_request_mails_at_once() {
    let flaky = Arc::new(Flaky::default());
    flaky.refusing.store(true, Ordering::SeqCst);
    let mailer = Arc::clone(&flaky) as Arc<dyn Mailer>;
    let app = App::with(Outbox::default(), |builder| {
        builder.mail(mailer, PUBLIC_URL).unwrap()
    });
    app.register("ann", Some("ann@example.test")).await;
    let answer = app.forgot(json!({"username": "ann"})).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    let deadline = Instant::now() + Duration::from_secs(10);
    while flaky.attempts.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no attempt");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    flaky.refusing.store(false, Ordering::SeqCst);
    // Within the interval, yet mailed: the failed one left no token. (Its job discards the
    // token just after the failed attempt; ask again until that happened.)
    let deadline = Instant::now() + Duration::from_secs(10);
    while flaky.sent.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "never mailed after the failure");
        app.forgot(json!({"username": "ann"})).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let body = flaky.sent.lock().unwrap()[0].body.clone();
    let token = token_in(&body, RESET_LINK);
    assert_eq!(
        app.reset(&token, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
}

/// Never finishes a delivery; counts the attempts.
#[derive(Default)]
struct Hung(std::sync::atomic::AtomicUsize);

impl Mailer for Hung {
    fn send(&self, _: Message) -> MailFuture {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::pending())
    }
}

/// A mail server that never answers holds each request's place for at most
/// `MAIL_JOB_TIMEOUT`; with every place held, more requests are dropped (answered as always).
#[tokio::test(start_paused = true)]
async fn a_hung_mailer_holds_no_place_for_good() {
    use tower_jwt_auth::router::{MAIL_JOB_TIMEOUT, MAX_MAIL_JOBS, NewUser};
    let hung = Arc::new(Hung::default());
    let mailer = Arc::clone(&hung) as Arc<dyn Mailer>;
    let app = App::with(Outbox::default(), |builder| {
        builder.mail(mailer, PUBLIC_URL).unwrap()
    });
    for n in 0..=MAX_MAIL_JOBS + 1 {
        let created = app
            .auth
            .users()
            .create(NewUser {
                username: format!("user{n}"),
                email: Some(format!("user{n}@example.test")),
                password_hash: "$argon2id$unused".to_owned(),
                roles: Vec::new(),
                scopes: Vec::new(),
            })
            .await
            .unwrap();
        assert!(matches!(
            created,
            tower_jwt_auth::router::Created::Created(_)
        ));
    }
    let settle = || async {
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    };
    for n in 0..=MAX_MAIL_JOBS {
        let answer = app.forgot(json!({"username": format!("user{n}")})).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED);
        settle().await;
    }
    assert_eq!(
        hung.0.load(Ordering::SeqCst),
        MAX_MAIL_JOBS,
        "the one past the cap dropped"
    );
    tokio::time::sleep(MAIL_JOB_TIMEOUT + Duration::from_secs(1)).await;
    settle().await;
    let last = format!("user{}", MAX_MAIL_JOBS + 1);
    app.forgot(json!({"username": last})).await;
    settle().await;
    assert_eq!(
        hung.0.load(Ordering::SeqCst),
        MAX_MAIL_JOBS + 1,
        "places freed"
    );
}

#[tokio::test]
async fn a_reset_verifies_the_address_and_administrators_can_too() {
    let app = App::with(Outbox::default(), verifying);
    let ann = app.register("ann", Some("ann@example.test")).await.json();
    let bob = app.register("bob", Some("bob@example.test")).await.json();
    app.outbox.wait_for(2).await;
    assert_error(&app.login("ann", PASSWORD).await, 400, "invalid_grant");
    // The reset link came by mail: the address is ann's.
    app.forgot(json!({"username": "ann"})).await;
    let token = app.outbox.token(2, RESET_LINK).await;
    assert_eq!(
        app.reset(&token, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
    app.session("ann", NEW_PASSWORD).await;
    let stored = app
        .auth
        .users()
        .find_by_id(ann["sub"].as_str().unwrap())
        .await
        .unwrap();
    assert!(stored.unwrap().email_verified);

    // An administrator marks bob's address verified.
    app.auth
        .create_user("admin", PASSWORD, &["admin"], &[])
        .await
        .unwrap();
    let (admin, _) = app.session("admin", PASSWORD).await;
    let path = format!("/auth/admin/users/{}", bob["sub"].as_str().unwrap());
    let request = Request::patch(path)
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, format!("Bearer {admin}"))
        .body(Body::from(r#"{"email_verified":true}"#))
        .unwrap();
    let patched = app.send(request).await;
    assert_eq!(patched.status, StatusCode::OK, "{patched:?}");
    assert_eq!(patched.json()["email_verified"], true);
    app.session("bob", PASSWORD).await;
}

#[tokio::test]
async fn registration_refuses_addresses_that_are_more_than_an_address() {
    let app = App::memory();
    for email in [
        "x<victim@example.com>",
        "<victim@example.com>",
        "a@b.example, victim@example.com",
    ] {
        assert_error(
            &app.register("mallory", Some(email)).await,
            400,
            "invalid_request",
        );
    }
}
