//! The account routes over HTTP (in-process, `oneshot`): `GET /me`, `DELETE /me`,
//! `POST /password` and the administration routes, on the memory stores and on SQLite. What
//! ends a user's standing ends their sessions at once, the last administrator stays, a
//! password checked here is limited like a login, and a login never misses a change made
//! while it verified the password.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::header::{AUTHORIZATION, CONTENT_TYPE, LINK};
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_jwt_auth::Claims;
use tower_jwt_auth::issuer::TokenIssuer;
use tower_jwt_auth::password::PasswordHasher;
use tower_jwt_auth::ratelimit::{ClientAddr, LoginLimits, MemoryLimiterStore, RateLimitLoginLayer};
use tower_jwt_auth::router::{
    AccountToken, AuthRouter, AuthRouterBuilder, Changed, Created, Identity, Issued, Linked,
    MemoryUserStore, NewUser, TokenPurpose, Unlinked, User, UserChange, UserStore,
};
use tower_jwt_auth::store::StoreFuture;

use crate::common::answer::{Answer, answer};

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a new password, long enough";
const WRONG: &str = "Tr0ub4dor&3";
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));

/// The router at `/auth` and an application route `/api/me` behind its bearer layer.
struct App {
    auth: AuthRouter,
    app: Router,
}

#[derive(Debug)]
struct Session {
    access: String,
    refresh: String,
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
        Self::with(|builder| builder)
    }

    fn with(configure: impl FnOnce(AuthRouterBuilder) -> AuthRouterBuilder) -> Self {
        let issuer = TokenIssuer::generate_ed25519("https://issuer.test", "api").unwrap();
        let builder = AuthRouter::builder(issuer).hasher(cheap_hasher());
        let auth = configure(builder).build().unwrap();
        let me = |claims: Claims| async move { claims.subject().unwrap_or("").to_owned() };
        let app = Router::new()
            .route("/api/me", get(me))
            .route_layer(auth.bearer_layer())
            .nest("/auth", auth.router());
        let app = crate::common::openapi::documented(&auth, app);
        Self { auth, app }
    }

    /// On an SQLite database of its own (users, sessions and revocations).
    #[cfg(feature = "sqlite")]
    async fn sqlite() -> Self {
        use tower_jwt_auth::sql::{Database, ReplicaOptions};
        let db = Database::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        let revocations = db.revocations(ReplicaOptions::default()).await.unwrap();
        Self::with(|builder| {
            builder
                .users(Arc::new(db.users()))
                .refresh_store(Arc::new(db.refresh()))
                .revocation_store(Arc::new(revocations))
        })
    }

    async fn send(&self, mut request: Request<Body>) -> Answer {
        request.extensions_mut().insert(ClientAddr(CLIENT));
        answer(self.app.clone().oneshot(request).await.unwrap()).await
    }

    async fn user(&self, name: &str, roles: &[&str]) -> User {
        self.auth
            .create_user(name, PASSWORD, roles, &["items:read", "items:write"])
            .await
            .unwrap()
    }

    async fn login_with(&self, name: &str, password: &str) -> Answer {
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

    async fn login(&self, name: &str) -> Session {
        let answer = self.login_with(name, PASSWORD).await;
        tokens(&answer)
    }

    async fn refresh(&self, token: &str) -> Answer {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("grant_type", "refresh_token"), ("refresh_token", token)])
            .finish();
        let request = Request::post("/auth/token")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        self.send(request).await
    }

    /// The status of the application route with this access token.
    async fn api(&self, access: &str) -> StatusCode {
        self.call("GET", "/api/me", Some(access), None).await.status
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        access: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(access) = access {
            request = request.header(AUTHORIZATION, format!("Bearer {access}"));
        }
        let body = match body {
            Some(body) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }

    /// Whether the session still works: its access token and its refresh token.
    async fn alive(&self, session: &Session) -> (StatusCode, StatusCode) {
        let api = self.api(&session.access).await;
        // A refresh rotates the token; the caller's copy is then stale, so only ask once.
        let refreshed = self.refresh(&session.refresh).await.status;
        (api, refreshed)
    }
}

#[track_caller]
fn tokens(answer: &Answer) -> Session {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let body = answer.json();
    Session {
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

#[track_caller]
fn assert_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status.as_u16(), status, "{answer:?}");
    assert_eq!(answer.json()["error"], code, "{answer:?}");
    assert_eq!(answer.header("cache-control"), Some("no-store"));
}

const ALIVE: (StatusCode, StatusCode) = (StatusCode::OK, StatusCode::OK);
const ENDED: (StatusCode, StatusCode) = (StatusCode::UNAUTHORIZED, StatusCode::BAD_REQUEST);

// ---------------------------------------------------------------------------------------------
// GET /me
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn me_is_the_tokens_account_without_any_hash() {
    let app = App::memory();
    let alice = app.user("alice", &["user"]).await;
    let session = app.login("alice").await;
    let me = app
        .call("GET", "/auth/me", Some(&session.access), None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    assert_eq!(
        me.json(),
        json!({
            "sub": alice.id, "username": "alice", "email": null, "roles": ["user"],
            "scopes": ["items:read", "items:write"], "disabled": false, "email_verified": false,
        })
    );
    assert!(!me.text().contains("argon2"));
    assert_eq!(me.header("cache-control"), Some("no-store"));
    let anonymous = app.call("GET", "/auth/me", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------------------
// POST /password
// ---------------------------------------------------------------------------------------------

fn change(current: &str, new: &str) -> Value {
    json!({"current_password": current, "new_password": new})
}

async fn password_change_ends_every_other_session(app: App) {
    app.user("alice", &["user"]).await;
    app.user("bob", &["user"]).await;
    let this = app.login("alice").await;
    let other = app.login("alice").await;
    let bobs = app.login("bob").await;

    // Refused without changing anything: a wrong current password, a new one the policy
    // refuses, a malformed body, no token.
    let wrong = app
        .call(
            "POST",
            "/auth/password",
            Some(&this.access),
            Some(&change(WRONG, NEW_PASSWORD)),
        )
        .await;
    assert_error(&wrong, 400, "invalid_grant");
    let short = app
        .call(
            "POST",
            "/auth/password",
            Some(&this.access),
            Some(&change(PASSWORD, "short")),
        )
        .await;
    assert_error(&short, 400, "invalid_request");
    let unknown_field = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD, "x": 1});
    let malformed = app
        .call(
            "POST",
            "/auth/password",
            Some(&this.access),
            Some(&unknown_field),
        )
        .await;
    assert_error(&malformed, 400, "invalid_request");
    let anonymous = app
        .call(
            "POST",
            "/auth/password",
            None,
            Some(&change(PASSWORD, NEW_PASSWORD)),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.login_with("alice", PASSWORD).await.status,
        StatusCode::OK
    );

    let changed = app
        .call(
            "POST",
            "/auth/password",
            Some(&this.access),
            Some(&change(PASSWORD, NEW_PASSWORD)),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{changed:?}");
    // The calling session stays; the other one, and the login just above, are gone at once.
    assert_eq!(app.api(&this.access).await, StatusCode::OK);
    assert_eq!(app.alive(&other).await, ENDED);
    assert_eq!(app.alive(&this).await, ALIVE);
    assert_eq!(app.alive(&bobs).await, ALIVE, "other users keep theirs");
    assert_error(
        &app.login_with("alice", PASSWORD).await,
        400,
        "invalid_grant",
    );
    assert_eq!(
        app.login_with("alice", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_password_change_ends_every_other_session_of_the_user() {
    password_change_ends_every_other_session(App::memory()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_password_change_ends_every_other_session_of_the_user_on_sqlite() {
    password_change_ends_every_other_session(App::sqlite().await).await;
}

#[tokio::test]
async fn a_password_checked_outside_the_token_endpoint_is_limited_as_a_login_to_that_account() {
    let limits = LoginLimits::default();
    let limiter = RateLimitLoginLayer::new(Arc::new(MemoryLimiterStore::new(limits)));
    let app = App::with(|builder| builder.rate_limit(limiter));
    app.user("alice", &["user"]).await;
    let session = app.login("alice").await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let answer = app
            .call(
                "POST",
                "/auth/password",
                Some(&session.access),
                Some(&change(WRONG, NEW_PASSWORD)),
            )
            .await;
        statuses.push(answer.status.as_u16());
    }
    // The default limits: five failures of one (client, account) pair are free, then backoff.
    assert_eq!(&statuses[..5], [400; 5], "{statuses:?}");
    assert!(statuses[5..].contains(&429), "{statuses:?}");
    // The same account's record: a login from this client waits too, and so does DELETE /me.
    assert_eq!(
        app.login_with("alice", PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let delete = app
        .call(
            "DELETE",
            "/auth/me",
            Some(&session.access),
            Some(&json!({"password": WRONG})),
        )
        .await;
    assert_eq!(delete.status, StatusCode::TOO_MANY_REQUESTS);
    // Another account from this client is not that account.
    app.user("bob", &["user"]).await;
    assert_eq!(app.login_with("bob", PASSWORD).await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// DELETE /me
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn deleting_ones_account_takes_a_password_and_ends_every_session() {
    let app = App::memory();
    let alice = app.user("alice", &["user"]).await;
    app.user("root", &["admin"]).await;
    let first = app.login("alice").await;
    let second = app.login("alice").await;
    let wrong = app
        .call(
            "DELETE",
            "/auth/me",
            Some(&first.access),
            Some(&json!({"password": WRONG})),
        )
        .await;
    assert_error(&wrong, 400, "invalid_grant");
    let missing = app
        .call("DELETE", "/auth/me", Some(&first.access), Some(&json!({})))
        .await;
    assert_error(&missing, 400, "invalid_request");
    assert_eq!(
        app.api(&first.access).await,
        StatusCode::OK,
        "nothing changed yet"
    );

    let deleted = app
        .call(
            "DELETE",
            "/auth/me",
            Some(&first.access),
            Some(&json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    assert_eq!(app.alive(&first).await, ENDED);
    assert_eq!(app.alive(&second).await, ENDED);
    assert_eq!(app.auth.users().find_by_id(&alice.id).await.unwrap(), None);
    assert_error(
        &app.login_with("alice", PASSWORD).await,
        400,
        "invalid_grant",
    );
    // The name is free again.
    app.user("alice", &["user"]).await;

    // The last administrator cannot delete their own account.
    let root = app.login("root").await;
    let refused = app
        .call(
            "DELETE",
            "/auth/me",
            Some(&root.access),
            Some(&json!({"password": PASSWORD})),
        )
        .await;
    assert_error(&refused, 409, "last_admin");
    assert_eq!(app.alive(&root).await, ALIVE);
}

// ---------------------------------------------------------------------------------------------
// Administration
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn only_administrators_reach_the_administration_routes() {
    let app = App::memory();
    let user = app.user("alice", &["user"]).await;
    let alice = app.login("alice").await;
    for (method, path) in [
        ("GET", "/auth/admin/users".to_owned()),
        ("GET", format!("/auth/admin/users/{}", user.id)),
        ("PATCH", format!("/auth/admin/users/{}", user.id)),
        ("DELETE", format!("/auth/admin/users/{}", user.id)),
    ] {
        let body = json!({"roles": ["admin"]});
        let forbidden = app
            .call(method, &path, Some(&alice.access), Some(&body))
            .await;
        assert_eq!(forbidden.status, StatusCode::FORBIDDEN, "{method} {path}");
        let anonymous = app.call(method, &path, None, Some(&body)).await;
        assert_eq!(
            anonymous.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
    }
    let unchanged = app
        .auth
        .users()
        .find_by_id(&user.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged.roles, ["user"]);
}

#[tokio::test]
async fn the_administrator_role_is_configurable() {
    let app = App::with(|builder| builder.admin_role("operator").unwrap());
    app.user("ops", &["operator"]).await;
    app.user("root", &["admin"]).await;
    let ops = app.login("ops").await;
    let root = app.login("root").await;
    let list = "/auth/admin/users";
    let ops_list = app.call("GET", list, Some(&ops.access), None).await;
    assert_eq!(ops_list.status, StatusCode::OK);
    let root_list = app.call("GET", list, Some(&root.access), None).await;
    assert_eq!(root_list.status, StatusCode::FORBIDDEN);
    assert!(
        AuthRouter::builder(TokenIssuer::generate_ed25519("https://i.test", "a").unwrap())
            .admin_role("")
            .is_err()
    );
}

/// Follows `Link: <?…>; rel="next"` from `path` to the end: every page's usernames.
async fn pages(app: &App, access: &str, path: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(path.to_owned());
    while let Some(path) = next.take() {
        let page = app.call("GET", &path, Some(access), None).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        assert!(!page.text().contains("argon2"), "no hash in a listing");
        let users = page.json();
        let names = users.as_array().unwrap().iter();
        pages.push(
            names
                .map(|u| u["username"].as_str().unwrap().to_owned())
                .collect(),
        );
        if let Some(link) = page.header(LINK) {
            let query = link
                .strip_prefix("<?")
                .and_then(|rest| rest.strip_suffix(">; rel=\"next\""))
                .unwrap_or_else(|| panic!("{link}"));
            next = Some(format!("/auth/admin/users?{query}"));
        }
    }
    pages
}

async fn listing_pages_through_every_user(app: App) {
    app.user("root", &["admin"]).await;
    for name in ["erin", "dave", "carol", "bob"] {
        app.user(name, &["user"]).await;
    }
    let root = app.login("root").await;
    let all = pages(&app, &root.access, "/auth/admin/users").await;
    assert_eq!(all, [["bob", "carol", "dave", "erin", "root"]]);
    let by_two = pages(&app, &root.access, "/auth/admin/users?limit=2").await;
    assert_eq!(
        by_two,
        [vec!["bob", "carol"], vec!["dave", "erin"], vec!["root"]]
    );
    let by_five = pages(&app, &root.access, "/auth/admin/users?limit=5").await;
    assert_eq!(
        by_five.len(),
        1,
        "no next page when the last one is full: {by_five:?}"
    );

    for query in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "limit=%2B5",
        "limit=",
        "cursor=%%%",
        "cursor=not*b64",
        "limit=2&limit=3",
        "offset=2",
    ] {
        let refused = app
            .call(
                "GET",
                &format!("/auth/admin/users?{query}"),
                Some(&root.access),
                None,
            )
            .await;
        assert_error(&refused, 400, "invalid_request");
    }
}

#[tokio::test]
async fn listing_users_pages_through_every_one_by_name() {
    listing_pages_through_every_user(App::memory()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn listing_users_pages_through_every_one_by_name_on_sqlite() {
    listing_pages_through_every_user(App::sqlite().await).await;
}

async fn administrators_change_standing_and_sessions_follow(app: App) {
    app.user("root", &["admin"]).await;
    let dora = app.user("dora", &["user"]).await;
    let root = app.login("root").await;
    let dora_path = format!("/auth/admin/users/{}", dora.id);
    let patch = |body: Value| {
        let (app, root, path) = (&app, &root, &dora_path);
        async move {
            app.call("PATCH", path, Some(&root.access), Some(&body))
                .await
        }
    };

    let shown = app.call("GET", &dora_path, Some(&root.access), None).await;
    assert_eq!(shown.json()["username"], "dora");
    let missing = app
        .call(
            "GET",
            "/auth/admin/users/no-such-id",
            Some(&root.access),
            None,
        )
        .await;
    assert_error(&missing, 404, "not_found");

    // Adding a role or scope leaves the session alone; roles show at its next refresh.
    let session = app.login("dora").await;
    let added = patch(json!({"roles": ["user", "editor"]})).await;
    assert_eq!(added.status, StatusCode::OK, "{added:?}");
    assert_eq!(added.json()["roles"], json!(["user", "editor"]));
    assert_eq!(app.api(&session.access).await, StatusCode::OK);
    let refreshed = tokens(&app.refresh(&session.refresh).await);
    let roles = app.auth.verifier().verify(&refreshed.access).unwrap();
    assert!(roles.roles().iter().any(|r| r == "editor"));

    // Taking a role away ends the session at once.
    let taken = patch(json!({"roles": ["user"]})).await;
    assert_eq!(taken.status, StatusCode::OK);
    assert_eq!(app.alive(&refreshed).await, ENDED);

    // So does taking a scope away; the next login has what is left.
    let session = app.login("dora").await;
    assert_eq!(
        patch(json!({"scopes": ["items:read"]})).await.status,
        StatusCode::OK
    );
    assert_eq!(app.alive(&session).await, ENDED);
    let narrowed = app.login_with("dora", PASSWORD).await;
    assert_eq!(narrowed.json()["scope"], "items:read");

    // Disabling ends every session and refuses logins; enabling lets them in again.
    let session = app.login("dora").await;
    let disabled = patch(json!({"disabled": true})).await;
    assert_eq!(disabled.json()["disabled"], true);
    assert_eq!(app.alive(&session).await, ENDED);
    assert_error(
        &app.login_with("dora", PASSWORD).await,
        400,
        "invalid_grant",
    );
    assert_eq!(
        patch(json!({"disabled": false})).await.status,
        StatusCode::OK
    );
    let session = app.login("dora").await;

    // Bad changes change nothing.
    for body in [
        json!({"roles": ["ok", "bad\u{7}"]}),
        json!({"roles": [""]}),
        json!({"scopes": ["has space"]}),
        json!({"scopes": (0..65).map(|i| format!("s{i}")).collect::<Vec<_>>()}),
        json!({"disabled": "yes"}),
        json!({"password_hash": "x"}),
        json!([]),
    ] {
        assert_error(&patch(body.clone()).await, 400, "invalid_request");
    }
    let no_such = app
        .call(
            "PATCH",
            "/auth/admin/users/no-such-id",
            Some(&root.access),
            Some(&json!({})),
        )
        .await;
    assert_error(&no_such, 404, "not_found");
    assert_eq!(
        app.alive(&session).await,
        ALIVE,
        "untouched by refused changes"
    );

    // Deleting ends every session; the account is gone.
    let session = app.login("dora").await;
    let deleted = app
        .call("DELETE", &dora_path, Some(&root.access), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(app.alive(&session).await, ENDED);
    let again = app
        .call("DELETE", &dora_path, Some(&root.access), None)
        .await;
    assert_error(&again, 404, "not_found");
}

#[tokio::test]
async fn administrators_change_a_users_standing_and_their_sessions_follow() {
    administrators_change_standing_and_sessions_follow(App::memory()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn administrators_change_a_users_standing_and_their_sessions_follow_on_sqlite() {
    administrators_change_standing_and_sessions_follow(App::sqlite().await).await;
}

#[tokio::test]
async fn the_last_enabled_administrator_is_never_disabled_demoted_or_deleted() {
    let app = App::memory();
    let root = app.user("root", &["admin"]).await;
    let session = app.login("root").await;
    let path = format!("/auth/admin/users/{}", root.id);
    for body in [json!({"disabled": true}), json!({"roles": ["user"]})] {
        let refused = app
            .call("PATCH", &path, Some(&session.access), Some(&body))
            .await;
        assert_error(&refused, 409, "last_admin");
    }
    let refused = app.call("DELETE", &path, Some(&session.access), None).await;
    assert_error(&refused, 409, "last_admin");
    assert_eq!(app.alive(&session).await, ALIVE);

    // With a second administrator, the first may step down; the second is then the last.
    let second = app.user("deputy", &["admin"]).await;
    let deputy = app.login("deputy").await;
    let step_down = app
        .call(
            "PATCH",
            &path,
            Some(&deputy.access),
            Some(&json!({"roles": ["user"]})),
        )
        .await;
    assert_eq!(step_down.status, StatusCode::OK, "{step_down:?}");
    let own = format!("/auth/admin/users/{}", second.id);
    let refused = app
        .call(
            "PATCH",
            &own,
            Some(&deputy.access),
            Some(&json!({"disabled": true})),
        )
        .await;
    assert_error(&refused, 409, "last_admin");
}

#[cfg(feature = "metrics")]
#[tokio::test(flavor = "current_thread")]
async fn every_change_is_an_audit_event_with_the_actor_and_the_subject() {
    use crate::common::metrics::{counted, series};
    use tower_jwt_auth::telemetry::AUDIT_EVENTS_TOTAL;

    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _scope = metrics::set_default_local_recorder(&recorder);
    let app = App::memory();
    app.user("root", &["admin"]).await;
    let dora = app.user("dora", &["user"]).await;
    let root = app.login("root").await;
    let path = format!("/auth/admin/users/{}", dora.id);
    for body in [
        json!({"disabled": true}),
        json!({"disabled": false, "roles": ["user", "x"]}),
    ] {
        app.call("PATCH", &path, Some(&root.access), Some(&body))
            .await;
    }
    let session = app.login("dora").await;
    app.call(
        "POST",
        "/auth/password",
        Some(&session.access),
        Some(&change(PASSWORD, NEW_PASSWORD)),
    )
    .await;
    app.call("DELETE", &path, Some(&root.access), None).await;
    let audited: std::collections::BTreeMap<_, _> = counted(&snapshotter)
        .into_iter()
        .filter(|(key, _)| key.starts_with(AUDIT_EVENTS_TOTAL))
        .collect();
    assert_eq!(
        audited,
        series(&[
            (AUDIT_EVENTS_TOTAL, "event=user_disabled", 1),
            (AUDIT_EVENTS_TOTAL, "event=user_enabled", 1),
            (AUDIT_EVENTS_TOTAL, "event=grants_changed", 1),
            (AUDIT_EVENTS_TOTAL, "event=password_changed", 1),
            (AUDIT_EVENTS_TOTAL, "event=user_deleted", 1),
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// A login never misses a change made while it verified the password
// ---------------------------------------------------------------------------------------------

/// What happens to the account while a login verifies its password.
type Meanwhile = dyn Fn(&MemoryUserStore, &User) + Send + Sync;

/// A user store that makes `change` to the account the first time a login reads it back by
/// id, as if an administrator or a password change had acted in between.
struct ChangedMidLogin {
    inner: MemoryUserStore,
    change: Box<Meanwhile>,
    done: AtomicBool,
}

impl UserStore for ChangedMidLogin {
    fn find_by_username(&self, name: &str) -> StoreFuture<Option<User>> {
        self.inner.find_by_username(name)
    }
    fn find_by_id(&self, id: &str) -> StoreFuture<Option<User>> {
        if !self.done.swap(true, Ordering::SeqCst)
            && let Ok(Ok(Some(user))) = self.inner.find_by_id(id).into_ready()
        {
            (self.change)(&self.inner, &user);
        }
        self.inner.find_by_id(id)
    }
    fn create(&self, user: NewUser) -> StoreFuture<Created> {
        self.inner.create(user)
    }
    fn update_password_hash(&self, id: &str, hash: String) -> StoreFuture<bool> {
        self.inner.update_password_hash(id, hash)
    }
    fn update(&self, id: &str, change: UserChange, role: Option<&str>) -> StoreFuture<Changed> {
        self.inner.update(id, change, role)
    }
    fn delete(&self, id: &str, role: Option<&str>) -> StoreFuture<Changed> {
        self.inner.delete(id, role)
    }
    fn page(&self, after: Option<&str>, limit: usize) -> StoreFuture<Vec<User>> {
        self.inner.page(after, limit)
    }
    fn find_by_email(&self, email: &str) -> StoreFuture<Option<User>> {
        self.inner.find_by_email(email)
    }
    fn issue_token(&self, token: AccountToken, interval: u64) -> StoreFuture<Issued> {
        self.inner.issue_token(token, interval)
    }
    fn find_token(&self, p: TokenPurpose, h: &[u8; 32], now: u64) -> StoreFuture<Option<String>> {
        self.inner.find_token(p, h, now)
    }
    fn redeem_token(&self, p: TokenPurpose, h: &[u8; 32], now: u64) -> StoreFuture<Option<String>> {
        self.inner.redeem_token(p, h, now)
    }
    fn revoke_tokens(&self, id: &str, p: TokenPurpose) -> StoreFuture<()> {
        self.inner.revoke_tokens(id, p)
    }
    fn find_by_identity(&self, issuer: &str, subject: &str) -> StoreFuture<Option<User>> {
        self.inner.find_by_identity(issuer, subject)
    }
    fn identities(&self, id: &str) -> StoreFuture<Vec<Identity>> {
        self.inner.identities(id)
    }
    fn create_linked(&self, user: NewUser, identity: Identity) -> StoreFuture<Created> {
        self.inner.create_linked(user, identity)
    }
    fn link_identity(&self, id: &str, identity: Identity) -> StoreFuture<Linked> {
        self.inner.link_identity(id, identity)
    }
    fn unlink_identity(&self, id: &str, provider: &str) -> StoreFuture<Unlinked> {
        self.inner.unlink_identity(id, provider)
    }
}

async fn login_meanwhile(
    change: impl Fn(&MemoryUserStore, &User) + Send + Sync + 'static,
) -> (Answer, App) {
    let store = Arc::new(ChangedMidLogin {
        inner: MemoryUserStore::new(),
        change: Box::new(change),
        done: AtomicBool::new(true),
    });
    let app = App::with(|builder| builder.users(Arc::clone(&store) as _));
    app.user("dora", &["user"]).await;
    store.done.store(false, Ordering::SeqCst);
    (app.login_with("dora", PASSWORD).await, app)
}

fn apply(store: &MemoryUserStore, user: &User, change: UserChange) {
    let changed = store.update(&user.id, change, None).into_ready();
    assert!(matches!(changed, Ok(Ok(Changed::Changed(_)))));
}

#[tokio::test]
async fn a_login_that_raced_a_change_to_its_account_follows_the_change() {
    let disable = |store: &MemoryUserStore, user: &User| {
        let change = UserChange {
            disabled: Some(true),
            ..UserChange::default()
        };
        apply(store, user, change);
    };
    let (disabled, app) = login_meanwhile(disable).await;
    assert_error(&disabled, 400, "invalid_grant");
    let dora = app
        .auth
        .users()
        .find_by_username("dora")
        .await
        .unwrap()
        .unwrap();
    assert!(dora.disabled);

    let delete = |store: &MemoryUserStore, user: &User| {
        assert!(matches!(
            store.delete(&user.id, None).into_ready(),
            Ok(Ok(_))
        ));
    };
    assert_error(&login_meanwhile(delete).await.0, 400, "invalid_grant");

    // A password changed meanwhile: the password must match the new hash too.
    let other_hash = cheap_hasher().hash(NEW_PASSWORD).await.unwrap();
    let changed = move |store: &MemoryUserStore, user: &User| {
        let _ = store
            .update_password_hash(&user.id, other_hash.clone())
            .into_ready();
    };
    assert_error(&login_meanwhile(changed).await.0, 400, "invalid_grant");
    // Re-hashed to the same password (another login upgraded it): still this password.
    let same_hash = cheap_hasher().hash(PASSWORD).await.unwrap();
    let rehashed = move |store: &MemoryUserStore, user: &User| {
        let _ = store
            .update_password_hash(&user.id, same_hash.clone())
            .into_ready();
    };
    assert_eq!(login_meanwhile(rehashed).await.0.status, StatusCode::OK);

    // A scope taken away meanwhile is not in the token.
    let narrow = |store: &MemoryUserStore, user: &User| {
        let change = UserChange {
            scopes: Some(vec!["items:read".to_owned()]),
            roles: Some(vec!["reader".to_owned()]),
            ..UserChange::default()
        };
        apply(store, user, change);
    };
    let (narrowed, app) = login_meanwhile(narrow).await;
    assert_eq!(narrowed.json()["scope"], "items:read", "{narrowed:?}");
    let claims = app
        .auth
        .verifier()
        .verify(narrowed.json()["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.roles(), ["reader"]);
}
