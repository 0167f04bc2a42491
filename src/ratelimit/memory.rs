//! [`MemoryLimiterStore`]: the limiter's counters in process memory, sharded, with expiry and a
//! hard cap on entries.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::limits::{Action, ClientRates, Decision, Failures, LoginLimits, Refund};
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
    clients: HashMap<IpAddr, ClientRates>,
}

impl Shard {
    fn len(&self) -> usize {
        self.pairs.len() + self.accounts.len() + self.clients.len()
    }

    fn sweep(&mut self, limits: &LoginLimits, now_ms: u64) {
        self.pairs.retain(|_, f| limits.expiry_ms(*f) > now_ms);
        self.accounts.retain(|_, f| limits.expiry_ms(*f) > now_ms);
        self.clients.retain(|_, rates| rates.expiry_ms() > now_ms);
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
                .min_by_key(|(_, rates)| rates.expiry_ms())
                .map(|(k, rates)| (rates.expiry_ms(), *k));
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

    fn index(&self, key: &impl Hash) -> usize {
        usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0)
    }

    fn shard(&self, key: &impl Hash) -> &Mutex<Shard> {
        &self.shards[self.index(key)]
    }

    /// Locks the shards of an attempt's records (pair, account, client) together, in index
    /// order so that two attempts can never each hold a shard the other waits for.
    fn lock_records(&self, key: &LoginKey<'_>) -> Records<'_> {
        let client = self.index(&key.client);
        let (pair, account) = key.username.map_or((client, client), |username| {
            (self.index(&(key.client, username)), self.index(&username))
        });
        let mut order = [pair, account, client];
        order.sort_unstable();
        let mut guards: [Option<(usize, MutexGuard<'_, Shard>)>; 3] = [None, None, None];
        for (slot, index) in order.into_iter().enumerate() {
            if slot == 0 || order[slot - 1] != index {
                guards[slot] = Some((index, lock(&self.shards[index])));
            }
        }
        Records {
            guards,
            pair,
            account,
            client,
        }
    }
}

/// The locked shards of one attempt.
struct Records<'a> {
    guards: [Option<(usize, MutexGuard<'a, Shard>)>; 3],
    pair: usize,
    account: usize,
    client: usize,
}

impl Records<'_> {
    fn shard(&mut self, index: usize) -> &mut Shard {
        self.guards
            .iter_mut()
            .flatten()
            .find(|(i, _)| *i == index)
            .map(|(_, guard)| &mut **guard)
            .unwrap_or_else(|| unreachable!("every shard of the attempt is locked"))
    }
}

fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    // Each update is one insert or remove; a panic elsewhere cannot leave a shard half-written.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for MemoryLimiterStore {
    /// An empty store with [`LoginLimits::default`].
    fn default() -> Self {
        Self::new(LoginLimits::default())
    }
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

impl MemoryLimiterStore {
    /// Inserts `record` under `key`, making room first when the key is new.
    fn put<K: Hash + Eq, V>(
        &self,
        map: fn(&mut Shard) -> &mut HashMap<K, V>,
        shard: &mut Shard,
        key: K,
        value: V,
        now_ms: u64,
    ) {
        if !map(shard).contains_key(&key) {
            shard.make_room(&self.limits, now_ms, self.per_shard);
        }
        map(shard).insert(key, value);
    }
}

impl LimiterStore for MemoryLimiterStore {
    fn check(&self, key: &LoginKey<'_>, now_ms: u64) -> StoreFuture<Decision> {
        // One shard lock at a time: a look that counts nothing needs no common instant.
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
        let rates = lock(self.shard(&key.client))
            .clients
            .get(&key.client)
            .copied()
            .unwrap_or_default();
        StoreFuture::ready(Ok(self.decide(key, pair, account, rates, now_ms)))
    }

    fn attempt(&self, key: &LoginKey<'_>, now_ms: u64) -> StoreFuture<Decision> {
        let limits = &self.limits;
        let mut records = self.lock_records(key);
        let (pair_shard, account_shard, client_shard) =
            (records.pair, records.account, records.client);
        let pair_key = key
            .username
            .map(|username| (key.client, Box::<str>::from(username)));
        // A record past its expiry but not yet swept counts as none, as in Redis.
        let live = |record: &Failures| limits.expiry_ms(*record) > now_ms;
        let pair = pair_key
            .as_ref()
            .and_then(|k| records.shard(pair_shard).pairs.get(k).copied())
            .filter(live)
            .unwrap_or_default();
        let account = key
            .username
            .and_then(|u| records.shard(account_shard).accounts.get(u).copied())
            .filter(live)
            .unwrap_or_default();
        let rates = records
            .shard(client_shard)
            .clients
            .get(&key.client)
            .copied()
            .unwrap_or_default();
        let (decision, charged) = limits.charge_attempt(
            key.action,
            key.username.is_some(),
            pair,
            account,
            rates,
            now_ms,
        );
        let Some(charged) = charged else {
            return StoreFuture::ready(Ok(decision));
        };
        if let (Some((pair, account)), Some(pair_key), Some(username)) =
            (charged.failures, pair_key, key.username)
        {
            self.put(
                |s| &mut s.pairs,
                records.shard(pair_shard),
                pair_key,
                pair,
                now_ms,
            );
            let shard = records.shard(account_shard);
            self.put(|s| &mut s.accounts, shard, username.into(), account, now_ms);
        }
        self.put(
            |s| &mut s.clients,
            records.shard(client_shard),
            key.client,
            charged.rates,
            now_ms,
        );
        StoreFuture::ready(Ok(decision))
    }

    fn succeeded(&self, key: &LoginKey<'_>, now_ms: u64) -> StoreFuture<()> {
        if key.action == Action::Registration {
            // Every registration attempt is kept, whatever its outcome.
            return StoreFuture::ready(Ok(()));
        }
        if let Some(username) = key.username {
            lock(self.shard(&(key.client, username)))
                .pairs
                .remove(&(key.client, Box::<str>::from(username)));
            // A success ends the username's run of consecutive failures: the password was
            // right, so the failures were not this account's owner being locked out.
            lock(self.shard(&username)).accounts.remove(username);
        }
        // The verification stays counted: a success is a verification too.
        self.refund_client(key.client, now_ms, Refund::Failure);
        StoreFuture::ready(Ok(()))
    }

    fn refund(&self, key: &LoginKey<'_>, now_ms: u64) -> StoreFuture<()> {
        let limits = &self.limits;
        if key.action == Action::Registration {
            self.refund_client(key.client, now_ms, Refund::Registration);
            return StoreFuture::ready(Ok(()));
        }
        if let Some(username) = key.username {
            let pair_key = (key.client, Box::<str>::from(username));
            let mut shard = lock(self.shard(&pair_key));
            if let Some(&record) = shard.pairs.get(&pair_key) {
                match limits.refund(record, false) {
                    Some(refunded) => shard.pairs.insert(pair_key, refunded),
                    None => shard.pairs.remove(&pair_key),
                };
            }
            drop(shard);
            let mut shard = lock(self.shard(&username));
            if let Some(&record) = shard.accounts.get(username) {
                match limits.refund(record, true) {
                    Some(refunded) => shard.accounts.insert(username.into(), refunded),
                    None => shard.accounts.remove(username),
                };
            }
        }
        // The verification stays counted: the password check was asked for, and a client
        // whose attempts keep failing for want of capacity must not keep its budget whole.
        self.refund_client(key.client, now_ms, Refund::Failure);
        StoreFuture::ready(Ok(()))
    }

    fn limits(&self) -> Option<&LoginLimits> {
        Some(&self.limits)
    }
}

impl MemoryLimiterStore {
    /// The policy's decision (see [`LoginLimits::decide_attempt`]).
    fn decide(
        &self,
        key: &LoginKey<'_>,
        pair: Failures,
        account: Failures,
        rates: ClientRates,
        now_ms: u64,
    ) -> Decision {
        let password = key.username.is_some();
        self.limits
            .decide_attempt(key.action, password, pair, account, rates, now_ms)
    }

    fn refund_client(&self, client: IpAddr, now_ms: u64, refund: Refund) {
        let mut shard = lock(self.shard(&client));
        let Some(&rates) = shard.clients.get(&client) else {
            return;
        };
        match self.limits.refund_client(rates, refund, now_ms) {
            Some(rates) => shard.clients.insert(client, rates),
            None => shard.clients.remove(&client),
        };
    }
}
