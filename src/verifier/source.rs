//! [`KeySource`]: where a verifier's keys come from, a fixed [`KeySet`] or (feature
//! `remote-jwks`) a `RemoteJwks` that fetches and refreshes them.
//!
//! ```
//! use tower_jwt_auth::{Algorithm, KeySet, KeySource, Verifier};
//!
//! let keys = KeySet::hmac(Algorithm::HS256, &[3u8; 32])?;
//! let source: KeySource = keys.clone().into();
//! let verifier = Verifier::builder(source).issuer("https://auth.example").audience("api").build()?;
//! assert_eq!(verifier.keys().map(|keys| keys.len()), Some(1));
//! # Ok::<(), tower_jwt_auth::ConfigError>(())
//! ```

use std::fmt;

#[cfg(feature = "remote-jwks")]
use crate::algorithm::{Algorithm, Family};
use crate::keys::KeySet;
#[cfg(feature = "remote-jwks")]
use crate::remote::RemoteJwks;

/// Where a [`Verifier`](crate::Verifier)'s keys come from. Made with `.into()` (or implicitly
/// by [`Verifier::builder`](crate::Verifier::builder)) from a [`KeySet`], or from a
/// [`RemoteJwks`][remote-jwks] with the `remote-jwks` feature.
///
#[cfg_attr(
    feature = "remote-jwks",
    doc = "[remote-jwks]: crate::remote::RemoteJwks"
)]
#[cfg_attr(not(feature = "remote-jwks"), doc = "[remote-jwks]: crate#features")]
#[derive(Clone)]
pub struct KeySource {
    source: Source,
}

#[derive(Clone)]
pub(crate) enum Source {
    Static(KeySet),
    #[cfg(feature = "remote-jwks")]
    Remote(RemoteJwks),
}

impl From<KeySet> for KeySource {
    fn from(keys: KeySet) -> Self {
        Self {
            source: Source::Static(keys),
        }
    }
}

#[cfg(feature = "remote-jwks")]
impl From<RemoteJwks> for KeySource {
    fn from(remote: RemoteJwks) -> Self {
        Self {
            source: Source::Remote(remote),
        }
    }
}

impl KeySource {
    pub(crate) fn source(&self) -> &Source {
        &self.source
    }

    /// The keys in use now (`None` for remote keys not fetched yet).
    pub(crate) fn current(&self) -> Option<KeySet> {
        match &self.source {
            Source::Static(keys) => Some(keys.clone()),
            #[cfg(feature = "remote-jwks")]
            Source::Remote(remote) => remote.keys(),
        }
    }

    /// The algorithms a verifier over this source may ever accept: a static set's own; for
    /// remote keys, every asymmetric algorithm (an issuer's JWKS never lends an HMAC secret).
    pub(crate) fn algorithm_bits(&self) -> u16 {
        match &self.source {
            Source::Static(keys) => keys.algorithm_bits(),
            #[cfg(feature = "remote-jwks")]
            Source::Remote(_) => Algorithm::ALL
                .iter()
                .filter(|alg| alg.family() != Family::Hmac)
                .fold(0, |bits, alg| bits | alg.bit()),
        }
    }

    /// The issuer a remote source found its keys through (OIDC or RFC 8414 discovery).
    pub(crate) fn discovered_issuer(&self) -> Option<&str> {
        match &self.source {
            Source::Static(_) => None,
            #[cfg(feature = "remote-jwks")]
            Source::Remote(remote) => remote.discovered_issuer(),
        }
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Static(keys) => keys.fmt(f),
            #[cfg(feature = "remote-jwks")]
            Source::Remote(remote) => remote.fmt(f),
        }
    }
}
