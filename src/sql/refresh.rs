//! [`SqlRefreshStore`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Row;

use super::{Backend, Database, int, is_unique_violation, json_list, parse_list, uint, with_pool};
use crate::router::{
    REMEMBERED_ROTATIONS, RefreshSession, RefreshStore, Retry, Rotation, SealedToken, TokenHash,
};
use crate::store::{StoreError, StoreFuture};

/// [`RefreshStore`] in the `auth_sessions` and `auth_rotated_tokens` tables.
///
/// A rotation is one conditional `UPDATE … WHERE current_hash = old … RETURNING` in a
/// transaction with the record of the token it replaced, so of two concurrent rotations with
/// one token, on one instance or on several, exactly one sees [`Rotation::Rotated`]; the other
/// finds the token rotated and ends the family ([`Rotation::Reused`]). The most recent
/// [`REMEMBERED_ROTATIONS`] rotated tokens of each family are kept. Expired families are
/// deleted every 1024 logins.
#[derive(Clone)]
pub struct SqlRefreshStore {
    db: Database,
    creates: Arc<AtomicU64>,
}

const SESSION_COLUMNS: &str = "session_id, user_id, client_id, scopes, created_at, expires_at";

/// Decodes a session from a row of [`SESSION_COLUMNS`].
macro_rules! session_from_row {
    ($row:expr) => {{
        let row = $row;
        let scopes: String = row.try_get("scopes")?;
        Ok::<RefreshSession, sqlx::Error>(RefreshSession {
            session_id: row.try_get("session_id")?,
            user_id: row.try_get("user_id")?,
            client_id: row.try_get("client_id")?,
            scopes: parse_list(&scopes)?,
            created_at: uint(row.try_get("created_at")?),
            expires_at: uint(row.try_get("expires_at")?),
        })
    }};
}

impl SqlRefreshStore {
    /// The refresh families of `db` (see also [`Database::refresh`]).
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self {
            db,
            creates: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Deletes the families that have ended by `now` (idle or absolute expiry), with their
    /// rotated tokens; returns how many.
    ///
    /// # Errors
    ///
    /// The database's.
    pub async fn sweep(&self, now: u64) -> Result<u64, StoreError> {
        // `idle_expires_at` never exceeds `expires_at`: one column says both.
        self.db
            .run(async {
                with_pool!(self.db, p => {
                    let done = sqlx::query("DELETE FROM auth_sessions WHERE idle_expires_at <= $1")
                        .bind(int(now))
                        .execute(p)
                        .await?;
                    Ok(done.rows_affected())
                })
            })
            .await
    }

    /// Runs `query_sessions` (a statement returning [`SESSION_COLUMNS`] with one text bind).
    fn sessions(&self, sql: String, binds: Vec<String>) -> StoreFuture<Vec<RefreshSession>> {
        let this = self.clone();
        StoreFuture::boxed(async move {
            this.db
                .run(async {
                    with_pool!(this.db, p => {
                        let mut query = sqlx::query(&sql);
                        for bind in &binds {
                            query = query.bind(bind);
                        }
                        let rows = query.fetch_all(p).await?;
                        rows.iter().map(|row| session_from_row!(row)).collect()
                    })
                })
                .await
        })
    }
}

impl fmt::Debug for SqlRefreshStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlRefreshStore")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl RefreshStore for SqlRefreshStore {
    fn create(
        &self,
        session: RefreshSession,
        token: TokenHash,
        idle_expires_at: u64,
    ) -> StoreFuture<()> {
        let this = self.clone();
        StoreFuture::boxed(async move {
            let now = session.created_at;
            if this.creates.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
                this.sweep(now).await?;
            }
            let scopes = json_list(&session.scopes);
            let idle = idle_expires_at.min(session.expires_at);
            let inserted = this
                .db
                .run(async {
                    let result = with_pool!(this.db, p => {
                        // A token some family rotated away from is taken too.
                        sqlx::query(
                            "INSERT INTO auth_sessions (session_id, user_id, client_id, scopes, \
                             created_at, expires_at, idle_expires_at, current_hash) \
                             SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE NOT EXISTS \
                             (SELECT 1 FROM auth_rotated_tokens WHERE token_hash = $8)",
                        )
                        .bind(&session.session_id)
                        .bind(&session.user_id)
                        .bind(&session.client_id)
                        .bind(&scopes)
                        .bind(int(session.created_at))
                        .bind(int(session.expires_at))
                        .bind(int(idle))
                        .bind(&token.as_bytes()[..])
                        .execute(p)
                        .await
                        .map(|done| done.rows_affected() > 0)
                    });
                    match result {
                        Ok(inserted) => Ok(inserted),
                        Err(error) if is_unique_violation(&error) => Ok(false),
                        Err(error) => Err(error),
                    }
                })
                .await?;
            if inserted {
                Ok(())
            } else {
                Err(StoreError::new("duplicate session or token"))
            }
        })
    }

    fn get(&self, token: &TokenHash, now: u64) -> StoreFuture<Option<RefreshSession>> {
        let this = self.clone();
        let token = *token;
        StoreFuture::boxed(async move {
            this.db
                .run(async {
                    with_pool!(this.db, p => {
                        let row = sqlx::query(&format!(
                            "SELECT {SESSION_COLUMNS} FROM auth_sessions \
                             WHERE current_hash = $1 AND idle_expires_at > $2 AND expires_at > $2"
                        ))
                        .bind(&token.as_bytes()[..])
                        .bind(int(now))
                        .fetch_optional(p)
                        .await?;
                        row.map(|row| session_from_row!(row)).transpose()
                    })
                })
                .await
        })
    }

    fn rotate(
        &self,
        old: &TokenHash,
        new: TokenHash,
        now: u64,
        idle_expires_at: u64,
        retry: Option<Retry>,
    ) -> StoreFuture<Rotation> {
        let this = self.clone();
        let old = *old;
        // What this rotation keeps for a retry of it; none clears the previous one's.
        let previous = retry.map(|_| old.as_bytes().to_vec());
        let sealed = retry.map(|retry| retry.sealed.as_bytes().to_vec());
        let until = int(retry.map_or(0, |retry| retry.until));
        StoreFuture::boxed(async move {
            let rotation = this
                .db
                .run(async {
                    with_pool!(this.db, p => {
                        let mut tx = p.begin_write().await?;
                        let taken: Option<i64> = sqlx::query_scalar(
                            "SELECT 1 FROM auth_rotated_tokens WHERE token_hash = $1",
                        )
                        .bind(&new.as_bytes()[..])
                        .fetch_optional(&mut *tx)
                        .await?;
                        if taken.is_some() {
                            return Ok(None);
                        }
                        let rotated = sqlx::query(&format!(
                            "UPDATE auth_sessions SET current_hash = $1, \
                             idle_expires_at = CASE WHEN $2 < expires_at THEN $2 ELSE expires_at END, \
                             rotations = rotations + 1, previous_hash = $5, previous_sealed = $6, \
                             retry_until = $7 \
                             WHERE current_hash = $3 AND idle_expires_at > $4 AND expires_at > $4 \
                             RETURNING {SESSION_COLUMNS}, rotations"
                        ))
                        .bind(&new.as_bytes()[..])
                        .bind(int(idle_expires_at))
                        .bind(&old.as_bytes()[..])
                        .bind(int(now))
                        .bind(previous.as_deref())
                        .bind(sealed.as_deref())
                        .bind(until)
                        .fetch_optional(&mut *tx)
                        .await;
                        let rotated = match rotated {
                            Err(error) if is_unique_violation(&error) => return Ok(None),
                            rotated => rotated?,
                        };
                        if let Some(row) = rotated {
                            let session = session_from_row!(&row)?;
                            let rotation: i64 = row.try_get("rotations")?;
                            sqlx::query(
                                "INSERT INTO auth_rotated_tokens (token_hash, session_id, rotation) \
                                 VALUES ($1, $2, $3)",
                            )
                            .bind(&old.as_bytes()[..])
                            .bind(&session.session_id)
                            .bind(rotation)
                            .execute(&mut *tx)
                            .await?;
                            let keep = i64::try_from(REMEMBERED_ROTATIONS).unwrap_or(i64::MAX);
                            sqlx::query(
                                "DELETE FROM auth_rotated_tokens \
                                 WHERE session_id = $1 AND rotation <= $2",
                            )
                            .bind(&session.session_id)
                            .bind(rotation - keep)
                            .execute(&mut *tx)
                            .await?;
                            tx.commit().await?;
                            return Ok(Some(Rotation::Rotated(session)));
                        }
                        // Not the current token of a live family. The one its last rotation
                        // replaced, within that rotation's retry deadline, is a retry.
                        let retried = sqlx::query(&format!(
                            "SELECT {SESSION_COLUMNS}, previous_sealed FROM auth_sessions \
                             WHERE session_id = (SELECT session_id FROM auth_rotated_tokens \
                             WHERE token_hash = $1) AND previous_hash = $1 AND retry_until > $2 \
                             AND idle_expires_at > $2 AND expires_at > $2"
                        ))
                        .bind(&old.as_bytes()[..])
                        .bind(int(now))
                        .fetch_optional(&mut *tx)
                        .await?;
                        if let Some(row) = retried {
                            let session = session_from_row!(&row)?;
                            let sealed: Vec<u8> = row.try_get("previous_sealed")?;
                            let sealed = <[u8; 32]>::try_from(sealed.as_slice()).map_err(|_| {
                                sqlx::Error::Decode("previous_sealed is not 32 bytes".into())
                            })?;
                            tx.commit().await?;
                            let sealed = SealedToken::from_bytes(sealed);
                            return Ok(Some(Rotation::Retried(session, sealed)));
                        }
                        // Any other rotated one is a replay, which ends its family.
                        let replayed = sqlx::query(&format!(
                            "DELETE FROM auth_sessions WHERE session_id = \
                             (SELECT session_id FROM auth_rotated_tokens WHERE token_hash = $1) \
                             AND idle_expires_at > $2 AND expires_at > $2 \
                             RETURNING {SESSION_COLUMNS}"
                        ))
                        .bind(&old.as_bytes()[..])
                        .bind(int(now))
                        .fetch_optional(&mut *tx)
                        .await?;
                        let replayed = replayed.map(|row| session_from_row!(row)).transpose()?;
                        tx.commit().await?;
                        Ok(Some(replayed.map_or(Rotation::Invalid, Rotation::Reused)))
                    })
                })
                .await?;
            rotation.ok_or_else(|| StoreError::new("duplicate token"))
        })
    }

    fn find_session(&self, token: &TokenHash) -> StoreFuture<Option<RefreshSession>> {
        let this = self.clone();
        let token = *token;
        StoreFuture::boxed(async move {
            this.db
                .run(async {
                    with_pool!(this.db, p => {
                        let row = sqlx::query(&format!(
                            "SELECT {SESSION_COLUMNS} FROM auth_sessions WHERE current_hash = $1 \
                             OR session_id = (SELECT session_id FROM auth_rotated_tokens \
                             WHERE token_hash = $1)"
                        ))
                        .bind(&token.as_bytes()[..])
                        .fetch_optional(p)
                        .await?;
                        row.map(|row| session_from_row!(row)).transpose()
                    })
                })
                .await
        })
    }

    fn revoke_session(&self, session_id: &str) -> StoreFuture<Option<RefreshSession>> {
        let ended = self.sessions(
            format!("DELETE FROM auth_sessions WHERE session_id = $1 RETURNING {SESSION_COLUMNS}"),
            vec![session_id.to_owned()],
        );
        StoreFuture::boxed(async move { Ok(ended.await?.pop()) })
    }

    fn revoke_user(&self, user_id: &str, except: Option<&str>) -> StoreFuture<Vec<RefreshSession>> {
        // Session ids are never empty: an empty `except` keeps nothing.
        self.sessions(
            format!(
                "DELETE FROM auth_sessions WHERE user_id = $1 AND session_id <> $2 \
                 RETURNING {SESSION_COLUMNS}"
            ),
            vec![user_id.to_owned(), except.unwrap_or("").to_owned()],
        )
    }

    fn end_oldest(&self, user_id: &str, keep: usize, now: u64) -> StoreFuture<Vec<RefreshSession>> {
        let this = self.clone();
        let user_id = user_id.to_owned();
        StoreFuture::boxed(async move {
            let keep = int(u64::try_from(keep).unwrap_or(u64::MAX));
            // Most logins find the user under the cap: one query, no transaction.
            let live: i64 = this
                .db
                .run(async {
                    with_pool!(this.db, p => {
                        sqlx::query_scalar(
                            "SELECT COUNT(*) FROM auth_sessions \
                             WHERE user_id = $1 AND idle_expires_at > $2",
                        )
                        .bind(&user_id)
                        .bind(int(now))
                        .fetch_one(p)
                        .await
                    })
                })
                .await?;
            if live <= keep {
                return Ok(Vec::new());
            }
            let lock = format!("sessions:{user_id}");
            this.db
                .run(async {
                    with_pool!(this.db, p => {
                        let mut tx = p.begin_write().await?;
                        p.lock_keys(&mut *tx, &mut [lock.as_str()]).await?;
                        // Families already over go without counting.
                        sqlx::query(
                            "DELETE FROM auth_sessions WHERE user_id = $1 AND idle_expires_at <= $2",
                        )
                        .bind(&user_id)
                        .bind(int(now))
                        .execute(&mut *tx)
                        .await?;
                        // Counted again under the lock: another login may have ended some.
                        let live: i64 = sqlx::query_scalar(
                            "SELECT COUNT(*) FROM auth_sessions WHERE user_id = $1",
                        )
                        .bind(&user_id)
                        .fetch_one(&mut *tx)
                        .await?;
                        let oldest: Vec<String> = sqlx::query_scalar(
                            "SELECT session_id FROM auth_sessions WHERE user_id = $1 \
                             ORDER BY created_at, session_id LIMIT $2",
                        )
                        .bind(&user_id)
                        .bind((live - keep).max(0))
                        .fetch_all(&mut *tx)
                        .await?;
                        let mut ended = Vec::with_capacity(oldest.len());
                        for id in &oldest {
                            let row = sqlx::query(&format!(
                                "DELETE FROM auth_sessions WHERE session_id = $1 \
                                 RETURNING {SESSION_COLUMNS}"
                            ))
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?;
                            if let Some(row) = row {
                                ended.push(session_from_row!(row)?);
                            }
                        }
                        tx.commit().await?;
                        Ok(ended)
                    })
                })
                .await
        })
    }

    fn ready(&self, _now: u64) -> StoreFuture<()> {
        let db = self.db.clone();
        StoreFuture::boxed(async move { db.ping().await })
    }
}
