//! [`SqlRevocationStore`]: the denylist in the `auth_revocations` log, answered from an
//! in-process replica.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::Row;
use tokio::sync::Mutex;

use super::{Backend, Database, int, uint, with_pool};
use crate::revocation::{MemoryRevocationStore, RevocationQuery, RevocationStore};
use crate::store::{self, StoreError, StoreFuture};

/// How the replica of a [`SqlRevocationStore`] is kept current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaOptions {
    poll_interval: Duration,
    max_staleness: Duration,
    sweep_interval: Duration,
    max_entries: usize,
}

impl Default for ReplicaOptions {
    /// A catch-up every 500 ms, fail closed after 5 s without one, expired rows deleted every
    /// minute, at most [`DEFAULT_MAX_ENTRIES`](crate::revocation::DEFAULT_MAX_ENTRIES) live
    /// entries in memory.
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(500),
            max_staleness: Duration::from_secs(5),
            sweep_interval: Duration::from_secs(60),
            max_entries: crate::revocation::DEFAULT_MAX_ENTRIES,
        }
    }
}

impl ReplicaOptions {
    /// How often the replica reads the log for other instances' writes (PostgreSQL also reads
    /// at once on a notification). A revocation on another instance is refused here within
    /// about this long. Default 500 ms.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// How long the replica may go without a successful catch-up before every check fails
    /// with a [`StoreError`] (`BearerAuth`: 503) rather than accept a token revoked
    /// elsewhere. Default 5 s; keep it several poll intervals long.
    #[must_use]
    pub fn max_staleness(mut self, bound: Duration) -> Self {
        self.max_staleness = bound;
        self
    }

    /// How often expired rows are deleted from the table. Default one minute.
    #[must_use]
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// The cap on live entries held in memory (see
    /// [`MemoryRevocationStore::max_entries`]: past it, revocations are kept coarsely, never
    /// dropped).
    #[must_use]
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = max;
        self
    }
}

/// [`RevocationStore`] on the `auth_revocations` table, checked without a database round trip.
///
/// Checks are answered from an in-process replica (a [`MemoryRevocationStore`]); writes
/// go to the table first and then to the replica, so this instance refuses a token as soon as
/// its revocation is committed. Other instances' writes are read by sequence number every
/// [poll interval](ReplicaOptions::poll_interval), and at once on PostgreSQL notifications.
/// Past [`max_staleness`](ReplicaOptions::max_staleness) without a successful read, checks fail
/// (closed) until the database answers again. See the [module docs](super) for the whole
/// contract.
///
/// Cloning shares the replica. The task that keeps it current ends when the last clone is
/// dropped.
#[derive(Clone)]
pub struct SqlRevocationStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    replica: MemoryRevocationStore,
    options: ReplicaOptions,
    /// The highest sequence number applied to the replica.
    cursor: AtomicI64,
    /// When the last successful catch-up started (ms since `base`).
    synced_at: AtomicU64,
    base: Instant,
    /// Whether the last catch-up failed (the outage is logged once).
    failing: AtomicBool,
    /// One catch-up at a time.
    catching_up: Mutex<()>,
}

impl Inner {
    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn stale(&self) -> bool {
        let since = self
            .elapsed_ms()
            .saturating_sub(self.synced_at.load(Ordering::Acquire));
        u128::from(since) > self.options.max_staleness.as_millis()
    }
}

/// Rows read per catch-up query.
const PAGE: i64 = 4096;

impl SqlRevocationStore {
    /// Loads the live denylist of `db` and starts keeping the replica current (see also
    /// [`Database::revocations`]). Needs a tokio runtime.
    ///
    /// # Errors
    ///
    /// When the denylist cannot be read.
    pub async fn start(db: Database, options: ReplicaOptions) -> Result<Self, StoreError> {
        let inner = Arc::new(Inner {
            db,
            replica: MemoryRevocationStore::new().max_entries(options.max_entries),
            options,
            cursor: AtomicI64::new(0),
            synced_at: AtomicU64::new(0),
            base: Instant::now(),
            failing: AtomicBool::new(false),
            catching_up: Mutex::new(()),
        });
        let store = Self { inner };
        store.catch_up().await?;
        tokio::spawn(keep_current(Arc::downgrade(&store.inner)));
        Ok(store)
    }

    /// Reads the log past the last row applied and applies it to the replica now (the
    /// background task does this every poll interval).
    ///
    /// # Errors
    ///
    /// The database's; the replica keeps what it had.
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        catch_up(&self.inner).await
    }

    /// Whether the replica has gone longer than its staleness bound without a successful
    /// catch-up (checks then fail).
    #[must_use]
    pub fn is_stale(&self) -> bool {
        self.inner.stale()
    }

    /// Live entries in the replica.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.replica.len()
    }

    /// Whether the replica holds no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Deletes the rows whose `until` has passed; returns how many.
    ///
    /// # Errors
    ///
    /// The database's.
    pub async fn sweep(&self) -> Result<u64, StoreError> {
        let db = &self.inner.db;
        let now = int(unix_now());
        db.run(async {
            with_pool!(db, p => {
                let done = sqlx::query("DELETE FROM auth_revocations WHERE until <= $1")
                    .bind(now)
                    .execute(p)
                    .await?;
                Ok(done.rows_affected())
            })
        })
        .await
    }

    /// Appends one row to the log, then applies it to the replica.
    fn write(&self, entry: Entry) -> StoreFuture<()> {
        let inner = Arc::clone(&self.inner);
        StoreFuture::boxed(async move {
            let db = &inner.db;
            db.run(async {
                with_pool!(db, p => {
                    let mut tx = p.begin_write().await?;
                    p.lock_revocation_log(&mut *tx).await?;
                    sqlx::query(
                        "INSERT INTO auth_revocations (kind, issuer, id, not_before, until) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(entry.kind.code())
                    .bind(&entry.issuer)
                    .bind(&entry.id)
                    .bind(int(entry.not_before))
                    .bind(int(entry.until))
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await
                })
            })
            .await?;
            apply(&inner.replica, &entry).await
        })
    }
}

impl fmt::Debug for SqlRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlRevocationStore")
            .field("db", &self.inner.db)
            .field("options", &self.inner.options)
            .field("entries", &self.inner.replica.len())
            .field("cursor", &self.inner.cursor.load(Ordering::Relaxed))
            .finish()
    }
}

impl RevocationStore for SqlRevocationStore {
    fn is_revoked(&self, token: &RevocationQuery<'_>) -> StoreFuture<bool> {
        if self.inner.stale() {
            return StoreFuture::ready(Err(StoreError::new(
                "the revocation replica has not synced within its bound",
            )));
        }
        self.inner.replica.is_revoked(token)
    }

    fn revoke_token(&self, issuer: &str, jti: &str, until: u64) -> StoreFuture<()> {
        self.write(Entry::new(Kind::Token, issuer, jti, 0, until))
    }

    fn revoke_session(&self, issuer: &str, sid: &str, until: u64) -> StoreFuture<()> {
        self.write(Entry::new(Kind::Session, issuer, sid, 0, until))
    }

    fn revoke_subject_before(
        &self,
        issuer: &str,
        subject: &str,
        not_before: u64,
        until: u64,
    ) -> StoreFuture<()> {
        self.write(Entry::new(
            Kind::Subject,
            issuer,
            subject,
            not_before,
            until,
        ))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Token,
    Session,
    Subject,
}

impl Kind {
    const fn code(self) -> &'static str {
        match self {
            Self::Token => "t",
            Self::Session => "s",
            Self::Subject => "u",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        match code {
            "t" => Some(Self::Token),
            "s" => Some(Self::Session),
            "u" => Some(Self::Subject),
            _ => None,
        }
    }
}

/// One row of the log.
struct Entry {
    kind: Kind,
    issuer: String,
    id: String,
    not_before: u64,
    until: u64,
}

impl Entry {
    fn new(kind: Kind, issuer: &str, id: &str, not_before: u64, until: u64) -> Self {
        Self {
            kind,
            issuer: issuer.to_owned(),
            id: id.to_owned(),
            not_before,
            until,
        }
    }
}

async fn apply(replica: &MemoryRevocationStore, entry: &Entry) -> Result<(), StoreError> {
    let (issuer, id) = (entry.issuer.as_str(), entry.id.as_str());
    match entry.kind {
        Kind::Token => replica.revoke_token(issuer, id, entry.until).await,
        Kind::Session => replica.revoke_session(issuer, id, entry.until).await,
        Kind::Subject => {
            replica
                .revoke_subject_before(issuer, id, entry.not_before, entry.until)
                .await
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Applies the rows past the cursor, page by page.
async fn catch_up(inner: &Inner) -> Result<(), StoreError> {
    let _one = inner.catching_up.lock().await;
    // Everything committed before this instant is read below.
    let started = inner.elapsed_ms();
    let result = read_log(inner).await;
    match &result {
        Ok(()) => {
            inner.synced_at.fetch_max(started, Ordering::AcqRel);
            if inner.failing.swap(false, Ordering::AcqRel) {
                tracing::info!(
                    target: crate::telemetry::TARGET_STORE,
                    reason = "store_recovered",
                    store = "revocation",
                    "the revocation replica is syncing again"
                );
            }
        }
        Err(error) => {
            if inner.failing.swap(true, Ordering::AcqRel) {
                store::failed_again(store::Kind::Revocation, error);
            } else {
                store::failed(
                    store::Kind::Revocation,
                    error,
                    "the revocation replica cannot sync; checks fail once it is past its bound",
                );
            }
        }
    }
    result
}

async fn read_log(inner: &Inner) -> Result<(), StoreError> {
    let db = &inner.db;
    loop {
        let cursor = inner.cursor.load(Ordering::Acquire);
        let now = int(unix_now());
        let rows = db
            .run(async {
                with_pool!(db, p => {
                    let rows = sqlx::query(
                        "SELECT seq, kind, issuer, id, not_before, until FROM auth_revocations \
                         WHERE seq > $1 ORDER BY seq LIMIT $2",
                    )
                    .bind(cursor)
                    .bind(PAGE)
                    .fetch_all(p)
                    .await?;
                    rows.iter()
                        .map(|row| {
                            let code: String = row.try_get("kind")?;
                            Ok::<_, sqlx::Error>((
                                row.try_get::<i64, _>("seq")?,
                                Kind::from_code(&code),
                                Entry {
                                    kind: Kind::Token,
                                    issuer: row.try_get("issuer")?,
                                    id: row.try_get("id")?,
                                    not_before: uint(row.try_get("not_before")?),
                                    until: uint(row.try_get("until")?),
                                },
                            ))
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .await?;
        let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= PAGE;
        let mut last = cursor;
        for (seq, kind, mut entry) in rows {
            last = last.max(seq);
            // A kind this version does not know (a newer schema) is skipped, not fatal.
            let Some(kind) = kind else { continue };
            if int(entry.until) <= now {
                continue;
            }
            entry.kind = kind;
            apply(&inner.replica, &entry).await?;
        }
        inner.cursor.fetch_max(last, Ordering::AcqRel);
        if !full {
            return Ok(());
        }
    }
}

/// Keeps the replica current until the store is dropped.
async fn keep_current(store: Weak<Inner>) {
    let Some(inner) = store.upgrade() else { return };
    let (poll, sweep_every) = (inner.options.poll_interval, inner.options.sweep_interval);
    let mut notifications = Notifications::new(&inner.db);
    drop(inner);
    let mut last_sweep = Instant::now();
    loop {
        notifications.wait(poll).await;
        let Some(inner) = store.upgrade() else { return };
        // Failures are logged inside; the staleness bound decides what checks answer.
        let _ = catch_up(&inner).await;
        if last_sweep.elapsed() >= sweep_every {
            last_sweep = Instant::now();
            let store = SqlRevocationStore { inner };
            if let Err(error) = store.sweep().await {
                store::failed_again(store::Kind::Revocation, &error);
            }
        }
    }
}

/// What wakes the catch-up before its poll interval: PostgreSQL notifications of writes to
/// the log. SQLite has none (one instance; its own writes apply at once).
enum Notifications {
    None,
    #[cfg(feature = "postgres")]
    Postgres {
        pool: sqlx::PgPool,
        listener: Option<sqlx::postgres::PgListener>,
    },
}

impl Notifications {
    fn new(db: &Database) -> Self {
        match &db.pool {
            #[cfg(feature = "postgres")]
            super::Pool::Postgres(pool) => Self::Postgres {
                pool: pool.clone(),
                listener: None,
            },
            #[allow(unreachable_patterns)]
            _ => Self::None,
        }
    }

    /// Waits for a notification or `poll`, whichever comes first.
    async fn wait(&mut self, poll: Duration) {
        match self {
            Self::None => tokio::time::sleep(poll).await,
            #[cfg(feature = "postgres")]
            Self::Postgres { pool, listener } => {
                if listener.is_none() {
                    *listener = listen(pool).await;
                }
                let Some(active) = listener.as_mut() else {
                    tokio::time::sleep(poll).await;
                    return;
                };
                match tokio::time::timeout(poll, active.try_recv()).await {
                    // A notification, or the poll interval: catch up either way.
                    Ok(Ok(Some(_))) | Err(_) => {}
                    // The connection dropped (notifications may have been missed: the
                    // catch-up reads them), or failed: listen again next time.
                    Ok(Ok(None) | Err(_)) => *listener = None,
                }
            }
        }
    }
}

#[cfg(feature = "postgres")]
async fn listen(pool: &sqlx::PgPool) -> Option<sqlx::postgres::PgListener> {
    let connect = async {
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen(super::REVOCATION_CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match tokio::time::timeout(Duration::from_secs(3), connect).await {
        Ok(Ok(listener)) => Some(listener),
        _ => None,
    }
}
