//! The SQL stores on a real SQLite file and a real PostgreSQL cluster, each test's own: the
//! conformance suite, migrations, the revocation replica across instances (staleness bound,
//! fail closed, recovery), and the database killed and hung.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tower_jwt_auth::ratelimit::LimiterStore;
use tower_jwt_auth::revocation::{RevocationQuery, RevocationStore};
use tower_jwt_auth::router::{RefreshStore, TokenHash, UserStore};
use tower_jwt_auth::sql::{Database, ReplicaOptions};

use crate::common::postgres_server::Postgres;
use crate::conformance::{self, ISSUER, session, unix_now};

/// A fresh SQLite file in a directory of its own, removed on drop.
pub(crate) struct SqliteFile {
    dir: PathBuf,
}

impl SqliteFile {
    pub(crate) fn new() -> Self {
        static FILES: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tower-jwt-auth-sqlite-{}-{}",
            std::process::id(),
            FILES.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    pub(crate) fn url(&self) -> String {
        format!("sqlite://{}", self.dir.join("auth.db").display())
    }

    /// A new pool on the file, migrated (each call: another "instance").
    pub(crate) async fn database(&self) -> Database {
        let db = Database::connect(&self.url()).await.unwrap();
        db.migrate().await.unwrap();
        db
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs one statement of the test's own on `db`.
pub(crate) async fn execute(db: &Database, statement: &str) {
    use tower_jwt_auth::sql::sqlx;
    match (db.as_sqlite(), db.as_postgres()) {
        (Some(pool), _) => drop(sqlx::query(statement).execute(pool).await.unwrap()),
        (_, Some(pool)) => drop(sqlx::query(statement).execute(pool).await.unwrap()),
        _ => unreachable!("a database is one or the other"),
    }
}

/// A fresh database on `server`, migrated; its URL.
pub(crate) async fn postgres_database(server: &Postgres) -> String {
    static DATABASES: AtomicUsize = AtomicUsize::new(0);
    let name = format!("t{}", DATABASES.fetch_add(1, Ordering::Relaxed));
    let admin = Database::connect(&server.url()).await.unwrap();
    execute(&admin, &format!("CREATE DATABASE {name}")).await;
    let url = server.url_of(&name);
    Database::connect(&url)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
    url
}

/// The running cluster, or return from the test after printing `SKIPPED`.
macro_rules! postgres_or_skip {
    ($test:literal) => {
        match Postgres::start($test) {
            Some(server) => server,
            None => return,
        }
    };
}

/// Every conformance function on fresh databases from `fresh`.
async fn conform<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Database>,
{
    conformance::refresh_store(&fresh().await.refresh()).await;
    conformance::concurrent_rotations(Arc::new(fresh().await.refresh())).await;
    conformance::refresh_retries(&fresh().await.refresh()).await;
    conformance::concurrent_retries(Arc::new(fresh().await.refresh())).await;
    let db = fresh().await;
    let revocations = db.revocations(ReplicaOptions::default()).await.unwrap();
    conformance::revocation_store(&revocations).await;
    // What one instance wrote, a new one loads.
    let reloaded = db.revocations(ReplicaOptions::default()).await.unwrap();
    conformance_revocations_hold(&reloaded).await;
    conformance::user_store(&fresh().await.users()).await;
    conformance::user_emails(&fresh().await.users()).await;
    conformance::account_tokens(&fresh().await.users()).await;
    conformance::concurrent_redemptions(Arc::new(fresh().await.users())).await;
    conformance::concurrent_registrations(Arc::new(fresh().await.users())).await;
    // One pool of several connections: to the database, as many writers as instances.
    conformance::concurrent_demotions(Arc::new(fresh().await.users())).await;
    conformance::identities(&fresh().await.users()).await;
    conformance::concurrent_identities(Arc::new(fresh().await.users())).await;
    conformance::one_time(&fresh().await.one_time()).await;
    conformance::concurrent_takes(Arc::new(fresh().await.one_time())).await;
    conformance::concurrent_attempts(Arc::new(
        fresh().await.limiter(conformance::concurrent_policy()),
    ))
    .await;
    let mut databases = Vec::new();
    for _ in 0..4 {
        databases.push(fresh().await);
    }
    conformance::limiter_parity(|limits, index| {
        Arc::new(databases[index].limiter(limits)) as Arc<dyn LimiterStore>
    })
    .await;
}

/// What [`conformance::revocation_store`] left revoked is revoked.
async fn conformance_revocations_hold(store: &dyn RevocationStore) {
    let now = unix_now();
    for query in [
        RevocationQuery::new(ISSUER).token_id("j1"),
        RevocationQuery::new(ISSUER).session_id("s1"),
        RevocationQuery::new(ISSUER)
            .subject("alice")
            .issued_at(now - 11),
    ] {
        assert!(store.is_revoked(&query).await.unwrap(), "{query:?}");
    }
    assert!(
        !store
            .is_revoked(&RevocationQuery::new(ISSUER).token_id("old"))
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_stores_conform() {
    let files: std::sync::Mutex<Vec<SqliteFile>> = std::sync::Mutex::new(Vec::new());
    conform(|| {
        let file = SqliteFile::new();
        let url = file.url();
        files.lock().unwrap().push(file);
        async move {
            let db = Database::connect(&url).await.unwrap();
            db.migrate().await.unwrap();
            db
        }
    })
    .await;
}

/// An application's own SQLite pool may leave foreign keys off (SQLite's default): deleting
/// an account still deletes its identities, not by the foreign key's cascade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_identities_go_with_their_account_without_foreign_keys() {
    use std::str::FromStr;
    use tower_jwt_auth::sql::sqlx;

    let file = SqliteFile::new();
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&file.url())
        .unwrap()
        .create_if_missing(true)
        .foreign_keys(false);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap();
    let enforced: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(enforced, 0, "the test needs foreign keys off");
    let db = Database::from_sqlite(pool.clone());
    db.migrate().await.unwrap();
    conformance::identities(&db.users()).await;
    // What the suite left: its last account, with one identity; deleting it leaves none.
    let users = db.users();
    let last = users.find_by_username("gina").await.unwrap().unwrap();
    assert_eq!(users.identities(&last.id).await.unwrap().len(), 1);
    users.delete(&last.id, None).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM auth_identities")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stores_conform() {
    let server = postgres_or_skip!("postgres_stores_conform");
    let server = &server;
    conform(|| async move {
        Database::connect(&postgres_database(server).await)
            .await
            .unwrap()
    })
    .await;
}

#[tokio::test]
async fn migrations_run_again_and_leave_an_applications_own_alone() {
    let file = SqliteFile::new();
    let db = file.database().await;
    // Again: nothing to do.
    db.migrate().await.unwrap();
    // The application's own migration, recorded in the same table, is left alone.
    execute(
        &db,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (1, 'app', TRUE, x'00', 0)",
    )
    .await;
    db.migrate().await.unwrap();
    // A migration of ours that was changed after it ran is refused, not run over.
    execute(
        &db,
        "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 20261206000001",
    )
    .await;
    assert!(db.migrate().await.is_err());
    // An unknown scheme is refused with a clear error.
    let error = Database::connect("mysql://localhost/db").await.unwrap_err();
    assert!(
        error.to_string().contains("unsupported database URL"),
        "{error}"
    );
}

#[tokio::test]
async fn a_revocation_on_one_instance_is_refused_by_another_within_a_poll() {
    let file = SqliteFile::new();
    let options = ReplicaOptions::default().poll_interval(Duration::from_millis(100));
    let a = file.database().await.revocations(options).await.unwrap();
    let b = file.database().await.revocations(options).await.unwrap();
    replica_follows(&a, &b, Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notifications_carry_a_revocation_to_another_instance() {
    let server = postgres_or_skip!("postgres_notifications_carry_a_revocation_to_another_instance");
    let url = postgres_database(&server).await;
    // A long poll: only the notification can be this fast.
    let options = ReplicaOptions::default()
        .poll_interval(Duration::from_secs(4))
        .max_staleness(Duration::from_secs(20));
    let a = Database::connect(&url)
        .await
        .unwrap()
        .revocations(options)
        .await
        .unwrap();
    let b = Database::connect(&url)
        .await
        .unwrap()
        .revocations(options)
        .await
        .unwrap();
    // Let B's listener connect.
    tokio::time::sleep(Duration::from_millis(500)).await;
    replica_follows(&a, &b, Duration::from_secs(1)).await;
}

/// A revocation written through `a` is refused by `a` at once and by `b` within `bound`.
async fn replica_follows(
    a: &tower_jwt_auth::sql::SqlRevocationStore,
    b: &tower_jwt_auth::sql::SqlRevocationStore,
    bound: Duration,
) {
    let now = unix_now();
    for (round, kind) in ["token", "session", "subject"].into_iter().enumerate() {
        let id = format!("{kind}-{round}");
        let query = match kind {
            "token" => RevocationQuery::new(ISSUER).token_id(&id),
            "session" => RevocationQuery::new(ISSUER).session_id(&id),
            _ => RevocationQuery::new(ISSUER).subject(&id).issued_at(now - 5),
        };
        assert!(!b.is_revoked(&query).await.unwrap());
        let written = Instant::now();
        match kind {
            "token" => a.revoke_token(ISSUER, &id, now + 600).await,
            "session" => a.revoke_session(ISSUER, &id, now + 600).await,
            _ => a.revoke_subject_before(ISSUER, &id, now, now + 600).await,
        }
        .unwrap();
        assert!(a.is_revoked(&query).await.unwrap(), "at once on the writer");
        loop {
            if b.is_revoked(&query).await.unwrap() {
                break;
            }
            assert!(
                written.elapsed() < bound + Duration::from_millis(900),
                "{kind}: not refused on the other instance within {bound:?} (+ slack)"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        eprintln!(
            "{kind}: seen on the other instance after {:?}",
            written.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_or_hung_database_fails_within_the_bound_and_recovers() {
    let mut server =
        postgres_or_skip!("a_killed_or_hung_database_fails_within_the_bound_and_recovers");
    let url = postgres_database(&server).await;
    let db = Database::connect(&url)
        .await
        .unwrap()
        .timeout(Duration::from_secs(1));
    let options = ReplicaOptions::default()
        .poll_interval(Duration::from_millis(100))
        .max_staleness(Duration::from_secs(2));
    let revocations = db.revocations(options).await.unwrap();
    let (refresh, users) = (db.refresh(), db.users());
    let now = unix_now();
    refresh
        .create(
            session("before", "u", now, now + 3_600),
            TokenHash::of("t0"),
            now + 600,
        )
        .await
        .unwrap();
    revocations
        .revoke_token(ISSUER, "kept", now + 600)
        .await
        .unwrap();
    let kept = RevocationQuery::new(ISSUER).token_id("kept");

    for fault in ["KILL", "STOP"] {
        match fault {
            "KILL" => server.kill(),
            _ => server.signal("STOP"),
        }
        // Every call answers within its timeout, with an error.
        let started = Instant::now();
        assert!(users.find_by_username("alice").await.is_err(), "{fault}");
        assert!(
            refresh.get(&TokenHash::of("t0"), now).await.is_err(),
            "{fault}"
        );
        assert!(refresh.ready(now).await.is_err(), "{fault}");
        assert!(
            revocations
                .revoke_token(ISSUER, "lost", now + 600)
                .await
                .is_err(),
            "{fault}: an uncommitted revocation is not reported done"
        );
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{fault}: 4 calls took {:?}",
            started.elapsed()
        );
        // The replica answers from memory until its bound, then fails closed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while revocations.is_revoked(&kept).await.is_ok() {
            assert!(Instant::now() < deadline, "{fault}: never failed closed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(revocations.is_stale());

        match fault {
            "KILL" => server.restart(),
            _ => server.signal("CONT"),
        }
        // Service resumes without a restart of the stores.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if revocations
                .is_revoked(&kept)
                .await
                .is_ok_and(|revoked| revoked)
                && refresh.get(&TokenHash::of("t0"), now).await.is_ok()
            {
                break;
            }
            assert!(Instant::now() < deadline, "{fault}: did not recover");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // What was committed before the fault is still there.
        assert!(
            refresh
                .get(&TokenHash::of("t0"), now)
                .await
                .unwrap()
                .is_some()
        );
        let lost = RevocationQuery::new(ISSUER).token_id("lost");
        assert!(!revocations.is_revoked(&lost).await.unwrap());
    }
}

/// Migrates `db` (fresh, nothing applied) up to the migration that made addresses unique,
/// writes accounts that share an address but for case, then migrates the rest: no address is
/// dropped, the oldest account gets the address for lookups, and the address is taken.
async fn accounts_sharing_an_address_survive_the_mail_migration(db: Database, backend: &str) {
    use tower_jwt_auth::router::{Created, TokenPurpose};
    use tower_jwt_auth::sql::sqlx;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/sql/migrations")
        .join(backend);
    let mut earlier = sqlx::migrate::Migrator::new(dir).await.unwrap();
    let versions: Vec<_> = earlier.migrations.iter().map(|m| m.version).collect();
    assert!(versions.contains(&20261208000001), "{versions:?}");
    earlier.migrations = earlier
        .migrations
        .iter()
        .filter(|m| m.version < 20261208000000)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    match (db.as_sqlite(), db.as_postgres()) {
        (Some(pool), _) => earlier.run(pool).await.unwrap(),
        (_, Some(pool)) => earlier.run(pool).await.unwrap(),
        _ => unreachable!(),
    }
    for (id, name, email, created_at) in [
        ("newer", "ann", "'Ann@Example.test'", 2),
        ("older", "anna", "'ann@example.test'", 1),
        ("other", "carl", "'carl@example.test'", 3),
        ("none", "dan", "NULL", 4),
    ] {
        let statement = format!(
            "INSERT INTO auth_users (id, username, skeleton, email, password_hash, roles, \
             scopes, disabled, created_at, updated_at) \
             VALUES ('{id}', '{name}', '{name}', {email}, '$x', '[]', '[]', FALSE, \
             {created_at}, {created_at})"
        );
        execute(&db, &statement).await;
    }
    // And a crowd, every tenth address shared (the migration sorts once, so this is quick).
    execute(
        &db,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
         INSERT INTO auth_users (id, username, skeleton, email, password_hash, roles, scopes, \
         disabled, created_at, updated_at) \
         SELECT 'crowd' || i, 'crowd' || i, 'crowd' || i, 'crowd' || (i / 10) || '@example.test', \
         '$x', '[]', '[]', FALSE, 10 + i, 10 + i FROM n",
    )
    .await;
    db.migrate().await.unwrap();
    let users = db.users();
    let found = |email: &'static str| {
        let users = users.clone();
        async move { users.find_by_email(email).await.unwrap().map(|u| u.id) }
    };
    assert_eq!(found("ANN@example.test").await.as_deref(), Some("older"));
    assert_eq!(found("carl@example.test").await.as_deref(), Some("other"));
    // Of crowd10..crowd19 (address crowd1@), the oldest: crowd10.
    assert_eq!(
        found("CROWD1@example.test").await.as_deref(),
        Some("crowd10")
    );
    let newer = users.find_by_id("newer").await.unwrap().unwrap();
    assert_eq!(newer.email.as_deref(), Some("Ann@Example.test"), "kept");
    assert!(!newer.email_verified);
    assert_eq!(users.find_by_id("none").await.unwrap().unwrap().email, None);
    let mut again = conformance::new_user("annie");
    again.email = Some("ann@EXAMPLE.test".to_owned());
    assert_eq!(users.create(again).await.unwrap(), Created::EmailTaken);
    // The token table is there, tied to the accounts.
    let token = tower_jwt_auth::router::AccountToken {
        user_id: "newer".to_owned(),
        purpose: TokenPurpose::PasswordReset,
        hash: [1; 32],
        issued_at: unix_now(),
        expires_at: unix_now() + 60,
    };
    assert_eq!(
        users.issue_token(token, 60).await.unwrap(),
        tower_jwt_auth::router::Issued::Issued
    );
}

#[tokio::test]
async fn accounts_sharing_an_address_survive_the_mail_migration_on_sqlite() {
    let file = SqliteFile::new();
    let db = Database::connect(&file.url()).await.unwrap();
    accounts_sharing_an_address_survive_the_mail_migration(db, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_sharing_an_address_survive_the_mail_migration_on_postgres() {
    let server = postgres_or_skip!("accounts_sharing_an_address_survive_the_mail_migration");
    let admin = Database::connect(&server.url()).await.unwrap();
    execute(&admin, "CREATE DATABASE mail_migration").await;
    let db = Database::connect(&server.url_of("mail_migration"))
        .await
        .unwrap();
    accounts_sharing_an_address_survive_the_mail_migration(db, "postgres").await;
}
