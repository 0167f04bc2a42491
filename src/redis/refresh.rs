//! [`RedisRefreshStore`]: refresh families in Redis, each operation one Lua script.

use std::fmt;
use std::sync::LazyLock;

use ::redis::Script;
use serde::{Deserialize, Serialize};

use super::{MAX_UNIX_SECS, Redis, hex, run, unhex32};
use crate::router::{
    REMEMBERED_ROTATIONS, RefreshSession, RefreshStore, Retry, Rotation, SealedToken, TokenHash,
};
use crate::store::{StoreError, StoreFuture};

/// The family helpers followed by one operation.
macro_rules! family_script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/family.lua"),
                include_str!(concat!("lua/", $file))
            ))
        })
    };
}

static CREATE: LazyLock<Script> = family_script!("create.lua");
static GET: LazyLock<Script> = family_script!("get.lua");
static ROTATE: LazyLock<Script> = family_script!("rotate.lua");
static FIND: LazyLock<Script> = family_script!("find.lua");
static REVOKE_SESSION: LazyLock<Script> = family_script!("revoke_session.lua");
static REVOKE_USER: LazyLock<Script> = family_script!("revoke_user.lua");
static END_OLDEST: LazyLock<Script> = family_script!("end_oldest.lua");

/// [`RefreshStore`] in Redis, shared by every instance of an app (see the
/// [module docs](super) for the keys and their lifetimes).
///
/// Rotation is one Lua script: of concurrent rotations with one token, on any instances,
/// exactly one answers [`Rotation::Rotated`]; presenting a rotated token (one of the family's
/// last [`REMEMBERED_ROTATIONS`]) deletes the family and answers [`Rotation::Reused`].
/// Every method answers a [`StoreError`] when Redis fails or does not answer within the
/// [timeout](RedisRefreshStore::timeout).
#[derive(Clone)]
pub struct RedisRefreshStore {
    redis: Redis,
}

/// The session as stored in the family's `session` field.
#[derive(Serialize, Deserialize)]
struct Record {
    sid: String,
    user: String,
    client: String,
    scopes: Vec<String>,
    created: u64,
    expires: u64,
}

impl Record {
    fn encode(session: &RefreshSession) -> Result<String, StoreError> {
        let record = Self {
            sid: session.session_id.clone(),
            user: session.user_id.clone(),
            client: session.client_id.clone(),
            scopes: session.scopes.clone(),
            created: session.created_at,
            expires: session.expires_at,
        };
        serde_json::to_string(&record)
            .map_err(|e| StoreError::with_source("redis: session record not encodable", e))
    }

    fn decode(text: &str) -> Result<RefreshSession, StoreError> {
        let record: Self = serde_json::from_str(text)
            .map_err(|e| StoreError::with_source("redis: unreadable session record", e))?;
        Ok(RefreshSession {
            session_id: record.sid,
            user_id: record.user,
            client_id: record.client,
            scopes: record.scopes,
            created_at: record.created,
            expires_at: record.expires,
        })
    }
}

fn secs(t: u64) -> u64 {
    t.min(MAX_UNIX_SECS)
}

super::store_settings!(RedisRefreshStore, "refresh families", connection only);

impl RedisRefreshStore {
    /// Runs one of the family scripts with `args` after the prefix, and maps its answer.
    fn invoke<T, U>(
        &self,
        script: &'static Script,
        args: Vec<String>,
        map: impl FnOnce(T) -> Result<U, StoreError> + Send + 'static,
    ) -> StoreFuture<U>
    where
        T: ::redis::FromRedisValue + Send,
    {
        let Redis {
            mut connection,
            prefix,
            timeout,
        } = self.redis.clone();
        StoreFuture::boxed(async move {
            let mut invocation = script.prepare_invoke();
            invocation.arg(&*prefix);
            for arg in &args {
                invocation.arg(arg);
            }
            map(run(timeout, invocation.invoke_async(&mut connection)).await?)
        })
    }
}

impl fmt::Debug for RedisRefreshStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRefreshStore")
            .field("prefix", &self.redis.prefix)
            .field("timeout", &self.redis.timeout)
            .finish_non_exhaustive()
    }
}

/// The session of a script that answers a session record or nothing.
fn session(record: Option<String>) -> Result<Option<RefreshSession>, StoreError> {
    record.as_deref().map(Record::decode).transpose()
}

impl RefreshStore for RedisRefreshStore {
    fn create(
        &self,
        session: RefreshSession,
        token: TokenHash,
        idle_expires_at: u64,
    ) -> StoreFuture<()> {
        let record = match Record::encode(&session) {
            Ok(record) => record,
            Err(error) => return StoreFuture::ready(Err(error)),
        };
        let args = vec![
            session.session_id,
            session.user_id,
            record,
            hex(token.as_bytes()),
            secs(idle_expires_at).to_string(),
            secs(session.expires_at).to_string(),
            secs(session.created_at).to_string(),
        ];
        self.invoke(&CREATE, args, |created: i64| match created {
            0 => Err(StoreError::new("duplicate session or token")),
            _ => Ok(()),
        })
    }

    fn get(&self, token: &TokenHash, now: u64) -> StoreFuture<Option<RefreshSession>> {
        let args = vec![hex(token.as_bytes()), secs(now).to_string()];
        self.invoke(&GET, args, session)
    }

    fn rotate(
        &self,
        old: &TokenHash,
        new: TokenHash,
        now: u64,
        idle_expires_at: u64,
        retry: Option<Retry>,
    ) -> StoreFuture<Rotation> {
        let args = vec![
            hex(old.as_bytes()),
            hex(new.as_bytes()),
            secs(now).to_string(),
            secs(idle_expires_at).to_string(),
            REMEMBERED_ROTATIONS.to_string(),
            retry.map_or_else(String::new, |retry| hex(retry.sealed.as_bytes())),
            retry.map_or(0, |retry| secs(retry.until)).to_string(),
        ];
        self.invoke(
            &ROTATE,
            args,
            |answer: (i64, Option<String>, Option<String>)| match answer {
                (1, Some(record), _) => Ok(Rotation::Rotated(Record::decode(&record)?)),
                (2, Some(record), _) => Ok(Rotation::Reused(Record::decode(&record)?)),
                (3, _, _) => Err(StoreError::new("duplicate token")),
                (4, Some(record), Some(sealed)) => {
                    let sealed = unhex32(&sealed)
                        .ok_or_else(|| StoreError::new("malformed sealed token in Redis"))?;
                    Ok(Rotation::Retried(
                        Record::decode(&record)?,
                        SealedToken::from_bytes(sealed),
                    ))
                }
                _ => Ok(Rotation::Invalid),
            },
        )
    }

    fn find_session(&self, token: &TokenHash) -> StoreFuture<Option<RefreshSession>> {
        self.invoke(&FIND, vec![hex(token.as_bytes())], session)
    }

    fn revoke_session(&self, session_id: &str) -> StoreFuture<Option<RefreshSession>> {
        self.invoke(&REVOKE_SESSION, vec![session_id.to_owned()], session)
    }

    fn revoke_user(&self, user_id: &str, except: Option<&str>) -> StoreFuture<Vec<RefreshSession>> {
        // Session ids are never empty: an empty `except` keeps nothing.
        self.invoke(
            &REVOKE_USER,
            vec![user_id.to_owned(), except.unwrap_or("").to_owned()],
            |ended: Vec<String>| ended.iter().map(|record| Record::decode(record)).collect(),
        )
    }

    fn end_oldest(&self, user_id: &str, keep: usize, now: u64) -> StoreFuture<Vec<RefreshSession>> {
        // Families also end in Redis on their own (their keys expire on its clock); `now`
        // ends the ones past their expiry on the caller's, as the other stores do.
        self.invoke(
            &END_OLDEST,
            vec![user_id.to_owned(), keep.to_string(), now.to_string()],
            |ended: Vec<String>| ended.iter().map(|record| Record::decode(record)).collect(),
        )
    }

    /// `PING`: whether Redis answers within the timeout.
    fn ready(&self, _now: u64) -> StoreFuture<()> {
        let Redis {
            mut connection,
            timeout,
            ..
        } = self.redis.clone();
        StoreFuture::boxed(async move {
            let pong: String =
                run(timeout, ::redis::cmd("PING").query_async(&mut connection)).await?;
            if pong == "PONG" {
                Ok(())
            } else {
                Err(StoreError::new("redis: unexpected answer to PING"))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_records_round_trip() {
        let session = RefreshSession {
            session_id: "s".to_owned(),
            user_id: "u\"\n".to_owned(),
            client_id: "web".to_owned(),
            scopes: vec!["a".to_owned(), "b:c".to_owned()],
            created_at: 1,
            expires_at: u64::MAX,
        };
        let text = Record::encode(&session).unwrap();
        assert_eq!(Record::decode(&text).unwrap(), session);
        assert_eq!(
            Record::decode("{").unwrap_err().message(),
            "redis: unreadable session record"
        );
    }

    #[test]
    fn every_script_is_the_helpers_and_one_operation() {
        for script in [
            &CREATE,
            &GET,
            &ROTATE,
            &FIND,
            &REVOKE_SESSION,
            &REVOKE_USER,
            &END_OLDEST,
        ] {
            assert_eq!(script.get_hash().len(), 40);
        }
        assert_ne!(CREATE.get_hash(), GET.get_hash());
    }
}
