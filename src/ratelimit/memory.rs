//! [`MemoryLimiterStore`]: the limiter's counters in process memory, sharded, with expiry and a
//! hard cap on entries.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use super::limits::{Decision, Failures, LoginLimits};
use super::{LimiterStore, LoginKey};
use crate::store::StoreFuture;

const SHARDS: usize = 16;

/// The default hard cap on entries (pairs, usernames and clients together).
pub const DEFAULT_MAX_ENTRIES: usize = 200_000;

/// How many entries an eviction looks at to pick the one that expires first.
const EVICTION_SAMPLE: usize = 16;

/// [`LimiterStore`] in process memory, for one instance.
///
/// Entries expire with what they hold (a failure record [`forget_after`] its last failure, a
/// client's rate record when its GCRA time has passed) and are swept from a shard when it
/// fills. The total is capped ([`DEFAULT_MAX_ENTRIES`]); when a shard is full of live entries,
/// the one of a small random sample that expires first is evicted. An attacker who controls
/// enough distinct clients to cycle the whole table could so reset someone's counters; the
/// per-client rate limit makes that cost one address per 30 failures a minute.
///
/// [`forget_after`]: LoginLimits::forget_after
pub struct MemoryLimiterStore {
    limits: LoginLimits,
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    per_shard: usize,
}

#[derive(Default)]
struct Shard {
    pairs: HashMap<(IpAddr, Box<str>), Failures>,
    accounts: HashMap<Box<str>, Failures>,
    clients: HashMap<IpAddr, u64>,
}

impl Shard {
    fn len(&self) -> usize {
        self.pairs.len() + self.accounts.len() + self.clients.len()
    }

    fn sweep(&mut self, limits: &LoginLimits, now_ms: u64) {
        self.pairs.retain(|_, f| limits.expiry_ms(*f) > now_ms);
        self.accounts.retain(|_, f| limits.expiry_ms(*f) > now_ms);
        self.clients.retain(|_, tat| *tat > now_ms);
    }

    /// Makes room for one entry. At the cap: sweep, then evict down to 7/8 of the cap (so the
    /// sweep runs once per cap/8 new entries, not on every one), each time the entry of a small
    /// sample that expires first. Only the chosen entry's key is cloned.
    fn make_room(&mut self, limits: &LoginLimits, now_ms: u64, cap: usize) {
        if self.len() < cap {
            return;
        }
        self.sweep(limits, now_ms);
        let target = cap - cap / 8 - 1;
        while self.len() > target {
            let pair = self
                .pairs
                .iter()
                .take(EVICTION_SAMPLE)
                .min_by_key(|(_, f)| limits.expiry_ms(**f))
                .map(|(k, f)| (limits.expiry_ms(*f), k));
            let account = self
                .accounts
                .iter()
                .take(EVICTION_SAMPLE)
                .min_by_key(|(_, f)| limits.expiry_ms(**f))
                .map(|(k, f)| (limits.expiry_ms(*f), k));
            let client = self
                .clients
                .iter()
                .take(EVICTION_SAMPLE)
                .min_by_key(|(_, tat)| **tat)
                .map(|(k, tat)| (*tat, *k));
            let at = |entry: Option<u64>| entry.unwrap_or(u64::MAX);
            let (p, a, c) = (
                at(pair.map(|e| e.0)),
                at(account.map(|e| e.0)),
                at(client.map(|e| e.0)),
            );
            let victim = if pair.is_some() && p <= a && p <= c {
                pair.map(|(_, k)| Victim::Pair(k.clone()))
            } else if account.is_some() && a <= c {
                account.map(|(_, k)| Victim::Account(k.clone()))
            } else {
                client.map(|(_, k)| Victim::Client(k))
            };
            match victim {
                Some(Victim::Pair(key)) => self.pairs.remove(&key).map(drop),
                Some(Victim::Account(key)) => self.accounts.remove(&key).map(drop),
                Some(Victim::Client(key)) => self.clients.remove(&key).map(drop),
                None => return,
            };
        }
    }
}

/// An entry chosen for eviction.
enum Victim {
    Pair((IpAddr, Box<str>)),
    Account(Box<str>),
    Client(IpAddr),
}

impl MemoryLimiterStore {
    /// An empty store deciding with `limits`, capped at [`DEFAULT_MAX_ENTRIES`].
    #[must_use]
    pub fn new(limits: LoginLimits) -> Self {
        Self::with_max_entries(limits, DEFAULT_MAX_ENTRIES)
    }

    /// An empty store capped at `max_entries` (at least one per shard).
    #[must_use]
    pub fn with_max_entries(limits: LoginLimits, max_entries: usize) -> Self {
        Self {
            limits,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            per_shard: max_entries.div_ceil(SHARDS).max(1),
        }
    }

    /// Entries held now (expired ones not yet swept included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Whether the store holds nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cap on entries.
    #[must_use]
    pub fn max_entries(&self) -> usize {
        self.per_shard * SHARDS
    }

    fn shard(&self, key: &impl Hash) -> &Mutex<Shard> {
        let index = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        &self.shards[index]
    }
}

fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    // Each update is one insert or remove; a panic elsewhere cannot leave a shard half-written.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for MemoryLimiterStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLimiterStore")
            .field("limits", &self.limits)
            .field("len", &self.len())
            .field("max_entries", &self.max_entries())
            .finish()
    }
}

impl LimiterStore for MemoryLimiterStore {
    fn check(&self, key: &LoginKey<'_>, now_ms: u64) -> StoreFuture<Decision> {
        // One shard lock at a time: two keys may share a shard, and holding one guard while
        // taking another would deadlock.
        let (pair, account) = match key.username {
            Some(username) => {
                let pair = lock(self.shard(&(key.client, username)))
                    .pairs
                    .get(&(key.client, Box::<str>::from(username)))
                    .copied()
                    .unwrap_or_default();
                let account = lock(self.shard(&username))
                    .accounts
                    .get(username)
                    .copied()
                    .unwrap_or_default();
                (pair, account)
            }
            None => Default::default(),
        };
        let tat = lock(self.shard(&key.client))
            .clients
            .get(&key.client)
            .copied()
            .unwrap_or_default();
        StoreFuture::ready(Ok(self.limits.decide(pair, account, tat, now_ms)))
    }

    fn record_failure(&self, key: &LoginKey<'_>, now_ms: u64) -> StoreFuture<()> {
        let limits = &self.limits;
        let cap = self.per_shard;
        if let Some(username) = key.username {
            {
                let mut shard = lock(self.shard(&(key.client, username)));
                let pair_key = (key.client, Box::<str>::from(username));
                let old = shard.pairs.get(&pair_key).copied();
                if old.is_none() {
                    shard.make_room(limits, now_ms, cap);
                }
                let new = limits.fail(old.unwrap_or_default(), now_ms, false);
                shard.pairs.insert(pair_key, new);
            }
            let mut shard = lock(self.shard(&username));
            let old = shard.accounts.get(username).copied();
            if old.is_none() {
                shard.make_room(limits, now_ms, cap);
            }
            let new = limits.fail(old.unwrap_or_default(), now_ms, true);
            shard.accounts.insert(username.into(), new);
        }
        let mut shard = lock(self.shard(&key.client));
        let old = shard.clients.get(&key.client).copied();
        if old.is_none() {
            shard.make_room(limits, now_ms, cap);
        }
        let tat = limits.fail_client(old.unwrap_or_default(), now_ms);
        shard.clients.insert(key.client, tat);
        StoreFuture::ready(Ok(()))
    }

    fn record_success(&self, key: &LoginKey<'_>, _now_ms: u64) -> StoreFuture<()> {
        if let Some(username) = key.username {
            lock(self.shard(&(key.client, username)))
                .pairs
                .remove(&(key.client, Box::<str>::from(username)));
            // A success ends the username's run of consecutive failures: the password was
            // right, so the failures were not this account's owner being locked out.
            lock(self.shard(&username)).accounts.remove(username);
        }
        StoreFuture::ready(Ok(()))
    }
}
