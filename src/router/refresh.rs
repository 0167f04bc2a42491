//! Refresh tokens: opaque 256-bit values stored only as SHA-256 hashes, grouped into families
//! (one per login, the access tokens' `sid`), rotated on every use.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Mutex, PoisonError};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::encoding::BASE64URL;
use crate::store::{StoreError, StoreFuture};

/// A refresh token as the client holds it: 32 random bytes, base64url (43 characters).
/// `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    /// A new token from the OS CSPRNG.
    ///
    /// # Errors
    ///
    /// When the OS random source fails.
    pub fn generate() -> Result<Self, StoreError> {
        Ok(Self(crate::ids::random_b64::<32>()?))
    }

    /// The token text, to hand to the client once.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the store keeps.
    #[must_use]
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl RefreshToken {
    /// This token sealed under `previous` (the token it replaces): what a store keeps so that
    /// a client presenting `previous` again within a grace period can be handed this token
    /// once more, without the store ever holding it in the clear. The seal is the token's
    /// 32 bytes XORed with SHA-256 of a fixed label and `previous`: a one-time pad that only
    /// a holder of `previous` can take off ([`SealedToken::open`]).
    #[must_use]
    pub fn seal(&self, previous: &str) -> SealedToken {
        let mut bytes = [0u8; 32];
        // Tokens this crate generates are 32 bytes in base64url; another length (a token
        // made elsewhere) is hashed to 32 first, and then cannot be opened back to itself,
        // so such a retry is refused rather than answered with another token.
        match BASE64URL.decode(self.0.as_bytes()) {
            Ok(decoded) if decoded.len() == 32 => bytes.copy_from_slice(&decoded),
            _ => bytes = Sha256::digest(self.0.as_bytes()).into(),
        }
        for (byte, pad) in bytes.iter_mut().zip(seal_pad(previous)) {
            *byte ^= pad;
        }
        SealedToken(bytes)
    }
}

/// The one-time pad of [`RefreshToken::seal`].
fn seal_pad(previous: &str) -> [u8; 32] {
    let mut pad = Sha256::new();
    pad.update(b"tower-jwt-auth refresh successor v1\0");
    pad.update(previous.as_bytes());
    pad.finalize().into()
}

/// A refresh token sealed under the token it replaced ([`RefreshToken::seal`]). Useless to
/// whoever does not hold that previous token, so a store may keep it as it is. `Debug`
/// redacts it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SealedToken([u8; 32]);

impl SealedToken {
    /// The sealed bytes, for stores.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Rebuilds a sealed token from the bytes a store kept.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The token sealed under `previous`. Under any other token the answer is 32 bytes
    /// unrelated to it; a store answers [`Rotation::Retried`] only to the holder of the
    /// right one (its hash is the rotation's old hash).
    #[must_use]
    pub fn open(&self, previous: &str) -> RefreshToken {
        let mut bytes = self.0;
        for (byte, pad) in bytes.iter_mut().zip(seal_pad(previous)) {
            *byte ^= pad;
        }
        RefreshToken(BASE64URL.encode(bytes))
    }
}

impl fmt::Debug for SealedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedToken(..)")
    }
}

/// What a rotation keeps for a refresh retry: the new token sealed under the old one, and
/// how long the old one may be presented again to get it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// The new token, sealed under the old one.
    pub sealed: SealedToken,
    /// Until when (Unix seconds) presenting the old token again is a retry.
    pub until: u64,
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(..)")
    }
}

/// SHA-256 of a refresh token: what a [`RefreshStore`] keeps instead of the token, so a leak of
/// the store leaks no usable token. (A 256-bit random token needs no salt or slow hash.)
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of a token as presented by a client (any text: unknown tokens hash too).
    #[must_use]
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// The raw 32 bytes (for stores that key by them).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

/// A refresh family: one login's session, shared by every token rotated from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshSession {
    /// The session id (the access tokens' `sid`).
    pub session_id: String,
    /// The user (`sub`).
    pub user_id: String,
    /// The client the session was granted to.
    pub client_id: String,
    /// The scopes granted at login; a refresh may narrow them for one access token, never widen.
    pub scopes: Vec<String>,
    /// When the login happened (Unix seconds).
    pub created_at: u64,
    /// The absolute end of the session (Unix seconds), whatever the refreshes.
    pub expires_at: u64,
}

/// The outcome of [`RefreshStore::rotate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The token was the family's current one; the new token replaces it.
    Rotated(RefreshSession),
    /// The token had already been rotated: someone replayed it. The whole family is now
    /// revoked (RFC 9700 §4.14.2); the session is returned so its `sid` can be denylisted.
    Reused(RefreshSession),
    /// The token was the one the family was last rotated away from, presented again before
    /// the [`Retry::until`] that rotation kept: a client retrying a refresh whose answer it
    /// lost. Nothing changed; the sealed successor is that rotation's new token (see
    /// [`SealedToken::open`]), and the family's current token is still that one.
    Retried(RefreshSession, SealedToken),
    /// Unknown, expired (idle or absolute) or revoked.
    Invalid,
}

/// Where refresh families live. Every method is atomic with respect to the others: of two
/// concurrent [`rotate`](RefreshStore::rotate) calls with one token, exactly one sees
/// [`Rotation::Rotated`].
pub trait RefreshStore: Send + Sync + 'static {
    /// Starts a family with its first token, valid until `idle_expires_at` unless rotated.
    fn create(
        &self,
        session: RefreshSession,
        token: TokenHash,
        idle_expires_at: u64,
    ) -> StoreFuture<()>;

    /// The live family whose *current* token this is (no change to the store).
    fn get(&self, token: &TokenHash, now: u64) -> StoreFuture<Option<RefreshSession>>;

    /// Replaces the family's current token `old` by `new` (valid until `idle_expires_at`,
    /// capped by the family's absolute expiry), keeping `retry` (or forgetting the previous
    /// rotation's, without one). A rotated `old` revokes the family, unless it is the one the
    /// family was last rotated away from and `now` is before that rotation's
    /// [`Retry::until`]: then nothing changes and the answer is [`Rotation::Retried`] with
    /// that rotation's sealed successor. Of two concurrent rotations with one token, one
    /// rotates and the other, when the first kept a retry, is that retry.
    fn rotate(
        &self,
        old: &TokenHash,
        new: TokenHash,
        now: u64,
        idle_expires_at: u64,
        retry: Option<Retry>,
    ) -> StoreFuture<Rotation>;

    /// The family of a token, current or already rotated (for RFC 7009 revocation).
    fn find_session(&self, token: &TokenHash) -> StoreFuture<Option<RefreshSession>>;

    /// Ends the family `session_id`; returns it if it was live.
    fn revoke_session(&self, session_id: &str) -> StoreFuture<Option<RefreshSession>>;

    /// Ends every family of `user_id` but the one whose session id is `except` (a password
    /// change keeps the session that made it); returns the ended ones.
    fn revoke_user(&self, user_id: &str, except: Option<&str>) -> StoreFuture<Vec<RefreshSession>>;

    /// Ends the oldest live families of `user_id` (by `created_at`) until at most `keep` are
    /// left, and returns the ones it ended; families already expired at `now` go without
    /// counting. The router calls it before each login with one less than its per-user
    /// session cap.
    fn end_oldest(&self, user_id: &str, keep: usize, now: u64) -> StoreFuture<Vec<RefreshSession>>;

    /// Whether the store can take a new family now. The router asks before it verifies a
    /// password, so that an unreachable (or full) store answers every login alike, with a
    /// 503, rather than only logins with the right password. The default answers `Ok`.
    fn ready(&self, now: u64) -> StoreFuture<()> {
        let _ = now;
        StoreFuture::ready(Ok(()))
    }
}

/// How many rotated tokens of one family the memory store remembers for reuse detection.
/// Older ones are forgotten (presenting one is then an unknown token: refused, without
/// revoking the family).
pub const REMEMBERED_ROTATIONS: usize = 64;

/// The default hard cap on live families of a [`MemoryRefreshStore`].
pub const DEFAULT_MAX_SESSIONS: usize = 1_000_000;

/// [`RefreshStore`] in process memory, for one instance. Expired families are swept on writes;
/// past the cap (after a sweep) new logins fail with a [`StoreError`].
pub struct MemoryRefreshStore {
    state: Mutex<Families>,
    max_sessions: usize,
}

#[derive(Default)]
struct Families {
    tokens: HashMap<TokenHash, String>,
    sessions: HashMap<String, Family>,
    by_user: HashMap<String, HashSet<String>>,
    writes: u64,
}

struct Family {
    session: RefreshSession,
    current: TokenHash,
    idle_expires_at: u64,
    rotated: VecDeque<TokenHash>,
    /// The last rotation's retry: the token it replaced, and what it kept.
    retry: Option<(TokenHash, Retry)>,
}

impl Families {
    fn remove(&mut self, session_id: &str) -> Option<RefreshSession> {
        let family = self.sessions.remove(session_id)?;
        self.tokens.remove(&family.current);
        for hash in &family.rotated {
            self.tokens.remove(hash);
        }
        if let Some(ids) = self.by_user.get_mut(&family.session.user_id) {
            ids.remove(session_id);
            if ids.is_empty() {
                self.by_user.remove(&family.session.user_id);
            }
        }
        Some(family.session)
    }

    fn sweep(&mut self, now: u64) {
        let dead: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, f)| f.idle_expires_at <= now || f.session.expires_at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in dead {
            self.remove(&id);
        }
    }

    fn live(&self, token: &TokenHash, now: u64) -> Option<(&Family, bool)> {
        let family = self.sessions.get(self.tokens.get(token)?)?;
        let alive = family.idle_expires_at > now && family.session.expires_at > now;
        alive.then_some((family, family.current == *token))
    }
}

impl MemoryRefreshStore {
    /// An empty store with [`DEFAULT_MAX_SESSIONS`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            state: Mutex::new(Families::default()),
            max_sessions: DEFAULT_MAX_SESSIONS,
        }
    }

    /// Caps the number of live families.
    #[must_use]
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max;
        self
    }

    /// Live families (expired ones not yet swept included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.families().sessions.len()
    }

    /// Whether the store holds no family.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn families(&self) -> std::sync::MutexGuard<'_, Families> {
        // Every operation leaves the maps consistent before it can panic (it cannot: no
        // user code runs under the lock), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryRefreshStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryRefreshStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRefreshStore")
            .field("sessions", &self.len())
            .field("max_sessions", &self.max_sessions)
            .finish()
    }
}

impl RefreshStore for MemoryRefreshStore {
    fn create(
        &self,
        session: RefreshSession,
        token: TokenHash,
        idle_expires_at: u64,
    ) -> StoreFuture<()> {
        let mut families = self.families();
        let now = session.created_at;
        families.writes += 1;
        if families.writes.is_multiple_of(1024) || families.sessions.len() >= self.max_sessions {
            families.sweep(now);
        }
        if families.sessions.len() >= self.max_sessions {
            return StoreFuture::ready(Err(StoreError::new("refresh store is full")));
        }
        if families.sessions.contains_key(&session.session_id)
            || families.tokens.contains_key(&token)
        {
            return StoreFuture::ready(Err(StoreError::new("duplicate session or token")));
        }
        let id = session.session_id.clone();
        families.tokens.insert(token, id.clone());
        families
            .by_user
            .entry(session.user_id.clone())
            .or_default()
            .insert(id.clone());
        families.sessions.insert(
            id,
            Family {
                idle_expires_at: idle_expires_at.min(session.expires_at),
                session,
                current: token,
                rotated: VecDeque::new(),
                retry: None,
            },
        );
        StoreFuture::ready(Ok(()))
    }

    fn get(&self, token: &TokenHash, now: u64) -> StoreFuture<Option<RefreshSession>> {
        let families = self.families();
        let session = families
            .live(token, now)
            .and_then(|(family, current)| current.then(|| family.session.clone()));
        StoreFuture::ready(Ok(session))
    }

    fn rotate(
        &self,
        old: &TokenHash,
        new: TokenHash,
        now: u64,
        idle_expires_at: u64,
        retry: Option<Retry>,
    ) -> StoreFuture<Rotation> {
        let mut families = self.families();
        let Some((family, current)) = families.live(old, now) else {
            return StoreFuture::ready(Ok(Rotation::Invalid));
        };
        let id = family.session.session_id.clone();
        if !current
            && let Some((previous, kept)) = family.retry
            && previous == *old
            && now < kept.until
        {
            let retried = Rotation::Retried(family.session.clone(), kept.sealed);
            return StoreFuture::ready(Ok(retried));
        }
        if !current {
            let session = families
                .remove(&id)
                .map_or(Rotation::Invalid, Rotation::Reused);
            return StoreFuture::ready(Ok(session));
        }
        if families.tokens.contains_key(&new) {
            return StoreFuture::ready(Err(StoreError::new("duplicate token")));
        }
        families.tokens.insert(new, id.clone());
        let Some(family) = families.sessions.get_mut(&id) else {
            return StoreFuture::ready(Ok(Rotation::Invalid));
        };
        family.rotated.push_back(family.current);
        family.retry = retry.map(|retry| (family.current, retry));
        family.current = new;
        family.idle_expires_at = idle_expires_at.min(family.session.expires_at);
        let forgotten = (family.rotated.len() > REMEMBERED_ROTATIONS)
            .then(|| family.rotated.pop_front())
            .flatten();
        let session = family.session.clone();
        if let Some(hash) = forgotten {
            families.tokens.remove(&hash);
        }
        StoreFuture::ready(Ok(Rotation::Rotated(session)))
    }

    fn find_session(&self, token: &TokenHash) -> StoreFuture<Option<RefreshSession>> {
        let families = self.families();
        let session = families
            .tokens
            .get(token)
            .and_then(|id| families.sessions.get(id))
            .map(|family| family.session.clone());
        StoreFuture::ready(Ok(session))
    }

    fn revoke_session(&self, session_id: &str) -> StoreFuture<Option<RefreshSession>> {
        StoreFuture::ready(Ok(self.families().remove(session_id)))
    }

    fn revoke_user(&self, user_id: &str, except: Option<&str>) -> StoreFuture<Vec<RefreshSession>> {
        let mut families = self.families();
        let ids: Vec<String> = families
            .by_user
            .get(user_id)
            .map(|ids| {
                ids.iter()
                    .filter(|id| Some(id.as_str()) != except)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let revoked = ids.iter().filter_map(|id| families.remove(id)).collect();
        StoreFuture::ready(Ok(revoked))
    }

    fn end_oldest(&self, user_id: &str, keep: usize, now: u64) -> StoreFuture<Vec<RefreshSession>> {
        let mut families = self.families();
        let Some(ids) = families.by_user.get(user_id) else {
            return StoreFuture::ready(Ok(Vec::new()));
        };
        let mut live = Vec::with_capacity(ids.len());
        let mut dead = Vec::new();
        for id in ids {
            match families.sessions.get(id) {
                Some(f) if f.idle_expires_at > now && f.session.expires_at > now => {
                    live.push((f.session.created_at, id.clone()));
                }
                _ => dead.push(id.clone()),
            }
        }
        for id in dead {
            families.remove(&id);
        }
        let excess = live.len().saturating_sub(keep);
        if excess == 0 {
            return StoreFuture::ready(Ok(Vec::new()));
        }
        live.sort_unstable();
        let ended = live[..excess]
            .iter()
            .filter_map(|(_, id)| families.remove(id))
            .collect();
        StoreFuture::ready(Ok(ended))
    }

    fn ready(&self, now: u64) -> StoreFuture<()> {
        let mut families = self.families();
        if families.sessions.len() >= self.max_sessions {
            families.sweep(now);
        }
        let full = families.sessions.len() >= self.max_sessions;
        StoreFuture::ready(if full {
            Err(StoreError::new("refresh store is full"))
        } else {
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, user: &str, created: u64, expires: u64) -> RefreshSession {
        RefreshSession {
            session_id: id.to_owned(),
            user_id: user.to_owned(),
            client_id: "web".to_owned(),
            scopes: vec!["items:read".to_owned()],
            created_at: created,
            expires_at: expires,
        }
    }

    fn ready<T>(future: StoreFuture<T>) -> T {
        future.into_ready().unwrap().unwrap()
    }

    fn hash(n: u8) -> TokenHash {
        TokenHash([n; 32])
    }

    #[test]
    fn a_sealed_token_opens_only_under_the_token_it_replaced() {
        let (previous, next) = (
            RefreshToken::generate().unwrap(),
            RefreshToken::generate().unwrap(),
        );
        let sealed = next.seal(previous.as_str());
        assert_eq!(sealed.open(previous.as_str()).as_str(), next.as_str());
        let other = RefreshToken::generate().unwrap();
        assert_ne!(sealed.open(other.as_str()).as_str(), next.as_str());
        // The sealed bytes are neither the token nor its hash, and differ per previous token.
        assert_ne!(BASE64URL.encode(sealed.as_bytes()), next.as_str());
        assert_ne!(sealed.as_bytes(), next.hash().as_bytes());
        assert_ne!(next.seal(other.as_str()), sealed);
        assert_eq!(SealedToken::from_bytes(*sealed.as_bytes()), sealed);
        assert_eq!(format!("{sealed:?}"), "SealedToken(..)");
    }

    #[test]
    fn the_oldest_families_of_a_user_end_past_the_cap() {
        let store = MemoryRefreshStore::new();
        for (n, created) in [(1u8, 300), (2, 100), (3, 200), (4, 400)] {
            let id = format!("s{n}");
            ready(store.create(session(&id, "u", created, 10_000), hash(n), 5_000));
        }
        ready(store.create(session("other", "v", 50, 10_000), hash(9), 5_000));
        // An expired family goes without counting.
        ready(store.create(session("dead", "u", 10, 10_000), hash(8), 150));
        assert!(ready(store.end_oldest("u", 4, 500)).is_empty());
        assert_eq!(store.len(), 5, "the expired family was swept");
        let ended: Vec<String> = ready(store.end_oldest("u", 2, 500))
            .into_iter()
            .map(|s| s.session_id)
            .collect();
        assert_eq!(ended, ["s2", "s3"]);
        assert!(ready(store.get(&hash(2), 500)).is_none());
        assert!(ready(store.get(&hash(1), 500)).is_some());
        assert!(
            ready(store.get(&hash(9), 500)).is_some(),
            "other users keep theirs"
        );
        assert_eq!(ready(store.end_oldest("u", 0, 500)).len(), 2);
        assert!(ready(store.end_oldest("nobody", 0, 500)).is_empty());
    }

    #[test]
    fn a_full_store_is_not_ready() {
        let store = MemoryRefreshStore::new().max_sessions(1);
        ready(store.ready(100));
        ready(store.create(session("a", "u", 100, 200), hash(1), 200));
        assert!(store.ready(150).into_ready().unwrap().is_err());
        // Expired families make room again.
        ready(store.ready(200));
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let a = RefreshToken::generate().unwrap();
        let b = RefreshToken::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 43);
        assert_eq!(a.hash(), TokenHash::of(a.as_str()));
        assert_ne!(a.hash(), b.hash());
        assert_eq!(format!("{a:?}"), "RefreshToken(..)");
        assert!(!format!("{:?}", a.hash()).contains(a.as_str()));
    }

    #[test]
    fn rotation_replaces_the_current_token_and_reuse_revokes_the_family() {
        let store = MemoryRefreshStore::new();
        ready(store.create(session("s", "u", 100, 10_000), hash(1), 1_000));
        assert_eq!(ready(store.get(&hash(1), 150)).unwrap().session_id, "s");
        let Rotation::Rotated(rotated) = ready(store.rotate(&hash(1), hash(2), 200, 1_200, None))
        else {
            panic!("rotated")
        };
        assert_eq!(rotated.session_id, "s");
        assert_eq!(ready(store.get(&hash(1), 200)), None, "no longer current");
        // Replaying the rotated token revokes the family: the current token dies too.
        assert!(matches!(
            ready(store.rotate(&hash(1), hash(3), 300, 1_300, None)),
            Rotation::Reused(s) if s.session_id == "s"
        ));
        assert_eq!(
            ready(store.rotate(&hash(2), hash(4), 300, 1_300, None)),
            Rotation::Invalid
        );
        assert!(store.is_empty());
    }

    #[test]
    fn idle_and_absolute_expiry_end_a_family() {
        let store = MemoryRefreshStore::new();
        ready(store.create(session("s", "u", 100, 2_000), hash(1), 500));
        assert_eq!(
            ready(store.rotate(&hash(1), hash(2), 500, 900, None)),
            Rotation::Invalid
        );
        ready(store.create(session("t", "u", 100, 2_000), hash(3), 500));
        assert!(matches!(
            ready(store.rotate(&hash(3), hash(4), 400, 2_500, None)),
            Rotation::Rotated(_)
        ));
        // The idle expiry of the new token is capped by the absolute one.
        assert!(ready(store.get(&hash(4), 1_999)).is_some());
        assert_eq!(ready(store.get(&hash(4), 2_000)), None);
        assert_eq!(
            ready(store.rotate(&hash(4), hash(5), 2_000, 3_000, None)),
            Rotation::Invalid
        );
    }

    #[test]
    fn revoking_a_session_or_a_user_ends_their_families() {
        let store = MemoryRefreshStore::new();
        ready(store.create(session("a", "u", 100, 9_000), hash(1), 5_000));
        ready(store.create(session("b", "u", 100, 9_000), hash(2), 5_000));
        ready(store.create(session("c", "v", 100, 9_000), hash(3), 5_000));
        assert_eq!(ready(store.find_session(&hash(1))).unwrap().session_id, "a");
        assert_eq!(ready(store.revoke_session("a")).unwrap().session_id, "a");
        assert_eq!(ready(store.revoke_session("a")), None);
        assert_eq!(
            ready(store.rotate(&hash(1), hash(9), 200, 5_000, None)),
            Rotation::Invalid
        );
        ready(store.create(session("d", "u", 100, 9_000), hash(4), 5_000));
        let kept: Vec<_> = ready(store.revoke_user("u", Some("d")))
            .into_iter()
            .map(|s| s.session_id)
            .collect();
        assert_eq!(kept, ["b"], "all but the one kept");
        assert!(ready(store.get(&hash(4), 200)).is_some());
        ready(store.create(session("b", "u", 100, 9_000), hash(2), 5_000));
        let mut revoked: Vec<_> = ready(store.revoke_user("u", None))
            .into_iter()
            .map(|s| s.session_id)
            .collect();
        revoked.sort();
        assert_eq!(revoked, ["b", "d"]);
        assert!(
            ready(store.get(&hash(3), 200)).is_some(),
            "other users keep theirs"
        );
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn rotated_tokens_are_remembered_up_to_the_bound() {
        let store = MemoryRefreshStore::new();
        ready(store.create(session("s", "u", 0, u64::MAX), TokenHash::of("0"), u64::MAX));
        let count = REMEMBERED_ROTATIONS + 5;
        for i in 0..count {
            let (old, new) = (
                TokenHash::of(&i.to_string()),
                TokenHash::of(&(i + 1).to_string()),
            );
            assert!(matches!(
                ready(store.rotate(&old, new, 1, u64::MAX, None)),
                Rotation::Rotated(_)
            ));
        }
        let families = store.families();
        assert_eq!(families.tokens.len(), REMEMBERED_ROTATIONS + 1);
        drop(families);
        // The oldest one is forgotten: refused, but it no longer revokes the family.
        assert_eq!(
            ready(store.rotate(&TokenHash::of("0"), hash(200), 2, u64::MAX, None)),
            Rotation::Invalid
        );
        let oldest_remembered = TokenHash::of(&(count - REMEMBERED_ROTATIONS).to_string());
        assert!(matches!(
            ready(store.rotate(&oldest_remembered, hash(201), 2, u64::MAX, None)),
            Rotation::Reused(_)
        ));
    }

    #[test]
    fn the_store_sweeps_expired_families_and_refuses_past_its_cap() {
        let store = MemoryRefreshStore::new().max_sessions(2);
        ready(store.create(session("a", "u", 100, 200), hash(1), 200));
        ready(store.create(session("b", "u", 100, 900), hash(2), 900));
        let full = store.create(session("c", "u", 150, 900), hash(3), 900);
        assert_eq!(
            full.into_ready().unwrap().unwrap_err().message(),
            "refresh store is full"
        );
        // At 300, family a has expired: swept to make room.
        ready(store.create(session("d", "u", 300, 900), hash(4), 900));
        assert_eq!(store.len(), 2);
        assert!(ready(store.find_session(&hash(1))).is_none());
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let store = MemoryRefreshStore::new();
        ready(store.create(session("a", "u", 100, 900), hash(1), 900));
        assert!(
            store
                .create(session("a", "u", 100, 900), hash(2), 900)
                .into_ready()
                .unwrap()
                .is_err()
        );
        assert!(
            store
                .create(session("b", "u", 100, 900), hash(1), 900)
                .into_ready()
                .unwrap()
                .is_err()
        );
    }
}
