//! Password hashing for the login router: argon2id, run on threads of the hasher's own (at
//! idle priority on Linux, by default) behind a bounded queue, with cost limits on stored
//! hashes and re-hashing of weak ones.
//!
//! ```
//! use tower_jwt_auth::password::{PasswordHasher, Verified};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hasher = PasswordHasher::new(); // argon2id, m=19456 KiB, t=2, p=1
//!
//! let stored = hasher.hash("correct horse battery staple").await?;
//! assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
//! assert_eq!(
//!     hasher.verify("correct horse battery staple", &stored).await?,
//!     Verified::Match { needs_rehash: false },
//! );
//! assert_eq!(hasher.verify("Tr0ub4dor&3", &stored).await?, Verified::Mismatch);
//!
//! // A hash written with weaker parameters still verifies, and asks to be replaced.
//! let old = PasswordHasher::builder().params(4096, 1, 1)?.build()?;
//! let weak = old.hash("correct horse battery staple").await?;
//! assert!(hasher.needs_rehash(&weak));
//! if let Verified::Match { needs_rehash: true } = hasher.verify("correct horse battery staple", &weak).await? {
//!     let upgraded = hasher.hash("correct horse battery staple").await?;
//!     assert!(!hasher.needs_rehash(&upgraded));
//! }
//!
//! // An unknown user costs one verification too, and never matches.
//! hasher.verify_dummy("whatever they typed").await?;
//! # Ok(())
//! # }
//! ```
//!
//! # What a call does, in order
//!
//! 1. **Length**: a password longer than [`PasswordHasher::max_password_len`] (default
//!    [`DEFAULT_MAX_PASSWORD_LEN`] bytes, never less than [`MIN_MAX_PASSWORD_LEN`]) fails with
//!    [`PasswordError::TooLong`].
//! 2. **The stored hash** (`verify` only) is parsed and checked without running anything: a
//!    malformed PHC string is [`PasswordError::InvalidHash`], another scheme is
//!    [`PasswordError::UnsupportedHash`], and memory, time or parallelism above the configured
//!    maxima (default 256 MiB, t = 16, p = 16) is [`PasswordError::ParametersTooCostly`]: a
//!    planted `m=4194304` hash cannot make the server allocate 4 GiB.
//! 3. **Admission**: at most `max_concurrent` hashes run and `max_queued` more wait; beyond that
//!    the call fails at once with [`PasswordError::Overloaded`], whose `retry_after` the router
//!    answers as 503 with `Retry-After`. A waiter dropped by its caller leaves the queue.
//!    Admission is fair across clients ([`PasswordHasher::for_client`]): when every place is
//!    taken, a client calling now and then takes the place of a waiting call of a client
//!    looping logins or retrying refusals at once.
//! 4. **The work** runs on the hasher's own threads, one per concurrent hash, which on Linux
//!    run under the `SCHED_IDLE` policy so that the async runtime always comes first
//!    ([`HashingThreads`]; tokio's blocking pool is an option). It keeps its slot until argon2
//!    returns, even if the caller has gone, so the bound counts the CPU actually in use.
//!
//! The comparison of outputs is argon2's own (constant-time). Neither passwords nor hashes reach
//! a log line or a `Debug` output.
//!
//! # Unicode passwords
//!
//! A password is hashed and verified in its [normal form](normalize_password), RFC 8265's
//! `OpaqueString` profile, as NIST SP 800-63B §5.1.1.2 asks: non-ASCII spaces become U+0020
//! and the whole is in NFC. So a password typed with a decomposed `é` (as some keyboards and
//! systems send it) or with a no-break space matches the one registered; case and width are
//! kept. A password the profile refuses (control characters, invisible ones such as joiners
//! and variation selectors, code points unassigned in the profile's Unicode 6.3, which
//! includes emoji added since) is hashed and verified as the bytes given; the router's
//! registration refuses it.
//!
//! Hashes of the bytes as given (made before passwords were normalised, or by another system)
//! keep verifying: when the normal form does not match and differs from the input, the input's
//! bytes are verified too, and a match reports `needs_rehash: true`. For one input, a wrong
//! password and [`PasswordHasher::verify_dummy`] run the same number of verifications (one, or
//! two when the normal form differs), so an unknown user still costs what a known one does.
//!
//! ```
//! use tower_jwt_auth::password::{PasswordHasher, Verified};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hasher = PasswordHasher::builder().params(1024, 1, 1)?.build()?; // cheap, for the example
//! let stored = hasher.hash("caf\u{e9}\u{a0}cr\u{e8}me").await?; // composed, a no-break space
//! let typed = "cafe\u{301} cre\u{300}me"; // decomposed, a plain space
//! assert_eq!(hasher.verify(typed, &stored).await?, Verified::Match { needs_rehash: false });
//! # Ok(())
//! # }
//! ```
//!
//! # Legacy bcrypt
//!
//! With the `bcrypt` feature, `$2b$`, `$2a$` and `$2y$` hashes (as written by passlib) verify, with
//! a cost of at most [`MAX_BCRYPT_COST`], and always report `needs_rehash: true`. As with passlib,
//! only the first 72 bytes of the password count; a password containing a NUL byte never matches
//! (passlib refuses to hash one). Without the feature they are
//! [`PasswordError::UnsupportedHash`].

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use argon2::Params;

use crate::error::ConfigError;
use crate::telemetry::{PASSWORD_HASHER_OVERLOADED_TOTAL, TARGET_PASSWORD, count};

mod format;
mod gate;
mod normalize;
mod pool;

#[cfg(feature = "bcrypt")]
use format::verify_bcrypt;
use format::{HashPolicy, Scheme, verify_argon2};
use gate::{Gate, Refused};
pub use normalize::normalize_password;
use normalize::{Candidates, Form};
pub use pool::HashingThreads;
use pool::Pool;

/// Default argon2id memory cost in KiB (19 MiB): the OWASP minimum.
pub const DEFAULT_MEMORY_KIB: u32 = 19_456;
/// Default argon2id time cost (iterations): the OWASP minimum for 19 MiB.
pub const DEFAULT_ITERATIONS: u32 = 2;
/// Default argon2id parallelism (lanes).
pub const DEFAULT_PARALLELISM: u32 = 1;
/// Default cap on password length, in bytes.
pub const DEFAULT_MAX_PASSWORD_LEN: usize = 1024;
/// The lowest password cap that can be configured, in bytes: 64 characters of any script.
pub const MIN_MAX_PASSWORD_LEN: usize = 256;
/// Default maximum memory cost of a stored hash, in KiB (256 MiB).
pub const DEFAULT_MAX_STORED_MEMORY_KIB: u32 = 262_144;
/// Default maximum time cost of a stored hash.
pub const DEFAULT_MAX_STORED_ITERATIONS: u32 = 16;
/// Default maximum parallelism of a stored hash.
pub const DEFAULT_MAX_STORED_PARALLELISM: u32 = 16;
/// The highest bcrypt cost a legacy hash may have (about 5 s per check at 16).
pub const MAX_BCRYPT_COST: u32 = 16;
/// Default retry hint of [`PasswordError::Overloaded`].
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The most concurrent hashes a hasher may be configured for.
const MAX_CONCURRENT: usize = usize::MAX >> 3;
/// Waiters allowed per permit by default.
const QUEUE_PER_PERMIT: usize = 4;

/// The outcome of [`PasswordHasher::verify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verified {
    /// The password is right.
    Match {
        /// The stored hash is weaker than what [`PasswordHasher::hash`] writes now (or is
        /// bcrypt, or was made from the password's bytes rather than its normal form): store
        /// `hash(password)` in its place.
        needs_rehash: bool,
    },
    /// The password is wrong.
    Mismatch,
}

impl Verified {
    /// Whether the password is right.
    #[must_use]
    pub const fn is_match(self) -> bool {
        matches!(self, Self::Match { .. })
    }
}

/// Hashing or verifying a password failed. Carries no part of the password or the hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordError {
    /// Too many hashes running and waiting; nothing was computed. Answer 503 with
    /// `Retry-After`.
    Overloaded {
        /// When to try again.
        retry_after: Duration,
    },
    /// The password is longer than the configured cap; nothing was computed.
    TooLong,
    /// The stored hash is of a scheme this hasher does not verify (bcrypt without the `bcrypt`
    /// feature, scrypt, pbkdf2, ...).
    UnsupportedHash,
    /// The stored hash is malformed.
    InvalidHash,
    /// The stored hash's parameters exceed the configured maxima; nothing was computed.
    ParametersTooCostly,
    /// The hashing task failed (no tokio runtime, a panic, no OS randomness).
    Internal,
}

impl PasswordError {
    /// The retry hint of [`PasswordError::Overloaded`].
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Overloaded { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Overloaded { retry_after } => write!(
                f,
                "too many password hashes in progress, retry after {} s",
                retry_after.as_secs_f64().ceil()
            ),
            Self::TooLong => f.write_str("password too long"),
            Self::UnsupportedHash => f.write_str("unsupported password hash scheme"),
            Self::InvalidHash => f.write_str("malformed password hash"),
            Self::ParametersTooCostly => {
                f.write_str("password hash parameters exceed the configured maxima")
            }
            Self::Internal => f.write_str("password hashing failed"),
        }
    }
}

impl std::error::Error for PasswordError {}

/// Counters of work done since the hasher was built. Each only ever grows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PasswordStats {
    /// Hashes computed by [`PasswordHasher::hash`].
    pub hashes: u64,
    /// Verifications against stored hashes that ran (argon2 or bcrypt), match or not.
    pub verifications: u64,
    /// Verifications against the dummy hash that ran ([`PasswordHasher::verify_dummy`]).
    pub dummy_verifications: u64,
    /// Calls refused with [`PasswordError::Overloaded`].
    pub overloaded: u64,
}

/// Hashes and verifies passwords with argon2id. Cheap to clone: clones share one queue.
///
/// See the [module docs](self).
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
    /// Whose calls these are, for fair admission ([`PasswordHasher::for_client`]).
    party: gate::Party,
}

struct Inner {
    config: Config,
    /// The parameters of new hashes and the limits on stored ones.
    policy: HashPolicy,
    /// Admitted calls, running and waiting for a permit, fairly across clients.
    gate: Arc<Gate>,
    /// The hasher's own threads (`None`: tokio's blocking pool).
    pool: Option<Pool>,
    /// A PHC string with the current parameters, for unknown users.
    dummy: String,
    hashes: AtomicU64,
    verifications: AtomicU64,
    dummy_verifications: AtomicU64,
    overloaded: AtomicU64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Config {
    m_kib: u32,
    t: u32,
    p: u32,
    max_concurrent: usize,
    max_queued: usize,
    max_password_len: usize,
    max_m_kib: u32,
    max_t: u32,
    max_p: u32,
    retry_after: Duration,
    threads: HashingThreads,
}

impl Default for Config {
    fn default() -> Self {
        // One core is left to the rest of the service (see `max_concurrent`).
        let max_concurrent = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .saturating_sub(1)
            .clamp(1, MAX_CONCURRENT);
        Self {
            m_kib: DEFAULT_MEMORY_KIB,
            t: DEFAULT_ITERATIONS,
            p: DEFAULT_PARALLELISM,
            max_concurrent,
            max_queued: max_concurrent.saturating_mul(QUEUE_PER_PERMIT),
            max_password_len: DEFAULT_MAX_PASSWORD_LEN,
            max_m_kib: DEFAULT_MAX_STORED_MEMORY_KIB,
            max_t: DEFAULT_MAX_STORED_ITERATIONS,
            max_p: DEFAULT_MAX_STORED_PARALLELISM,
            retry_after: DEFAULT_RETRY_AFTER,
            threads: HashingThreads::default(),
        }
    }
}

impl PasswordHasher {
    /// A hasher with the defaults: argon2id at m = 19456 KiB, t = 2, p = 1 (the OWASP
    /// minimum), one concurrent hash fewer than the machine has cores (at least one) on
    /// threads of idle priority, four times as many waiting, passwords up to 1024 bytes.
    #[must_use]
    pub fn new() -> Self {
        Self::from_config(Config::default())
    }

    /// A builder starting from the defaults of [`PasswordHasher::new`].
    pub fn builder() -> PasswordHasherBuilder {
        PasswordHasherBuilder {
            config: Config::default(),
        }
    }

    /// Infallible for any config that passed `build` (or the defaults).
    fn from_config(config: Config) -> Self {
        // The argon2 crate's own defaults stand in if the config were ever invalid; `build`
        // makes that unreachable.
        let policy = HashPolicy {
            current: Params::new(config.m_kib, config.t, config.p, None).unwrap_or_default(),
            max_m_kib: config.max_m_kib,
            max_t: config.max_t,
            max_p: config.max_p,
        };
        let dummy = policy.dummy();
        Self {
            inner: Arc::new(Inner {
                config,
                policy,
                gate: Arc::new(Gate::new(config.max_concurrent, config.max_queued)),
                pool: match config.threads {
                    HashingThreads::IdlePriority => Some(Pool::new(config.max_concurrent, true)),
                    HashingThreads::NormalPriority => Some(Pool::new(config.max_concurrent, false)),
                    HashingThreads::BlockingPool => None,
                },
                dummy,
                hashes: AtomicU64::new(0),
                verifications: AtomicU64::new(0),
                dummy_verifications: AtomicU64::new(0),
                overloaded: AtomicU64::new(0),
            }),
            party: None,
        }
    }

    /// The same hasher (same threads, permits and queue) for calls made on behalf of
    /// `client`, so that admission is fair across clients. A client weighs the places it holds
    /// (running or waiting) plus its recent calls, admitted or refused by the hasher or
    /// refused by the login limiter (halving every 3 s). When every place is taken, a call of
    /// a client clearly lighter than the heaviest waiting one takes the place of that client's
    /// newest waiting call, and a finished hash hands its thread to the waiting call of the
    /// lightest client. A client looping logins, or retrying refusals at once, is so refused
    /// ([`PasswordError::Overloaded`]) before another client's occasional login is. Calls of
    /// a hasher not made for a client (`None`, the default) count as one client of their own.
    #[must_use]
    pub fn for_client(&self, client: Option<IpAddr>) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            party: client,
        }
    }

    /// Hashes `password` with argon2id, the current parameters and a fresh 16-byte salt, as a
    /// PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
    ///
    /// What is hashed is the password's [normal form](normalize_password) (non-ASCII spaces as
    /// U+0020, NFC), or its bytes as given when the `OpaqueString` profile refuses it. The
    /// length cap applies to the password as given.
    ///
    /// # Errors
    ///
    /// [`PasswordError::TooLong`] over the length cap, [`PasswordError::Overloaded`] when the
    /// queue is full, [`PasswordError::Internal`] when the task or the OS randomness failed.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        self.check_len(password)?;
        let password = Candidates::of(password);
        self.run(move |inner| {
            let hashed = inner.policy.hash(password.normal());
            if hashed.is_ok() {
                inner.hashes.fetch_add(1, Ordering::Relaxed);
            }
            hashed
        })
        .await?
    }

    /// Verifies `password` against a stored hash: argon2 (any variant) or, with the `bcrypt`
    /// feature, legacy bcrypt.
    ///
    /// The password's [normal form](normalize_password) is verified first. When it does not
    /// match and differs from the bytes as given, those bytes are verified too: a hash made
    /// from them (before passwords were normalised, or by another system) still matches, and
    /// reports `needs_rehash: true` so that the normal form replaces it. A right password so
    /// costs one verification, a wrong one one per form (as
    /// [`verify_dummy`](Self::verify_dummy) does for the same input).
    ///
    /// # Errors
    ///
    /// Before any work: [`PasswordError::TooLong`], [`PasswordError::InvalidHash`],
    /// [`PasswordError::UnsupportedHash`], [`PasswordError::ParametersTooCostly`],
    /// [`PasswordError::Overloaded`]. Then [`PasswordError::Internal`] when the task failed.
    /// A wrong password is not an error but [`Verified::Mismatch`].
    pub async fn verify(&self, password: &str, stored: &str) -> Result<Verified, PasswordError> {
        self.check_len(password)?;
        let scheme = self.inner.policy.inspect(stored)?;
        let password = Candidates::of(password);
        let stored = stored.to_owned();
        self.run(move |inner| {
            password.first_match(|password| {
                let matched = match scheme {
                    Scheme::Argon2 { .. } => verify_argon2(password, &stored),
                    #[cfg(feature = "bcrypt")]
                    Scheme::Bcrypt => verify_bcrypt(password, &stored),
                };
                if matched.is_ok() {
                    inner.verifications.fetch_add(1, Ordering::Relaxed);
                }
                matched
            })
        })
        .await?
        .map(|matched| match (matched, scheme) {
            (None, _) => Verified::Mismatch,
            (Some(Form::Raw), _) => Verified::Match { needs_rehash: true },
            (Some(Form::Normal), Scheme::Argon2 { needs_rehash }) => {
                Verified::Match { needs_rehash }
            }
            #[cfg(feature = "bcrypt")]
            (Some(Form::Normal), Scheme::Bcrypt) => Verified::Match { needs_rehash: true },
        })
    }

    /// Verifies `password` against a dummy hash with the current parameters and throws the
    /// result away: call it when the user does not exist, so that the answer takes as long as
    /// for a user who does. Always a mismatch.
    ///
    /// It verifies each form of the input that [`verify`](Self::verify) would for a wrong
    /// password: the normal form and, when they differ, the bytes as given (two verifications).
    ///
    /// # Errors
    ///
    /// As [`PasswordHasher::verify`]: [`PasswordError::TooLong`], [`PasswordError::Overloaded`],
    /// [`PasswordError::Internal`].
    pub async fn verify_dummy(&self, password: &str) -> Result<(), PasswordError> {
        self.check_len(password)?;
        // Parsed like a stored hash, so the two paths do the same work.
        self.inner.policy.inspect(&self.inner.dummy)?;
        let password = Candidates::of(password);
        self.run(move |inner| {
            for (_, password) in password.forms() {
                if verify_argon2(password, &inner.dummy).is_ok() {
                    inner.dummy_verifications.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .await
    }

    /// Whether `stored` is weaker than what [`PasswordHasher::hash`] writes now: another
    /// argon2 variant or version, lower m, t or p, a shorter salt or output, or bcrypt. Also
    /// `true` for hashes this hasher cannot verify at all. Runs no hashing.
    #[must_use]
    pub fn needs_rehash(&self, stored: &str) -> bool {
        !matches!(
            self.inner.policy.inspect(stored),
            Ok(Scheme::Argon2 {
                needs_rehash: false
            })
        )
    }

    /// The record of each client's recent calls that admission weighs clients by; the login
    /// limiter adds the attempts it refuses, so a client retrying 429s at once weighs as much
    /// as one retrying 503s.
    pub(crate) fn ledger(&self) -> std::sync::Arc<crate::ledger::Ledger> {
        std::sync::Arc::clone(self.inner.gate.ledger())
    }

    /// The longest password accepted, in bytes.
    #[must_use]
    pub fn max_password_len(&self) -> usize {
        self.inner.config.max_password_len
    }

    /// The work done so far.
    #[must_use]
    pub fn stats(&self) -> PasswordStats {
        let inner = &*self.inner;
        PasswordStats {
            hashes: inner.hashes.load(Ordering::Relaxed),
            verifications: inner.verifications.load(Ordering::Relaxed),
            dummy_verifications: inner.dummy_verifications.load(Ordering::Relaxed),
            overloaded: inner.overloaded.load(Ordering::Relaxed),
        }
    }

    fn check_len(&self, password: &str) -> Result<(), PasswordError> {
        if password.len() > self.inner.config.max_password_len {
            return Err(PasswordError::TooLong);
        }
        Ok(())
    }

    /// Admits the call, waits for a permit and runs `work` on the hashing threads. The
    /// admission and the permit move into the work: a caller that goes away while waiting
    /// frees its place in the queue; one that goes away while the work runs keeps it taken
    /// until the work is done.
    async fn run<T, F>(&self, work: F) -> Result<T, PasswordError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> T + Send + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| PasswordError::Internal)?;
        let slot = match self.inner.gate.enter(self.party).await {
            Ok(slot) => slot,
            Err(Refused) => return Err(self.inner.overloaded()),
        };
        let inner = Arc::clone(&self.inner);
        let failed = || {
            tracing::error!(
                target: TARGET_PASSWORD,
                "password hashing task failed"
            );
            PasswordError::Internal
        };
        let Some(pool) = &self.inner.pool else {
            return runtime
                .spawn_blocking(move || {
                    let _slot = slot;
                    work(&inner)
                })
                .await
                .map_err(|_| failed());
        };
        let (sender, receiver) = tokio::sync::oneshot::channel();
        pool.run(Box::new(move || {
            let result = work(&inner);
            // The place is free before the caller hears back, as it is when a blocking task
            // ends. The caller may be gone: the work was still done, and its place held.
            drop(slot);
            let _ = sender.send(result);
        }))
        .map_err(|()| PasswordError::Internal)?;
        receiver.await.map_err(|_| failed())
    }
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// A call refused: counted, logged, and the error with the retry hint.
    fn overloaded(&self) -> PasswordError {
        self.overloaded.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            target: TARGET_PASSWORD,
            reason = "overloaded",
            "password hashing at capacity; call refused"
        );
        count!(PASSWORD_HASHER_OVERLOADED_TOTAL);
        PasswordError::Overloaded {
            retry_after: self.config.retry_after,
        }
    }
}

/// Configures a [`PasswordHasher`]. Start with [`PasswordHasher::builder`].
#[must_use]
#[derive(Clone, Debug)]
pub struct PasswordHasherBuilder {
    config: Config,
}

impl PasswordHasherBuilder {
    /// The argon2id parameters of new hashes: memory in KiB, iterations, lanes. The default,
    /// m = 19456, t = 2, p = 1, is the OWASP minimum; lower values are accepted (tests use
    /// them) but weaken every stored password.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when argon2 refuses them (t = 0, p = 0, m < 8 × p).
    pub fn params(mut self, m_kib: u32, t: u32, p: u32) -> Result<Self, ConfigError> {
        Params::new(m_kib, t, p, None).map_err(|_| {
            ConfigError::InvalidSetting("argon2 parameters need t >= 1, p >= 1 and m >= 8 * p")
        })?;
        self.config.m_kib = m_kib;
        self.config.t = t;
        self.config.p = p;
        Ok(self)
    }

    /// How many hashes may run at once (default: one less than the number of cores, and at
    /// least 1). Leaving a core free keeps the rest of the service responsive while logins
    /// flood in: with every core hashing, the load test measured the p99 latency of a cheap
    /// route at 18x its idle value; with one left free and the hashing threads at idle
    /// priority ([`threads`](Self::threads)), at about its idle value.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for 0 or more than tokio's semaphore allows.
    pub fn max_concurrent(mut self, permits: usize) -> Result<Self, ConfigError> {
        if permits == 0 || permits > MAX_CONCURRENT {
            return Err(ConfigError::InvalidSetting(
                "max_concurrent must be at least 1",
            ));
        }
        self.config.max_concurrent = permits;
        Ok(self)
    }

    /// The threads hashing runs on (default [`HashingThreads::IdlePriority`]: the hasher's own,
    /// one per concurrent hash, under Linux's `SCHED_IDLE` policy).
    pub fn threads(mut self, threads: HashingThreads) -> Self {
        self.config.threads = threads;
        self
    }

    /// How many calls may wait for a running hash to finish (default: four per concurrent
    /// hash); more fail with [`PasswordError::Overloaded`]. 0 means no waiting at all.
    pub fn max_queued(mut self, waiters: usize) -> Self {
        self.config.max_queued = waiters;
        self
    }

    /// The longest password accepted, in bytes (default [`DEFAULT_MAX_PASSWORD_LEN`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] below [`MIN_MAX_PASSWORD_LEN`]: every user must be able
    /// to use 64 characters of any script.
    pub fn max_password_len(mut self, bytes: usize) -> Result<Self, ConfigError> {
        if bytes < MIN_MAX_PASSWORD_LEN {
            return Err(ConfigError::InvalidSetting(
                "max_password_len must be at least 256 bytes",
            ));
        }
        self.config.max_password_len = bytes;
        Ok(self)
    }

    /// The most costly stored hash [`PasswordHasher::verify`] will run: memory in KiB,
    /// iterations, lanes (default 262144, 16, 16). Costlier hashes fail with
    /// [`PasswordError::ParametersTooCostly`] before anything is allocated. Must be at least
    /// the hashing parameters (checked by [`build`](Self::build)).
    pub fn max_stored_params(mut self, m_kib: u32, t: u32, p: u32) -> Self {
        self.config.max_m_kib = m_kib;
        self.config.max_t = t;
        self.config.max_p = p;
        self
    }

    /// The retry hint of [`PasswordError::Overloaded`] (default 1 s).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for zero.
    pub fn retry_after(mut self, after: Duration) -> Result<Self, ConfigError> {
        if after.is_zero() {
            return Err(ConfigError::InvalidSetting("retry_after must not be zero"));
        }
        self.config.retry_after = after;
        Ok(self)
    }

    /// Builds the hasher.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when the stored-hash maxima are below the hashing
    /// parameters (the hasher would refuse its own hashes).
    pub fn build(self) -> Result<PasswordHasher, ConfigError> {
        let c = self.config;
        if c.max_m_kib < c.m_kib || c.max_t < c.t || c.max_p < c.p {
            return Err(ConfigError::InvalidSetting(
                "max_stored_params must be at least the hashing parameters",
            ));
        }
        Ok(PasswordHasher::from_config(c))
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;

    use argon2::password_hash::{PasswordHash, SaltString};
    use argon2::{Algorithm, Argon2, Version};

    use super::*;

    /// Cheap parameters for tests that are not about the defaults.
    fn cheap() -> PasswordHasherBuilder {
        PasswordHasher::builder().params(1024, 1, 1).unwrap()
    }

    /// A hash written by the argon2 crate directly, with any variant, version and parameters.
    fn argon2_hash(alg: Algorithm, version: Version, params: Params, salt: &[u8]) -> String {
        let salt = SaltString::encode_b64(salt).unwrap();
        let hasher = Argon2::new(alg, version, params);
        argon2::password_hash::PasswordHasher::hash_password(&hasher, b"pw", &salt)
            .unwrap()
            .to_string()
    }

    fn params(m: u32, t: u32, p: u32, len: Option<usize>) -> Params {
        Params::new(m, t, p, len).unwrap()
    }

    /// Marks the queue as full, as if running and waiting calls of the hasher's own party
    /// held every place.
    fn fill_queue(hasher: &PasswordHasher) {
        hasher.inner.gate.fill(hasher.party);
    }

    async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
    }

    #[tokio::test]
    async fn defaults_write_owasp_argon2id_phc_strings() {
        let hasher = PasswordHasher::new();
        let stored = hasher.hash("correct horse").await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        let parsed = PasswordHash::new(&stored).unwrap();
        let mut salt = [0u8; 64];
        assert_eq!(
            parsed.salt.unwrap().decode_b64(&mut salt).unwrap().len(),
            16
        );
        assert_eq!(parsed.hash.unwrap().len(), 32);

        assert_ne!(
            hasher.hash("correct horse").await.unwrap(),
            stored,
            "fresh salt"
        );
        assert_eq!(
            hasher.verify("correct horse", &stored).await.unwrap(),
            Verified::Match {
                needs_rehash: false
            }
        );
        assert_eq!(
            hasher.verify("correct horsf", &stored).await.unwrap(),
            Verified::Mismatch
        );
        assert!(!hasher.needs_rehash(&stored));
        let stats = hasher.stats();
        assert_eq!((stats.hashes, stats.verifications), (2, 2));
    }

    #[tokio::test]
    async fn dummy_costs_what_a_real_hash_costs_and_never_matches() {
        for hasher in [PasswordHasher::new(), cheap().build().unwrap()] {
            let real = hasher.hash("pw").await.unwrap();
            let (real, dummy) = (
                PasswordHash::new(&real).unwrap(),
                PasswordHash::new(&hasher.inner.dummy).unwrap(),
            );
            assert_eq!(dummy.algorithm, real.algorithm);
            assert_eq!(dummy.version, real.version);
            assert_eq!(dummy.params, real.params);
            assert_eq!(dummy.salt.unwrap().len(), real.salt.unwrap().len());
            assert_eq!(dummy.hash.unwrap().len(), real.hash.unwrap().len());
            assert!(!hasher.needs_rehash(&hasher.inner.dummy));

            hasher.verify_dummy("pw").await.unwrap();
            hasher.verify_dummy("").await.unwrap();
            let stats = hasher.stats();
            assert_eq!(stats.dummy_verifications, 2);
            assert_eq!(stats.verifications, 0);
        }
        let hasher = cheap().build().unwrap();
        assert_eq!(
            hasher.verify_dummy(&"x".repeat(1025)).await,
            Err(PasswordError::TooLong)
        );
        assert_eq!(hasher.stats().dummy_verifications, 0);
    }

    #[tokio::test]
    async fn unicode_and_nul_bytes_round_trip() {
        let hasher = cheap().build().unwrap();
        for (password, near_misses) in [
            (
                "pässwörd 🔑 漢字",
                &["passwörd 🔑 漢字", "pässwörd 🔑 漢"][..],
            ),
            ("a\0b", &["ab", "a\0b\0", "a", "a\0"][..]),
            ("\0", &["", "\0\0"][..]),
        ] {
            let stored = hasher.hash(password).await.unwrap();
            assert!(hasher.verify(password, &stored).await.unwrap().is_match());
            for other in near_misses {
                assert_eq!(
                    hasher.verify(other, &stored).await.unwrap(),
                    Verified::Mismatch,
                    "{other:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn weaker_hashes_verify_and_ask_for_a_rehash() {
        // Current: m=2048, t=2, p=2.
        let hasher = PasswordHasher::builder()
            .params(2048, 2, 2)
            .unwrap()
            .build()
            .unwrap();
        let id = Algorithm::Argon2id;
        let v13 = Version::V0x13;
        let salt16 = [7u8; 16];
        let weaker = [
            (
                "lower m",
                argon2_hash(id, v13, params(1024, 2, 2, None), &salt16),
            ),
            (
                "lower t",
                argon2_hash(id, v13, params(2048, 1, 2, None), &salt16),
            ),
            (
                "lower p",
                argon2_hash(id, v13, params(2048, 2, 1, None), &salt16),
            ),
            (
                "argon2i",
                argon2_hash(Algorithm::Argon2i, v13, params(2048, 2, 2, None), &salt16),
            ),
            (
                "argon2d",
                argon2_hash(Algorithm::Argon2d, v13, params(2048, 2, 2, None), &salt16),
            ),
            (
                "version 0x10",
                argon2_hash(id, Version::V0x10, params(2048, 2, 2, None), &salt16),
            ),
            (
                "8-byte salt",
                argon2_hash(id, v13, params(2048, 2, 2, None), &[7u8; 8]),
            ),
            (
                "16-byte output",
                argon2_hash(id, v13, params(2048, 2, 2, Some(16)), &salt16),
            ),
        ];
        for (why, stored) in &weaker {
            assert!(hasher.needs_rehash(stored), "{why}");
            assert_eq!(
                hasher.verify("pw", stored).await.unwrap(),
                Verified::Match { needs_rehash: true },
                "{why}"
            );
            assert_eq!(
                hasher.verify("pW", stored).await.unwrap(),
                Verified::Mismatch,
                "{why}"
            );
        }
        let as_strong = [
            argon2_hash(id, v13, params(2048, 2, 2, None), &salt16),
            argon2_hash(id, v13, params(4096, 3, 4, Some(64)), &[7u8; 32]),
        ];
        for stored in &as_strong {
            assert!(!hasher.needs_rehash(stored), "{stored}");
            assert_eq!(
                hasher.verify("pw", stored).await.unwrap(),
                Verified::Match {
                    needs_rehash: false
                }
            );
        }
        // Unparsable hashes cannot be kept either.
        assert!(hasher.needs_rehash("garbage"));
    }

    #[tokio::test]
    async fn absurd_parameters_are_refused_before_any_work() {
        let hasher = PasswordHasher::new();
        // A full queue: any call that got past the checks would be `Overloaded`.
        fill_queue(&hasher);
        let salt = "c29tZXNhbHRzb21lc2FsdA";
        let out = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        for params in [
            "m=4194304,t=1,p=1",
            "m=19456,t=1000,p=1",
            "m=19456,t=2,p=255",
            "m=4194304,t=1000,p=255",
            "m=262145,t=2,p=1",
            "m=19456,t=17,p=1",
            "m=19456,t=2,p=17",
        ] {
            let stored = format!("$argon2id$v=19${params}${salt}${out}");
            assert_eq!(
                hasher.verify("pw", &stored).await,
                Err(PasswordError::ParametersTooCostly),
                "{params}"
            );
        }
        // At the maxima the hash is admitted (and here refused for the full queue).
        let at_max = format!("$argon2id$v=19$m=262144,t=16,p=16${salt}${out}");
        assert!(matches!(
            hasher.verify("pw", &at_max).await,
            Err(PasswordError::Overloaded { .. })
        ));
        assert_eq!(hasher.stats().verifications, 0);

        // The maxima are configurable.
        let strict = PasswordHasher::builder()
            .max_stored_params(32768, 3, 1)
            .build()
            .unwrap();
        fill_queue(&strict);
        let within = format!("$argon2id$v=19$m=32768,t=3,p=1${salt}${out}");
        let above = format!("$argon2id$v=19$m=32769,t=3,p=1${salt}${out}");
        assert!(matches!(
            strict.verify("pw", &within).await,
            Err(PasswordError::Overloaded { .. })
        ));
        assert_eq!(
            strict.verify("pw", &above).await,
            Err(PasswordError::ParametersTooCostly)
        );
    }

    #[tokio::test]
    async fn malformed_and_foreign_hashes_are_errors() {
        let hasher = cheap().build().unwrap();
        fill_queue(&hasher);
        let salt = "c29tZXNhbHRzb21lc2FsdA";
        let out = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let invalid = [
            String::new(),
            "$".into(),
            "$$".into(),
            "argon2id$v=19$m=1024,t=1,p=1".into(),
            "$argon2id".into(),
            "$argon2id$".into(),
            "$argon2id$v=19$m=1024,t=1,p=1".into(),
            format!("$argon2id$v=19$m=1024,t=1,p=1${salt}"),
            format!("$argon2id$v=19$m=1024,t=1,p=1${salt}${out}$extra"),
            format!("$argon2id$v=99$m=1024,t=1,p=1${salt}${out}"),
            format!("$argon2id$v=19$t=1,p=1${salt}${out}"),
            format!("$argon2id$v=19$m=1024,t=1${salt}${out}"),
            format!("$argon2id$v=19$m=abc,t=1,p=1${salt}${out}"),
            format!("$argon2id$v=19$m=-1,t=1,p=1${salt}${out}"),
            format!("$argon2id$v=19$m=99999999999,t=1,p=1${salt}${out}"),
            format!("$argon2id$v=19$m=1024,t=1,p=1,x=1${salt}${out}"),
            format!("$argon2id$v=19$m=1024,m=2048,t=1,p=1${salt}${out}"),
            // A duplicate must not smuggle a value past the maxima.
            format!("$argon2id$v=19$m=1024,t=1,p=1,m=4194304${salt}${out}"),
            format!("$argon2id$v=19$m=1024,t=1,t=1000,p=1${salt}${out}"),
            format!("$argon2id$v=19$m=1024,t=0,p=1${salt}${out}"),
            format!("$argon2id$v=19$m=1024,t=1,p=0${salt}${out}"),
            format!("$argon2id$v=19$m=7,t=1,p=1${salt}${out}"),
            format!("$argon2id$v=19$m=1024,t=1,p=1$AAAAAA${out}"),
            format!("$argon2id$v=19$m=1024,t=1,p=1${salt}$AAAA"),
            format!("$argon2id$v=19$m=1024,t=1,p=1${salt}$!!!!"),
            format!("$argon2id$v=19$m=1024,t=1,p=1$sält${out}"),
            format!("$argon2id$v=19$m=1024,t=1,p=1${salt}${}", "A".repeat(600)),
            "$2b$04$short".into(),
            "$2b$03$1uNpAxEM2BFUQuZuSHV03OyY3GKvwmieEoB2Ls8LJU0CNYkza8cwi".into(),
            "$2b$x4$1uNpAxEM2BFUQuZuSHV03OyY3GKvwmieEoB2Ls8LJU0CNYkza8cwi".into(),
            "$2b$04$1uNpAxEM2BFUQuZuSHV03OyY3GKvwmieEoB2Ls8LJU0CNYkza8cw!".into(),
            "$2b$04$1uNpAxEM2BFUQuZuSHV03OyY3GKvwmieEoB2Ls8LJU0CNYkza8cwié".into(),
            "$ arg$x".into(),
        ];
        for stored in &invalid {
            assert_eq!(
                hasher.verify("pw", stored).await,
                Err(PasswordError::InvalidHash),
                "{stored:?}"
            );
            assert!(hasher.needs_rehash(stored));
        }
        let unsupported = [
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
            "$pbkdf2-sha256$29000$N2bMuZcyJgSAMAZASEkp5Q$tZ8q4pGg0Mx4FuOVi8Bjr6a0/6Ac5qPpzW7DZhRzZ2Y",
            "$6$rounds=5000$salt$hash",
            "$2x$04$1uNpAxEM2BFUQuZuSHV03OyY3GKvwmieEoB2Ls8LJU0CNYkza8cwi",
        ];
        for stored in unsupported {
            assert_eq!(
                hasher.verify("pw", stored).await,
                Err(PasswordError::UnsupportedHash),
                "{stored}"
            );
        }
        assert_eq!(hasher.stats(), PasswordStats::default());
    }

    proptest::proptest! {
        #[test]
        fn inspecting_any_string_never_panics(tail in "\\PC{0,120}", head in 0usize..4) {
            let hasher = cheap().build().unwrap();
            let prefix = ["", "$argon2id$", "$argon2id$v=19$m=1024,t=1,p=1$", "$2b$04$"][head];
            let stored = format!("{prefix}{tail}");
            let _ = hasher.inner.policy.inspect(&stored);
            let _ = hasher.needs_rehash(&stored);
        }
    }

    // Hashes written by passlib 1.7.4 (with the `bcrypt` 4.0.1 Python package):
    // `passlib.hash.bcrypt.using(rounds=4, ident=IDENT).hash(PASSWORD)`.
    const PASSLIB_2B: &str = "$2b$04$1uNpAxEM2BFUQuZuSHV03OyY3GKvwmieEoB2Ls8LJU0CNYkza8cwi";
    #[cfg(feature = "bcrypt")]
    const PASSLIB_2A_UNICODE: &str = "$2a$04$7sIGizRiLo1SspAesyT83ef9UyW6n9uutopIecHyyKscGijSrdlka";
    #[cfg(feature = "bcrypt")]
    const PASSLIB_2Y: &str = "$2y$04$vHsGjdjlWE5ViEts2bn8zOXKQnwolZ4dqBpYVWKWYTVffOvkY0zz.";
    /// Of the empty password.
    #[cfg(feature = "bcrypt")]
    const PASSLIB_EMPTY: &str = "$2b$04$ekO2Bvredey2HalZ5QuQ3..vKKISxbbFEBH0985CQha7hQpb8GOsO";
    /// Of `"x" * 72 + "tail"`, which passlib truncated to 72 bytes.
    #[cfg(feature = "bcrypt")]
    const PASSLIB_LONG: &str = "$2b$04$EV0IxdYw.6nsVnzV8IwqA.87dnvudeKc7hVzw92MzStyZHiX0y.0S";

    #[cfg(feature = "bcrypt")]
    #[tokio::test]
    async fn passlib_bcrypt_hashes_verify_and_ask_for_a_rehash() {
        let hasher = cheap().build().unwrap();
        let rehash = Verified::Match { needs_rehash: true };
        for (password, stored) in [
            ("correct horse battery staple", PASSLIB_2B),
            ("pässwörd 🔑", PASSLIB_2A_UNICODE),
            ("hunter2", PASSLIB_2Y),
            ("", PASSLIB_EMPTY),
        ] {
            assert_eq!(
                hasher.verify(password, stored).await.unwrap(),
                rehash,
                "{stored}"
            );
            assert!(hasher.needs_rehash(stored));
        }
        assert_eq!(
            hasher
                .verify("correct horse battery stapler", PASSLIB_2B)
                .await
                .unwrap(),
            Verified::Mismatch
        );
        // bcrypt sees an all-NUL key as empty; passlib never hashed a NUL.
        assert_eq!(
            hasher.verify("\0", PASSLIB_EMPTY).await.unwrap(),
            Verified::Mismatch
        );
        // passlib's truncation to 72 bytes is kept, so such users can still log in.
        let long = format!("{}tail", "x".repeat(72));
        assert_eq!(hasher.verify(&long, PASSLIB_LONG).await.unwrap(), rehash);
        assert_eq!(hasher.stats().verifications, 7);

        // Cost is capped before anything runs.
        fill_queue(&hasher);
        let costly = PASSLIB_2B.replace("$04$", "$17$");
        assert_eq!(
            hasher.verify("x", &costly).await,
            Err(PasswordError::ParametersTooCostly)
        );
        let at_cap = PASSLIB_2B.replace("$04$", "$16$");
        assert!(matches!(
            hasher.verify("x", &at_cap).await,
            Err(PasswordError::Overloaded { .. })
        ));
    }

    #[cfg(not(feature = "bcrypt"))]
    #[tokio::test]
    async fn bcrypt_without_the_feature_is_unsupported() {
        let hasher = cheap().build().unwrap();
        assert_eq!(
            hasher
                .verify("correct horse battery staple", PASSLIB_2B)
                .await,
            Err(PasswordError::UnsupportedHash)
        );
        assert!(hasher.needs_rehash(PASSLIB_2B));
        assert_eq!(hasher.stats().verifications, 0);
    }

    #[tokio::test]
    async fn passwords_over_the_cap_are_refused_without_hashing() {
        assert_eq!(PasswordHasher::new().max_password_len(), 1024);
        let hasher = cheap().build().unwrap();
        let stored = hasher.hash(&"x".repeat(1024)).await.unwrap();
        let long = "x".repeat(1025);
        assert_eq!(hasher.hash(&long).await, Err(PasswordError::TooLong));
        assert_eq!(
            hasher.verify(&long, &stored).await,
            Err(PasswordError::TooLong)
        );
        assert_eq!(hasher.stats().hashes, 1);
        assert_eq!(hasher.stats().verifications, 0);

        // The cap can be lowered to 256 bytes, and no further.
        assert_eq!(
            cheap().max_password_len(255).unwrap_err(),
            ConfigError::InvalidSetting("max_password_len must be at least 256 bytes")
        );
        let tight = cheap().max_password_len(256).unwrap().build().unwrap();
        assert_eq!(tight.max_password_len(), 256);
        let keys = "🔑".repeat(64);
        let stored = tight.hash(&keys).await.unwrap();
        assert!(tight.verify(&keys, &stored).await.unwrap().is_match());
        assert_eq!(
            tight.hash(&format!("{keys}x")).await,
            Err(PasswordError::TooLong)
        );
    }

    #[tokio::test]
    async fn a_full_queue_fails_fast_with_a_retry_hint() {
        let hasher = cheap()
            .max_concurrent(1)
            .unwrap()
            .max_queued(1)
            .retry_after(Duration::from_secs(3))
            .unwrap()
            .build()
            .unwrap();
        // The test holds the only permit, as a long hash would.
        let held = hasher.inner.gate.enter(None).await.unwrap();
        let mut waiting = Box::pin(hasher.hash("b"));
        assert!(poll_once(&mut waiting).await.is_pending());

        let refused = hasher.hash("c").await.unwrap_err();
        assert_eq!(
            refused,
            PasswordError::Overloaded {
                retry_after: Duration::from_secs(3)
            }
        );
        assert_eq!(refused.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(
            hasher.verify_dummy("c").await,
            Err(refused),
            "the dummy path queues too"
        );
        assert_eq!(hasher.stats().overloaded, 2);

        drop(held);
        waiting.await.unwrap();
        assert_eq!(hasher.inner.gate.admitted(), 0);
        let stats = hasher.stats();
        assert_eq!((stats.hashes, stats.overloaded), (1, 2));
        hasher.hash("d").await.unwrap();
    }

    #[tokio::test]
    async fn a_cancelled_waiter_gives_its_place_back() {
        let hasher = cheap()
            .max_concurrent(1)
            .unwrap()
            .max_queued(1)
            .build()
            .unwrap();
        let held = hasher.inner.gate.enter(None).await.unwrap();
        let mut waiting = Box::pin(hasher.hash("a"));
        assert!(poll_once(&mut waiting).await.is_pending());
        assert_eq!(hasher.inner.gate.admitted(), 2);
        assert!(matches!(
            hasher.hash("b").await,
            Err(PasswordError::Overloaded { .. })
        ));

        drop(waiting);
        assert_eq!(hasher.inner.gate.admitted(), 1);
        drop(held);
        let stored = hasher.hash("c").await.unwrap();
        assert!(hasher.verify("c", &stored).await.unwrap().is_match());
        assert_eq!(hasher.stats().hashes, 1, "the cancelled hash never ran");
        assert_eq!(hasher.inner.gate.admitted(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_up_to_the_bound_all_run() {
        let hasher = cheap()
            .max_concurrent(2)
            .unwrap()
            .max_queued(6)
            .build()
            .unwrap();
        let stored = hasher.hash("pw").await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (hasher, stored) = (hasher.clone(), stored.clone());
                tokio::spawn(async move { hasher.verify("pw", &stored).await })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().unwrap().is_match());
        }
        let stats = hasher.stats();
        assert_eq!((stats.verifications, stats.overloaded), (8, 0));
    }

    #[test]
    fn defaults_and_builder_rules() {
        let config = PasswordHasher::new().inner.config;
        let cores = std::thread::available_parallelism().unwrap().get();
        let permits = cores.saturating_sub(1).max(1);
        assert_eq!(
            config.max_concurrent, permits,
            "one core left to the runtime"
        );
        assert_eq!(config.max_queued, 4 * permits);
        assert_eq!(config.threads, HashingThreads::IdlePriority);
        assert_eq!(config.retry_after, Duration::from_secs(1));
        assert_eq!(
            (config.m_kib, config.t, config.p),
            (DEFAULT_MEMORY_KIB, DEFAULT_ITERATIONS, DEFAULT_PARALLELISM)
        );
        assert_eq!(
            (config.max_m_kib, config.max_t, config.max_p),
            (262_144, 16, 16)
        );

        let b = PasswordHasher::builder;
        assert!(b().max_concurrent(0).is_err());
        assert!(b().max_concurrent(1).is_ok());
        assert!(b().params(1024, 0, 1).is_err());
        assert!(b().params(1024, 1, 0).is_err());
        assert!(b().params(15, 1, 2).is_err(), "m < 8p");
        assert!(b().retry_after(Duration::ZERO).is_err());
        assert!(
            b().params(65536, 1, 1)
                .unwrap()
                .max_stored_params(32768, 16, 16)
                .build()
                .is_err()
        );
        assert!(
            b().params(1024, 3, 1)
                .unwrap()
                .max_stored_params(1024, 2, 1)
                .build()
                .is_err()
        );
        assert!(
            b().params(1024, 1, 4)
                .unwrap()
                .max_stored_params(1024, 1, 2)
                .build()
                .is_err()
        );
        assert!(
            b().params(1024, 3, 2)
                .unwrap()
                .max_stored_params(1024, 3, 2)
                .build()
                .is_ok()
        );
    }

    #[tokio::test]
    async fn debug_and_display_show_no_secrets() {
        let hasher = PasswordHasher::new();
        let debug = format!("{hasher:?}");
        assert!(
            debug.contains("m_kib: 19456") && debug.contains("t: 2"),
            "{debug}"
        );
        assert!(!debug.contains('$'), "{debug}");
        for err in [
            PasswordError::Overloaded {
                retry_after: Duration::from_secs(1),
            },
            PasswordError::TooLong,
            PasswordError::UnsupportedHash,
            PasswordError::InvalidHash,
            PasswordError::ParametersTooCostly,
            PasswordError::Internal,
        ] {
            let text = err.to_string();
            assert_eq!(text, text.to_lowercase());
        }
        assert_eq!(PasswordError::TooLong.retry_after(), None);
    }

    #[test]
    fn outside_a_tokio_runtime_it_is_an_error_not_a_panic() {
        let hasher = cheap().build().unwrap();
        let mut call = Box::pin(hasher.hash("pw"));
        let waker = std::task::Waker::noop();
        let poll = call
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker));
        assert_eq!(poll, Poll::Ready(Err(PasswordError::Internal)));
    }
}
