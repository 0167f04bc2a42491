//! The harness shared by the layer suites: an inner service that records the claims it sees,
//! and a response collected for assertions.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::Service;
use tower_jwt_auth::{AuthError, Claims, ErrorKind};

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

/// What came back, with the body collected.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub error: Option<AuthError>,
    pub body: Bytes,
}

impl Answer {
    pub fn challenge(&self) -> Option<&str> {
        self.headers
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap())
    }

    pub fn kind(&self) -> Option<ErrorKind> {
        self.error.map(|e| e.kind())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }

    /// Everything the client sees, headers and body, as text.
    pub fn everything(&self) -> String {
        let mut all = format!("{}\n", self.status);
        for (name, value) in &self.headers {
            all.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        all.push_str(&String::from_utf8_lossy(&self.body));
        all
    }
}

pub async fn answer<B>(response: Response<B>) -> Answer
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let error = response.extensions().get::<AuthError>().copied();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        error,
        body,
    }
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
