//! [`SqlLimiterStore`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Row;

use super::{Backend, Database, int, uint, with_pool};
use crate::ratelimit::{
    Action, ClientRates, Decision, Failures, LimiterStore, LoginKey, LoginLimits, Refund,
};
use crate::store::{StoreError, StoreFuture};

/// [`LimiterStore`] in the `auth_limiter_failures` and `auth_limiter_clients` tables, shared
/// by every instance on the database.
///
/// Each decision is one transaction over the attempt's three records (the (client, username)
/// pair, the username, the client): SQLite takes its write lock at `BEGIN IMMEDIATE`,
/// PostgreSQL takes a transaction-scoped advisory lock per record key, in order. Two
/// instances deciding about one client or username at once therefore decide one after the
/// other, as with the in-memory and Redis stores; the policy and the arithmetic are theirs.
/// Expired records are deleted every 1024 attempts.
#[derive(Clone)]
pub struct SqlLimiterStore {
    db: Database,
    limits: Arc<LoginLimits>,
    attempts: Arc<AtomicU64>,
}

/// The keys of an attempt's records.
struct Keys {
    pair: Option<String>,
    account: Option<String>,
    client: String,
}

impl Keys {
    fn of(key: &LoginKey<'_>) -> Self {
        let client = key.client.to_string();
        // An address never contains '|': the name is everything after the first one.
        let pair = key.username.map(|name| format!("p:{client}|{name}"));
        let account = key.username.map(|name| format!("a:{name}"));
        Self {
            pair,
            account,
            client,
        }
    }

    fn locks(&self) -> Vec<&str> {
        let mut locks = vec![self.client.as_str()];
        locks.extend(self.pair.as_deref());
        locks.extend(self.account.as_deref());
        locks
    }
}

/// Reads the live failure record under `$key` (an `Option<String>`), or the empty one.
macro_rules! read_failures {
    ($conn:expr, $key:expr, $now:expr) => {{
        match $key {
            None => Failures::default(),
            Some(key) => {
                let row = sqlx::query(
                    "SELECT count, last_ms, locked_until_ms FROM auth_limiter_failures \
                     WHERE key = $1 AND expires_ms > $2",
                )
                .bind(key)
                .bind(int($now))
                .fetch_optional($conn)
                .await?;
                match row {
                    None => Failures::default(),
                    Some(row) => Failures {
                        count: u32::try_from(row.try_get::<i64, _>("count")?).unwrap_or(u32::MAX),
                        last_ms: uint(row.try_get("last_ms")?),
                        locked_until_ms: uint(row.try_get("locked_until_ms")?),
                    },
                }
            }
        }
    }};
}

/// Writes (or with `None`, deletes) the failure record under `$key`.
macro_rules! write_failures {
    ($conn:expr, $limits:expr, $key:expr, $record:expr) => {{
        match $record {
            Some(record) => {
                sqlx::query(
                    "INSERT INTO auth_limiter_failures \
                     (key, count, last_ms, locked_until_ms, expires_ms) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (key) DO UPDATE SET count = excluded.count, \
                     last_ms = excluded.last_ms, locked_until_ms = excluded.locked_until_ms, \
                     expires_ms = excluded.expires_ms",
                )
                .bind($key)
                .bind(i64::from(record.count))
                .bind(int(record.last_ms))
                .bind(int(record.locked_until_ms))
                .bind(int($limits.expiry_ms(record)))
                .execute($conn)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM auth_limiter_failures WHERE key = $1")
                    .bind($key)
                    .execute($conn)
                    .await?;
            }
        }
    }};
}

/// Reads a client's rates (an absent record is all zero).
macro_rules! read_rates {
    ($conn:expr, $client:expr) => {{
        let row = sqlx::query(
            "SELECT failures_ms, verifications_ms, registrations_ms FROM auth_limiter_clients \
             WHERE client = $1",
        )
        .bind($client)
        .fetch_optional($conn)
        .await?;
        match row {
            None => ClientRates::default(),
            Some(row) => ClientRates {
                failures: uint(row.try_get("failures_ms")?),
                verifications: uint(row.try_get("verifications_ms")?),
                registrations: uint(row.try_get("registrations_ms")?),
            },
        }
    }};
}

/// Writes (or with `None`, deletes) a client's rates.
macro_rules! write_rates {
    ($conn:expr, $client:expr, $rates:expr) => {{
        match $rates {
            Some(rates) => {
                sqlx::query(
                    "INSERT INTO auth_limiter_clients \
                     (client, failures_ms, verifications_ms, registrations_ms, expires_ms) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (client) DO UPDATE SET failures_ms = excluded.failures_ms, \
                     verifications_ms = excluded.verifications_ms, \
                     registrations_ms = excluded.registrations_ms, \
                     expires_ms = excluded.expires_ms",
                )
                .bind($client)
                .bind(int(rates.failures))
                .bind(int(rates.verifications))
                .bind(int(rates.registrations))
                .bind(int(rates.expiry_ms()))
                .execute($conn)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM auth_limiter_clients WHERE client = $1")
                    .bind($client)
                    .execute($conn)
                    .await?;
            }
        }
    }};
}

impl SqlLimiterStore {
    /// The limiter of `db` deciding with `limits` (see also [`Database::limiter`]).
    #[must_use]
    pub fn new(db: Database, limits: LoginLimits) -> Self {
        Self {
            db,
            limits: Arc::new(limits),
            attempts: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Deletes the records that have expired by `now_ms`; returns how many.
    ///
    /// # Errors
    ///
    /// The database's.
    pub async fn sweep(&self, now_ms: u64) -> Result<u64, StoreError> {
        let db = &self.db;
        db.run(async {
            with_pool!(db, p => {
                let failures = sqlx::query("DELETE FROM auth_limiter_failures WHERE expires_ms <= $1")
                    .bind(int(now_ms))
                    .execute(p)
                    .await?
                    .rows_affected();
                let clients = sqlx::query("DELETE FROM auth_limiter_clients WHERE expires_ms <= $1")
                    .bind(int(now_ms))
                    .execute(p)
                    .await?
                    .rows_affected();
                Ok(failures + clients)
            })
        })
        .await
    }

    /// Runs a settlement (`succeeded` or `refund`) of `key`.
    fn settle(&self, key: &LoginKey<'_>, now_ms: u64, success: bool) -> StoreFuture<()> {
        let this = self.clone();
        let keys = Keys::of(key);
        let action = key.action;
        StoreFuture::boxed(async move {
            let limits = &*this.limits;
            let db = &this.db;
            db.run(async {
                with_pool!(db, p => {
                    let mut tx = p.begin_write().await?;
                    p.lock_keys(&mut *tx, &mut keys.locks()).await?;
                    if action == Action::Registration {
                        // A registration attempt is kept whatever its outcome, unless it
                        // ended neither way.
                        if !success {
                            let rates = read_rates!(&mut *tx, &keys.client);
                            let rates = limits.refund_client(rates, Refund::Registration, now_ms);
                            write_rates!(&mut *tx, &keys.client, rates);
                        }
                        return tx.commit().await;
                    }
                    for (key, account) in [(&keys.pair, false), (&keys.account, true)] {
                        let Some(key) = key else { continue };
                        let record = if success {
                            // A success ends the run of failures (the password was right).
                            None
                        } else {
                            let record = read_failures!(&mut *tx, Some(key), now_ms);
                            limits.refund(record, account)
                        };
                        write_failures!(&mut *tx, limits, key, record);
                    }
                    // The verification stays counted either way.
                    let rates = read_rates!(&mut *tx, &keys.client);
                    let rates = limits.refund_client(rates, Refund::Failure, now_ms);
                    write_rates!(&mut *tx, &keys.client, rates);
                    tx.commit().await
                })
            })
            .await
        })
    }
}

impl fmt::Debug for SqlLimiterStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlLimiterStore")
            .field("db", &self.db)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl LimiterStore for SqlLimiterStore {
    fn check(&self, key: &LoginKey<'_>, now_ms: u64) -> StoreFuture<Decision> {
        let this = self.clone();
        let keys = Keys::of(key);
        let action = key.action;
        StoreFuture::boxed(async move {
            let db = &this.db;
            let (pair, account, rates) = db
                .run(async {
                    with_pool!(db, p => {
                        let pair = read_failures!(p, &keys.pair, now_ms);
                        let account = read_failures!(p, &keys.account, now_ms);
                        let rates = read_rates!(p, &keys.client);
                        Ok((pair, account, rates))
                    })
                })
                .await?;
            let password = keys.pair.is_some();
            Ok(this
                .limits
                .decide_attempt(action, password, pair, account, rates, now_ms))
        })
    }

    fn attempt(&self, key: &LoginKey<'_>, now_ms: u64) -> StoreFuture<Decision> {
        let this = self.clone();
        let keys = Keys::of(key);
        let action = key.action;
        StoreFuture::boxed(async move {
            if this.attempts.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
                this.sweep(now_ms).await?;
            }
            let limits = &*this.limits;
            let db = &this.db;
            db.run(async {
                with_pool!(db, p => {
                    let mut tx = p.begin_write().await?;
                    p.lock_keys(&mut *tx, &mut keys.locks()).await?;
                    let pair = read_failures!(&mut *tx, &keys.pair, now_ms);
                    let account = read_failures!(&mut *tx, &keys.account, now_ms);
                    let rates = read_rates!(&mut *tx, &keys.client);
                    let password = keys.pair.is_some();
                    let (decision, charged) =
                        limits.charge_attempt(action, password, pair, account, rates, now_ms);
                    let Some(charged) = charged else {
                        tx.commit().await?;
                        return Ok(decision);
                    };
                    if let (Some((pair, account)), Some(pair_key), Some(account_key)) =
                        (charged.failures, &keys.pair, &keys.account)
                    {
                        write_failures!(&mut *tx, limits, pair_key, Some(pair));
                        write_failures!(&mut *tx, limits, account_key, Some(account));
                    }
                    write_rates!(&mut *tx, &keys.client, Some(charged.rates));
                    tx.commit().await?;
                    Ok(decision)
                })
            })
            .await
        })
    }

    fn succeeded(&self, key: &LoginKey<'_>, now_ms: u64) -> StoreFuture<()> {
        self.settle(key, now_ms, true)
    }

    fn refund(&self, key: &LoginKey<'_>, now_ms: u64) -> StoreFuture<()> {
        self.settle(key, now_ms, false)
    }

    fn limits(&self) -> Option<&LoginLimits> {
        Some(&self.limits)
    }
}
