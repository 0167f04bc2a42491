//! [`SqlOneTimeStore`].

use std::fmt;

use sqlx::Row;

use super::{Backend, Database, int, uint, with_pool};
use crate::router::OneTimeStore;
use crate::store::StoreFuture;

/// [`OneTimeStore`] in the `auth_one_time` table, shared by every instance on the database.
/// Keys are stored as lower-case hex.
///
/// A [`put`](OneTimeStore::put) is one transaction: it deletes the values expired by then
/// (through an index on the expiry; the table stays as small as the sign-ins in progress),
/// then inserts unless a live value has the key. A [`take`](OneTimeStore::take) is one
/// `DELETE … RETURNING`: of concurrent takes of one key, on any number of instances, one
/// gets the value. There is no cap: the database holds what it can.
#[derive(Clone)]
pub struct SqlOneTimeStore {
    db: Database,
}

impl SqlOneTimeStore {
    /// The one-time values of `db` (see also [`Database::one_time`]).
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

impl fmt::Debug for SqlOneTimeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlOneTimeStore")
            .field("db", &self.db)
            .finish()
    }
}

/// `key` in lower-case hex, as the `key` column holds it.
fn hex(key: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(64);
    for byte in key {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

impl OneTimeStore for SqlOneTimeStore {
    fn put(&self, key: &[u8; 32], value: String, expires_at: u64, now: u64) -> StoreFuture<bool> {
        let this = self.clone();
        let key = hex(key);
        StoreFuture::boxed(async move {
            let (expires_at, now) = (int(expires_at), int(now));
            this.db
                .run(async {
                    with_pool!(this.db, p => {
                        let mut tx = p.begin_write().await?;
                        // PostgreSQL: rows another put or take is deleting are skipped, so
                        // concurrent puts neither wait on each other nor deadlock. SQLite has
                        // one writer at a time.
                        let sweep = if p.name() == "postgres" {
                            "DELETE FROM auth_one_time WHERE key IN (SELECT key FROM \
                             auth_one_time WHERE expires_at <= $1 FOR UPDATE SKIP LOCKED)"
                        } else {
                            "DELETE FROM auth_one_time WHERE expires_at <= $1"
                        };
                        sqlx::query(sweep).bind(now).execute(&mut *tx).await?;
                        // An expired value under the key (one the sweep skipped) is replaced,
                        // a live one stays: the conflict's update happens only when expired.
                        let done = sqlx::query(
                            "INSERT INTO auth_one_time (key, value, expires_at) \
                             VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET \
                             value = excluded.value, expires_at = excluded.expires_at \
                             WHERE auth_one_time.expires_at <= $4",
                        )
                        .bind(&key)
                        .bind(&value)
                        .bind(expires_at)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        tx.commit().await?;
                        Ok(done.rows_affected() > 0)
                    })
                })
                .await
        })
    }

    fn take(&self, key: &[u8; 32], now: u64) -> StoreFuture<Option<String>> {
        let this = self.clone();
        let key = hex(key);
        StoreFuture::boxed(async move {
            this.db
                .run(async {
                    with_pool!(this.db, p => {
                        let row = sqlx::query(
                            "DELETE FROM auth_one_time WHERE key = $1 RETURNING value, expires_at",
                        )
                        .bind(&key)
                        .fetch_optional(p)
                        .await?;
                        let Some(row) = row else {
                            return Ok(None);
                        };
                        let expires_at: i64 = row.try_get("expires_at")?;
                        // Taken either way: an expired value is used up too.
                        Ok((now < uint(expires_at))
                            .then(|| row.try_get("value"))
                            .transpose()?)
                    })
                })
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::hex;

    #[test]
    fn keys_are_lower_case_hex() {
        let mut key = [0u8; 32];
        key[0] = 0xab;
        key[1] = 0x0f;
        key[31] = 0xf0;
        let text = hex(&key);
        assert_eq!(text.len(), 64);
        assert!(text.starts_with("ab0f00"), "{text}");
        assert!(text.ends_with("00f0"), "{text}");
    }
}
