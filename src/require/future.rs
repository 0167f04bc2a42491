//! [`ResponseFuture`] of [`RequireScope`](super::RequireScope) and
//! [`RequireRole`](super::RequireRole).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;

use crate::response::ResponseBody;

pin_project! {
    /// The future of [`RequireScope`](super::RequireScope) and [`RequireRole`](super::RequireRole):
    /// the inner service's future, or a ready rejection. Never boxed.
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: FutureKind<F, B>,
    }
}

pin_project! {
    #[project = FutureKindProj]
    enum FutureKind<F, B> {
        Inner { #[pin] future: F },
        Reject { response: Option<Response<ResponseBody<B>>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(super) fn inner(future: F) -> Self {
        Self {
            kind: FutureKind::Inner { future },
        }
    }

    pub(super) fn reject(response: Response<ResponseBody<B>>) -> Self {
        Self {
            kind: FutureKind::Reject {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            FutureKindProj::Inner { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(ResponseBody::inner)))
            }
            FutureKindProj::Reject { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            FutureKind::Inner { .. } => "inner",
            FutureKind::Reject { .. } => "reject",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
