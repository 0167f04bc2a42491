//! Identifiers: process-wide ids for the per-thread caches, and random ids from the OS CSPRNG
//! (token ids, session ids, user ids, refresh tokens). A leaf below everything that mints them.
//!
//! ```
//! use tower_jwt_auth::issuer::{AccessGrant, TokenIssuer};
//!
//! let issuer = TokenIssuer::hmac(b"a secret of at least thirty-two bytes", "https://auth.example", "api")?;
//! let first = issuer.issue(&AccessGrant::new("alice", "web", "session-1"))?;
//! let second = issuer.issue(&AccessGrant::new("alice", "web", "session-1"))?;
//! // 128 random bits each, base64url.
//! assert_eq!(first.jti.len(), 22);
//! assert_ne!(first.jti, second.jti);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;

use crate::encoding::BASE64URL;

/// A process-wide id that is never reused: identifies keys, key sets and verifier policies in
/// the per-thread caches, where a reused address could otherwise alias a dropped one.
pub(crate) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The OS random source failed; nothing random could be minted. Each caller turns it into its
/// own error (`SignError`, `StoreError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RandomError;

impl fmt::Display for RandomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the OS random source failed")
    }
}

/// `N` bytes from the OS CSPRNG, base64url without padding.
pub(crate) fn random_b64<const N: usize>() -> Result<String, RandomError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| RandomError)?;
    Ok(BASE64URL.encode(bytes))
}

/// 128 random bits, base64url (22 characters): token ids, session ids, user ids.
pub(crate) fn random_id() -> Result<String, RandomError> {
    random_b64::<16>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fresh() {
        let (a, b) = (next_id(), next_id());
        assert!(b > a);
        let (x, y) = (random_id().unwrap(), random_id().unwrap());
        assert_eq!(x.len(), 22);
        assert_ne!(x, y);
        assert_eq!(
            BASE64URL.decode(random_b64::<32>().unwrap()).unwrap().len(),
            32
        );
        assert_eq!(RandomError.to_string(), "the OS random source failed");
    }
}
