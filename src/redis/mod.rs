//! Stores in Redis, for apps that run several instances: [`RedisRefreshStore`] (refresh
//! families), [`RedisRevocationStore`] (the denylist) and [`RedisLimiterStore`] (login-limiter
//! counters). Feature `redis`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::Router;
//! use tower_jwt_auth::issuer::TokenIssuer;
//! use tower_jwt_auth::ratelimit::{LoginLimits, RateLimitLoginLayer};
//! use tower_jwt_auth::redis::{self, RedisLimiterStore, RedisRefreshStore, RedisRevocationStore};
//! use tower_jwt_auth::router::AuthRouter;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // One reconnecting connection, shared by the three stores (and cheap to clone).
//! let connection = redis::connect("redis://127.0.0.1:6379/").await?;
//! let limiter = RedisLimiterStore::new(connection.clone(), LoginLimits::default());
//!
//! // Every instance builds the same router on the same Redis (and the same signing key).
//! let issuer = TokenIssuer::hmac(b"a secret of at least thirty-two bytes", "https://api.example", "api")?;
//! let auth = AuthRouter::builder(issuer)
//!     .refresh_store(Arc::new(RedisRefreshStore::new(connection.clone())))
//!     .revocation_store(Arc::new(RedisRevocationStore::new(connection)))
//!     .rate_limit(RateLimitLoginLayer::new(Arc::new(limiter)))
//!     .build()?;
//! let app: Router = Router::new()
//!     // ... the application's routes, then .route_layer(auth.bearer_layer())
//!     .nest("/auth", auth.router());
//! # let _ = app;
//! # Ok(()) }
//! ```
//!
//! # What is shared, and how
//!
//! Every decision that must hold across instances is one server-side Lua script, so two
//! instances never both accept one refresh token, and the limiter counts every instance's
//! failures:
//!
//! - **Refresh families.** Rotation checks the presented token against the family's current
//!   one and either rotates it or, for a rotated token (a replay), deletes the whole family, in
//!   one script: of two concurrent rotations with one token, on any instances, exactly one
//!   wins. A family keeps its session record, its current token hash, the hashes of its last
//!   [`REMEMBERED_ROTATIONS`](crate::router::REMEMBERED_ROTATIONS) rotated tokens (for reuse
//!   detection) and its place in its user's set of sessions. The family record expires when
//!   its current token would (idle or absolute expiry, whichever is first); token-hash entries
//!   and the user's set expire with the session's absolute expiry. Only SHA-256 hashes of
//!   refresh tokens reach Redis.
//! - **The denylist.** Each revoked token id, session id and subject cut-off is one key that
//!   expires when the entry stops mattering (`SET … PXAT until`); a second revocation of the
//!   same entry never shortens it or moves a cut-off back.
//! - **The limiter.** Deciding about an attempt and counting it, and settling it later, are
//!   each one script running the arithmetic of [`LoginLimits`](crate::ratelimit::LoginLimits)
//!   (the same numbers decide as in the memory store), so attempts in flight on several
//!   instances at once are counted one after the other: per (client, username) and per
//!   username a failure record that expires when it is forgotten (or the account lock ends),
//!   per client a GCRA arrival time that expires when it is reached.
//!
//! Keys start with a prefix ([`DEFAULT_PREFIX`] unless set), so several apps can share one
//! server. The stores need Redis 6.2 or later on one server (a primary, with replicas if you
//! like): the scripts touch keys they compute, which Redis Cluster does not allow. Counters
//! and families follow the callers' clocks (the `now` they pass); denylist entries expire on
//! the Redis server's clock, so keep the router on the system clock (the default).
//!
//! # What Redis must keep
//!
//! A revocation holds only as long as its key does. Two server settings decide that:
//!
//! - **Persistence: `appendonly yes`.** A server without it (`appendonly no`, and `save ""` as
//!   many container images run it) comes back empty after a restart: every logged-out and
//!   revoked token works again until it expires, and every refresh family is gone. Snapshots
//!   alone (`save …`, the default without `appendonly`) lose what was written since the last
//!   one. With `appendonly yes` and the default `appendfsync everysec`, a crash loses at most
//!   about a second of writes.
//! - **Eviction: `maxmemory-policy noeviction`** (Redis's default; managed services often
//!   default to `volatile-lru`). Every key the stores write has a TTL, so under memory
//!   pressure any other policy, `volatile-*` included, silently drops denylist entries (revoked
//!   tokens work again), refresh families and limiter counters. With `noeviction` a full
//!   server refuses writes instead: a revocation then fails loudly (a [`StoreError`], 503 from
//!   the router) rather than vanishing.
//!
//! Replication is asynchronous: a failover to a replica loses the writes it had not received
//! yet, revocations included.
//!
//! [`durability`] asks a server for these settings (`CONFIG GET`, or `INFO` where `CONFIG` is
//! refused, as on managed services) and returns each problem as a [`DurabilityWarning`]; call
//! it at start and log them (the example server does).
//!
//! # When Redis is unreachable
//!
//! Every call gives up after a timeout ([`DEFAULT_TIMEOUT`] unless set) and answers a
//! [`StoreError`]; the connection reconnects by itself, so the stores work again as soon as
//! Redis does, without a restart. What an error means is the caller's policy:
//! [`BearerAuth`](crate::bearer::BearerAuth) fails closed (503) by default, the
//! [login limiter](crate::ratelimit::RateLimitLoginLayer) fails open (the login goes ahead,
//! logged), and the router's token endpoint answers 503.
//!
//! A rotation whose reply is lost (Redis went away after running it) has happened: the
//! client's retry with its old token then looks like a replay, and ends the session. That errs
//! on the safe side; the user logs in again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisResult};

use crate::store::StoreError;

mod durability;
mod limiter;
mod refresh;
mod revocation;

pub use durability::{Durability, DurabilityWarning, durability};
pub use limiter::RedisLimiterStore;
pub use refresh::RedisRefreshStore;
pub use revocation::RedisRevocationStore;

/// The prefix of every key the stores write, unless [set](RedisRefreshStore::prefix).
pub const DEFAULT_PREFIX: &str = "tjwt:";

/// How long a store waits for Redis before it answers a [`StoreError`], unless
/// [set](RedisRefreshStore::timeout).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The latest instant (Unix seconds, about year 141 000) the stores pass to Redis: every time
/// and TTL stays an exact integer in Lua's doubles and prints in full. Later instants are
/// clamped to it.
const MAX_UNIX_SECS: u64 = 1 << 42;

/// The largest duration in milliseconds the limiter passes to Lua (about 35 000 years).
const MAX_MILLIS: u64 = 1 << 50;

/// Connects to the Redis server at `url` (`redis://[:password@]host[:port][/db]`, or
/// `rediss://` when the `redis` crate has TLS enabled) with a connection that reconnects by
/// itself: give clones of it to [`RedisRefreshStore::new`], [`RedisRevocationStore::new`] and
/// [`RedisLimiterStore::new`].
///
/// The connection times out connects and replies after [`DEFAULT_TIMEOUT`]. When it is lost,
/// it reconnects in the background, retrying twice (about 50 ms, then 100 ms, apart) before
/// failing the calls waiting on it (a few hundred milliseconds while Redis is down); the next
/// call tries again, so the stores recover as soon as Redis is back.
///
/// # Errors
///
/// A [`StoreError`] when `url` is not a Redis URL or the server does not answer.
pub async fn connect(url: &str) -> Result<ConnectionManager, StoreError> {
    let client = Client::open(url).map_err(redis_error)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(DEFAULT_TIMEOUT))
        .set_response_timeout(Some(DEFAULT_TIMEOUT))
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
        .set_number_of_retries(2);
    let connection = ConnectionManager::new_with_config(client, config);
    run(DEFAULT_TIMEOUT, connection).await
}

/// The settings every store has: its key prefix and its timeout; for a store that holds nothing
/// but its connection (`connection only`), its constructors too.
macro_rules! store_settings {
    ($store:ident, $shared:literal, connection only) => {
        impl $store {
            /// A store on this connection (see [`connect`](super::connect)), with
            /// [`DEFAULT_PREFIX`](super::DEFAULT_PREFIX) and
            /// [`DEFAULT_TIMEOUT`](super::DEFAULT_TIMEOUT).
            #[must_use]
            pub fn new(connection: ::redis::aio::ConnectionManager) -> Self {
                Self {
                    redis: super::Redis::new(connection),
                }
            }

            /// Connects to `url` (see [`connect`](super::connect)) for a store of its own.
            ///
            /// # Errors
            ///
            /// A [`StoreError`](crate::store::StoreError) when `url` is not a Redis URL or the
            /// server does not answer.
            pub async fn connect(url: &str) -> Result<Self, crate::store::StoreError> {
                Ok(Self::new(super::connect(url).await?))
            }
        }
        super::store_settings!($store, $shared);
    };
    ($store:ident, $shared:literal) => {
        impl $store {
            #[doc = concat!(
                "The prefix of every key of this store (default [`DEFAULT_PREFIX`](super::DEFAULT_PREFIX)). ",
                "Instances that share ", $shared, " must use the same prefix."
            )]
            #[must_use]
            pub fn prefix(mut self, prefix: &str) -> Self {
                self.redis.prefix = std::sync::Arc::from(prefix);
                self
            }

            /// How long a call waits for Redis before failing with a
            /// [`StoreError`](crate::store::StoreError) (default
            /// [`DEFAULT_TIMEOUT`](super::DEFAULT_TIMEOUT)).
            #[must_use]
            pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
                self.redis.timeout = timeout;
                self
            }
        }
    };
}
pub(crate) use store_settings;

/// What every store holds: the connection, the key prefix and the timeout.
#[derive(Clone)]
struct Redis {
    connection: ConnectionManager,
    prefix: Arc<str>,
    timeout: Duration,
}

impl Redis {
    fn new(connection: ConnectionManager) -> Self {
        Self {
            connection,
            prefix: Arc::from(DEFAULT_PREFIX),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The prefix followed by `parts`.
    fn key(&self, parts: &[&str]) -> String {
        let mut key =
            String::with_capacity(self.prefix.len() + parts.iter().map(|p| p.len()).sum::<usize>());
        key.push_str(&self.prefix);
        for part in parts {
            key.push_str(part);
        }
        key
    }
}

/// A Redis call with a deadline; every failure becomes a [`StoreError`].
async fn run<T>(
    timeout: Duration,
    call: impl Future<Output = RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(redis_error),
        Err(_) => Err(StoreError::new("redis timed out")),
    }
}

fn redis_error(error: ::redis::RedisError) -> StoreError {
    StoreError::with_source("redis", error)
}

/// Lowercase hex of a token hash: the stores key token entries by it.
/// 32 bytes from 64 lower-case hex digits, as [`hex`] writes them.
fn unhex32(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let value = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (value(pair[0])? << 4) | value(pair[1])?;
    }
    Some(bytes)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_keyed_by_lowercase_hex() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_store_error() {
        // Port 1 on loopback: nothing listens there.
        let error = connect("redis://127.0.0.1:1/").await.unwrap_err();
        assert_eq!(error.message(), "redis");
        let error = connect("not a url").await.unwrap_err();
        assert_eq!(error.message(), "redis");
    }
}
