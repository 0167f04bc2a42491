//! [`RedisRevocationStore`]: the denylist in Redis, one expiring key per entry.

use std::fmt;
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use ::redis::Script;

use super::{MAX_UNIX_SECS, Redis, run};
use crate::revocation::{RevocationQuery, RevocationStore};
use crate::store::{StoreError, StoreFuture};

static REVOKE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/revoke.lua")));

/// [`RevocationStore`] in Redis, shared by every instance of an app.
///
/// Each revoked token id, session id and subject cut-off is one key, written by a Lua script
/// that keeps the later `until` and cut-off of two revocations, and that expires on the
/// server's clock at `until` (`SET … PXAT`): the keyspace follows the number of live revoked
/// entries. [`is_revoked`](RevocationStore::is_revoked) is one `MGET` of at most three keys.
/// Every method answers a [`StoreError`] when Redis fails or does not answer within the
/// [timeout](RedisRevocationStore::timeout) ([`BearerAuth`](crate::bearer::BearerAuth) then answers
/// 503 unless told to fail open).
#[derive(Clone)]
pub struct RedisRevocationStore {
    redis: Redis,
}

/// Which list an entry belongs to.
#[derive(Clone, Copy)]
enum List {
    Token,
    Session,
    Subject,
}

super::store_settings!(RedisRevocationStore, "the denylist", connection only);

impl RedisRevocationStore {
    /// `<prefix>rv:<list>:<issuer length>:<issuer>:<id>`: the length keeps an issuer that
    /// contains `:` from running into the id.
    fn key(&self, list: List, issuer: &str, id: &str) -> String {
        let list = match list {
            List::Token => "rv:t:",
            List::Session => "rv:s:",
            List::Subject => "rv:u:",
        };
        let len = issuer.len().to_string();
        self.redis.key(&[list, &len, ":", issuer, ":", id])
    }

    fn write(&self, key: String, not_before: u64, until: u64) -> StoreFuture<()> {
        let until_ms = until.min(MAX_UNIX_SECS) * 1000;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        if until_ms <= now_ms {
            // Already irrelevant: the token has expired.
            return StoreFuture::ready(Ok(()));
        }
        let Redis {
            mut connection,
            timeout,
            ..
        } = self.redis.clone();
        let not_before = not_before.min(MAX_UNIX_SECS);
        StoreFuture::boxed(async move {
            let mut invocation = REVOKE.key(key);
            invocation.arg(not_before).arg(until_ms);
            run(timeout, invocation.invoke_async::<i64>(&mut connection)).await?;
            Ok(())
        })
    }
}

impl fmt::Debug for RedisRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocationStore")
            .field("prefix", &self.redis.prefix)
            .field("timeout", &self.redis.timeout)
            .finish_non_exhaustive()
    }
}

/// The "not before" instant of a subject entry (`<not before>:<until ms>`).
fn not_before(value: &str) -> Result<u64, StoreError> {
    value
        .split_once(':')
        .and_then(|(not_before, _)| not_before.parse().ok())
        .ok_or(StoreError::new("redis: unreadable revocation entry"))
}

impl RevocationStore for RedisRevocationStore {
    fn is_revoked(&self, token: &RevocationQuery<'_>) -> StoreFuture<bool> {
        let issuer = token.get_issuer();
        let mut keys = Vec::with_capacity(3);
        if let Some(jti) = token.get_token_id() {
            keys.push(self.key(List::Token, issuer, jti));
        }
        if let Some(sid) = token.get_session_id() {
            keys.push(self.key(List::Session, issuer, sid));
        }
        let subject = token.get_subject();
        if let Some(sub) = subject {
            keys.push(self.key(List::Subject, issuer, sub));
        }
        let has_subject = subject.is_some();
        if keys.is_empty() {
            return StoreFuture::ready(Ok(false));
        }
        let issued_at = token.get_issued_at();
        let Redis {
            mut connection,
            timeout,
            ..
        } = self.redis.clone();
        StoreFuture::boxed(async move {
            let mut command = ::redis::cmd("MGET");
            command.arg(&keys);
            let values: Vec<Option<String>> =
                run(timeout, command.query_async(&mut connection)).await?;
            let (ids, cutoff) = if has_subject {
                values.split_at(values.len().saturating_sub(1))
            } else {
                (&values[..], &[][..])
            };
            if ids.iter().any(Option::is_some) {
                return Ok(true);
            }
            match cutoff.first() {
                Some(Some(value)) => {
                    let not_before = not_before(value)?;
                    Ok(issued_at.is_none_or(|iat| iat < not_before))
                }
                _ => Ok(false),
            }
        })
    }

    fn revoke_token(&self, issuer: &str, jti: &str, until: u64) -> StoreFuture<()> {
        self.write(self.key(List::Token, issuer, jti), 0, until)
    }

    fn revoke_session(&self, issuer: &str, sid: &str, until: u64) -> StoreFuture<()> {
        self.write(self.key(List::Session, issuer, sid), 0, until)
    }

    fn revoke_subject_before(
        &self,
        issuer: &str,
        subject: &str,
        not_before: u64,
        until: u64,
    ) -> StoreFuture<()> {
        self.write(self.key(List::Subject, issuer, subject), not_before, until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_entries_carry_their_cutoff() {
        assert_eq!(
            not_before("1700000000:1700000900000").unwrap(),
            1_700_000_000
        );
        assert!(not_before("garbage").is_err());
    }
}
