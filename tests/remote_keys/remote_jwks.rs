//! `RemoteJwks` against a scripted issuer (wiremock): discovery, issuer checks, rotation, the
//! unknown-`kid` cooldown under a storm, outages warm and cold, slow and hostile issuers,
//! `Cache-Control`, readers during refreshes, key hygiene, TLS, several issuers, and the
//! layer's answers. Time that matters is an injected clock moved by hand, never a sleep.

use crate::common;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{Layer, ServiceExt};
use tower_jwt_auth::bearer::{BearerAuth, BearerAuthLayer};
use tower_jwt_auth::remote::{FetchError, RemoteJwks, RemoteJwksBuilder};
use tower_jwt_auth::revocation::{MemoryRevocationStore, RevocationStore};
use tower_jwt_auth::{Algorithm, ConfigError, ErrorKind, TokenSigner, Verifier};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::answer::answer;
use crate::common::layers::Inner;
use crate::common::stores::Later;
use crate::common::{
    AUDIENCE, ISSUER, ManualClock, NOW, at, claims, claims_with, fixture, fixture_str,
};

const JWKS: &str = "/jwks";

/// The public JWK of a fixture key under `kid`, bound to `alg`.
fn jwk(file: &str, kid: &str, alg: Algorithm) -> Value {
    let mut jwk: Value = serde_json::from_str(&fixture_str(file)).unwrap();
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg.as_str());
    jwk
}

/// Key A: the P-256 fixture. Key B: the Ed25519 one. Key C: the P-384 one.
fn key_a() -> Value {
    jwk("p256.pub.jwk", "a", Algorithm::ES256)
}
fn key_b() -> Value {
    jwk("ed25519.pub.jwk", "b", Algorithm::EdDSA)
}
fn key_c() -> Value {
    jwk("p384.pub.jwk", "c", Algorithm::ES384)
}

fn jwks(keys: &[Value]) -> Value {
    json!({ "keys": keys })
}

/// A token signed with the fixture key behind `kid` (`a`, `b`, `c`), or with key A under any
/// other kid.
fn token_for(kid: &str, claims: &Value) -> String {
    let signer = match kid {
        "b" => TokenSigner::from_pem(Algorithm::EdDSA, &fixture("ed25519.pkcs8.pem")),
        "c" => TokenSigner::from_pem(Algorithm::ES384, &fixture("p384.pkcs8.pem")),
        _ => TokenSigner::from_pem(Algorithm::ES256, &fixture("p256.pkcs8.pem")),
    };
    signer.unwrap().with_kid(kid).sign(claims).unwrap()
}

fn token(kid: &str) -> String {
    token_for(kid, &claims())
}

fn serve_jwks(document: &Value, max_age: Option<u64>) -> ResponseTemplate {
    let mut template = ResponseTemplate::new(200).set_body_json(document);
    if let Some(max_age) = max_age {
        template = template.insert_header("cache-control", format!("max-age={max_age}").as_str());
    }
    template
}

/// The issuer answers GET `at` with `response`.
async fn mount(server: &MockServer, at: &str, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(response)
        .mount(server)
        .await;
}

/// Replaces whatever the issuer served with `response` at `at`.
async fn serve(server: &MockServer, at: &str, response: ResponseTemplate) {
    server.reset().await;
    mount(server, at, response).await;
}

/// Issuer metadata naming `issuer` and `jwks_uri`, with a member the loader ignores.
fn metadata(issuer: &str, jwks_uri: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "token_endpoint": "ignored",
    }))
}

async fn requests_to(server: &MockServer, at: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|request| request.url.path() == at)
        .count()
}

/// A source for the mock's JWKS with bounds the tests reason about: lifetimes of 60 s to
/// 1 h, a 30 s cooldown, one hour of staleness, and the manual clock.
fn remote(server: &MockServer, clock: &ManualClock) -> RemoteJwksBuilder {
    let clock = clock.clone();
    RemoteJwks::jwks_url(&format!("{}{JWKS}", server.uri()))
        .unwrap()
        .ttl_bounds(Duration::from_secs(60), Duration::from_secs(3600))
        .unwrap()
        .unknown_kid_cooldown(Duration::from_secs(30))
        .unwrap()
        .max_stale(Duration::from_secs(3600))
        .unwrap()
        .clock(move || clock.now())
}

fn verifier(remote: RemoteJwks) -> Verifier {
    common::builder_for(remote).build().unwrap()
}

async fn kind(verifier: &Verifier, token: &str) -> Result<(), ErrorKind> {
    verifier
        .verify_async(token)
        .await
        .map(drop)
        .map_err(|err| err.kind())
}

/// A warm source: the mock serves `document` with `max-age=600`, fetched once.
async fn warm(document: &Value) -> (MockServer, ManualClock, RemoteJwks) {
    let server = MockServer::start().await;
    serve(&server, JWKS, serve_jwks(document, Some(600))).await;
    let clock = ManualClock::new();
    let keys = remote(&server, &clock).build().unwrap();
    keys.refresh().await.unwrap();
    (server, clock, keys)
}

#[tokio::test]
async fn the_first_token_waits_for_the_first_fetch_and_later_ones_use_the_cache() {
    let server = MockServer::start().await;
    serve(&server, JWKS, serve_jwks(&jwks(&[key_a()]), Some(600))).await;
    let clock = ManualClock::new();
    let keys = remote(&server, &clock).build().unwrap();
    assert!(
        keys.keys().is_none(),
        "nothing is fetched before it is needed"
    );
    let verifier = verifier(keys.clone());
    assert_eq!(kind(&verifier, &token("a")).await, Ok(()));
    for _ in 0..50 {
        assert_eq!(kind(&verifier, &token("a")).await, Ok(()));
        assert!(verifier.verify(&token("a")).is_ok());
    }
    assert_eq!(requests_to(&server, JWKS).await, 1);
    let status = keys.status();
    assert_eq!(status.fetches(), 1);
    assert_eq!(status.keys().unwrap().len(), 1);
    assert!(status.last_error().is_none());
    assert_eq!(
        verifier.keys().unwrap().algorithm(Some("a")),
        Some(Algorithm::ES256)
    );
}

#[tokio::test]
async fn discovery_finds_the_jwks_and_checks_the_issuer() {
    let server = MockServer::start().await;
    let issuer = format!("{}/realms/acme", server.uri());
    mount(
        &server,
        "/realms/acme/.well-known/openid-configuration",
        metadata(&issuer, &format!("{}/realms/acme/certs", server.uri())),
    )
    .await;
    mount(
        &server,
        "/realms/acme/certs",
        serve_jwks(&jwks(&[key_a()]), None),
    )
    .await;
    let keys = RemoteJwks::discover(&issuer).unwrap().build().unwrap();
    let verifier = Verifier::builder(keys.clone())
        .issuer(&issuer)
        .audience(AUDIENCE)
        .clock(|| at(NOW))
        .build()
        .unwrap();
    let token = token_for("a", &claims_with(json!({"iss": issuer})));
    assert_eq!(kind(&verifier, &token).await, Ok(()));

    // The token's `iss` must still match exactly: the discovered keys vouch for one issuer.
    let other = token_for("a", &claims_with(json!({"iss": format!("{issuer}/")})));
    assert_eq!(kind(&verifier, &other).await, Err(ErrorKind::WrongIssuer));

    // A verifier that would accept another issuer over these keys does not build.
    let wrong = Verifier::builder(keys)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build();
    assert!(
        matches!(wrong, Err(ConfigError::InvalidSetting(_))),
        "{wrong:?}"
    );
}

#[tokio::test]
async fn discovery_falls_back_to_rfc_8414_metadata() {
    let server = MockServer::start().await;
    let issuer = format!("{}/tenant", server.uri());
    // No OIDC document (wiremock answers 404): the RFC 8414 location, path inserted.
    mount(
        &server,
        "/.well-known/oauth-authorization-server/tenant",
        metadata(&issuer, &format!("{}{JWKS}", server.uri())),
    )
    .await;
    mount(&server, JWKS, serve_jwks(&jwks(&[key_a()]), None)).await;
    let keys = RemoteJwks::discover(&issuer).unwrap().build().unwrap();
    keys.refresh().await.unwrap();
    assert_eq!(
        keys.keys().unwrap().algorithm(Some("a")),
        Some(Algorithm::ES256)
    );
    assert_eq!(
        requests_to(&server, "/tenant/.well-known/openid-configuration").await,
        1
    );
}

#[tokio::test]
async fn an_issuer_mismatch_in_the_metadata_is_a_failed_fetch() {
    let server = MockServer::start().await;
    mount(
        &server,
        "/.well-known/openid-configuration",
        metadata("https://evil.example", &format!("{}{JWKS}", server.uri())),
    )
    .await;
    mount(&server, JWKS, serve_jwks(&jwks(&[key_a()]), None)).await;
    let keys = RemoteJwks::discover(&server.uri())
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(
        keys.refresh().await,
        Err(FetchError::IssuerMismatch {
            found: "https://evil.example".to_owned()
        })
    );
    let verifier = Verifier::builder(keys)
        .issuer(server.uri())
        .audience(AUDIENCE)
        .clock(|| at(NOW))
        .build()
        .unwrap();
    let token = token_for("a", &claims_with(json!({"iss": server.uri()})));
    assert_eq!(kind(&verifier, &token).await, Err(ErrorKind::Unavailable));
    assert_eq!(
        requests_to(&server, JWKS).await,
        0,
        "the jwks was never asked for"
    );
}

#[tokio::test]
async fn a_long_foreign_issuer_is_reported_cut_short() {
    let server = MockServer::start().await;
    // 300 two-byte characters: the report keeps at most 200 bytes, cut on a character.
    let long = format!("https://{}", "é".repeat(300));
    mount(
        &server,
        "/.well-known/openid-configuration",
        metadata(&long, &format!("{}{JWKS}", server.uri())),
    )
    .await;
    let keys = RemoteJwks::discover(&server.uri())
        .unwrap()
        .build()
        .unwrap();
    let Err(FetchError::IssuerMismatch { found }) = keys.refresh().await else {
        panic!("an issuer mismatch");
    };
    assert!(found.len() <= 200 && found.len() >= 198, "{}", found.len());
    assert!(long.starts_with(&found));
}

#[tokio::test]
async fn discovered_urls_must_be_secure() {
    let server = MockServer::start().await;
    mount(
        &server,
        "/.well-known/openid-configuration",
        metadata(&server.uri(), "http://keys.example.com/jwks"),
    )
    .await;
    let keys = RemoteJwks::discover(&server.uri())
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(keys.refresh().await, Err(FetchError::InsecureUrl));
    for url in [
        "http://sso.example.com/jwks",
        "https://user:pw@sso.example.com/j",
    ] {
        assert!(RemoteJwks::jwks_url(url).is_err(), "{url}");
        assert!(RemoteJwks::discover(url).is_err(), "{url}");
    }
}

#[tokio::test]
async fn rotation_takes_effect_without_a_restart() {
    let (server, clock, keys) = warm(&jwks(&[key_a()])).await;
    let verifier = verifier(keys.clone());
    assert_eq!(kind(&verifier, &token("a")).await, Ok(()));
    assert_eq!(
        kind(&verifier, &token("b")).await,
        Err(ErrorKind::UnknownKey)
    );

    // The issuer adds key B: a token with B's kid fetches once and verifies.
    serve(
        &server,
        JWKS,
        serve_jwks(&jwks(&[key_a(), key_b()]), Some(600)),
    )
    .await;
    clock.advance(Duration::from_secs(31));
    assert_eq!(kind(&verifier, &token("b")).await, Ok(()));
    assert_eq!(kind(&verifier, &token("a")).await, Ok(()));
    assert_eq!(requests_to(&server, JWKS).await, 1);

    // The issuer drops key A: after the next refresh its tokens are refused.
    serve(&server, JWKS, serve_jwks(&jwks(&[key_b()]), Some(600))).await;
    keys.refresh().await.unwrap();
    assert_eq!(
        kind(&verifier, &token("a")).await,
        Err(ErrorKind::UnknownKey)
    );
    assert_eq!(kind(&verifier, &token("b")).await, Ok(()));

    // The scheduled refresh brings the next rotation too: due at 3/4 of max-age=600.
    serve(&server, JWKS, serve_jwks(&jwks(&[key_c()]), Some(600))).await;
    clock.advance(Duration::from_secs(449));
    assert_eq!(kind(&verifier, &token("b")).await, Ok(()));
    assert_eq!(requests_to(&server, JWKS).await, 0, "not due yet");
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        kind(&verifier, &token("b")).await,
        Ok(()),
        "served while refreshing"
    );
    wait_until(|| keys.status().fetches() == 4).await;
    assert_eq!(kind(&verifier, &token("c")).await, Ok(()));
    assert_eq!(
        kind(&verifier, &token("b")).await,
        Err(ErrorKind::UnknownKey)
    );
}

/// Waits (yielding, not sleeping on a guess) until `done` holds.
async fn wait_until(done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("condition not reached");
}

/// A token under a random kid no key has.
fn random_kid_token() -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).unwrap();
    let kid: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    token(&kid)
}

#[tokio::test]
async fn kids_that_cannot_be_looked_up_never_fetch() {
    let (server, clock, keys) = warm(&jwks(&[key_a(), key_b()])).await;
    let verifier = verifier(keys);
    clock.advance(Duration::from_secs(31));
    // A kid longer than any real one, and no kid at all in a multi-key set: refused at once,
    // however long since the last fetch.
    let long = token(&"k".repeat(257));
    let kidless = TokenSigner::from_pem(Algorithm::ES256, &fixture("p256.pkcs8.pem"))
        .unwrap()
        .sign(&claims())
        .unwrap();
    for token in [&long, &kidless] {
        assert_eq!(kind(&verifier, token).await, Err(ErrorKind::UnknownKey));
    }
    assert_eq!(requests_to(&server, JWKS).await, 1, "only the warm-up");
    // A kid of the longest length looked up still fetches.
    assert_eq!(
        kind(&verifier, &token(&"k".repeat(256))).await,
        Err(ErrorKind::UnknownKey)
    );
    assert_eq!(requests_to(&server, JWKS).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_random_kids_costs_at_most_one_fetch_per_cooldown() {
    let (server, clock, keys) = warm(&jwks(&[key_a()])).await;
    let service = protected(verifier(keys));
    let storm = |count: usize| {
        let service = service.clone();
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..count {
                let service = service.clone();
                let request = Request::builder()
                    .header("authorization", format!("Bearer {}", random_kid_token()))
                    .body(String::new())
                    .unwrap();
                tasks.spawn(async move { service.oneshot(request).await.unwrap().status() });
            }
            let statuses = tasks.join_all().await;
            assert!(statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED));
        }
    };
    // The warm-up fetched once; the storm right after is inside its cooldown.
    assert_eq!(requests_to(&server, JWKS).await, 1);
    storm(1000).await;
    assert_eq!(
        requests_to(&server, JWKS).await,
        1,
        "inside the warm-up's cooldown"
    );
    for round in 1..=3 {
        clock.advance(Duration::from_secs(31));
        storm(1000).await;
        assert_eq!(requests_to(&server, JWKS).await, 1 + round, "round {round}");
    }
    // Known kids never wait for any of it.
    let known = Request::builder()
        .header("authorization", format!("Bearer {}", token("a")))
        .body(String::new())
        .unwrap();
    assert_eq!(
        service.oneshot(known).await.unwrap().status(),
        StatusCode::OK
    );
}

/// `BearerAuth` over `verifier` around the recording inner service.
fn protected(verifier: Verifier) -> BearerAuth<Inner> {
    BearerAuthLayer::new(verifier).layer(Inner::default())
}

#[tokio::test]
async fn a_down_issuer_leaves_the_last_good_keys_in_service_until_max_stale() {
    let (server, clock, keys) = warm(&jwks(&[key_a()])).await;
    let verifier = verifier(keys.clone());
    serve(&server, JWKS, ResponseTemplate::new(500)).await;

    // Past the refresh point: the refresh fails, the keys keep serving.
    clock.advance(Duration::from_secs(500));
    assert_eq!(kind(&verifier, &token("a")).await, Ok(()));
    assert_eq!(keys.refresh().await, Err(FetchError::Status(500)));
    // Past expiry (600 s) and up to an hour beyond it: still served.
    clock.advance(Duration::from_secs(100 + 3599));
    assert_eq!(kind(&verifier, &token("a")).await, Ok(()));
    let status = keys.status();
    assert_eq!(status.last_error(), Some(&FetchError::Status(500)));
    assert!(status.consecutive_failures() >= 1);
    assert!(status.keys().is_some());

    // Beyond max stale: 503, never 401.
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        kind(&verifier, &token("a")).await,
        Err(ErrorKind::Unavailable)
    );
    assert!(keys.keys().is_none());
    let service = protected(verifier.clone());
    let request = Request::builder()
        .header("authorization", format!("Bearer {}", token("a")))
        .body(String::new())
        .unwrap();
    let response = answer(service.clone().oneshot(request).await.unwrap()).await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers["retry-after"], "1");
    assert!(response.challenge().is_none());
    assert_eq!(response.kind(), Some(ErrorKind::Unavailable));

    // The issuer comes back: the next request past the retry time fetches and passes.
    serve(&server, JWKS, serve_jwks(&jwks(&[key_a()]), Some(600))).await;
    clock.advance(Duration::from_secs(120));
    assert_eq!(kind(&verifier, &token("a")).await, Ok(()));
}

#[tokio::test]
async fn a_cold_start_with_the_issuer_down_answers_503_and_grpc_14() {
    let server = MockServer::start().await;
    serve(&server, JWKS, ResponseTemplate::new(503)).await;
    let clock = ManualClock::new();
    let keys = remote(&server, &clock).build().unwrap();
    let service = protected(verifier(keys.clone()));
    let call = |grpc: bool| {
        let service = service.clone();
        let mut request =
            Request::builder().header("authorization", format!("Bearer {}", token("a")));
        if grpc {
            request = request.header("content-type", "application/grpc");
        }
        async move {
            answer(
                service
                    .oneshot(request.body(String::new()).unwrap())
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let http = call(false).await;
    assert_eq!(http.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(http.kind(), Some(ErrorKind::Unavailable));
    assert_eq!(requests_to(&server, JWKS).await, 1);
    // Within the retry backoff: 503 at once, without asking the issuer again.
    let grpc = call(true).await;
    assert_eq!(grpc.status, StatusCode::OK);
    assert_eq!(grpc.headers["grpc-status"], "14");
    assert_eq!(requests_to(&server, JWKS).await, 1);
    assert_eq!(keys.status().last_error(), Some(&FetchError::Status(503)));

    // The issuer comes up; after the backoff the next request fetches and passes.
    serve(&server, JWKS, serve_jwks(&jwks(&[key_a()]), Some(600))).await;
    clock.advance(Duration::from_secs(2));
    assert_eq!(call(false).await.status, StatusCode::OK);
}

#[tokio::test]
async fn after_the_first_fetch_the_revocation_check_still_runs() {
    let revoked = token_for("a", &claims_with(json!({"jti": "revoked-1"})));
    for later in [false, true] {
        let memory = MemoryRevocationStore::new().clock(|| NOW);
        memory
            .revoke_token(ISSUER, "revoked-1", NOW + 600)
            .await
            .unwrap();
        let store: Arc<dyn RevocationStore> = if later {
            Arc::new(Later::new(memory))
        } else {
            Arc::new(memory)
        };
        for (token, status) in [
            (token("a"), StatusCode::OK),
            (revoked.clone(), StatusCode::UNAUTHORIZED),
        ] {
            // A cold source each time: the token waits for the first fetch, then the store.
            let server = MockServer::start().await;
            serve(&server, JWKS, serve_jwks(&jwks(&[key_a()]), Some(600))).await;
            let keys = remote(&server, &ManualClock::new()).build().unwrap();
            let service = BearerAuthLayer::new(verifier(keys))
                .revocation(Arc::clone(&store))
                .layer(Inner::default());
            let request = Request::builder()
                .header("authorization", format!("Bearer {token}"))
                .body(String::new())
                .unwrap();
            let reply = answer(service.oneshot(request).await.unwrap()).await;
            assert_eq!(reply.status, status, "store answering later: {later}");
            if status == StatusCode::UNAUTHORIZED {
                assert_eq!(reply.kind(), Some(ErrorKind::Revoked));
            }
        }
    }
}

#[tokio::test]
async fn verify_never_waits_but_starts_the_fetch() {
    let server = MockServer::start().await;
    serve(&server, JWKS, serve_jwks(&jwks(&[key_a()]), Some(600))).await;
    let clock = ManualClock::new();
    let keys = remote(&server, &clock).build().unwrap();
    let verifier = verifier(keys.clone());
    assert_eq!(
        verifier.verify(&token("a")).unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    wait_until(|| keys.status().fetches() == 1).await;
    assert!(verifier.verify(&token("a")).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_refresh_blocks_no_request() {
    let (server, clock, _) = warm(&jwks(&[key_a()])).await;
    let keys = remote(&server, &clock)
        .timeouts(Duration::from_millis(500), Duration::from_secs(2))
        .unwrap()
        .build()
        .unwrap();
    keys.refresh().await.unwrap();
    let verifier = verifier(keys.clone());
    serve(
        &server,
        JWKS,
        serve_jwks(&jwks(&[key_a()]), Some(600)).set_delay(Duration::from_secs(60)),
    )
    .await;
    let refresh = tokio::spawn({
        let keys = keys.clone();
        async move { keys.refresh().await }
    });
    wait_until(|| keys.status().fetching()).await;
    let started = Instant::now();
    for _ in 0..200 {
        assert_eq!(kind(&verifier, &token("a")).await, Ok(()));
    }
    assert!(keys.status().fetching(), "the refresh still hangs");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(refresh.await.unwrap(), Err(FetchError::Timeout));
    assert_eq!(
        kind(&verifier, &token("a")).await,
        Ok(()),
        "still the old keys"
    );
}

#[tokio::test]
async fn malformed_and_oversized_documents_are_failed_fetches() {
    let (server, _clock, keys) = warm(&jwks(&[key_a()])).await;
    let verifier = verifier(keys.clone());
    let private = {
        let mut key = key_a();
        key["d"] = json!("AAAA");
        jwks(&[key_b(), key])
    };
    let cases: Vec<(ResponseTemplate, &str)> = vec![
        (
            ResponseTemplate::new(200).set_body_string("not json"),
            "invalid",
        ),
        (
            ResponseTemplate::new(200).set_body_string(r#"{"keys":[]}"#),
            "invalid",
        ),
        (
            ResponseTemplate::new(200).set_body_string(r#"{"keys":{}}"#),
            "invalid",
        ),
        (
            ResponseTemplate::new(200).set_body_string(r#"{"keys":[],"keys":[]}"#),
            "invalid",
        ),
        (
            ResponseTemplate::new(200).set_body_json(&private),
            "invalid",
        ),
        (
            ResponseTemplate::new(200).set_body_json(jwks(&[
                json!({"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}),
            ])),
            "invalid",
        ),
        (
            ResponseTemplate::new(200).set_body_string("x".repeat((1 << 20) + 1)),
            "too large",
        ),
        (
            ResponseTemplate::new(302).insert_header("location", "https://elsewhere.example/jwks"),
            "status",
        ),
    ];
    for (response, expected) in cases {
        serve(&server, JWKS, response).await;
        let result = keys.refresh().await;
        let matched = match (&result, expected) {
            (Err(FetchError::InvalidDocument(_)), "invalid") => true,
            (Err(FetchError::TooLarge { limit }), "too large") => *limit == 1 << 20,
            (Err(FetchError::Status(302)), "status") => true,
            _ => false,
        };
        assert!(matched, "{expected}: {result:?}");
        assert_eq!(kind(&verifier, &token("a")).await, Ok(()), "old keys kept");
    }
}

/// An issuer that streams an endless chunked body: the size cap must stop reading without
/// any `Content-Length` to go by.
#[tokio::test]
async fn an_endless_body_without_length_is_cut_at_the_cap() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let streamed = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&streamed);
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request).await.unwrap();
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        let chunk = format!("{:x}\r\n{}\r\n", 4096, " ".repeat(4096));
        while stream.write_all(chunk.as_bytes()).await.is_ok() {
            counter.fetch_add(4096, Ordering::Relaxed);
        }
    });
    let keys = RemoteJwks::jwks_url(&format!("http://{address}/jwks"))
        .unwrap()
        .max_response_size(64 * 1024)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(
        keys.refresh().await,
        Err(FetchError::TooLarge { limit: 64 * 1024 })
    );
    assert!(
        streamed.load(Ordering::Relaxed) < 16 << 20,
        "stopped reading"
    );
}

#[tokio::test]
async fn cache_control_is_honoured_within_bounds() {
    let server = MockServer::start().await;
    let clock = ManualClock::new();
    let keys = remote(&server, &clock).build().unwrap();
    let cases: [(&[(&str, &str)], u64); 7] = [
        (&[("cache-control", "public, max-age=600")], 600),
        (&[("cache-control", "max-age=5")], 60),
        (&[("cache-control", "max-age=999999")], 3600),
        (&[("cache-control", "no-cache")], 60),
        (&[], 60),
        (&[("cache-control", "max-age=600"), ("age", "100")], 500),
        (&[("cache-control", "no-store, max-age=600")], 60),
    ];
    for (headers, expected) in cases {
        let mut response = ResponseTemplate::new(200).set_body_json(jwks(&[key_a()]));
        for (name, value) in headers {
            response = response.insert_header(*name, *value);
        }
        serve(&server, JWKS, response).await;
        keys.refresh().await.unwrap();
        let status = keys.status();
        let lifetime = status.expires_at().unwrap() - status.fetched_at().unwrap();
        assert_eq!(lifetime, Duration::from_secs(expected), "{headers:?}");
        assert_eq!(
            status.serve_until().unwrap() - status.expires_at().unwrap(),
            Duration::from_secs(3600)
        );
    }
}

#[test]
fn readers_during_refreshes_never_see_an_empty_or_partial_set() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (server, _clock, keys) = runtime.block_on(warm(&jwks(&[key_a(), key_b()])));
    let verifier = verifier(keys.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (verifier, stop) = (verifier.clone(), Arc::clone(&stop));
            let (a, b) = (token("a"), token("b"));
            std::thread::spawn(move || {
                let mut checked = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for token in [&a, &b] {
                        if let Err(err) = verifier.verify(token) {
                            return Err(err.kind());
                        }
                        checked += 1;
                    }
                }
                Ok(checked)
            })
        })
        .collect();
    runtime.block_on(async {
        for round in 0..40 {
            // Every document has A and B; each refresh replaces the set whole.
            let third = if round % 2 == 0 {
                key_c()
            } else {
                jwk("rsa2048.pub.jwk", "r", Algorithm::RS256)
            };
            serve(
                &server,
                JWKS,
                serve_jwks(&jwks(&[key_b(), third, key_a()]), Some(600)),
            )
            .await;
            keys.refresh().await.unwrap();
        }
    });
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        let checked = reader.join().unwrap().unwrap();
        assert!(checked > 0);
    }
}

#[tokio::test]
async fn unusable_keys_are_skipped_and_alg_binds_the_key() {
    let rsa = jwk("rsa2048.pub.jwk", "rsa", Algorithm::RS256);
    let mut kidless = key_c();
    kidless.as_object_mut().unwrap().remove("kid");
    let mut enc = key_c();
    enc["use"] = json!("enc");
    enc["kid"] = json!("enc");
    let document = jwks(&[
        key_a(),
        rsa,
        enc,
        kidless,
        json!({"kty": "foo", "kid": "unknown-kty"}),
        json!({"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"}),
        json!({"kty": "oct", "kid": "secret", "alg": "HS256", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}),
        json!({"kty": "EC", "crv": "P-256", "kid": "broken", "x": "AA", "y": "AA"}),
        {
            let mut twin = key_b();
            twin["kid"] = json!("twin");
            twin
        },
        {
            let mut twin = key_c();
            twin["kid"] = json!("twin");
            twin
        },
    ]);
    let (_server, _clock, keys) = warm(&document).await;
    let set = keys.keys().unwrap();
    let kids: Vec<_> = set
        .keys()
        .map(|(kid, alg)| (kid.map(str::to_owned), alg))
        .collect();
    assert_eq!(
        kids,
        [
            (Some("a".to_owned()), Algorithm::ES256),
            (Some("rsa".to_owned()), Algorithm::RS256)
        ]
    );
    let mut skipped: Vec<_> = set
        .skipped()
        .iter()
        .map(|s| (s.kid().map(str::to_owned), s.reason()))
        .collect();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            (None, "no kid in a multi-key set"),
            (Some("broken".to_owned()), "invalid key"),
            (Some("enc".to_owned()), "use is not sig"),
            (Some("p521".to_owned()), "unsupported curve"),
            (
                Some("secret".to_owned()),
                "symmetric key in an issuer's jwks"
            ),
            (Some("twin".to_owned()), "duplicate kid"),
            (Some("twin".to_owned()), "duplicate kid"),
            (Some("unknown-kty".to_owned()), "unsupported kty"),
        ]
    );
    let verifier = verifier(keys);
    assert_eq!(kind(&verifier, &token("a")).await, Ok(()));
    // The RSA key is bound to RS256: a PS256 signature under its kid is refused.
    let rsa_pem = fixture("rsa2048.pkcs8.pem");
    let rs256 = TokenSigner::from_pem(Algorithm::RS256, &rsa_pem)
        .unwrap()
        .with_kid("rsa");
    let ps256 = TokenSigner::from_pem(Algorithm::PS256, &rsa_pem)
        .unwrap()
        .with_kid("rsa");
    assert_eq!(
        kind(&verifier, &rs256.sign(&claims()).unwrap()).await,
        Ok(())
    );
    assert_eq!(
        kind(&verifier, &ps256.sign(&claims()).unwrap()).await,
        Err(ErrorKind::Algorithm)
    );
    // The symmetric key never verifies anything, even a token signed with it.
    let hmac = TokenSigner::hmac(Algorithm::HS256, b"secret-secret-secret-secret-secret")
        .unwrap()
        .with_kid("secret");
    assert_eq!(
        kind(&verifier, &hmac.sign(&claims()).unwrap()).await,
        Err(ErrorKind::Algorithm)
    );
}

#[tokio::test]
async fn entra_style_rsa_keys_without_alg_need_a_default() {
    let mut rsa = jwk("rsa2048.pub.jwk", "entra", Algorithm::RS256);
    rsa.as_object_mut().unwrap().remove("alg");
    let server = MockServer::start().await;
    serve(&server, JWKS, serve_jwks(&jwks(&[rsa]), None)).await;
    let url = format!("{}{JWKS}", server.uri());
    let strict = RemoteJwks::jwks_url(&url).unwrap().build().unwrap();
    assert!(matches!(
        strict.refresh().await,
        Err(FetchError::InvalidDocument(_))
    ));
    let lenient = RemoteJwks::jwks_url(&url)
        .unwrap()
        .default_rsa_algorithm(Algorithm::RS256)
        .unwrap()
        .build()
        .unwrap();
    lenient.refresh().await.unwrap();
    assert_eq!(
        lenient.keys().unwrap().algorithm(Some("entra")),
        Some(Algorithm::RS256)
    );
    assert!(
        RemoteJwks::jwks_url(&url)
            .unwrap()
            .default_rsa_algorithm(Algorithm::ES256)
            .is_err()
    );
}

#[test]
fn settings_are_checked_when_set() {
    let b = || RemoteJwks::jwks_url("https://sso.example.com/jwks").unwrap();
    let secs = Duration::from_secs;
    assert!(b().ttl_bounds(secs(0), secs(60)).is_err());
    assert!(b().ttl_bounds(secs(120), secs(60)).is_err());
    assert!(b().ttl_bounds(secs(60), secs(31 * 86_400)).is_err());
    assert!(b().ttl_bounds(secs(1), secs(1)).is_ok());
    assert!(b().unknown_kid_cooldown(Duration::ZERO).is_err());
    assert!(b().unknown_kid_cooldown(secs(3601)).is_err());
    assert!(b().max_stale(secs(31 * 86_400)).is_err());
    assert!(b().max_stale(Duration::ZERO).is_ok());
    assert!(b().timeouts(Duration::from_millis(5), secs(1)).is_err());
    assert!(b().timeouts(secs(2), secs(1)).is_err());
    assert!(b().timeouts(secs(1), secs(301)).is_err());
    assert!(b().max_response_size(1023).is_err());
    assert!(b().max_response_size((16 << 20) + 1).is_err());
    assert!(b().add_root_certificates(b"not pem").is_err());
    assert!(
        b().add_root_certificates(&fixture("p256.pub.pem")).is_err(),
        "no certificate"
    );
    let ca = std::fs::read(format!(
        "{}/tests/data/tls/ca.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert!(b().add_root_certificates(&ca).is_ok());
}

/// A TLS server on loopback with the test CA's certificate for `localhost` and 127.0.0.1,
/// answering every request with `body`.
async fn tls_issuer(body: String) -> std::net::SocketAddr {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let dir = format!("{}/tests/data/tls", env!("CARGO_MANIFEST_DIR"));
    let certs = vec![CertificateDer::from_pem_file(format!("{dir}/server.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/server.key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, body) = (acceptor.clone(), body.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut request = [0u8; 4096];
                let _ = tls.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    address
}

#[tokio::test]
async fn https_needs_a_trusted_certificate() {
    let address = tls_issuer(jwks(&[key_a()]).to_string()).await;
    let url = format!("https://localhost:{}/jwks", address.port());
    let untrusted = RemoteJwks::jwks_url(&url).unwrap().build().unwrap();
    let failed = untrusted.refresh().await;
    assert!(
        matches!(&failed, Err(FetchError::Connection(why)) if why.contains("certificate")),
        "{failed:?}"
    );

    let ca = std::fs::read(format!(
        "{}/tests/data/tls/ca.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let trusted = RemoteJwks::jwks_url(&url)
        .unwrap()
        .add_root_certificates(&ca)
        .unwrap()
        .build()
        .unwrap();
    trusted.refresh().await.unwrap();
    assert_eq!(
        trusted.keys().unwrap().algorithm(Some("a")),
        Some(Algorithm::ES256)
    );
}

#[tokio::test]
async fn several_issuers_each_with_their_own_keys_and_policy() {
    let (staff_server, _, staff_keys) = warm(&jwks(&[key_a()])).await;
    let (partner_server, _, partner_keys) = warm(&jwks(&[key_b()])).await;
    let staff = Verifier::builder(staff_keys)
        .issuer("https://staff.example")
        .audience(AUDIENCE)
        .clock(|| at(NOW))
        .build()
        .unwrap();
    let partners = Verifier::builder(partner_keys)
        .issuer("https://partners.example")
        .audience("partner-api")
        .roles_claim("/realm_access/roles")
        .unwrap()
        .clock(|| at(NOW))
        .build()
        .unwrap();
    let verifier = Verifier::by_issuer([staff, partners]).unwrap();
    let staff_token = token_for("a", &claims_with(json!({"iss": "https://staff.example"})));
    let partner_token = token_for(
        "b",
        &claims_with(json!({
            "iss": "https://partners.example", "aud": "partner-api",
            "realm_access": {"roles": ["buyer"]},
        })),
    );
    assert!(
        verifier
            .verify_async(&staff_token)
            .await
            .unwrap()
            .has_role("admin")
    );
    assert!(
        verifier
            .verify_async(&partner_token)
            .await
            .unwrap()
            .has_role("buyer")
    );
    // Each issuer's own policy: the partner audience is not the staff one.
    let wrong_audience = token_for(
        "b",
        &claims_with(json!({"iss": "https://partners.example"})),
    );
    assert_eq!(
        kind(&verifier, &wrong_audience).await,
        Err(ErrorKind::WrongAudience)
    );
    // A partner key cannot vouch for a staff token.
    let forged = token_for("b", &claims_with(json!({"iss": "https://staff.example"})));
    assert_eq!(kind(&verifier, &forged).await, Err(ErrorKind::UnknownKey));
    // An issuer nobody accepts is refused without asking any issuer for keys.
    let stranger = token_for(
        "a",
        &claims_with(json!({"iss": "https://stranger.example"})),
    );
    assert_eq!(
        kind(&verifier, &stranger).await,
        Err(ErrorKind::WrongIssuer)
    );
    assert_eq!(
        requests_to(&staff_server, JWKS).await + requests_to(&partner_server, JWKS).await,
        2
    );
}

#[test]
fn a_source_outlives_the_runtime_that_first_fetched() {
    let first = tokio::runtime::Runtime::new().unwrap();
    let (server, clock, keys) = first.block_on(warm(&jwks(&[key_a()])));
    let verifier = verifier(keys.clone());
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    drop(first);
    second.block_on(async {
        serve(
            &server,
            JWKS,
            serve_jwks(&jwks(&[key_a(), key_b()]), Some(600)),
        )
        .await;
        clock.advance(Duration::from_secs(31));
        // The refresher and the pooled connection died with the first runtime; fetching
        // starts afresh on this one.
        assert_eq!(kind(&verifier, &token("b")).await, Ok(()));
        keys.refresh().await.unwrap();
    });
}

#[test]
fn without_a_runtime_verify_answers_and_refresh_says_why() {
    let server = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(MockServer::start());
    let clock = ManualClock::new();
    let keys = remote(&server, &clock).build().unwrap();
    let verifier = verifier(keys.clone());
    assert_eq!(
        verifier.verify(&token("a")).unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    let outcome = futures_lite_block_on(keys.refresh());
    assert_eq!(outcome, Err(FetchError::NoRuntime));
}

/// Polls a future to completion on this thread, outside any tokio runtime.
fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::yield_now();
    }
}

// ---------------------------------------------------------------------------------------------
// Counters

/// Every fetch is counted once, by result and by the `FetchError::reason` of its failure; a
/// request the layer holds for a fetch is counted once it is decided. The recorder is this
/// thread's, and the fetches run on this (current-thread) runtime.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn fetches_and_the_decisions_that_waited_for_them_are_counted() {
    use tower_jwt_auth::telemetry::{JWKS_FETCHES_TOTAL, VERIFICATIONS_TOTAL};

    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let clock = ManualClock::new();
    use crate::common::metrics::{counted, series as expect};

    // A cold source whose issuer is down: the held request is a 503, counted as such.
    let server = MockServer::start().await;
    serve(&server, JWKS, ResponseTemplate::new(500)).await;
    let cold = BearerAuthLayer::new(verifier(remote(&server, &clock).build().unwrap()));
    let request = || {
        Request::builder()
            .header("authorization", format!("Bearer {}", token("a")))
            .body(String::new())
            .unwrap()
    };
    let response = cold
        .layer(Inner::default())
        .oneshot(request())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        counted(&snapshotter),
        expect(&[
            (JWKS_FETCHES_TOTAL, "result=failed,reason=status", 1),
            (VERIFICATIONS_TOTAL, "result=failed,reason=unavailable", 1),
        ])
    );

    // The issuer is back: the next request waits for the fetch, then passes.
    serve(&server, JWKS, serve_jwks(&jwks(&[key_a()]), Some(600))).await;
    clock.advance(Duration::from_secs(120));
    let response = cold
        .layer(Inner::default())
        .oneshot(request())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        counted(&snapshotter),
        expect(&[
            (JWKS_FETCHES_TOTAL, "result=ok", 1),
            (VERIFICATIONS_TOTAL, "result=ok", 1),
        ])
    );

    // Each failure is labelled with its error's own reason code.
    let keys = remote(&server, &clock)
        .max_response_size(1024)
        .unwrap()
        .build()
        .unwrap();
    let broken = [
        ResponseTemplate::new(404),
        ResponseTemplate::new(200).set_body_string("not json"),
        ResponseTemplate::new(200).set_body_string("x".repeat(4096)),
    ];
    let mut reasons = Vec::new();
    for response in broken {
        serve(&server, JWKS, response).await;
        let error = keys.refresh().await.unwrap_err();
        reasons.push(error.as_str());
    }
    let unreachable = RemoteJwks::jwks_url("http://127.0.0.1:1/jwks")
        .unwrap()
        .build()
        .unwrap();
    reasons.push(unreachable.refresh().await.unwrap_err().as_str());
    assert_eq!(
        reasons,
        ["status", "invalid_document", "too_large", "connection"]
    );
    let mut want: Vec<(&str, String, u64)> = Vec::new();
    for reason in ["status", "invalid_document", "too_large", "connection"] {
        want.push((
            JWKS_FETCHES_TOTAL,
            format!("result=failed,reason={reason}"),
            1,
        ));
    }
    let want: Vec<(&str, &str, u64)> = want.iter().map(|(n, l, c)| (*n, l.as_str(), *c)).collect();
    assert_eq!(counted(&snapshotter), expect(&want));
}
