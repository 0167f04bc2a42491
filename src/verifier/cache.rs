//! The opt-in verification cache ([`VerifierBuilder::cache`](super::VerifierBuilder::cache)):
//! the claims of tokens that verified, kept by their exact bytes, so a token presented again
//! skips the signature check, the costly step of an asymmetric verification.
//!
//! ```
//! use std::time::{SystemTime, UNIX_EPOCH};
//! use tower_jwt_auth::{Algorithm, ErrorKind, KeySet, TokenSigner, Verifier};
//!
//! let pem = std::fs::read("tests/data/keys/ed25519.pkcs8.pem")?;
//! let keys = KeySet::from_jwks(&std::fs::read_to_string("tests/data/keys/public.jwks")?)?;
//! let verifier = Verifier::builder(keys)
//!     .issuer("https://issuer.example")
//!     .audience("api")
//!     .cache(10_000)?
//!     .build()?;
//!
//! let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
//! let token = TokenSigner::from_pem(Algorithm::EdDSA, &pem)?.with_kid("ed-1").sign(&serde_json::json!({
//!     "iss": "https://issuer.example", "aud": "api", "sub": "bob", "jti": "1",
//!     "iat": now, "exp": now + 300,
//! }))?;
//! let first = verifier.verify(&token)?; // verified in full, then remembered
//! let again = verifier.verify(&token)?; // the same bytes: no signature check
//! assert_eq!(first, again);
//! let stats = verifier.cache_stats().expect("the cache is on");
//! assert_eq!((stats.hits(), stats.misses(), stats.entries()), (1, 1, 1));
//!
//! // One byte changed is another token, verified in full (and refused).
//! let mut forged = token.clone().into_bytes();
//! let inside_signature = forged.len() - 10;
//! forged[inside_signature] = if forged[inside_signature] == b'A' { b'B' } else { b'A' };
//! let forged = String::from_utf8(forged)?;
//! assert_eq!(verifier.verify(&forged).unwrap_err().kind(), ErrorKind::InvalidSignature);
//! assert_eq!(verifier.cache_stats().map(|stats| stats.entries()), Some(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The rules, each with a test of its own:
//! - **Only verified tokens go in**, and only those with an `exp` still ahead. A forged token
//!   never enters, so an attacker cannot fill the cache without valid tokens.
//! - **A hit compares the whole token.** Entries are found by a keyed hash of the token's
//!   bytes (SipHash, keys random per cache), then the stored token is compared byte for byte
//!   with the presented one: two tokens with the same hash are two tokens, and the second is
//!   verified in full. No collision can lend one token's claims to another.
//! - **A hit re-checks the claims**: `exp`, `nbf` and `iat` against the clock now (with the
//!   leeway), and the issuer, audience and required claims, exactly as a full verification
//!   would. The revocation check, which the layer runs after the verifier, runs on every
//!   request, hit or not.
//! - **Entries end at `exp`.** From then on the token is verified in full (within the leeway it
//!   may still pass, and is not stored again).
//! - **Entries belong to one key set.** Each remembers the key set it verified with; when the
//!   key source moves to another set (a `RemoteJwks` refresh that
//!   changed the document), the whole cache is dropped on the next lookup and nothing verified
//!   with the old keys can hit again.
//! - **Bounded by entries.** At most `capacity` tokens (each held with its parsed claims); when
//!   a shard is full, entries past their `exp` are swept, and failing that one entry is evicted.
//!   Memory is therefore bounded by `capacity × (max token length + claims)`.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::claims::Claims;
use crate::telemetry::{RESULT, VERIFICATION_CACHE_TOTAL, count};

/// The largest capacity a verification cache accepts (about 16.7 million entries).
pub const MAX_CACHE_CAPACITY: usize = 1 << 24;

/// Shards, each behind its own lock, so that threads verifying different tokens rarely wait
/// on one another (a power of two; fewer for small capacities).
const MAX_SHARDS: usize = 16;

/// A full shard sweeps out expired entries at most this often (seconds of the verifier's
/// clock); between sweeps, a full shard evicts one entry per insertion.
const SWEEP_INTERVAL_SECS: f64 = 1.0;

/// What the cache saw since it was built, from
/// [`Verifier::cache_stats`](crate::Verifier::cache_stats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheStats {
    hits: u64,
    misses: u64,
    entries: usize,
    capacity: usize,
}

impl CacheStats {
    /// Lookups that found the token (whatever the re-check of its claims then said).
    #[must_use]
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Lookups that did not: a token not seen, past its `exp`, or verified with other keys.
    #[must_use]
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Tokens held now.
    #[must_use]
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// The most tokens it will hold.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// The cache of one verifier policy.
pub(crate) struct VerifyCache {
    shards: Box<[Mutex<Shard>]>,
    /// Entries per shard.
    shard_capacity: usize,
    capacity: usize,
    hash_keys: RandomState,
    /// Replaced in tests to make every token collide.
    hash: fn(&RandomState, &[u8]) -> u64,
    /// The key set the entries were verified with (0: none yet; key-set ids start at 1).
    keys: AtomicU64,
}

#[derive(Default)]
struct Shard {
    /// By the token's hash; the entry holds the token itself for the full comparison.
    entries: HashMap<u64, Entry, BuildHasherDefault<PassThrough>>,
    last_sweep: f64,
    hits: u64,
    misses: u64,
}

struct Entry {
    token: Box<[u8]>,
    keys: u64,
    exp: f64,
    claims: Claims,
}

/// The map's keys are already SipHash outputs: use them as they are.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is ever called (the key is a `u64`); fold anything else in anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn sip(keys: &RandomState, token: &[u8]) -> u64 {
    keys.hash_one(token)
}

impl VerifyCache {
    /// `capacity` has been checked against `1..=MAX_CACHE_CAPACITY` by the builder.
    pub(crate) fn new(capacity: usize) -> Self {
        // A power of two, with at least 64 entries each where the capacity allows it.
        let shards = 1usize << (capacity / 64).clamp(1, MAX_SHARDS).ilog2();
        Self {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            shard_capacity: (capacity / shards).max(1),
            capacity,
            hash_keys: RandomState::new(),
            hash: sip,
            keys: AtomicU64::new(0),
        }
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, Shard> {
        // The high bits pick the shard; the map uses the low ones. A panic cannot leave a
        // shard half-updated (every update is one map operation), so a poisoned lock is used.
        let index = (hash >> 32) as usize & (self.shards.len() - 1);
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The claims stored for exactly this token, verified with the key set `keys`, if its
    /// `exp` is still ahead of `now`.
    pub(crate) fn lookup(&self, token: &[u8], keys: u64, now: f64) -> Option<Claims> {
        self.follow_keys(keys);
        let hash = (self.hash)(&self.hash_keys, token);
        let mut shard = self.shard(hash);
        // The byte comparison is not constant-time, and need not be: it only runs when the
        // presented token's 64-bit keyed hash equals a stored token's, which an attacker
        // without the (random, per cache) SipHash keys cannot arrange.
        let found = match shard.entries.get(&hash) {
            Some(entry) if *entry.token == *token && entry.keys == keys => {
                if now < entry.exp {
                    Some(entry.claims.clone())
                } else {
                    shard.entries.remove(&hash);
                    None
                }
            }
            _ => None,
        };
        match found {
            Some(_) => shard.hits += 1,
            None => shard.misses += 1,
        }
        drop(shard);
        if found.is_some() {
            count!(VERIFICATION_CACHE_TOTAL, RESULT => "hit");
        } else {
            count!(VERIFICATION_CACHE_TOTAL, RESULT => "miss");
        }
        found
    }

    /// Remembers a token that has just verified with the key set `keys`; tokens without an
    /// `exp`, or past it, are not stored.
    pub(crate) fn insert(&self, token: &[u8], keys: u64, claims: &Claims, now: f64) {
        let Some(exp) = claims.expires_at().map(|exp| exp.as_secs_f64()) else {
            return;
        };
        if now >= exp || self.keys.load(Ordering::Acquire) != keys {
            return;
        }
        let hash = (self.hash)(&self.hash_keys, token);
        let mut shard = self.shard(hash);
        if shard.entries.len() >= self.shard_capacity && !shard.entries.contains_key(&hash) {
            if now - shard.last_sweep >= SWEEP_INTERVAL_SECS || now < shard.last_sweep {
                shard.entries.retain(|_, entry| now < entry.exp);
                shard.last_sweep = now;
            }
            if shard.entries.len() >= self.shard_capacity {
                // The first occupied bucket: an arbitrary entry, as the hashes are keyed.
                if let Some(&victim) = shard.entries.keys().next() {
                    shard.entries.remove(&victim);
                }
            }
        }
        shard.entries.insert(
            hash,
            Entry {
                token: token.into(),
                keys,
                exp,
                claims: claims.clone(),
            },
        );
    }

    /// Drops every entry when the key source has moved to another key set.
    fn follow_keys(&self, keys: u64) {
        let current = self.keys.load(Ordering::Acquire);
        if current == keys {
            return;
        }
        if self
            .keys
            .compare_exchange(current, keys, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            for shard in &self.shards {
                shard
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entries
                    .clear();
            }
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let mut stats = CacheStats {
            hits: 0,
            misses: 0,
            entries: 0,
            capacity: self.capacity,
        };
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            stats.hits += shard.hits;
            stats.misses += shard.misses;
            stats.entries += shard.entries.len();
        }
        stats
    }

    #[cfg(test)]
    fn colliding(capacity: usize) -> Self {
        Self {
            hash: |_, _| 7,
            ..Self::new(capacity)
        }
    }
}

impl fmt::Debug for VerifyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the tokens.
        f.debug_struct("VerifyCache")
            .field("capacity", &self.capacity)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{Mapping, NumericDate, Parsed};

    fn claims(exp: Option<f64>) -> Claims {
        let mut parsed = Parsed::from_json(br#"{"sub":"a"}"#, &Mapping::default()).unwrap();
        parsed.core.exp = exp.and_then(NumericDate::from_secs_f64);
        Claims::from_parsed(parsed)
    }

    #[test]
    fn a_hit_needs_the_same_bytes_even_when_hashes_collide() {
        let cache = VerifyCache::colliding(8);
        cache.lookup(b"a.b.c", 1, 0.0);
        cache.insert(b"a.b.c", 1, &claims(Some(100.0)), 10.0);
        assert!(cache.lookup(b"a.b.c", 1, 10.0).is_some());
        // Same hash, other bytes: a miss, never the stored claims.
        assert!(cache.lookup(b"a.b.d", 1, 10.0).is_none());
        assert!(cache.lookup(b"a.b.c ", 1, 10.0).is_none());
        assert!(cache.lookup(b"a.b.", 1, 10.0).is_none());
        // The later token takes the slot; the earlier one is then a miss.
        cache.insert(b"a.b.d", 1, &claims(Some(100.0)), 10.0);
        assert!(cache.lookup(b"a.b.c", 1, 10.0).is_none());
        assert!(cache.lookup(b"a.b.d", 1, 10.0).is_some());
        let stats = cache.stats();
        assert_eq!((stats.hits(), stats.misses(), stats.entries()), (2, 5, 1));
    }

    #[test]
    fn entries_end_at_exp() {
        let cache = VerifyCache::new(8);
        cache.lookup(b"t", 1, 0.0);
        cache.insert(b"t", 1, &claims(Some(100.5)), 10.0);
        assert!(cache.lookup(b"t", 1, 100.4).is_some());
        assert!(cache.lookup(b"t", 1, 100.5).is_none());
        assert_eq!(
            cache.stats().entries(),
            0,
            "an expired entry is dropped when met"
        );
        // Past its exp, or without one, a token is not stored.
        cache.insert(b"t", 1, &claims(Some(100.5)), 100.5);
        cache.insert(b"u", 1, &claims(None), 10.0);
        assert_eq!(cache.stats().entries(), 0);
    }

    #[test]
    fn another_key_set_drops_everything() {
        let cache = VerifyCache::new(256);
        cache.lookup(b"x", 1, 0.0);
        for i in 0..100u32 {
            cache.insert(&i.to_be_bytes(), 1, &claims(Some(100.0)), 0.0);
        }
        assert_eq!(cache.stats().entries(), 100);
        assert!(cache.lookup(&7u32.to_be_bytes(), 2, 0.0).is_none());
        assert_eq!(cache.stats().entries(), 0);
        // A late insertion from a verification with the old keys is not kept.
        cache.insert(&7u32.to_be_bytes(), 1, &claims(Some(100.0)), 0.0);
        assert_eq!(cache.stats().entries(), 0);
        cache.insert(&7u32.to_be_bytes(), 2, &claims(Some(100.0)), 0.0);
        assert!(cache.lookup(&7u32.to_be_bytes(), 2, 0.0).is_some());
        // An entry verified with other keys never hits, even if it were still there.
        assert!(cache.lookup(&7u32.to_be_bytes(), 3, 0.0).is_none());
    }

    #[test]
    fn the_entry_count_is_bounded() {
        for capacity in [1, 2, 3, 63, 64, 65, 1000, 4096] {
            let cache = VerifyCache::new(capacity);
            cache.lookup(b"", 1, 0.0);
            for i in 0..(capacity as u32 * 3 + 50) {
                cache.insert(&i.to_be_bytes(), 1, &claims(Some(1e9)), 0.0);
                assert!(cache.stats().entries() <= capacity, "capacity {capacity}");
            }
            // Full of live entries it still takes new tokens (evicting others).
            let newest = (capacity as u32 * 3 + 49).to_be_bytes();
            assert!(
                cache.lookup(&newest, 1, 0.0).is_some(),
                "capacity {capacity}"
            );
        }
    }

    #[test]
    fn a_full_shard_sweeps_expired_entries_first() {
        let cache = VerifyCache::new(4);
        cache.lookup(b"", 1, 0.0);
        cache.insert(b"live", 1, &claims(Some(1e9)), 0.0);
        for i in 0..3u8 {
            cache.insert(&[i], 1, &claims(Some(5.0)), 0.0);
        }
        assert_eq!(cache.stats().entries(), 4);
        // At 10 s the three short-lived entries are expired: the sweep, not an eviction, makes
        // room, so the long-lived one survives.
        cache.insert(b"new", 1, &claims(Some(1e9)), 10.0);
        assert_eq!(cache.stats().entries(), 2);
        assert!(cache.lookup(b"live", 1, 10.0).is_some());
        assert!(cache.lookup(b"new", 1, 10.0).is_some());
    }
}
