//! Names a person reads as one, over HTTP: the router on a loopback port, driven by a real
//! HTTP client. Look-alikes of an existing `admin` (invisible characters of every kind, other
//! scripts, confusable letters, case and width) are never registered; accounts stored before
//! the current rules (their names in the old form, their hashes made from the password's bytes
//! as typed) still log in and get their hash replaced; and the login rate limiter counts every
//! spelling of one account's name as that account.

use crate::common::answer::{Answer, answer};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHasher as _, SaltString};
use argon2::{Argon2, Params};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_jwt_auth::issuer::TokenIssuer;
use tower_jwt_auth::password::{PasswordHasher, Verified};
use tower_jwt_auth::ratelimit::{LoginLimits, MemoryLimiterStore, RateLimitLoginLayer};
use tower_jwt_auth::router::{AuthRouter, AuthRouterBuilder, Created, NewUser, Registration};

const PASSWORD: &str = "correct horse battery staple";
const FORM: &str = "application/x-www-form-urlencoded";

/// The app (`/auth` only) on a loopback port, with the peer address the limiter reads.
struct Served {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    auth: AuthRouter,
    task: JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A router with registration, cheap argon2 parameters and whatever `configure` adds.
async fn serve(configure: impl FnOnce(AuthRouterBuilder) -> AuthRouterBuilder) -> Served {
    let hasher = PasswordHasher::builder()
        .params(1024, 1, 1)
        .unwrap()
        .build()
        .unwrap();
    let issuer = TokenIssuer::generate_ed25519("https://api.test", "api").unwrap();
    let builder = AuthRouter::builder(issuer)
        .hasher(hasher)
        .registration(Registration {
            roles: vec!["user".into()],
            scopes: vec![],
        });
    let auth = configure(builder).build().unwrap();
    let app = axum::Router::new().nest("/auth", auth.router());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).await.unwrap();
    });
    Served {
        addr,
        client: Client::builder(TokioExecutor::new()).build_http(),
        auth,
        task,
    }
}

impl Served {
    async fn post(&self, path: &str, content_type: &str, body: String) -> Answer {
        let request = Request::post(format!("http://{}{path}", self.addr))
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        answer(self.client.request(request).await.unwrap()).await
    }

    async fn register(&self, username: &str, password: &str) -> Answer {
        let body = json!({"username": username, "password": password});
        self.post("/auth/register", "application/json", body.to_string())
            .await
    }

    async fn login(&self, username: &str, password: &str) -> Answer {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "password")
            .append_pair("username", username)
            .append_pair("password", password)
            .finish();
        self.post("/auth/token", FORM, form).await
    }

    async fn stored_hash(&self, id: &str) -> String {
        let user = self.auth.users().find_by_id(id).await.unwrap();
        user.unwrap().password_hash
    }
}

/// `admin` with one character inserted at `at`.
fn admin_with(c: char, at: usize) -> String {
    format!("{}{c}{}", &"admin"[..at], &"admin"[at..])
}

#[tokio::test]
async fn look_alikes_of_an_existing_account_are_never_registered() {
    let app = serve(|builder| builder).await;
    assert_eq!(
        app.register("admin", PASSWORD).await.status,
        StatusCode::CREATED
    );

    let mut look_alikes: Vec<(String, &str)> = Vec::new();
    for (c, what) in [
        ('\u{200b}', "zero width space"),
        ('\u{200c}', "zero width non-joiner"),
        ('\u{200d}', "zero width joiner"),
        ('\u{ad}', "soft hyphen"),
        ('\u{2060}', "word joiner"),
        ('\u{feff}', "byte order mark"),
        ('\u{180e}', "Mongolian vowel separator"),
        ('\u{200e}', "left-to-right mark"),
        ('\u{200f}', "right-to-left mark"),
        ('\u{202e}', "right-to-left override"),
        ('\u{2066}', "left-to-right isolate"),
        ('\u{61c}', "Arabic letter mark"),
    ] {
        for at in [0, 2, 5] {
            look_alikes.push((admin_with(c, at), what));
        }
    }
    look_alikes.extend(
        [
            ("\u{430}dmin", "a Cyrillic а"),
            ("adm\u{456}n", "a Cyrillic і"),
            ("\u{3b1}dmin", "a Greek α"),
            (
                "\u{430}\u{501}\u{43c}\u{456}\u{578}",
                "Cyrillic and Armenian throughout",
            ),
            ("adrnin", "rn for m"),
            ("ADRNIN", "rn for m, upper-case"),
            ("adm\u{131}n", "a dotless ı"),
            ("Admin", "upper-case A"),
            ("ADMIN", "upper-case"),
            ("ａｄｍｉｎ", "full-width"),
            ("Ａdmin", "one full-width letter"),
            (" admin\t", "padded"),
            ("\u{1d41a}dmin", "a mathematical a"),
            ("\u{202e}nimda", "reversed behind an override"),
        ]
        .map(|(name, what)| (name.to_owned(), what)),
    );

    for (name, what) in &look_alikes {
        let answer = app.register(name, PASSWORD).await;
        let body = answer.json();
        match answer.status.as_u16() {
            409 => assert_eq!(body["error"], "username_taken", "{what}: {name:?}"),
            400 => assert_eq!(body["error"], "invalid_request", "{what}: {name:?}"),
            other => panic!("{what}: {name:?} answered {other}: {body}"),
        }
    }
    let users = app.auth.users().page(None, usize::MAX).await.unwrap();
    assert_eq!(users.len(), 1, "{users:?}");
    // The control: a name that only differs is a name, and `admin` still logs in.
    assert_eq!(
        app.register("admins", PASSWORD).await.status,
        StatusCode::CREATED
    );
    assert_eq!(app.login("ADMIN", PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn names_of_one_script_or_a_highly_restrictive_mix_register_and_log_in() {
    let app = serve(|builder| builder).await;
    for (name, spelt) in [
        ("Ιωάννης", "ιωάννησ"),
        ("Иван", "ИВАН"),
        ("山田たろう", "山田たろう"),
        ("タナカtaro", "ﾀﾅｶTARO"),
        ("Straße", "STRASSE"),
    ] {
        let answer = app.register(name, PASSWORD).await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "{name}: {}",
            answer.json()
        );
        let answer = app.login(spelt, PASSWORD).await;
        assert_eq!(answer.status, StatusCode::OK, "{spelt}: {}", answer.json());
    }
}

/// A password hash as the hasher wrote it before passwords were normalised: argon2id of the
/// bytes as typed.
fn hash_of_bytes(password: &str) -> String {
    let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
    let argon2 = Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        Params::new(1024, 1, 1, None).unwrap(),
    );
    argon2
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

/// A user as an earlier version stored it: the name in the old form (NFKC, lower-cased), the
/// hash made from the password's bytes as they were typed.
async fn legacy_user(app: &Served, username: &str, typed: &str) -> String {
    let user = NewUser {
        username: username.to_owned(),
        email: None,
        password_hash: hash_of_bytes(typed),
        roles: vec!["user".to_owned()],
        scopes: vec![],
    };
    match app.auth.users().create(user).await.unwrap() {
        Created::Created(user) => {
            assert_eq!(user.username, username, "stored as it was");
            user.id
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_legacy_account_logs_in_with_either_normal_form_and_gets_a_normalised_hash() {
    let app = serve(|builder| builder).await;
    // Typed on a system that sends decomposed letters and a no-break space.
    let nfd = "cre\u{300}me\u{a0}bru\u{302}le\u{301}e";
    let nfc = "crème brûlée";
    let id = legacy_user(&app, "straße", nfd).await;
    let before = app.stored_hash(&id).await;

    // The old name (`straße`, which now normalises to `strasse`) and the bytes as typed.
    let answer = app.login("Straße", nfd).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
    let after = app.stored_hash(&id).await;
    assert_ne!(after, before, "re-hashed on login");
    assert_eq!(
        app.auth.hasher().verify(nfc, &after).await.unwrap(),
        Verified::Match {
            needs_rehash: false
        },
        "the new hash is of the normal form"
    );

    // Now either form, and any spelling of the old name, logs in; nothing more to re-hash.
    for (username, password) in [("straße", nfc), ("STRAßE", nfd), ("straße", nfd)] {
        let answer = app.login(username, password).await;
        assert_eq!(answer.status, StatusCode::OK, "{username} {password:?}");
    }
    assert_eq!(app.stored_hash(&id).await, after);
    assert_eq!(
        app.login("straße", "creme brulee").await.status,
        StatusCode::BAD_REQUEST
    );

    // A name the current rules refuse (non-ASCII punctuation) is found in its old form.
    legacy_user(&app, "o’brien", PASSWORD).await;
    assert_eq!(app.login("O’Brien", PASSWORD).await.status, StatusCode::OK);
    // It still keeps its look-alikes out.
    assert_eq!(
        app.register("o'brien", PASSWORD).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.register("STRASSE", PASSWORD).await.status,
        StatusCode::CONFLICT
    );
}

/// Per (client, username), two free failures: a third goes through and starts a minute's
/// wait. The other rules are out of the way.
async fn limited() -> Served {
    let limits = LoginLimits::default()
        .per_client_and_username(2, Duration::from_secs(60), Duration::from_secs(60))
        .unwrap()
        .per_client(10_000, Duration::from_secs(60), 10_000)
        .unwrap();
    let store = MemoryLimiterStore::new(limits);
    serve(|builder| builder.rate_limit(RateLimitLoginLayer::new(Arc::new(store)))).await
}

/// Fails a login with each spelling, then answers what `then` gets with the right password.
async fn fail_then(app: &Served, spellings: &[&str], then: &str) -> StatusCode {
    for spelling in spellings {
        let answer = app.login(spelling, "wrong password").await;
        assert_eq!(answer.json()["error"], "invalid_grant", "{spelling:?}");
    }
    app.login(then, PASSWORD).await.status
}

#[tokio::test]
async fn the_rate_limiter_counts_every_spelling_of_a_name_as_one_username() {
    let app = limited().await;
    for name in ["admin", "strasse"] {
        app.auth
            .create_user(name, PASSWORD, &["user"], &[])
            .await
            .unwrap();
    }
    let spellings = ["ADMIN", "ａｄｍｉｎ", " Admin "];
    assert_eq!(
        fail_then(&app, &spellings, "admin").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // `ß` and `ss` are one name, and so is a spelling only the old rules read (`ﬆ`).
    let spellings = ["Straße", "\u{fb06}raße", "STRASSE"];
    assert_eq!(
        fail_then(&app, &spellings, "strasse").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_name_the_rules_refuse_is_still_limited_and_limits_no_other() {
    let app = limited().await;
    app.auth
        .create_user("admin", PASSWORD, &["user"], &[])
        .await
        .unwrap();
    // Counted under the name as typed, which the old rules accepted.
    let cyrillic = "\u{430}dmin";
    let spellings = [cyrillic, "\u{410}DMIN", cyrillic];
    assert_eq!(
        fail_then(&app, &spellings, cyrillic).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The control: the account it imitates was not touched.
    assert_eq!(app.login("admin", PASSWORD).await.status, StatusCode::OK);
}
