//! One pass over the token path, as a verifier and its key source agree on it: how far a pass
//! may go ([`Pass`]), what it comes to ([`Attempt`]), and the fetch a pass may wait for
//! ([`KeyWait`]). A leaf below both the verifier and the remote key source, so that neither
//! imports the other's internals.
//!
//! A verifier over a fixed key set never waits: its synchronous and asynchronous answers are
//! the same.
//!
//! ```
//! use tower_jwt_auth::{Algorithm, KeySet, Verifier};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, &[7u8; 32])?)
//!     .issuer("https://auth.example").audience("api").build()?;
//! let now = verifier.verify("a.b.c").unwrap_err();
//! let later = verifier.verify_async("a.b.c").await.unwrap_err();
//! assert_eq!(now.kind(), later.kind());
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;

use crate::error::AuthError;
#[cfg(feature = "remote-jwks")]
use crate::error::ErrorKind;

/// How far a pass over the token path may go when the key source must fetch first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Answer now (`Verifier::verify`); a fetch may start in the background.
    Now,
    /// The first pass of a caller that can wait (the layer, `verify_async`).
    MayWait,
    /// The second pass, after the fetch the first one waited for: answer now.
    AfterFetch,
}

/// The outcome of one pass over the token path.
pub(crate) enum Attempt<T> {
    Done(Result<T, AuthError>),
    /// The key source is fetching keys this token may need: wait, then pass again with
    /// [`Pass::AfterFetch`]. Only ever for [`Pass::MayWait`].
    #[cfg(feature = "remote-jwks")]
    Wait(KeyWait),
}

/// Resolves when the fetch a token waits for has finished, successfully or not. Boxed: it
/// exists only while keys are being fetched (a cold start, a `kid` not seen yet), never on the
/// path of a token whose key is at hand. (Defined without the `remote-jwks` feature too, so
/// that the layer's future has one shape; nothing makes one then.)
pub(crate) type KeyWait = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

impl<T> Attempt<T> {
    /// The answer of a pass that may not wait ([`Pass::Now`], [`Pass::AfterFetch`]), which
    /// never yields `Wait`; should one all the same, it reads as "unavailable", never as a pass.
    pub(crate) fn finish(self) -> Result<T, AuthError> {
        match self {
            Self::Done(result) => result,
            #[cfg(feature = "remote-jwks")]
            Self::Wait(_) => Err(AuthError::new(ErrorKind::Unavailable)),
        }
    }
}
