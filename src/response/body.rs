//! [`ResponseBody`]: the inner service's body, or the small body of a rejection.
//!
//! ```
//! use bytes::Bytes;
//! use http_body::Body as _;
//! use tower_jwt_auth::response::ResponseBody;
//!
//! // A rejection body is one frame of bytes with an exact size.
//! let body = ResponseBody::<String>::rejection(Bytes::from_static(b"{}"));
//! assert_eq!(body.size_hint().exact(), Some(2));
//! assert!(!body.is_end_stream());
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The body of a response from this crate's layers: the inner service's body, unchanged,
    /// or the bytes of a rejection. One type works under axum, tonic and hyper because the
    /// layers never have to construct the inner service's body type.
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Rejection { data: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    /// Wraps the inner service's body.
    pub fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A body of these bytes (empty bytes make an empty body).
    pub fn rejection(data: Bytes) -> Self {
        let data = (!data.is_empty()).then_some(data);
        Self {
            kind: Kind::Rejection { data },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Rejection { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Rejection { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Rejection { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(mut body: ResponseBody<String>) -> Vec<Bytes> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut out = Vec::new();
        while let Poll::Ready(Some(frame)) = Pin::new(&mut body).poll_frame(&mut cx) {
            out.push(frame.unwrap().into_data().unwrap());
        }
        assert!(body.is_end_stream());
        out
    }

    #[test]
    fn a_rejection_body_is_one_frame_then_the_end() {
        let body = ResponseBody::<String>::rejection(Bytes::from_static(b"hello"));
        assert_eq!(body.size_hint().exact(), Some(5));
        assert_eq!(frames(body), vec![Bytes::from_static(b"hello")]);
    }

    #[test]
    fn an_empty_rejection_body_ends_at_once() {
        let body = ResponseBody::<String>::rejection(Bytes::new());
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(frames(body).is_empty());
    }

    #[test]
    fn the_inner_body_passes_through() {
        let body = ResponseBody::inner(String::from("inner"));
        assert_eq!(body.size_hint().exact(), Some(5));
        assert_eq!(frames(body), vec![Bytes::from_static(b"inner")]);
    }
}
