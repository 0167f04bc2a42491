//! `TestIssuer`'s login endpoints over real HTTP: the authorization-code flow with PKCE as a
//! relying party drives it, the ID token it ends with, and every refusal on the way.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tower_jwt_auth::testing::{TestIssuer, TestUser};
use tower_jwt_auth::{Claims, ErrorKind, Verifier};

const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
/// RFC 7636 appendix B's verifier and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("{err}: {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The `error` of a token error response, with its status.
    fn error(&self) -> (StatusCode, String) {
        let error = self.json()["error"].as_str().unwrap().to_owned();
        (self.status, error)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }

    /// The query parameters of the `Location` of a redirect to `REDIRECT_URI`.
    fn redirected(&self) -> HashMap<String, String> {
        assert_eq!(self.status, StatusCode::FOUND, "{:?}", self.body);
        let location = self.header("location").unwrap();
        let query = location
            .strip_prefix(&format!("{REDIRECT_URI}?"))
            .unwrap_or_else(|| panic!("{location}"));
        let mut params = HashMap::new();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap();
            assert!(
                params.insert(name.to_owned(), decode(value)).is_none(),
                "{name} twice"
            );
        }
        params
    }
}

async fn send(request: Request<Full<Bytes>>) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// Percent-encodes everything but unreserved characters.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

fn decode(value: &str) -> String {
    let mut bytes = Vec::new();
    let mut rest = value.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = std::str::from_utf8(&tail[..2]).unwrap();
            bytes.push(u8::from_str_radix(hex, 16).unwrap());
            rest = &tail[2..];
        } else {
            assert_ne!(byte, b'+', "spaces are sent as %20");
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).unwrap()
}

fn form(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `GET /authorize` with `params`.
async fn authorize(issuer: &TestIssuer, params: &[(&str, &str)]) -> Reply {
    let uri = format!("{}?{}", issuer.authorization_endpoint(), form(params));
    send(Request::get(uri).body(Full::default()).unwrap()).await
}

/// A well-formed authorization request: openid email, state, nonce, S256 challenge.
/// [`authorization`] with the parameter `name` set to `value`, or left out (`None`).
fn authorization_with<'a>(
    issuer: &'a TestIssuer,
    name: &'static str,
    value: Option<&'static str>,
) -> Vec<(&'a str, &'a str)> {
    let mut params = authorization(issuer);
    params.retain(|(key, _)| *key != name);
    if let Some(value) = value {
        params.push((name, value));
    }
    params
}

fn authorization(issuer: &TestIssuer) -> Vec<(&str, &str)> {
    vec![
        ("response_type", "code"),
        ("client_id", issuer.client_id()),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid email"),
        ("state", "st/ate 1"),
        ("nonce", "n-0S6_WzA2Mj"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
}

/// The code of a successful authorization with `params`.
async fn login_code(issuer: &TestIssuer, params: &[(&str, &str)]) -> String {
    let reply = authorize(issuer, params).await;
    let mut params = reply.redirected();
    params
        .remove("code")
        .unwrap_or_else(|| panic!("no code: {params:?}"))
}

fn basic(id: &str, secret: &str) -> String {
    let credentials = format!("{}:{}", encode(id), encode(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

/// `POST /token` with `params`, the client authenticated with HTTP Basic when `basic` says so.
async fn token_with(issuer: &TestIssuer, auth: Option<String>, params: &[(&str, &str)]) -> Reply {
    let mut request = Request::post(issuer.token_endpoint())
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    send(request.body(Full::from(form(params))).unwrap()).await
}

/// The token request that redeems `code` from `authorization`, with Basic authentication.
async fn redeem(issuer: &TestIssuer, code: &str) -> Reply {
    token_with(
        issuer,
        Some(basic(issuer.client_id(), issuer.client_secret())),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

/// A verifier for the issuer's ID tokens: keys through discovery, `aud` the client.
fn id_token_verifier(issuer: &TestIssuer) -> Verifier {
    Verifier::builder(issuer.remote_jwks().unwrap().build().unwrap())
        .issuer(issuer.issuer())
        .audience(issuer.client_id())
        .build()
        .unwrap()
}

fn segment(token: &str, at: usize) -> Value {
    let part = token.split('.').nth(at).unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

async fn id_token_claims(issuer: &TestIssuer, reply: &Reply) -> Claims {
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let id_token = reply.json()["id_token"].as_str().unwrap().to_owned();
    id_token_verifier(issuer)
        .verify_async(&id_token)
        .await
        .unwrap()
}

#[tokio::test]
async fn discovery_announces_the_login_endpoints() {
    let issuer = TestIssuer::start().await.unwrap();
    let url = format!("{}/.well-known/openid-configuration", issuer.issuer());
    let reply = send(Request::get(url).body(Full::default()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let metadata = reply.json();
    assert_eq!(metadata["issuer"], issuer.issuer());
    assert_eq!(
        metadata["authorization_endpoint"],
        format!("{}/authorize", issuer.issuer())
    );
    assert_eq!(
        metadata["token_endpoint"],
        format!("{}/token", issuer.issuer())
    );
    assert_eq!(
        metadata["authorization_endpoint"],
        issuer.authorization_endpoint()
    );
    assert_eq!(metadata["token_endpoint"], issuer.token_endpoint());
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        json!(["S256"])
    );
    assert_eq!(metadata["response_types_supported"], json!(["code"]));
    assert_eq!(
        metadata["grant_types_supported"],
        json!(["authorization_code"])
    );
    assert_eq!(
        metadata["scopes_supported"],
        json!(["openid", "email", "profile"])
    );
    assert!(metadata.get("userinfo_endpoint").is_none());
    assert_eq!(issuer.client_id(), "test-client");
    assert!(issuer.client_secret().len() >= 16);
}

#[tokio::test]
async fn the_code_flow_signs_the_user_in() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.sign_in_as(
        TestUser::new("alice")
            .email("alice@example.com", true)
            .name("Alice Liddell")
            .claim("groups", json!(["staff"])),
    );
    let reply = authorize(&issuer, &authorization(&issuer)).await;
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let redirect = reply.redirected();
    assert_eq!(redirect["state"], "st/ate 1");
    assert_eq!(redirect["iss"], issuer.issuer());
    let code = &redirect["code"];
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(code)
        .unwrap();
    assert!(raw.len() >= 16, "at least 128 random bits");
    assert_ne!(
        code,
        &code_of_another_login(&issuer).await,
        "every code is new"
    );

    // Signing someone else in now does not change the code already issued.
    issuer.sign_in_as(TestUser::new("bob"));
    let reply = redeem(&issuer, code).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let answer = reply.json();
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["expires_in"], 300);
    assert_eq!(answer["scope"], "openid email");

    let id_token = answer["id_token"].as_str().unwrap();
    let header = segment(id_token, 0);
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], issuer.published_kids()[0].as_str());
    let claims = id_token_claims(&issuer, &reply).await;
    assert_eq!(claims.issuer(), Some(issuer.issuer()));
    assert_eq!(claims.subject(), Some("alice"));
    assert_eq!(claims.audience(), [issuer.client_id()]);
    let extra = claims.extra();
    assert_eq!(extra["azp"], issuer.client_id());
    assert_eq!(extra["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(extra["email"], "alice@example.com");
    assert_eq!(extra["email_verified"], true);
    assert_eq!(extra["name"], "Alice Liddell");
    assert_eq!(extra["groups"], json!(["staff"]));
    let (iat, exp) = (claims.issued_at().unwrap(), claims.expires_at().unwrap());
    assert_eq!(exp.as_secs() - iat.as_secs(), 300);

    // The access token is for the issuer's API audience, as the kit's own verifier expects.
    let access_token = answer["access_token"].as_str().unwrap();
    let access = issuer
        .verifier()
        .unwrap()
        .verify_async(access_token)
        .await
        .unwrap();
    assert_eq!(access.subject(), Some("alice"));
    assert!(access.has_scope("email"));
    assert_eq!(access.client_id(), Some(issuer.client_id()));

    // The next login is bob's, with neither email nor name, and no nonce asked.
    let mut params = authorization(&issuer);
    params.retain(|(name, _)| *name != "nonce");
    let reply = redeem(&issuer, &login_code(&issuer, &params).await).await;
    let claims = id_token_claims(&issuer, &reply).await;
    assert_eq!(claims.subject(), Some("bob"));
    for absent in ["nonce", "email", "email_verified", "name", "groups"] {
        assert!(claims.extra().get(absent).is_none(), "{absent}");
    }
    assert_eq!(issuer.authorize_requests(), 3);
    assert_eq!(issuer.token_requests(), 2);
}

async fn code_of_another_login(issuer: &TestIssuer) -> String {
    login_code(issuer, &authorization(issuer)).await
}

#[tokio::test]
async fn the_default_user_is_test_user_without_email() {
    let issuer = TestIssuer::start().await.unwrap();
    let code = login_code(&issuer, &authorization(&issuer)).await;
    let claims = id_token_claims(&issuer, &redeem(&issuer, &code).await).await;
    assert_eq!(claims.subject(), Some("test-user"));
    assert!(claims.extra().get("email").is_none());
    assert_eq!(TestUser::default(), TestUser::new("test-user"));
}

#[tokio::test]
async fn client_secret_post_without_pkce_and_without_openid() {
    let issuer = TestIssuer::builder()
        .client("my-app", "my-app-secret/with:odd+chars")
        .start()
        .await
        .unwrap();
    let params = [
        ("response_type", "code"),
        ("client_id", "my-app"),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "items:read"),
    ];
    let reply = authorize(&issuer, &params).await;
    let redirect = reply.redirected();
    assert!(!redirect.contains_key("state"), "no state asked, none sent");
    let code = &redirect["code"];
    let reply = token_with(
        &issuer,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", "my-app"),
            ("client_secret", "my-app-secret/with:odd+chars"),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let answer = reply.json();
    assert!(answer.get("id_token").is_none(), "no openid, no ID token");
    assert_eq!(answer["scope"], "items:read");
    assert!(
        answer["access_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );

    // Basic with the same odd secret, form-urlencoded inside the header.
    let code = login_code(&issuer, &params).await;
    let reply = token_with(
        &issuer,
        Some(basic("my-app", "my-app-secret/with:odd+chars")),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);

    // The default client is not registered on this issuer.
    let mut params = params.to_vec();
    params[1] = ("client_id", "test-client");
    assert_eq!(
        authorize(&issuer, &params).await.status,
        StatusCode::BAD_REQUEST
    );
    assert!(
        TestIssuer::builder()
            .client("", "a-secret-of-some-length")
            .start()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn an_unknown_client_or_bad_redirect_uri_gets_a_page_not_a_redirect() {
    let issuer = TestIssuer::start().await.unwrap();
    let with = |name, value| authorization_with(&issuer, name, value);
    let cases = [
        with("client_id", Some("someone-else")),
        with("client_id", None),
        with("redirect_uri", None),
        with("redirect_uri", Some("/callback")),
        with("redirect_uri", Some("ftp://127.0.0.1/callback")),
        with("redirect_uri", Some("http://127.0.0.1:9/callback#fragment")),
        {
            let mut twice = authorization(&issuer);
            twice.push(("redirect_uri", "http://evil.example/"));
            twice
        },
    ];
    for params in cases {
        let reply = authorize(&issuer, &params).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{params:?}");
        assert!(reply.header("location").is_none(), "{params:?}");
    }
    let reply = authorize(&issuer, &authorization(&issuer)).await;
    assert_eq!(
        reply.status,
        StatusCode::FOUND,
        "the valid request, for contrast"
    );
    let post = Request::post(issuer.authorization_endpoint())
        .body(Full::default())
        .unwrap();
    assert_eq!(send(post).await.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn other_authorization_errors_go_back_to_the_client() {
    let issuer = TestIssuer::start().await.unwrap();
    let with = |name, value| authorization_with(&issuer, name, value);
    let cases = [
        (with("response_type", None), "invalid_request"),
        (
            with("response_type", Some("token")),
            "unsupported_response_type",
        ),
        (
            with("code_challenge_method", Some("plain")),
            "invalid_request",
        ),
        (with("code_challenge_method", None), "invalid_request"),
        (with("code_challenge", None), "invalid_request"),
        (with("code_challenge", Some("too-short")), "invalid_request"),
        (
            {
                let mut twice = authorization(&issuer);
                twice.push(("scope", "openid"));
                twice
            },
            "invalid_request",
        ),
    ];
    for (params, error) in cases {
        let redirect = authorize(&issuer, &params).await.redirected();
        assert_eq!(
            redirect.get("error").map(String::as_str),
            Some(error),
            "{params:?}"
        );
        assert_eq!(redirect["state"], "st/ate 1", "{params:?}");
        assert_eq!(redirect["iss"], issuer.issuer());
        assert!(!redirect.contains_key("code"), "{params:?}");
    }
    assert_eq!(issuer.authorize_requests(), 7);
}

#[tokio::test]
async fn refuse_next_login_refuses_once() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.refuse_next_login("access_denied");
    let redirect = authorize(&issuer, &authorization(&issuer))
        .await
        .redirected();
    assert_eq!(
        redirect.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(redirect["state"], "st/ate 1");
    assert_eq!(redirect["iss"], issuer.issuer());
    assert!(!redirect.contains_key("code"));
    // The next one succeeds.
    let code = login_code(&issuer, &authorization(&issuer)).await;
    assert_eq!(redeem(&issuer, &code).await.status, StatusCode::OK);

    // A request refused for its own fault does not use up the scripted refusal.
    issuer.refuse_next_login("temporarily_unavailable");
    let bad = [("client_id", "nobody")];
    assert_eq!(
        authorize(&issuer, &bad).await.status,
        StatusCode::BAD_REQUEST
    );
    let redirect = authorize(&issuer, &authorization(&issuer))
        .await
        .redirected();
    assert_eq!(
        redirect.get("error").map(String::as_str),
        Some("temporarily_unavailable")
    );
}

#[tokio::test]
async fn the_code_is_bound_to_its_redirect_uri_and_verifier() {
    let issuer = TestIssuer::start().await.unwrap();
    let auth = || Some(basic(issuer.client_id(), issuer.client_secret()));
    let redeem_with = |code: String, redirect_uri: &'static str, verifier: Option<&'static str>| {
        let auth = auth();
        let issuer = &issuer;
        async move {
            let mut params = vec![
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect_uri),
            ];
            if let Some(verifier) = verifier {
                params.push(("code_verifier", verifier));
            }
            token_with(issuer, auth, &params).await.error()
        }
    };
    let invalid_grant = (StatusCode::BAD_REQUEST, "invalid_grant".to_owned());

    let code = login_code(&issuer, &authorization(&issuer)).await;
    assert_eq!(
        redeem_with(code, "http://127.0.0.1:9/other", Some(VERIFIER)).await,
        invalid_grant,
        "another redirect_uri"
    );
    let code = login_code(&issuer, &authorization(&issuer)).await;
    let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK";
    assert_eq!(
        redeem_with(code, REDIRECT_URI, Some(wrong)).await,
        invalid_grant,
        "another verifier"
    );
    let code = login_code(&issuer, &authorization(&issuer)).await;
    assert_eq!(
        redeem_with(code, REDIRECT_URI, None).await,
        invalid_grant,
        "no verifier"
    );
    let mut without_pkce = authorization(&issuer);
    without_pkce.retain(|(name, _)| !name.starts_with("code_challenge"));
    let code = login_code(&issuer, &without_pkce).await;
    assert_eq!(
        redeem_with(code, REDIRECT_URI, Some(VERIFIER)).await,
        invalid_grant,
        "a verifier without a challenge"
    );
    // The same requests, right, pass.
    let code = login_code(&issuer, &authorization(&issuer)).await;
    assert_eq!(redeem(&issuer, &code).await.status, StatusCode::OK);
    let code = login_code(&issuer, &without_pkce).await;
    let reply = token_with(
        &issuer,
        auth(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn a_code_works_once() {
    let issuer = TestIssuer::start().await.unwrap();
    let code = login_code(&issuer, &authorization(&issuer)).await;
    assert_eq!(redeem(&issuer, &code).await.status, StatusCode::OK);
    assert_eq!(
        redeem(&issuer, &code).await.error(),
        (StatusCode::BAD_REQUEST, "invalid_grant".to_owned())
    );
    assert_eq!(
        redeem(&issuer, "made-up-code").await.error(),
        (StatusCode::BAD_REQUEST, "invalid_grant".to_owned())
    );
}

#[tokio::test]
async fn codes_expire() {
    let issuer = TestIssuer::builder()
        .code_lifetime(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let fresh = login_code(&issuer, &authorization(&issuer)).await;
    let stale = login_code(&issuer, &authorization(&issuer)).await;
    assert_eq!(redeem(&issuer, &fresh).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        redeem(&issuer, &stale).await.error(),
        (StatusCode::BAD_REQUEST, "invalid_grant".to_owned())
    );
}

#[tokio::test]
async fn the_client_must_authenticate_once_and_rightly() {
    let issuer = TestIssuer::start().await.unwrap();
    let code = login_code(&issuer, &authorization(&issuer)).await;
    let grant = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
    ];
    let invalid_client = (StatusCode::UNAUTHORIZED, "invalid_client".to_owned());

    let wrong_secret = token_with(
        &issuer,
        Some(basic(issuer.client_id(), "not-the-secret")),
        &grant,
    )
    .await;
    assert_eq!(wrong_secret.error(), invalid_client);
    assert!(
        wrong_secret
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic"))
    );
    let other_client = token_with(
        &issuer,
        Some(basic("other", issuer.client_secret())),
        &grant,
    )
    .await;
    assert_eq!(other_client.error(), invalid_client);
    let not_basic = token_with(&issuer, Some("Bearer abc".to_owned()), &grant).await;
    assert_eq!(not_basic.error(), invalid_client);

    let mut post = grant.to_vec();
    post.push(("client_id", issuer.client_id()));
    post.push(("client_secret", "not-the-secret"));
    assert_eq!(
        token_with(&issuer, None, &post).await.error(),
        invalid_client
    );
    let mut id_only = grant.to_vec();
    id_only.push(("client_id", issuer.client_id()));
    assert_eq!(
        token_with(&issuer, None, &id_only).await.error(),
        invalid_client
    );
    assert_eq!(
        token_with(&issuer, None, &grant).await.error(),
        invalid_client
    );

    let mut both = grant.to_vec();
    both.push(("client_secret", issuer.client_secret()));
    assert_eq!(
        token_with(
            &issuer,
            Some(basic(issuer.client_id(), issuer.client_secret())),
            &both
        )
        .await
        .error(),
        (StatusCode::BAD_REQUEST, "invalid_request".to_owned()),
        "two methods at once"
    );

    // None of these used up the code: the client itself still can.
    assert_eq!(redeem(&issuer, &code).await.status, StatusCode::OK);
    assert_eq!(issuer.token_requests(), 8);
}

#[tokio::test]
async fn malformed_token_requests_are_refused() {
    let issuer = TestIssuer::start().await.unwrap();
    let code = login_code(&issuer, &authorization(&issuer)).await;
    let auth = || Some(basic(issuer.client_id(), issuer.client_secret()));
    let refused = |error: &str| (StatusCode::BAD_REQUEST, error.to_owned());

    let refresh = [("grant_type", "refresh_token"), ("refresh_token", "x")];
    assert_eq!(
        token_with(&issuer, auth(), &refresh).await.error(),
        refused("unsupported_grant_type")
    );
    let no_code = [
        ("grant_type", "authorization_code"),
        ("redirect_uri", REDIRECT_URI),
    ];
    assert_eq!(
        token_with(&issuer, auth(), &no_code).await.error(),
        refused("invalid_request")
    );
    let no_grant = [("code", code.as_str()), ("redirect_uri", REDIRECT_URI)];
    assert_eq!(
        token_with(&issuer, auth(), &no_grant).await.error(),
        refused("invalid_request")
    );
    let repeated = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code", "another"),
        ("redirect_uri", REDIRECT_URI),
    ];
    assert_eq!(
        token_with(&issuer, auth(), &repeated).await.error(),
        refused("invalid_request")
    );

    let grant = form(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
    ]);
    let as_json = Request::post(issuer.token_endpoint())
        .header("content-type", "application/json")
        .header("authorization", auth().unwrap())
        .body(Full::from(grant.clone()))
        .unwrap();
    assert_eq!(send(as_json).await.error(), refused("invalid_request"));
    let huge = Request::post(issuer.token_endpoint())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", auth().unwrap())
        .body(Full::from(format!(
            "{grant}&padding={}",
            "x".repeat(20_000)
        )))
        .unwrap();
    assert_eq!(send(huge).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    let get = Request::get(issuer.token_endpoint())
        .body(Full::default())
        .unwrap();
    assert_eq!(send(get).await.status, StatusCode::METHOD_NOT_ALLOWED);

    // The code survived all of that.
    assert_eq!(redeem(&issuer, &code).await.status, StatusCode::OK);
}

#[tokio::test]
async fn tampering_changes_the_next_id_token_only() {
    let issuer = TestIssuer::start().await.unwrap();
    let verifier = id_token_verifier(&issuer);
    let id_token = |reply: Reply| {
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.json()["id_token"].as_str().unwrap().to_owned()
    };
    let login = async || {
        let code = login_code(&issuer, &authorization(&issuer)).await;
        id_token(redeem(&issuer, &code).await)
    };

    type Tamper = fn(&TestIssuer);
    let cases: [(Tamper, ErrorKind); 3] = [
        (
            |i| i.tamper_next_id_token(|t| t.expired()),
            ErrorKind::Expired,
        ),
        (
            |i| i.tamper_next_id_token(|t| t.wrong_key()),
            ErrorKind::InvalidSignature,
        ),
        (
            |i| i.tamper_next_id_token(|t| t.audience("other")),
            ErrorKind::WrongAudience,
        ),
    ];
    for (tamper, kind) in cases {
        tamper(&issuer);
        let tampered = login().await;
        assert_eq!(
            verifier.verify_async(&tampered).await.unwrap_err().kind(),
            kind
        );
        let next = login().await;
        verifier.verify_async(&next).await.unwrap();
    }

    // Claims the relying party checks itself: a replaced nonce, a missing one.
    issuer.tamper_next_id_token(|t| t.claim("nonce", "replayed"));
    let replayed = verifier.verify_async(&login().await).await.unwrap();
    assert_eq!(replayed.extra()["nonce"], "replayed");
    issuer.tamper_next_id_token(|t| t.without("nonce"));
    let missing = verifier.verify_async(&login().await).await.unwrap();
    assert!(missing.extra().get("nonce").is_none());
    let untouched = verifier.verify_async(&login().await).await.unwrap();
    assert_eq!(untouched.extra()["nonce"], "n-0S6_WzA2Mj");

    // A token answer without an ID token leaves the change for the next one.
    issuer.tamper_next_id_token(|t| t.claim("nonce", "kept"));
    let mut no_openid = authorization(&issuer);
    no_openid.retain(|(name, _)| *name != "scope");
    let code = login_code(&issuer, &no_openid).await;
    let reply = redeem(&issuer, &code).await;
    assert!(reply.json().get("id_token").is_none());
    let kept = verifier.verify_async(&login().await).await.unwrap();
    assert_eq!(kept.extra()["nonce"], "kept");
}

#[tokio::test]
async fn the_login_endpoints_answer_503_while_the_issuer_is_down() {
    let issuer = TestIssuer::start().await.unwrap();
    let code = login_code(&issuer, &authorization(&issuer)).await;
    issuer.set_available(false);
    assert_eq!(
        authorize(&issuer, &authorization(&issuer)).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        redeem(&issuer, &code).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        (issuer.authorize_requests(), issuer.token_requests()),
        (2, 1)
    );

    issuer.set_available(true);
    assert_eq!(redeem(&issuer, &code).await.status, StatusCode::OK);
    assert_eq!(
        authorize(&issuer, &authorization(&issuer)).await.status,
        StatusCode::FOUND
    );
}
