//! What the store traits ([`RevocationStore`](crate::revocation::RevocationStore), and with the
//! `router` feature the user and refresh-token stores) have in common: the future they answer
//! with, and their error.
//!
//! A store backed by memory answers at once with [`StoreFuture::ready`], and the layers then
//! decide without boxing or yielding; a store backed by a network service answers with
//! [`StoreFuture::boxed`].
//!
//! ```
//! use tower_jwt_auth::store::{StoreError, StoreFuture};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let at_once = StoreFuture::ready(Ok(7));
//! assert!(at_once.is_ready());
//! assert_eq!(at_once.await.unwrap(), 7);
//!
//! let later: StoreFuture<u32> = StoreFuture::boxed(async { Err(StoreError::new("connection refused")) });
//! assert!(!later.is_ready());
//! assert_eq!(later.await.unwrap_err().to_string(), "store unavailable: connection refused");
//! # }
//! ```

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::telemetry::{STORE, STORE_ERRORS_TOTAL, TARGET_STORE, count_by};

/// A store could not answer (unreachable, timed out, full). Deliberately opaque: what to do about
/// it is a policy of the caller (for [`BearerAuth`](crate::bearer::BearerAuth): fail closed with
/// 503 unless configured otherwise), not something to branch on.
pub struct StoreError {
    message: &'static str,
    source: Option<Box<dyn Error + Send + Sync>>,
}

impl StoreError {
    /// An error with a fixed description (no request data: it may reach a log line).
    #[must_use]
    pub fn new(message: &'static str) -> Self {
        Self {
            message,
            source: None,
        }
    }

    /// An error caused by `source` (for example a connection error of the store's client).
    #[must_use]
    pub fn with_source(message: &'static str, source: impl Error + Send + Sync + 'static) -> Self {
        Self {
            message,
            source: Some(Box::new(source)),
        }
    }

    /// The fixed description.
    #[must_use]
    pub fn message(&self) -> &'static str {
        self.message
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError")
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store unavailable: {}", self.message)
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// What a layer does when its store cannot answer. Each layer has its own default, chosen for
/// what is at stake:
///
/// - [`BearerAuth`](crate::bearer::BearerAuth) and its revocation store:
///   [`FailClosed`](Self::FailClosed) by default, since a revoked token must never pass;
/// - `RateLimitLogin` (feature `rate-limit`) and its limiter store:
///   [`FailOpen`](Self::FailOpen) by default, since an unreachable counter store should not
///   lock every user out.
///
/// Set it with the layer's `on_store_error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorPolicy {
    /// Refuse with 503 and `Retry-After` (gRPC 14 `UNAVAILABLE`): for `BearerAuth`, a revoked
    /// token is never accepted, at the price of an outage while the store is down; for
    /// `RateLimitLogin`, no login goes unlimited.
    FailClosed,
    /// Go ahead as if the store had said nothing against the request, and log it: for
    /// `BearerAuth`, the verified token is accepted (revoked tokens work again until they
    /// expire, for as long as the store is down); for `RateLimitLogin`, the login goes ahead
    /// uncounted.
    FailOpen,
}

impl From<crate::ids::RandomError> for StoreError {
    fn from(_: crate::ids::RandomError) -> Self {
        Self::new("the OS random source failed")
    }
}

/// Which store failed: the value of the `store` label of
/// [`STORE_ERRORS_TOTAL`](crate::telemetry::STORE_ERRORS_TOTAL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `BearerAuth`'s revocation check.
    Revocation,
    /// `RateLimitLogin`'s limiter.
    #[cfg_attr(not(feature = "rate-limit"), allow(dead_code))]
    Limiter,
    /// The router's user, refresh and revocation stores.
    #[cfg_attr(not(feature = "router"), allow(dead_code))]
    Router,
}

impl Kind {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Revocation => "revocation",
            Self::Limiter => "limiter",
            Self::Router => "router",
        }
    }
}

/// A store call failed; `consequence` says what the caller does about it (fixed text: the
/// event's message).
pub(crate) fn failed(kind: Kind, error: &StoreError, consequence: &'static str) {
    tracing::error!(
        target: TARGET_STORE,
        reason = "store_unavailable",
        store = kind.as_str(),
        %error,
        "{consequence}"
    );
    count_by!(
        kind => STORE,
        Kind::{Revocation, Limiter, Router},
        Kind::as_str,
        STORE_ERRORS_TOTAL
    );
}

/// A store call failed again during an outage already logged by [`failed`]: counted, and
/// logged at debug level only, so an outage is one error line, not one per request.
#[cfg_attr(not(feature = "rate-limit"), allow(dead_code))]
pub(crate) fn failed_again(kind: Kind, error: &StoreError) {
    tracing::debug!(
        target: TARGET_STORE,
        reason = "store_unavailable",
        store = kind.as_str(),
        %error,
        "store still unavailable"
    );
    count_by!(
        kind => STORE,
        Kind::{Revocation, Limiter, Router},
        Kind::as_str,
        STORE_ERRORS_TOTAL
    );
}

/// The answer of a store: ready now (memory) or later (network). `'static` and `Send`, so it
/// can live in a response future.
#[must_use = "a store future does nothing unless awaited"]
pub struct StoreFuture<T> {
    state: State<T>,
}

enum State<T> {
    Ready(Option<Result<T, StoreError>>),
    Boxed(Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>),
}

// Neither variant is structurally pinned: the ready value is moved out, the boxed future is
// pinned on the heap.
impl<T> Unpin for StoreFuture<T> {}

impl<T> StoreFuture<T> {
    /// An answer available now.
    pub fn ready(result: Result<T, StoreError>) -> Self {
        Self {
            state: State::Ready(Some(result)),
        }
    }

    /// An answer that needs asynchronous work (one allocation).
    pub fn boxed(future: impl Future<Output = Result<T, StoreError>> + Send + 'static) -> Self {
        Self {
            state: State::Boxed(Box::pin(future)),
        }
    }

    /// Whether the answer is available without polling.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready(Some(_)))
    }

    /// Takes an answer that is available now; otherwise gives the future back.
    ///
    /// # Errors
    ///
    /// The future itself, when the answer needs asynchronous work.
    pub fn into_ready(self) -> Result<Result<T, StoreError>, Self> {
        match self.state {
            State::Ready(Some(result)) => Ok(result),
            state => Err(Self { state }),
        }
    }
}

impl<T> Future for StoreFuture<T> {
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            State::Ready(result) => {
                Poll::Ready(result.take().unwrap_or_else(|| {
                    Err(StoreError::new("store future polled after completion"))
                }))
            }
            State::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for StoreFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Ready(Some(_)) => "ready",
            State::Ready(None) => "done",
            State::Boxed(_) => "pending",
        };
        f.debug_struct("StoreFuture")
            .field("state", &state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_answers_are_taken_without_polling() {
        let ready = StoreFuture::ready(Ok(1));
        assert_eq!(ready.into_ready().unwrap().unwrap(), 1);
        let boxed = StoreFuture::boxed(async { Ok(2) });
        let boxed = boxed.into_ready().unwrap_err();
        assert_eq!(boxed.await.unwrap(), 2);
    }

    #[test]
    fn errors_keep_their_source_and_fixed_text() {
        let io = std::io::Error::other("reset");
        let error = StoreError::with_source("redis", io);
        assert_eq!(error.to_string(), "store unavailable: redis");
        assert_eq!(error.source().unwrap().to_string(), "reset");
        assert_eq!(error.message(), "redis");
    }
}
