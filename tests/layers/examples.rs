//! Runs each example's server over loopback and talks to it with a real client: hyper's client
//! for the axum and hyper examples, tonic's for the gRPC one.
// Each example is included exactly as written, and each includes the shared demo module.
#![allow(clippy::duplicate_mod)]

#[path = "../../examples/axum_basic.rs"]
#[allow(dead_code, unreachable_pub)]
mod axum_basic;
#[path = "../../examples/hyper_plain.rs"]
#[allow(dead_code, unreachable_pub)]
mod hyper_plain;
#[path = "../../examples/tonic_grpc.rs"]
#[allow(dead_code, unreachable_pub)]
mod tonic_grpc;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::common::answer::{Answer, answer};

async fn send(addr: SocketAddr, method: Method, path: &str, token: Option<&str>) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = client
        .request(request.body(Full::default()).unwrap())
        .await
        .unwrap();
    answer(response).await
}

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

#[tokio::test]
async fn axum_basic_over_loopback() {
    let (verifier, signer) = axum_basic::demo::keys().unwrap();
    let user = axum_basic::demo::token(&signer, "alice", &["user"], "items:read").unwrap();
    let admin =
        axum_basic::demo::token(&signer, "root", &["admin"], "items:read items:write").unwrap();
    let (listener, addr) = listener().await;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, axum_basic::app(verifier).unwrap())
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    let health = send(addr, Method::GET, "/health", None).await;
    assert_eq!(
        (health.status, health.text().as_str()),
        (StatusCode::OK, "ok")
    );

    let anonymous = send(addr, Method::GET, "/me", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.challenge().unwrap_or(""), "Bearer");

    let me = send(addr, Method::GET, "/me", Some(&user)).await;
    assert_eq!(me.status, StatusCode::OK);
    let me: serde_json::Value = serde_json::from_slice(&me.body).unwrap();
    assert_eq!(
        me,
        json!({"sub": "alice", "roles": ["user"], "scopes": ["items:read"]})
    );

    let not_admin = send(addr, Method::GET, "/admin", Some(&user)).await;
    assert_eq!(not_admin.status, StatusCode::FORBIDDEN);
    assert!(
        not_admin
            .challenge()
            .unwrap_or("")
            .contains(r#"error="insufficient_scope""#)
    );
    assert!(
        !not_admin.challenge().unwrap_or("").contains("scope=\"a"),
        "roles are not named as scopes"
    );
    assert_eq!(
        send(addr, Method::GET, "/admin", Some(&admin)).await.status,
        StatusCode::OK
    );

    assert_eq!(
        send(addr, Method::GET, "/items", Some(&user)).await.status,
        StatusCode::OK
    );
    let cannot_write = send(addr, Method::POST, "/items", Some(&user)).await;
    assert_eq!(cannot_write.status, StatusCode::FORBIDDEN);
    assert!(
        cannot_write
            .challenge()
            .unwrap_or("")
            .ends_with(r#"scope="items:write""#),
        "{}",
        cannot_write.challenge().unwrap_or("")
    );
    assert_eq!(
        send(addr, Method::POST, "/items", Some(&admin))
            .await
            .status,
        StatusCode::CREATED
    );

    let forged = send(addr, Method::GET, "/me", Some("a.b.c")).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert!(
        forged
            .challenge()
            .unwrap_or("")
            .contains(r#"error="invalid_token""#)
    );
    let body: serde_json::Value = serde_json::from_slice(&forged.body).unwrap();
    assert_eq!(body["error"], "invalid_token");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn hyper_plain_over_loopback() {
    let (verifier, signer) = hyper_plain::demo::keys().unwrap();
    let reader = hyper_plain::demo::token(&signer, "alice", &["user"], "items:read").unwrap();
    let other = hyper_plain::demo::token(&signer, "bob", &["user"], "profile").unwrap();
    let (listener, addr) = listener().await;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(hyper_plain::serve(listener, verifier, async {
        let _ = stopped.await;
    }));

    let anonymous = send(addr, Method::GET, "/items", None).await;
    assert_eq!(
        (anonymous.status, anonymous.challenge().unwrap_or("")),
        (StatusCode::UNAUTHORIZED, "Bearer")
    );
    let items = send(addr, Method::GET, "/items", Some(&reader)).await;
    assert_eq!(items.status, StatusCode::OK);
    assert!(items.text().ends_with("for alice\n"), "{}", items.text());
    let denied = send(addr, Method::GET, "/items", Some(&other)).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert!(
        denied
            .challenge()
            .unwrap_or("")
            .ends_with(r#"scope="items:read""#)
    );
    // Past both layers, the handler decides.
    assert_eq!(
        send(addr, Method::GET, "/nowhere", Some(&reader))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn tonic_grpc_over_loopback() {
    let (verifier, signer) = tonic_grpc::demo::keys().unwrap();
    let with_scope = tonic_grpc::demo::token(&signer, "alice", &["user"], "health:read").unwrap();
    let without_scope = tonic_grpc::demo::token(&signer, "bob", &["user"], "profile").unwrap();
    let expired = signer
        .sign(&json!({
            "iss": tonic_grpc::demo::ISSUER, "aud": tonic_grpc::demo::AUDIENCE, "sub": "carol",
            "jti": "old", "iat": 1_600_000_000u64, "exp": 1_600_000_600u64, "scope": "health:read",
        }))
        .unwrap();
    let (listener, addr) = listener().await;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(tonic_grpc::serve(listener, verifier, async {
        let _ = stopped.await;
    }));
    let address = format!("http://{addr}");
    let check = |token: Option<String>| tonic_grpc::check(address.clone(), token);

    let serving = check(Some(with_scope)).await.unwrap().unwrap();
    assert_eq!(
        serving,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let anonymous = check(None).await.unwrap().unwrap_err();
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);
    assert_eq!(anonymous.message(), "no token");

    let expired = check(Some(expired)).await.unwrap().unwrap_err();
    assert_eq!(
        (expired.code(), expired.message()),
        (tonic::Code::Unauthenticated, "token expired")
    );

    let forged = check(Some("a.b.c".to_owned())).await.unwrap().unwrap_err();
    assert_eq!(forged.code(), tonic::Code::Unauthenticated);

    let denied = check(Some(without_scope)).await.unwrap().unwrap_err();
    assert_eq!(
        (denied.code(), denied.message()),
        (tonic::Code::PermissionDenied, "insufficient scope")
    );

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
