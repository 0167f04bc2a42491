//! How hard each client has pushed lately: a decaying count of each client's calls, shared by
//! the login limiter (which records the attempts it refuses) and the password hasher's fair
//! admission (which records every call, admitted or refused, and weighs clients by the count).
//! A client looping logins, or retrying refusals at once, at the limiter or at the hasher, so
//! weighs more than a client logging in now and then, whatever its share of the hasher's
//! places looks like at that instant.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Who calls: a client address (or IPv6 network), or `None` for calls made for no client.
pub(crate) type Party = Option<IpAddr>;

/// How fast a client's calls stop counting: their weight halves in this time.
pub(crate) const HALF_LIFE: Duration = Duration::from_secs(3);

/// The most clients remembered; past it the lightest is forgotten, which can only make it
/// lighter (an attacker cycling addresses gains nothing it did not have as a new client).
pub(crate) const MAX_TRACKED: usize = 4096;

/// The decaying call counts.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    counts: Mutex<HashMap<Party, (f64, Instant)>>,
}

fn decayed(weight: f64, since: Instant, now: Instant) -> f64 {
    let halvings = now.saturating_duration_since(since).as_secs_f64() / HALF_LIFE.as_secs_f64();
    weight * 0.5f64.powf(halvings)
}

impl Ledger {
    /// The party's recent calls at `now` (read by the password hasher's admission, which the
    /// limiter alone does not have).
    #[cfg_attr(not(feature = "router"), allow(dead_code))]
    pub(crate) fn weight(&self, party: Party, now: Instant) -> f64 {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts
            .get(&party)
            .map_or(0.0, |&(weight, at)| decayed(weight, at, now))
    }

    /// Counts one call of `party` at `now`.
    pub(crate) fn record(&self, party: Party, now: Instant) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let weight = counts
            .get(&party)
            .map_or(0.0, |&(weight, at)| decayed(weight, at, now));
        if counts.len() >= MAX_TRACKED && !counts.contains_key(&party) {
            let lightest = counts
                .iter()
                .map(|(&p, &(w, at))| (p, decayed(w, at, now)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(p, _)| p);
            if let Some(lightest) = lightest {
                counts.remove(&lightest);
            }
        }
        counts.insert(party, (weight + 1.0, now));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(n: u128) -> Party {
        Some(IpAddr::from(std::net::Ipv6Addr::from(n)))
    }

    #[test]
    fn weights_decay_and_the_lightest_party_is_forgotten_first() {
        let ledger = Ledger::default();
        let start = Instant::now();
        for _ in 0..8 {
            ledger.record(party(0), start);
        }
        assert!((ledger.weight(party(0), start) - 8.0).abs() < 1e-9);
        assert!((ledger.weight(party(0), start + HALF_LIFE) - 4.0).abs() < 1e-9);
        assert_eq!(ledger.weight(party(1), start), 0.0);
        for n in 1..=MAX_TRACKED as u128 {
            ledger.record(party(n), start);
        }
        assert_eq!(ledger.len(), MAX_TRACKED);
        assert!(
            ledger.weight(party(0), start) > 7.0,
            "the heavy party is kept"
        );
    }
}
