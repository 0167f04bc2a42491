//! Refresh retries within a grace period ([`AuthRouterBuilder::refresh_grace`]), over HTTP on
//! every refresh store: a client that lost a refresh's answer presents the same token again
//! and gets the same new refresh token; anything else that presents a rotated token still
//! ends the session.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tower_jwt_auth::router::{AuthRouter, AuthRouterBuilder, RefreshStore};

use super::{Harness, Tokens, assert_oauth_error, refresh_params};
use crate::common::NOW;

const GRACE: u64 = 10;

fn with_grace(store: Option<Arc<dyn RefreshStore>>) -> Harness {
    Harness::with(move |builder: AuthRouterBuilder| {
        let builder = builder.refresh_grace(Duration::from_secs(GRACE)).unwrap();
        match store {
            Some(store) => builder.refresh_store(store),
            None => builder,
        }
    })
}

/// Every behaviour of a grace period, on the store `store` makes (fresh for each call).
async fn retries_on(store: impl Fn() -> Option<Arc<dyn RefreshStore>>) {
    a_retry_gets_the_same_refresh_token_and_the_lineage_goes_on(with_grace(store())).await;
    a_retry_after_the_grace_period_is_a_replay(with_grace(store())).await;
    a_retry_from_another_client_is_a_replay(with_grace(store())).await;
    concurrent_refreshes_all_succeed_with_one_new_token(with_grace(store())).await;
    the_token_before_the_last_rotation_is_a_replay(with_grace(store())).await;
}

async fn a_retry_gets_the_same_refresh_token_and_the_lineage_goes_on(h: Harness) {
    h.user("alice").await;
    let login = h.login("alice").await;
    let first = Tokens::from_answer(&h.refresh(&login.refresh).await);
    // The client never saw that answer and tries again, a moment later.
    h.set_time(NOW + GRACE - 1);
    let retry = Tokens::from_answer(&h.refresh(&login.refresh).await);
    assert_eq!(retry.refresh, first.refresh, "the same new refresh token");
    let (a, b) = (h.claims(&first.access), h.claims(&retry.access));
    assert_eq!(a.session_id(), b.session_id(), "one session");
    assert_ne!(a.jwt_id(), b.jwt_id(), "a fresh access token");
    for access in [&login.access, &first.access, &retry.access] {
        assert_eq!(h.me(access).await, StatusCode::OK);
    }
    // The session goes on from that token, and only from it.
    let next = Tokens::from_answer(&h.refresh(&retry.refresh).await);
    assert_ne!(next.refresh, first.refresh);
    assert_eq!(h.me(&next.access).await, StatusCode::OK);
}

async fn a_retry_after_the_grace_period_is_a_replay(h: Harness) {
    h.user("alice").await;
    let login = h.login("alice").await;
    let first = Tokens::from_answer(&h.refresh(&login.refresh).await);
    h.set_time(NOW + GRACE);
    assert_oauth_error(&h.refresh(&login.refresh).await, 400, "invalid_grant");
    // The replay ended the session: the successor and every access token with it.
    assert_oauth_error(&h.refresh(&first.refresh).await, 400, "invalid_grant");
    assert_eq!(h.me(&first.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(h.me(&login.access).await, StatusCode::UNAUTHORIZED);
}

async fn a_retry_from_another_client_is_a_replay(h: Harness) {
    h.user("alice").await;
    let web = [("client_id", "web")];
    let login = h.tokens(&super::password_params("alice", &web)).await;
    let first = h.tokens(&refresh_params(&login.refresh, &web)).await;
    // Another client (public clients name themselves) presenting web's rotated token: never
    // a retry.
    assert_oauth_error(&h.refresh(&login.refresh).await, 400, "invalid_grant");
    assert_oauth_error(
        &h.token(&refresh_params(&first.refresh, &web)).await,
        400,
        "invalid_grant",
    );
    assert_eq!(h.me(&first.access).await, StatusCode::UNAUTHORIZED);
}

async fn concurrent_refreshes_all_succeed_with_one_new_token(h: Harness) {
    const N: usize = 8;
    h.user("alice").await;
    let login = h.login("alice").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let (barrier, refresh) = (Arc::clone(&barrier), h.refresh(&login.refresh));
            tokio::spawn(async move {
                barrier.wait().await;
                refresh.await
            })
        })
        .collect();
    let mut refresh_tokens = Vec::new();
    for task in tasks {
        let tokens = Tokens::from_answer(&task.await.unwrap());
        assert_eq!(h.me(&tokens.access).await, StatusCode::OK);
        refresh_tokens.push(tokens.refresh);
    }
    refresh_tokens.dedup();
    assert_eq!(
        refresh_tokens.len(),
        1,
        "one new refresh token between them"
    );
    let next = Tokens::from_answer(&h.refresh(&refresh_tokens[0]).await);
    assert_eq!(h.me(&next.access).await, StatusCode::OK);
}

async fn the_token_before_the_last_rotation_is_a_replay(h: Harness) {
    h.user("alice").await;
    let login = h.login("alice").await;
    let first = Tokens::from_answer(&h.refresh(&login.refresh).await);
    let second = Tokens::from_answer(&h.refresh(&first.refresh).await);
    // Within the grace period of both rotations, but `login` is no longer the last one's.
    assert_oauth_error(&h.refresh(&login.refresh).await, 400, "invalid_grant");
    assert_oauth_error(&h.refresh(&second.refresh).await, 400, "invalid_grant");
    assert_eq!(h.me(&second.access).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_retries_on_the_memory_store() {
    retries_on(|| None).await;
}

#[tokio::test]
async fn without_a_grace_period_a_retry_ends_the_session() {
    let h = Harness::new();
    h.user("alice").await;
    let login = h.login("alice").await;
    let first = Tokens::from_answer(&h.refresh(&login.refresh).await);
    assert_oauth_error(&h.refresh(&login.refresh).await, 400, "invalid_grant");
    assert_oauth_error(&h.refresh(&first.refresh).await, 400, "invalid_grant");
}

#[test]
fn the_grace_period_is_whole_seconds_up_to_five_minutes() {
    let grace = |grace| AuthRouter::builder(super::ed25519_issuer()).refresh_grace(grace);
    for bad in [0, 301] {
        assert!(grace(Duration::from_secs(bad)).is_err(), "{bad}");
    }
    assert!(grace(Duration::from_millis(1_500)).is_err());
    for good in [1, 300] {
        assert!(grace(Duration::from_secs(good)).is_ok(), "{good}");
    }
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_retries_on_sqlite() {
    use tower_jwt_auth::sql::Database;
    let mut databases = Vec::new();
    for _ in 0..5 {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        databases.push(db);
    }
    let stores = std::sync::Mutex::new(databases);
    retries_on(|| {
        let db = stores.lock().unwrap().pop().unwrap();
        Some(Arc::new(db.refresh()) as _)
    })
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_retries_on_postgres() {
    use tower_jwt_auth::sql::Database;
    let Some(postgres) =
        crate::common::postgres_server::Postgres::start("refresh_retries_on_postgres")
    else {
        return;
    };
    let db = Database::connect(&postgres.url()).await.unwrap();
    db.migrate().await.unwrap();
    // One database for all: every test's tokens are its own.
    retries_on(|| Some(Arc::new(db.refresh()) as _)).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_retries_on_redis() {
    use tower_jwt_auth::redis::{self, RedisRefreshStore};
    let Some(server) = crate::common::redis_server::Server::start("refresh_retries_on_redis")
    else {
        return;
    };
    let connection = redis::connect(&server.url()).await.unwrap();
    let prefix = std::sync::atomic::AtomicUsize::new(0);
    retries_on(|| {
        let n = prefix.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let store = RedisRefreshStore::new(connection.clone()).prefix(&format!("t{n}:"));
        Some(Arc::new(store) as _)
    })
    .await;
}
