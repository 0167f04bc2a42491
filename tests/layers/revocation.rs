//! `BearerAuthLayer` with a `RevocationStore`: the denylists (`jti`, `sid`, subject not-before)
//! applied after verification, stores that answer at once and later, and the store-error
//! policy (fail closed with 503 / gRPC 14 by default, or fail open).

use crate::common;
use crate::common::answer::{Answer, answer};
use crate::common::layers::{Inner, assert_rejection, bearer};
use crate::common::stores::ScriptedRevocation;

use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Request, StatusCode};
use serde_json::json;
use tower::{Layer, Service, ServiceExt};
use tower_jwt_auth::bearer::BearerAuthLayer;
use tower_jwt_auth::response::Rejection;
use tower_jwt_auth::revocation::{MemoryRevocationStore, RevocationStore};
use tower_jwt_auth::store::StoreErrorPolicy;
use tower_jwt_auth::{Algorithm, ErrorKind};

const ISSUER: &str = common::ISSUER;

fn token(changes: serde_json::Value) -> String {
    common::token(Algorithm::HS256, &common::claims_with(changes))
}

fn grpc(token: &str) -> Request<String> {
    let mut request = bearer(token);
    request
        .headers_mut()
        .insert(CONTENT_TYPE, "application/grpc".parse().unwrap());
    request
}

fn layer(store: Arc<dyn RevocationStore>) -> BearerAuthLayer {
    BearerAuthLayer::new(common::verifier()).revocation(store)
}

async fn send(layer: &BearerAuthLayer, inner: &Inner, request: Request<String>) -> Answer {
    let service = layer.layer(inner.clone());
    answer(service.oneshot(request).await.unwrap()).await
}

fn assert_revoked(answer: &Answer) {
    assert_rejection(
        answer,
        StatusCode::UNAUTHORIZED,
        r#"Bearer error="invalid_token", error_description="token revoked""#,
        r#"{"error":"invalid_token","error_description":"token revoked"}"#,
        ErrorKind::Revoked,
    );
}

fn assert_passed(answer: &Answer, inner: &Inner) {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.text(), "inner");
    assert_eq!(inner.take().len(), 1, "the inner service runs exactly once");
}

fn assert_unavailable(answer: &Answer, inner: &Inner) {
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
    assert_eq!(answer.headers[RETRY_AFTER], "1");
    assert!(
        answer.headers.get(WWW_AUTHENTICATE).is_none(),
        "the credentials were not judged: no challenge"
    );
    assert_eq!(
        answer.text(),
        r#"{"error":"temporarily_unavailable","error_description":"authentication temporarily unavailable"}"#
    );
    assert_eq!(answer.kind(), Some(ErrorKind::Unavailable));
    assert!(inner.take().is_empty(), "the inner service must not run");
}

#[tokio::test]
async fn a_denylisted_jti_is_401_revoked_and_other_tokens_pass() {
    let store = Arc::new(MemoryRevocationStore::new().clock(|| common::NOW));
    let layer = layer(store.clone());
    let inner = Inner::default();
    let first = token(json!({"jti": "t-1"}));
    let second = token(json!({"jti": "t-2"}));
    assert_passed(&send(&layer, &inner, bearer(&first)).await, &inner);

    store
        .revoke_token(ISSUER, "t-1", common::NOW + 3600)
        .await
        .unwrap();
    let rejected = send(&layer, &inner, bearer(&first)).await;
    assert_revoked(&rejected);
    assert!(inner.take().is_empty());
    assert_passed(&send(&layer, &inner, bearer(&second)).await, &inner);
    // The same jti from another issuer is another token.
    store
        .revoke_token("https://other.example", "t-2", common::NOW + 3600)
        .await
        .unwrap();
    assert_passed(&send(&layer, &inner, bearer(&second)).await, &inner);
}

#[tokio::test]
async fn a_denylisted_session_revokes_every_token_of_it() {
    let store = Arc::new(MemoryRevocationStore::new().clock(|| common::NOW));
    let layer = layer(store.clone());
    let inner = Inner::default();
    let in_session = token(json!({"jti": "a", "sid": "s-1"}));
    let same_session = token(json!({"jti": "b", "sid": "s-1"}));
    let other_session = token(json!({"jti": "c", "sid": "s-2"}));
    let no_session = token(json!({"jti": "d"}));
    store
        .revoke_session(ISSUER, "s-1", common::NOW + 3600)
        .await
        .unwrap();
    assert_revoked(&send(&layer, &inner, bearer(&in_session)).await);
    assert_revoked(&send(&layer, &inner, bearer(&same_session)).await);
    assert!(inner.take().is_empty());
    assert_passed(&send(&layer, &inner, bearer(&other_session)).await, &inner);
    assert_passed(&send(&layer, &inner, bearer(&no_session)).await, &inner);
}

#[tokio::test]
async fn a_subject_cutoff_revokes_tokens_issued_before_it() {
    let store = Arc::new(MemoryRevocationStore::new().clock(|| common::NOW));
    let layer = layer(store.clone());
    let inner = Inner::default();
    let older = token(json!({"iat": common::NOW - 10}));
    let newer = token(json!({"iat": common::NOW}));
    let other_user = token(json!({"iat": common::NOW - 10, "sub": "user-2"}));
    store
        .revoke_subject_before(ISSUER, "user-1", common::NOW, common::NOW + 3600)
        .await
        .unwrap();
    assert_revoked(&send(&layer, &inner, bearer(&older)).await);
    assert_passed(&send(&layer, &inner, bearer(&newer)).await, &inner);
    assert_passed(&send(&layer, &inner, bearer(&other_user)).await, &inner);
}

#[tokio::test]
async fn the_store_is_asked_about_the_verified_claims_once_per_request() {
    let store = ScriptedRevocation::answering(Ok(false));
    let layer = layer(store.clone());
    let inner = Inner::default();
    let token = token(json!({"jti": "t-9", "sid": "s-9"}));
    assert_passed(&send(&layer, &inner, bearer(&token)).await, &inner);
    assert_eq!(store.asks.load(Ordering::SeqCst), 1);
    assert_eq!(
        store.last.lock().unwrap().clone().unwrap(),
        (
            ISSUER.to_owned(),
            Some("t-9".to_owned()),
            Some("s-9".to_owned()),
            Some("user-1".to_owned()),
            Some(common::NOW),
        )
    );
}

#[tokio::test]
async fn rejected_and_anonymous_requests_never_reach_the_store() {
    let store = ScriptedRevocation::answering(Ok(false));
    let inner = Inner::default();
    let strict = layer(store.clone());
    let expired = token(json!({"exp": common::NOW - 3600, "iat": common::NOW - 7200, "nbf": null}));
    let answer = send(&strict, &inner, bearer(&expired)).await;
    assert_eq!(answer.kind(), Some(ErrorKind::Expired));
    let optional = layer(store.clone()).optional();
    let anonymous = Request::new(String::new());
    assert_eq!(
        send(&optional, &inner, anonymous).await.status,
        StatusCode::OK
    );
    assert_eq!(inner.take(), vec![None]);
    assert_eq!(store.asks.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_store_that_answers_later_holds_the_request_until_it_answers() {
    let (store, release) = ScriptedRevocation::answering_later(Ok(false));
    let inner = Inner::default();
    let mut service = layer(store.clone()).layer(inner.clone());
    service.ready().await.unwrap();
    let mut response = pin!(service.call(bearer(&token(json!({})))));
    // Not answered yet: pending, and the inner service has not run.
    let polled = poll_fn(|cx| Poll::Ready(response.as_mut().poll(cx).is_pending())).await;
    assert!(polled, "the response waits for the store");
    assert!(inner.take().is_empty());
    release.send(()).unwrap();
    let answer = answer(response.await.unwrap()).await;
    assert_passed(&answer, &inner);
}

#[tokio::test]
async fn a_later_revoked_verdict_rejects_without_calling_the_inner_service() {
    let (store, release) = ScriptedRevocation::answering_later(Ok(true));
    let inner = Inner::default();
    let service = layer(store).layer(inner.clone());
    let response = tokio::spawn(service.oneshot(bearer(&token(json!({})))));
    release.send(()).unwrap();
    let answer = answer(response.await.unwrap().unwrap()).await;
    assert_revoked(&answer);
    assert!(inner.take().is_empty());
}

#[tokio::test]
async fn dropping_a_waiting_request_never_calls_the_inner_service() {
    let (store, release) = ScriptedRevocation::answering_later(Ok(false));
    let inner = Inner::default();
    let mut service = layer(store).layer(inner.clone());
    service.ready().await.unwrap();
    let response = service.call(bearer(&token(json!({}))));
    drop(response);
    drop(release);
    // The service left behind is usable and the dropped request never ran.
    assert!(inner.take().is_empty());
}

#[tokio::test]
async fn store_errors_fail_closed_with_503_by_default() {
    let inner = Inner::default();
    let at_once = layer(ScriptedRevocation::answering(Err("down")));
    assert_unavailable(
        &send(&at_once, &inner, bearer(&token(json!({})))).await,
        &inner,
    );
    let (store, release) = ScriptedRevocation::answering_later(Err("down"));
    let later = layer(store);
    let pending = tokio::spawn({
        let inner = inner.clone();
        async move { later.layer(inner).oneshot(bearer(&token(json!({})))).await }
    });
    release.send(()).unwrap();
    let answer = answer(pending.await.unwrap().unwrap()).await;
    assert_unavailable(&answer, &inner);
}

#[tokio::test]
async fn store_errors_are_grpc_unavailable_for_grpc_requests() {
    let inner = Inner::grpc();
    let layer = layer(ScriptedRevocation::answering(Err("down")));
    let answer = send(&layer, &inner, grpc(&token(json!({})))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["grpc-status"], "14");
    assert!(answer.body.is_empty());
    assert_eq!(answer.kind(), Some(ErrorKind::Unavailable));
    assert!(inner.take().is_empty());
    // A revoked token over gRPC is UNAUTHENTICATED.
    let revoked = self::layer(ScriptedRevocation::answering(Ok(true)));
    let answer = send(&revoked, &inner, grpc(&token(json!({})))).await;
    assert_eq!(answer.headers["grpc-status"], "16");
    assert_eq!(answer.kind(), Some(ErrorKind::Revoked));
}

#[tokio::test]
async fn fail_open_accepts_verified_tokens_while_the_store_is_down() {
    let inner = Inner::default();
    let open = layer(ScriptedRevocation::answering(Err("down")))
        .on_store_error(StoreErrorPolicy::FailOpen);
    assert_passed(
        &send(&open, &inner, bearer(&token(json!({})))).await,
        &inner,
    );
    let (store, release) = ScriptedRevocation::answering_later(Err("down"));
    let open_later = layer(store).on_store_error(StoreErrorPolicy::FailOpen);
    let pending = tokio::spawn({
        let inner = inner.clone();
        async move {
            open_later
                .layer(inner)
                .oneshot(bearer(&token(json!({}))))
                .await
        }
    });
    release.send(()).unwrap();
    assert_passed(&answer(pending.await.unwrap().unwrap()).await, &inner);
    // Fail open never means "accept anything": a revoked verdict still rejects, and an invalid
    // token is still refused before the store is asked.
    let revoked =
        layer(ScriptedRevocation::answering(Ok(true))).on_store_error(StoreErrorPolicy::FailOpen);
    assert_revoked(&send(&revoked, &inner, bearer(&token(json!({})))).await);
    let forged = common::raw_token(Algorithm::HS256, &common::header(Algorithm::HS256), "{}");
    let answer = send(&open, &inner, bearer(&forged)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_rejection_hook_sees_revoked_and_unavailable() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook = {
        let seen = Arc::clone(&seen);
        move |rejection: Rejection| {
            seen.lock().unwrap().push(rejection.error().kind());
            rejection.into_response()
        }
    };
    let inner = Inner::default();
    for (store, kind) in [
        (ScriptedRevocation::answering(Ok(true)), ErrorKind::Revoked),
        (
            ScriptedRevocation::answering(Err("down")),
            ErrorKind::Unavailable,
        ),
    ] {
        let layer = layer(store).on_rejection(hook.clone());
        let service = layer.layer(inner.clone());
        let answer = answer(service.oneshot(bearer(&token(json!({})))).await.unwrap()).await;
        assert_eq!(answer.kind(), Some(kind));
    }
    assert_eq!(
        *seen.lock().unwrap(),
        [ErrorKind::Revoked, ErrorKind::Unavailable]
    );
}
