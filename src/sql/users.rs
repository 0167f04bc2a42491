//! [`SqlUserStore`].

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Row;

use super::{Database, int, is_unique_violation, json_list, parse_list, uint, with_pool};
use crate::router::{Created, NewUser, User, UserStore, stored_form};
use crate::store::{StoreError, StoreFuture};
use crate::username::username_skeleton;

/// [`UserStore`] in the `auth_users` table. The normalised username and its look-alike
/// skeleton are unique columns: [`create`](UserStore::create) is one `INSERT`, and of two
/// concurrent registrations of one name or of look-alikes, on any number of instances, one
/// gets [`Created::Taken`].
#[derive(Clone)]
pub struct SqlUserStore {
    db: Database,
}

/// Finds a user by id.
const BY_ID: &str = "SELECT id, username, email, password_hash, roles, scopes, disabled \
                     FROM auth_users WHERE id = $1";
/// Finds a user by normalised username.
const BY_NAME: &str = "SELECT id, username, email, password_hash, roles, scopes, disabled \
                       FROM auth_users WHERE username = $1";

/// Decodes a user from a row of `id, username, email, password_hash, roles, scopes, disabled`.
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

    fn find(&self, sql: &'static str, value: &str) -> StoreFuture<Option<User>> {
        let this = self.clone();
        let value = value.to_owned();
        StoreFuture::boxed(async move {
            this.db
                .run(async {
                    with_pool!(this.db, p => {
                        let row = sqlx::query(sql).bind(&value).fetch_optional(p).await?;
                        row.map(|row| user_from_row!(row)).transpose()
                    })
                })
                .await
        })
    }

    fn update(&self, sql: &'static str, id: &str, binds: Update) -> StoreFuture<bool> {
        let this = self.clone();
        let id = id.to_owned();
        StoreFuture::boxed(async move {
            let now = int(now());
            this.db
                .run(async {
                    with_pool!(this.db, p => {
                        let query = sqlx::query(sql);
                        let query = match &binds {
                            Update::Hash(hash) => query.bind(hash),
                            Update::Disabled(disabled) => query.bind(*disabled),
                            Update::Grants(roles, scopes) => query.bind(roles).bind(scopes),
                        };
                        let done = query.bind(now).bind(&id).execute(p).await?;
                        Ok(done.rows_affected() > 0)
                    })
                })
                .await
        })
    }
}

/// The values of an update, bound before `updated_at` and the id.
enum Update {
    Hash(String),
    Disabled(bool),
    Grants(String, String),
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
        self.find(BY_NAME, username)
    }

    fn find_by_id(&self, id: &str) -> StoreFuture<Option<User>> {
        self.find(BY_ID, id)
    }

    fn create(&self, user: NewUser) -> StoreFuture<Created> {
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
            let inserted = this
                .db
                .run(async {
                    let result = with_pool!(this.db, p => {
                        sqlx::query(
                            "INSERT INTO auth_users (id, username, skeleton, email, \
                             password_hash, roles, scopes, disabled, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
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
                        .execute(p)
                        .await
                        .map(|_| ())
                    });
                    match result {
                        Ok(_) => Ok(true),
                        Err(error) if is_unique_violation(&error) => Ok(false),
                        Err(error) => Err(error),
                    }
                })
                .await?;
            if !inserted {
                return Ok(Created::Taken);
            }
            Ok(Created::Created(User {
                id,
                username,
                email: user.email,
                password_hash: user.password_hash,
                roles: user.roles,
                scopes: user.scopes,
                disabled: false,
            }))
        })
    }

    fn update_password_hash(&self, id: &str, password_hash: String) -> StoreFuture<bool> {
        self.update(
            "UPDATE auth_users SET password_hash = $1, updated_at = $2 WHERE id = $3",
            id,
            Update::Hash(password_hash),
        )
    }

    fn set_disabled(&self, id: &str, disabled: bool) -> StoreFuture<bool> {
        self.update(
            "UPDATE auth_users SET disabled = $1, updated_at = $2 WHERE id = $3",
            id,
            Update::Disabled(disabled),
        )
    }

    fn set_grants(&self, id: &str, roles: Vec<String>, scopes: Vec<String>) -> StoreFuture<bool> {
        self.update(
            "UPDATE auth_users SET roles = $1, scopes = $2, updated_at = $3 WHERE id = $4",
            id,
            Update::Grants(json_list(&roles), json_list(&scopes)),
        )
    }

    fn list(&self) -> StoreFuture<Vec<User>> {
        let this = self.clone();
        StoreFuture::boxed(async move {
            this.db
                .run(async {
                    with_pool!(this.db, p => {
                        let rows = sqlx::query(
                            "SELECT id, username, email, password_hash, roles, scopes, disabled \
                             FROM auth_users ORDER BY username",
                        )
                        .fetch_all(p)
                        .await?;
                        rows.iter().map(|row| user_from_row!(row)).collect()
                    })
                })
                .await
        })
    }
}
