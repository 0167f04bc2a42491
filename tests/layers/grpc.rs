//! gRPC requests (`content-type: application/grpc…`) through `BearerAuthLayer`,
//! `RequireScopeLayer` and `RequireRoleLayer`: trailers-only rejections that tonic decodes, and a
//! real tonic client and server on either side of the layers, in-process.

use crate::common;
use crate::common::layers::Inner;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_jwt_auth::bearer::BearerAuthLayer;
use tower_jwt_auth::require::{RequireRoleLayer, RequireScopeLayer};
use tower_jwt_auth::response::Rejection;
use tower_jwt_auth::{Algorithm, AuthError, ErrorKind, TokenSigner};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

const GRPC_TYPES: [&str; 2] = ["application/grpc", "application/grpc+proto"];

fn grpc(content_type: &str, authorization: Option<&str>) -> Request<String> {
    let mut builder = Request::builder()
        .method("POST")
        .uri("/shop.v1.Items/List")
        .header(CONTENT_TYPE, content_type)
        .header("te", "trailers");
    if let Some(value) = authorization {
        builder = builder.header(AUTHORIZATION, value);
    }
    builder.body(String::from("\0\0\0\0\0")).unwrap()
}

fn with_token(content_type: &str, token: &str) -> Request<String> {
    grpc(content_type, Some(&format!("Bearer {token}")))
}

fn token(scope: &str, roles: &[&str]) -> String {
    common::token(
        Algorithm::HS256,
        &common::claims_with(json!({"scope": scope, "roles": roles})),
    )
}

fn valid_token() -> String {
    common::token(Algorithm::ES256, &common::claims())
}

fn expired_token() -> String {
    common::token(
        Algorithm::HS256,
        &common::claims_with(json!({
            "iat": common::NOW - 7200, "nbf": common::NOW - 7200, "exp": common::NOW - 3600,
        })),
    )
}

async fn send<S, B>(service: &S, request: Request<String>) -> Response<B>
where
    S: Service<Request<String>, Response = Response<B>, Error = Infallible> + Clone,
{
    service.clone().oneshot(request).await.unwrap()
}

/// Asserts a trailers-only gRPC answer, exactly: HTTP 200, `content-type: application/grpc`,
/// `grpc-status`, `grpc-message`, nothing else, an empty body that reports its end, and the
/// reason in the extensions.
async fn assert_trailers_only<B>(response: Response<B>, code: &str, kind: ErrorKind)
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{:?}",
        response.headers()
    );
    let headers = response.headers();
    let names: Vec<&str> = headers.keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["content-type", "grpc-status", "grpc-message"]);
    assert_eq!(headers[CONTENT_TYPE], "application/grpc");
    assert_eq!(headers["grpc-status"], code);
    assert_eq!(headers["grpc-message"], kind.description());
    assert!(headers.get(WWW_AUTHENTICATE).is_none());
    assert_eq!(
        response
            .extensions()
            .get::<AuthError>()
            .map(AuthError::kind),
        Some(kind)
    );
    assert!(response.body().is_end_stream(), "the body ends at once");
    assert_eq!(response.body().size_hint().exact(), Some(0));
    let collected = response.into_body().collect().await.unwrap();
    assert!(collected.trailers().is_none());
    assert!(collected.to_bytes().is_empty());
}

async fn assert_unauthenticated<B>(response: Response<B>, kind: ErrorKind)
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    assert_trailers_only(response, "16", kind).await;
}

async fn assert_permission_denied<B>(response: Response<B>)
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    assert_trailers_only(response, "7", ErrorKind::InsufficientScope).await;
}

/// Expects the inner service's answer, reached once with claims for `user-1`.
async fn assert_reaches_inner<B>(response: Response<B>, inner: &Inner)
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "0");
    assert!(response.extensions().get::<AuthError>().is_none());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"\0\0\0\0\0");
    let seen = inner.take();
    assert_eq!(seen.len(), 1);
    let claims = seen[0].as_ref().expect("claims in the extensions");
    assert_eq!(claims.subject(), Some("user-1"));
}

fn assert_not_called(inner: &Inner) {
    assert!(
        inner.take().is_empty(),
        "the inner service must not be called"
    );
}

fn bearer_auth(inner: &Inner) -> tower_jwt_auth::bearer::BearerAuth<Inner> {
    BearerAuthLayer::new(common::verifier()).layer(inner.clone())
}

// ---------------------------------------------------------------------------------------------
// BearerAuth: grpc-status 16
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn no_credentials_is_unauthenticated() {
    let inner = Inner::grpc();
    let service = bearer_auth(&inner);
    for content_type in GRPC_TYPES {
        assert_unauthenticated(
            send(&service, grpc(content_type, None)).await,
            ErrorKind::Missing,
        )
        .await;
        assert_not_called(&inner);
        // Another scheme is no credentials too.
        let basic = grpc(content_type, Some("Basic dXNlcjpwYXNz"));
        assert_unauthenticated(send(&service, basic).await, ErrorKind::Missing).await;
        assert_not_called(&inner);
        assert_reaches_inner(
            send(&service, with_token(content_type, &valid_token())).await,
            &inner,
        )
        .await;
    }
}

#[tokio::test]
async fn malformed_credentials_are_unauthenticated() {
    let inner = Inner::grpc();
    let service = bearer_auth(&inner);
    let token = valid_token();
    for content_type in GRPC_TYPES {
        let mut twice = with_token(content_type, &token);
        twice.headers_mut().append(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        let mut obs_text = grpc(content_type, None);
        obs_text.headers_mut().insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer caf\xc3\xa9").unwrap(),
        );
        for request in [
            grpc(content_type, Some("Bearer a b")),
            grpc(content_type, Some("Bearer")),
            twice,
            obs_text,
        ] {
            assert_unauthenticated(send(&service, request).await, ErrorKind::InvalidRequest).await;
            assert_not_called(&inner);
        }
        assert_reaches_inner(
            send(&service, with_token(content_type, &token)).await,
            &inner,
        )
        .await;
    }
}

#[tokio::test]
async fn invalid_and_expired_tokens_are_unauthenticated() {
    let inner = Inner::grpc();
    let service = bearer_auth(&inner);
    let wrong_key = TokenSigner::hmac(Algorithm::HS256, &[0x5a; 32])
        .unwrap()
        .with_kid("hs256")
        .sign(&common::claims())
        .unwrap();
    let alg_none = common::raw_token(
        Algorithm::HS256,
        r#"{"alg":"none","kid":"hs256"}"#,
        &serde_json::to_string(&common::claims()).unwrap(),
    );
    let wrong_audience = common::token(
        Algorithm::HS256,
        &common::claims_with(json!({"aud": "another-api"})),
    );
    let cases = [
        (expired_token(), ErrorKind::Expired),
        (wrong_key, ErrorKind::InvalidSignature),
        (alg_none, ErrorKind::Algorithm),
        (wrong_audience, ErrorKind::WrongAudience),
        ("a".repeat(16 * 1024), ErrorKind::TooLong),
        (String::from("a.b.c"), ErrorKind::Malformed),
    ];
    for content_type in GRPC_TYPES {
        for (token, kind) in &cases {
            let response = send(&service, with_token(content_type, token)).await;
            assert_unauthenticated(response, *kind).await;
            assert_not_called(&inner);
        }
        assert_reaches_inner(
            send(&service, with_token(content_type, &valid_token())).await,
            &inner,
        )
        .await;
    }
}

#[tokio::test]
async fn the_realm_does_not_leak_into_grpc_answers() {
    let inner = Inner::grpc();
    let service = BearerAuthLayer::new(common::verifier())
        .realm("shop")
        .unwrap()
        .layer(inner.clone());
    assert_unauthenticated(
        send(&service, grpc("application/grpc", None)).await,
        ErrorKind::Missing,
    )
    .await;
    assert_unauthenticated(
        send(&service, with_token("application/grpc", &expired_token())).await,
        ErrorKind::Expired,
    )
    .await;
    assert_not_called(&inner);
    assert_reaches_inner(
        send(&service, with_token("application/grpc", &valid_token())).await,
        &inner,
    )
    .await;
}

#[tokio::test]
async fn optional_mode_passes_anonymous_grpc_requests() {
    let inner = Inner::grpc();
    let service = BearerAuthLayer::new(common::verifier())
        .optional()
        .layer(inner.clone());
    let response = send(&service, grpc("application/grpc", None)).await;
    assert_eq!(response.headers()["grpc-status"], "0");
    assert_eq!(inner.take(), vec![None]);
    assert_unauthenticated(
        send(&service, with_token("application/grpc", &expired_token())).await,
        ErrorKind::Expired,
    )
    .await;
    assert_not_called(&inner);
}

// ---------------------------------------------------------------------------------------------
// Require*: 16 without claims, 7 when short
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn require_without_claims_is_unauthenticated() {
    let inner = Inner::grpc();
    let scope = RequireScopeLayer::any(["items:read"])
        .unwrap()
        .layer(inner.clone());
    let role = RequireRoleLayer::any(["admin"])
        .unwrap()
        .layer(inner.clone());
    let full = token("items:read", &["admin"]);
    for content_type in GRPC_TYPES {
        for request in [grpc(content_type, None), with_token(content_type, &full)] {
            assert_unauthenticated(send(&scope, request).await, ErrorKind::Missing).await;
        }
        for request in [grpc(content_type, None), with_token(content_type, &full)] {
            assert_unauthenticated(send(&role, request).await, ErrorKind::Missing).await;
        }
        assert_not_called(&inner);
    }
    // With BearerAuth in front, the same token passes both.
    let stack = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(common::verifier()))
        .layer(RequireRoleLayer::any(["admin"]).unwrap())
        .layer(RequireScopeLayer::any(["items:read"]).unwrap())
        .service(inner.clone());
    assert_reaches_inner(
        send(&stack, with_token("application/grpc", &full)).await,
        &inner,
    )
    .await;
}

#[tokio::test]
async fn a_missing_scope_or_role_is_permission_denied() {
    let inner = Inner::grpc();
    let stack = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(common::verifier()))
        .layer(RequireRoleLayer::all(["admin"]).unwrap())
        .layer(RequireScopeLayer::all(["items:read", "items:write"]).unwrap())
        .service(inner.clone());
    for content_type in GRPC_TYPES {
        let no_scope = with_token(content_type, &token("items:read", &["admin"]));
        assert_permission_denied(send(&stack, no_scope).await).await;
        let no_role = with_token(content_type, &token("items:read items:write", &["user"]));
        assert_permission_denied(send(&stack, no_role).await).await;
        assert_not_called(&inner);
        // Authentication is still checked first: an expired token is 16, not 7.
        assert_unauthenticated(
            send(&stack, with_token(content_type, &expired_token())).await,
            ErrorKind::Expired,
        )
        .await;
        assert_unauthenticated(
            send(&stack, grpc(content_type, None)).await,
            ErrorKind::Missing,
        )
        .await;
        assert_not_called(&inner);
        let both = with_token(content_type, &token("items:write items:read", &["admin"]));
        assert_reaches_inner(send(&stack, both).await, &inner).await;
    }
}

// ---------------------------------------------------------------------------------------------
// What counts as gRPC
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn grpc_is_recognised_case_insensitively_and_with_parameters() {
    let inner = Inner::grpc();
    let service = bearer_auth(&inner);
    for content_type in [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc+json",
        "Application/GRPC",
        "APPLICATION/GRPC+PROTO",
        "application/grpc;charset=utf-8",
    ] {
        assert_unauthenticated(
            send(&service, grpc(content_type, None)).await,
            ErrorKind::Missing,
        )
        .await;
    }
    assert_not_called(&inner);
}

#[tokio::test]
async fn grpc_web_and_other_types_get_http_answers() {
    // The crate recognises only `application/grpc` and `application/grpc+…` (and `;` parameters).
    // gRPC-Web is answered as plain HTTP: a proxy or `tonic-web` in front translates.
    let inner = Inner::grpc();
    let service = bearer_auth(&inner);
    for content_type in [
        "application/grpc-web",
        "application/grpc-web+proto",
        "application/grpc-web-text",
        "application/grpc-web-text+proto",
        "application/grpcx",
        "application/json",
        "text/grpc",
        "grpc",
    ] {
        let response = send(&service, grpc(content_type, None)).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{content_type}"
        );
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert!(response.headers().get("grpc-status").is_none());
        assert_eq!(
            response
                .extensions()
                .get::<AuthError>()
                .map(AuthError::kind),
            Some(ErrorKind::Missing)
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            &body[..],
            br#"{"error":"unauthorized","error_description":"no token"}"#
        );

        let expired = send(&service, with_token(content_type, &expired_token())).await;
        assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            expired.headers()[WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token", error_description="token expired""#
        );
    }
    assert_not_called(&inner);
    // The same request as real gRPC is trailers-only.
    assert_unauthenticated(
        send(&service, grpc("application/grpc", None)).await,
        ErrorKind::Missing,
    )
    .await;
    let mut no_type = grpc("application/grpc", None);
    no_type.headers_mut().remove(CONTENT_TYPE);
    let response = send(&service, no_type).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------------------
// tonic
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn tonic_decodes_the_rejections() {
    let inner = Inner::grpc();
    let stack = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(common::verifier()))
        .layer(RequireScopeLayer::any(["items:read"]).unwrap())
        .service(inner.clone());
    let status_of = |headers: &HeaderMap| tonic::Status::from_header_map(headers).unwrap();
    for (request, code, message) in [
        (
            grpc("application/grpc", None),
            tonic::Code::Unauthenticated,
            "no token",
        ),
        (
            grpc("application/grpc", Some("Bearer a b")),
            tonic::Code::Unauthenticated,
            "malformed credentials",
        ),
        (
            with_token("application/grpc", &expired_token()),
            tonic::Code::Unauthenticated,
            "token expired",
        ),
        (
            with_token("application/grpc+proto", &token("profile", &[])),
            tonic::Code::PermissionDenied,
            "insufficient scope",
        ),
    ] {
        let response = send(&stack, request).await;
        let status = status_of(response.headers());
        assert_eq!(status.code(), code);
        assert_eq!(status.message(), message);
        assert!(status.details().is_empty());
    }
    assert_not_called(&inner);
    // The inner service's success decodes as OK.
    let ok = send(
        &stack,
        with_token("application/grpc", &token("items:read", &[])),
    )
    .await;
    assert_eq!(status_of(ok.headers()).code(), tonic::Code::Ok);
    assert_eq!(inner.take().len(), 1);
}

mod with_tonic {
    use super::*;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

    fn check(token: Option<&str>) -> tonic::Request<HealthCheckRequest> {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        if let Some(token) = token {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        request
    }

    #[tokio::test]
    async fn a_tonic_client_and_server_through_bearer_auth() {
        let (_reporter, health) = tonic_health::server::health_reporter();
        let server = BearerAuthLayer::new(common::verifier()).layer(health);
        let mut client = HealthClient::new(server);

        let ok = client.check(check(Some(&valid_token()))).await.unwrap();
        assert_eq!(ok.into_inner().status(), ServingStatus::Serving);

        let status = client.check(check(None)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert_eq!(status.message(), "no token");

        let status = client
            .check(check(Some(&expired_token())))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert_eq!(status.message(), "token expired");

        let status = client.check(check(Some("a b"))).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert_eq!(status.message(), "malformed credentials");
    }

    /// tonic's request body goes through `RateLimitLogin` unchanged in type for the service
    /// behind it (which gets the bytes as a `Full<Bytes>`). A gRPC body is protobuf, so no
    /// username is read and the per-client rule applies: a burst of ten failures (status 16),
    /// then `RESOURCE_EXHAUSTED` before the inner service runs. The app tells the layer the
    /// peer (here a fixed address; a real server takes tonic's `TcpConnectInfo`).
    #[cfg(feature = "rate-limit")]
    #[tokio::test]
    async fn a_tonic_client_and_server_through_rate_limit_login() {
        use tower_jwt_auth::ratelimit::{
            ClientAddr, LoginLimits, MemoryLimiterStore, RateLimitLoginLayer,
        };
        let (_reporter, health) = tonic_health::server::health_reporter();
        let limiter =
            RateLimitLoginLayer::new(Arc::new(MemoryLimiterStore::new(LoginLimits::default())));
        let server = ServiceBuilder::new()
            .map_request(|mut request: Request<tonic::body::Body>| {
                let peer = ClientAddr("203.0.113.9".parse().unwrap());
                request.extensions_mut().insert(peer);
                request
            })
            .layer(limiter)
            .layer(BearerAuthLayer::new(common::verifier()))
            .service(health);
        let mut client = HealthClient::new(server);
        // A success (trailers say OK) is not a failure and leaves the burst whole.
        let ok = client.check(check(Some(&valid_token()))).await.unwrap();
        assert_eq!(ok.into_inner().status(), ServingStatus::Serving);
        for n in 0..10 {
            let status = client.check(check(None)).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "failure {n}");
        }
        let status = client.check(check(Some(&valid_token()))).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    }

    #[tokio::test]
    async fn a_tonic_client_sees_permission_denied() {
        let (_reporter, health) = tonic_health::server::health_reporter();
        let server = ServiceBuilder::new()
            .layer(BearerAuthLayer::new(common::verifier()))
            .layer(RequireRoleLayer::any(["ops"]).unwrap())
            .service(health);
        let mut client = HealthClient::new(server);

        let status = client
            .check(check(Some(&token("items:read", &["user"]))))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert_eq!(status.message(), "insufficient scope");

        let ok = client
            .check(check(Some(&token("items:read", &["ops"]))))
            .await
            .unwrap();
        assert_eq!(ok.into_inner().status(), ServingStatus::Serving);
    }
}

// ---------------------------------------------------------------------------------------------
// The rejection hook and the axum extractor
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_hook_knows_the_request_was_grpc() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let inner = Inner::grpc();
    let service = BearerAuthLayer::new(common::verifier())
        .on_rejection(move |rejection: Rejection| {
            record.lock().unwrap().push((
                rejection.is_grpc(),
                rejection.status(),
                rejection.error().kind(),
            ));
            let mut response = rejection.into_response();
            response
                .headers_mut()
                .insert("x-reason", HeaderValue::from_static("auth"));
            response
        })
        .layer(inner.clone());
    let response = send(&service, grpc("application/grpc", None)).await;
    assert_eq!(response.headers()["grpc-status"], "16");
    assert_eq!(response.headers()["x-reason"], "auth");
    assert_eq!(
        response
            .extensions()
            .get::<AuthError>()
            .map(AuthError::kind),
        Some(ErrorKind::Missing)
    );
    let response = send(&service, grpc("application/json", None)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_not_called(&inner);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (true, StatusCode::OK, ErrorKind::Missing),
            (false, StatusCode::UNAUTHORIZED, ErrorKind::Missing),
        ]
    );
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn the_claims_extractor_answers_grpc_requests_trailers_only() {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;

    async fn me(claims: tower_jwt_auth::Claims) -> String {
        claims.subject().unwrap_or("?").to_owned()
    }
    let app: Router = Router::new().route("/shop.v1.Items/List", post(me));
    let request = Request::builder()
        .method("POST")
        .uri("/shop.v1.Items/List")
        .header(CONTENT_TYPE, "application/grpc")
        .body(Body::empty())
        .unwrap();
    let mut response = app.clone().oneshot(request).await.unwrap();
    // axum adds the length of the empty body; that is all it adds.
    let length = response.headers_mut().remove(http::header::CONTENT_LENGTH);
    assert_eq!(length, Some(HeaderValue::from_static("0")));
    assert_unauthenticated(response, ErrorKind::Missing).await;

    // Behind the layer, the handler gets the claims.
    let app = app.layer(BearerAuthLayer::new(common::verifier()));
    let request = Request::builder()
        .method("POST")
        .uri("/shop.v1.Items/List")
        .header(CONTENT_TYPE, "application/grpc")
        .header(AUTHORIZATION, format!("Bearer {}", valid_token()))
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"user-1");
}
