//! SQL stores: users, refresh families, the denylist, the login limiter and the one-time values
//! of external sign-in in SQLite (feature `sqlite`, one instance on an embedded file) or
//! PostgreSQL (feature `postgres`, several instances sharing one database; complete on its
//! own, no Redis needed).
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use tower_jwt_auth::router::{Created, NewUser, UserStore};
//! use tower_jwt_auth::sql::{Database, ReplicaOptions};
//!
//! let dir = std::env::temp_dir().join(format!("tja-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let url = format!("sqlite://{}", dir.join("auth.db").display());
//! // Creates the file when missing; `migrate` creates or updates the tables.
//! let db = Database::connect(&url).await?;
//! db.migrate().await?;
//!
//! let users = db.users();
//! let created = users
//!     .create(NewUser {
//!         username: "alice".into(),
//!         email: None,
//!         password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
//!         roles: vec!["user".into()],
//!         scopes: vec!["items:read".into()],
//!     })
//!     .await?;
//! assert!(matches!(created, Created::Created(_)));
//! assert!(users.find_by_username("alice").await?.is_some());
//!
//! // The revocation store answers `BearerAuth` from memory, kept current from the table.
//! let revocations = db.revocations(ReplicaOptions::default()).await?;
//! # drop(revocations);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "sqlite"))]
//! # fn main() {}
//! ```
//!
//! # Schema and migrations
//!
//! The tables (`auth_users`, `auth_identities`, `auth_account_tokens`, `auth_sessions`,
//! `auth_rotated_tokens`, `auth_revocations`, `auth_limiter_failures`, `auth_limiter_clients`,
//! `auth_one_time`) are created by [`migrate`] from plain
//! `.sql` files shipped in the crate (`src/sql/migrations/{sqlite,postgres}`), which other tools
//! can read and apply too. Migrations are recorded in sqlx's `_sqlx_migrations` table under
//! versions starting `20261206`; migrating ignores versions it does not know, so an
//! application can keep its own sqlx migrations in the same database (its migrator then needs
//! `set_ignore_missing(true)` in turn). Refresh tokens are stored only as SHA-256 hashes;
//! passwords only as the hasher's PHC strings.
//!
//! # What each store does
//!
//! - [`SqlUserStore`]: usernames and their look-alike skeletons are unique columns, so the
//!   check and the insert of [`UserStore::create`](crate::router::UserStore::create) are one
//!   atomic statement, on one instance or on several. External identities are unique by
//!   `(issuer, subject)` and by `(user, provider)`;
//!   [`create_linked`](crate::router::UserStore::create_linked) inserts the account and its
//!   identity in one transaction, and the unlinks of one account take turns.
//! - [`SqlRefreshStore`]: a rotation is one conditional `UPDATE … WHERE current_hash = old …
//!   RETURNING`, in a transaction with the record of the rotated token: of two concurrent
//!   rotations with one token exactly one wins, and the other (a replay) ends the family. The
//!   most recent [`REMEMBERED_ROTATIONS`](crate::router::REMEMBERED_ROTATIONS) rotated tokens
//!   of each family are kept for reuse detection.
//! - [`SqlRevocationStore`]: see [below](#revocation-without-a-round-trip).
//! - [`SqlLimiterStore`]: each decision is one transaction (SQLite: `BEGIN IMMEDIATE`;
//!   PostgreSQL: transaction-scoped advisory locks on the records' keys, taken in order), with
//!   the same policy and arithmetic as the in-memory limiter.
//! - [`SqlOneTimeStore`]: a take is one `DELETE … RETURNING`, so of concurrent takes of one
//!   value, on any number of instances, one gets it; expired values are deleted by the puts.
//!
//! Every call is bounded by the database's [timeout](Database::timeout) (2 s by default):
//! a database that is down or hung makes the store answer a
//! [`StoreError`] within it, which the router and the layers turn into 503 with
//! `Retry-After`. Nothing is answered before it is committed.
//!
//! # Revocation without a round trip
//!
//! [`BearerAuth`](crate::bearer::BearerAuth) checks revocation on every request; a
//! [`SqlRevocationStore`] answers from an in-process replica of the live denylist and
//! "not before" instants, never from the database. Its own writes apply to the replica as soon
//! as they are committed. Other instances' writes arrive by a catch-up that reads the
//! `auth_revocations` log past the last sequence number seen, every
//! [`poll_interval`](ReplicaOptions::poll_interval) (500 ms by default) and, on PostgreSQL, at
//! once on a `NOTIFY` from the writer. A revocation committed on one instance is therefore
//! refused by every other within one poll interval plus a query.
//!
//! When the replica has not synced for longer than [`max_staleness`](ReplicaOptions::max_staleness)
//! (5 s by default), the check fails with a [`StoreError`] (and `BearerAuth` answers 503)
//! rather than accept a token it cannot know about; it recovers at the next successful
//! catch-up. Entries past their `until` leave the replica and the table.
//!
//! On PostgreSQL, writers to the log take a lock on the table for their transaction, so
//! sequence numbers become visible in order and a catch-up by sequence never skips a row.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use crate::store::StoreError;

mod limiter;
mod one_time;
mod refresh;
mod revocation;
mod users;

/// The sqlx this module is built on, for applications that share its pools.
pub use sqlx;

pub use limiter::SqlLimiterStore;
pub use one_time::SqlOneTimeStore;
pub use refresh::SqlRefreshStore;
pub use revocation::{ReplicaOptions, SqlRevocationStore};
pub use users::SqlUserStore;

/// How long a store call may take by default before it fails with a [`StoreError`]: 2 s, so
/// that a request making two calls in sequence to a hung database (a login: the limiter,
/// then the refresh store) is still answered within 5 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection pool to the database that holds the stores, and the bound on each call.
/// Cloning is cheap (the pool is shared).
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    timeout: Duration,
}

#[derive(Clone)]
enum Pool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
}

/// Runs `$body` with `$p` bound to the concrete pool: the same code, compiled once per
/// backend, so that every query text is written once.
macro_rules! with_pool {
    ($db:expr, $p:ident => $body:expr) => {
        match &$db.pool {
            #[cfg(feature = "sqlite")]
            $crate::sql::Pool::Sqlite($p) => $body,
            #[cfg(feature = "postgres")]
            $crate::sql::Pool::Postgres($p) => $body,
        }
    };
}
use with_pool;

/// What differs between the backends beyond the query texts.
trait Backend {
    /// The sqlx database.
    type Db: sqlx::Database;

    /// `"sqlite"` or `"postgres"`.
    fn name(&self) -> &'static str;

    /// The migrations of this backend.
    fn migrator(&self) -> sqlx::migrate::Migrator;

    /// A transaction that will write: on SQLite `BEGIN IMMEDIATE` (the write lock from the
    /// start, so a transaction that reads first never fails to upgrade), on PostgreSQL a plain
    /// `BEGIN`.
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send;

    /// Serialises the transactions that lock the same `keys` until they end. SQLite needs
    /// nothing (one writer at a time); PostgreSQL takes transaction-scoped advisory locks,
    /// in sorted order so that two transactions never wait on each other.
    fn lock_keys<'c>(
        &'c self,
        conn: &'c mut <Self::Db as sqlx::Database>::Connection,
        keys: &'c mut [&str],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'c;

    /// Makes writers to the revocation log commit in sequence order (PostgreSQL: a table
    /// lock until the transaction ends, and a `NOTIFY` to the other instances at commit).
    fn lock_revocation_log<'c>(
        &'c self,
        conn: &'c mut <Self::Db as sqlx::Database>::Connection,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'c;
}

#[cfg(feature = "sqlite")]
impl Backend for sqlx::SqlitePool {
    type Db = sqlx::Sqlite;

    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn migrator(&self) -> sqlx::migrate::Migrator {
        sqlx::migrate!("src/sql/migrations/sqlite")
    }

    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>> + Send
    {
        self.begin_with("BEGIN IMMEDIATE")
    }

    async fn lock_keys<'c>(
        &'c self,
        _: &'c mut sqlx::SqliteConnection,
        _: &'c mut [&str],
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn lock_revocation_log<'c>(
        &'c self,
        _: &'c mut sqlx::SqliteConnection,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

/// The `NOTIFY` channel of revocation-log writes.
#[cfg(feature = "postgres")]
const REVOCATION_CHANNEL: &str = "auth_revocations";

#[cfg(feature = "postgres")]
impl Backend for sqlx::PgPool {
    type Db = sqlx::Postgres;

    fn name(&self) -> &'static str {
        "postgres"
    }

    fn migrator(&self) -> sqlx::migrate::Migrator {
        sqlx::migrate!("src/sql/migrations/postgres")
    }

    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>> + Send
    {
        self.begin()
    }

    async fn lock_keys<'c>(
        &'c self,
        conn: &'c mut sqlx::PgConnection,
        keys: &'c mut [&str],
    ) -> Result<(), sqlx::Error> {
        keys.sort_unstable();
        for (i, key) in keys.iter().enumerate() {
            if i > 0 && keys[i - 1] == *key {
                continue;
            }
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7474))")
                .bind(*key)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    async fn lock_revocation_log<'c>(
        &'c self,
        conn: &'c mut sqlx::PgConnection,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("LOCK TABLE auth_revocations IN EXCLUSIVE MODE")
            .execute(&mut *conn)
            .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(REVOCATION_CHANNEL)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

impl Database {
    /// Connects to `url`: `sqlite://path` (the file is created when missing; relative paths
    /// are relative to the working directory), `sqlite::memory:` (one private database, for
    /// tests), or `postgres://…` / `postgresql://…`.
    ///
    /// SQLite files are opened in WAL mode with `synchronous = FULL` (a committed write
    /// survives a power loss), foreign keys on and a 5 s busy timeout; a file it creates is
    /// readable and writable by its owner only, since it holds password hashes.
    ///
    /// # Errors
    ///
    /// An unsupported scheme (or one whose feature is off), an unparsable URL, or a database
    /// that cannot be reached within the [timeout](Self::timeout).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let timeout = DEFAULT_TIMEOUT;
        let pool = if url.starts_with("sqlite:") {
            connect_sqlite(url, timeout).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            connect_postgres(url, timeout).await?
        } else {
            return Err(StoreError::new(
                "unsupported database URL: expected sqlite:// or postgres://",
            ));
        };
        Ok(Self { pool, timeout })
    }

    /// Uses an SQLite pool the application built.
    #[cfg(feature = "sqlite")]
    #[must_use]
    pub fn from_sqlite(pool: sqlx::SqlitePool) -> Self {
        Self {
            pool: Pool::Sqlite(pool),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Uses a PostgreSQL pool the application built.
    #[cfg(feature = "postgres")]
    #[must_use]
    pub fn from_postgres(pool: sqlx::PgPool) -> Self {
        Self {
            pool: Pool::Postgres(pool),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The SQLite pool, when the database is SQLite (to share it with the application).
    #[cfg(feature = "sqlite")]
    #[must_use]
    pub fn as_sqlite(&self) -> Option<&sqlx::SqlitePool> {
        match &self.pool {
            Pool::Sqlite(pool) => Some(pool),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The PostgreSQL pool, when the database is PostgreSQL (to share it with the
    /// application).
    #[cfg(feature = "postgres")]
    #[must_use]
    pub fn as_postgres(&self) -> Option<&sqlx::PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Bounds every store call (queue for a connection included); past it the call fails
    /// with a [`StoreError`]. Default [`DEFAULT_TIMEOUT`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `"sqlite"` or `"postgres"`.
    #[must_use]
    pub fn backend(&self) -> &'static str {
        with_pool!(self, p => p.name())
    }

    /// Creates or updates the tables: see [`migrate`].
    ///
    /// # Errors
    ///
    /// As [`migrate`].
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate(self).await
    }

    /// The user store.
    #[must_use]
    pub fn users(&self) -> SqlUserStore {
        SqlUserStore::new(self.clone())
    }

    /// The refresh-family store.
    #[must_use]
    pub fn refresh(&self) -> SqlRefreshStore {
        SqlRefreshStore::new(self.clone())
    }

    /// The one-time values of external sign-in (flow state, sign-in codes).
    #[must_use]
    pub fn one_time(&self) -> SqlOneTimeStore {
        SqlOneTimeStore::new(self.clone())
    }

    /// The login limiter deciding with `limits`.
    #[must_use]
    pub fn limiter(&self, limits: crate::ratelimit::LoginLimits) -> SqlLimiterStore {
        SqlLimiterStore::new(self.clone(), limits)
    }

    /// The revocation store: loads the live denylist into its replica and starts keeping it
    /// current (a task on the current tokio runtime, which ends when the store is dropped).
    ///
    /// # Errors
    ///
    /// When the denylist cannot be read.
    pub async fn revocations(
        &self,
        options: ReplicaOptions,
    ) -> Result<SqlRevocationStore, StoreError> {
        SqlRevocationStore::start(self.clone(), options).await
    }

    /// Whether the database answers a trivial query within the timeout.
    ///
    /// # Errors
    ///
    /// When it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(async {
            with_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))
        })
        .await
    }

    /// Runs a database call within the timeout, mapping its error.
    async fn run<T>(
        &self,
        call: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(database_error),
            Err(_) => Err(StoreError::new("the database did not answer in time")),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("Database")
            .field("backend", &self.backend())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn database_error(error: sqlx::Error) -> StoreError {
    StoreError::with_source("database error", error)
}

/// Whether `error` is a unique-constraint violation.
fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(sqlx::error::DatabaseError::is_unique_violation)
}

/// Whether `error` is a foreign-key violation.
fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(sqlx::error::DatabaseError::is_foreign_key_violation)
}

#[cfg(feature = "sqlite")]
async fn connect_sqlite(url: &str, timeout: Duration) -> Result<Pool, StoreError> {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    let memory = url.contains(":memory:") || url.contains("mode=memory");
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::with_source("invalid sqlite URL", e))?
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
        .synchronous(SqliteSynchronous::Full);
    let options = if memory {
        options
    } else {
        create_owner_only(options.get_filename())?;
        options.journal_mode(SqliteJournalMode::Wal)
    };
    // An in-memory database lives as long as its one connection.
    let pool = if memory {
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        SqlitePoolOptions::new().max_connections(8)
    };
    let pool = pool
        .acquire_timeout(timeout)
        .connect_with(options)
        .await
        .map_err(|e| StoreError::with_source("cannot open the sqlite database", e))?;
    Ok(Pool::Sqlite(pool))
}

/// Creates the database file, when missing, readable and writable by its owner only: it
/// holds password hashes. (SQLite gives its WAL and shared-memory files the same mode.)
#[cfg(feature = "sqlite")]
fn create_owner_only(path: &std::path::Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(StoreError::with_source(
            "cannot create the sqlite database file",
            error,
        )),
    }
}

#[cfg(not(feature = "sqlite"))]
async fn connect_sqlite(_: &str, _: Duration) -> Result<Pool, StoreError> {
    Err(StoreError::new(
        "sqlite:// needs the crate's `sqlite` feature",
    ))
}

#[cfg(feature = "postgres")]
async fn connect_postgres(url: &str, timeout: Duration) -> Result<Pool, StoreError> {
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::with_source("invalid postgres URL", e))?
        .application_name("tower-jwt-auth");
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(timeout)
        .connect_with(options);
    let pool = tokio::time::timeout(timeout, pool)
        .await
        .map_err(|_| StoreError::new("the database did not answer in time"))?
        .map_err(|e| StoreError::with_source("cannot connect to postgres", e))?;
    Ok(Pool::Postgres(pool))
}

#[cfg(not(feature = "postgres"))]
async fn connect_postgres(_: &str, _: Duration) -> Result<Pool, StoreError> {
    Err(StoreError::new(
        "postgres:// needs the crate's `postgres` feature",
    ))
}

/// Creates or updates the stores' tables, each migration in its own transaction. Safe to
/// run at every start and from several instances at once (PostgreSQL: sqlx takes an
/// advisory lock). Versions the crate does not know (the application's own) are left alone.
///
/// # Errors
///
/// When the database cannot be reached, a migration fails, or a migration already applied
/// differs from the one shipped (its checksum).
pub async fn migrate(database: &Database) -> Result<(), StoreError> {
    let run = async {
        with_pool!(database, p => {
            let mut migrator = p.migrator();
            migrator.set_ignore_missing(true);
            migrator.run(p).await
        })
    };
    // Migrations may take longer than one call; bound them generously.
    match tokio::time::timeout(database.timeout * 20, run).await {
        Ok(result) => result.map_err(|e| StoreError::with_source("migration failed", e)),
        Err(_) => Err(StoreError::new("the database did not answer in time")),
    }
}

/// A Unix-seconds or milliseconds value as the databases' signed 64-bit integer.
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The inverse of [`int`]; a negative value (never written) reads as 0.
fn uint(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A list of roles or scopes as stored: a JSON array of strings.
fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

/// The inverse of [`json_list`].
fn parse_list(text: &str) -> Result<Vec<String>, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
