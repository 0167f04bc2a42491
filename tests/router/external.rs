//! External sign-in against a real `TestIssuer` on a loopback port: the router runs in-process,
//! the provider over HTTP (discovery, authorization, code exchange, JWKS). The whole flow, each
//! failure of the callback, the account policies, linking and unlinking, and the code grant.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE};
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;
use tower_jwt_auth::issuer::TokenIssuer;
use tower_jwt_auth::mail::LogMailer;
use tower_jwt_auth::password::PasswordHasher;
use tower_jwt_auth::ratelimit::{ClientAddr, LoginLimits, MemoryLimiterStore, RateLimitLoginLayer};
use tower_jwt_auth::router::external::{CODE_TTL, ExternalSignIn, FLOW_TTL, Provider, Signup};
use tower_jwt_auth::router::{
    AuthRouter, AuthRouterBuilder, Client as OAuthClient, GrantType, MemoryOneTimeStore,
    Registration, UserChange,
};
use tower_jwt_auth::testing::{TestIssuer, TestUser, TokenBuilder};

use crate::common::answer::{Answer, answer};

const BASE: &str = "http://127.0.0.1:3000/auth";
const FRONT: &str = "http://127.0.0.1:5173/signed-in";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

struct Ext {
    idp: TestIssuer,
    auth: AuthRouter,
    app: Router,
}

/// How far a browser got.
#[derive(Debug)]
enum Ended {
    /// Back at the front end with these query parameters.
    Front(Vec<(String, String)>),
    /// A page of the router, with its status.
    Page(StatusCode, String),
}

impl Ended {
    #[track_caller]
    fn param(&self, name: &str) -> String {
        match self {
            Self::Front(params) => params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {name} in {params:?}")),
            Self::Page(status, body) => panic!("a {status} page: {body}"),
        }
    }

    #[track_caller]
    fn error(&self) -> String {
        self.param("error")
    }
}

impl Ext {
    async fn new(configure: impl FnOnce(ExternalSignIn) -> ExternalSignIn) -> Self {
        Self::with(configure, |builder| builder).await
    }

    async fn with(
        configure: impl FnOnce(ExternalSignIn) -> ExternalSignIn,
        router: impl FnOnce(AuthRouterBuilder) -> AuthRouterBuilder,
    ) -> Self {
        let idp = TestIssuer::start().await.unwrap();
        let provider =
            Provider::oidc("idp", idp.issuer(), idp.client_id(), idp.client_secret()).unwrap();
        let external = ExternalSignIn::new(BASE)
            .unwrap()
            .provider(provider)
            .unwrap()
            .allowed_redirect("http://127.0.0.1:5173")
            .unwrap();
        let hasher = PasswordHasher::builder()
            .params(1024, 1, 1)
            .unwrap()
            .build()
            .unwrap();
        let issuer = TokenIssuer::generate_ed25519("https://api.test", "api").unwrap();
        let builder = AuthRouter::builder(issuer)
            .hasher(hasher)
            .external_sign_in(configure(external));
        let auth = router(builder).build().unwrap();
        // Every answer is checked against the router's OpenAPI document.
        let app =
            crate::common::openapi::documented(&auth, Router::new().nest("/auth", auth.router()));
        Self { idp, auth, app }
    }

    async fn call(&self, mut request: Request<Body>) -> Answer {
        request
            .extensions_mut()
            .insert(ClientAddr(IpAddr::from([192, 0, 2, 7])));
        answer(self.app.clone().oneshot(request).await.unwrap()).await
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        let mut request = Request::get(path);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        self.call(request.body(Body::empty()).unwrap()).await
    }

    /// `GET /auth/external/idp/start` for the front end: the provider's address and the cookie.
    async fn start(&self) -> (String, String) {
        let path = start_path(FRONT);
        self.started(&path).await
    }

    async fn started(&self, path: &str) -> (String, String) {
        let started = self.get(path, None).await;
        assert_eq!(started.status, StatusCode::FOUND, "{}", started.text());
        let cookie = started.header(SET_COOKIE).unwrap();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        let cookie = cookie.split(';').next().unwrap().to_owned();
        (started.header(LOCATION).unwrap().to_owned(), cookie)
    }

    /// The browser at the provider: the address it is sent back to.
    async fn authorize(&self, location: &str) -> String {
        assert!(location.starts_with(&format!("{}/authorize?", self.idp.issuer())));
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let answer = client.get(location.parse().unwrap()).await.unwrap();
        assert_eq!(answer.status(), StatusCode::FOUND);
        answer.headers()[LOCATION].to_str().unwrap().to_owned()
    }

    /// The browser back at the router's callback, with `cookie`.
    async fn callback(&self, location: &str, cookie: Option<&str>) -> Ended {
        let path = location
            .strip_prefix("http://127.0.0.1:3000")
            .unwrap_or_else(|| panic!("not the callback: {location}"));
        let answer = self.get(path, cookie).await;
        if answer.status != StatusCode::FOUND {
            return Ended::Page(answer.status, answer.text());
        }
        assert!(answer.header(SET_COOKIE).unwrap().contains("Max-Age=0"));
        let location = answer.header(LOCATION).unwrap();
        let query = location
            .strip_prefix(&format!("{FRONT}?"))
            .unwrap_or_else(|| panic!("not the front end: {location}"));
        Ended::Front(
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The whole browser journey, from the start to the front end.
    async fn sign_in(&self) -> Ended {
        let (location, cookie) = self.start().await;
        let back = self.authorize(&location).await;
        self.callback(&back, Some(&cookie)).await
    }

    async fn exchange(&self, code: &str, verifier: &str) -> Answer {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("code_verifier", verifier)
            .finish();
        self.token(body).await
    }

    /// A form-encoded `POST /auth/token`.
    async fn token(&self, form: impl Into<String>) -> Answer {
        self.call(
            Request::post("/auth/token")
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form.into()))
                .unwrap(),
        )
        .await
    }

    /// Signs in and exchanges the code: the token answer.
    async fn tokens(&self) -> Value {
        let code = self.sign_in().await.param("code");
        let answer = self.exchange(&code, VERIFIER).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        answer.json()
    }

    async fn me(&self, access: &str) -> Value {
        let answer = self
            .call(
                Request::get("/auth/me")
                    .header(AUTHORIZATION, format!("Bearer {access}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        answer.json()
    }
}

/// The front end's start address with `redirect_to`.
fn start_path(redirect_to: &str) -> String {
    format!(
        "/auth/external/idp/start?redirect_to={}&code_challenge={}&code_challenge_method=S256",
        urlencode(redirect_to),
        s256(VERIFIER)
    )
}

fn urlencode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn ann() -> TestUser {
    TestUser::new("ann-at-idp")
        .email("ann@corp.example", true)
        .name("Ann Lee")
}

// ---------------------------------------------------------------------------------------------
// The flow
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_sign_in_ends_in_a_session_like_a_password_login() {
    let ext = Ext::new(|e| e).await;
    ext.idp.sign_in_as(ann());
    let (location, cookie) = ext.start().await;
    // PKCE, state and nonce towards the provider, never the front end's own challenge.
    let params: Vec<(String, String)> =
        form_urlencoded::parse(location.split_once('?').unwrap().1.as_bytes())
            .into_owned()
            .collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("code_challenge_method").as_deref(), Some("S256"));
    assert_ne!(get("code_challenge"), Some(s256(VERIFIER)));
    assert!(get("state").unwrap().len() >= 43 && get("nonce").unwrap().len() >= 43);
    assert_eq!(
        get("redirect_uri").as_deref(),
        Some("http://127.0.0.1:3000/auth/external/idp/callback")
    );
    assert_eq!(get("scope").as_deref(), Some("openid email profile"));

    let back = ext.authorize(&location).await;
    let code = ext.callback(&back, Some(&cookie)).await.param("code");
    // A wrong verifier uses the code up; so does any second use.
    let wrong = ext.exchange(&code, &"x".repeat(43)).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong.json()["error"], "invalid_grant");
    assert_eq!(
        ext.exchange(&code, VERIFIER).await.json()["error"],
        "invalid_grant"
    );

    let tokens = ext.tokens().await;
    let me = ext.me(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(me["username"], "ann-lee");
    assert_eq!(me["email"], "ann@corp.example");
    assert_eq!(me["email_verified"], true, "the provider proved it");
    // A session like any other: it refreshes, and the same identity finds the same account.
    let refresh = ext
        .token(format!(
            "grant_type=refresh_token&refresh_token={}",
            tokens["refresh_token"].as_str().unwrap()
        ))
        .await;
    assert_eq!(refresh.status, StatusCode::OK, "{}", refresh.text());
    let again = ext.tokens().await;
    assert_eq!(
        ext.me(again["access_token"].as_str().unwrap()).await["sub"],
        me["sub"]
    );
    // No password opens the account.
    let login = ext
        .token("grant_type=password&username=ann-lee&password=anything")
        .await;
    assert_eq!(login.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn the_callback_refuses_what_this_browser_did_not_start() {
    let ext = Ext::new(|e| e).await;
    // No state, or one that was never issued: a page, never a redirect.
    for path in [
        "/auth/external/idp/callback?code=x",
        "/auth/external/idp/callback?code=x&state=forged",
    ] {
        let page = ext.get(path, None).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(page.header(LOCATION).is_none());
        assert!(page.header(CONTENT_TYPE).unwrap().starts_with("text/html"));
    }
    // Another browser (no cookie, or another one) finishing this sign-in.
    let (location, _) = ext.start().await;
    let back = ext.authorize(&location).await;
    assert_eq!(ext.callback(&back, None).await.error(), "invalid_request");
    let (location, _) = ext.start().await;
    let back = ext.authorize(&location).await;
    assert_eq!(
        ext.callback(&back, Some("tja-external=someone-else"))
            .await
            .error(),
        "invalid_request"
    );
    // A replayed callback finds its sign-in used up.
    let (location, cookie) = ext.start().await;
    let back = ext.authorize(&location).await;
    ext.callback(&back, Some(&cookie)).await.param("code");
    match ext.callback(&back, Some(&cookie)).await {
        Ended::Page(status, _) => assert_eq!(status, StatusCode::BAD_REQUEST),
        ended => panic!("a replay ended {ended:?}"),
    }
    // A callback naming another issuer (RFC 9207 mix-up).
    let (location, cookie) = ext.start().await;
    let back = ext.authorize(&location).await;
    let mixed = back.replace("iss=http", "iss=https");
    assert_eq!(
        ext.callback(&mixed, Some(&cookie)).await.error(),
        "invalid_request"
    );
    // The user declining at the provider.
    ext.idp.refuse_next_login("access_denied");
    assert_eq!(ext.sign_in().await.error(), "access_denied");
}

type Tamper = Box<dyn for<'a> FnOnce(TokenBuilder<'a>) -> TokenBuilder<'a> + Send>;

fn tamper(f: impl for<'a> FnOnce(TokenBuilder<'a>) -> TokenBuilder<'a> + Send + 'static) -> Tamper {
    Box::new(f)
}

/// Each case changes the next ID token the provider signs; every one must end the sign-in with
/// `invalid_token`.
async fn refuse_id_tokens(ext: &Ext, cases: Vec<(&str, Tamper)>) {
    for (what, change) in cases {
        ext.idp.tamper_next_id_token(change);
        assert_eq!(ext.sign_in().await.error(), "invalid_token", "{what}");
    }
}

#[tokio::test]
async fn id_tokens_that_do_not_verify_open_no_session() {
    let ext = Ext::new(|e| e).await;
    refuse_id_tokens(
        &ext,
        vec![
            ("nonce", tamper(|t| t.claim("nonce", "another"))),
            ("no nonce", tamper(|t| t.without("nonce"))),
            ("audience", tamper(|t| t.audience("another-client"))),
            ("expired", tamper(|t| t.expired())),
            ("unknown key", tamper(|t| t.wrong_key())),
            ("azp", tamper(|t| t.claim("azp", "another-client"))),
        ],
    )
    .await;
    assert_eq!(ext.auth.users().page(None, 10).await.unwrap().len(), 0);
    // Untouched, it works.
    ext.sign_in().await.param("code");
}

#[tokio::test]
async fn a_provider_that_is_down_gets_503_at_the_start_and_an_error_at_the_callback() {
    let ext = Ext::new(|e| e).await;
    ext.idp.set_available(false);
    let path = start_path(FRONT);
    let down = ext.get(&path, None).await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(down.header(RETRY_AFTER).is_some());
    ext.idp.set_available(true);
    let (location, cookie) = ext.start().await;
    let back = ext.authorize(&location).await;
    ext.idp.set_available(false);
    assert_eq!(
        ext.callback(&back, Some(&cookie)).await.error(),
        "temporarily_unavailable"
    );
}

#[tokio::test]
async fn redirect_to_is_only_ever_a_first_party_address() {
    let ext = Ext::new(|e| e).await;
    for target in [
        "https://evil.example/",
        "//evil.example/",
        "http://127.0.0.1:5173@evil.example/",
        "http://127.0.0.1:51730/",
        "javascript:alert(1)",
        "/relative",
        "http://127.0.0.1:5173\\@evil.example/",
        "",
    ] {
        let path = start_path(target);
        let page = ext.get(&path, None).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{target}");
        assert!(page.header(LOCATION).is_none(), "{target}");
        assert!(!page.text().contains("evil"), "nothing echoed");
    }
    // The router's own origin is allowed; a front end without PKCE is sent back with an error.
    let own = start_path("http://127.0.0.1:3000/");
    assert_eq!(ext.get(&own, None).await.status, StatusCode::FOUND);
    for pkce in [
        "",
        "&code_challenge=abc&code_challenge_method=S256",
        "&code_challenge_method=plain",
    ] {
        let path = format!(
            "/auth/external/idp/start?redirect_to={}{pkce}",
            urlencode(FRONT)
        );
        let back = ext.get(&path, None).await;
        assert_eq!(back.status, StatusCode::FOUND);
        assert_eq!(
            back.header(LOCATION).unwrap(),
            format!("{FRONT}?error=invalid_request")
        );
    }
    let unknown = ext.get("/auth/external/nope/start", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn forged_callbacks_count_as_failed_logins() {
    let limits = LoginLimits::default()
        .per_client(3, Duration::from_secs(3600), 3)
        .unwrap();
    let limiter = RateLimitLoginLayer::new(Arc::new(MemoryLimiterStore::new(limits)));
    let ext = Ext::with(|e| e, |b| b.rate_limit(limiter)).await;
    // A real sign-in is no failure.
    ext.sign_in().await.param("code");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let forged = ext
            .get("/auth/external/idp/callback?state=guess&code=x", None)
            .await;
        statuses.push(forged.status.as_u16());
    }
    assert_eq!(statuses, [400, 400, 400, 429]);
    // The client is refused at the start too.
    let path = start_path(FRONT);
    assert_eq!(
        ext.get(&path, None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

// ---------------------------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------------------------

/// A router with e-mail verification (so local addresses can be verified) and linking by
/// e-mail, and a local `ann` with the provider's address.
async fn with_local_ann(link: bool, verified: bool) -> Ext {
    let ext = Ext::with(
        |e| e.link_by_email(link).signup(Signup::Closed),
        |b| {
            b.mail(Arc::new(LogMailer), "http://127.0.0.1:5173")
                .unwrap()
                .email_verification(true)
        },
    )
    .await;
    let local = ext
        .auth
        .create_user("ann", "correct horse battery staple", &["user"], &[])
        .await
        .unwrap();
    // Give her the address, verified or not, as a registration and a click would.
    let users = ext.auth.users();
    users.delete(&local.id, None).await.unwrap();
    let created = users
        .create(tower_jwt_auth::router::NewUser {
            username: "ann".to_owned(),
            email: Some("ann@corp.example".to_owned()),
            password_hash: local.password_hash.clone(),
            roles: vec![],
            scopes: vec![],
        })
        .await
        .unwrap();
    let tower_jwt_auth::router::Created::Created(ann) = created else {
        panic!("{created:?}")
    };
    let verify = UserChange {
        email_verified: Some(verified),
        ..UserChange::default()
    };
    users.update(&ann.id, verify, None).await.unwrap();
    ext
}

#[tokio::test]
async fn linking_by_email_needs_both_addresses_verified() {
    // Both verified and linking on: the identity joins the local account.
    let ext = with_local_ann(true, true).await;
    ext.idp.sign_in_as(ann());
    let tokens = ext.tokens().await;
    let me = ext.me(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(me["username"], "ann");
    let identities = ext
        .auth
        .users()
        .identities(me["sub"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0].subject, "ann-at-idp");

    // The provider does not vouch for the address: never linked (and sign-up is closed).
    let ext = with_local_ann(true, true).await;
    ext.idp
        .sign_in_as(TestUser::new("mallory").email("ann@corp.example", false));
    assert_eq!(ext.sign_in().await.error(), "signup_closed");

    // The local address was never proven (pre-hijacking): not linked.
    let ext = with_local_ann(true, false).await;
    ext.idp.sign_in_as(ann());
    assert_eq!(ext.sign_in().await.error(), "account_exists");

    // Linking off: not linked either.
    let ext = with_local_ann(false, true).await;
    ext.idp.sign_in_as(ann());
    assert_eq!(ext.sign_in().await.error(), "account_exists");
}

#[tokio::test]
async fn without_email_verification_an_address_never_links() {
    let ext = Ext::new(|e| e.link_by_email(true)).await;
    let local = ext
        .auth
        .create_user("ann", "correct horse battery staple", &[], &[])
        .await
        .unwrap();
    // Even an address an administrator marked verified: the router does not check addresses.
    let users = ext.auth.users();
    users.delete(&local.id, None).await.unwrap();
    users
        .create(tower_jwt_auth::router::NewUser {
            username: "ann".to_owned(),
            email: Some("ann@corp.example".to_owned()),
            password_hash: local.password_hash,
            roles: vec![],
            scopes: vec![],
        })
        .await
        .unwrap();
    ext.idp.sign_in_as(ann());
    assert_eq!(ext.sign_in().await.error(), "account_exists");
}

#[tokio::test]
async fn the_signup_policy_decides_who_gets_an_account() {
    let ext = Ext::new(|e| e.signup(Signup::domains(["corp.example"]).unwrap())).await;
    ext.idp
        .sign_in_as(TestUser::new("a").email("a@corp.example", false));
    assert_eq!(ext.sign_in().await.error(), "signup_closed", "unverified");
    ext.idp
        .sign_in_as(TestUser::new("b").email("b@other.example", true));
    assert_eq!(ext.sign_in().await.error(), "signup_closed", "other domain");
    ext.idp.sign_in_as(TestUser::new("c"));
    assert_eq!(ext.sign_in().await.error(), "signup_closed", "no address");
    ext.idp
        .sign_in_as(TestUser::new("d").email("d@corp.example", true));
    ext.sign_in().await.param("code");

    let ext = Ext::new(|e| e.signup(Signup::Closed)).await;
    assert_eq!(ext.sign_in().await.error(), "signup_closed");
    assert!(ext.auth.users().page(None, 10).await.unwrap().is_empty());

    // Open: a provider's unverified address is not taken over.
    let ext = Ext::new(|e| e).await;
    ext.idp
        .sign_in_as(TestUser::new("e").email("e@corp.example", false));
    let tokens = ext.tokens().await;
    let me = ext.me(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(me["email"], Value::Null);
}

#[tokio::test]
async fn a_disabled_account_cannot_sign_in_with_its_identity() {
    let ext = Ext::new(|e| e).await;
    let tokens = ext.tokens().await;
    let sub = ext.me(tokens["access_token"].as_str().unwrap()).await["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let disable = UserChange {
        disabled: Some(true),
        ..UserChange::default()
    };
    ext.auth.users().update(&sub, disable, None).await.unwrap();
    assert_eq!(ext.sign_in().await.error(), "access_denied");
}

// ---------------------------------------------------------------------------------------------
// Linking, unlinking
// ---------------------------------------------------------------------------------------------

async fn bearer_json(ext: &Ext, method: &str, path: &str, token: &str, body: Value) -> Answer {
    ext.call(
        Request::builder()
            .method(method)
            .uri(path)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_signed_in_user_links_and_unlinks_a_provider() {
    let ext = Ext::new(|e| e).await;
    let bob = ext.password_user("bob").await;
    let link = "/auth/external/idp/link";
    // Not to a foreign address, not without PKCE, and not without a token.
    let foreign = json!({"redirect_to": "https://evil.example/", "code_challenge": s256(VERIFIER), "code_challenge_method": "S256"});
    assert_eq!(
        bearer_json(&ext, "POST", link, &bob, foreign).await.status,
        StatusCode::BAD_REQUEST
    );
    let plain =
        json!({"redirect_to": FRONT, "code_challenge": VERIFIER, "code_challenge_method": "plain"});
    assert_eq!(
        bearer_json(&ext, "POST", link, &bob, plain).await.status,
        StatusCode::BAD_REQUEST
    );
    let anonymous = ext
        .call(Request::post(link).body(Body::empty()).unwrap())
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    ext.idp.sign_in_as(TestUser::new("bob-at-idp"));
    let (path, link_code) = ext.link_sign_in(&bob).await;
    // The link address is single use.
    assert_eq!(ext.get(&path, None).await.status, StatusCode::BAD_REQUEST);
    // Claimed by no one but bob's front end: another account's token, a wrong verifier.
    let carol = ext.tokens_of("carol-at-idp").await;
    let claim = |code: &str, verifier: &str| json!({"link_code": code, "code_verifier": verifier});
    let stolen = bearer_json(&ext, "PUT", link, &carol, claim(&link_code, VERIFIER)).await;
    assert_eq!(stolen.json()["error"], "invalid_grant");
    // That attempt used the code up; a new sign-in, then a wrong verifier.
    ext.idp.sign_in_as(TestUser::new("bob-at-idp"));
    let (_, link_code) = ext.link_sign_in(&bob).await;
    let wrong = bearer_json(&ext, "PUT", link, &bob, claim(&link_code, &"x".repeat(43))).await;
    assert_eq!(wrong.json()["error"], "invalid_grant");
    assert!(
        ext.auth
            .users()
            .find_by_identity(ext.idp.issuer(), "bob-at-idp")
            .await
            .unwrap()
            .is_none()
    );
    ext.idp.sign_in_as(TestUser::new("bob-at-idp"));
    let (_, link_code) = ext.link_sign_in(&bob).await;
    let linked = bearer_json(&ext, "PUT", link, &bob, claim(&link_code, VERIFIER)).await;
    assert_eq!(linked.status, StatusCode::NO_CONTENT, "{}", linked.text());
    // The identity now signs in to bob.
    let tokens = ext.tokens().await;
    assert_eq!(
        ext.me(tokens["access_token"].as_str().unwrap()).await["username"],
        "bob"
    );
    // Linking it again changes nothing; a second identity of the same provider is refused.
    let (_, link_code) = ext.link_sign_in(&bob).await;
    let again = bearer_json(&ext, "PUT", link, &bob, claim(&link_code, VERIFIER)).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    ext.idp.sign_in_as(TestUser::new("bob-elsewhere"));
    let (_, link_code) = ext.link_sign_in(&bob).await;
    let second = bearer_json(&ext, "PUT", link, &bob, claim(&link_code, VERIFIER)).await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert_eq!(second.json()["error"], "provider_taken");

    // Someone else's identity cannot be linked to another account.
    ext.idp.sign_in_as(TestUser::new("bob-at-idp"));
    let (_, link_code) = ext.link_sign_in(&carol).await;
    let taken = bearer_json(&ext, "PUT", link, &carol, claim(&link_code, VERIFIER)).await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(taken.json()["error"], "identity_taken");

    // Carol has no password: her only identity stays.
    let last = bearer_json(&ext, "DELETE", link, &carol, json!({})).await;
    assert_eq!(last.status, StatusCode::CONFLICT);
    assert_eq!(last.json()["error"], "last_sign_in_method");
    // Bob has one: his goes, then there is nothing to unlink.
    let gone = bearer_json(&ext, "DELETE", link, &bob, json!({})).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let again = bearer_json(&ext, "DELETE", link, &bob, json!({})).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    for method in ["DELETE", "PUT", "POST"] {
        let unknown = bearer_json(&ext, method, "/auth/external/nope/link", &bob, json!({})).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{method}");
    }
}

#[tokio::test]
async fn a_link_address_minted_by_someone_else_links_nothing_to_their_account() {
    let ext = Ext::new(|e| e).await;
    let mallory = ext.password_user("mallory").await;
    // Mallory mints a link address for her account and sends the victim's browser to it.
    let answer = bearer_json(
        &ext,
        "POST",
        "/auth/external/idp/link",
        &mallory,
        json!({"redirect_to": FRONT, "code_challenge": s256(VERIFIER), "code_challenge_method": "S256"}),
    )
    .await;
    let url = answer.json()["authorization_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = url
        .strip_prefix("http://127.0.0.1:3000")
        .unwrap()
        .to_owned();
    // From her page: the browser says so, and the start is refused.
    let mut request = Request::get(path.as_str())
        .header("sec-fetch-site", "cross-site")
        .header("referer", "https://mallory.example/");
    let refused = ext.call(request.body(Body::empty()).unwrap()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.header(LOCATION).is_none());
    // From a mail or a chat (no page): the victim signs in at the provider, and the identity is
    // not linked; the link code lands in the victim's own front end.
    request = Request::get(path.as_str()).header("sec-fetch-site", "none");
    let started = ext.call(request.body(Body::empty()).unwrap()).await;
    assert_eq!(started.status, StatusCode::FOUND);
    let cookie = started
        .header(SET_COOKIE)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    ext.idp.sign_in_as(TestUser::new("victim-at-idp"));
    let back = ext.authorize(started.header(LOCATION).unwrap()).await;
    ext.callback(&back, Some(&cookie)).await.param("link_code");
    assert!(
        ext.auth
            .users()
            .find_by_identity(ext.idp.issuer(), "victim-at-idp")
            .await
            .unwrap()
            .is_none()
    );
    // A front end on an allowed origin on another site may still start sign-ins.
    let request = Request::get(start_path(FRONT))
        .header("sec-fetch-site", "cross-site")
        .header("referer", "http://127.0.0.1:5173/login");
    assert_eq!(
        ext.call(request.body(Body::empty()).unwrap()).await.status,
        StatusCode::FOUND
    );
}

impl Ext {
    /// A local account with a password: its access token.
    async fn password_user(&self, name: &str) -> String {
        self.auth
            .create_user(name, "correct horse battery staple", &[], &[])
            .await
            .unwrap();
        let login = self
            .token(format!(
                "grant_type=password&username={name}&password=correct+horse+battery+staple"
            ))
            .await;
        login.json()["access_token"].as_str().unwrap().to_owned()
    }

    /// A linking sign-in for the account of `access`, through the provider and back: the link
    /// address (used up) and the link code it ended with.
    async fn link_sign_in(&self, access: &str) -> (String, String) {
        let body = json!({"redirect_to": FRONT, "code_challenge": s256(VERIFIER), "code_challenge_method": "S256"});
        let answer = bearer_json(self, "POST", "/auth/external/idp/link", access, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let url = answer.json()["authorization_url"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = url
            .strip_prefix("http://127.0.0.1:3000")
            .unwrap()
            .to_owned();
        let (location, cookie) = self.started(&path).await;
        let back = self.authorize(&location).await;
        let code = self.callback(&back, Some(&cookie)).await.param("link_code");
        (path, code)
    }

    /// Signs in as a new provider user `subject`: an access token of the account it created.
    async fn tokens_of(&self, subject: &str) -> String {
        self.idp.sign_in_as(TestUser::new(subject));
        self.tokens().await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

#[tokio::test]
async fn the_code_grant_needs_external_sign_in_and_its_parameters() {
    let ext = Ext::new(|e| e).await;
    let missing = ext.token("grant_type=authorization_code&code=x").await;
    assert_eq!(missing.json()["error"], "invalid_request");
    assert_eq!(
        ext.exchange("x", "short").await.json()["error"],
        "invalid_request"
    );
    assert_eq!(
        ext.exchange("x", VERIFIER).await.json()["error"],
        "invalid_grant"
    );

    // A router without external sign-in does not know the grant.
    let plain =
        AuthRouter::builder(TokenIssuer::generate_ed25519("https://api.test", "api").unwrap())
            .build()
            .unwrap();
    let app: Router = Router::new().nest("/auth", plain.router());
    let answer = answer(
        app.oneshot(
            Request::post("/auth/token")
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!(
                    "grant_type=authorization_code&code=x&code_verifier={VERIFIER}"
                )))
                .unwrap(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(answer.json()["error"], "unsupported_grant_type");
}

// ---------------------------------------------------------------------------------------------
// GitHub, against a double of its web site and API
// ---------------------------------------------------------------------------------------------

mod github {
    use wiremock::matchers::{body_string_contains, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    async fn github(emails: Value, token_answer: Value) -> (MockServer, Ext) {
        let site = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/login/oauth/access_token"))
            .and(header("accept", "application/json"))
            .and(body_string_contains("client_id=gh-client"))
            .and(body_string_contains("client_secret=gh-secret-0123456789"))
            .and(body_string_contains("code=gh-code"))
            .and(body_string_contains("code_verifier="))
            .respond_with(ResponseTemplate::new(200).set_body_json(token_answer))
            .mount(&site)
            .await;
        Mock::given(method("GET"))
            .and(path("/user"))
            .and(header("authorization", "Bearer gho_token"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"id": 583231, "login": "octocat"})),
            )
            .mount(&site)
            .await;
        Mock::given(method("GET"))
            .and(path("/user/emails"))
            .and(header("authorization", "Bearer gho_token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(emails))
            .mount(&site)
            .await;
        let provider = Provider::github("gh-client", "gh-secret-0123456789")
            .unwrap()
            .github_endpoints(&site.uri(), &site.uri())
            .unwrap();
        let ext = Ext::with(|e| e.provider(provider).unwrap(), |b| b).await;
        (site, ext)
    }

    /// Starts a GitHub sign-in and comes back as GitHub would, with `gh-code`.
    async fn sign_in(site: &MockServer, ext: &Ext) -> Ended {
        let path = start_path(FRONT).replace("/idp/", "/github/");
        let (location, cookie) = ext.started(&path).await;
        let query = location
            .strip_prefix(&format!("{}/login/oauth/authorize?", site.uri()))
            .unwrap_or_else(|| panic!("not GitHub: {location}"));
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |name: &str| params.iter().find(|(n, _)| n == name).unwrap().1.clone();
        assert_eq!(get("scope"), "read:user user:email");
        assert_eq!(get("client_id"), "gh-client");
        assert!(
            params.iter().all(|(n, _)| n != "nonce"),
            "no ID token, no nonce"
        );
        let back = format!(
            "http://127.0.0.1:3000/auth/external/github/callback?code=gh-code&state={}",
            urlencode(&get("state"))
        );
        ext.callback(&back, Some(&cookie)).await
    }

    #[tokio::test]
    async fn the_github_user_is_its_account_id_with_its_verified_primary_address() {
        let emails = json!([
            {"email": "old@corp.example", "primary": false, "verified": true},
            {"email": "octo@corp.example", "primary": true, "verified": true},
        ]);
        let token = json!({"access_token": "gho_token", "token_type": "bearer", "scope": "read:user,user:email"});
        let (site, ext) = github(emails, token).await;
        let code = sign_in(&site, &ext).await.param("code");
        let answer = ext.exchange(&code, VERIFIER).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let me = ext
            .me(answer.json()["access_token"].as_str().unwrap())
            .await;
        assert_eq!(me["username"], "octocat");
        assert_eq!(me["email"], "octo@corp.example");
        let identities = ext
            .auth
            .users()
            .identities(me["sub"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(identities[0].issuer, site.uri());
        assert_eq!(identities[0].subject, "583231");
        assert_eq!(identities[0].provider, "github");
    }

    #[tokio::test]
    async fn an_unverified_primary_address_is_not_taken_and_refusals_end_in_errors() {
        let emails = json!([{"email": "octo@corp.example", "primary": true, "verified": false}]);
        let token = json!({"access_token": "gho_token", "token_type": "bearer"});
        let (site, ext) = github(emails, token).await;
        let code = sign_in(&site, &ext).await.param("code");
        let tokens = ext.exchange(&code, VERIFIER).await.json();
        let me = ext.me(tokens["access_token"].as_str().unwrap()).await;
        assert_eq!(me["email"], Value::Null);

        // GitHub refuses a code with a 200 and an error member.
        let refused = json!({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."});
        let (site, ext) = github(json!([]), refused).await;
        assert_eq!(sign_in(&site, &ext).await.error(), "invalid_request");
        // Its API down after the exchange.
        let token = json!({"access_token": "gho_token", "token_type": "bearer"});
        let (site, ext) = github(json!([]), token).await;
        site.reset().await;
        Mock::given(method("POST"))
            .and(path("/login/oauth/access_token"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"access_token": "gho_token", "token_type": "bearer"})),
            )
            .mount(&site)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(502))
            .mount(&site)
            .await;
        assert_eq!(
            sign_in(&site, &ext).await.error(),
            "temporarily_unavailable"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Every other way a sign-in can fail
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_callbacks_and_provider_refusals_end_in_their_errors() {
    let other = |idp: &TestIssuer| {
        Provider::oidc("other", idp.issuer(), idp.client_id(), idp.client_secret()).unwrap()
    };
    let idp = TestIssuer::start().await.unwrap();
    let second = other(&idp);
    let ext = Ext::new(move |e| e.provider(second).unwrap()).await;
    // A sign-in started at one provider, ended at another's callback (and used up).
    let (location, cookie) = ext.start().await;
    let back = ext.authorize(&location).await;
    let elsewhere = back.replace("/external/idp/", "/external/other/");
    assert_eq!(
        ext.callback(&elsewhere, Some(&cookie)).await.error(),
        "invalid_request"
    );
    // Repeated parameters: a page.
    let (location, cookie) = ext.start().await;
    let back = ext.authorize(&location).await;
    match ext
        .callback(&format!("{back}&code=again"), Some(&cookie))
        .await
    {
        Ended::Page(status, _) => assert_eq!(status, StatusCode::BAD_REQUEST),
        ended => panic!("{ended:?}"),
    }
    // No code; no iss from a provider that always sends it (RFC 9207).
    for strip in ["code", "iss"] {
        let (location, cookie) = ext.start().await;
        let back = ext.authorize(&location).await;
        let (base, query) = back.split_once('?').unwrap();
        let kept: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .filter(|(name, _)| name != strip)
            .collect();
        let stripped = format!(
            "{base}?{}",
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(kept)
                .finish()
        );
        assert_eq!(
            ext.callback(&stripped, Some(&cookie)).await.error(),
            "invalid_request",
            "{strip}"
        );
    }
    // The provider's own errors.
    for (refusal, error) in [
        ("temporarily_unavailable", "temporarily_unavailable"),
        ("login_required", "access_denied"),
        ("something_else", "server_error"),
    ] {
        ext.idp.refuse_next_login(refusal);
        assert_eq!(ext.sign_in().await.error(), error, "{refusal}");
    }
    // A link address of one provider used at another's start.
    let bob = ext.password_user("bob").await;
    let body = json!({"redirect_to": FRONT, "code_challenge": s256(VERIFIER), "code_challenge_method": "S256"});
    let answer = bearer_json(&ext, "POST", "/auth/external/idp/link", &bob, body).await;
    let url = answer.json()["authorization_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = url
        .strip_prefix("http://127.0.0.1:3000")
        .unwrap()
        .replace("/idp/", "/other/");
    assert_eq!(ext.get(&path, None).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_client_the_provider_refuses_ends_in_an_error() {
    // The provider's token endpoint refuses this client's secret (401).
    let idp = TestIssuer::start().await.unwrap();
    let bad = Provider::oidc("bad", idp.issuer(), idp.client_id(), "not-the-secret").unwrap();
    let ext = Ext::new(move |e| e.provider(bad).unwrap()).await;
    let (location, cookie) = ext
        .started(&start_path(FRONT).replace("/idp/", "/bad/"))
        .await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let answer = client.get(location.parse().unwrap()).await.unwrap();
    let back = answer.headers()[LOCATION].to_str().unwrap().to_owned();
    assert_eq!(
        ext.callback(&back, Some(&cookie)).await.error(),
        "invalid_request"
    );
    assert_eq!(idp.token_requests(), 1);
}

#[tokio::test]
async fn id_token_claims_are_held_to_the_letter() {
    let ext = Ext::new(|e| e).await;
    let client = ext.idp.client_id().to_owned();
    refuse_id_tokens(
        &ext,
        vec![
            (
                "several audiences, no azp",
                tamper(move |t| t.claim("aud", json!([client, "other"])).without("azp")),
            ),
            (
                "another issuer",
                tamper(|t| t.claim("iss", "https://other.example")),
            ),
            ("no iat", tamper(|t| t.without("iat"))),
            ("empty sub", tamper(|t| t.subject(""))),
        ],
    )
    .await;
    // `email_verified` must be the JSON true, not a string.
    ext.idp.sign_in_as(
        TestUser::new("s")
            .email("s@corp.example", false)
            .claim("email_verified", "true"),
    );
    let tokens = ext.tokens().await;
    assert_eq!(
        ext.me(tokens["access_token"].as_str().unwrap()).await["email"],
        Value::Null
    );
}

#[tokio::test]
async fn the_start_answers_502_for_unusable_discovery_and_503_when_the_store_is_full() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let liar = MockServer::start().await;
    Mock::given(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": "https://someone-else.example",
            "authorization_endpoint": "https://someone-else.example/authorize",
            "token_endpoint": "https://someone-else.example/token",
        })))
        .mount(&liar)
        .await;
    let provider = Provider::oidc("liar", &liar.uri(), "id", "secret").unwrap();
    let store = Arc::new(MemoryOneTimeStore::new().max_values(1));
    let ext = Ext::new(move |e| e.provider(provider).unwrap().store(store)).await;
    let path = start_path(FRONT).replace("/idp/", "/liar/");
    assert_eq!(ext.get(&path, None).await.status, StatusCode::BAD_GATEWAY);
    // One sign-in in progress fills this store: the next start is 503, nothing is evicted.
    ext.start().await;
    let full = ext.get(&start_path(FRONT), None).await;
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(full.header(RETRY_AFTER).is_some());
}

/// A router whose clock the test moves.
async fn with_clock() -> (Ext, Arc<AtomicU64>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = Arc::new(AtomicU64::new(now));
    let read = Arc::clone(&clock);
    let ext = Ext::with(
        |e| e,
        move |b| b.clock(move || UNIX_EPOCH + Duration::from_secs(read.load(Ordering::SeqCst))),
    )
    .await;
    (ext, clock)
}

#[tokio::test]
async fn sign_ins_and_codes_expire() {
    let (ext, clock) = with_clock().await;
    let (location, cookie) = ext.start().await;
    let back = ext.authorize(&location).await;
    clock.fetch_add(FLOW_TTL.as_secs(), Ordering::SeqCst);
    match ext.callback(&back, Some(&cookie)).await {
        Ended::Page(status, _) => assert_eq!(status, StatusCode::BAD_REQUEST),
        ended => panic!("an expired sign-in ended {ended:?}"),
    }
    let code = ext.sign_in().await.param("code");
    clock.fetch_add(CODE_TTL.as_secs(), Ordering::SeqCst);
    assert_eq!(
        ext.exchange(&code, VERIFIER).await.json()["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn the_code_grant_holds_its_code_to_its_page_client_scopes_and_account() {
    let ext = Ext::with(
        |e| {
            e.new_users(Registration {
                roles: vec![],
                scopes: vec!["a".into(), "b".into()],
            })
        },
        |b| {
            b.client(OAuthClient::public("web").unwrap())
                .unwrap()
                .client(
                    OAuthClient::public("cli")
                        .unwrap()
                        .grants(&[GrantType::Password]),
                )
                .unwrap()
        },
    )
    .await;
    let exchange = |code: &str, extra: &str| {
        format!(
            "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&client_id=web{extra}"
        )
    };
    // Another page than the one the code was sent to.
    let code = ext.sign_in().await.param("code");
    let other_page = format!("&redirect_uri={}", urlencode("http://127.0.0.1:5173/other"));
    assert_eq!(
        ext.token(exchange(&code, &other_page)).await.json()["error"],
        "invalid_grant"
    );
    // A client without the grant.
    let code = ext.sign_in().await.param("code");
    let cli = exchange(&code, "").replace("client_id=web", "client_id=cli");
    assert_eq!(ext.token(cli).await.json()["error"], "unauthorized_client");
    // A narrower scope; the page it was sent to, named.
    let code = ext.sign_in().await.param("code");
    let page = format!("&scope=a&redirect_uri={}", urlencode(FRONT));
    let narrow = ext.token(exchange(&code, &page)).await;
    assert_eq!(narrow.status, StatusCode::OK, "{}", narrow.text());
    assert_eq!(narrow.json()["scope"], "a");
    // An account disabled between the callback and the exchange.
    let code = ext.sign_in().await.param("code");
    let sub = ext
        .me(narrow.json()["access_token"].as_str().unwrap())
        .await["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let disable = UserChange {
        disabled: Some(true),
        ..UserChange::default()
    };
    ext.auth.users().update(&sub, disable, None).await.unwrap();
    assert_eq!(
        ext.token(exchange(&code, "")).await.json()["error"],
        "invalid_grant"
    );
}
