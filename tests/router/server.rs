//! The example server (`cargo run --example server`), run in-process on a loopback port and
//! driven with a real HTTP client: the README's walk-through step by step, its configuration,
//! JWKS interop with a separate verifier, the wire details, and graceful shutdown.
//!
//! The server uses the default argon2id parameters (m = 19456 KiB, t = 2, p = 1), as in
//! production: a login costs tens of milliseconds with the optimised dependencies of dev builds.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_jwt_auth::router::AuthRouter;
use tower_jwt_auth::{KeySet, Verifier};

use crate::common::answer::{Answer, answer};
use crate::common::openapi;
use crate::example::{self, Config};

#[cfg(feature = "postgres")]
use crate::common::postgres_server::Postgres;
#[cfg(feature = "redis")]
use crate::common::redis_server;

const ADMIN: &str = "admin:change-me-please";
const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

// ---------------------------------------------------------------------------------------------
// A running server and a client for it.

/// The example's app on a loopback port, stopped through `stop`.
struct Running {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    auth: AuthRouter,
    /// The server's `/openapi.json`, which every answer is checked against (unless off).
    document: Option<Value>,
}

/// The settings `pairs`, in memory unless they name a `DATABASE_URL` (the default, an SQLite
/// file in the working directory, is for `cargo run`, not for tests).
pub(crate) fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = pairs
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    vars.entry("DATABASE_URL".to_owned())
        .or_insert_with(|| "memory".to_owned());
    vars
}

fn key_file(name: &str) -> String {
    format!("{}/tests/data/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// What `main` does, except that the port is any free one and the shutdown is a channel.
async fn start(pairs: &[(&str, &str)]) -> Running {
    start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), pairs).await
}

/// [`start`] on a listener bound beforehand (to put its address in the settings).
async fn start_on(listener: TcpListener, pairs: &[(&str, &str)]) -> Running {
    let config = Config::from_vars(&vars(pairs)).unwrap();
    let (router, auth) = example::app(&config).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(example::serve(listener, router, async {
        let _ = stopped.await;
    }));
    let mut running = Running {
        addr,
        client: Client::builder(TokioExecutor::new()).build_http(),
        stop: Some(stop),
        task,
        auth,
        document: None,
    };
    if config.api_docs {
        let document = running.get("/openapi.json", None).await;
        assert_eq!(document.status, StatusCode::OK);
        running.document = Some(document.json());
    }
    running
}

/// The error the server refuses to start with, from reading the settings or building the app.
async fn refusal(pairs: &[(&str, &str)]) -> String {
    match Config::from_vars(&vars(pairs)) {
        Err(error) => error.to_string(),
        Ok(config) => match example::app(&config).await {
            Err(error) => error.to_string(),
            Ok(_) => panic!("the server accepted {pairs:?}"),
        },
    }
}

impl Running {
    async fn send(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<(&str, String)>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("http://{}{path}", self.addr));
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some((content_type, body)) => {
                request = request.header("content-type", content_type);
                Full::new(Bytes::from(body))
            }
            None => Full::default(),
        };
        let response = self
            .client
            .request(request.body(body).unwrap())
            .await
            .unwrap();
        self.documented(&method, path, answer(response).await)
    }

    /// `answer`, once checked against the server's document.
    fn documented(&self, method: &Method, path: &str, answer: Answer) -> Answer {
        if let Some(document) = &self.document {
            let path = path.split('?').next().unwrap();
            let method = method.as_str().to_ascii_lowercase();
            openapi::check_answer(
                document,
                &method,
                path,
                answer.status.as_u16(),
                answer.header("content-type"),
                &answer.body,
            );
        }
        answer
    }

    /// A bodiless request with these headers.
    async fn with_headers(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("http://{}{path}", self.addr));
        for &(name, value) in headers {
            request = request.header(name, value);
        }
        let request = request.body(Full::default()).unwrap();
        let answer = answer(self.client.request(request).await.unwrap()).await;
        self.documented(&method, path, answer)
    }

    async fn get(&self, path: &str, bearer: Option<&str>) -> Answer {
        self.send(Method::GET, path, bearer, None).await
    }

    async fn login(&self, username: &str, password: &str) -> Answer {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "password")
            .append_pair("username", username)
            .append_pair("password", password)
            .finish();
        self.send(Method::POST, "/auth/token", None, Some((FORM, form)))
            .await
    }

    /// The access token of a successful login.
    async fn access_token(&self, username: &str, password: &str) -> String {
        let reply = self.login(username, password).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.json()["access_token"].as_str().unwrap().to_owned()
    }

    /// Triggers the shutdown and waits for `serve` to return.
    async fn shut_down(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("serve did not finish after the shutdown signal")
            .unwrap()
            .unwrap();
    }
}

fn jose_header(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. The README's walk-through, as data.

/// A request body; `{name}` in it is replaced by a value saved by an earlier step.
#[derive(Clone, Copy, Debug)]
enum Body {
    Empty,
    Json(&'static str),
    Form(&'static str),
}

/// What the response must hold besides its status.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Nothing,
    /// Exactly this JSON, after `{name}` substitution.
    Json(&'static str),
    /// A token response (RFC 6749 §5.1) with `Cache-Control: no-store`, whose refresh token
    /// is new: no earlier step has seen it.
    Tokens,
    /// An RFC 6749 §5.2 error with this code.
    OAuthError(&'static str),
    /// The body contains each of these and none of those.
    Text {
        has: &'static [&'static str],
        lacks: &'static [&'static str],
    },
}

/// One `curl` line of the README: `method path` with an optional bearer token (the name of a
/// saved value) and body, the expected status, and what to save from the JSON answer
/// (`(name, field)`; a token response saves `<name>.access` and `<name>.refresh`).
#[derive(Clone, Copy, Debug)]
struct Step {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    bearer: Option<&'static str>,
    body: Body,
    status: u16,
    expect: Expect,
    save: Option<(&'static str, &'static str)>,
}

const HASHES_AND_ARGON: &[&str] = &["password_hash", "$argon2"];

/// `AUTH_BOOTSTRAP_ADMIN=admin:change-me-please AUTH_REGISTRATION=1 cargo run --example server`,
/// then these requests in order.
const WALKTHROUGH: &[Step] = &[
    Step {
        what: "alice registers",
        method: "POST",
        path: "/auth/register",
        bearer: None,
        body: Body::Json(
            r#"{"username": "alice", "password": "correct horse battery staple", "email": "alice@example.com"}"#,
        ),
        status: 201,
        expect: Expect::Text {
            has: &[r#""username":"alice""#],
            lacks: HASHES_AND_ARGON,
        },
        save: Some(("alice.sub", "sub")),
    },
    Step {
        what: "alice logs in (password grant)",
        method: "POST",
        path: "/auth/token",
        bearer: None,
        body: Body::Form(
            "grant_type=password&username=alice&password=correct+horse+battery+staple",
        ),
        status: 200,
        expect: Expect::Tokens,
        save: Some(("alice", "")),
    },
    Step {
        what: "alice reads her account",
        method: "GET",
        path: "/users/me",
        bearer: Some("alice.access"),
        body: Body::Empty,
        status: 200,
        expect: Expect::Json(
            r#"{"sub": "{alice.sub}", "username": "alice", "email": "alice@example.com",
                "roles": ["user"], "scopes": ["items:read"]}"#,
        ),
        save: None,
    },
    Step {
        what: "alice lists the items (scope items:read)",
        method: "GET",
        path: "/items",
        bearer: Some("alice.access"),
        body: Body::Empty,
        status: 200,
        expect: Expect::Json("[]"),
        save: None,
    },
    Step {
        what: "alice cannot add one (no items:write)",
        method: "POST",
        path: "/items",
        bearer: Some("alice.access"),
        body: Body::Json(r#"{"name": "hammer"}"#),
        status: 403,
        expect: Expect::Nothing,
        save: None,
    },
    Step {
        what: "the admin logs in",
        method: "POST",
        path: "/auth/token",
        bearer: None,
        body: Body::Form("grant_type=password&username=admin&password=change-me-please"),
        status: 200,
        expect: Expect::Tokens,
        save: Some(("admin", "")),
    },
    Step {
        what: "the admin adds an item",
        method: "POST",
        path: "/items",
        bearer: Some("admin.access"),
        body: Body::Json(r#"{"name": "hammer"}"#),
        status: 201,
        expect: Expect::Text {
            has: &[r#""name":"hammer""#],
            lacks: &[],
        },
        save: None,
    },
    Step {
        what: "alice sees it",
        method: "GET",
        path: "/items",
        bearer: Some("alice.access"),
        body: Body::Empty,
        status: 200,
        expect: Expect::Text {
            has: &[r#""name":"hammer""#],
            lacks: &[],
        },
        save: None,
    },
    Step {
        what: "the admin lists the users (never a hash)",
        method: "GET",
        path: "/admin/users",
        bearer: Some("admin.access"),
        body: Body::Empty,
        status: 200,
        expect: Expect::Text {
            has: &[r#""username":"alice""#, r#""username":"admin""#],
            lacks: HASHES_AND_ARGON,
        },
        save: None,
    },
    Step {
        what: "alice cannot (no role admin)",
        method: "GET",
        path: "/admin/users",
        bearer: Some("alice.access"),
        body: Body::Empty,
        status: 403,
        expect: Expect::Nothing,
        save: None,
    },
    Step {
        what: "alice refreshes: a new refresh token",
        method: "POST",
        path: "/auth/token",
        bearer: None,
        body: Body::Form("grant_type=refresh_token&refresh_token={alice.refresh}"),
        status: 200,
        expect: Expect::Tokens,
        save: Some(("alice2", "")),
    },
    Step {
        what: "the old refresh token is spent",
        method: "POST",
        path: "/auth/token",
        bearer: None,
        body: Body::Form("grant_type=refresh_token&refresh_token={alice.refresh}"),
        status: 400,
        expect: Expect::OAuthError("invalid_grant"),
        save: None,
    },
    Step {
        what: "and its replay ended the whole session (RFC 9700 reuse detection)",
        method: "GET",
        path: "/users/me",
        bearer: Some("alice2.access"),
        body: Body::Empty,
        status: 401,
        expect: Expect::Nothing,
        save: None,
    },
    Step {
        what: "alice logs in again",
        method: "POST",
        path: "/auth/token",
        bearer: None,
        body: Body::Form(
            "grant_type=password&username=alice&password=correct+horse+battery+staple",
        ),
        status: 200,
        expect: Expect::Tokens,
        save: Some(("alice3", "")),
    },
    Step {
        what: "alice logs out",
        method: "POST",
        path: "/auth/logout",
        bearer: Some("alice3.access"),
        body: Body::Empty,
        status: 204,
        expect: Expect::Nothing,
        save: None,
    },
    Step {
        what: "her access token is refused at once",
        method: "GET",
        path: "/users/me",
        bearer: Some("alice3.access"),
        body: Body::Empty,
        status: 401,
        expect: Expect::Nothing,
        save: None,
    },
    Step {
        what: "and her refresh token too",
        method: "POST",
        path: "/auth/token",
        bearer: None,
        body: Body::Form("grant_type=refresh_token&refresh_token={alice3.refresh}"),
        status: 400,
        expect: Expect::OAuthError("invalid_grant"),
        save: None,
    },
];

/// Replaces every `{name}` of a saved value.
fn fill(template: &str, saved: &HashMap<String, String>) -> String {
    let mut out = template.to_owned();
    for (name, value) in saved {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    assert!(
        !out.contains("{alice") && !out.contains("{admin"),
        "unfilled placeholder in {out:?}"
    );
    out
}

/// Checks one answer against its step; `Err` says what is wrong.
fn check(step: &Step, reply: &Answer, saved: &mut HashMap<String, String>) -> Result<(), String> {
    if reply.status.as_u16() != step.status {
        return Err(format!("status {}, expected {}", reply.status, step.status));
    }
    let json =
        || serde_json::from_slice::<Value>(&reply.body).map_err(|e| format!("not json: {e}"));
    match step.expect {
        Expect::Nothing => {}
        Expect::Json(template) => {
            let expected: Value = serde_json::from_str(&fill(template, saved)).unwrap();
            if json()? != expected {
                return Err(format!("expected the body {expected}"));
            }
        }
        Expect::Tokens => {
            let body = json()?;
            let fresh = |field: &str| {
                body[field]
                    .as_str()
                    .is_some_and(|t| !t.is_empty() && !saved.values().any(|v| v == t))
            };
            if body["token_type"] != "Bearer"
                || !body["expires_in"].is_u64()
                || !fresh("access_token")
                || !fresh("refresh_token")
            {
                return Err("expected a token response with new tokens".to_owned());
            }
            if reply.header("cache-control").unwrap_or("") != "no-store"
                || reply.header("pragma").unwrap_or("") != "no-cache"
            {
                return Err("a token response must not be cached".to_owned());
            }
        }
        Expect::OAuthError(code) => {
            if json()?["error"] != code {
                return Err(format!("expected error {code:?}"));
            }
        }
        Expect::Text { has, lacks } => {
            if let Some(missing) = has.iter().find(|s| !reply.text().contains(*s)) {
                return Err(format!("the body lacks {missing:?}"));
            }
            if let Some(present) = lacks.iter().find(|s| reply.text().contains(*s)) {
                return Err(format!("the body contains {present:?}"));
            }
        }
    }
    if let Some((name, field)) = step.save {
        let body = json()?;
        if matches!(step.expect, Expect::Tokens) {
            for (suffix, field) in [("access", "access_token"), ("refresh", "refresh_token")] {
                let value = body[field].as_str().unwrap().to_owned();
                saved.insert(format!("{name}.{suffix}"), value);
            }
        } else {
            let value = body[field]
                .as_str()
                .ok_or_else(|| format!("no string field {field:?} to save"))?;
            saved.insert(name.to_owned(), value.to_owned());
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_works() {
    let server = start(&[("AUTH_BOOTSTRAP_ADMIN", ADMIN), ("AUTH_REGISTRATION", "1")]).await;
    let mut saved = HashMap::new();
    let mut transcript = String::new();
    for (i, step) in WALKTHROUGH.iter().enumerate() {
        let body = match step.body {
            Body::Empty => None,
            Body::Json(template) => Some((JSON, fill(template, &saved))),
            Body::Form(template) => Some((FORM, fill(template, &saved))),
        };
        let bearer = step.bearer.map(|name| saved[name].clone());
        let method = Method::from_bytes(step.method.as_bytes()).unwrap();
        let reply = server
            .send(method, step.path, bearer.as_deref(), body)
            .await;
        writeln!(
            transcript,
            "  {:>2}. {} {} -> {} ({})",
            i + 1,
            step.method,
            step.path,
            reply.status.as_u16(),
            step.what
        )
        .unwrap();
        if let Err(problem) = check(step, &reply, &mut saved) {
            panic!(
                "walk-through step {} failed: {problem}\n{transcript}body: {}",
                i + 1,
                reply.text()
            );
        }
    }
    server.shut_down().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Configuration.

#[test]
fn config_defaults() {
    let config = Config::from_vars(&HashMap::new()).unwrap();
    assert_eq!(config.bind, "127.0.0.1:8000");
    assert_eq!(config.issuer, "http://127.0.0.1:8000");
    assert_eq!(config.audience, "api");
    assert_eq!(config.private_key_file, None);
    assert_eq!(config.secret, None);
    assert_eq!(config.bootstrap_admin, None);
    assert!(!config.registration);
    assert!(!config.metrics);
    assert_eq!(config.metrics_bind, "127.0.0.1:9000");
    assert_eq!(config.database_url, "sqlite://tower-jwt-auth.db");

    // An empty variable counts as unset.
    let config = Config::from_vars(&vars(&[("BIND", ""), ("AUTH_AUDIENCE", "")])).unwrap();
    assert_eq!(
        (config.bind.as_str(), config.audience.as_str()),
        ("127.0.0.1:8000", "api")
    );

    let config = Config::from_vars(&vars(&[
        ("BIND", "0.0.0.0:9000"),
        ("AUTH_ISSUER", "https://auth.example"),
        ("AUTH_AUDIENCE", "items"),
        ("AUTH_BOOTSTRAP_ADMIN", "root:a:password:with:colons"),
        ("METRICS", "1"),
        ("METRICS_BIND", "0.0.0.0:9100"),
    ]))
    .unwrap();
    assert!(config.metrics);
    assert_eq!(config.metrics_bind, "0.0.0.0:9100");
    assert_eq!(config.bind, "0.0.0.0:9000");
    assert_eq!(config.issuer, "https://auth.example");
    assert_eq!(config.audience, "items");
    assert_eq!(
        config.bootstrap_admin,
        Some(("root".to_owned(), "a:password:with:colons".to_owned()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_secret_signs_hs256_and_publishes_no_key() {
    let server = start(&[
        ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ("AUTH_BOOTSTRAP_ADMIN", ADMIN),
    ])
    .await;
    let jwks = server.get("/auth/jwks.json", None).await;
    assert_eq!(jwks.status, StatusCode::OK);
    assert_eq!(jwks.json(), json!({"keys": []}));
    let token = server.access_token("admin", "change-me-please").await;
    let header = jose_header(&token);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["typ"], "at+jwt");
    assert!(!token.contains("0123456789abcdef"));
    server.shut_down().await;

    let short = refusal(&[("JWT_SECRET", "too short")]).await;
    assert!(short.contains("32"), "{short}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_algorithm_follows_the_private_key() {
    for (file, alg) in [
        ("rsa2048.pkcs8.pem", "RS256"),
        ("rsa2048.pkcs1.pem", "RS256"),
        ("p256.pkcs8.pem", "ES256"),
        ("p384.pkcs8.pem", "ES384"),
        ("ed25519.pkcs8.pem", "EdDSA"),
    ] {
        let path = key_file(file);
        let server = start(&[
            ("JWT_PRIVATE_KEY_FILE", &path),
            ("AUTH_BOOTSTRAP_ADMIN", ADMIN),
        ])
        .await;
        let token = server.access_token("admin", "change-me-please").await;
        let header = jose_header(&token);
        assert_eq!(header["alg"], alg, "{file}");
        let jwks = server.get("/auth/jwks.json", None).await.json();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{file}");
        assert_eq!(jwks["keys"][0]["alg"], alg, "{file}");
        assert_eq!(jwks["keys"][0]["kid"], header["kid"], "{file}");
        assert!(
            jwks["keys"][0].get("d").is_none(),
            "{file}: a private member"
        );
        server.shut_down().await;
    }
    // Without a key file, a fresh Ed25519 key.
    let server = start(&[("AUTH_BOOTSTRAP_ADMIN", ADMIN)]).await;
    let token = server.access_token("admin", "change-me-please").await;
    assert_eq!(jose_header(&token)["alg"], "EdDSA");
    server.shut_down().await;
}

#[tokio::test]
async fn the_server_refuses_settings_it_cannot_honour() {
    let both = refusal(&[
        ("JWT_PRIVATE_KEY_FILE", &key_file("ed25519.pkcs8.pem")),
        ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
    ])
    .await;
    assert!(both.contains("not both"), "{both}");

    // Several instances need one shared database for their users and sessions: REDIS_URL
    // beside a database of each instance's own (SQLite, memory) is refused.
    let key = key_file("ed25519.pkcs8.pem");
    for database in ["memory", "sqlite://unused.db"] {
        let redis = refusal(&[
            ("REDIS_URL", "redis://127.0.0.1:1"),
            ("DATABASE_URL", database),
            ("JWT_PRIVATE_KEY_FILE", &key),
        ])
        .await;
        assert!(
            redis.contains("REDIS_URL") && redis.contains("DATABASE_URL=postgres"),
            "{redis}"
        );
    }
    // Instances sharing sessions must share a signing key: no key of each instance's own.
    let unshared = refusal(&[("DATABASE_URL", "postgres://db.invalid/auth")]).await;
    assert!(
        unshared.contains("JWT_PRIVATE_KEY_FILE") || unshared.contains("--features postgres"),
        "{unshared}"
    );
    for (url, why) in [
        ("mysql://db/auth", "DATABASE_URL must be"),
        ("postgres://127.0.0.1:1/auth", "DATABASE_URL"),
    ] {
        let error = refusal(&[("DATABASE_URL", url), ("JWT_PRIVATE_KEY_FILE", &key)]).await;
        assert!(error.contains(why), "{url}: {error}");
        assert!(
            !error.contains("127.0.0.1:1"),
            "no URL in the message: {error}"
        );
    }

    for malformed in ["admin", ":change-me-please"] {
        let error = refusal(&[("AUTH_BOOTSTRAP_ADMIN", malformed)]).await;
        assert!(
            error.contains("AUTH_BOOTSTRAP_ADMIN"),
            "{malformed}: {error}"
        );
    }

    let registration = refusal(&[("AUTH_REGISTRATION", "yes please")]).await;
    assert!(registration.contains("AUTH_REGISTRATION"), "{registration}");
    let metrics = refusal(&[("METRICS", "prometheus")]).await;
    assert!(metrics.contains("METRICS"), "{metrics}");

    for (file, why) in [
        ("missing.pem", "JWT_PRIVATE_KEY_FILE"),
        ("ed25519.pub.pem", "public key"),
        ("p521.pkcs8.pem", ""),
        ("rsa1024.pkcs8.pem", ""),
    ] {
        let error = refusal(&[("JWT_PRIVATE_KEY_FILE", &key_file(file))]).await;
        assert!(error.contains(why), "{file}: {error}");
    }
}

/// Registration refuses passwords under 8 characters; the bootstrap admin, with every right,
/// should not get a weaker one, nor an empty one (which no login could ever present: an empty
/// `password` parameter counts as missing).
#[tokio::test]
async fn the_bootstrap_admin_needs_a_real_password() {
    for weak in ["admin:", "admin:short"] {
        let error = refusal(&[("AUTH_BOOTSTRAP_ADMIN", weak)]).await;
        assert!(error.contains("AUTH_BOOTSTRAP_ADMIN"), "{weak}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_off_unless_enabled() {
    for setting in [None, Some("0"), Some("off")] {
        let mut pairs = vec![];
        if let Some(value) = setting {
            pairs.push(("AUTH_REGISTRATION", value));
        }
        let server = start(&pairs).await;
        let reply = server
            .send(
                Method::POST,
                "/auth/register",
                None,
                Some((
                    JSON,
                    r#"{"username":"bob","password":"long enough pass"}"#.into(),
                )),
            )
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{setting:?}");
        assert!(server.auth.users().page(None, 1).await.unwrap().is_empty());
        server.shut_down().await;
    }
}

impl Running {
    /// A wrong-password login for `username`, with `X-Forwarded-For: forwarded` when given:
    /// its status.
    async fn guess(&self, username: &str, forwarded: Option<&str>) -> StatusCode {
        let form = format!("grant_type=password&username={username}&password=wrong-guess");
        let mut request =
            Request::post(format!("http://{}/auth/token", self.addr)).header("content-type", FORM);
        if let Some(client) = forwarded {
            request = request.header("x-forwarded-for", client);
        }
        let response = self
            .client
            .request(request.body(Full::new(Bytes::from(form))).unwrap())
            .await
            .unwrap();
        response.status()
    }
}

/// `AUTH_RATE_LIMIT` (on by default) wraps `/auth/token` in `RateLimitLogin`: five free
/// failures and the sixth for one (client, username), then 429. `off` removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_is_rate_limited_unless_turned_off() {
    for (setting, limited) in [(None, true), (Some("on"), true), (Some("off"), false)] {
        let mut pairs = vec![("AUTH_BOOTSTRAP_ADMIN", ADMIN)];
        if let Some(value) = setting {
            pairs.push(("AUTH_RATE_LIMIT", value));
        }
        let server = start(&pairs).await;
        for _ in 0..6 {
            assert_eq!(server.guess("admin", None).await, StatusCode::BAD_REQUEST);
        }
        let seventh = server.guess("admin", None).await;
        if limited {
            assert_eq!(seventh, StatusCode::TOO_MANY_REQUESTS, "{setting:?}");
        } else {
            assert_eq!(seventh, StatusCode::BAD_REQUEST, "{setting:?}");
        }
        server.shut_down().await;
    }
}

/// `AUTH_TRUSTED_PROXIES` names the peers whose `X-Forwarded-For` counts. The test client is
/// the peer 127.0.0.1: trusted, each forwarded client has its own budget; untrusted, the
/// header is ignored and every request is the peer's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_clients_count_only_behind_trusted_proxies() {
    for (proxies, separate) in [(Some("10.0.0.0/8,127.0.0.1/32"), true), (None, false)] {
        let mut pairs = vec![("AUTH_BOOTSTRAP_ADMIN", ADMIN)];
        if let Some(list) = proxies {
            pairs.push(("AUTH_TRUSTED_PROXIES", list));
        }
        let server = start(&pairs).await;
        for _ in 0..6 {
            let status = server.guess("admin", Some("203.0.113.1")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
        }
        let other = server.guess("admin", Some("203.0.113.2")).await;
        let expected = if separate {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(other, expected, "trusted proxies {proxies:?}");
        server.shut_down().await;
    }
    assert!(
        refusal(&[("AUTH_TRUSTED_PROXIES", "10.0.0.0/33")])
            .await
            .contains("AUTH_TRUSTED_PROXIES")
    );
}

/// `REDIS_URL` (feature `redis`) beside a shared PostgreSQL database: two servers with one
/// signing key share the denylist and the login limiter in Redis. Both were given
/// `AUTH_BOOTSTRAP_ADMIN`; the second found the account and left it.
#[cfg(all(feature = "redis", feature = "postgres"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_redis_share_revocations_and_login_limits() {
    let what = "two_servers_on_one_redis_share_revocations_and_login_limits";
    let (Some(redis), Some(postgres)) = (redis_server::Server::start(what), Postgres::start(what))
    else {
        return;
    };
    let (url, key) = (redis.url(), key_file("ed25519.pkcs8.pem"));
    let database = postgres.url();
    let pairs = [
        ("DATABASE_URL", database.as_str()),
        ("REDIS_URL", url.as_str()),
        ("JWT_PRIVATE_KEY_FILE", key.as_str()),
        ("AUTH_BOOTSTRAP_ADMIN", ADMIN),
    ];
    let (a, b) = (start(&pairs).await, start(&pairs).await);

    // A token from one server works on the other until a logout on the first ends it.
    let token = a.access_token("admin", "change-me-please").await;
    assert_eq!(b.get("/items", Some(&token)).await.status, StatusCode::OK);
    let logout = a
        .send(Method::POST, "/auth/logout", Some(&token), None)
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{}", logout.text());
    let after = b.get("/items", Some(&token)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "{}", after.text());
    assert!(
        after
            .header("www-authenticate")
            .unwrap_or("")
            .contains("revoked")
    );

    // Five free failures and the sixth, spread over both; then both refuse.
    for server in [&a, &b, &a, &b, &a, &b] {
        assert_eq!(server.guess("admin", None).await, StatusCode::BAD_REQUEST);
    }
    for server in [&a, &b] {
        assert_eq!(
            server.guess("admin", None).await,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    a.shut_down().await;
    b.shut_down().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Interop: a resource server that knows only the published JWKS.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_verify_with_the_published_jwks() {
    let issuer = "https://auth.example.test";
    let server = start(&[
        ("AUTH_ISSUER", issuer),
        ("AUTH_AUDIENCE", "items-api"),
        ("AUTH_BOOTSTRAP_ADMIN", ADMIN),
    ])
    .await;
    let jwks = server.get("/auth/jwks.json", None).await;
    assert_eq!(jwks.status, StatusCode::OK);
    assert_eq!(
        jwks.header("content-type").unwrap_or(""),
        "application/jwk-set+json"
    );
    let keys = KeySet::from_jwks(jwks.text()).unwrap();
    assert_eq!(keys.len(), 1);
    let verifier = Verifier::builder(keys.clone())
        .issuer(issuer)
        .audience("items-api")
        .require_type("at+jwt")
        .unwrap()
        .build()
        .unwrap();

    let login = server.login("admin", "change-me-please").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text());
    let login = login.json();
    let token = login["access_token"].as_str().unwrap();
    let claims = verifier.verify(token).unwrap();
    let me = server.get("/users/me", Some(token)).await.json();
    assert_eq!(claims.subject(), me["sub"].as_str());
    assert_eq!(claims.issuer(), Some(issuer));
    assert_eq!(claims.audience(), ["items-api"]);
    assert_eq!(claims.scopes().as_str(), "items:read items:write");
    assert_eq!(login["scope"], "items:read items:write");
    assert_eq!(claims.roles(), ["admin"]);
    assert_eq!(claims.client_id(), Some("default"));
    let sid = claims.session_id().unwrap();
    assert!(sid.len() >= 16, "{sid}");
    assert!(claims.jwt_id().is_some());
    let (iat, exp) = (claims.issued_at().unwrap(), claims.expires_at().unwrap());
    assert_eq!(
        login["expires_in"].as_u64(),
        Some(exp.as_secs() - iat.as_secs())
    );

    // The same keys with the defaults' issuer or audience refuse it.
    for (iss, aud) in [("http://127.0.0.1:8000", "items-api"), (issuer, "api")] {
        let other = Verifier::builder(keys.clone())
            .issuer(iss)
            .audience(aud)
            .build()
            .unwrap();
        assert!(other.verify(token).is_err(), "{iss} {aud}");
    }

    // A refreshed token keeps the session id.
    let refresh = login["refresh_token"].as_str().unwrap();
    let refreshed = server
        .send(
            Method::POST,
            "/auth/token",
            None,
            Some((
                FORM,
                format!("grant_type=refresh_token&refresh_token={refresh}"),
            )),
        )
        .await
        .json();
    let claims = verifier
        .verify(refreshed["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.session_id(), Some(sid));
    server.shut_down().await;
}

#[tokio::test]
async fn the_api_is_documented_at_openapi_json_and_docs_unless_turned_off() {
    let server = start(&[]).await;
    let document = server.document.clone().unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    // The requirements come from the routes' own layers.
    assert_eq!(
        document["paths"]["/items"]["post"]["security"],
        json!([{"bearer": ["items:write"]}, {"oauth2": ["items:write"]}])
    );
    assert_eq!(
        document["paths"]["/admin/users"]["get"]["security"],
        json!([{"bearer": ["admin"]}, {"oauth2": []}])
    );
    assert_eq!(
        document["paths"]["/users/me"]["get"]["security"],
        json!([{"bearer": []}, {"oauth2": []}])
    );
    let flow = &document["components"]["securitySchemes"]["oauth2"]["flows"]["password"];
    assert_eq!(flow["tokenUrl"], "/auth/token");
    assert_eq!(
        flow["scopes"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["items:read", "items:write"]
    );
    let page = server.get("/docs/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let policy = page.header("content-security-policy").unwrap();
    assert!(
        policy.contains("script-src 'self'") && !policy.contains("unsafe-eval"),
        "{policy}"
    );
    assert!(page.text().contains("swagger-ui-bundle.js"));
    let bundle = server.get("/docs/swagger-ui-bundle.js", None).await;
    assert_eq!(bundle.status, StatusCode::OK);
    assert!(bundle.body.len() > 100_000);
    let initializer = server.get("/docs/swagger-initializer.js", None).await;
    assert!(initializer.text().contains("/openapi.json"));
    server.shut_down().await;

    let off = start(&[("API_DOCS", "off")]).await;
    for path in ["/openapi.json", "/docs/", "/docs/swagger-ui-bundle.js"] {
        assert_eq!(
            off.get(path, None).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    off.shut_down().await;
    assert!(refusal(&[("API_DOCS", "maybe")]).await.contains("API_DOCS"));
}

/// A browser's preflight for `method` on `path` from `origin`, sending `Authorization`.
async fn preflight(server: &Running, path: &str, method: &str, origin: &str) -> Answer {
    server
        .with_headers(
            Method::OPTIONS,
            path,
            &[
                ("origin", origin),
                ("access-control-request-method", method),
                (
                    "access-control-request-headers",
                    "authorization,content-type",
                ),
            ],
        )
        .await
}

#[tokio::test]
async fn cors_lets_the_configured_origins_in_and_answers_their_preflights_without_a_token() {
    let server = start(&[
        (
            "CORS_ALLOWED_ORIGINS",
            "https://app.example, http://localhost:5173",
        ),
        ("AUTH_BOOTSTRAP_ADMIN", ADMIN),
    ])
    .await;
    for (path, method) in [
        ("/users/me", "GET"),
        ("/items", "POST"),
        ("/auth/token", "POST"),
        ("/admin/users/x", "PATCH"),
    ] {
        let answer = preflight(&server, path, method, "https://app.example").await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{path}: {}",
            answer.everything()
        );
        assert_eq!(
            answer.header("access-control-allow-origin"),
            Some("https://app.example"),
            "{path}"
        );
        let allowed = answer.header("access-control-allow-headers").unwrap();
        assert!(allowed.contains("authorization") && allowed.contains("content-type"));
        assert!(
            answer
                .header("access-control-allow-methods")
                .unwrap()
                .contains(method)
        );
        assert_eq!(answer.header("access-control-max-age"), Some("600"));
        // Tokens travel in a header: no credentials mode.
        assert_eq!(answer.header("access-control-allow-credentials"), None);
        assert!(answer.header("vary").unwrap().contains("origin"));
        // The edge's headers are on preflights too.
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    }
    let other = preflight(&server, "/users/me", "GET", "http://localhost:5173").await;
    assert_eq!(
        other.header("access-control-allow-origin"),
        Some("http://localhost:5173")
    );

    // Another origin, a look-alike, a different scheme or port, `null`: nothing to let the page
    // read the answer.
    for origin in [
        "https://evil.example",
        "https://app.example.evil.example",
        "http://app.example",
        "https://app.example:8443",
        "http://localhost:5174",
        "null",
    ] {
        let answer = preflight(&server, "/users/me", "GET", origin).await;
        assert_eq!(
            answer.header("access-control-allow-origin"),
            None,
            "{origin}"
        );
    }

    // Real requests: the refusal's challenge and the answer are readable by the allowed page.
    let refused = server
        .with_headers(
            Method::GET,
            "/users/me",
            &[("origin", "https://app.example")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let exposed = refused.header("access-control-expose-headers").unwrap();
    for name in ["www-authenticate", "retry-after", "link"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    let token = server.access_token("admin", "change-me-please").await;
    let bearer = format!("Bearer {token}");
    for (origin, allowed) in [
        ("https://app.example", Some("https://app.example")),
        ("https://evil.example", None),
    ] {
        let me = server
            .with_headers(
                Method::GET,
                "/users/me",
                &[("origin", origin), ("authorization", &bearer)],
            )
            .await;
        assert_eq!(me.status, StatusCode::OK);
        assert_eq!(
            me.header("access-control-allow-origin"),
            allowed,
            "{origin}"
        );
    }
    server.shut_down().await;
}

#[tokio::test]
async fn without_cors_origins_no_answer_carries_cors_headers() {
    let server = start(&[("AUTH_BOOTSTRAP_ADMIN", ADMIN)]).await;
    let answers = [
        preflight(&server, "/users/me", "GET", "https://app.example").await,
        preflight(&server, "/auth/token", "POST", "https://app.example").await,
        server
            .with_headers(
                Method::GET,
                "/users/me",
                &[("origin", "https://app.example")],
            )
            .await,
    ];
    for answer in answers {
        let everything = answer.everything();
        assert!(
            !everything.to_ascii_lowercase().contains("access-control-"),
            "{everything}"
        );
    }
    server.shut_down().await;
}

#[test]
fn cors_origins_must_be_exactly_what_browsers_send() {
    let config = Config::from_vars(&vars(&[(
        "CORS_ALLOWED_ORIGINS",
        "https://app.example,https://admin.example:8443 , http://127.0.0.1:3000,http://[::1]:8080",
    )]))
    .unwrap();
    assert_eq!(
        config.cors_allowed_origins,
        [
            "https://app.example",
            "https://admin.example:8443",
            "http://127.0.0.1:3000",
            "http://[::1]:8080"
        ]
    );
    assert!(
        Config::from_vars(&vars(&[]))
            .unwrap()
            .cors_allowed_origins
            .is_empty()
    );
    for bad in [
        "*",
        "https://*.example",
        "https://app.example/",
        "https://app.example/path",
        "https://App.example",
        "https://app.example:443",
        "http://app.example",
        "app.example",
        "null",
        "https://user@app.example",
        "https://app.example:0",
        "https://app.example:99999",
        "https://app.example,",
        "ftp://app.example",
    ] {
        let error = Config::from_vars(&vars(&[("CORS_ALLOWED_ORIGINS", bad)]))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("CORS_ALLOWED_ORIGINS: "),
            "{bad}: {error}"
        );
    }
}

/// The server on a loopback port whose address is its issuer (with `path` after it), so that
/// clients can start from the issuer URL alone.
async fn start_as_issuer(path: &str, pairs: &[(&str, &str)]) -> (Running, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}{path}", listener.local_addr().unwrap());
    let origin = issuer.trim_end_matches(path).to_owned();
    let mut all = vec![
        ("AUTH_ISSUER", issuer.as_str()),
        ("AUTH_PUBLIC_URL", origin.as_str()),
    ];
    all.extend_from_slice(pairs);
    (start_on(listener, &all).await, issuer)
}

#[tokio::test]
async fn discovery_leads_from_a_refusal_to_the_issuer_and_its_keys() {
    let (server, issuer) = start_as_issuer("", &[("AUTH_BOOTSTRAP_ADMIN", ADMIN)]).await;
    let origin = format!("http://{}", server.addr);

    // A request without a token is told where the resource's metadata is.
    let refused = server.get("/items", None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let resource_metadata = format!("{origin}/.well-known/oauth-protected-resource");
    assert_eq!(
        refused.header("www-authenticate"),
        Some(format!(r#"Bearer resource_metadata="{resource_metadata}""#).as_str())
    );
    let resource = server
        .get("/.well-known/oauth-protected-resource", None)
        .await;
    assert_eq!(resource.status, StatusCode::OK);
    assert_eq!(resource.header("content-type"), Some("application/json"));
    assert_eq!(
        resource.header("cache-control"),
        Some("public, max-age=3600")
    );
    assert_eq!(
        resource.json(),
        json!({
            "resource": origin,
            "authorization_servers": [issuer],
            "scopes_supported": ["items:read", "items:write"],
            "bearer_methods_supported": ["header"],
            "resource_name": "tower-jwt-auth example API",
        })
    );

    // The issuer's RFC 8414 metadata names the router's endpoints, absolute on the public URL.
    let metadata = server
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    assert_eq!(metadata.status, StatusCode::OK, "{}", metadata.text());
    assert_eq!(
        metadata.json(),
        json!({
            "issuer": issuer,
            "token_endpoint": format!("{origin}/auth/token"),
            "revocation_endpoint": format!("{origin}/auth/revoke"),
            "jwks_uri": format!("{origin}/auth/jwks.json"),
            "grant_types_supported": ["password", "refresh_token"],
            "response_types_supported": [],
            "scopes_supported": ["items:read", "items:write"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
        })
    );
    // Every endpoint it names answers.
    let jwks = server.get("/auth/jwks.json", None).await;
    assert_eq!(jwks.status, StatusCode::OK);
    let token = server.access_token("admin", "change-me-please").await;
    let me = server.get("/items", Some(&token)).await;
    assert_eq!(me.status, StatusCode::OK);
    let revoke = server
        .send(
            Method::POST,
            "/auth/revoke",
            None,
            Some((FORM, format!("token={token}"))),
        )
        .await;
    assert_eq!(revoke.status, StatusCode::OK, "{}", revoke.text());

    // OIDC discovery is not served: a client that tries it first falls back to RFC 8414.
    let openid = server.get("/.well-known/openid-configuration", None).await;
    assert_eq!(openid.status, StatusCode::NOT_FOUND);
    server.shut_down().await;
}

/// `RemoteJwks::discover`, given the issuer URL alone, finds the keys through the metadata and
/// verifies the server's tokens; an issuer with a path has its metadata under that path.
#[cfg(feature = "remote-jwks")]
#[tokio::test]
async fn remote_jwks_discovers_the_servers_keys_from_its_issuer_url() {
    use tower_jwt_auth::remote::RemoteJwks;

    for path in ["", "/tenant/one"] {
        let (server, issuer) = start_as_issuer(path, &[("AUTH_BOOTSTRAP_ADMIN", ADMIN)]).await;
        let metadata = server
            .get(
                &format!("/.well-known/oauth-authorization-server{path}"),
                None,
            )
            .await;
        assert_eq!(metadata.status, StatusCode::OK, "{path}");
        assert_eq!(metadata.json()["issuer"], issuer.as_str());
        if !path.is_empty() {
            let root = server
                .get("/.well-known/oauth-authorization-server", None)
                .await;
            assert_eq!(root.status, StatusCode::NOT_FOUND, "{path}");
        }

        let keys = RemoteJwks::discover(&issuer).unwrap().build().unwrap();
        keys.refresh().await.unwrap();
        let verifier = Verifier::builder(keys)
            .issuer(&issuer)
            .audience("api")
            .require_type("at+jwt")
            .unwrap()
            .build()
            .unwrap();
        let token = server.access_token("admin", "change-me-please").await;
        let claims = verifier.verify_async(&token).await.unwrap();
        assert_eq!(claims.issuer(), Some(issuer.as_str()));
        server.shut_down().await;
    }
}

#[tokio::test]
async fn an_issuer_that_is_not_a_url_is_refused_at_start() {
    let error = refusal(&[
        ("AUTH_ISSUER", "urn:example:issuer"),
        ("AUTH_PUBLIC_URL", "http://127.0.0.1:8000"),
    ])
    .await;
    assert!(error.starts_with("AUTH_ISSUER must be a URL"), "{error}");
    let error = refusal(&[("AUTH_ISSUER", "http://auth.example")]).await;
    assert!(error.contains("AUTH_PUBLIC_URL"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// 3b. Metrics (`METRICS=1`).

/// The value of the series `name` whose labels include every one of `labels`, in the
/// Prometheus text `exposition`.
#[cfg(feature = "metrics")]
fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (labels_part, value) = match rest.strip_prefix('{') {
            Some(rest) => rest.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(k, v)| labels_part.split(',').any(|l| l == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().unwrap())
    })
}

/// What `main` does with `METRICS=1`: the process's recorder is Prometheus, rendered at
/// `/metrics` on a listener of its own. Installed once for this test process (other tests'
/// requests count into it too, so the assertions are lower bounds).
#[cfg(feature = "metrics")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_their_own_port_and_count_logins_and_rejections() {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    let handle = HANDLE
        .get_or_init(|| example::install_metrics().unwrap())
        .clone();
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(metrics, example::metrics_router(handle)).await });

    let server = start(&[("AUTH_BOOTSTRAP_ADMIN", ADMIN)]).await;
    server.access_token("admin", "change-me-please").await;
    assert_eq!(
        server.login("admin", "wrong password").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        server.get("/users/me", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Not on the API's port.
    assert_eq!(
        server.get("/metrics", None).await.status,
        StatusCode::NOT_FOUND
    );

    let scrape = answer(
        server
            .client
            .get(format!("http://{metrics_addr}/metrics").parse().unwrap())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(scrape.status, StatusCode::OK);
    assert!(
        scrape
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let exposition = scrape.text();
    let at_least_one = |name: &str, labels: &[(&str, &str)]| {
        let value = sample(&exposition, name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{exposition}"));
        assert!(value >= 1.0, "{name} {labels:?} = {value}");
    };
    at_least_one("tower_jwt_auth_logins_total", &[("result", "ok")]);
    at_least_one(
        "tower_jwt_auth_logins_total",
        &[("result", "failed"), ("reason", "invalid_grant")],
    );
    at_least_one(
        "tower_jwt_auth_verifications_total",
        &[("result", "failed"), ("reason", "missing")],
    );
    assert!(
        exposition.contains("# HELP tower_jwt_auth_logins_total "),
        "described: {exposition}"
    );
    // Nothing of the request reaches a label: no username, no password.
    assert!(!exposition.contains("admin") && !exposition.contains("wrong password"));
    server.shut_down().await;
}

// ---------------------------------------------------------------------------------------------
// 4. The wire.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_methods_and_unknown_routes() {
    let server = start(&[]).await;
    let health = server.get("/health", None).await;
    assert_eq!(
        (health.status, health.text().as_str()),
        (StatusCode::OK, "ok")
    );

    let wrong_method = server.get("/auth/token", None).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        wrong_method.header("allow").unwrap_or("").contains("POST"),
        "{:?}",
        wrong_method.headers
    );

    for path in ["/nowhere", "/auth/nowhere", "/auth/register"] {
        assert_eq!(
            server.get(path, None).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let anonymous = server.get("/users/me", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(
        anonymous
            .header("www-authenticate")
            .unwrap_or("")
            .starts_with("Bearer")
    );
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_and_wrong_password_answer_the_same_bytes() {
    let server = start(&[("AUTH_BOOTSTRAP_ADMIN", ADMIN)]).await;
    let unknown = server.login("nobody", "change-me-please").await;
    let wrong = server.login("admin", "not-the-password").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.json()["error"], "invalid_grant");
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(unknown.body, wrong.body);
    for name in ["content-type", "content-length", "cache-control", "pragma"] {
        assert_eq!(
            unknown.header(name).unwrap_or(""),
            wrong.header(name).unwrap_or(""),
            "{name}"
        );
    }
    let stats = server.auth.hasher().stats();
    assert_eq!((stats.verifications, stats.dummy_verifications), (1, 1));
    server.shut_down().await;
}

// ---------------------------------------------------------------------------------------------
// 5. Graceful shutdown.

/// Reads from `stream` until `buffer` ends with `suffix` or holds a whole response.
async fn read_until(stream: &mut TcpStream, buffer: &mut Vec<u8>, suffix: &[u8]) {
    let mut chunk = [0u8; 4096];
    while !buffer.ends_with(suffix) {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(buffer));
        buffer.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_request_in_flight_then_stops() {
    let mut server = start(&[("AUTH_BOOTSTRAP_ADMIN", ADMIN)]).await;
    let body = b"grant_type=password&username=admin&password=change-me-please";

    // A login whose handler is running: it asked for the body (`100 Continue`), which has not
    // been sent yet.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /auth/token HTTP/1.1\r\nhost: {}\r\ncontent-type: {FORM}\r\n\
         content-length: {}\r\nexpect: 100-continue\r\n\r\n",
        server.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    read_until(&mut stream, &mut received, b"\r\n\r\n").await;
    assert!(
        received.starts_with(b"HTTP/1.1 100 Continue\r\n"),
        "{:?}",
        String::from_utf8_lossy(&received)
    );

    server.stop.take().unwrap().send(()).unwrap();
    assert!(
        !server.task.is_finished(),
        "serve ended with a request in flight"
    );

    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("\"access_token\""), "{response}");

    let addr = server.addr;
    tokio::time::timeout(Duration::from_secs(30), server.task)
        .await
        .expect("serve did not finish after the shutdown signal")
        .unwrap()
        .unwrap();
    // The listener is gone.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_with_idle_connections_completes() {
    let server = start(&[]).await;
    // The client keeps this connection open in its pool.
    assert_eq!(server.get("/health", None).await.status, StatusCode::OK);
    server.shut_down().await;
}

// ---------------------------------------------------------------------------------------------
// Abuse: what one client may do to the limiter, the hasher and the shared state
// ---------------------------------------------------------------------------------------------

impl Running {
    /// A wrong-password login through a trusted proxy at 127.0.0.1 that appends `real` to the
    /// header it writes, while the client sent its own `client_wrote` header with `own`.
    async fn guess_via_proxy(
        &self,
        proxy_writes: &str,
        real: &str,
        client_wrote: &str,
        own: &str,
    ) -> StatusCode {
        let form = "grant_type=password&username=admin&password=wrong-guess";
        let request = Request::post(format!("http://{}/auth/token", self.addr))
            .header("content-type", FORM)
            .header(client_wrote, own)
            .header(proxy_writes, real);
        let response = self
            .client
            .request(request.body(Full::new(Bytes::from(form))).unwrap())
            .await
            .unwrap();
        response.status()
    }

    async fn post_json(&self, path: &str, body: Value, bearer: Option<&str>) -> Answer {
        self.send(Method::POST, path, bearer, Some((JSON, body.to_string())))
            .await
    }

    async fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> Answer {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (name, value) in pairs {
            form.append_pair(name, value);
        }
        self.send(Method::POST, path, None, Some((FORM, form.finish())))
            .await
    }
}

/// Behind proxies that append to one forwarding header and pass the other through from the
/// client (nginx, AWS ALB), a client writing the other header anew on every request is still
/// one client: `AUTH_FORWARDED_HEADER` names the header the proxies write, and only it is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_never_picks_its_limiter_key_through_a_forwarding_header() {
    let cases = [
        (None, "x-forwarded-for", "198.51.100.7", "forwarded"),
        (
            Some("forwarded"),
            "forwarded",
            "for=198.51.100.7",
            "x-forwarded-for",
        ),
    ];
    for (setting, proxy_writes, real, client_writes) in cases {
        let mut pairs = vec![
            ("AUTH_BOOTSTRAP_ADMIN", ADMIN),
            ("AUTH_TRUSTED_PROXIES", "127.0.0.1"),
        ];
        if let Some(header) = setting {
            pairs.push(("AUTH_FORWARDED_HEADER", header));
        }
        let server = start(&pairs).await;
        for n in 0..7 {
            let own = match client_writes {
                "forwarded" => format!("for=203.0.113.{n}"),
                _ => format!("203.0.113.{n}"),
            };
            let status = server
                .guess_via_proxy(proxy_writes, real, client_writes, &own)
                .await;
            let expected = if n < 6 {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::TOO_MANY_REQUESTS
            };
            assert_eq!(status, expected, "attempt {n} with {setting:?}");
        }
        server.shut_down().await;
    }
    assert!(
        refusal(&[("AUTH_FORWARDED_HEADER", "x-real-ip")])
            .await
            .contains("AUTH_FORWARDED_HEADER")
    );
}

/// Registration is limited per client on every attempt, whatever it answers: a taken name
/// (409) cannot be probed at full speed, and one client cannot fill the user store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_limited_per_client_whatever_it_answers() {
    let server = start(&[("AUTH_BOOTSTRAP_ADMIN", ADMIN), ("AUTH_REGISTRATION", "1")]).await;
    let mut statuses = Vec::new();
    for n in 0..100 {
        // Taken names, malformed bodies and fresh names alike.
        let body = match n % 3 {
            0 => json!({"username": "admin", "password": "long enough password"}),
            1 => json!({"username": format!("user{n}")}),
            _ => json!({"username": format!("user{n}"), "password": "long enough password"}),
        };
        let reply = server.post_json("/auth/register", body, None).await;
        statuses.push(reply.status);
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(reply.header("retry-after").is_some());
            break;
        }
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert_eq!(statuses.len(), 6, "five free attempts: {statuses:?}");
    assert!(statuses.contains(&StatusCode::CONFLICT));
    // The limit is the client's registrations only: logins still go ahead.
    server.access_token("admin", "change-me-please").await;
    server.shut_down().await;

    // With AUTH_RATE_LIMIT=off, no per-client limit is left.
    let server = start(&[
        ("AUTH_BOOTSTRAP_ADMIN", ADMIN),
        ("AUTH_REGISTRATION", "1"),
        ("AUTH_RATE_LIMIT", "off"),
    ])
    .await;
    for _ in 0..10 {
        let body = json!({"username": "admin", "password": "long enough password"});
        let reply = server.post_json("/auth/register", body, None).await;
        assert_eq!(reply.status, StatusCode::CONFLICT);
    }
    server.shut_down().await;
}

/// Every password verification counts on the client's rate, successes included: a client
/// looping valid logins is refused (429) after its burst, before it takes the hasher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_logins_in_a_loop_are_limited_too() {
    let server = start(&[("AUTH_BOOTSTRAP_ADMIN", ADMIN)]).await;
    for n in 0..20 {
        let reply = server.login("admin", "change-me-please").await;
        assert_eq!(reply.status, StatusCode::OK, "login {n}: {}", reply.text());
    }
    let reply = server.login("admin", "change-me-please").await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text()
    );
    assert_eq!(reply.header("retry-after"), Some("1"));
    server.shut_down().await;
}

/// `/auth/revoke` refuses a token issued to another client with an RFC 6749 error, and is
/// limited per client like the token endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_another_clients_token_is_refused_and_limited() {
    let server = start(&[("AUTH_BOOTSTRAP_ADMIN", ADMIN)]).await;
    let token = server.access_token("admin", "change-me-please").await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let reply = server
            .post_form(
                "/auth/revoke",
                &[("token", &token), ("client_id", "other-app")],
            )
            .await;
        statuses.push(reply.status);
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(reply.json()["error"], "unauthorized_client");
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Nothing was revoked.
    assert_eq!(
        server.get("/users/me", Some(&token)).await.status,
        StatusCode::OK
    );
    server.shut_down().await;
}

// ---------------------------------------------------------------------------------------------
// 6. Persistence: restarts on the SQLite file, the first start, several instances on PostgreSQL.

/// A directory of the test's own, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tower-jwt-auth-server-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn database_url(&self) -> String {
        format!("sqlite://{}", self.0.join("auth.db").display())
    }

    fn file(&self, suffix: &str) -> std::path::PathBuf {
        self.0.join(format!("auth.db{suffix}"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

impl Running {
    async fn refresh(&self, refresh_token: &str) -> Answer {
        self.post_form(
            "/auth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    /// `POST /auth/register` of `username` with `password`.
    async fn register(&self, username: &str, password: &str) -> Answer {
        let body = json!({"username": username, "password": password});
        self.post_json("/auth/register", body, None).await
    }

    /// The access and refresh tokens of a successful login.
    async fn tokens(&self, username: &str, password: &str) -> (String, String) {
        let reply = self.login(username, password).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let json = reply.json();
        (
            json["access_token"].as_str().unwrap().to_owned(),
            json["refresh_token"].as_str().unwrap().to_owned(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_restarted_on_its_sqlite_file_keeps_users_sessions_and_revocations() {
    let dir = TempDir::new("restart");
    let url = dir.database_url();
    let pairs = [
        ("DATABASE_URL", url.as_str()),
        ("AUTH_BOOTSTRAP_ADMIN", ADMIN),
        ("AUTH_REGISTRATION", "1"),
    ];
    let server = start(&pairs).await;
    let registered = server.register("bob", "bob's long password").await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.text()
    );
    let (kept_access, kept_refresh) = server.tokens("bob", "bob's long password").await;
    let (revoked_access, revoked_refresh) = server.tokens("admin", "change-me-please").await;
    let logout = server
        .send(Method::POST, "/auth/logout", Some(&revoked_access), None)
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    // The key was generated once, beside the database, for its owner only; so was the file.
    assert_eq!(mode(&dir.file(".signing-key.pem")), 0o600);
    assert_eq!(mode(&dir.file("")), 0o600);
    assert!(
        !dir.file(".admin-password").exists(),
        "AUTH_BOOTSTRAP_ADMIN was given: no generated admin"
    );
    server.shut_down().await;

    let server = start(&pairs).await;
    // The user logs in; a token from before the restart verifies (the same key) and its
    // refresh token refreshes; the logged-out session stays out.
    server.tokens("bob", "bob's long password").await;
    assert_eq!(
        server.get("/users/me", Some(&kept_access)).await.status,
        StatusCode::OK
    );
    let refreshed = server.refresh(&kept_refresh).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text());
    assert_eq!(
        server.get("/users/me", Some(&revoked_access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let replay = server.refresh(&revoked_refresh).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    // The same name cannot be registered again.
    let again = server.register("Bob", "another long password").await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text());
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_creates_an_admin_whose_password_only_its_owner_can_read() {
    let dir = TempDir::new("first-start");
    let url = dir.database_url();
    let server = start(&[("DATABASE_URL", url.as_str())]).await;
    let file = dir.file(".admin-password");
    assert_eq!(mode(&file), 0o600);
    let password = std::fs::read_to_string(&file).unwrap();
    let password = password.trim_end();
    assert!(password.len() >= 24, "{password:?}");
    let token = server.access_token("admin", password).await;
    assert_eq!(
        server.get("/admin/users", Some(&token)).await.status,
        StatusCode::OK
    );
    server.shut_down().await;

    // Not a first start any more: the file and the account stay as they are.
    std::fs::remove_file(&file).unwrap();
    let server = start(&[("DATABASE_URL", url.as_str())]).await;
    assert!(!file.exists());
    server.access_token("admin", password).await;
    server.shut_down().await;

    // AUTH_BOOTSTRAP_ADMIN for the existing account leaves its password alone.
    let server = start(&[
        ("DATABASE_URL", url.as_str()),
        ("AUTH_BOOTSTRAP_ADMIN", ADMIN),
    ])
    .await;
    server.access_token("admin", password).await;
    assert_eq!(
        server.login("admin", "change-me-please").await.status,
        StatusCode::BAD_REQUEST
    );
    server.shut_down().await;

    // A kept signing key that others may read is refused, not used.
    let key = dir.file(".signing-key.pem");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let error = refusal(&[("DATABASE_URL", url.as_str())]).await;
    assert!(error.contains("chmod 600"), "{error}");
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_share_users_sessions_revocations_and_limits() {
    let Some(postgres) =
        Postgres::start("two_servers_on_one_postgres_share_users_sessions_revocations_and_limits")
    else {
        return;
    };
    let (database, key) = (postgres.url(), key_file("ed25519.pkcs8.pem"));
    let pairs = [
        ("DATABASE_URL", database.as_str()),
        ("JWT_PRIVATE_KEY_FILE", key.as_str()),
        ("AUTH_REGISTRATION", "1"),
        ("AUTH_TRUSTED_PROXIES", "127.0.0.1/32"),
        // Not a first start: on PostgreSQL, that would write the admin's password file into
        // the working directory (the checkout).
        ("AUTH_BOOTSTRAP_ADMIN", ADMIN),
    ];
    let (a, b) = (start(&pairs).await, start(&pairs).await);

    // Registered on A, logs in on B; the name is taken on B too.
    let registered = a.register("carol", "carol's long password").await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.text()
    );
    let (access, refresh) = b.tokens("carol", "carol's long password").await;
    let taken = b.register("CAROL", "someone else's").await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.text());
    assert_eq!(
        a.get("/users/me", Some(&access)).await.status,
        StatusCode::OK
    );

    // A session started on B refreshes on A.
    let refreshed = a.refresh(&refresh).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text());
    let refresh = refreshed.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Concurrent refreshes with one token across both: exactly one 200.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let addr = if i % 2 == 0 { a.addr } else { b.addr };
            let form = format!("grant_type=refresh_token&refresh_token={refresh}");
            tokio::spawn(async move {
                let client = Client::builder(TokioExecutor::new()).build_http();
                let request = Request::post(format!("http://{addr}/auth/token"))
                    .header("content-type", FORM)
                    .body(Full::new(Bytes::from(form)))
                    .unwrap();
                client.request(request).await.unwrap().status()
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => ok += 1,
            other => assert_eq!(other, StatusCode::BAD_REQUEST),
        }
    }
    assert_eq!(ok, 1, "exactly one refresh wins");

    // A logout on A is refused on B within a second.
    let (access, _) = a.tokens("carol", "carol's long password").await;
    assert_eq!(
        b.get("/users/me", Some(&access)).await.status,
        StatusCode::OK
    );
    let logout = a
        .send(Method::POST, "/auth/logout", Some(&access), None)
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let logged_out = std::time::Instant::now();
    while b.get("/users/me", Some(&access)).await.status == StatusCode::OK {
        assert!(
            logged_out.elapsed() < Duration::from_secs(1),
            "B still accepts a token logged out on A"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The login limiter is shared: five free failures and the sixth, spread over both; then
    // both refuse. (From a client of its own behind the loopback proxy: the refused refresh
    // replays above counted against the loopback client.)
    let client = Some("198.51.100.9");
    for server in [&a, &b, &a, &b, &a, &b] {
        assert_eq!(server.guess("carol", client).await, StatusCode::BAD_REQUEST);
    }
    for server in [&a, &b] {
        assert_eq!(
            server.guess("carol", client).await,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    a.shut_down().await;
    b.shut_down().await;
}

/// The example server on PostgreSQL while the database is killed, then hung: every answer
/// comes within 5 s; logins get 503 with `Retry-After` whatever the password; a valid token
/// keeps working until the replica's 5 s bound, then 503; service resumes without a restart.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_within_its_bounds_while_the_database_is_down_or_hung() {
    let Some(mut postgres) =
        Postgres::start("the_server_answers_within_its_bounds_while_the_database_is_down_or_hung")
    else {
        return;
    };
    let (database, key) = (postgres.url(), key_file("ed25519.pkcs8.pem"));
    let server = start(&[
        ("DATABASE_URL", database.as_str()),
        ("JWT_PRIVATE_KEY_FILE", key.as_str()),
        ("AUTH_BOOTSTRAP_ADMIN", ADMIN),
    ])
    .await;
    let token = server.access_token("admin", "change-me-please").await;

    for fault in ["KILL", "STOP"] {
        match fault {
            "KILL" => postgres.kill(),
            _ => postgres.signal("STOP"),
        }
        let down = std::time::Instant::now();
        for password in ["change-me-please", "wrong password"] {
            let started = std::time::Instant::now();
            let reply = server.login("admin", password).await;
            assert_eq!(
                reply.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{fault} {password}: {}",
                reply.text()
            );
            assert!(reply.header("retry-after").is_some(), "{fault}");
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{fault}: a login took {:?}",
                started.elapsed()
            );
        }
        // A route that reads the database answers 503 and when to retry.
        let me = server.get("/users/me", Some(&token)).await;
        assert_eq!(me.status, StatusCode::SERVICE_UNAVAILABLE, "{fault}");
        assert!(me.header("retry-after").is_some(), "{fault}");
        // A route that does not is answered from the revocation replica: while it is fresh,
        // the token works; past its 5 s bound, 503 rather than a token it cannot vouch for.
        loop {
            let started = std::time::Instant::now();
            let reply = server.get("/items", Some(&token)).await;
            assert!(started.elapsed() < Duration::from_secs(5), "{fault}");
            match reply.status {
                StatusCode::SERVICE_UNAVAILABLE => break,
                StatusCode::OK => {}
                other => panic!("{fault}: {other} {}", reply.text()),
            }
            assert!(
                down.elapsed() < Duration::from_secs(15),
                "{fault}: never 503"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            down.elapsed() >= Duration::from_secs(4),
            "{fault}: refused after {:?}, before the bound",
            down.elapsed()
        );
        match fault {
            "KILL" => postgres.restart(),
            _ => postgres.signal("CONT"),
        }
        let back = std::time::Instant::now();
        loop {
            if server.login("admin", "change-me-please").await.status == StatusCode::OK
                && server.get("/items", Some(&token)).await.status == StatusCode::OK
            {
                break;
            }
            assert!(
                back.elapsed() < Duration::from_secs(20),
                "{fault}: did not recover"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    server.shut_down().await;
}

/// `AUTH_REFRESH_GRACE`: a refresh presented again within it gets the same new refresh token;
/// without it, the second presentation is a replay and ends the session. Bad values refuse
/// to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_grace_period_is_opt_in() {
    for (grace, retried) in [(Some("30"), true), (None, false)] {
        let mut pairs = vec![("AUTH_BOOTSTRAP_ADMIN", ADMIN)];
        pairs.extend(grace.map(|grace| ("AUTH_REFRESH_GRACE", grace)));
        let server = start(&pairs).await;
        let (_, refresh) = server.tokens("admin", "change-me-please").await;
        let first = server.refresh(&refresh).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text());
        let again = server.refresh(&refresh).await;
        if retried {
            assert_eq!(again.status, StatusCode::OK, "{}", again.text());
            assert_eq!(again.json()["refresh_token"], first.json()["refresh_token"]);
        } else {
            assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.text());
            let next = first.json()["refresh_token"].as_str().unwrap().to_owned();
            assert_eq!(server.refresh(&next).await.status, StatusCode::BAD_REQUEST);
        }
        server.shut_down().await;
    }
    for bad in ["0", "301", "1.5", "ten"] {
        let error = refusal(&[("AUTH_REFRESH_GRACE", bad)]).await;
        assert!(error.contains("AUTH_REFRESH_GRACE"), "{bad}: {error}");
    }
}

// ---------------------------------------------------------------------------------------------
// Account mail.

#[tokio::test]
async fn mail_settings_are_checked_at_start() {
    for (pairs, why) in [
        (
            &[("SMTP_URL", "smtp://127.0.0.1:25?tls=none")][..],
            "MAIL_FROM",
        ),
        (
            &[
                ("SMTP_URL", "smtp://mail.example?tls=none"),
                ("MAIL_FROM", "a@b.example"),
            ][..],
            "loopback",
        ),
        (
            &[
                ("SMTP_URL", "smtps://mail.example"),
                ("MAIL_FROM", "not an address"),
            ][..],
            "MAIL_FROM",
        ),
        (&[("SMTP_USERNAME", "user")][..], "SMTP_PASSWORD"),
        (
            &[("SMTP_USERNAME", "user"), ("SMTP_PASSWORD", "secret")][..],
            "need SMTP_URL",
        ),
        (&[("AUTH_RESET_TTL", "10")][..], "AUTH_RESET_TTL"),
        (&[("AUTH_RESET_TTL", "soon")][..], "AUTH_RESET_TTL"),
        (
            &[("AUTH_EMAIL_VERIFICATION", "maybe")][..],
            "AUTH_EMAIL_VERIFICATION",
        ),
        (
            &[("AUTH_PUBLIC_URL", "http://app.example")][..],
            "AUTH_PUBLIC_URL",
        ),
        (
            &[
                ("SMTP_URL", "smtps://mail.example"),
                ("MAIL_FROM", "a@b.example"),
                ("SMTP_ROOT_CERT_FILE", "/nonexistent/root.pem"),
            ][..],
            "SMTP_ROOT_CERT_FILE",
        ),
    ] {
        let error = refusal(pairs).await;
        assert!(error.contains(why), "{pairs:?}: {error}");
        assert!(!error.contains("secret"), "{error}");
    }
    let config = Config::from_vars(&vars(&[])).unwrap();
    assert_eq!(
        config.public_url, config.issuer,
        "links default to the issuer"
    );
    assert_eq!(config.reset_ttl, Duration::from_secs(1800));
    assert!(!config.email_verification);
}

/// The README's mail walk-through, against a real SMTP server: registration with a verified
/// address, then a forgotten password reset by the mailed link.
#[cfg(feature = "smtp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_by_mail() {
    use crate::common::smtp_server::SmtpServer;
    let Some(smtp) = SmtpServer::start("a_forgotten_password_is_reset_by_mail") else {
        return;
    };
    let url = smtp.url();
    let server = start(&[
        ("AUTH_REGISTRATION", "1"),
        ("AUTH_BOOTSTRAP_ADMIN", ADMIN),
        ("AUTH_EMAIL_VERIFICATION", "1"),
        ("AUTH_PUBLIC_URL", "https://app.example"),
        ("SMTP_URL", &url),
        ("MAIL_FROM", "no-reply@app.example"),
    ])
    .await;
    let registered = server
        .post_json(
            "/auth/register",
            json!({"username": "alice", "password": "alice-password-1", "email": "alice@example.com"}),
            None,
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.text()
    );
    let unverified = server.login("alice", "alice-password-1").await;
    assert_eq!(unverified.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        unverified.json()["error_description"],
        "the email address is not verified yet"
    );
    let mail = smtp.wait_for(1).await.swap_remove(0);
    assert_eq!(mail.header("To").as_deref(), Some("alice@example.com"));
    let token = mail
        .token_after("https://app.example/verify-email")
        .unwrap();
    let verified = server
        .post_json("/auth/email/verify", json!({"token": token}), None)
        .await;
    assert_eq!(
        verified.status,
        StatusCode::NO_CONTENT,
        "{}",
        verified.text()
    );
    let access = server.access_token("alice", "alice-password-1").await;

    let forgot = server
        .post_json(
            "/auth/password/forgot",
            json!({"email": "alice@example.com"}),
            None,
        )
        .await;
    let nobody = server
        .post_json(
            "/auth/password/forgot",
            json!({"email": "nobody@example.com"}),
            None,
        )
        .await;
    assert_eq!(forgot.status, StatusCode::ACCEPTED);
    assert_eq!(forgot.observable(), nobody.observable());
    let mail = smtp.wait_for(2).await.swap_remove(1);
    let token = mail
        .token_after("https://app.example/reset-password")
        .unwrap();
    let reset = server
        .post_json(
            "/auth/password/reset",
            json!({"token": token, "new_password": "alice-password-2"}),
            None,
        )
        .await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT, "{}", reset.text());
    assert_eq!(
        server.get("/users/me", Some(&access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.login("alice", "alice-password-1").await.status,
        StatusCode::BAD_REQUEST
    );
    server.access_token("alice", "alice-password-2").await;
    server.shut_down().await;
}

/// Without `SMTP_URL` the mail routes work and the messages go to the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_mail_is_logged() {
    let server = start(&[("AUTH_BOOTSTRAP_ADMIN", ADMIN)]).await;
    let forgot = server
        .post_json("/auth/password/forgot", json!({"username": "admin"}), None)
        .await;
    assert_eq!(forgot.status, StatusCode::ACCEPTED);
    let reset = server
        .post_json(
            "/auth/password/reset",
            json!({"token": "unknown", "new_password": "long enough password"}),
            None,
        )
        .await;
    assert_eq!(reset.status, StatusCode::BAD_REQUEST);
    assert!(
        server
            .get("/auth/email/verify", None)
            .await
            .status
            .is_client_error()
    );
    server.shut_down().await;
}

// ---------------------------------------------------------------------------------------------
// External sign-in

/// A server with a `TestIssuer` as the provider `test` (sign-up open), the provider, and the
/// server's origin.
#[cfg(feature = "testing")]
async fn with_provider() -> (Running, tower_jwt_auth::testing::TestIssuer, String) {
    let idp = tower_jwt_auth::testing::TestIssuer::start().await.unwrap();
    let (server, origin) = start_as_issuer(
        "",
        &[
            ("AUTH_OIDC_TEST_ISSUER", idp.issuer()),
            ("AUTH_OIDC_TEST_CLIENT_ID", idp.client_id()),
            ("AUTH_OIDC_TEST_CLIENT_SECRET", idp.client_secret()),
            ("AUTH_EXTERNAL_SIGNUP", "open"),
        ],
    )
    .await;
    (server, idp, origin)
}

#[cfg(feature = "testing")]
#[tokio::test]
async fn the_sign_in_page_leads_through_a_provider_to_the_api() {
    let (server, idp, origin) = with_provider().await;
    idp.sign_in_as(tower_jwt_auth::testing::TestUser::new("t-1").name("Tess"));
    let page = server.get("/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text()
            .contains(r#"data-provider="test">Sign in with test</button>"#)
    );
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'")
    );
    assert_eq!(server.get("/signin.js", None).await.status, StatusCode::OK);

    // What the page's script does, then the browser's redirects, one by one.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let start = format!(
        "/auth/external/test/start?redirect_to={}%2F&code_challenge={challenge}&code_challenge_method=S256",
        form_urlencoded::byte_serialize(origin.as_bytes()).collect::<String>()
    );
    let started = server.get(&start, None).await;
    assert_eq!(started.status, StatusCode::FOUND, "{}", started.text());
    let cookie = started
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let at_provider = started.header("location").unwrap().to_owned();
    let answer = server
        .client
        .get(at_provider.parse().unwrap())
        .await
        .unwrap();
    let callback = answer.headers()["location"].to_str().unwrap().to_owned();
    let path = callback.strip_prefix(&origin).unwrap();
    let back = server
        .with_headers(Method::GET, path, &[("cookie", &cookie)])
        .await;
    assert_eq!(back.status, StatusCode::FOUND);
    let location = back.header("location").unwrap();
    let code = location
        .strip_prefix(&format!("{origin}/?code="))
        .unwrap_or_else(|| panic!("{location}"));
    let tokens = server
        .post_form(
            "/auth/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("code_verifier", verifier),
            ],
        )
        .await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text());
    let access = tokens.json()["access_token"].as_str().unwrap().to_owned();
    let me = server.get("/users/me", Some(&access)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["username"], "tess");
    assert_eq!(me.json()["scopes"], json!(["items:read"]));
    assert_eq!(
        server.get("/items", Some(&access)).await.status,
        StatusCode::OK
    );
    // The metadata names the code grant and its PKCE method.
    let metadata = server
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .json();
    assert!(
        metadata["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("authorization_code"))
    );
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        json!(["S256"])
    );
    server.shut_down().await;
}

#[tokio::test]
async fn external_sign_in_settings_are_checked_at_start() {
    for (pairs, expected) in [
        (
            vec![("AUTH_OIDC_GOOGLE_ISSUER", "https://accounts.google.com")],
            "set AUTH_OIDC_GOOGLE_ISSUER, AUTH_OIDC_GOOGLE_CLIENT_ID and AUTH_OIDC_GOOGLE_CLIENT_SECRET together",
        ),
        (
            vec![("AUTH_GITHUB_CLIENT_ID", "x")],
            "set AUTH_GITHUB_CLIENT_ID and AUTH_GITHUB_CLIENT_SECRET together",
        ),
        (
            vec![("AUTH_EXTERNAL_SIGNUP", "everyone")],
            "AUTH_EXTERNAL_SIGNUP must be open, closed or domains:",
        ),
        (
            vec![("AUTH_EXTERNAL_SIGNUP", "domains:")],
            "AUTH_EXTERNAL_SIGNUP: ",
        ),
        (
            vec![
                ("AUTH_GITHUB_CLIENT_ID", "x"),
                ("AUTH_GITHUB_CLIENT_SECRET", "y"),
                ("AUTH_ALLOWED_REDIRECTS", "https://app.example/path"),
            ],
            "AUTH_ALLOWED_REDIRECTS: \"https://app.example/path\"",
        ),
        (
            vec![
                ("AUTH_OIDC_CORP_ISSUER", "http://idp.example"),
                ("AUTH_OIDC_CORP_CLIENT_ID", "x"),
                ("AUTH_OIDC_CORP_CLIENT_SECRET", "y"),
            ],
            "AUTH_OIDC_CORP_*: ",
        ),
    ] {
        let refusal = refusal(&pairs).await;
        assert!(refusal.contains(expected), "{pairs:?}: {refusal}");
    }
}

#[tokio::test]
async fn without_providers_the_sign_in_page_says_how_to_configure_them() {
    let server = start(&[]).await;
    let page = server.get("/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("AUTH_OIDC_&lt;NAME&gt;_ISSUER"));
    assert!(!page.text().contains("data-provider"));
    // No external routes without providers.
    let start = server.get("/auth/external/google/start", None).await;
    assert_eq!(start.status, StatusCode::NOT_FOUND);
    server.shut_down().await;
}
