//! `AuthRouter` driven in-process with `oneshot`: every route of the router. The token
//! endpoint (password and refresh grants, RFC 6749 §5.2 errors, scopes, clients), rotation and
//! reuse detection, RFC 7009 revocation, logout, re-hashing, overload, the body limit, the JWKS
//! and registration.
//!
//! The router is mounted at `/auth` beside a `/me` route behind `auth.bearer_layer()`. One
//! injected clock drives the issuer, the router and the revocation store; no test sleeps.

use crate::common;
use crate::common::answer::{Answer, answer};
use crate::common::{AUDIENCE, ISSUER, NOW, fixture};

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::header::{
    ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, PRAGMA,
    RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{Request, StatusCode};
use http_body::Frame;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_jwt_auth::issuer::{AccessGrant, TokenIssuer};
use tower_jwt_auth::password::{HashingThreads, PasswordHasher, PasswordStats};
use tower_jwt_auth::revocation::MemoryRevocationStore;
use tower_jwt_auth::router::{
    AuthRouter, AuthRouterBuilder, Changed, Client, Created, DEFAULT_CLIENT_ID, GrantType,
    MAX_BODY_BYTES, NewUser, RefreshSession, RefreshStore, Registration, Retry, Rotation,
    TokenHash, User, UserChange,
};
use tower_jwt_auth::store::{StoreError, StoreFuture};
use tower_jwt_auth::{Claims, KeySet, Verifier};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

const FORM: &str = "application/x-www-form-urlencoded";
const PASSWORD: &str = "correct horse battery staple";
const WRONG: &str = "Tr0ub4dor&3";
/// What [`Harness::user`] may be granted.
const SCOPES: [&str; 2] = ["items:read", "items:write"];
/// Its `+` must travel as `%2B` inside HTTP Basic (see [`basic`]).
const SECRET: &str = "a-secret-of-16+bytes";
/// A passlib bcrypt hash of [`PASSWORD`] (the one in `src/password.rs`'s tests).
const PASSLIB_2B: &str = "$2b$04$1uNpAxEM2BFUQuZuSHV03OyY3GKvwmieEoB2Ls8LJU0CNYkza8cwi";

type Params<'a> = Vec<(&'a str, &'a str)>;

/// Argon2id at m = 1024 KiB, t = 1, p = 1: fast.
fn cheap_hasher() -> PasswordHasher {
    hasher(1024)
}

fn hasher(m_kib: u32) -> PasswordHasher {
    PasswordHasher::builder()
        .params(m_kib, 1, 1)
        .unwrap()
        .build()
        .unwrap()
}

fn ed25519_issuer() -> TokenIssuer {
    TokenIssuer::from_pem(&fixture("ed25519.pkcs8.pem"), ISSUER, AUDIENCE).unwrap()
}

fn at(clock: &AtomicU64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(clock.load(Ordering::SeqCst))
}

/// A router at `/auth`, a protected `/me` (answers the token's `sub`) and their clock.
struct Harness {
    auth: AuthRouter,
    app: Router,
    /// Unix seconds, read by the issuer, the router and the revocation store.
    clock: Arc<AtomicU64>,
    /// The router's revocation store (unless `configure` replaced it).
    revocation: Arc<MemoryRevocationStore>,
}

/// A successful token response.
#[derive(Debug)]
struct Tokens {
    access: String,
    refresh: String,
    body: Value,
}

impl Tokens {
    #[track_caller]
    fn from_answer(answer: &Answer) -> Self {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
        let body = answer.json();
        Self {
            access: body["access_token"].as_str().unwrap().to_owned(),
            refresh: body["refresh_token"].as_str().unwrap().to_owned(),
            body,
        }
    }

    fn scope(&self) -> &str {
        self.body["scope"].as_str().unwrap()
    }
}

impl Harness {
    fn new() -> Self {
        Self::with(|builder| builder)
    }

    /// An Ed25519 issuer, [`cheap_hasher`], the clock at [`NOW`]; `configure` may change any of it.
    fn with(configure: impl FnOnce(AuthRouterBuilder) -> AuthRouterBuilder) -> Self {
        Self::build(ed25519_issuer(), configure)
    }

    fn build(
        issuer: TokenIssuer,
        configure: impl FnOnce(AuthRouterBuilder) -> AuthRouterBuilder,
    ) -> Self {
        let clock = Arc::new(AtomicU64::new(NOW));
        let (c1, c2, c3) = (clock.clone(), clock.clone(), clock.clone());
        let revocation =
            Arc::new(MemoryRevocationStore::new().clock(move || c2.load(Ordering::SeqCst)));
        let builder = AuthRouter::builder(issuer.clock(move || at(&c1)))
            .hasher(cheap_hasher())
            .clock(move || at(&c3))
            .revocation_store(Arc::clone(&revocation) as _);
        let auth = configure(builder).build().unwrap();
        Self {
            app: app(&auth),
            auth,
            clock,
            revocation,
        }
    }

    fn set_time(&self, secs: u64) {
        self.clock.store(secs, Ordering::SeqCst);
    }

    /// Every request helper clones the app, so its future borrows nothing.
    fn send(&self, request: Request<Body>) -> impl Future<Output = Answer> + Send + use<> {
        send(self.app.clone(), request)
    }

    fn token(&self, params: &[(&str, &str)]) -> impl Future<Output = Answer> + Send + use<> {
        self.send(post_form("/auth/token", params))
    }

    /// A token request that must succeed.
    async fn tokens(&self, params: &[(&str, &str)]) -> Tokens {
        Tokens::from_answer(&self.token(params).await)
    }

    /// A password grant for a public client that does not name itself.
    fn password_grant(&self, user: &str, pw: &str) -> impl Future<Output = Answer> + Send + use<> {
        self.token(&[
            ("grant_type", "password"),
            ("username", user),
            ("password", pw),
        ])
    }

    /// A login with [`PASSWORD`] that must succeed.
    async fn login(&self, username: &str) -> Tokens {
        Tokens::from_answer(&self.password_grant(username, PASSWORD).await)
    }

    fn refresh(&self, token: &str) -> impl Future<Output = Answer> + Send + use<> {
        self.token(&refresh_params(token, &[]))
    }

    /// Entries in the revocation store.
    fn revocations(&self) -> usize {
        self.revocation.len()
    }

    fn revoke(&self, params: &[(&str, &str)]) -> impl Future<Output = Answer> + Send + use<> {
        self.send(post_form("/auth/revoke", params))
    }

    /// The status of `GET /me` with this access token.
    async fn me(&self, access_token: &str) -> StatusCode {
        let request = Request::get("/me").body(Body::empty()).unwrap();
        let request = with_header(request, AUTHORIZATION, &format!("Bearer {access_token}"));
        self.send(request).await.status
    }

    /// `POST` to `/auth/logout` or `/auth/logout/all`, with this access token if any.
    async fn logout(&self, path: &str, access_token: Option<&str>) -> StatusCode {
        let mut request = Request::post(path).body(Body::empty()).unwrap();
        if let Some(token) = access_token {
            request = with_header(request, AUTHORIZATION, &format!("Bearer {token}"));
        }
        self.send(request).await.status
    }

    /// A user with [`PASSWORD`], roles `user` and `admin`, and the scopes [`SCOPES`].
    async fn user(&self, username: &str) -> User {
        let roles = ["user", "admin"];
        self.auth
            .create_user(username, PASSWORD, &roles, &SCOPES)
            .await
            .unwrap()
    }

    /// A user stored with exactly this password hash.
    async fn user_with_hash(&self, username: &str, password_hash: &str) -> User {
        let user = NewUser {
            username: username.to_owned(),
            email: None,
            password_hash: password_hash.to_owned(),
            roles: vec!["user".to_owned()],
            scopes: vec!["items:read".to_owned()],
        };
        match self.auth.users().create(user).await.unwrap() {
            Created::Created(user) => user,
            other => panic!("{other:?}"),
        }
    }

    async fn stored_hash(&self, user: &User) -> String {
        let stored = self.auth.users().find_by_id(&user.id).await.unwrap();
        stored.unwrap().password_hash
    }

    /// The claims of an access token, by the router's own verifier (no revocation check).
    fn claims(&self, access_token: &str) -> Claims {
        self.auth.verifier().verify(access_token).unwrap()
    }

    fn stats(&self) -> PasswordStats {
        self.auth.hasher().stats()
    }
}

fn app(auth: &AuthRouter) -> Router {
    let me = |claims: Claims| async move { claims.subject().unwrap_or("").to_owned() };
    let app = Router::new()
        .route("/me", get(me))
        .layer(auth.bearer_layer())
        .nest("/auth", auth.router());
    common::openapi::documented(auth, app)
}

async fn send(app: Router, request: Request<Body>) -> Answer {
    answer(app.oneshot(request).await.unwrap()).await
}

/// Password-grant parameters for `username` and [`PASSWORD`], then `extra`.
fn password_params<'a>(username: &'a str, extra: &[(&'a str, &'a str)]) -> Params<'a> {
    let mut params = vec![
        ("grant_type", "password"),
        ("username", username),
        ("password", PASSWORD),
    ];
    params.extend_from_slice(extra);
    params
}

/// Refresh-grant parameters for `token`, then `extra`.
fn refresh_params<'a>(token: &'a str, extra: &[(&'a str, &'a str)]) -> Params<'a> {
    let mut params = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    params.extend_from_slice(extra);
    params
}

fn form(params: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

fn post_form(path: &str, params: &[(&str, &str)]) -> Request<Body> {
    post_raw(path, Some(FORM), form(params))
}

fn post_json(path: &str, body: &Value) -> Request<Body> {
    post_raw(path, Some("application/json"), body.to_string())
}

fn post_raw(path: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let request = Request::post(path).body(body.into()).unwrap();
    match content_type {
        Some(content_type) => with_header(request, CONTENT_TYPE, content_type),
        None => request,
    }
}

fn with_header(mut request: Request<Body>, name: HeaderName, value: &str) -> Request<Body> {
    request.headers_mut().insert(name, value.parse().unwrap());
    request
}

/// `Authorization: Basic` as RFC 6749 §2.3.1 builds it: each part form-encoded, then base64.
fn basic(id: &str, secret: &str) -> String {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(id), encode(secret));
    format!("Basic {}", STANDARD.encode(pair))
}

/// The member names of a JSON object.
fn members(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

/// An RFC 6749 §5.2 error: this status and code, exactly `{error, error_description}`, JSON,
/// not cacheable.
#[track_caller]
fn assert_oauth_error(answer: &Answer, status: u16, code: &str) {
    let body = answer.json();
    let got = (answer.status.as_u16(), body["error"].as_str());
    assert_eq!(got, (status, Some(code)), "{body}");
    assert_eq!(
        members(&body),
        BTreeSet::from(["error", "error_description"])
    );
    assert!(body["error_description"].is_string());
    assert_eq!(answer.header(CONTENT_TYPE), Some("application/json"));
    assert_eq!(answer.header(CACHE_CONTROL), Some("no-store"));
    assert_eq!(answer.header(PRAGMA), Some("no-cache"));
}

/// A JWT's header.
fn jwt_header(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
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

/// `body` in 1 KiB chunks, without a length.
fn chunked(body: &str) -> Body {
    let bytes = Bytes::copy_from_slice(body.as_bytes());
    let chunks = (0..bytes.len())
        .step_by(1024)
        .map(|start| bytes.slice(start..bytes.len().min(start + 1024)))
        .collect();
    Body::new(Chunked(chunks))
}

/// Polls a future once, in the current task's context.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
}

// ---------------------------------------------------------------------------------------------
// The password grant
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn password_grant_answers_an_rfc_6749_token_response_to_form_and_json() {
    let h = Harness::new();
    let alice = h.user("alice").await;
    let json_login = json!({"grant_type": "password", "username": "alice", "password": PASSWORD});
    let answers = [
        h.password_grant("alice", PASSWORD).await,
        h.send(post_json("/auth/token", &json_login)).await,
    ];

    let mut sessions = BTreeSet::new();
    for answer in &answers {
        let tokens = Tokens::from_answer(answer);
        let expected = [
            "access_token",
            "token_type",
            "expires_in",
            "refresh_token",
            "scope",
        ];
        assert_eq!(members(&tokens.body), BTreeSet::from(expected));
        assert_eq!(tokens.body["token_type"], "Bearer");
        assert_eq!(tokens.body["expires_in"], 900);
        assert_eq!(tokens.scope(), "items:read items:write");
        assert_eq!(tokens.refresh.len(), 43, "256 bits, base64url");
        assert_eq!(answer.header(CONTENT_TYPE), Some("application/json"));
        assert_eq!(answer.header(CACHE_CONTROL), Some("no-store"));
        assert_eq!(answer.header(PRAGMA), Some("no-cache"));

        let header = jwt_header(&tokens.access);
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], h.auth.issuer().kid());

        let claims = h.claims(&tokens.access);
        assert_eq!(claims.issuer(), Some(ISSUER));
        assert_eq!(claims.subject(), Some(alice.id.as_str()));
        assert_eq!(claims.client_id(), Some(DEFAULT_CLIENT_ID));
        assert_eq!(claims.scopes().as_str(), "items:read items:write");
        assert_eq!(claims.roles(), ["user", "admin"]);
        assert_eq!(claims.issued_at().unwrap().as_secs(), NOW);
        assert_eq!(claims.expires_at().unwrap().as_secs(), NOW + 900);
        assert!(claims.jwt_id().is_some_and(|jti| !jti.is_empty()));
        sessions.insert(claims.session_id().unwrap().to_owned());

        assert_eq!(h.me(&tokens.access).await, StatusCode::OK);
    }
    assert_eq!(sessions.len(), 2, "every login starts its own session");
}

// ---------------------------------------------------------------------------------------------
// RFC 6749 §5.2 errors
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_token_requests_are_invalid_request() {
    let h = Harness::new();
    h.user("alice").await;
    let good = form(&password_params("alice", &[]));
    let ok = h
        .send(post_raw("/auth/token", Some(FORM), good.clone()))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "control");

    let json = Some("application/json");
    let credentials = form(&[("username", "alice"), ("password", PASSWORD)]);
    let cases = [
        ("no grant_type", Some(FORM), credentials.clone()),
        (
            "empty grant_type",
            Some(FORM),
            format!("grant_type=&{credentials}"),
        ),
        (
            "no username",
            Some(FORM),
            form(&[("grant_type", "password"), ("password", "x")]),
        ),
        (
            "no password",
            Some(FORM),
            form(&[("grant_type", "password"), ("username", "alice")]),
        ),
        (
            "no refresh_token",
            Some(FORM),
            form(&[("grant_type", "refresh_token")]),
        ),
        (
            "repeated username",
            Some(FORM),
            format!("{good}&username=alice"),
        ),
        (
            "repeated grant_type",
            Some(FORM),
            format!("grant_type=password&{good}"),
        ),
        ("text/plain", Some("text/plain"), good.clone()),
        ("no content type", None, good.clone()),
        (
            "json number",
            json,
            json!({"grant_type": "password", "username": "alice", "password": 1234}).to_string(),
        ),
        (
            "json array",
            json,
            json!({"grant_type": "password", "username": ["alice"], "password": "x"}).to_string(),
        ),
        (
            "json repeated member",
            json,
            r#"{"grant_type":"password","username":"alice","username":"bob","password":"x"}"#
                .to_owned(),
        ),
        ("json array body", json, "[]".to_owned()),
    ];
    for (case, content_type, body) in cases {
        let answer = h.send(post_raw("/auth/token", content_type, body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{case}");
        assert_oauth_error(&answer, 400, "invalid_request");
    }
    assert_eq!(h.stats().verifications, 1, "only the control ran argon2");
}

#[tokio::test]
async fn failed_client_authentication_is_invalid_client_with_a_basic_challenge_only_for_basic() {
    let h = Harness::with(|b| {
        b.client(Client::confidential("svc", SECRET).unwrap())
            .unwrap()
            .client(Client::public("web").unwrap())
            .unwrap()
    });
    h.user("alice").await;
    let by_basic = |id: &str, secret: &str| {
        let request = post_form("/auth/token", &password_params("alice", &[]));
        with_header(request, AUTHORIZATION, &basic(id, secret))
    };
    let in_body =
        |extra: &[(&str, &str)]| post_form("/auth/token", &password_params("alice", extra));

    // Controls: the right secret by either method, and the registered public client.
    for request in [
        by_basic("svc", SECRET),
        in_body(&[("client_id", "svc"), ("client_secret", SECRET)]),
        in_body(&[("client_id", "web")]),
    ] {
        assert_eq!(h.send(request).await.status, StatusCode::OK);
    }

    let challenged = [
        ("wrong secret", by_basic("svc", "the-wrong-secret-xx")),
        ("unknown client", by_basic("nobody", SECRET)),
        ("a secret for a public client", by_basic("web", SECRET)),
        ("the secret not form-encoded", {
            let raw = format!("Basic {}", STANDARD.encode(format!("svc:{SECRET}")));
            with_header(
                post_form("/auth/token", &password_params("alice", &[])),
                AUTHORIZATION,
                &raw,
            )
        }),
    ];
    for (case, request) in challenged {
        let answer = h.send(request).await;
        assert_oauth_error(&answer, 401, "invalid_client");
        let challenge = answer
            .header(WWW_AUTHENTICATE)
            .unwrap_or_else(|| panic!("{case}"));
        assert!(challenge.starts_with("Basic "), "{case}: {challenge}");
    }
    let unchallenged = [
        (
            "wrong secret",
            in_body(&[("client_id", "svc"), ("client_secret", "the-wrong-secret")]),
        ),
        (
            "confidential client without its secret",
            in_body(&[("client_id", "svc")]),
        ),
        ("unknown client", in_body(&[("client_id", "nobody")])),
        ("no client at all", in_body(&[])),
    ];
    for (case, request) in unchallenged {
        let answer = h.send(request).await;
        assert_oauth_error(&answer, 401, "invalid_client");
        assert_eq!(answer.header(WWW_AUTHENTICATE), None, "{case}");
    }
    assert_eq!(
        h.stats().verifications,
        3,
        "clients are checked before passwords"
    );

    // Without registered clients every client is public: any secret is refused.
    let public = Harness::new();
    public.user("alice").await;
    let secret_in_body =
        password_params("alice", &[("client_id", "svc"), ("client_secret", SECRET)]);
    let answer = public.token(&secret_in_body).await;
    assert_oauth_error(&answer, 401, "invalid_client");
    assert_eq!(answer.header(WWW_AUTHENTICATE), None);
    let answer = public.send(by_basic("svc", SECRET)).await;
    assert_oauth_error(&answer, 401, "invalid_client");
    assert!(
        answer
            .header(WWW_AUTHENTICATE)
            .unwrap()
            .starts_with("Basic ")
    );
    public
        .tokens(&password_params("alice", &[("client_id", "svc")]))
        .await;
}

/// What Swagger UI's password flow sends without a configured client: `Basic Og==`, an empty
/// id and secret. It is a public client that did not name itself, never a `Basic` challenge
/// (a browser would open its login prompt); a public client's id with an empty secret is that
/// client.
#[tokio::test]
async fn empty_basic_credentials_are_a_public_client_never_a_basic_challenge() {
    let swagger = |h: &Harness, id: &str| {
        let request = post_form("/auth/token", &password_params("alice", &[]));
        h.send(with_header(request, AUTHORIZATION, &basic(id, "")))
    };
    let public = Harness::new();
    public.user("alice").await;
    let answer = swagger(&public, "").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
    let claims = public.claims(answer.json()["access_token"].as_str().unwrap());
    assert_eq!(claims.client_id(), Some(DEFAULT_CLIENT_ID));

    let registered = Harness::with(|b| {
        b.client(Client::confidential("svc", SECRET).unwrap())
            .unwrap()
            .client(Client::public("web").unwrap())
            .unwrap()
    });
    registered.user("alice").await;
    let answer = swagger(&registered, "web").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
    // With registered clients, naming none is refused, without a challenge.
    let answer = swagger(&registered, "").await;
    assert_oauth_error(&answer, 401, "invalid_client");
    assert_eq!(answer.header(WWW_AUTHENTICATE), None);
    // A confidential client's empty secret is a failed Basic authentication.
    let answer = swagger(&registered, "svc").await;
    assert_oauth_error(&answer, 401, "invalid_client");
    assert!(
        answer
            .header(WWW_AUTHENTICATE)
            .unwrap()
            .starts_with("Basic ")
    );
}

#[tokio::test]
async fn a_client_restricted_to_the_password_grant_is_unauthorized_to_refresh() {
    let password_only = Client::public("password-only")
        .unwrap()
        .grants(&[GrantType::Password]);
    let h = Harness::with(|b| {
        b.client(password_only)
            .unwrap()
            .client(Client::public("web").unwrap())
            .unwrap()
    });
    h.user("alice").await;

    let restricted = h
        .tokens(&password_params("alice", &[("client_id", "password-only")]))
        .await;
    let refresh = refresh_params(&restricted.refresh, &[("client_id", "password-only")]);
    assert_oauth_error(&h.token(&refresh).await, 400, "unauthorized_client");

    let web = h
        .tokens(&password_params("alice", &[("client_id", "web")]))
        .await;
    h.tokens(&refresh_params(&web.refresh, &[("client_id", "web")]))
        .await;
}

#[tokio::test]
async fn other_grant_types_are_unsupported_grant_type() {
    let h = Harness::new();
    h.user("alice").await;
    let grant_types = [
        "client_credentials",
        "authorization_code",
        "PASSWORD",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ];
    for grant_type in grant_types {
        let params = [
            ("grant_type", grant_type),
            ("username", "alice"),
            ("password", PASSWORD),
        ];
        assert_oauth_error(&h.token(&params).await, 400, "unsupported_grant_type");
    }
    h.login("alice").await;
}

// ---------------------------------------------------------------------------------------------
// No user enumeration
// ---------------------------------------------------------------------------------------------

/// Disables or enables an account directly in the store (as an admin tool would, without the
/// router ending its sessions).
async fn set_disabled(h: &Harness, id: &str, disabled: bool) {
    let change = UserChange {
        disabled: Some(disabled),
        ..UserChange::default()
    };
    let changed = h.auth.users().update(id, change, None).await.unwrap();
    assert!(matches!(changed, Changed::Changed(_)), "{changed:?}");
}

#[tokio::test]
async fn unknown_user_wrong_password_and_disabled_account_answer_byte_for_byte_alike() {
    let h = Harness::new();
    h.user("alice").await;
    let dora = h.user("dora").await;
    set_disabled(&h, &dora.id, true).await;
    h.login("alice").await;

    /// The answer, and the work it cost: (real verifications, dummy verifications, hashes).
    async fn attempt(h: &Harness, username: &str, password: &str) -> (Answer, [u64; 3]) {
        let before = h.stats();
        let answer = h.password_grant(username, password).await;
        let after = h.stats();
        let work = [
            after.verifications - before.verifications,
            after.dummy_verifications - before.dummy_verifications,
            after.hashes - before.hashes,
        ];
        (answer, work)
    }

    let (wrong_password, work) = attempt(&h, "alice", WRONG).await;
    assert_oauth_error(&wrong_password, 400, "invalid_grant");
    assert_eq!(work, [1, 0, 0], "wrong password: one real verification");

    let cases = [
        ("unknown user", "mallory", PASSWORD, [0, 1, 0]),
        ("impossible username", "not a username", PASSWORD, [0, 1, 0]),
        ("disabled account", "dora", PASSWORD, [1, 0, 0]),
        ("disabled account, wrong password", "dora", WRONG, [1, 0, 0]),
    ];
    for (case, username, password, expected_work) in cases {
        let (answer, work) = attempt(&h, username, password).await;
        assert_eq!(answer.observable(), wrong_password.observable(), "{case}");
        assert_eq!(work, expected_work, "{case}");
    }
}

#[tokio::test]
async fn disabling_an_account_ends_its_sessions_at_the_next_refresh() {
    let h = Harness::new();
    let dora = h.user("dora").await;
    h.user("alice").await;
    let session = h.login("dora").await;
    let other = h.login("alice").await;
    assert_eq!(h.me(&session.access).await, StatusCode::OK, "control");

    set_disabled(&h, &dora.id, true).await;
    assert_oauth_error(&h.refresh(&session.refresh).await, 400, "invalid_grant");
    assert_eq!(
        h.me(&session.access).await,
        StatusCode::UNAUTHORIZED,
        "sid denylisted"
    );
    // Enabling the account again does not revive the session.
    set_disabled(&h, &dora.id, false).await;
    assert_oauth_error(&h.refresh(&session.refresh).await, 400, "invalid_grant");
    assert_eq!(
        h.refresh(&other.refresh).await.status,
        StatusCode::OK,
        "other users unaffected"
    );
}

// ---------------------------------------------------------------------------------------------
// Scopes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_grants_every_scope_by_default_and_any_subset_on_request() {
    let h = Harness::new();
    h.user("alice").await;
    assert_eq!(h.login("alice").await.scope(), "items:read items:write");

    let granted = [
        ("items:read", "items:read"),
        ("items:write items:read", "items:write items:read"),
        ("items:read  items:read", "items:read"),
    ];
    for (requested, expected) in granted {
        let tokens = h
            .tokens(&password_params("alice", &[("scope", requested)]))
            .await;
        assert_eq!(tokens.scope(), expected, "{requested}");
        assert_eq!(h.claims(&tokens.access).scopes().as_str(), expected);
    }
    for refused in [
        "items:read admin",
        "admin",
        "items:delete",
        "items:\"read\"",
    ] {
        let answer = h
            .token(&password_params("alice", &[("scope", refused)]))
            .await;
        assert_oauth_error(&answer, 400, "invalid_scope");
    }
}

#[tokio::test]
async fn a_bad_scope_is_only_reported_once_the_credentials_are_good() {
    let h = Harness::new();
    h.user("alice").await;
    let wrong_password = h.password_grant("alice", WRONG).await;
    assert_oauth_error(&wrong_password, 400, "invalid_grant");
    for scope in ["admin", "items:\"read\""] {
        let with_scope = |username, password| {
            h.token(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("scope", scope),
            ])
        };
        let answer = with_scope("alice", WRONG).await;
        assert_eq!(answer.observable(), wrong_password.observable(), "{scope}");
        let answer = with_scope("mallory", PASSWORD).await;
        assert_eq!(
            answer.observable(),
            wrong_password.observable(),
            "{scope}, unknown user"
        );
        assert_oauth_error(&with_scope("alice", PASSWORD).await, 400, "invalid_scope");
    }
}

#[tokio::test]
async fn refresh_may_narrow_the_scope_never_widen_it_and_the_family_keeps_its_scope() {
    let h = Harness::new();
    h.user("alice").await;
    let full = h.login("alice").await;

    let narrowed = h
        .tokens(&refresh_params(&full.refresh, &[("scope", "items:read")]))
        .await;
    assert_eq!(narrowed.scope(), "items:read");
    assert_eq!(h.claims(&narrowed.access).scopes().as_str(), "items:read");
    // The next refresh without a scope gets the family's whole original scope.
    let restored = h.tokens(&refresh_params(&narrowed.refresh, &[])).await;
    assert_eq!(restored.scope(), "items:read items:write");
    assert_eq!(
        h.claims(&restored.access).scopes().as_str(),
        "items:read items:write"
    );

    // A session granted less never refreshes into more.
    let read_only = h
        .tokens(&password_params("alice", &[("scope", "items:read")]))
        .await;
    for wider in ["items:write", "items:read items:write", "admin"] {
        let answer = h
            .token(&refresh_params(&read_only.refresh, &[("scope", wider)]))
            .await;
        assert_oauth_error(&answer, 400, "invalid_scope");
    }
    // The refused requests did not use the token up.
    let again = h.tokens(&refresh_params(&read_only.refresh, &[])).await;
    assert_eq!(again.scope(), "items:read");
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_public_client_is_recorded_by_its_client_id_or_as_default() {
    let h = Harness::new();
    h.user("alice").await;
    let anonymous = h.login("alice").await;
    assert_eq!(DEFAULT_CLIENT_ID, "default");
    assert_eq!(
        h.claims(&anonymous.access).client_id(),
        Some(DEFAULT_CLIENT_ID)
    );

    let mobile = h
        .tokens(&password_params("alice", &[("client_id", "mobile")]))
        .await;
    assert_eq!(h.claims(&mobile.access).client_id(), Some("mobile"));

    // The family belongs to its client: another client id, or none, cannot refresh it.
    let as_web = refresh_params(&mobile.refresh, &[("client_id", "web")]);
    assert_oauth_error(&h.token(&as_web).await, 400, "invalid_grant");
    assert_oauth_error(&h.refresh(&mobile.refresh).await, 400, "invalid_grant");
    let refreshed = h
        .tokens(&refresh_params(&mobile.refresh, &[("client_id", "mobile")]))
        .await;
    assert_eq!(h.claims(&refreshed.access).client_id(), Some("mobile"));
}

#[tokio::test]
async fn a_confidential_client_authenticates_by_basic_or_in_the_body() {
    let h = Harness::with(|b| {
        b.client(Client::confidential("svc", SECRET).unwrap())
            .unwrap()
            .client(Client::public("web").unwrap())
            .unwrap()
    });
    h.user("alice").await;
    let as_svc = |params: &[(&str, &str)]| {
        with_header(
            post_form("/auth/token", params),
            AUTHORIZATION,
            &basic("svc", SECRET),
        )
    };

    let by_basic = Tokens::from_answer(&h.send(as_svc(&password_params("alice", &[]))).await);
    assert_eq!(h.claims(&by_basic.access).client_id(), Some("svc"));
    let in_body = [("client_id", "svc"), ("client_secret", SECRET)];
    let by_body = h.tokens(&password_params("alice", &in_body)).await;
    assert_eq!(h.claims(&by_body.access).client_id(), Some("svc"));

    // Another registered client cannot refresh svc's family; svc can, by either method.
    let as_web = refresh_params(&by_basic.refresh, &[("client_id", "web")]);
    assert_oauth_error(&h.token(&as_web).await, 400, "invalid_grant");
    let refreshed = Tokens::from_answer(
        &h.send(as_svc(&refresh_params(&by_basic.refresh, &[])))
            .await,
    );
    assert_eq!(h.claims(&refreshed.access).client_id(), Some("svc"));
    let refreshed = h.tokens(&refresh_params(&by_body.refresh, &in_body)).await;
    assert_eq!(h.claims(&refreshed.access).client_id(), Some("svc"));
}

// ---------------------------------------------------------------------------------------------
// Rotation and reuse detection
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn refresh_rotates_the_refresh_token_within_the_session() {
    let h = Harness::new();
    h.user("alice").await;
    let first = h.login("alice").await;
    let second = Tokens::from_answer(&h.refresh(&first.refresh).await);
    assert_ne!(second.refresh, first.refresh);
    let (a, b) = (h.claims(&first.access), h.claims(&second.access));
    assert_eq!(a.session_id(), b.session_id(), "one family");
    assert_ne!(a.jwt_id(), b.jwt_id());
    assert_eq!(h.me(&second.access).await, StatusCode::OK);
    // The new token rotates in turn.
    let third = Tokens::from_answer(&h.refresh(&second.refresh).await);
    assert_ne!(third.refresh, second.refresh);
}

#[tokio::test]
async fn replaying_a_rotated_refresh_token_revokes_the_whole_family() {
    let h = Harness::new();
    h.user("alice").await;
    let login = h.login("alice").await;
    let rotated = Tokens::from_answer(&h.refresh(&login.refresh).await);
    let bystander = h.login("alice").await;
    for access in [&login.access, &rotated.access, &bystander.access] {
        assert_eq!(h.me(access).await, StatusCode::OK, "control");
    }

    assert_oauth_error(&h.refresh(&login.refresh).await, 400, "invalid_grant");

    assert_oauth_error(&h.refresh(&rotated.refresh).await, 400, "invalid_grant");
    assert_eq!(h.me(&login.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(h.me(&rotated.access).await, StatusCode::UNAUTHORIZED);
    // The user's other session is another family.
    assert_eq!(h.me(&bystander.access).await, StatusCode::OK);
    assert_eq!(h.refresh(&bystander.refresh).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_with_one_token_succeed_exactly_once() {
    const N: usize = 16;
    let h = Harness::new();
    h.user("alice").await;
    let login = h.login("alice").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let (barrier, refresh) = (Arc::clone(&barrier), h.refresh(&login.refresh));
            tokio::spawn(async move {
                barrier.wait().await;
                refresh.await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let answer = task.await.unwrap();
        if answer.status == StatusCode::OK {
            winners.push(Tokens::from_answer(&answer));
        } else {
            assert_oauth_error(&answer, 400, "invalid_grant");
        }
    }
    assert_eq!(winners.len(), 1, "exactly one refresh wins");
    // The others were replays: the family has ended, the winner's tokens with it.
    assert_oauth_error(&h.refresh(&winners[0].refresh).await, 400, "invalid_grant");
    assert_eq!(h.me(&winners[0].access).await, StatusCode::UNAUTHORIZED);
}

/// Retries within a grace period, on every refresh store.
mod retries;

// ---------------------------------------------------------------------------------------------
// RFC 7009 revocation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_family() {
    let h = Harness::new();
    h.user("alice").await;
    let doomed = h.login("alice").await;
    let kept = h.login("alice").await;

    let answer = h.revoke(&[("token", &doomed.refresh)]).await;
    assert_eq!((answer.status, answer.json()), (StatusCode::OK, json!({})));
    assert_eq!(answer.header(CACHE_CONTROL), Some("no-store"));

    assert_oauth_error(&h.refresh(&doomed.refresh).await, 400, "invalid_grant");
    assert_eq!(h.me(&doomed.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(h.me(&kept.access).await, StatusCode::OK, "control");
    assert_eq!(
        h.refresh(&kept.refresh).await.status,
        StatusCode::OK,
        "control"
    );
}

#[tokio::test]
async fn revoking_an_access_token_ends_its_session() {
    let h = Harness::new();
    h.user("alice").await;
    let other = h.login("alice").await;
    // With the hint, and without (then the refresh store is searched first).
    for hint in [Some("access_token"), None] {
        let first = h.login("alice").await;
        let second = Tokens::from_answer(&h.refresh(&first.refresh).await);
        let mut params = vec![("token", first.access.as_str())];
        params.extend(hint.map(|hint| ("token_type_hint", hint)));
        let answer = h.revoke(&params).await;
        assert_eq!((answer.status, answer.json()), (StatusCode::OK, json!({})));
        // The whole session ends: every access token of it, and its refresh token.
        assert_eq!(
            h.me(&first.access).await,
            StatusCode::UNAUTHORIZED,
            "{hint:?}"
        );
        assert_eq!(
            h.me(&second.access).await,
            StatusCode::UNAUTHORIZED,
            "{hint:?}"
        );
        assert_oauth_error(&h.refresh(&second.refresh).await, 400, "invalid_grant");
        // Revoking it again changes nothing and adds nothing.
        let before = h.revocations();
        assert_eq!(h.revoke(&params).await.status, StatusCode::OK);
        assert_eq!(h.revocations(), before, "one entry per session");
    }
    // Other sessions live on.
    assert_eq!(h.me(&other.access).await, StatusCode::OK);
    assert_eq!(h.refresh(&other.refresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn revoking_an_unknown_token_is_200_and_a_missing_token_is_invalid_request() {
    let h = Harness::new();
    let random = "x".repeat(43);
    for unknown in ["not-a-token", "a.b.c", &random] {
        for hint in ["access_token", "refresh_token", "something_else"] {
            let answer = h
                .revoke(&[("token", unknown), ("token_type_hint", hint)])
                .await;
            assert_eq!(
                (answer.status, answer.json()),
                (StatusCode::OK, json!({})),
                "{unknown}"
            );
        }
    }
    assert_oauth_error(&h.revoke(&[]).await, 400, "invalid_request");
    let empty = [("token", ""), ("token_type_hint", "access_token")];
    assert_oauth_error(&h.revoke(&empty).await, 400, "invalid_request");
}

#[tokio::test]
async fn a_client_cannot_revoke_another_clients_tokens() {
    let h = Harness::new();
    h.user("alice").await;
    let mobile = h
        .tokens(&password_params("alice", &[("client_id", "mobile")]))
        .await;

    for (token, hint) in [
        (&mobile.refresh, "refresh_token"),
        (&mobile.access, "access_token"),
    ] {
        let params = [
            ("token", token.as_str()),
            ("token_type_hint", hint),
            ("client_id", "web"),
        ];
        // RFC 7009 §2.1: refused with an error, never a 200 that revoked nothing.
        let answer = h.revoke(&params).await;
        assert_oauth_error(&answer, 400, "unauthorized_client");
        assert_eq!(
            answer.json()["error_description"],
            "the token was not issued to this client"
        );
    }
    assert_eq!(h.me(&mobile.access).await, StatusCode::OK);
    let refreshed = h
        .tokens(&refresh_params(&mobile.refresh, &[("client_id", "mobile")]))
        .await;

    // Control: the owner can.
    let own = [
        ("token", refreshed.access.as_str()),
        ("client_id", "mobile"),
    ];
    assert_eq!(h.revoke(&own).await.status, StatusCode::OK);
    assert_eq!(h.me(&refreshed.access).await, StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------------------
// Shared state one account cannot exhaust, and outages that tell nothing
// ---------------------------------------------------------------------------------------------

/// A login past the per-user cap ends the user's oldest session, its access tokens included.
#[tokio::test]
async fn the_oldest_session_ends_when_a_login_passes_the_per_user_cap() {
    let h = Harness::with(|builder| builder.max_sessions_per_user(2).unwrap());
    h.user("alice").await;
    h.user("bob").await;
    let bob = h.login("bob").await;
    let mut sessions = Vec::new();
    for n in 0..3 {
        h.set_time(NOW + n);
        sessions.push(h.login("alice").await);
    }
    let [oldest, middle, newest] = <[Tokens; 3]>::try_from(sessions).unwrap();
    assert_eq!(h.me(&oldest.access).await, StatusCode::UNAUTHORIZED);
    assert_oauth_error(&h.refresh(&oldest.refresh).await, 400, "invalid_grant");
    for live in [&middle, &newest, &bob] {
        assert_eq!(h.me(&live.access).await, StatusCode::OK);
        assert_eq!(h.refresh(&live.refresh).await.status, StatusCode::OK);
    }
    assert!(
        AuthRouter::builder(ed25519_issuer())
            .max_sessions_per_user(0)
            .is_err()
    );
}

/// A revocation store at its cap records a revocation coarsely (every token of the issuer
/// issued until then) rather than fail or drop an entry: no revoked token stays valid.
#[tokio::test]
async fn a_full_revocation_store_never_leaves_a_revoked_token_valid() {
    // The store's clock, moved with the harness's.
    let store_clock = Arc::new(AtomicU64::new(NOW));
    let full = Arc::new(MemoryRevocationStore::new().max_entries(1).clock({
        let clock = Arc::clone(&store_clock);
        move || clock.load(Ordering::SeqCst)
    }));
    let h = Harness::with(|builder| builder.revocation_store(Arc::clone(&full) as _));
    h.user("alice").await;
    let first = h.login("alice").await;
    let second = h.login("alice").await;
    let bystander = h.login("alice").await;
    assert_eq!(
        h.logout("/auth/logout", Some(&first.access)).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(full.len(), 1, "the store is full");
    // Logging out the second session finds no room: refused all the same.
    assert_eq!(
        h.logout("/auth/logout", Some(&second.access)).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(full.len(), 1, "no entry was dropped or added");
    for revoked in [&first, &second] {
        assert_eq!(h.me(&revoked.access).await, StatusCode::UNAUTHORIZED);
        assert_oauth_error(&h.refresh(&revoked.refresh).await, 400, "invalid_grant");
    }
    // The cost: other sessions' tokens of that second are refused too, and their refresh
    // tokens still work, so their clients get fresh ones.
    assert_eq!(h.me(&bystander.access).await, StatusCode::UNAUTHORIZED);
    h.set_time(NOW + 1);
    store_clock.store(NOW + 1, Ordering::SeqCst);
    let fresh = Tokens::from_answer(&h.refresh(&bystander.refresh).await);
    assert_eq!(h.me(&fresh.access).await, StatusCode::OK);
}

/// A refresh store that works until `down` is set, and goes down by itself after its first
/// readiness check once `down_after_ready` is set (the outage begins while a password is
/// being checked).
#[derive(Default)]
struct Flaky {
    inner: tower_jwt_auth::router::MemoryRefreshStore,
    down: std::sync::atomic::AtomicBool,
    down_after_ready: std::sync::atomic::AtomicBool,
}

impl Flaky {
    fn check<T>(&self, then: impl FnOnce() -> StoreFuture<T>) -> StoreFuture<T> {
        if self.down.load(Ordering::SeqCst) {
            StoreFuture::ready(Err(StoreError::new("connection refused")))
        } else {
            then()
        }
    }
}

impl RefreshStore for Flaky {
    fn create(&self, session: RefreshSession, token: TokenHash, idle: u64) -> StoreFuture<()> {
        self.check(|| self.inner.create(session, token, idle))
    }
    fn get(&self, token: &TokenHash, now: u64) -> StoreFuture<Option<RefreshSession>> {
        self.check(|| self.inner.get(token, now))
    }
    fn rotate(
        &self,
        old: &TokenHash,
        new: TokenHash,
        now: u64,
        idle: u64,
        retry: Option<Retry>,
    ) -> StoreFuture<Rotation> {
        self.check(|| self.inner.rotate(old, new, now, idle, retry))
    }
    fn find_session(&self, token: &TokenHash) -> StoreFuture<Option<RefreshSession>> {
        self.check(|| self.inner.find_session(token))
    }
    fn revoke_session(&self, sid: &str) -> StoreFuture<Option<RefreshSession>> {
        self.check(|| self.inner.revoke_session(sid))
    }
    fn revoke_user(&self, user: &str, except: Option<&str>) -> StoreFuture<Vec<RefreshSession>> {
        self.check(|| self.inner.revoke_user(user, except))
    }
    fn end_oldest(&self, user: &str, keep: usize, now: u64) -> StoreFuture<Vec<RefreshSession>> {
        self.check(|| self.inner.end_oldest(user, keep, now))
    }
    fn ready(&self, now: u64) -> StoreFuture<()> {
        let answer = self.check(|| self.inner.ready(now));
        if self.down_after_ready.load(Ordering::SeqCst) {
            self.down.store(true, Ordering::SeqCst);
        }
        answer
    }
}

/// With the refresh store down, or going down while a password is checked, the right and a
/// wrong password get the same answer: a 503, never 400 for one and 503 for the other.
#[tokio::test]
async fn an_unreachable_refresh_store_answers_every_password_alike() {
    for mid_login in [false, true] {
        let mut answers = Vec::new();
        for password in [PASSWORD, WRONG] {
            let store = Arc::new(Flaky::default());
            let h = Harness::with(|builder| builder.refresh_store(Arc::clone(&store) as _));
            h.user("alice").await;
            store.down.store(!mid_login, Ordering::SeqCst);
            store.down_after_ready.store(mid_login, Ordering::SeqCst);
            let before = h.auth.hasher().stats();
            let answer = h.password_grant("alice", password).await;
            let hashed = h.auth.hasher().stats().verifications - before.verifications;
            answers.push((
                answer.status,
                answer.json(),
                answer.header("retry-after").map(str::to_owned),
                hashed,
            ));
        }
        assert_eq!(answers[0].0, StatusCode::SERVICE_UNAVAILABLE, "{answers:?}");
        assert_eq!(answers[0], answers[1], "mid-login: {mid_login}");
        // Down from the start: refused before any hashing.
        assert_eq!(answers[0].3, u64::from(mid_login));
    }
}

// ---------------------------------------------------------------------------------------------
// Logout
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn logout_ends_this_session_and_no_other() {
    let h = Harness::new();
    h.user("alice").await;
    let this = h.login("alice").await;
    let same_family = Tokens::from_answer(&h.refresh(&this.refresh).await);
    let other = h.login("alice").await;

    assert_eq!(
        h.logout("/auth/logout", None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.logout("/auth/logout", Some("not-a-token")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.me(&this.access).await, StatusCode::OK, "control");

    assert_eq!(
        h.logout("/auth/logout", Some(&this.access)).await,
        StatusCode::NO_CONTENT
    );

    assert_eq!(h.me(&this.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        h.me(&same_family.access).await,
        StatusCode::UNAUTHORIZED,
        "sid denylisted"
    );
    assert_oauth_error(&h.refresh(&same_family.refresh).await, 400, "invalid_grant");
    let again = h.logout("/auth/logout", Some(&this.access)).await;
    assert_eq!(again, StatusCode::UNAUTHORIZED);

    assert_eq!(h.me(&other.access).await, StatusCode::OK);
    assert_eq!(h.refresh(&other.refresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_user_and_no_other_users() {
    let h = Harness::new();
    h.user("alice").await;
    h.user("bob").await;
    let alice = [h.login("alice").await, h.login("alice").await];
    let bob = h.login("bob").await;

    assert_eq!(
        h.logout("/auth/logout/all", None).await,
        StatusCode::UNAUTHORIZED
    );
    let status = h.logout("/auth/logout/all", Some(&alice[0].access)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    for session in &alice {
        assert_eq!(h.me(&session.access).await, StatusCode::UNAUTHORIZED);
        assert_oauth_error(&h.refresh(&session.refresh).await, 400, "invalid_grant");
    }
    assert_eq!(h.me(&bob.access).await, StatusCode::OK);
    assert_eq!(h.refresh(&bob.refresh).await.status, StatusCode::OK);
    // Alice may log in again.
    let again = h.login("alice").await;
    assert_eq!(h.me(&again.access).await, StatusCode::OK);
}

#[tokio::test]
async fn logout_all_rejects_tokens_issued_before_it_whatever_their_session() {
    let h = Harness::new();
    let alice = h.user("alice").await;
    let t = NOW;
    let session = h.login("alice").await;
    h.set_time(t + 10);
    let status = h.logout("/auth/logout/all", Some(&session.access)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Tokens this router never saw (another instance's, with a fresh sid), minted at `iat`.
    let mint = |iat: u64, sid: &str| {
        h.set_time(iat);
        let grant = AccessGrant::new(&alice.id, DEFAULT_CLIENT_ID, sid);
        h.auth.issuer().issue(&grant).unwrap().token
    };
    let before = mint(t + 5, "fresh-sid-before");
    let at_logout = mint(t + 10, "fresh-sid-at");
    let after = mint(t + 11, "fresh-sid-after");
    h.set_time(t + 12);
    assert_eq!(h.me(&before).await, StatusCode::UNAUTHORIZED);
    assert_eq!(h.me(&at_logout).await, StatusCode::OK);
    assert_eq!(h.me(&after).await, StatusCode::OK);
}

/// The builder's clock sets how long revocations are kept, so the `MemoryRevocationStore` the
/// builder creates by default must judge them by that clock too, not the system clock (with an
/// injected clock in the past every revocation would be dropped as already expired). The
/// other tests pass their own store on the shared clock; this one keeps the default.
#[tokio::test]
async fn the_default_revocation_store_follows_the_router_clock() {
    let clock = Arc::new(AtomicU64::new(NOW));
    let (c1, c2) = (clock.clone(), clock.clone());
    let auth = AuthRouter::builder(ed25519_issuer().clock(move || at(&c1)))
        .hasher(cheap_hasher())
        .clock(move || at(&c2))
        .build()
        .unwrap();
    let h = Harness {
        app: app(&auth),
        auth,
        clock,
        // Not the router's: `revocations()` is unused here.
        revocation: Arc::new(MemoryRevocationStore::new()),
    };
    h.user("alice").await;
    let session = h.login("alice").await;
    assert_eq!(h.me(&session.access).await, StatusCode::OK, "control");

    assert_eq!(
        h.logout("/auth/logout", Some(&session.access)).await,
        StatusCode::NO_CONTENT
    );
    assert_oauth_error(&h.refresh(&session.refresh).await, 400, "invalid_grant");
    let status = h.me(&session.access).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the logged-out access token still works"
    );
}

// ---------------------------------------------------------------------------------------------
// Re-hashing and hostile stored hashes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_hash_with_weaker_argon2_params_is_upgraded_on_login() {
    let h = Harness::with(|b| b.hasher(hasher(2048)));
    let weak = cheap_hasher().hash(PASSWORD).await.unwrap();
    assert!(weak.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
    let user = h.user_with_hash("alice", &weak).await;

    // A failed login changes nothing.
    assert_oauth_error(
        &h.password_grant("alice", WRONG).await,
        400,
        "invalid_grant",
    );
    assert_eq!(h.stored_hash(&user).await, weak);

    h.login("alice").await;
    let upgraded = h.stored_hash(&user).await;
    assert!(
        upgraded.starts_with("$argon2id$v=19$m=2048,t=1,p=1$"),
        "{upgraded}"
    );
    assert!(!h.auth.hasher().needs_rehash(&upgraded));
    assert_eq!(h.stats().hashes, 1);

    // The new hash verifies and is not replaced again.
    h.login("alice").await;
    assert_eq!(h.stored_hash(&user).await, upgraded);
    assert_eq!(h.stats().hashes, 1);
}

#[cfg(feature = "bcrypt")]
#[tokio::test]
async fn a_legacy_bcrypt_hash_is_replaced_by_argon2id_on_login() {
    let h = Harness::new();
    let user = h.user_with_hash("legacy", PASSLIB_2B).await;
    assert_oauth_error(
        &h.password_grant("legacy", WRONG).await,
        400,
        "invalid_grant",
    );
    assert_eq!(h.stored_hash(&user).await, PASSLIB_2B);

    h.login("legacy").await;
    let replaced = h.stored_hash(&user).await;
    assert!(
        replaced.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
        "{replaced}"
    );
    assert_eq!(h.stats().hashes, 1);
    h.login("legacy").await;
    assert_eq!(h.stored_hash(&user).await, replaced);
}

#[cfg(not(feature = "bcrypt"))]
#[tokio::test]
async fn without_the_bcrypt_feature_a_bcrypt_user_gets_the_wrong_password_answer() {
    let h = Harness::new();
    h.user("alice").await;
    h.user_with_hash("legacy", PASSLIB_2B).await;
    let wrong_password = h.password_grant("alice", WRONG).await;
    let before = h.stats();
    let answer = h.password_grant("legacy", PASSWORD).await;
    assert_eq!(answer.observable(), wrong_password.observable());
    assert_eq!(h.stats(), before, "nothing ran");
}

#[tokio::test]
async fn a_stored_hash_with_absurd_params_is_invalid_grant_without_any_work() {
    let h = Harness::new();
    h.user("alice").await;
    let (salt, output) = ("c29tZXNhbHRzb21lc2FsdA", "A".repeat(43));
    let planted = format!("$argon2id$v=19$m=4194304,t=2,p=1${salt}${output}");
    h.user_with_hash("planted", &planted).await;
    h.user_with_hash("garbled", "$argon2id$v=19$m=1024").await;
    let wrong_password = h.password_grant("alice", WRONG).await;
    assert_oauth_error(&wrong_password, 400, "invalid_grant");
    h.login("alice").await;

    for username in ["planted", "garbled"] {
        let before = h.stats();
        let answer = h.password_grant(username, PASSWORD).await;
        assert_eq!(
            answer.observable(),
            wrong_password.observable(),
            "{username}"
        );
        assert_eq!(
            h.stats(),
            before,
            "{username}: nothing ran, nothing allocated"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Overload
// ---------------------------------------------------------------------------------------------

/// Deterministic without a hook in the hasher: it hashes on tokio's blocking pool, the runtime
/// gets one blocking thread and the test occupies it, so a login's argon2 task stays queued
/// while it holds the hasher's only place (`max_concurrent(1)`, `max_queued(0)`). Every other
/// login is then refused at once.
#[test]
fn a_busy_hasher_answers_503_with_retry_after() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .build()
        .unwrap();
    runtime.block_on(async {
        let hasher = PasswordHasher::builder()
            .params(1024, 1, 1)
            .unwrap()
            .threads(HashingThreads::BlockingPool)
            .max_concurrent(1)
            .unwrap()
            .max_queued(0)
            .retry_after(Duration::from_secs(3))
            .unwrap()
            .build()
            .unwrap();
        let h = Harness::with(|b| b.hasher(hasher));
        h.user("alice").await;

        let hold = common::BlockingHold::start();

        let mut in_flight = Box::pin(h.password_grant("alice", PASSWORD));
        for _ in 0..3 {
            assert!(poll_once(&mut in_flight).await.is_pending());
        }

        let attempts = [("alice", PASSWORD), ("mallory", PASSWORD), ("alice", WRONG)];
        for (username, password) in attempts {
            let answer = h.password_grant(username, password).await;
            assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{username}");
            assert_eq!(answer.header(RETRY_AFTER), Some("3"));
            assert_eq!(answer.header(CACHE_CONTROL), Some("no-store"));
            assert_eq!(answer.header(CONTENT_TYPE), Some("application/json"));
            let body = answer.json();
            assert_eq!(body["error"], "temporarily_unavailable");
            assert_eq!(
                members(&body),
                BTreeSet::from(["error", "error_description"])
            );
        }
        assert_eq!(h.stats().overloaded, 3);

        hold.release().await;
        Tokens::from_answer(&in_flight.await);
        h.login("alice").await;
        assert_eq!(h.stats().overloaded, 3);
    });
}

// ---------------------------------------------------------------------------------------------
// Body limit, methods, JWKS
// ---------------------------------------------------------------------------------------------

/// A valid login form of exactly `len` bytes (padded with a parameter the router ignores).
fn login_form_of_len(len: usize) -> String {
    let padded = format!("{}&pad=", form(&password_params("alice", &[])));
    format!("{padded}{}", "x".repeat(len - padded.len()))
}

#[tokio::test]
async fn bodies_over_8_kib_are_refused_with_413_with_or_without_a_length() {
    let h = Harness::new();
    h.user("alice").await;
    assert_eq!(MAX_BODY_BYTES, 8 * 1024);
    let fits = login_form_of_len(MAX_BODY_BYTES);
    let over = login_form_of_len(MAX_BODY_BYTES + 1);
    let with_length = |body: &str| {
        let request = post_raw("/auth/token", Some(FORM), body.to_owned());
        with_header(request, CONTENT_LENGTH, &body.len().to_string())
    };
    let without_length = |body: &str| post_raw("/auth/token", Some(FORM), chunked(body));

    for request in [with_length(&fits), without_length(&fits)] {
        assert_eq!(h.send(request).await.status, StatusCode::OK, "control");
    }
    for request in [with_length(&over), without_length(&over)] {
        let answer = h.send(request).await;
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(answer.json()["error"], "invalid_request");
        assert_eq!(answer.header(CACHE_CONTROL), Some("no-store"));
    }
    // The other endpoints that read a body share the limit.
    let big = format!("token={}", "x".repeat(MAX_BODY_BYTES));
    let revoke = post_raw("/auth/revoke", Some(FORM), chunked(&big));
    assert_eq!(h.send(revoke).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(h.stats().verifications, 2, "only the controls ran argon2");
}

#[tokio::test]
async fn get_on_the_token_endpoint_is_405_allowing_post() {
    let h = Harness::new();
    let answer = h
        .send(Request::get("/auth/token").body(Body::empty()).unwrap())
        .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.header(ALLOW), Some("POST"));
    // Control: the route is there for POST.
    assert_oauth_error(&h.token(&[]).await, 400, "invalid_request");
}

#[tokio::test]
async fn jwks_publishes_the_issuers_public_key_and_nothing_for_hmac() {
    let get_jwks = || Request::get("/auth/jwks.json").body(Body::empty()).unwrap();
    let h = Harness::new();
    let answer = h.send(get_jwks()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.header(CONTENT_TYPE),
        Some("application/jwk-set+json")
    );
    let jwks = answer.json();
    let [key] = jwks["keys"].as_array().unwrap().as_slice() else {
        panic!("one key: {jwks}")
    };
    assert_eq!(key["kid"], h.auth.issuer().kid());
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert!(key.get("d").is_none(), "no private member: {key}");

    // A resource server holding only the published document verifies the router's tokens.
    h.user("alice").await;
    let tokens = h.login("alice").await;
    let verifier = Verifier::builder(KeySet::from_jwks(&answer.body).unwrap())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .clock(|| UNIX_EPOCH + Duration::from_secs(NOW))
        .build()
        .unwrap();
    assert!(verifier.verify(&tokens.access).is_ok());

    let hmac = Harness::build(
        TokenIssuer::hmac(&[0x42; 32], ISSUER, AUDIENCE).unwrap(),
        |b| b,
    );
    let answer = hmac.send(get_jwks()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.header(CONTENT_TYPE),
        Some("application/jwk-set+json")
    );
    assert_eq!(answer.json(), json!({"keys": []}));
}

// ---------------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------------

fn with_registration() -> Harness {
    Harness::with(|b| {
        b.registration(Registration {
            roles: vec!["user".into()],
            scopes: vec!["items:read".into()],
        })
    })
}

async fn register(h: &Harness, body: Value) -> Answer {
    h.send(post_json("/auth/register", &body)).await
}

#[tokio::test]
async fn registration_creates_a_user_who_can_log_in() {
    let h = with_registration();
    let form = json!({"username": "Alice", "password": PASSWORD, "email": "alice@example.org"});
    let answer = register(&h, form).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json());
    let body = answer.json();
    let expected = [
        "sub",
        "username",
        "email",
        "roles",
        "scopes",
        "disabled",
        "email_verified",
    ];
    assert_eq!(members(&body), BTreeSet::from(expected));
    assert_eq!(body["username"], "alice", "normalised");
    assert_eq!(body["email"], "alice@example.org");
    assert_eq!(body["roles"], json!(["user"]));
    assert_eq!(body["scopes"], json!(["items:read"]));
    assert_eq!(body["disabled"], false);
    let text = String::from_utf8(answer.body.to_vec()).unwrap();
    assert!(
        !text.contains('$') && !text.contains("argon2"),
        "no hash: {text}"
    );
    assert!(!text.contains(PASSWORD), "{text}");

    let tokens = h.login("ALICE").await;
    assert_eq!(tokens.scope(), "items:read");
    let claims = h.claims(&tokens.access);
    assert_eq!(claims.subject(), body["sub"].as_str());
    assert_eq!(claims.roles(), ["user"]);

    let without_email = register(&h, json!({"username": "bob", "password": PASSWORD})).await;
    assert_eq!(without_email.status, StatusCode::CREATED);
    assert_eq!(without_email.json()["email"], Value::Null);
}

#[tokio::test]
async fn registration_refuses_a_taken_username_in_any_spelling_without_hashing() {
    let h = with_registration();
    let first = register(&h, json!({"username": "alice", "password": PASSWORD})).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let hashes = h.stats().hashes;
    // Case, padding and full-width letters all normalise to `alice`.
    for taken in ["alice", "ALICE", " Alice ", "ＡＬＩＣＥ"] {
        let answer = register(
            &h,
            json!({"username": taken, "password": "another password"}),
        )
        .await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{taken:?}");
        assert_eq!(answer.json()["error"], "username_taken");
    }
    // A mathematical letter is refused rather than mapped (RFC 8265).
    let math = json!({"username": "\u{1d41a}lice", "password": "another password"});
    assert_eq!(register(&h, math).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.stats().hashes, hashes);
    // Nothing was overwritten.
    h.login("alice").await;
}

#[tokio::test]
async fn registration_enforces_the_password_and_input_policy() {
    let h = with_registration();
    let accepted = [
        (
            "eight characters",
            json!({"username": "u1", "password": "12345678"}),
        ),
        (
            "eight characters in 16 bytes",
            json!({"username": "u2", "password": "éééééééé"}),
        ),
        (
            "1024 bytes",
            json!({"username": "u3", "password": "x".repeat(1024)}),
        ),
    ];
    for (case, body) in accepted {
        assert_eq!(
            register(&h, body).await.status,
            StatusCode::CREATED,
            "{case}"
        );
    }

    let refused = [
        (
            "seven characters",
            json!({"username": "v1", "password": "1234567"}),
        ),
        (
            "seven characters in 14 bytes",
            json!({"username": "v2", "password": "ééééééé"}),
        ),
        (
            "1025 bytes",
            json!({"username": "v3", "password": "x".repeat(1025)}),
        ),
        (
            "space in username",
            json!({"username": "al ice", "password": PASSWORD}),
        ),
        (
            "colon in username",
            json!({"username": "al:ice", "password": PASSWORD}),
        ),
        (
            "empty username",
            json!({"username": "", "password": PASSWORD}),
        ),
        (
            "65 characters",
            json!({"username": "x".repeat(65), "password": PASSWORD}),
        ),
        (
            "bad email",
            json!({"username": "v4", "password": PASSWORD, "email": "not-an-email"}),
        ),
        (
            "unknown field",
            json!({"username": "v5", "password": PASSWORD, "roles": ["admin"]}),
        ),
        ("missing password", json!({"username": "v6"})),
        (
            "number as password",
            json!({"username": "v7", "password": 12_345_678}),
        ),
    ];
    for (case, body) in refused {
        let answer = register(&h, body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{case}");
        assert_eq!(answer.json()["error"], "invalid_request", "{case}");
    }
    let body = json!({"username": "v8", "password": PASSWORD}).to_string();
    for content_type in [Some(FORM), Some("text/plain"), None] {
        let answer = h
            .send(post_raw("/auth/register", content_type, body.clone()))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{content_type:?}");
        assert_eq!(answer.json()["error"], "invalid_request");
    }
    assert_eq!(
        h.stats().hashes,
        3,
        "only the accepted passwords were hashed"
    );
}

/// Sent to `auth.router()` itself: in the app, the bearer layer also wraps axum's fallback, so
/// any unknown path there is a 401.
#[tokio::test]
async fn registration_is_absent_unless_enabled() {
    let body = json!({"username": "alice", "password": PASSWORD});
    let disabled = Harness::new();
    let answer = send(disabled.auth.router(), post_json("/register", &body)).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(
        disabled
            .auth
            .users()
            .find_by_username("alice")
            .await
            .unwrap()
            .is_none()
    );

    let enabled = with_registration();
    let answer = send(enabled.auth.router(), post_json("/register", &body)).await;
    assert_eq!(answer.status, StatusCode::CREATED, "control");
}

#[tokio::test]
async fn unicode_and_nul_passwords_round_trip_through_login_and_nul_ones_not_through_register() {
    let h = with_registration();
    let unicode = "pässwörd 🔑 密码 кириллица";
    let answer = register(&h, json!({"username": "unicode", "password": unicode})).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    // Registration refuses a password with a control character...
    let nul = "before\0after the nul";
    let answer = register(&h, json!({"username": "nul", "password": nul})).await;
    assert_oauth_error(&answer, 400, "invalid_request");
    let description = answer.json()["error_description"].to_string();
    assert!(description.contains("control"), "{description}");
    // ...but an account made with one otherwise (an admin tool, or an older version) logs in.
    h.auth
        .create_user("nul", nul, &["user"], &[])
        .await
        .unwrap();

    let cases = [
        ("unicode", unicode, "passwörd 🔑 密码 кириллица"),
        ("nul", nul, "before"),
    ];
    for (username, password, near_miss) in cases {
        // A form login and a JSON login carry the same bytes.
        Tokens::from_answer(&h.password_grant(username, password).await);
        let login = json!({"grant_type": "password", "username": username, "password": password});
        Tokens::from_answer(&h.send(post_json("/auth/token", &login)).await);
        let answer = h.password_grant(username, near_miss).await;
        assert_oauth_error(&answer, 400, "invalid_grant");
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 8414 metadata
// ---------------------------------------------------------------------------------------------

/// The metadata document of `auth` served under `base`, fetched at `path`.
async fn metadata(auth: &AuthRouter, base: &str, path: &str) -> Answer {
    let app: Router = auth.metadata_router(base).unwrap();
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

/// The metadata document of a router with these registered clients.
async fn metadata_with_clients(clients: Vec<Client>) -> Value {
    let mut builder = AuthRouter::builder(ed25519_issuer()).hasher(cheap_hasher());
    for client in clients {
        builder = builder.client(client).unwrap();
    }
    let auth = builder.build().unwrap();
    let path = "/.well-known/oauth-authorization-server";
    metadata(&auth, "https://api.example/auth", path)
        .await
        .json()
}

#[tokio::test]
async fn metadata_lists_the_endpoints_grants_and_client_methods_it_really_has() {
    let auth = AuthRouter::builder(ed25519_issuer())
        .hasher(cheap_hasher())
        .scopes_supported(["items:read", "items:write", "items:read"])
        .unwrap()
        .service_documentation("https://docs.example/api")
        .unwrap()
        .build()
        .unwrap();
    let answer = metadata(
        &auth,
        "https://api.example/auth/",
        "/.well-known/oauth-authorization-server",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header(CONTENT_TYPE), Some("application/json"));
    assert_eq!(answer.header(CACHE_CONTROL), Some("public, max-age=3600"));
    assert_eq!(
        answer.json(),
        json!({
            "issuer": ISSUER,
            "token_endpoint": "https://api.example/auth/token",
            "revocation_endpoint": "https://api.example/auth/revoke",
            "jwks_uri": "https://api.example/auth/jwks.json",
            "grant_types_supported": ["password", "refresh_token"],
            "response_types_supported": [],
            "scopes_supported": ["items:read", "items:write"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "service_documentation": "https://docs.example/api",
        })
    );

    // Registered clients: their grants and the methods they authenticate with.
    let confidential = Client::confidential("backend", SECRET)
        .unwrap()
        .grants(&[GrantType::Password]);
    let document = metadata_with_clients(vec![confidential]).await;
    assert_eq!(document["grant_types_supported"], json!(["password"]));
    assert_eq!(
        document["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert!(document.get("scopes_supported").is_none());
    let document = metadata_with_clients(vec![
        Client::confidential("backend", SECRET).unwrap(),
        Client::public("spa").unwrap(),
    ])
    .await;
    assert_eq!(
        document["revocation_endpoint_auth_methods_supported"],
        json!(["none", "client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        document["grant_types_supported"],
        json!(["password", "refresh_token"])
    );
}

#[tokio::test]
async fn metadata_of_an_issuer_with_a_path_is_under_that_path() {
    let issuer = TokenIssuer::from_pem(
        &fixture("ed25519.pkcs8.pem"),
        "https://id.example/tenants/acme/",
        AUDIENCE,
    )
    .unwrap();
    let auth = AuthRouter::builder(issuer)
        .hasher(cheap_hasher())
        .build()
        .unwrap();
    let answer = metadata(
        &auth,
        "https://id.example/tenants/acme/auth",
        "/.well-known/oauth-authorization-server/tenants/acme",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    // The issuer exactly as the tokens carry it.
    assert_eq!(answer.json()["issuer"], "https://id.example/tenants/acme/");
    let root = metadata(
        &auth,
        "https://id.example/tenants/acme/auth",
        "/.well-known/oauth-authorization-server",
    )
    .await;
    assert_eq!(root.status, StatusCode::NOT_FOUND);
}

#[test]
fn metadata_needs_urls_clients_can_use() {
    let auth = |issuer: &str| {
        AuthRouter::builder(
            TokenIssuer::from_pem(&fixture("ed25519.pkcs8.pem"), issuer, AUDIENCE).unwrap(),
        )
        .hasher(cheap_hasher())
        .build()
        .unwrap()
    };
    let good = auth(ISSUER);
    for base in [
        "/auth",
        "http://api.example/auth",
        "https://api.example/auth?x=1",
        "https://u:p@api.example/auth",
    ] {
        assert!(good.metadata_router::<()>(base).is_err(), "{base}");
    }
    for issuer in [
        "urn:example:issuer",
        "http://id.example",
        "https://id.example/#x",
    ] {
        assert!(
            auth(issuer)
                .metadata_router::<()>("https://api.example/auth")
                .is_err(),
            "{issuer}"
        );
    }
    let builder = || AuthRouter::builder(ed25519_issuer());
    assert!(builder().scopes_supported(["a b"]).is_err());
    assert!(builder().scopes_supported([""]).is_err());
    assert!(builder().service_documentation("docs.example").is_err());
}
