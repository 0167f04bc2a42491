//! Whether a Redis server keeps what the stores write: across a restart (persistence) and
//! under memory pressure (eviction).

use std::collections::HashMap;
use std::fmt;

use ::redis::aio::ConnectionManager;

use super::{DEFAULT_TIMEOUT, run};
use crate::store::StoreError;

/// Asks the Redis server behind `connection` whether it keeps the stores' keys: whether it
/// persists with an append-only file (`appendonly`), its snapshot schedule (`save`) and its
/// `maxmemory-policy`. Where `CONFIG` is refused or renamed, as on managed services, it reads
/// `INFO persistence` and `INFO memory` instead (which do not tell the snapshot schedule).
///
/// A server without persistence comes back empty after a restart, and one that evicts drops
/// keys under memory pressure: either way denylist entries vanish and revoked tokens work
/// again until they expire. Call it at start and log [`Durability::warnings`]:
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut connection = tower_jwt_auth::redis::connect("redis://127.0.0.1:6379/").await?;
/// for warning in tower_jwt_auth::redis::durability(&mut connection).await?.warnings() {
///     eprintln!("warning: {warning}");
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// A [`StoreError`] when the server answers neither `CONFIG GET` nor `INFO` (unreachable,
/// timed out, or both commands refused).
pub async fn durability(connection: &mut ConnectionManager) -> Result<Durability, StoreError> {
    let mut found = Durability::default();
    let from_config = async {
        Ok::<_, StoreError>((
            config_get(connection, "appendonly").await?,
            config_get(connection, "save").await?,
            config_get(connection, "maxmemory-policy").await?,
        ))
    }
    .await;
    if let Ok((append_only, snapshots, eviction_policy)) = from_config {
        found.append_only = append_only.map(|value| value.eq_ignore_ascii_case("yes"));
        found.snapshots = snapshots;
        found.eviction_policy = eviction_policy;
    }
    if found.append_only.is_none() || found.eviction_policy.is_none() {
        let mut info = String::new();
        for section in ["persistence", "memory"] {
            let text: String = run(
                DEFAULT_TIMEOUT,
                ::redis::cmd("INFO").arg(section).query_async(connection),
            )
            .await?;
            info.push_str(&text);
            info.push('\n');
        }
        let told = Durability::from_info(&info);
        found.append_only = found.append_only.or(told.append_only);
        found.eviction_policy = found.eviction_policy.or(told.eviction_policy);
    }
    Ok(found)
}

/// `CONFIG GET name`: its value, or `None` when the server does not know it.
async fn config_get(
    connection: &mut ConnectionManager,
    name: &str,
) -> Result<Option<String>, StoreError> {
    let reply: HashMap<String, String> = run(
        DEFAULT_TIMEOUT,
        ::redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query_async(connection),
    )
    .await?;
    Ok(reply
        .into_iter()
        .find_map(|(key, value)| key.eq_ignore_ascii_case(name).then_some(value)))
}

/// What a Redis server said about keeping the stores' keys, from [`durability`]; `None` where
/// it would not say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durability {
    append_only: Option<bool>,
    snapshots: Option<String>,
    eviction_policy: Option<String>,
}

impl Durability {
    /// Whether the server logs every write to an append-only file (`appendonly yes`; with the
    /// default `appendfsync everysec`, a crash loses at most about a second of writes).
    pub fn append_only(&self) -> Option<bool> {
        self.append_only
    }

    /// The snapshot schedule (`save`, e.g. `3600 1 300 100`), empty when there is none;
    /// `None` when only `INFO` answered, which does not tell it.
    pub fn snapshots(&self) -> Option<&str> {
        self.snapshots.as_deref()
    }

    /// The `maxmemory-policy` (`noeviction` keeps every key).
    pub fn eviction_policy(&self) -> Option<&str> {
        self.eviction_policy.as_deref()
    }

    /// Each way the server could lose revocations, or that it would not say; empty when it
    /// persists with an append-only file and never evicts.
    pub fn warnings(&self) -> Vec<DurabilityWarning> {
        let mut warnings = Vec::new();
        match (self.append_only, self.snapshots()) {
            (Some(true), _) => {}
            (Some(false), Some(schedule)) if schedule.trim().is_empty() => {
                warnings.push(DurabilityWarning::NoPersistence);
            }
            (Some(false), _) => warnings.push(DurabilityWarning::NoAppendOnlyFile),
            (None, _) => warnings.push(DurabilityWarning::PersistenceUnknown),
        }
        match self.eviction_policy() {
            Some(policy) if policy.eq_ignore_ascii_case("noeviction") => {}
            Some(policy) => warnings.push(DurabilityWarning::Evicting {
                policy: policy.to_owned(),
            }),
            None => warnings.push(DurabilityWarning::EvictionUnknown),
        }
        warnings
    }

    /// What `INFO` text tells (`aof_enabled`, `maxmemory_policy`): `key:value` lines, with
    /// `# Section` headers and `\r\n` line ends.
    fn from_info(text: &str) -> Self {
        let mut found = Self::default();
        for line in text.lines() {
            let Some((key, value)) = line.trim_end_matches('\r').split_once(':') else {
                continue;
            };
            match key {
                "aof_enabled" => found.append_only = value.parse::<u8>().ok().map(|v| v != 0),
                "maxmemory_policy" if !value.is_empty() => {
                    found.eviction_policy = Some(value.to_owned());
                }
                _ => {}
            }
        }
        found
    }
}

/// A way a Redis server could lose what the stores wrote, from [`Durability::warnings`]. Its
/// `Display` is a log line that says what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurabilityWarning {
    /// No append-only file and no snapshots (`appendonly no`, `save ""`): a restarted server is
    /// empty, and every revoked token works again until it expires.
    NoPersistence,
    /// No append-only file (`appendonly no`), with snapshots or a schedule the server would not
    /// tell: a restart loses the revocations made since the last snapshot.
    NoAppendOnlyFile,
    /// The server told neither `appendonly` (`CONFIG GET`) nor `aof_enabled` (`INFO`).
    PersistenceUnknown,
    /// A `maxmemory-policy` that evicts: under memory pressure the server drops keys, denylist
    /// entries among them. (With `maxmemory 0`, no limit, nothing is evicted until a limit is
    /// set, as managed services do.)
    Evicting {
        /// The policy, e.g. `allkeys-lru` or `volatile-ttl`.
        policy: String,
    },
    /// The server told neither `maxmemory-policy` (`CONFIG GET`) nor `maxmemory_policy`
    /// (`INFO`).
    EvictionUnknown,
}

impl fmt::Display for DurabilityWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPersistence => f.write_str(
                "redis persists nothing (appendonly no, no save schedule): after a restart \
                 every revoked or logged-out token works again until it expires; set \
                 appendonly yes",
            ),
            Self::NoAppendOnlyFile => f.write_str(
                "redis has no append-only file (appendonly no): a restart loses every \
                 revocation made since the last snapshot, if any; set appendonly yes",
            ),
            Self::PersistenceUnknown => f.write_str(
                "redis would not say whether it persists (CONFIG GET appendonly and INFO \
                 persistence told nothing): make sure appendonly is yes",
            ),
            Self::Evicting { policy } => write!(
                f,
                "redis evicts keys under memory pressure (maxmemory-policy {policy}): \
                 revocations can be dropped and revoked tokens work again; set \
                 maxmemory-policy noeviction"
            ),
            Self::EvictionUnknown => f.write_str(
                "redis would not say its eviction policy (CONFIG GET maxmemory-policy and INFO \
                 memory told nothing): make sure maxmemory-policy is noeviction",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Abridged from `INFO persistence` and `INFO memory` of Redis 7.
    const INFO: &str = "# Persistence\r\nloading:0\r\nasync_loading:0\r\n\
        rdb_changes_since_last_save:12\r\nrdb_bgsave_in_progress:0\r\n\
        rdb_last_save_time:1750000000\r\naof_enabled:1\r\naof_rewrite_in_progress:0\r\n\
        aof_last_write_status:ok\r\n\r\n# Memory\r\nused_memory:1048576\r\n\
        maxmemory:0\r\nmaxmemory_human:0B\r\nmaxmemory_policy:volatile-lru\r\n";

    #[test]
    fn info_tells_the_append_only_file_and_the_policy_but_no_schedule() {
        let found = Durability::from_info(INFO);
        assert_eq!(found.append_only(), Some(true));
        assert_eq!(found.eviction_policy(), Some("volatile-lru"));
        assert_eq!(found.snapshots(), None);
        assert_eq!(
            found.warnings(),
            [DurabilityWarning::Evicting {
                policy: "volatile-lru".to_owned()
            }]
        );

        let off = INFO
            .replace("aof_enabled:1", "aof_enabled:0")
            .replace("volatile-lru", "noeviction");
        let found = Durability::from_info(&off);
        assert_eq!(found.append_only(), Some(false));
        // Snapshots may or may not be scheduled: INFO does not say.
        assert_eq!(found.warnings(), [DurabilityWarning::NoAppendOnlyFile]);
    }

    #[test]
    fn what_info_does_not_tell_is_unknown() {
        for text in [
            "",
            "# Persistence\r\nloading:0\r\n",
            "aof_enabled:maybe\nmaxmemory_policy:",
        ] {
            let found = Durability::from_info(text);
            assert_eq!(found, Durability::default(), "{text:?}");
            assert_eq!(
                found.warnings(),
                [
                    DurabilityWarning::PersistenceUnknown,
                    DurabilityWarning::EvictionUnknown
                ]
            );
        }
    }

    #[test]
    fn only_an_append_only_file_and_noeviction_are_quiet() {
        let durable = |append_only, snapshots: &str, policy: &str| Durability {
            append_only: Some(append_only),
            snapshots: Some(snapshots.to_owned()),
            eviction_policy: Some(policy.to_owned()),
        };
        assert!(durable(true, "", "noeviction").warnings().is_empty());
        assert!(durable(true, "3600 1", "NoEviction").warnings().is_empty());
        assert_eq!(
            durable(false, "", "noeviction").warnings(),
            [DurabilityWarning::NoPersistence]
        );
        assert_eq!(
            durable(false, "3600 1 300 100", "noeviction").warnings(),
            [DurabilityWarning::NoAppendOnlyFile]
        );
        assert_eq!(
            durable(true, "", "allkeys-lru").warnings(),
            [DurabilityWarning::Evicting {
                policy: "allkeys-lru".to_owned()
            }]
        );
        // Every message says what to set.
        for warning in durable(false, "", "volatile-ttl").warnings() {
            let text = warning.to_string();
            assert!(
                text.contains("set appendonly yes")
                    || text.contains("set maxmemory-policy noeviction"),
                "{text}"
            );
        }
    }
}
