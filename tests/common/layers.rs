//! The harness shared by the layer suites: an inner service that records the claims it sees,
//! request builders, and the exact RFC 6750 rejections to assert.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use tower::util::BoxCloneService;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_jwt_auth::bearer::BearerAuthLayer;
use tower_jwt_auth::response::ResponseBody;
use tower_jwt_auth::{Claims, ErrorKind};

use super::answer::{Answer, answer};

/// The inner service: answers 200 "inner" (or, [`Inner::grpc`], like a gRPC server: 200 with
/// `grpc-status: 0` and an empty message) and records the `Claims` of every request it sees.
#[derive(Clone, Debug, Default)]
pub struct Inner {
    pub seen: Arc<Mutex<Vec<Option<Claims>>>>,
    grpc: bool,
}

impl Inner {
    /// An inner service that answers like a gRPC server.
    pub fn grpc() -> Self {
        Self {
            grpc: true,
            ..Self::default()
        }
    }

    /// The claims of every call since the last `take`.
    pub fn take(&self) -> Vec<Option<Claims>> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Service<Request<String>> for Inner {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<String>) -> Self::Future {
        let claims = request.extensions().get::<Claims>().cloned();
        self.seen.lock().unwrap().push(claims);
        if !self.grpc {
            return ready(Ok(Response::new(String::from("inner"))));
        }
        let mut response = Response::new(String::from("\0\0\0\0\0"));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from_static("0"));
        ready(Ok(response))
    }
}

/// A stack of layers under test and the [`Inner`] service behind it.
pub struct Stack {
    /// The stack, its response bodies boxed so that stacks of any depth fit one type.
    pub service:
        BoxCloneService<Request<String>, Response<UnsyncBoxBody<Bytes, Infallible>>, Infallible>,
    pub inner: Inner,
}

impl Stack {
    /// Wraps the inner service with whatever `stack` builds.
    pub fn build<S, B>(stack: impl FnOnce(Inner) -> S) -> Self
    where
        S: Service<Request<String>, Response = Response<B>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = Bytes, Error = Infallible> + Send + 'static,
    {
        let inner = Inner::default();
        let service = ServiceBuilder::new()
            .map_response(|response: Response<B>| response.map(BodyExt::boxed_unsync))
            .service(stack(inner.clone()));
        Self {
            service: BoxCloneService::new(service),
            inner,
        }
    }

    /// `BearerAuth` (strict, over [`super::verifier`]) in front of `layer`.
    pub fn behind_bearer<L>(layer: L) -> Self
    where
        L: Layer<Inner>,
        L::Service: Service<Request<String>, Response = Response<ResponseBody<String>>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        <L::Service as Service<Request<String>>>::Future: Send + 'static,
    {
        Self::build(|inner| {
            ServiceBuilder::new()
                .layer(BearerAuthLayer::new(super::verifier()))
                .layer(layer)
                .service(inner)
        })
    }

    pub async fn send(&self, request: Request<String>) -> Answer {
        answer(self.service.clone().oneshot(request).await.unwrap()).await
    }

    /// Expects the inner service's 200, reached once, with claims; returns them.
    pub async fn assert_passes(&self, request: Request<String>) -> Claims {
        self.passes(request).await.1
    }

    /// As [`Stack::assert_passes`], with the answer too.
    pub async fn passes(&self, request: Request<String>) -> (Answer, Claims) {
        let answer = self.send(request).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.text(), "inner");
        assert_eq!(answer.error, None);
        let seen = self.inner.take();
        assert_eq!(seen.len(), 1, "the inner service is called exactly once");
        let claims = seen
            .into_iter()
            .next()
            .unwrap()
            .expect("claims in the extensions");
        (answer, claims)
    }

    /// Expects the inner service's 200 without claims (optional mode).
    pub async fn assert_passes_anonymously(&self, request: Request<String>) {
        let answer = self.send(request).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.text(), "inner");
        assert_eq!(answer.error, None);
        assert_eq!(self.inner.take(), vec![None]);
    }

    /// Expects a rejection and checks the inner service was not called.
    pub async fn rejected(&self, request: Request<String>) -> Answer {
        let answer = self.send(request).await;
        assert!(
            self.inner.take().is_empty(),
            "the inner service must not be called on a rejection: {answer:?}"
        );
        answer
    }
}

/// A request with a bearer token.
pub fn bearer(token: &str) -> Request<String> {
    Request::builder()
        .uri("/resource")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(String::new())
        .unwrap()
}

/// A request without credentials.
pub fn anonymous() -> Request<String> {
    Request::builder()
        .uri("/resource")
        .body(String::new())
        .unwrap()
}

/// Asserts an RFC 6750 HTTP rejection, exactly.
pub fn assert_rejection(
    answer: &Answer,
    status: StatusCode,
    challenge: &str,
    body: &str,
    kind: ErrorKind,
) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.challenge(), Some(challenge), "{answer:?}");
    assert_eq!(answer.headers.get_all(WWW_AUTHENTICATE).iter().count(), 1);
    assert_eq!(answer.headers[CONTENT_TYPE], "application/json");
    assert_eq!(answer.text(), body);
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(json.as_object().unwrap().len(), 2, "{json}");
    assert_eq!(answer.kind(), Some(kind), "{answer:?}");
}

/// 401 without credentials: a bare challenge (or one with this realm).
pub fn assert_missing_with(answer: &Answer, challenge: &str) {
    assert_rejection(
        answer,
        StatusCode::UNAUTHORIZED,
        challenge,
        r#"{"error":"unauthorized","error_description":"no token"}"#,
        ErrorKind::Missing,
    );
}

/// 401 without credentials, without a realm.
pub fn assert_missing(answer: &Answer) {
    assert_missing_with(answer, "Bearer");
}

/// 400 `invalid_request`: malformed credentials or several of them.
pub fn assert_invalid_request(answer: &Answer) {
    assert_rejection(
        answer,
        StatusCode::BAD_REQUEST,
        r#"Bearer error="invalid_request", error_description="malformed credentials""#,
        r#"{"error":"invalid_request","error_description":"malformed credentials"}"#,
        ErrorKind::InvalidRequest,
    );
}

/// 401 `invalid_token` with the kind's description.
pub fn assert_invalid_token(answer: &Answer, kind: ErrorKind) {
    let description = kind.description();
    assert_rejection(
        answer,
        StatusCode::UNAUTHORIZED,
        &format!(r#"Bearer error="invalid_token", error_description="{description}""#),
        &format!(r#"{{"error":"invalid_token","error_description":"{description}"}}"#),
        kind,
    );
}
