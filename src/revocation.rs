//! Revoking tokens before they expire: a denylist of token ids (`jti`) and session ids (`sid`),
//! and a per-user "not before" instant for "log out everywhere".
//!
//! [`BearerAuthLayer::revocation`](crate::bearer::BearerAuthLayer::revocation) asks a
//! [`RevocationStore`] about every token after its signature and claims verified.
//!
//! ```
//! use std::sync::Arc;
//! use tower_jwt_auth::revocation::{MemoryRevocationStore, RevocationQuery, RevocationStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_jwt_auth::store::StoreError> {
//! let store = Arc::new(MemoryRevocationStore::new());
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
//! let token = RevocationQuery::new("https://issuer.example")
//!     .token_id("t-1")
//!     .session_id("s-1")
//!     .subject("alice")
//!     .issued_at(now);
//! assert!(!store.is_revoked(&token).await?);
//!
//! // Denylist the session until the last token it could have issued has expired.
//! store.revoke_session("https://issuer.example", "s-1", now + 900).await?;
//! assert!(store.is_revoked(&token).await?);
//! # Ok(()) }
//! ```
//!
//! Entries carry the instant after which they cannot matter any more (`until`: the token's
//! `exp` plus the verifier's leeway, or for sessions and users the longest access-token lifetime
//! plus leeway); the memory store drops them after it, so its size follows the number of live
//! revoked tokens. Past its hard cap it never drops a live entry and never grows: a revocation
//! that finds it full is recorded coarsely instead, as an issuer-wide "not before" (every token
//! of that issuer issued up to that second is refused until the revocation would have
//! expired), so a full store never leaves a revoked token valid; it costs the other users of
//! that issuer one refresh of their access tokens, and is logged and counted.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::claims::Claims;
use crate::store::{self, StoreError, StoreFuture};

/// The parts of a verified token a revocation check looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RevocationQuery<'a> {
    issuer: &'a str,
    token_id: Option<&'a str>,
    session_id: Option<&'a str>,
    subject: Option<&'a str>,
    issued_at: Option<u64>,
}

impl<'a> RevocationQuery<'a> {
    /// A query for a token of `issuer` (empty when the token has no `iss`).
    #[must_use]
    pub fn new(issuer: &'a str) -> Self {
        Self {
            issuer,
            ..Self::default()
        }
    }

    /// The query for verified claims: `iss`, `jti`, `sid`, `sub` and `iat`.
    #[must_use]
    pub fn from_claims(claims: &'a Claims) -> Self {
        Self {
            issuer: claims.issuer().unwrap_or(""),
            token_id: claims.jwt_id(),
            session_id: claims.session_id(),
            subject: claims.subject(),
            issued_at: claims.issued_at().map(|iat| iat.as_secs()),
        }
    }

    /// Sets the token id (`jti`).
    #[must_use]
    pub fn token_id(mut self, jti: &'a str) -> Self {
        self.token_id = Some(jti);
        self
    }

    /// Sets the session id (`sid`).
    #[must_use]
    pub fn session_id(mut self, sid: &'a str) -> Self {
        self.session_id = Some(sid);
        self
    }

    /// Sets the subject (`sub`).
    #[must_use]
    pub fn subject(mut self, sub: &'a str) -> Self {
        self.subject = Some(sub);
        self
    }

    /// Sets the issue instant (`iat`, whole seconds).
    #[must_use]
    pub fn issued_at(mut self, iat: u64) -> Self {
        self.issued_at = Some(iat);
        self
    }

    /// `iss`.
    #[must_use]
    pub fn get_issuer(&self) -> &'a str {
        self.issuer
    }

    /// `jti`.
    #[must_use]
    pub fn get_token_id(&self) -> Option<&'a str> {
        self.token_id
    }

    /// `sid`.
    #[must_use]
    pub fn get_session_id(&self) -> Option<&'a str> {
        self.session_id
    }

    /// `sub`.
    #[must_use]
    pub fn get_subject(&self) -> Option<&'a str> {
        self.subject
    }

    /// `iat`.
    #[must_use]
    pub fn get_issued_at(&self) -> Option<u64> {
        self.issued_at
    }
}

/// A denylist of tokens, sessions and users, consulted after a token verified.
///
/// Every method answers with a [`StoreFuture`]: an in-memory store answers at once, a networked
/// one asynchronously. The `until` arguments are Unix seconds after which the entry can no
/// longer matter (the entry may be dropped then).
pub trait RevocationStore: Send + Sync + 'static {
    /// Whether the token is revoked: its `(iss, jti)` or `(iss, sid)` is denylisted, or it was
    /// issued (`iat`) before its subject's "not before" instant. A token without `iat` whose
    /// subject has a "not before" instant counts as revoked.
    fn is_revoked(&self, token: &RevocationQuery<'_>) -> StoreFuture<bool>;

    /// Denylists the token `(issuer, jti)` until `until`.
    fn revoke_token(&self, issuer: &str, jti: &str, until: u64) -> StoreFuture<()>;

    /// Denylists every token of the session `(issuer, sid)` until `until`.
    fn revoke_session(&self, issuer: &str, sid: &str, until: u64) -> StoreFuture<()>;

    /// Revokes every token of `(issuer, subject)` issued before `not_before` (Unix seconds),
    /// remembered until `until`. A later call with an earlier instant does not move it back.
    fn revoke_subject_before(
        &self,
        issuer: &str,
        subject: &str,
        not_before: u64,
        until: u64,
    ) -> StoreFuture<()>;
}

/// The default hard cap on entries of a [`MemoryRevocationStore`].
pub const DEFAULT_MAX_ENTRIES: usize = 1_000_000;

/// [`RevocationStore`] in process memory: for one instance (several instances need a shared
/// store). Reads take a shared lock and never allocate; expired entries are swept on writes.
pub struct MemoryRevocationStore {
    lists: RwLock<Lists>,
    max_entries: usize,
    clock: Box<dyn Fn() -> u64 + Send + Sync>,
    writes: AtomicU64,
}

/// issuer → id → what is kept about it. Two levels so a lookup by `(&str, &str)` allocates
/// nothing.
type PerIssuer<T> = HashMap<Box<str>, HashMap<Box<str>, T>>;

#[derive(Default)]
struct Lists {
    /// issuer → jti → until.
    tokens: PerIssuer<u64>,
    /// issuer → sid → until.
    sessions: PerIssuer<u64>,
    /// issuer → subject → (not before, until).
    subjects: PerIssuer<(u64, u64)>,
    /// issuer → (every token issued at or before this second is revoked, until): the coarse
    /// record of revocations that found the store full.
    floors: HashMap<Box<str>, (u64, u64)>,
    len: usize,
}

impl Lists {
    fn sweep(&mut self, now: u64) {
        let mut len = 0;
        for lists in [&mut self.tokens, &mut self.sessions] {
            for entries in lists.values_mut() {
                entries.retain(|_, until| *until > now);
                len += entries.len();
            }
            lists.retain(|_, entries| !entries.is_empty());
        }
        for entries in self.subjects.values_mut() {
            entries.retain(|_, (_, until)| *until > now);
            len += entries.len();
        }
        self.subjects.retain(|_, entries| !entries.is_empty());
        self.floors.retain(|_, (_, until)| *until > now);
        self.len = len;
    }
}

fn system_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl MemoryRevocationStore {
    /// An empty store with the system clock and [`DEFAULT_MAX_ENTRIES`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            lists: RwLock::new(Lists::default()),
            max_entries: DEFAULT_MAX_ENTRIES,
            clock: Box::new(system_now),
            writes: AtomicU64::new(0),
        }
    }

    /// Caps the number of live entries. Past it, after sweeping, a revocation is recorded as
    /// an issuer-wide "not before" (see the [module docs](self)) instead of dropping live
    /// entries, which would silently un-revoke tokens, or failing, which would leave the
    /// token valid.
    #[must_use]
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = max;
        self
    }

    /// The clock (Unix seconds) that decides when entries expire; for tests.
    #[must_use]
    pub fn clock(mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// Live entries (tokens, sessions and subjects), expired ones not yet swept included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.read().len
    }

    /// Whether the store holds no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Lists> {
        // The maps stay consistent whatever panicked while holding the lock: every write is
        // a single insert.
        self.lists.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one revocation of `issuer`'s tokens, kept until `until`, with `f`; when the
    /// store is full, as the issuer's floor instead.
    fn write(
        &self,
        issuer: &str,
        until: u64,
        f: impl FnOnce(&mut Lists),
    ) -> Result<(), StoreError> {
        let now = (self.clock)();
        let mut lists = self.lists.write().unwrap_or_else(PoisonError::into_inner);
        // Sweep every 1024 writes, and whenever the cap is reached.
        if self.writes.fetch_add(1, Ordering::Relaxed) % 1024 == 1023
            || lists.len >= self.max_entries
        {
            lists.sweep(now);
        }
        if until <= now {
            // Already irrelevant: the token has expired.
            return Ok(());
        }
        if lists.len >= self.max_entries {
            let floor = match lists.floors.get_mut(issuer) {
                Some(floor) => floor,
                None => lists.floors.entry(issuer.into()).or_insert((0, 0)),
            };
            floor.0 = floor.0.max(now);
            floor.1 = floor.1.max(until);
            drop(lists);
            store::failed(
                store::Kind::Revocation,
                &StoreError::new("revocation store is full"),
                "MemoryRevocationStore: full; refusing every token of the issuer issued until now",
            );
            return Ok(());
        }
        f(&mut lists);
        Ok(())
    }
}

impl Default for MemoryRevocationStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRevocationStore")
            .field("len", &self.len())
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

fn insert_until(lists: &mut PerIssuer<u64>, issuer: &str, id: &str, until: u64) -> bool {
    let entries = match lists.get_mut(issuer) {
        Some(entries) => entries,
        None => lists.entry(issuer.into()).or_default(),
    };
    match entries.get_mut(id) {
        Some(existing) => {
            *existing = (*existing).max(until);
            false
        }
        None => {
            entries.insert(id.into(), until);
            true
        }
    }
}

impl RevocationStore for MemoryRevocationStore {
    fn is_revoked(&self, token: &RevocationQuery<'_>) -> StoreFuture<bool> {
        let lists = self.read();
        let listed = |lists: &PerIssuer<u64>, id: Option<&str>| {
            id.is_some_and(|id| {
                lists
                    .get(token.issuer)
                    .is_some_and(|entries| entries.contains_key(id))
            })
        };
        let below_floor = lists
            .floors
            .get(token.issuer)
            .is_some_and(|&(floor, _)| token.issued_at.is_none_or(|iat| iat <= floor));
        let before_cutoff = token.subject.is_some_and(|sub| {
            lists
                .subjects
                .get(token.issuer)
                .and_then(|entries| entries.get(sub))
                .is_some_and(|&(not_before, _)| token.issued_at.is_none_or(|iat| iat < not_before))
        });
        StoreFuture::ready(Ok(listed(&lists.tokens, token.token_id)
            || listed(&lists.sessions, token.session_id)
            || before_cutoff
            || below_floor))
    }

    fn revoke_token(&self, issuer: &str, jti: &str, until: u64) -> StoreFuture<()> {
        StoreFuture::ready(self.write(issuer, until, |lists| {
            if insert_until(&mut lists.tokens, issuer, jti, until) {
                lists.len += 1;
            }
        }))
    }

    fn revoke_session(&self, issuer: &str, sid: &str, until: u64) -> StoreFuture<()> {
        StoreFuture::ready(self.write(issuer, until, |lists| {
            if insert_until(&mut lists.sessions, issuer, sid, until) {
                lists.len += 1;
            }
        }))
    }

    fn revoke_subject_before(
        &self,
        issuer: &str,
        subject: &str,
        not_before: u64,
        until: u64,
    ) -> StoreFuture<()> {
        StoreFuture::ready(self.write(issuer, until, |lists| {
            let entries = match lists.subjects.get_mut(issuer) {
                Some(entries) => entries,
                None => lists.subjects.entry(issuer.into()).or_default(),
            };
            match entries.get_mut(subject) {
                Some((cutoff, keep)) => {
                    *cutoff = (*cutoff).max(not_before);
                    *keep = (*keep).max(until);
                }
                None => {
                    entries.insert(subject.into(), (not_before, until));
                    lists.len += 1;
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use super::*;

    const ISS: &str = "https://issuer.example";

    fn store_at(now: &Arc<AtomicU64>) -> MemoryRevocationStore {
        let now = Arc::clone(now);
        MemoryRevocationStore::new().clock(move || now.load(Ordering::Relaxed))
    }

    fn revoked(store: &MemoryRevocationStore, query: RevocationQuery<'_>) -> bool {
        store.is_revoked(&query).into_ready().unwrap().unwrap()
    }

    fn done(future: StoreFuture<()>) -> Result<(), StoreError> {
        future.into_ready().unwrap()
    }

    #[test]
    fn token_ids_are_denylisted_per_issuer() {
        let now = Arc::new(AtomicU64::new(1_000));
        let store = store_at(&now);
        let query = RevocationQuery::new(ISS).token_id("a");
        assert!(!revoked(&store, query));
        done(store.revoke_token(ISS, "a", 2_000)).unwrap();
        assert!(revoked(&store, query));
        assert!(!revoked(
            &store,
            RevocationQuery::new("other").token_id("a")
        ));
        assert!(!revoked(&store, RevocationQuery::new(ISS).token_id("b")));
        assert!(!revoked(&store, RevocationQuery::new(ISS)));
    }

    #[test]
    fn sessions_are_denylisted_per_issuer() {
        let now = Arc::new(AtomicU64::new(1_000));
        let store = store_at(&now);
        done(store.revoke_session(ISS, "s", 2_000)).unwrap();
        assert!(revoked(
            &store,
            RevocationQuery::new(ISS).session_id("s").token_id("x")
        ));
        assert!(!revoked(
            &store,
            RevocationQuery::new("other").session_id("s")
        ));
        // A jti equal to a revoked sid is a different list.
        assert!(!revoked(&store, RevocationQuery::new(ISS).token_id("s")));
    }

    #[test]
    fn not_before_revokes_older_tokens_of_that_subject_only() {
        let now = Arc::new(AtomicU64::new(1_000));
        let store = store_at(&now);
        done(store.revoke_subject_before(ISS, "alice", 1_000, 5_000)).unwrap();
        let alice = RevocationQuery::new(ISS).subject("alice");
        assert!(revoked(&store, alice.issued_at(999)));
        assert!(!revoked(&store, alice.issued_at(1_000)));
        assert!(revoked(&store, alice), "no iat cannot prove it is newer");
        assert!(!revoked(
            &store,
            RevocationQuery::new(ISS).subject("bob").issued_at(1)
        ));
        // An earlier instant does not move the cut-off back.
        done(store.revoke_subject_before(ISS, "alice", 500, 5_000)).unwrap();
        assert!(revoked(&store, alice.issued_at(999)));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn expired_entries_are_swept_and_stale_ones_never_stored() {
        let now = Arc::new(AtomicU64::new(1_000));
        let store = store_at(&now).max_entries(10);
        done(store.revoke_token(ISS, "old", 999)).unwrap();
        assert!(store.is_empty(), "an entry already past `until` is useless");
        for i in 0..10 {
            done(store.revoke_token(ISS, &format!("t{i}"), 1_100)).unwrap();
        }
        assert_eq!(store.len(), 10);
        // Full while the entries are live: nothing is dropped, and the revocation is recorded
        // coarsely: every token of the issuer issued up to now is refused until it would have
        // expired; tokens issued later, and other issuers' tokens, are not.
        let one_more = RevocationQuery::new(ISS)
            .token_id("one-more")
            .issued_at(1_000);
        assert!(!revoked(&store, one_more));
        done(store.revoke_token(ISS, "one-more", 1_100)).unwrap();
        assert_eq!(store.len(), 10);
        assert!(revoked(&store, one_more));
        assert!(revoked(
            &store,
            RevocationQuery::new(ISS).token_id("other").issued_at(990)
        ));
        assert!(revoked(
            &store,
            RevocationQuery::new(ISS).token_id("no-iat")
        ));
        assert!(!revoked(
            &store,
            RevocationQuery::new(ISS).token_id("new").issued_at(1_001)
        ));
        assert!(!revoked(
            &store,
            RevocationQuery::new("other").token_id("x").issued_at(1)
        ));
        assert!(revoked(&store, RevocationQuery::new(ISS).token_id("t0")));
        // Once they expire, the next write sweeps them, the floor with them.
        now.store(1_100, Ordering::Relaxed);
        done(store.revoke_token(ISS, "fresh", 1_200)).unwrap();
        assert_eq!(store.len(), 1);
        assert!(!revoked(&store, RevocationQuery::new(ISS).token_id("t0")));
        assert!(!revoked(
            &store,
            RevocationQuery::new(ISS).token_id("x").issued_at(1_000)
        ));
    }

    #[test]
    fn revoking_twice_keeps_the_later_until_and_counts_once() {
        let now = Arc::new(AtomicU64::new(1_000));
        let store = store_at(&now);
        done(store.revoke_token(ISS, "a", 1_500)).unwrap();
        done(store.revoke_token(ISS, "a", 1_200)).unwrap();
        assert_eq!(store.len(), 1);
        now.store(1_300, Ordering::Relaxed);
        store.lists.write().unwrap().sweep(1_300);
        assert!(revoked(&store, RevocationQuery::new(ISS).token_id("a")));
    }
}
