//! External identities linked to local accounts, and the one-time values of external sign-in
//! (flow state and sign-in codes): the types the [`UserStore`](super::UserStore) and
//! [`OneTimeStore`] speak, and [`MemoryOneTimeStore`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::store::{StoreError, StoreFuture};

/// An account at an external identity provider, linked to one local user. It is known by
/// `(issuer, subject)`: the provider's issuer identifier and its stable, never reassigned user
/// id (OpenID Connect's `iss` and `sub`). An e-mail address is never an identity: providers
/// let addresses change hands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The name the router knows the provider by (its route segment, such as `google`). A
    /// user has at most one identity per provider.
    pub provider: String,
    /// The provider's issuer identifier.
    pub issuer: String,
    /// The user's id at the provider.
    pub subject: String,
    /// The address the provider gave when the identity was linked, for display only.
    pub email: Option<String>,
    /// When it was linked, in seconds since the Unix epoch.
    pub linked_at: u64,
}

/// The outcome of [`UserStore::link_identity`](super::UserStore::link_identity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Linked {
    /// Linked.
    Linked,
    /// This `(issuer, subject)` is already linked to an account (this one or another).
    IdentityTaken,
    /// The user already has an identity from this provider.
    ProviderTaken,
    /// There is no such user.
    NoSuchUser,
}

/// The outcome of [`UserStore::unlink_identity`](super::UserStore::unlink_identity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unlinked {
    /// Unlinked; the identity as it was.
    Unlinked(Identity),
    /// The user has no identity from this provider (or there is no such user).
    NotLinked,
    /// Refused, nothing changed: the account has no password and no other identity, so it
    /// could never sign in again.
    LastWayToSignIn,
}

/// Short-lived, single-use values by key: the state of an external sign-in between its start
/// and the provider's callback (at most ten minutes), and the one-time codes a front end
/// exchanges for tokens (a minute). Keys are SHA-256 hashes of secrets that only the browser
/// holds, so a copy of the store does not let anyone finish a sign-in.
///
/// Several instances behind one load balancer must share it: the callback may reach another
/// instance than the start did.
pub trait OneTimeStore: Send + Sync + 'static {
    /// Keeps `value` under `key` until `expires_at` (Unix seconds); `false`, and nothing
    /// changes, when a live value already has this key. May drop values expired at `now`.
    fn put(&self, key: &[u8; 32], value: String, expires_at: u64, now: u64) -> StoreFuture<bool>;
    /// Removes the value under `key` and answers it when it is still live at `now`. Atomic: of
    /// two concurrent takes of one key, on any number of instances, one gets the value.
    fn take(&self, key: &[u8; 32], now: u64) -> StoreFuture<Option<String>>;
}

/// The default cap on values in a [`MemoryOneTimeStore`].
pub const DEFAULT_MAX_ONE_TIME_VALUES: usize = 100_000;

/// [`OneTimeStore`] in process memory, for one instance and for tests. Holds at most
/// [`DEFAULT_MAX_ONE_TIME_VALUES`] live values (configurable): past it, a
/// [`put`](OneTimeStore::put) first drops the expired ones, then fails with a [`StoreError`]
/// rather than evict a sign-in in progress.
pub struct MemoryOneTimeStore {
    values: Mutex<HashMap<[u8; 32], (String, u64)>>,
    max: usize,
}

impl MemoryOneTimeStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self {
            values: Mutex::new(HashMap::new()),
            max: DEFAULT_MAX_ONE_TIME_VALUES,
        }
    }

    /// Caps the number of live values.
    #[must_use]
    pub fn max_values(mut self, max: usize) -> Self {
        self.max = max;
        self
    }

    fn values(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (String, u64)>> {
        // Each write is one insert or removal: the map is consistent after a panic.
        self.values.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryOneTimeStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryOneTimeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryOneTimeStore")
            .field("values", &self.values().len())
            .field("max", &self.max)
            .finish()
    }
}

impl OneTimeStore for MemoryOneTimeStore {
    fn put(&self, key: &[u8; 32], value: String, expires_at: u64, now: u64) -> StoreFuture<bool> {
        let mut values = self.values();
        if values.get(key).is_some_and(|(_, expiry)| now < *expiry) {
            return StoreFuture::ready(Ok(false));
        }
        if values.len() >= self.max {
            values.retain(|_, (_, expiry)| now < *expiry);
            if values.len() >= self.max {
                return StoreFuture::ready(Err(StoreError::new("one-time store is full")));
            }
        }
        values.insert(*key, (value, expires_at));
        StoreFuture::ready(Ok(true))
    }

    fn take(&self, key: &[u8; 32], now: u64) -> StoreFuture<Option<String>> {
        let taken = self.values().remove(key);
        StoreFuture::ready(Ok(taken
            .filter(|(_, expiry)| now < *expiry)
            .map(|(value, _)| value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready<T>(future: StoreFuture<T>) -> T {
        futures_ready(future).unwrap()
    }

    fn futures_ready<T>(future: StoreFuture<T>) -> Result<T, StoreError> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn values_are_taken_once_until_they_expire_and_the_cap_holds() {
        let store = MemoryOneTimeStore::new().max_values(2);
        assert!(ready(store.put(&[1; 32], "a".into(), 100, 10)));
        assert!(!ready(store.put(&[1; 32], "b".into(), 100, 10)), "taken");
        assert!(ready(store.put(&[2; 32], "c".into(), 20, 10)));
        // Full of live values: refused, nothing evicted.
        assert!(futures_ready(store.put(&[3; 32], "d".into(), 100, 10)).is_err());
        // Once the second has expired, it makes room.
        assert!(ready(store.put(&[3; 32], "d".into(), 100, 20)));
        assert_eq!(ready(store.take(&[1; 32], 50)).as_deref(), Some("a"));
        assert_eq!(ready(store.take(&[1; 32], 50)), None, "single use");
        assert_eq!(ready(store.take(&[3; 32], 100)), None, "expired");
        assert_eq!(
            ready(store.take(&[3; 32], 50)),
            None,
            "an expired take used it up"
        );
        // An expired value's key may be used again.
        assert!(ready(store.put(&[2; 32], "e".into(), 200, 30)));
        assert_eq!(ready(store.take(&[2; 32], 40)).as_deref(), Some("e"));
    }
}
