//! The one response capture of every suite: status, headers, the `AuthError` a layer put into
//! the extensions, and the whole body.

use std::fmt;

use bytes::Bytes;
use http::header::{AsHeaderName, DATE, WWW_AUTHENTICATE};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower_jwt_auth::{AuthError, ErrorKind};

/// What came back, with the body collected.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub error: Option<AuthError>,
    pub body: Bytes,
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("error", &self.error)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

impl Answer {
    /// The `WWW-Authenticate` challenge.
    pub fn challenge(&self) -> Option<&str> {
        self.header(WWW_AUTHENTICATE)
    }

    /// The kind of the `AuthError` in the response extensions.
    pub fn kind(&self) -> Option<ErrorKind> {
        self.error.map(|e| e.kind())
    }

    /// A header's value as text (it must be visible ASCII).
    pub fn header(&self, name: impl AsHeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The body as text (it must be UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }

    /// The body as JSON (it must be JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
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

    /// Status, every header but `date` (sorted) and body: what an observer could compare.
    pub fn observable(&self) -> (StatusCode, Vec<(String, Vec<u8>)>, Bytes) {
        let mut headers: Vec<_> = self
            .headers
            .iter()
            .filter(|(name, _)| *name != DATE)
            .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
            .collect();
        headers.sort();
        (self.status, headers, self.body.clone())
    }
}

/// Collects a response of any body.
pub async fn answer<B>(response: Response<B>) -> Answer
where
    B: http_body::Body,
    B::Error: fmt::Debug,
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
