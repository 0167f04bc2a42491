//! `tower_jwt_auth::redis::durability` against a real `redis-server` (started without
//! persistence, `--save "" --appendonly no`, in a directory of its own): what it reports as the
//! server's settings change, and what it reads from `INFO` when `CONFIG` is refused.

use tower_jwt_auth::redis::{DurabilityWarning, durability};

use crate::common::redis_server::Server;

async fn config_set(connection: &mut redis::aio::ConnectionManager, name: &str, value: &str) {
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query_async(connection)
        .await
        .unwrap();
}

#[tokio::test]
async fn durability_reports_no_persistence_then_persistence_then_eviction() {
    let Some(server) =
        Server::start("durability_reports_no_persistence_then_persistence_then_eviction")
    else {
        return;
    };
    let mut connection = server.connection().await;

    let found = durability(&mut connection).await.unwrap();
    assert_eq!(found.append_only(), Some(false));
    assert_eq!(found.snapshots(), Some(""));
    assert_eq!(found.eviction_policy(), Some("noeviction"));
    assert_eq!(found.warnings(), [DurabilityWarning::NoPersistence]);

    config_set(&mut connection, "appendonly", "yes").await;
    let found = durability(&mut connection).await.unwrap();
    assert_eq!(found.append_only(), Some(true));
    assert_eq!(found.warnings(), []);

    config_set(&mut connection, "maxmemory-policy", "allkeys-lru").await;
    let found = durability(&mut connection).await.unwrap();
    assert_eq!(
        found.warnings(),
        [DurabilityWarning::Evicting {
            policy: "allkeys-lru".to_owned()
        }]
    );

    // Snapshots without an append-only file: what a restart keeps is the last snapshot.
    config_set(&mut connection, "maxmemory-policy", "noeviction").await;
    config_set(&mut connection, "appendonly", "no").await;
    config_set(&mut connection, "save", "3600 1").await;
    let found = durability(&mut connection).await.unwrap();
    assert_eq!(found.snapshots(), Some("3600 1"));
    assert_eq!(found.warnings(), [DurabilityWarning::NoAppendOnlyFile]);
}

/// Managed services refuse `CONFIG`; here an ACL user without it stands in for one.
#[tokio::test]
async fn where_config_is_refused_durability_reads_info() {
    let Some(server) = Server::start("where_config_is_refused_durability_reads_info") else {
        return;
    };
    let mut admin = server.connection().await;
    let () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("on")
        .arg(">app-password")
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .arg("-config")
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = server
        .url()
        .replace("redis://", "redis://app:app-password@");
    let mut app = tower_jwt_auth::redis::connect(&url).await.unwrap();
    let refused: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query_async(&mut app)
        .await;
    assert!(refused.is_err(), "{refused:?}");

    let found = durability(&mut app).await.unwrap();
    assert_eq!(found.append_only(), Some(false));
    assert_eq!(found.snapshots(), None, "INFO does not tell the schedule");
    assert_eq!(found.eviction_policy(), Some("noeviction"));
    assert_eq!(found.warnings(), [DurabilityWarning::NoAppendOnlyFile]);

    config_set(&mut admin, "appendonly", "yes").await;
    config_set(&mut admin, "maxmemory-policy", "volatile-lru").await;
    let found = durability(&mut app).await.unwrap();
    assert_eq!(found.append_only(), Some(true));
    assert_eq!(
        found.warnings(),
        [DurabilityWarning::Evicting {
            policy: "volatile-lru".to_owned()
        }]
    );
}
