//! The login rate-limit policy and its arithmetic, kept free of storage so every store (memory,
//! Redis) decides the same way.

use std::time::Duration;

use crate::error::ConfigError;

/// NIST SP 800-63B §5.2.2: no more than 100 consecutive failed attempts on one account.
pub const NIST_MAX_FAILURES: u32 = 100;

/// Every number of the login policy. [`LoginLimits::default`] is the documented policy:
///
/// - per (client, username): 5 free failures, then a backoff doubling from 1 s, capped at 15 min;
/// - per username, across clients: 20 free failures, then a backoff doubling from 1 s, capped at
///   5 min; at 100 consecutive failures the account is locked for 1 h;
/// - per client, across usernames: GCRA, 30 failures per minute with a burst of 10;
/// - per client, every password verification, successes included: GCRA, 60 a minute with a
///   burst of 20 (so that clients looping valid logins cannot keep the password hasher to
///   themselves);
/// - per client, every registration attempt whatever its outcome: GCRA, 10 an hour with a
///   burst of 5 (at that rate one client needs more than a year to fill a store of 100,000
///   users, and a taken name answers no faster than a free one).
///
/// Of a login, failures count on the failure rules; a success clears the (client, username)
/// counter and the username's consecutive-failure count, and is counted only on the
/// verification rate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginLimits {
    pub(crate) pair: Backoff,
    pub(crate) account: Backoff,
    pub(crate) lock_after: u32,
    pub(crate) lock_for: Duration,
    pub(crate) client_interval: Duration,
    pub(crate) client_burst: u32,
    pub(crate) verify: Rate,
    pub(crate) register: Rate,
    pub(crate) forget_after: Duration,
}

/// A GCRA rate: one event per `interval`, bursts of `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rate {
    pub(crate) interval: Duration,
    pub(crate) burst: u32,
}

impl Rate {
    fn new(events: u32, period: Duration, burst: u32) -> Result<Self, ConfigError> {
        if events == 0 || burst == 0 {
            return Err(ConfigError::InvalidSetting(
                "a client rate and its burst must be at least 1",
            ));
        }
        Ok(Self {
            interval: positive(period / events, "a client rate's period must be positive")?,
            burst,
        })
    }

    /// How far ahead of now the theoretical arrival time may be.
    pub(crate) fn tolerance(&self) -> Duration {
        self.interval * (self.burst - 1)
    }

    /// The wait before the next event, given the arrival time `tat_ms`.
    fn wait(&self, tat_ms: u64, now_ms: u64) -> Option<Duration> {
        wait(tat_ms.saturating_sub(ms(self.tolerance())), now_ms)
    }

    /// The arrival time after one event at `now_ms`.
    pub(crate) fn charge(&self, tat_ms: u64, now_ms: u64) -> u64 {
        tat_ms.max(now_ms).saturating_add(ms(self.interval))
    }

    /// The arrival time with one event given back; `None` once it has passed.
    pub(crate) fn refund(&self, tat_ms: u64, now_ms: u64) -> Option<u64> {
        Some(tat_ms.saturating_sub(ms(self.interval))).filter(|&tat| tat > now_ms)
    }
}

/// Free failures, then a delay doubling from `base`, capped at `cap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) free: u32,
    pub(crate) base: Duration,
    pub(crate) cap: Duration,
}

impl Backoff {
    /// How long after the latest of `failures` failures the next attempt must wait.
    pub(crate) fn delay(&self, failures: u32) -> Duration {
        if failures <= self.free {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free - 1).min(40);
        self.base
            .checked_mul(1u32 << doublings.min(31))
            .map_or(self.cap, |d| d.min(self.cap))
    }
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            pair: Backoff {
                free: 5,
                base: Duration::from_secs(1),
                cap: Duration::from_secs(15 * 60),
            },
            account: Backoff {
                free: 20,
                base: Duration::from_secs(1),
                cap: Duration::from_secs(5 * 60),
            },
            lock_after: NIST_MAX_FAILURES,
            lock_for: Duration::from_secs(3600),
            client_interval: Duration::from_secs(2),
            client_burst: 10,
            verify: Rate {
                interval: Duration::from_secs(1),
                burst: 20,
            },
            register: Rate {
                interval: Duration::from_secs(360),
                burst: 5,
            },
            forget_after: Duration::from_secs(24 * 3600),
        }
    }
}

fn positive(d: Duration, what: &'static str) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        Err(ConfigError::InvalidSetting(what))
    } else {
        Ok(d)
    }
}

impl LoginLimits {
    /// The (client, username) backoff: `free` failures, then `base` doubling up to `cap`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when `base` is zero, `cap < base`, or `cap` is longer
    /// than [`forget_after`](Self::forget_after).
    pub fn per_client_and_username(
        mut self,
        free: u32,
        base: Duration,
        cap: Duration,
    ) -> Result<Self, ConfigError> {
        self.pair = backoff(free, base, cap)?;
        self.outlived()
    }

    /// The username backoff across all clients.
    ///
    /// # Errors
    ///
    /// As [`LoginLimits::per_client_and_username`].
    pub fn per_username(
        mut self,
        free: u32,
        base: Duration,
        cap: Duration,
    ) -> Result<Self, ConfigError> {
        self.account = backoff(free, base, cap)?;
        self.outlived()
    }

    /// Locks an account for `duration` after `failures` consecutive failures.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when `failures` is 0 or above [`NIST_MAX_FAILURES`], or
    /// `duration` is zero or longer than [`forget_after`](Self::forget_after).
    pub fn lock_account(mut self, failures: u32, duration: Duration) -> Result<Self, ConfigError> {
        if failures == 0 || failures > NIST_MAX_FAILURES {
            return Err(ConfigError::InvalidSetting(
                "an account lock must come after 1 to 100 failures (NIST SP 800-63B)",
            ));
        }
        self.lock_after = failures;
        self.lock_for = positive(duration, "the account lock must last")?;
        self.outlived()
    }

    /// The per-client GCRA: `failures` per `period`, with bursts of `burst`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when a number is zero.
    pub fn per_client(
        mut self,
        failures: u32,
        period: Duration,
        burst: u32,
    ) -> Result<Self, ConfigError> {
        let rate = Rate::new(failures, period, burst)?;
        self.client_interval = rate.interval;
        self.client_burst = rate.burst;
        Ok(self)
    }

    /// The per-client GCRA on password verifications, successes included: `verifications` per
    /// `period`, with bursts of `burst` (default 60 a minute, bursts of 20).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when a number is zero.
    pub fn per_client_verifications(
        mut self,
        verifications: u32,
        period: Duration,
        burst: u32,
    ) -> Result<Self, ConfigError> {
        self.verify = Rate::new(verifications, period, burst)?;
        Ok(self)
    }

    /// The per-client GCRA on registration attempts, of any outcome: `attempts` per `period`,
    /// with bursts of `burst` (default 10 an hour, bursts of 5).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when a number is zero.
    pub fn per_client_registrations(
        mut self,
        attempts: u32,
        period: Duration,
        burst: u32,
    ) -> Result<Self, ConfigError> {
        self.register = Rate::new(attempts, period, burst)?;
        Ok(self)
    }

    /// How long failure counters are remembered after the last failure (default 24 h).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when shorter than the longest backoff or the lock.
    pub fn forget_after(mut self, after: Duration) -> Result<Self, ConfigError> {
        self.forget_after = after;
        self.outlived()
    }

    /// Whether the counters outlive the longest backoff and the lock, checked after every
    /// setter so that the order of the calls cannot matter.
    fn outlived(self) -> Result<Self, ConfigError> {
        let after = self.forget_after;
        if after < self.pair.cap || after < self.account.cap || after < self.lock_for {
            return Err(ConfigError::InvalidSetting(
                "counters must outlive the longest backoff and the account lock",
            ));
        }
        Ok(self)
    }

    /// The per-client failure rate.
    pub(crate) fn client(&self) -> Rate {
        Rate {
            interval: self.client_interval,
            burst: self.client_burst,
        }
    }
}

fn backoff(free: u32, base: Duration, cap: Duration) -> Result<Backoff, ConfigError> {
    if base.is_zero() || cap < base {
        return Err(ConfigError::InvalidSetting(
            "a backoff needs 0 < base <= cap",
        ));
    }
    Ok(Backoff { free, base, cap })
}

/// Which rule limited a login.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitReason {
    /// Too many failures for this username from this client.
    ClientAndUsername,
    /// Too many failures for this username from all clients.
    Username,
    /// The account is locked after too many consecutive failures.
    AccountLocked,
    /// Too many failures from this client across usernames.
    Client,
    /// Too many password verifications from this client, successes included.
    Verifications,
    /// Too many registration attempts from this client.
    Registrations,
}

impl LimitReason {
    /// A stable, lowercase reason code.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ClientAndUsername => "client_and_username",
            Self::Username => "username",
            Self::AccountLocked => "account_locked",
            Self::Client => "client",
            Self::Verifications => "verifications",
            Self::Registrations => "registrations",
        }
    }
}

/// What a [`LimiterStore`](super::LimiterStore) decided about a login attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The attempt may go ahead.
    Allow,
    /// The attempt is refused for `retry_after`.
    Limit {
        /// Why.
        reason: LimitReason,
        /// How long until an attempt could be allowed.
        retry_after: Duration,
    },
}

/// What the route a [`RateLimitLogin`](super::RateLimitLogin) guards does, which decides the
/// rules an attempt is counted on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// A token endpoint (or any login): a password grant is counted on the (client,
    /// username), username, client-failure and verification rules; a request without a
    /// username (a refresh grant, a revocation) on the client-failure rule alone. Only
    /// failures are kept, except on the verification rule. The default.
    #[default]
    Login,
    /// Registration: every attempt is counted on the client's registration rate and kept,
    /// whatever its outcome; the username in the body is not read (a registration attempt
    /// must never count against the account of that name).
    Registration,
}

/// A client's GCRA arrival times (Unix ms; 0 for none): failures, password verifications
/// and registrations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ClientRates {
    pub(crate) failures: u64,
    pub(crate) verifications: u64,
    pub(crate) registrations: u64,
}

impl ClientRates {
    /// When the record can be forgotten: once every arrival time has passed.
    pub(crate) fn expiry_ms(&self) -> u64 {
        self.failures
            .max(self.verifications)
            .max(self.registrations)
    }
}

/// One key's failure record (pair or account): consecutive failures, the time of the latest,
/// and (accounts) the end of a lock. Times are milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Failures {
    pub(crate) count: u32,
    pub(crate) last_ms: u64,
    pub(crate) locked_until_ms: u64,
}

/// What an allowed attempt writes: the failure records of the pair and of the account (a
/// password attempt only), and the client's rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Charged {
    pub(crate) failures: Option<(Failures, Failures)>,
    pub(crate) rates: ClientRates,
}

/// Which of a client's charges a settlement gives back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refund {
    /// The failure an attempt counted.
    Failure,
    /// The registration an attempt counted.
    Registration,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn wait(until_ms: u64, now_ms: u64) -> Option<Duration> {
    (until_ms > now_ms).then(|| Duration::from_millis(until_ms - now_ms))
}

/// The rest of a record's backoff. Within the free failures there is none, even when the
/// record's time is ahead of `now_ms` (another instance's clock, or a clock stepped back).
fn backoff_wait(record: Failures, backoff: Backoff, now_ms: u64) -> Option<Duration> {
    let delay = ms(backoff.delay(record.count));
    if delay == 0 {
        return None;
    }
    wait(record.last_ms.saturating_add(delay), now_ms)
}

impl LoginLimits {
    /// The decision for the records of an attempt. The longest wait wins.
    pub(crate) fn decide(
        &self,
        action: Action,
        pair: Failures,
        account: Failures,
        client: ClientRates,
        now_ms: u64,
    ) -> Decision {
        let none = || (LimitReason::Client, None);
        let candidates = match action {
            Action::Registration => [
                (
                    LimitReason::Registrations,
                    self.register.wait(client.registrations, now_ms),
                ),
                none(),
                none(),
                none(),
                none(),
            ],
            Action::Login => [
                (
                    LimitReason::AccountLocked,
                    wait(account.locked_until_ms, now_ms),
                ),
                (
                    LimitReason::ClientAndUsername,
                    backoff_wait(pair, self.pair, now_ms),
                ),
                (
                    LimitReason::Username,
                    backoff_wait(account, self.account, now_ms),
                ),
                (
                    LimitReason::Client,
                    self.client().wait(client.failures, now_ms),
                ),
                (
                    LimitReason::Verifications,
                    self.verify.wait(client.verifications, now_ms),
                ),
            ],
        };
        candidates
            .into_iter()
            .filter_map(|(reason, wait)| wait.map(|w| (reason, w)))
            .max_by_key(|&(_, wait)| wait)
            .map_or(Decision::Allow, |(reason, retry_after)| Decision::Limit {
                reason,
                retry_after,
            })
    }

    /// The decision for an attempt's records; only a password attempt (one with a username)
    /// is subject to the verification rate.
    pub(crate) fn decide_attempt(
        &self,
        action: Action,
        password: bool,
        pair: Failures,
        account: Failures,
        mut rates: ClientRates,
        now_ms: u64,
    ) -> Decision {
        if !password {
            rates.verifications = 0;
        }
        self.decide(action, pair, account, rates, now_ms)
    }

    /// An attempt on its (live) records: the decision and, when it is allowed, what every
    /// store writes back, atomically with the decision.
    pub(crate) fn charge_attempt(
        &self,
        action: Action,
        password: bool,
        pair: Failures,
        account: Failures,
        rates: ClientRates,
        now_ms: u64,
    ) -> (Decision, Option<Charged>) {
        let decision = self.decide_attempt(action, password, pair, account, rates, now_ms);
        if decision != Decision::Allow {
            return (decision, None);
        }
        let mut rates = rates;
        let failures = match (action, password) {
            (Action::Registration, _) => {
                rates.registrations = self.register.charge(rates.registrations, now_ms);
                None
            }
            (_, true) => {
                rates.failures = self.fail_client(rates.failures, now_ms);
                rates.verifications = self.verify.charge(rates.verifications, now_ms);
                Some((
                    self.fail(pair, now_ms, false),
                    self.fail(account, now_ms, true),
                ))
            }
            _ => {
                rates.failures = self.fail_client(rates.failures, now_ms);
                None
            }
        };
        (decision, Some(Charged { failures, rates }))
    }

    /// The client's rates with one charge given back (the verification charge never is);
    /// `None` when nothing is left to remember.
    pub(crate) fn refund_client(
        &self,
        mut rates: ClientRates,
        refund: Refund,
        now_ms: u64,
    ) -> Option<ClientRates> {
        let give_back = |tat: u64, rate: Rate| rate.refund(tat, now_ms).unwrap_or(0);
        match refund {
            Refund::Registration => {
                rates.registrations = give_back(rates.registrations, self.register);
            }
            Refund::Failure => rates.failures = give_back(rates.failures, self.client()),
        }
        (rates.expiry_ms() > now_ms).then_some(rates)
    }

    /// A failure of the pair or account record at `now_ms`.
    pub(crate) fn fail(&self, record: Failures, now_ms: u64, account: bool) -> Failures {
        let count = record.count.saturating_add(1);
        let locked_until_ms =
            if account && count >= self.lock_after && count.is_multiple_of(self.lock_after) {
                now_ms.saturating_add(ms(self.lock_for))
            } else {
                record.locked_until_ms
            };
        Failures {
            count,
            last_ms: now_ms,
            locked_until_ms,
        }
    }

    /// The client's GCRA arrival time after a failure at `now_ms`.
    pub(crate) fn fail_client(&self, tat_ms: u64, now_ms: u64) -> u64 {
        self.client().charge(tat_ms, now_ms)
    }

    /// The pair or account record with one failure, counted when an attempt was allowed,
    /// given back (the attempt ended neither way). `None` when nothing is left to remember.
    ///
    /// Failures are interchangeable, so the one given back need not be the one that set a
    /// lock: when the count leaves a multiple of the lock threshold, the lock it set goes too
    /// (an earlier lock had ended before any attempt of this run could be allowed). The time
    /// of the latest failure stays: the refunded attempt did happen then.
    pub(crate) fn refund(&self, record: Failures, account: bool) -> Option<Failures> {
        let crossed = account && record.count >= self.lock_after;
        let unlock = crossed && record.count.is_multiple_of(self.lock_after);
        let refunded = Failures {
            count: record.count.saturating_sub(1),
            last_ms: record.last_ms,
            locked_until_ms: if unlock { 0 } else { record.locked_until_ms },
        };
        (refunded.count > 0 || refunded.locked_until_ms > 0).then_some(refunded)
    }

    /// When a record can be forgotten.
    pub(crate) fn expiry_ms(&self, record: Failures) -> u64 {
        record
            .last_ms
            .saturating_add(ms(self.forget_after))
            .max(record.locked_until_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1000;

    /// A login's decision with the client's failure arrival time `tat`.
    fn decide(
        limits: &LoginLimits,
        pair: Failures,
        account: Failures,
        tat: u64,
        now: u64,
    ) -> Decision {
        let client = ClientRates {
            failures: tat,
            ..ClientRates::default()
        };
        limits.decide(Action::Login, pair, account, client, now)
    }

    #[test]
    fn verifications_are_limited_per_client_successes_included() {
        let limits = LoginLimits::default();
        let now = 1_000 * S;
        let mut client = ClientRates::default();
        for i in 0..20 {
            let decision = limits.decide(
                Action::Login,
                Failures::default(),
                Failures::default(),
                client,
                now,
            );
            assert_eq!(decision, Decision::Allow, "burst verification {i}");
            client.verifications = limits.verify.charge(client.verifications, now);
        }
        let decision = limits.decide(
            Action::Login,
            Failures::default(),
            Failures::default(),
            client,
            now,
        );
        assert_eq!(limited(decision), Some((LimitReason::Verifications, S)));
        // Registrations are a rule of their own: a client out of verifications may register.
        let decision = limits.decide(
            Action::Registration,
            Failures::default(),
            Failures::default(),
            client,
            now,
        );
        assert_eq!(decision, Decision::Allow);
        assert_eq!(
            limits.verify.refund(client.verifications, now),
            Some(now + 20 * S - S)
        );
    }

    #[test]
    fn registrations_are_limited_per_client_and_nothing_else_applies() {
        let limits = LoginLimits::default();
        let now = 1_000 * S;
        let locked = Failures {
            count: 100,
            last_ms: now,
            locked_until_ms: now + 3600 * S,
        };
        let mut client = ClientRates {
            failures: now + 3600 * S,
            verifications: now + 3600 * S,
            registrations: 0,
        };
        for i in 0..5 {
            let decision = limits.decide(Action::Registration, locked, locked, client, now);
            assert_eq!(decision, Decision::Allow, "burst registration {i}");
            client.registrations = limits.register.charge(client.registrations, now);
        }
        let decision = limits.decide(Action::Registration, locked, locked, client, now);
        assert_eq!(
            limited(decision),
            Some((LimitReason::Registrations, 360 * S))
        );
        assert_eq!(client.expiry_ms(), now + 3600 * S);
    }

    fn limited(decision: Decision) -> Option<(LimitReason, u64)> {
        match decision {
            Decision::Allow => None,
            Decision::Limit {
                reason,
                retry_after,
            } => Some((reason, u64::try_from(retry_after.as_millis()).unwrap())),
        }
    }

    #[test]
    fn backoff_is_free_then_doubles_to_its_cap() {
        let limits = LoginLimits::default();
        let delays: Vec<u64> = (0..=16).map(|n| limits.pair.delay(n).as_secs()).collect();
        assert_eq!(
            delays,
            [0, 0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900]
        );
        assert_eq!(limits.pair.delay(u32::MAX), Duration::from_secs(900));
        assert_eq!(limits.account.delay(20), Duration::ZERO);
        assert_eq!(limits.account.delay(21), Duration::from_secs(1));
        assert_eq!(limits.account.delay(40), Duration::from_secs(300));
    }

    #[test]
    fn the_pair_is_limited_after_its_free_failures() {
        let limits = LoginLimits::default();
        let mut pair = Failures::default();
        let now = 1_000 * S;
        for _ in 0..5 {
            assert_eq!(
                decide(&limits, pair, Failures::default(), 0, now),
                Decision::Allow
            );
            pair = limits.fail(pair, now, false);
        }
        // Five failures are free; the sixth attempt is still allowed...
        assert_eq!(
            decide(&limits, pair, Failures::default(), 0, now),
            Decision::Allow
        );
        pair = limits.fail(pair, now, false);
        // ...and after it the next waits 1 s, then 2 s.
        assert_eq!(
            limited(decide(&limits, pair, Failures::default(), 0, now)),
            Some((LimitReason::ClientAndUsername, S))
        );
        assert_eq!(
            decide(&limits, pair, Failures::default(), 0, now + S),
            Decision::Allow
        );
        pair = limits.fail(pair, now + S, false);
        assert_eq!(
            limited(decide(&limits, pair, Failures::default(), 0, now + S + 500)),
            Some((LimitReason::ClientAndUsername, 1500))
        );
    }

    #[test]
    fn the_account_locks_at_a_hundred_consecutive_failures() {
        let limits = LoginLimits::default();
        let mut account = Failures::default();
        let mut now = 0;
        for _ in 0..99 {
            account = limits.fail(account, now, true);
            now += 10 * 60 * S; // past any backoff
        }
        assert_eq!(account.locked_until_ms, 0);
        assert_eq!(
            decide(&limits, Failures::default(), account, 0, now),
            Decision::Allow
        );
        account = limits.fail(account, now, true);
        assert_eq!(
            limited(decide(
                &limits,
                Failures::default(),
                account,
                0,
                now + 10 * 60 * S
            )),
            Some((LimitReason::AccountLocked, 50 * 60 * S))
        );
        assert_eq!(
            decide(&limits, Failures::default(), account, 0, now + 3600 * S),
            Decision::Allow
        );
        assert!(limits.expiry_ms(account) >= now + 3600 * S);
    }

    #[test]
    fn the_client_gcra_allows_a_burst_then_the_rate() {
        let limits = LoginLimits::default();
        let mut tat = 0;
        let now = 1_000 * S;
        for i in 0..10 {
            assert_eq!(
                decide(&limits, Failures::default(), Failures::default(), tat, now),
                Decision::Allow,
                "burst failure {i}"
            );
            tat = limits.fail_client(tat, now);
        }
        assert_eq!(
            limited(decide(
                &limits,
                Failures::default(),
                Failures::default(),
                tat,
                now
            )),
            Some((LimitReason::Client, 2 * S))
        );
        // One more failure allowed every 2 s: 30 a minute.
        assert_eq!(
            decide(
                &limits,
                Failures::default(),
                Failures::default(),
                tat,
                now + 2 * S
            ),
            Decision::Allow
        );
    }

    #[test]
    fn a_refund_undoes_exactly_one_failure() {
        let limits = LoginLimits::default();
        let now = 1_000 * S;
        let mut account = Failures::default();
        for _ in 0..99 {
            account = limits.fail(account, now, true);
        }
        // One more failure locks the account; giving it back lifts the lock.
        let locked = limits.fail(account, now, true);
        assert!(locked.locked_until_ms > now);
        assert_eq!(limits.refund(locked, true), Some(account));
        // Below the threshold a refund keeps any lock (there is none) and the time.
        let refunded = limits.refund(account, true).unwrap();
        assert_eq!((refunded.count, refunded.last_ms), (98, now));
        // A pair record never locks; count 100 is not special for it.
        let pair = Failures {
            count: 100,
            last_ms: now,
            locked_until_ms: 0,
        };
        assert_eq!(limits.refund(pair, false).unwrap().count, 99);
        // The last failure given back leaves nothing to remember.
        assert_eq!(
            limits.refund(limits.fail(Failures::default(), now, false), false),
            None
        );
        // A lock set at 200 goes at 199; a lock that outlives its count (100 -> 101) stays.
        let at_101 = Failures {
            count: 101,
            last_ms: now,
            locked_until_ms: now + 3600 * S,
        };
        assert_eq!(
            limits.refund(at_101, true).unwrap().locked_until_ms,
            now + 3600 * S
        );
        let at_200 = Failures {
            count: 200,
            ..at_101
        };
        assert_eq!(limits.refund(at_200, true).unwrap().locked_until_ms, 0);
    }

    #[test]
    fn a_clock_behind_the_records_never_limits_within_the_free_failures() {
        let limits = LoginLimits::default();
        let ahead = 1_000 * S;
        let pair = limits.fail(Failures::default(), ahead, false);
        let account = limits.fail(Failures::default(), ahead, true);
        // Another instance, a second behind, sees the failure "in the future": one of five
        // free ones, so no wait.
        assert_eq!(
            decide(&limits, pair, account, 0, ahead - S),
            Decision::Allow
        );
        // Past the free failures the backoff runs from the record's time, as before.
        let mut pair = pair;
        for _ in 0..5 {
            pair = limits.fail(pair, ahead, false);
        }
        assert_eq!(
            limited(decide(&limits, pair, Failures::default(), 0, ahead - S)),
            Some((LimitReason::ClientAndUsername, 2 * S))
        );
    }

    #[test]
    fn every_setter_keeps_the_counters_outliving_the_waits_whatever_the_order() {
        let hour = Duration::from_secs(3600);
        let short = LoginLimits::default()
            .per_client_and_username(5, Duration::from_secs(1), Duration::from_secs(60))
            .unwrap()
            .per_username(20, Duration::from_secs(1), Duration::from_secs(60))
            .unwrap()
            .lock_account(100, Duration::from_secs(60))
            .unwrap()
            .forget_after(hour)
            .unwrap();
        assert!(
            short
                .clone()
                .per_client_and_username(0, 2 * hour, 2 * hour)
                .is_err()
        );
        assert!(short.clone().per_username(0, 2 * hour, 2 * hour).is_err());
        assert!(short.clone().lock_account(100, 2 * hour).is_err());
        assert!(short.lock_account(100, hour).is_ok());
    }

    #[test]
    fn a_client_refund_gives_back_one_interval() {
        let limits = LoginLimits::default();
        let now = 1_000 * S;
        let tat = limits.fail_client(limits.fail_client(0, now), now);
        assert_eq!(tat, now + 4 * S);
        assert_eq!(limits.client().refund(tat, now), Some(now + 2 * S));
        assert_eq!(limits.client().refund(now + 2 * S, now), None);
        assert_eq!(limits.client().refund(0, now), None);
    }

    #[test]
    fn the_longest_wait_wins() {
        let limits = LoginLimits::default();
        let pair = Failures {
            count: 7,
            last_ms: 0,
            locked_until_ms: 0,
        };
        let account = Failures {
            count: 100,
            last_ms: 0,
            locked_until_ms: 3600 * S,
        };
        assert_eq!(
            limited(decide(&limits, pair, account, 0, 0)),
            Some((LimitReason::AccountLocked, 3600 * S))
        );
    }

    #[test]
    fn settings_are_validated() {
        let limits = LoginLimits::default();
        assert!(
            limits
                .clone()
                .lock_account(101, Duration::from_secs(1))
                .is_err()
        );
        assert!(
            limits
                .clone()
                .lock_account(0, Duration::from_secs(1))
                .is_err()
        );
        assert!(limits.clone().lock_account(50, Duration::ZERO).is_err());
        assert!(
            limits
                .clone()
                .per_client(0, Duration::from_secs(60), 1)
                .is_err()
        );
        assert!(
            limits
                .clone()
                .per_client(30, Duration::from_secs(60), 0)
                .is_err()
        );
        assert!(
            limits
                .clone()
                .per_username(1, Duration::from_secs(2), Duration::from_secs(1))
                .is_err()
        );
        assert!(
            limits
                .clone()
                .forget_after(Duration::from_secs(60))
                .is_err()
        );
        let custom = limits
            .per_client(60, Duration::from_secs(60), 5)
            .unwrap()
            .lock_account(10, Duration::from_secs(60))
            .unwrap();
        assert_eq!(custom.client_interval, Duration::from_secs(1));
        assert_eq!(custom.client().tolerance(), Duration::from_secs(4));
    }
}
