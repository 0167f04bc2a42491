//! [`RedisLimiterStore`]: the login limiter's counters in Redis, each decision and each update
//! one Lua script running the arithmetic of [`LoginLimits`].

use std::fmt;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use ::redis::Script;
use ::redis::aio::ConnectionManager;

use super::{MAX_MILLIS, Redis, run};
use crate::ratelimit::{Action, Decision, LimitReason, LimiterStore, LoginKey, LoginLimits};
use crate::store::{StoreError, StoreFuture};

/// How many doublings a backoff can take before it stops growing (`Backoff::delay` shifts by
/// at most 31).
const DOUBLINGS: u32 = 32;

/// [`LimiterStore`] in Redis, shared by every instance of an app: a failure on one instance
/// counts on all.
///
/// Each method is one Lua script that computes exactly what [`MemoryLimiterStore`] computes
/// for the same [`LoginLimits`] (the policy's numbers are written into the scripts when the
/// store is built). [`attempt`](LimiterStore::attempt) decides and counts in one script, so
/// attempts in flight together on any number of instances cannot all pass one decision.
/// Keys:
///
/// | key | holds | expires |
/// |---|---|---|
/// | `<prefix>rl:p:<client> <username>` | failures of the pair: count, last, `0` | when forgotten ([`LoginLimits::forget_after`] the last failure) |
/// | `<prefix>rl:a:<username>` | failures of the username: count, last, end of the lock | when forgotten, and not before the lock ends |
/// | `<prefix>rl:c:<client>` | the client's failure GCRA arrival time | at that time |
/// | `<prefix>rl:v:<client>` | the client's verification GCRA arrival time | at that time |
/// | `<prefix>rl:g:<client>` | the client's registration GCRA arrival time | at that time |
///
/// Every method answers a [`StoreError`] when Redis fails or does not answer within the
/// [timeout](RedisLimiterStore::timeout); [`RateLimitLoginLayer`] then limits with the same
/// policy in its own process until Redis answers again, unless told to fail closed.
///
/// [`MemoryLimiterStore`]: crate::ratelimit::MemoryLimiterStore
/// [`RateLimitLoginLayer`]: crate::ratelimit::RateLimitLoginLayer
#[derive(Clone)]
pub struct RedisLimiterStore {
    redis: Redis,
    scripts: Arc<Scripts>,
}

struct Scripts {
    limits: LoginLimits,
    check: Script,
    attempt: Script,
    succeeded: Script,
    refund: Script,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).map_or(MAX_MILLIS, |ms| ms.min(MAX_MILLIS))
}

/// The policy as Lua constants, in milliseconds.
fn constants(limits: &LoginLimits) -> String {
    let table = |backoff: &dyn Fn(u32) -> Duration, free: u32| {
        (1..=DOUBLINGS)
            .map(|i| millis(backoff(free.saturating_add(i))).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lua = String::new();
    let _ = writeln!(
        lua,
        "local PAIR_FREE, PAIR_DELAYS = {}, {{{}}}",
        limits.pair.free,
        table(&|n| limits.pair.delay(n), limits.pair.free)
    );
    let _ = writeln!(
        lua,
        "local ACCOUNT_FREE, ACCOUNT_DELAYS = {}, {{{}}}",
        limits.account.free,
        table(&|n| limits.account.delay(n), limits.account.free)
    );
    let _ = writeln!(
        lua,
        "local LOCK_AFTER, LOCK_FOR = {}, {}",
        limits.lock_after,
        millis(limits.lock_for)
    );
    let _ = writeln!(
        lua,
        "local CLIENT_INTERVAL, CLIENT_TOLERANCE = {}, {}",
        millis(limits.client_interval),
        millis(limits.client().tolerance())
    );
    let _ = writeln!(
        lua,
        "local VERIFY_INTERVAL, VERIFY_TOLERANCE = {}, {}",
        millis(limits.verify.interval),
        millis(limits.verify.tolerance())
    );
    let _ = writeln!(
        lua,
        "local REGISTER_INTERVAL, REGISTER_TOLERANCE = {}, {}",
        millis(limits.register.interval),
        millis(limits.register.tolerance())
    );
    let _ = writeln!(lua, "local FORGET_AFTER = {}", millis(limits.forget_after));
    lua
}

impl Scripts {
    fn new(limits: LoginLimits) -> Self {
        let head = constants(&limits) + include_str!("lua/limiter.lua");
        let script = |body: &str| Script::new(&(head.clone() + body));
        Self {
            check: script(include_str!("lua/limiter_check.lua")),
            attempt: script(include_str!("lua/limiter_attempt.lua")),
            succeeded: script(include_str!("lua/limiter_succeeded.lua")),
            refund: script(include_str!("lua/limiter_refund.lua")),
            limits,
        }
    }
}

super::store_settings!(RedisLimiterStore, "counters");

impl RedisLimiterStore {
    /// A store deciding with `limits` on this connection (see [`connect`](super::connect)),
    /// with [`DEFAULT_PREFIX`](super::DEFAULT_PREFIX) and
    /// [`DEFAULT_TIMEOUT`](super::DEFAULT_TIMEOUT). Every instance must use the same limits.
    #[must_use]
    pub fn new(connection: ConnectionManager, limits: LoginLimits) -> Self {
        Self {
            redis: Redis::new(connection),
            scripts: Arc::new(Scripts::new(limits)),
        }
    }

    /// Connects to `url` (see [`connect`](super::connect)) for a store of its own.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when `url` is not a Redis URL or the server does not answer.
    pub async fn connect(url: &str, limits: LoginLimits) -> Result<Self, StoreError> {
        Ok(Self::new(super::connect(url).await?, limits))
    }

    /// The policy the store decides with.
    #[must_use]
    pub fn limits(&self) -> &LoginLimits {
        &self.scripts.limits
    }

    /// The keys of an attempt: pair, username, client failures and client verifications; the
    /// client's failures alone without a username; the client's registrations alone for a
    /// registration.
    fn keys(&self, key: &LoginKey<'_>) -> Vec<String> {
        let client = key.client.to_string();
        if key.action == Action::Registration {
            return vec![self.redis.key(&["rl:g:", &client])];
        }
        let client_key = self.redis.key(&["rl:c:", &client]);
        match key.username {
            // An address never contains a space: the first one ends it.
            Some(username) => vec![
                self.redis.key(&["rl:p:", &client, " ", username]),
                self.redis.key(&["rl:a:", username]),
                client_key,
                self.redis.key(&["rl:v:", &client]),
            ],
            None => vec![client_key],
        }
    }

    fn invoke<T>(
        &self,
        script: fn(&Scripts) -> &Script,
        key: &LoginKey<'_>,
        now_ms: u64,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + 'static
    where
        T: ::redis::FromRedisValue + Send,
    {
        let Redis {
            mut connection,
            timeout,
            ..
        } = self.redis.clone();
        let scripts = Arc::clone(&self.scripts);
        let keys = self.keys(key);
        let action = match key.action {
            Action::Registration => "r",
            _ => "l",
        };
        async move {
            let mut invocation = script(&scripts).prepare_invoke();
            invocation.key(keys).arg(now_ms.min(MAX_MILLIS)).arg(action);
            run(timeout, invocation.invoke_async(&mut connection)).await
        }
    }
}

impl RedisLimiterStore {
    fn decide(
        &self,
        script: fn(&Scripts) -> &Script,
        key: &LoginKey<'_>,
        now_ms: u64,
    ) -> StoreFuture<Decision> {
        let answer = self.invoke::<(i64, u64)>(script, key, now_ms);
        StoreFuture::boxed(async move {
            let (reason, wait_ms) = answer.await?;
            decision(reason, wait_ms)
        })
    }
}

impl fmt::Debug for RedisLimiterStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiterStore")
            .field("limits", &self.scripts.limits)
            .field("prefix", &self.redis.prefix)
            .field("timeout", &self.redis.timeout)
            .finish_non_exhaustive()
    }
}

fn decision(reason: i64, wait_ms: u64) -> Result<Decision, StoreError> {
    let reason = match reason {
        0 => return Ok(Decision::Allow),
        1 => LimitReason::AccountLocked,
        2 => LimitReason::ClientAndUsername,
        3 => LimitReason::Username,
        4 => LimitReason::Client,
        5 => LimitReason::Verifications,
        6 => LimitReason::Registrations,
        _ => return Err(StoreError::new("redis: unexpected limiter answer")),
    };
    Ok(Decision::Limit {
        reason,
        retry_after: Duration::from_millis(wait_ms),
    })
}

impl LimiterStore for RedisLimiterStore {
    fn check(&self, key: &LoginKey<'_>, now_ms: u64) -> StoreFuture<Decision> {
        self.decide(|s| &s.check, key, now_ms)
    }

    fn attempt(&self, key: &LoginKey<'_>, now_ms: u64) -> StoreFuture<Decision> {
        self.decide(|s| &s.attempt, key, now_ms)
    }

    fn succeeded(&self, key: &LoginKey<'_>, now_ms: u64) -> StoreFuture<()> {
        let done = self.invoke::<i64>(|s| &s.succeeded, key, now_ms);
        StoreFuture::boxed(async move { done.await.map(drop) })
    }

    fn refund(&self, key: &LoginKey<'_>, now_ms: u64) -> StoreFuture<()> {
        let done = self.invoke::<i64>(|s| &s.refund, key, now_ms);
        StoreFuture::boxed(async move { done.await.map(drop) })
    }

    fn limits(&self) -> Option<&LoginLimits> {
        Some(&self.scripts.limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_is_written_into_the_scripts() {
        let lua = constants(&LoginLimits::default());
        assert!(lua.contains("local PAIR_FREE, PAIR_DELAYS = 5, {1000, 2000, 4000,"));
        assert!(lua.contains(", 900000, 900000}"), "{lua}");
        assert!(lua.contains("local LOCK_AFTER, LOCK_FOR = 100, 3600000"));
        assert!(lua.contains("local CLIENT_INTERVAL, CLIENT_TOLERANCE = 2000, 18000"));
        assert!(lua.contains("local VERIFY_INTERVAL, VERIFY_TOLERANCE = 1000, 19000"));
        assert!(lua.contains("local REGISTER_INTERVAL, REGISTER_TOLERANCE = 360000, 1440000"));
        assert!(lua.contains("local FORGET_AFTER = 86400000"));
    }

    #[test]
    fn sub_millisecond_backoffs_are_rounded_as_the_memory_store_rounds_them() {
        let limits = LoginLimits::default()
            .per_client_and_username(0, Duration::from_micros(1500), Duration::from_secs(1))
            .unwrap();
        // 1.5 ms, 3 ms, 6 ms: truncated after doubling, not doubled after truncating.
        assert!(constants(&limits).contains("{1, 3, 6, 12, 24,"));
    }

    #[test]
    fn answers_map_to_decisions() {
        assert_eq!(decision(0, 0).unwrap(), Decision::Allow);
        assert_eq!(
            decision(4, 2000).unwrap(),
            Decision::Limit {
                reason: LimitReason::Client,
                retry_after: Duration::from_secs(2)
            }
        );
        assert_eq!(
            decision(6, 1).unwrap(),
            Decision::Limit {
                reason: LimitReason::Registrations,
                retry_after: Duration::from_millis(1)
            }
        );
        assert!(decision(9, 0).is_err());
    }
}
