//! [`SqlUserStore`].

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Row;

use super::{
    Backend, Database, int, is_foreign_key_violation, is_unique_violation, json_list, parse_list,
    uint, with_pool,
};
use crate::router::{
    AccountToken, Changed, Created, Identity, Issued, Linked, NewUser, TokenPurpose, Unlinked,
    User, UserChange, UserStore, email_key, loses_role, stored_form,
};
use crate::store::{StoreError, StoreFuture};
use crate::username::username_skeleton;

/// [`UserStore`] in the `auth_users` table, with linked external identities in
/// `auth_identities`. The normalised username and its look-alike skeleton are unique columns:
/// [`create`](UserStore::create) is one `INSERT`, and of two concurrent registrations of one
/// name or of look-alikes, on any number of instances, one gets [`Created::Taken`].
///
/// An identity's `(issuer, subject)` is the table's primary key and `(user_id, provider)` is
/// unique, so [`create_linked`](UserStore::create_linked) (the account and its identity in
/// one transaction) and [`link_identity`](UserStore::link_identity) cannot link one identity
/// twice, nor two from one provider to one account. The unlinks of one account take turns
/// (SQLite: the write lock; PostgreSQL: an advisory lock on the account), so two concurrent
/// unlinks of an account's last two ways to sign in leave one.
#[derive(Clone)]
pub struct SqlUserStore {
    db: Database,
}

/// The columns [`user_from_row`] reads.
macro_rules! user_columns {
    () => {
        "id, username, email, password_hash, roles, scopes, disabled, email_verified"
    };
}

/// Finds a user by id.
const BY_ID: &str = concat!("SELECT ", user_columns!(), " FROM auth_users WHERE id = $1");
/// Finds a user by normalised username.
const BY_NAME: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM auth_users WHERE username = $1"
);
/// Finds a user by e-mail key.
const BY_EMAIL: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM auth_users WHERE email_key = $1"
);

/// Finds the user an identity (`$1` issuer, `$2` subject) is linked to.
const BY_IDENTITY: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM auth_users WHERE id = \
     (SELECT user_id FROM auth_identities WHERE issuer = $1 AND subject = $2)"
);

/// The columns [`identity_from_row`] reads.
macro_rules! identity_columns {
    () => {
        "provider, issuer, subject, email, linked_at"
    };
}

/// How many times [`UserStore::link_identity`] tries again when the row that made its insert
/// do nothing is gone by the time it looks (unlinked or deleted in between).
const LINK_ATTEMPTS: usize = 4;

/// Decodes an identity from a row of [`identity_columns`].
macro_rules! identity_from_row {
    ($row:expr) => {{
        let row = $row;
        Ok::<Identity, sqlx::Error>(Identity {
            provider: row.try_get("provider")?,
            issuer: row.try_get("issuer")?,
            subject: row.try_get("subject")?,
            email: row.try_get("email")?,
            linked_at: uint(row.try_get("linked_at")?),
        })
    }};
}

/// Decodes a user from a row of [`user_columns`].
macro_rules! user_from_row {
    ($row:expr) => {{
        let row = $row;
        let roles: String = row.try_get("roles")?;
        let scopes: String = row.try_get("scopes")?;
        Ok::<User, sqlx::Error>(User {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            email: row.try_get("email")?,
            password_hash: row.try_get("password_hash")?,
            roles: parse_list(&roles)?,
            scopes: parse_list(&scopes)?,
            disabled: row.try_get("disabled")?,
            email_verified: row.try_get("email_verified")?,
        })
    }};
}

impl SqlUserStore {
    /// The users of `db` (see also [`Database::users`]).
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// How many accounts there are.
    ///
    /// # Errors
    ///
    /// The database's.
    pub async fn count(&self) -> Result<u64, StoreError> {
        self.db
            .run(async {
                with_pool!(self.db, p => {
                    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM auth_users")
                        .fetch_one(p)
                        .await?;
                    Ok(uint(count))
                })
            })
            .await
    }

    /// The `user_id` a token query (`$1` hash, `$2` purpose, `$3` now) answers.
    fn token_query(
        &self,
        sql: &'static str,
        purpose: TokenPurpose,
        hash: &[u8; 32],
        now: u64,
    ) -> StoreFuture<Option<String>> {
        let this = self.clone();
        let hash = *hash;
        StoreFuture::boxed(async move {
            this.db
                .run(async {
                    with_pool!(this.db, p => {
                        let user: Option<String> = sqlx::query_scalar(sql)
                            .bind(hash.as_slice())
                            .bind(purpose.as_str())
                            .bind(int(now))
                            .fetch_optional(p)
                            .await?;
                        Ok(user)
                    })
                })
                .await
        })
    }

    /// The user `sql` finds with `values` bound in order.
    fn find(&self, sql: &'static str, values: &[&str]) -> StoreFuture<Option<User>> {
        let this = self.clone();
        let values: Vec<String> = values.iter().map(|value| (*value).to_owned()).collect();
        StoreFuture::boxed(async move {
            this.db
                .run(async {
                    with_pool!(this.db, p => {
                        let mut query = sqlx::query(sql);
                        for value in &values {
                            query = query.bind(value);
                        }
                        let row = query.fetch_optional(p).await?;
                        row.map(|row| user_from_row!(row)).transpose()
                    })
                })
                .await
        })
    }

    /// Creates `user`, with `identity` linked to it when given, in one transaction: what
    /// [`create`](UserStore::create) and [`create_linked`](UserStore::create_linked) share. A
    /// name, skeleton or e-mail key already taken is refused by the user's `INSERT` (the
    /// unique columns); an identity already linked by the identity's, which then leaves no
    /// user behind.
    fn insert(&self, user: NewUser, identity: Option<Identity>) -> StoreFuture<Created> {
        let Some(username) = stored_form(&user.username) else {
            return StoreFuture::ready(Ok(Created::InvalidUsername));
        };
        let skeleton = username_skeleton(&username);
        let id = match crate::ids::random_id() {
            Ok(id) => id,
            Err(error) => return StoreFuture::ready(Err(error.into())),
        };
        let this = self.clone();
        StoreFuture::boxed(async move {
            let now = int(now());
            let (roles, scopes) = (json_list(&user.roles), json_list(&user.scopes));
            let refused = this
                .db
                .run(async {
                    with_pool!(this.db, p => {
                        let mut tx = p.begin_write().await?;
                        let inserted = sqlx::query(
                            "INSERT INTO auth_users (id, username, skeleton, email, \
                             password_hash, roles, scopes, disabled, created_at, updated_at, \
                             email_key) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
                        )
                        .bind(&id)
                        .bind(&username)
                        .bind(&skeleton)
                        .bind(&user.email)
                        .bind(&user.password_hash)
                        .bind(&roles)
                        .bind(&scopes)
                        .bind(false)
                        .bind(now)
                        .bind(user.email.as_deref().map(email_key))
                        .execute(&mut *tx)
                        .await;
                        match inserted {
                            Ok(_) => {}
                            Err(error) if is_unique_violation(&error) => {
                                if !names_email_key(&error) {
                                    return Ok(Some(Created::Taken));
                                }
                                // SQLite reports the address even when the name is taken
                                // too; the name comes first, as on PostgreSQL and in memory.
                                drop(tx);
                                let name_taken = sqlx::query(
                                    "SELECT 1 FROM auth_users WHERE username = $1 OR skeleton = $2",
                                )
                                .bind(&username)
                                .bind(&skeleton)
                                .fetch_optional(p)
                                .await?
                                .is_some();
                                return Ok(Some(if name_taken {
                                    Created::Taken
                                } else {
                                    Created::EmailTaken
                                }));
                            }
                            // Dropping the transaction rolls it back.
                            Err(error) => return Err(error),
                        }
                        if let Some(identity) = &identity {
                            // The account is new: only `(issuer, subject)` can conflict.
                            let linked = sqlx::query(
                                "INSERT INTO auth_identities \
                                 (issuer, subject, user_id, provider, email, linked_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                            )
                            .bind(&identity.issuer)
                            .bind(&identity.subject)
                            .bind(&id)
                            .bind(&identity.provider)
                            .bind(&identity.email)
                            .bind(int(identity.linked_at))
                            .execute(&mut *tx)
                            .await?;
                            if linked.rows_affected() == 0 {
                                return Ok(Some(Created::IdentityTaken));
                            }
                        }
                        tx.commit().await?;
                        Ok(None)
                    })
                })
                .await?;
            if let Some(refused) = refused {
                return Ok(refused);
            }
            Ok(Created::Created(user.into_user(id, username)))
        })
    }

    /// Applies `change` (`None`: deletes) in one write transaction, unless it takes
    /// `protected_role` from its last enabled holder. Every such change takes one lock
    /// (PostgreSQL: an advisory lock; SQLite: the write lock of `BEGIN IMMEDIATE`), so two of
    /// them never both see the other's holder still there.
    fn change(
        &self,
        id: &str,
        change: Option<UserChange>,
        protected_role: Option<&str>,
    ) -> StoreFuture<Changed> {
        let this = self.clone();
        let id = id.to_owned();
        let role = protected_role.map(str::to_owned);
        StoreFuture::boxed(async move {
            let now = int(now());
            this.db
                .run(async {
                    with_pool!(this.db, p => {
                        let mut tx = p.begin_write().await?;
                        p.lock_keys(&mut *tx, &mut ["users:change"]).await?;
                        let row = sqlx::query(BY_ID).bind(&id).fetch_optional(&mut *tx).await?;
                        let Some(row) = row else {
                            return Ok(Changed::NotFound);
                        };
                        let before = user_from_row!(row)?;
                        let after = change.as_ref().map(|change| change.apply(&before));
                        if let Some(role) = &role
                            && loses_role(&before, after.as_ref(), role)
                        {
                            // Candidates by a text match on the JSON array, then exactly.
                            // The role as a JSON string, quotes included, as the array holds it.
                            let quoted = serde_json::to_string(role).unwrap_or_default();
                            let pattern = format!("%{}%", like_escape(&quoted));
                            let rows = sqlx::query(
                                "SELECT roles FROM auth_users \
                                 WHERE id <> $1 AND disabled = $2 AND roles LIKE $3 ESCAPE '\\'",
                            )
                            .bind(&id)
                            .bind(false)
                            .bind(&pattern)
                            .fetch_all(&mut *tx)
                            .await?;
                            let mut another = false;
                            for row in &rows {
                                let roles: String = row.try_get("roles")?;
                                another |= parse_list(&roles)?.iter().any(|r| r == role);
                            }
                            if !another {
                                return Ok(Changed::LastWithRole);
                            }
                        }
                        match &after {
                            Some(after) => {
                                sqlx::query(
                                    "UPDATE auth_users SET disabled = $1, roles = $2, scopes = $3, \
                                     updated_at = $4, email_verified = $6 WHERE id = $5",
                                )
                                .bind(after.disabled)
                                .bind(json_list(&after.roles))
                                .bind(json_list(&after.scopes))
                                .bind(now)
                                .bind(&id)
                                .bind(after.email_verified)
                                .execute(&mut *tx)
                                .await?;
                            }
                            None => {
                                // Not left to the foreign key's cascade: an application's own
                                // SQLite pool may have foreign keys off.
                                sqlx::query("DELETE FROM auth_identities WHERE user_id = $1")
                                    .bind(&id)
                                    .execute(&mut *tx)
                                    .await?;
                                sqlx::query("DELETE FROM auth_users WHERE id = $1")
                                    .bind(&id)
                                    .execute(&mut *tx)
                                    .await?;
                            }
                        }
                        tx.commit().await?;
                        Ok(Changed::Changed(before))
                    })
                })
                .await
        })
    }
}

/// `text` with the `LIKE` wildcards and the escape character escaped (by `\`).
fn like_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Whether a unique violation is the e-mail key's (the index's name on PostgreSQL, the column
/// in SQLite's message).
fn names_email_key(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|error| {
        error.constraint().is_some_and(|c| c.contains("email_key"))
            || error.message().contains("email_key")
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl fmt::Debug for SqlUserStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlUserStore")
            .field("db", &self.db)
            .finish()
    }
}

impl UserStore for SqlUserStore {
    fn find_by_username(&self, username: &str) -> StoreFuture<Option<User>> {
        self.find(BY_NAME, &[username])
    }

    fn find_by_id(&self, id: &str) -> StoreFuture<Option<User>> {
        self.find(BY_ID, &[id])
    }

    fn create(&self, user: NewUser) -> StoreFuture<Created> {
        self.insert(user, None)
    }

    fn update_password_hash(&self, id: &str, password_hash: String) -> StoreFuture<bool> {
        let this = self.clone();
        let id = id.to_owned();
        StoreFuture::boxed(async move {
            let now = int(now());
            this.db
                .run(async {
                    with_pool!(this.db, p => {
                        let done = sqlx::query(
                            "UPDATE auth_users SET password_hash = $1, updated_at = $2 WHERE id = $3",
                        )
                        .bind(&password_hash)
                        .bind(now)
                        .bind(&id)
                        .execute(p)
                        .await?;
                        Ok(done.rows_affected() > 0)
                    })
                })
                .await
        })
    }

    fn update(
        &self,
        id: &str,
        change: UserChange,
        protected_role: Option<&str>,
    ) -> StoreFuture<Changed> {
        self.change(id, Some(change), protected_role)
    }

    fn delete(&self, id: &str, protected_role: Option<&str>) -> StoreFuture<Changed> {
        self.change(id, None, protected_role)
    }

    fn page(&self, after: Option<&str>, limit: usize) -> StoreFuture<Vec<User>> {
        let this = self.clone();
        let after = after.map(str::to_owned);
        StoreFuture::boxed(async move {
            let limit = int(u64::try_from(limit).unwrap_or(u64::MAX));
            this.db
                .run(async {
                    with_pool!(this.db, p => {
                        // `username > ''` holds for every name (none is empty). Names compare
                        // bytewise on both backends (SQLite's default BINARY collation,
                        // PostgreSQL's "C" whatever the database's), as the memory store's do.
                        let sql = if p.name() == "postgres" {
                            concat!(
                                "SELECT ", user_columns!(), " FROM auth_users \
                                 WHERE username COLLATE \"C\" > $1 \
                                 ORDER BY username COLLATE \"C\" LIMIT $2"
                            )
                        } else {
                            concat!(
                                "SELECT ", user_columns!(), " FROM auth_users \
                                 WHERE username > $1 ORDER BY username LIMIT $2"
                            )
                        };
                        let rows = sqlx::query(sql)
                        .bind(after.as_deref().unwrap_or(""))
                        .bind(limit)
                        .fetch_all(p)
                        .await?;
                        rows.iter().map(|row| user_from_row!(row)).collect()
                    })
                })
                .await
        })
    }

    fn find_by_email(&self, email: &str) -> StoreFuture<Option<User>> {
        self.find(BY_EMAIL, &[&email_key(email)])
    }

    fn issue_token(&self, token: AccountToken, min_interval: u64) -> StoreFuture<Issued> {
        let this = self.clone();
        StoreFuture::boxed(async move {
            this.db
                .run(async {
                    with_pool!(this.db, p => {
                        // One statement: inserted, or replacing a token at least
                        // `min_interval` old; nothing when the user is gone or it is too soon.
                        let done = sqlx::query(
                            "INSERT INTO auth_account_tokens \
                             (token_hash, user_id, purpose, issued_at, expires_at) \
                             SELECT $1, id, $2, $3, $4 FROM auth_users WHERE id = $5 \
                             ON CONFLICT (user_id, purpose) DO UPDATE SET \
                             token_hash = excluded.token_hash, issued_at = excluded.issued_at, \
                             expires_at = excluded.expires_at \
                             WHERE auth_account_tokens.issued_at + $6 <= excluded.issued_at",
                        )
                        .bind(token.hash.as_slice())
                        .bind(token.purpose.as_str())
                        .bind(int(token.issued_at))
                        .bind(int(token.expires_at))
                        .bind(&token.user_id)
                        .bind(int(min_interval))
                        .execute(p)
                        .await?;
                        if done.rows_affected() > 0 {
                            return Ok(Issued::Issued);
                        }
                        let exists = sqlx::query("SELECT 1 FROM auth_users WHERE id = $1")
                            .bind(&token.user_id)
                            .fetch_optional(p)
                            .await?
                            .is_some();
                        Ok(if exists { Issued::TooSoon } else { Issued::NoSuchUser })
                    })
                })
                .await
        })
    }

    fn find_token(
        &self,
        purpose: TokenPurpose,
        hash: &[u8; 32],
        now: u64,
    ) -> StoreFuture<Option<String>> {
        self.token_query(
            "SELECT user_id FROM auth_account_tokens \
             WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3",
            purpose,
            hash,
            now,
        )
    }

    fn redeem_token(
        &self,
        purpose: TokenPurpose,
        hash: &[u8; 32],
        now: u64,
    ) -> StoreFuture<Option<String>> {
        self.token_query(
            "DELETE FROM auth_account_tokens \
             WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3 RETURNING user_id",
            purpose,
            hash,
            now,
        )
    }

    fn revoke_tokens(&self, user_id: &str, purpose: TokenPurpose) -> StoreFuture<()> {
        let this = self.clone();
        let user_id = user_id.to_owned();
        StoreFuture::boxed(async move {
            this.db
                .run(async {
                    with_pool!(this.db, p => {
                        sqlx::query(
                            "DELETE FROM auth_account_tokens WHERE user_id = $1 AND purpose = $2",
                        )
                        .bind(&user_id)
                        .bind(purpose.as_str())
                        .execute(p)
                        .await?;
                        Ok(())
                    })
                })
                .await
        })
    }

    fn find_by_identity(&self, issuer: &str, subject: &str) -> StoreFuture<Option<User>> {
        self.find(BY_IDENTITY, &[issuer, subject])
    }

    fn identities(&self, user_id: &str) -> StoreFuture<Vec<Identity>> {
        let this = self.clone();
        let user_id = user_id.to_owned();
        StoreFuture::boxed(async move {
            this.db
                .run(async {
                    with_pool!(this.db, p => {
                        // Bytewise, as the memory store orders them.
                        let sql = if p.name() == "postgres" {
                            concat!(
                                "SELECT ", identity_columns!(), " FROM auth_identities \
                                 WHERE user_id = $1 ORDER BY provider COLLATE \"C\""
                            )
                        } else {
                            concat!(
                                "SELECT ", identity_columns!(), " FROM auth_identities \
                                 WHERE user_id = $1 ORDER BY provider"
                            )
                        };
                        let rows = sqlx::query(sql).bind(&user_id).fetch_all(p).await?;
                        rows.iter().map(|row| identity_from_row!(row)).collect()
                    })
                })
                .await
        })
    }

    fn create_linked(&self, user: NewUser, identity: Identity) -> StoreFuture<Created> {
        self.insert(user, Some(identity))
    }

    fn link_identity(&self, user_id: &str, identity: Identity) -> StoreFuture<Linked> {
        let this = self.clone();
        let user_id = user_id.to_owned();
        StoreFuture::boxed(async move {
            for _ in 0..LINK_ATTEMPTS {
                let linked = this
                    .db
                    .run(async {
                        with_pool!(this.db, p => {
                            let mut tx = p.begin_write().await?;
                            // Inserted unless the user is missing or a unique key is taken
                            // (PostgreSQL: after waiting for an uncommitted taker to end).
                            let inserted = sqlx::query(
                                "INSERT INTO auth_identities \
                                 (issuer, subject, user_id, provider, email, linked_at) \
                                 SELECT $1, $2, id, $3, $4, $5 FROM auth_users WHERE id = $6 \
                                 ON CONFLICT DO NOTHING",
                            )
                            .bind(&identity.issuer)
                            .bind(&identity.subject)
                            .bind(&identity.provider)
                            .bind(&identity.email)
                            .bind(int(identity.linked_at))
                            .bind(&user_id)
                            .execute(&mut *tx)
                            .await;
                            match inserted {
                                Ok(done) if done.rows_affected() > 0 => {
                                    tx.commit().await?;
                                    return Ok(Some(Linked::Linked));
                                }
                                Ok(_) => {}
                                // The user was deleted after the insert read it.
                                Err(error) if is_foreign_key_violation(&error) => {
                                    return Ok(Some(Linked::NoSuchUser));
                                }
                                Err(error) => return Err(error),
                            }
                            // Why not, from what is committed now (each statement of a
                            // PostgreSQL transaction sees the latest commits; SQLite's write
                            // lock keeps everything else out).
                            let row = sqlx::query(
                                "SELECT \
                                 (SELECT COUNT(*) FROM auth_users WHERE id = $1) AS users, \
                                 (SELECT COUNT(*) FROM auth_identities \
                                  WHERE issuer = $2 AND subject = $3) AS taken, \
                                 (SELECT COUNT(*) FROM auth_identities \
                                  WHERE user_id = $1 AND provider = $4) AS provider",
                            )
                            .bind(&user_id)
                            .bind(&identity.issuer)
                            .bind(&identity.subject)
                            .bind(&identity.provider)
                            .fetch_one(&mut *tx)
                            .await?;
                            let users: i64 = row.try_get("users")?;
                            let taken: i64 = row.try_get("taken")?;
                            let provider: i64 = row.try_get("provider")?;
                            Ok(if users == 0 {
                                Some(Linked::NoSuchUser)
                            } else if taken > 0 {
                                Some(Linked::IdentityTaken)
                            } else if provider > 0 {
                                Some(Linked::ProviderTaken)
                            } else {
                                // The row in the way is gone already: try again.
                                None
                            })
                        })
                    })
                    .await?;
                if let Some(linked) = linked {
                    return Ok(linked);
                }
            }
            Err(StoreError::new(
                "linking an identity kept meeting concurrent changes",
            ))
        })
    }

    fn unlink_identity(&self, user_id: &str, provider: &str) -> StoreFuture<Unlinked> {
        let this = self.clone();
        let user_id = user_id.to_owned();
        let provider = provider.to_owned();
        StoreFuture::boxed(async move {
            let lock = format!("identities:{user_id}");
            this.db
                .run(async {
                    with_pool!(this.db, p => {
                        let mut tx = p.begin_write().await?;
                        // One statement alone is not enough on PostgreSQL: two unlinks of an
                        // account's last two identities delete different rows, and each would
                        // see the other's still there. They take turns on the account.
                        p.lock_keys(&mut *tx, &mut [lock.as_str()]).await?;
                        let row = sqlx::query(concat!(
                            "DELETE FROM auth_identities WHERE user_id = $1 AND provider = $2 \
                             AND (EXISTS (SELECT 1 FROM auth_users \
                                  WHERE id = $1 AND password_hash <> '') \
                             OR EXISTS (SELECT 1 FROM auth_identities AS other \
                                  WHERE other.user_id = $1 AND other.provider <> $2)) \
                             RETURNING ",
                            identity_columns!()
                        ))
                        .bind(&user_id)
                        .bind(&provider)
                        .fetch_optional(&mut *tx)
                        .await?;
                        if let Some(row) = row {
                            let identity = identity_from_row!(row)?;
                            tx.commit().await?;
                            return Ok(Unlinked::Unlinked(identity));
                        }
                        let linked = sqlx::query(
                            "SELECT 1 FROM auth_identities WHERE user_id = $1 AND provider = $2",
                        )
                        .bind(&user_id)
                        .bind(&provider)
                        .fetch_optional(&mut *tx)
                        .await?
                        .is_some();
                        Ok(if linked {
                            Unlinked::LastWayToSignIn
                        } else {
                            Unlinked::NotLinked
                        })
                    })
                })
                .await
        })
    }
}
