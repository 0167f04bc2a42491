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

use super::{Admission, Config};
use crate::error::AuthError;
use crate::pass::{KeyWait, Pass};
use crate::response::{OnRejection, ResponseBody};
use crate::store::{StoreError, StoreFuture};

/// What the future needs to finish a request once the revocation store has answered, or the
/// remote keys have been fetched.
pub(super) struct Pending<S, ReqBody, R> {
    pub(super) inner: S,
    pub(super) request: Request<ReqBody>,
    pub(super) config: Arc<Config>,
    pub(super) on_rejection: R,
}

impl<S, ReqBody, R: OnRejection> Pending<S, ReqBody, R>
where
    S: Service<Request<ReqBody>>,
{
    fn reject(self, error: AuthError) -> State<S, ReqBody, R> {
        super::events::rejected(error);
        let response = self
            .config
            .responder
            .hooked(&self.request, error, &self.on_rejection);
        State::Reject {
            response: Some(response),
        }
    }

    /// The state after the revocation store's answer.
    fn after_check(mut self, answer: Result<bool, StoreError>) -> State<S, ReqBody, R> {
        match self.config.revocation_verdict(answer) {
            // `inner` is the service `poll_ready` made ready, moved here by `call`.
            Ok(()) => State::Inner {
                future: self.inner.call(self.request),
            },
            Err(error) => self.reject(error),
        }
    }

    /// The state after the fetch of remote keys: the token's second and last pass.
    fn after_fetch(mut self) -> State<S, ReqBody, R> {
        let claims = match self
            .config
            .authenticate(&self.request, Pass::AfterFetch)
            .finish()
        {
            Ok(claims) => claims,
            Err(error) => return self.reject(error),
        };
        match self.config.admit(&mut self.request, claims) {
            Admission::Call => State::Inner {
                future: self.inner.call(self.request),
            },
            Admission::Reject(error) => self.reject(error),
            Admission::Check(check) => State::Check {
                check,
                pending: Some(self),
            },
        }
    }
}

pin_project! {
    /// The future of [`BearerAuth`](super::BearerAuth): the inner service's future, a ready
    /// rejection, or, before the inner call, the answer of a revocation store that answers
    /// asynchronously or a fetch of remote keys. Not boxed; the store's own future may be,
    /// and so is the wait for a key fetch (which happens only when keys must be fetched, never
    /// for a token whose key is at hand).
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
        // Only remote keys make this state; without the `remote-jwks` feature it is unused.
        Keys { fetch: KeyWait, pending: Option<Pending<S, ReqBody, R>> },
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

    #[cfg_attr(not(feature = "remote-jwks"), allow(dead_code))]
    pub(super) fn keys(fetch: KeyWait, pending: Pending<S, ReqBody, R>) -> Self {
        Self {
            state: State::Keys {
                fetch,
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
                    let pending = pending
                        .take()
                        .expect("bearer::ResponseFuture polled after completion");
                    self.as_mut()
                        .project()
                        .state
                        .set(pending.after_check(answer));
                }
                StateProj::Keys { fetch, pending } => {
                    ready!(fetch.as_mut().poll(cx));
                    let pending = pending
                        .take()
                        .expect("bearer::ResponseFuture polled after completion");
                    self.as_mut().project().state.set(pending.after_fetch());
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
            State::Keys { .. } => "key fetch",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
