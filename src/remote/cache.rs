//! The cache behind [`RemoteJwks`](super::RemoteJwks): the keys in service behind an atomic
//! pointer (readers never lock), and the fetch control behind a mutex that only fetch
//! decisions take, never across an `.await`.
//!
//! A fetch always runs in a task of its own, so no request that waits for it can cancel it.
//! Exactly one runs at a time; everyone who needs it subscribes to the count of finished
//! fetches and wakes when it moves.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::Uri;
use tokio::runtime::Handle;
use tokio::sync::{Notify, watch};

use super::client::{Discovery, HttpClient, discover};
use super::{FetchError, RemoteStatus, lifetime};
use crate::algorithm::Algorithm;
use crate::error::{AuthError, ErrorKind};
use crate::jws;
use crate::keys::KeySet;
use crate::pass::{Attempt, KeyWait, Pass};
use crate::telemetry::{JWKS_FETCHES_TOTAL, RESULT, TARGET_REMOTE, count};

/// `kid`s longer than this never start a fetch (real ones are a few dozen bytes).
const MAX_KID_LEN: usize = 256;
/// `kid`s remembered as absent, at most.
const NEGATIVE_CAPACITY: usize = 1024;
/// First retry after a failed fetch; doubles per failure up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);
/// The refresher wakes at least this often to read the (possibly injected) clock again.
const MAX_NAP: Duration = Duration::from_secs(3600);
const MIN_NAP: Duration = Duration::from_millis(100);

/// Where the keys are.
#[derive(Clone, Debug)]
pub(super) enum Location {
    Jwks(Uri),
    Discovery(Discovery),
}

#[derive(Clone, Debug)]
pub(super) struct Settings {
    pub(super) min_ttl: Duration,
    pub(super) max_ttl: Duration,
    pub(super) cooldown: Duration,
    pub(super) max_stale: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) timeout: Duration,
    pub(super) max_response_size: usize,
    pub(super) rsa_default: Option<Algorithm>,
}

type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Why a fetch starts. Scheduled and requested ones read the issuer's metadata again; the
/// others reuse the `jwks_uri` already discovered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    Scheduled,
    Requested,
    UnknownKid,
    NoKeys,
}

/// A key set in service and its times.
struct Snapshot {
    keys: KeySet,
    fetched_at: Instant,
    expires_at: Instant,
    /// When to fetch again: three quarters through the lifetime, or after a failed refresh
    /// the retry time.
    refresh_at: Instant,
    /// The end of stale-if-error: `expires_at` plus the maximum staleness.
    serve_until: Instant,
}

#[derive(Default)]
struct Control {
    in_flight: bool,
    last_started: Option<Instant>,
    failures: u32,
    /// While there are no usable keys: no fetch on demand before this.
    retry_at: Option<Instant>,
    last_error: Option<FetchError>,
    /// From the last discovery.
    jwks_uri: Option<Uri>,
    /// The body the keys in service were parsed from.
    last_body: Option<Bytes>,
    absent: AbsentKids,
    fetches: u64,
}

/// `kid`s a finished fetch did not find, until when they count as absent. Bounded: when full
/// of live entries, new ones are not remembered (the cooldown still bounds the fetches).
#[derive(Default)]
struct AbsentKids(HashMap<Box<str>, Instant>);

impl AbsentKids {
    fn contains(&self, kid: &str, now: Instant) -> bool {
        self.0.get(kid).is_some_and(|until| now < *until)
    }

    fn insert(&mut self, kid: String, now: Instant, until: Instant) {
        if self.0.len() >= NEGATIVE_CAPACITY {
            self.0.retain(|_, live_until| now < *live_until);
        }
        if self.0.len() < NEGATIVE_CAPACITY {
            self.0.insert(kid.into_boxed_str(), until);
        }
    }
}

/// The background refresher's handle: wakes it (to exit), and whether it runs.
#[derive(Default)]
struct Refresher {
    wake: Notify,
    running: AtomicBool,
}

pub(super) struct Shared {
    location: Location,
    settings: Settings,
    client: HttpClient,
    clock: Option<Clock>,
    current: ArcSwapOption<Snapshot>,
    control: Mutex<Control>,
    /// The number of finished fetches; waiters wake when it moves.
    finished: watch::Sender<u64>,
    /// Mirrors `Control::in_flight` for the read path, which must not lock to learn it.
    fetching: AtomicBool,
    refresher: Arc<Refresher>,
}

/// What a finished fetch has to say in the logs.
enum Report {
    Loaded {
        kids: Vec<Option<String>>,
        lifetime: Duration,
    },
    Failed {
        error: FetchError,
        failures: u32,
        serving: bool,
    },
}

/// What a successful fetch produced.
struct Fresh {
    keys: KeySet,
    body: Bytes,
    lifetime: Duration,
    changed: bool,
}

impl Shared {
    pub(super) fn new(
        location: Location,
        settings: Settings,
        client: HttpClient,
        clock: Option<Clock>,
    ) -> Arc<Self> {
        Arc::new(Self {
            location,
            settings,
            client,
            clock,
            current: ArcSwapOption::empty(),
            control: Mutex::new(Control::default()),
            finished: watch::Sender::new(0),
            fetching: AtomicBool::new(false),
            refresher: Arc::default(),
        })
    }

    fn now(&self) -> Instant {
        match &self.clock {
            Some(clock) => clock(),
            None => Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        // Nothing panics while holding the lock; recover rather than propagate all the same.
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn discovered_issuer(&self) -> Option<&str> {
        match &self.location {
            Location::Discovery(discovery) => Some(&discovery.issuer),
            Location::Jwks(_) => None,
        }
    }

    pub(super) fn usable_keys(&self) -> Option<KeySet> {
        let now = self.now();
        self.current
            .load()
            .as_deref()
            .filter(|snapshot| now < snapshot.serve_until)
            .map(|snapshot| snapshot.keys.clone())
    }

    pub(super) fn status(&self) -> RemoteStatus {
        let now = self.now();
        let snapshot = self.current.load_full();
        let control = self.lock();
        RemoteStatus {
            keys: snapshot
                .as_ref()
                .filter(|s| now < s.serve_until)
                .map(|s| s.keys.clone()),
            fetched_at: snapshot.as_ref().map(|s| s.fetched_at),
            expires_at: snapshot.as_ref().map(|s| s.expires_at),
            serve_until: snapshot.as_ref().map(|s| s.serve_until),
            last_error: control.last_error.clone(),
            failures: control.failures,
            fetches: control.fetches,
            fetching: control.in_flight,
        }
    }

    /// The read path: verify with the keys in service, and decide about fetching only when
    /// that cannot answer (no usable keys, an unknown `kid`) or the keys are due for refresh.
    pub(super) fn with_keys<T>(
        self: &Arc<Self>,
        token: &[u8],
        pass: Pass,
        verify: impl FnOnce(&KeySet) -> Result<T, AuthError>,
    ) -> Attempt<T> {
        let now = self.now();
        let current = self.current.load();
        match current.as_deref() {
            Some(snapshot) if now < snapshot.serve_until => {
                if now >= snapshot.refresh_at && !self.fetching.load(Ordering::Relaxed) {
                    self.refresh_due(now);
                }
                let result = verify(&snapshot.keys);
                drop(current);
                if let Err(error) = &result
                    && error.kind() == ErrorKind::UnknownKey
                    && let Some(wait) = self.unknown_kid(token, now, pass)
                {
                    return Attempt::Wait(wait);
                }
                Attempt::Done(result)
            }
            _ => {
                drop(current);
                match self.no_keys(now, pass) {
                    Some(wait) => Attempt::Wait(wait),
                    None => Attempt::Done(Err(AuthError::new(ErrorKind::Unavailable))),
                }
            }
        }
    }

    /// The keys are due: start the refresh unless one runs (no one waits for it).
    fn refresh_due(self: &Arc<Self>, now: Instant) {
        let _no_one_waits = self.fetch_if(now, Why::Scheduled, |_| true);
    }

    /// A token's `kid` is not in the keys: a fetch to wait for, if one runs or may start.
    fn unknown_kid(self: &Arc<Self>, token: &[u8], now: Instant, pass: Pass) -> Option<KeyWait> {
        let kid = jws::unverified_kid(token, MAX_KID_LEN)?;
        {
            let mut control = self.lock();
            if control.absent.contains(&kid, now) {
                return None;
            }
            if pass == Pass::AfterFetch {
                // The fetch this token waited for did not bring its key.
                let until = now + self.settings.cooldown;
                control.absent.insert(kid, now, until);
                return None;
            }
        }
        let cooldown = self.settings.cooldown;
        let receiver = self.fetch_if(now, Why::UnknownKid, |control| {
            control
                .last_started
                .is_none_or(|started| now >= started + cooldown)
        })?;
        (pass == Pass::MayWait).then(|| wait_for(receiver))
    }

    /// No usable keys: a fetch to wait for, unless the last one failed and its retry time has
    /// not come (then the answer is "unavailable" at once).
    fn no_keys(self: &Arc<Self>, now: Instant, pass: Pass) -> Option<KeyWait> {
        if pass == Pass::AfterFetch {
            return None;
        }
        let receiver = self.fetch_if(now, Why::NoKeys, |control| {
            control.retry_at.is_none_or(|retry| now >= retry)
        })?;
        (pass == Pass::MayWait).then(|| wait_for(receiver))
    }

    /// The fetch to wait for: the one under way, or a new one when `may_start` allows (it
    /// sees the control, under the lock). `None`: none runs and none may start, or there is
    /// no tokio runtime on this thread. The receiver is subscribed before the fetch can
    /// finish, so it sees that fetch finish.
    fn fetch_if(
        self: &Arc<Self>,
        now: Instant,
        why: Why,
        may_start: impl FnOnce(&Control) -> bool,
    ) -> Option<watch::Receiver<u64>> {
        let (runtime, receiver) = {
            let mut control = self.lock();
            if control.in_flight {
                return Some(self.finished.subscribe());
            }
            if !may_start(&control) {
                return None;
            }
            let runtime = Handle::try_current().ok()?;
            control.in_flight = true;
            control.last_started = Some(now);
            self.fetching.store(true, Ordering::Relaxed);
            (runtime, self.finished.subscribe())
        };
        // Spawned after unlocking: a runtime that is shutting down drops the task at once,
        // and a dropped fetch records its failure, which takes the lock.
        let flight = Flight {
            shared: Arc::clone(self),
            done: false,
        };
        runtime.spawn(flight.run(why));
        if !self.refresher.running.swap(true, Ordering::AcqRel) {
            let running = Running(Arc::clone(&self.refresher));
            runtime.spawn(refresh_loop(Arc::downgrade(self), running));
        }
        Some(receiver)
    }

    pub(super) async fn refresh(self: &Arc<Self>) -> Result<(), FetchError> {
        let receiver = self
            .fetch_if(self.now(), Why::Requested, |_| true)
            .ok_or(FetchError::NoRuntime)?;
        wait_for(receiver).await;
        match &self.lock().last_error {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    /// Discovery (when configured and due), then the JWKS.
    async fn fetch(&self, why: Why) -> Result<Fresh, FetchError> {
        let jwks_uri = match &self.location {
            Location::Jwks(uri) => uri.clone(),
            Location::Discovery(discovery) => {
                let known = match why {
                    Why::Scheduled | Why::Requested => None,
                    Why::UnknownKid | Why::NoKeys => self.lock().jwks_uri.clone(),
                };
                match known {
                    Some(uri) => uri,
                    None => {
                        let uri = discover(&self.client, discovery).await?;
                        self.lock().jwks_uri = Some(uri.clone());
                        uri
                    }
                }
            }
        };
        let fetched = self.client.get(&jwks_uri).await?;
        let lifetime = lifetime::lifetime(
            &fetched.headers,
            self.settings.min_ttl,
            self.settings.max_ttl,
        );
        // The same bytes as the keys in service: keep those (their verifiers are built and
        // every thread's caches stay warm).
        let same = self.lock().last_body.as_ref() == Some(&fetched.body);
        if same && let Some(current) = self.current.load_full() {
            return Ok(Fresh {
                keys: current.keys.clone(),
                body: fetched.body,
                lifetime,
                changed: false,
            });
        }
        let keys = self.parse(&fetched.body)?;
        Ok(Fresh {
            keys,
            body: fetched.body,
            lifetime,
            changed: true,
        })
    }

    fn parse(&self, body: &[u8]) -> Result<KeySet, FetchError> {
        let invalid = |err: crate::error::ConfigError| FetchError::InvalidDocument(err.to_string());
        let mut builder = KeySet::builder();
        if let Some(alg) = self.settings.rsa_default {
            builder = builder.default_rsa_algorithm(alg).map_err(invalid)?;
        }
        let keys = builder.issuer_jwks(body).map_err(invalid)?.build();
        let keys = keys.map_err(|_| {
            FetchError::InvalidDocument("jwks has no usable verification key".to_owned())
        })?;
        for skipped in keys.skipped() {
            tracing::debug!(target: TARGET_REMOTE, kid = ?skipped.kid(), reason = skipped.reason(), "jwks key skipped");
        }
        Ok(keys)
    }

    /// Records a finished fetch and wakes its waiters, all under the lock, so that no one can
    /// subscribe between the bookkeeping and the wake-up and take it for their own fetch's.
    fn finish(&self, outcome: Result<Fresh, FetchError>) {
        let now = self.now();
        let report = {
            let mut control = self.lock();
            control.in_flight = false;
            control.fetches += 1;
            let report = match outcome {
                Ok(fresh) => {
                    let report = fresh.changed.then(|| Report::Loaded {
                        kids: fresh
                            .keys
                            .keys()
                            .map(|(kid, _)| kid.map(str::to_owned))
                            .collect(),
                        lifetime: fresh.lifetime,
                    });
                    if fresh.changed {
                        control.absent = AbsentKids::default();
                    }
                    let expires_at = now + fresh.lifetime;
                    self.current.store(Some(Arc::new(Snapshot {
                        refresh_at: now + fresh.lifetime * 3 / 4,
                        serve_until: expires_at + self.settings.max_stale,
                        keys: fresh.keys,
                        fetched_at: now,
                        expires_at,
                    })));
                    control.last_body = Some(fresh.body);
                    control.failures = 0;
                    control.retry_at = None;
                    control.last_error = None;
                    report
                }
                Err(error) => {
                    control.failures = control.failures.saturating_add(1);
                    let retry_at = now + retry_delay(control.failures);
                    control.retry_at = Some(retry_at);
                    // Keep the last good keys in service; requests stop asking for a refresh
                    // until the retry time.
                    let current = self.current.load_full();
                    let serving = current.as_ref().is_some_and(|c| now < c.serve_until);
                    if let Some(current) = current {
                        self.current.store(Some(Arc::new(Snapshot {
                            keys: current.keys.clone(),
                            refresh_at: retry_at,
                            ..*current
                        })));
                    }
                    control.last_error = Some(error.clone());
                    Some(Report::Failed {
                        error,
                        failures: control.failures,
                        serving,
                    })
                }
            };
            self.fetching.store(false, Ordering::Relaxed);
            self.finished.send_modify(|count| *count += 1);
            report
        };
        // Logged and counted after unlocking: a slow subscriber or recorder must not hold up
        // fetch decisions. (No report: a fetch that brought the same keys again.)
        match &report {
            Some(Report::Failed { error, .. }) => fetch_failed(error),
            Some(Report::Loaded { .. }) | None => {
                count!(JWKS_FETCHES_TOTAL, RESULT => "ok");
            }
        }
        match report {
            Some(Report::Loaded { kids, lifetime }) => tracing::info!(
                target: TARGET_REMOTE,
                keys = kids.len(),
                ?kids,
                lifetime_secs = lifetime.as_secs(),
                "issuer keys loaded"
            ),
            Some(Report::Failed {
                error,
                failures,
                serving: true,
            }) => tracing::warn!(
                target: TARGET_REMOTE,
                reason = error.as_str(),
                %error,
                failures,
                "issuer keys not refreshed; the last good keys stay in service"
            ),
            Some(Report::Failed {
                error, failures, ..
            }) => tracing::warn!(
                target: TARGET_REMOTE,
                reason = error.as_str(),
                %error,
                failures,
                "issuer keys not fetched; tokens are answered 503 until they are"
            ),
            None => {}
        }
    }

    /// How long the refresher may sleep: until the keys are due, or the retry time.
    fn until_due(&self) -> Duration {
        let now = self.now();
        let due = match self.current.load().as_deref() {
            Some(snapshot) => snapshot.refresh_at,
            None => self.lock().retry_at.unwrap_or(now),
        };
        due.saturating_duration_since(now).clamp(MIN_NAP, MAX_NAP)
    }

    /// The refresher's turn: a fetch to wait for when one runs or is due.
    fn scheduled(self: &Arc<Self>) -> Option<KeyWait> {
        let now = self.now();
        let keys_due = self
            .current
            .load()
            .as_deref()
            .map(|snapshot| now >= snapshot.refresh_at);
        self.fetch_if(now, Why::Scheduled, |control| {
            keys_due.unwrap_or_else(|| control.retry_at.is_none_or(|retry| now >= retry))
        })
        .map(wait_for)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The refresher holds only a weak reference: wake it so it sees that and exits.
        self.refresher.wake.notify_one();
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("location", &self.location)
            .field("settings", &self.settings)
            .field("keys", &self.usable_keys())
            .finish_non_exhaustive()
    }
}

/// The wait for the next finished fetch (or for the cache to be dropped).
fn wait_for(mut receiver: watch::Receiver<u64>) -> KeyWait {
    Box::pin(async move {
        let _finished_or_dropped = receiver.changed().await;
    })
}

/// `FIRST_RETRY` doubling per failure up to `MAX_RETRY`, then ±25% jitter so that many
/// instances do not return to a recovering issuer in step.
fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let base = FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY);
    let mut random = [0u8; 2];
    let jitter = match getrandom::fill(&mut random) {
        Ok(()) => f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX),
        Err(_) => 0.5,
    };
    base.mul_f64(0.75 + jitter / 2.0)
}

/// One fetch, in its own task. Dropped unfinished (its runtime shut down), it still records
/// a failure, so that waiters wake and a later fetch can start.
struct Flight {
    shared: Arc<Shared>,
    done: bool,
}

impl Flight {
    async fn run(mut self, why: Why) {
        let shared = &self.shared;
        let outcome = tokio::time::timeout(shared.settings.timeout, shared.fetch(why))
            .await
            .unwrap_or(Err(FetchError::Timeout));
        self.done = true;
        self.shared.finish(outcome);
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        if !self.done {
            self.shared.finish(Err(FetchError::NoRuntime));
        }
    }
}

/// Marks the refresher as stopped however its task ends, even if it never ran.
struct Running(Arc<Refresher>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

/// The background refresher: sleeps until the keys are due (or the retry time), fetches, and
/// again. Holds the cache only weakly, and exits when it is gone.
async fn refresh_loop(shared: Weak<Shared>, running: Running) {
    let refresher = &running.0;
    loop {
        let nap = match shared.upgrade() {
            Some(shared) => shared.until_due(),
            None => return,
        };
        let _woken_or_due = tokio::time::timeout(nap, refresher.wake.notified()).await;
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let wait = strong.scheduled();
        drop(strong);
        if let Some(wait) = wait {
            wait.await;
        }
    }
}

/// Counts a failed fetch (its event is logged by the cache, which knows whether the last good
/// keys stay in service).
fn fetch_failed(error: &FetchError) {
    // One constant key per variant; the codes are `FetchError::as_str`'s, checked equal by the
    // remote-key tests.
    #[cfg(feature = "metrics")]
    {
        use crate::telemetry::REASON;
        use crate::telemetry::metric::{key, one};
        one(match error {
            FetchError::Timeout => {
                key!(JWKS_FETCHES_TOTAL, RESULT => "failed", REASON => "timeout")
            }
            FetchError::Connection(_) => {
                key!(JWKS_FETCHES_TOTAL, RESULT => "failed", REASON => "connection")
            }
            FetchError::Status(_) => {
                key!(JWKS_FETCHES_TOTAL, RESULT => "failed", REASON => "status")
            }
            FetchError::TooLarge { .. } => {
                key!(JWKS_FETCHES_TOTAL, RESULT => "failed", REASON => "too_large")
            }
            FetchError::InvalidDocument(_) => {
                key!(JWKS_FETCHES_TOTAL, RESULT => "failed", REASON => "invalid_document")
            }
            FetchError::IssuerMismatch { .. } => {
                key!(JWKS_FETCHES_TOTAL, RESULT => "failed", REASON => "issuer_mismatch")
            }
            FetchError::InsecureUrl => {
                key!(JWKS_FETCHES_TOTAL, RESULT => "failed", REASON => "insecure_url")
            }
            FetchError::NoRuntime => {
                key!(JWKS_FETCHES_TOTAL, RESULT => "failed", REASON => "no_runtime")
            }
        });
    }
    #[cfg(not(feature = "metrics"))]
    let _ = error;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_with_jitter() {
        for (failures, base) in [
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (6, 32.0),
            (7, 60.0),
            (99, 60.0),
        ] {
            for _ in 0..20 {
                let delay = retry_delay(failures).as_secs_f64();
                assert!(
                    (base * 0.75..=base * 1.25).contains(&delay),
                    "{failures}: {delay}"
                );
            }
        }
    }

    #[test]
    fn absent_kids_expire_and_are_bounded() {
        let now = Instant::now();
        let later = now + Duration::from_secs(30);
        let mut absent = AbsentKids::default();
        absent.insert("a".into(), now, later);
        assert!(absent.contains("a", now));
        assert!(!absent.contains("a", later));
        assert!(!absent.contains("b", now));
        for i in 0..NEGATIVE_CAPACITY * 2 {
            absent.insert(format!("k{i}"), now, later);
        }
        assert_eq!(absent.0.len(), NEGATIVE_CAPACITY, "full: no more entries");
        // Expired entries make room.
        absent.insert("fresh".into(), later, later + Duration::from_secs(30));
        assert!(absent.contains("fresh", later));
        assert_eq!(absent.0.len(), 1);
    }
}
