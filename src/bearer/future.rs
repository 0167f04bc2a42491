//! [`ResponseFuture`] of [`BearerAuth`](super::BearerAuth).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::Config;
use crate::response::{OnRejection, ResponseBody};
use crate::store::StoreFuture;

/// What the future needs to finish a request once the revocation store has answered.
pub(super) struct Pending<S, ReqBody, R> {
    pub(super) inner: S,
    pub(super) request: Request<ReqBody>,
    pub(super) config: Arc<Config>,
    pub(super) on_rejection: R,
}

pin_project! {
    /// The future of [`BearerAuth`](super::BearerAuth): the inner service's future, a ready
    /// rejection, or (only with a revocation store that answers asynchronously) the store's
    /// answer followed by the inner call. Never boxed by this crate; the store's own future may
    /// be.
    pub struct ResponseFuture<S, ReqBody, R>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, R>
    where
        S: Service<Request<ReqBody>>,
    {
        Inner { #[pin] future: S::Future },
        Reject { response: Option<Response<Bytes>> },
        Check { check: StoreFuture<bool>, pending: Option<Pending<S, ReqBody, R>> },
    }
}

impl<S, ReqBody, R> ResponseFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>>,
{
    pub(super) fn inner(future: S::Future) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    pub(super) fn reject(response: Response<Bytes>) -> Self {
        Self {
            state: State::Reject {
                response: Some(response),
            },
        }
    }

    pub(super) fn check(check: StoreFuture<bool>, pending: Pending<S, ReqBody, R>) -> Self {
        Self {
            state: State::Check {
                check,
                pending: Some(pending),
            },
        }
    }
}

impl<S, ReqBody, ResBody, R> Future for ResponseFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: OnRejection,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project().state.project() {
                StateProj::Inner { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Reject { response } => {
                    let response = response
                        .take()
                        .expect("bearer::ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                }
                StateProj::Check { check, pending } => {
                    let answer = ready!(Pin::new(check).poll(cx));
                    let Pending {
                        mut inner,
                        request,
                        config,
                        on_rejection,
                    } = pending
                        .take()
                        .expect("bearer::ResponseFuture polled after completion");
                    let next = match config.revocation_verdict(answer) {
                        // `inner` is the service `poll_ready` made ready, moved here by `call`.
                        Ok(()) => State::Inner {
                            future: inner.call(request),
                        },
                        Err(error) => State::Reject {
                            response: Some(config.responder.hooked(&request, error, &on_rejection)),
                        },
                    };
                    self.as_mut().project().state.set(next);
                }
            }
        }
    }
}

impl<S, ReqBody, R> fmt::Debug for ResponseFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Inner { .. } => "inner",
            State::Reject { .. } => "reject",
            State::Check { .. } => "revocation check",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
