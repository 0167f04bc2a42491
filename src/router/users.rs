//! Users: the [`UserStore`] trait, its in-memory implementation, and username normalisation.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use crate::store::{StoreError, StoreFuture};
use crate::username::normalize_username;

/// An account. `Debug` leaves the password hash out; use [`User::public`] for anything that
/// leaves the process.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The stable, opaque id: the tokens' `sub`.
    pub id: String,
    /// The normalised username.
    pub username: String,
    /// An e-mail address, when the user gave one.
    pub email: Option<String>,
    /// The PHC string (argon2id, or a legacy bcrypt hash) of the password.
    pub password_hash: String,
    /// Roles, copied into the access tokens' `roles`.
    pub roles: Vec<String>,
    /// The scopes this user may be granted (a token request may ask for fewer).
    pub scopes: Vec<String>,
    /// A disabled account cannot log in or refresh.
    pub disabled: bool,
}

impl User {
    /// The user without the password hash, for responses and listings.
    #[must_use]
    pub fn public(&self) -> PublicUser {
        PublicUser {
            sub: self.id.clone(),
            username: self.username.clone(),
            email: self.email.clone(),
            roles: self.roles.clone(),
            scopes: self.scopes.clone(),
            disabled: self.disabled,
        }
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field("scopes", &self.scopes)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// What may be shown of a [`User`]: everything but the password hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PublicUser {
    /// The user id (`sub`).
    pub sub: String,
    /// The normalised username.
    pub username: String,
    /// The e-mail address, if any.
    pub email: Option<String>,
    /// Roles.
    pub roles: Vec<String>,
    /// Scopes the user may be granted.
    pub scopes: Vec<String>,
    /// Whether the account is disabled.
    pub disabled: bool,
}

/// A user to create. The store assigns the id.
#[derive(Clone)]
pub struct NewUser {
    /// The username; the store normalises it with
    /// [`normalize_username`](crate::normalize_username).
    pub username: String,
    /// An e-mail address.
    pub email: Option<String>,
    /// The PHC string of the password (from
    /// [`PasswordHasher::hash`](crate::password::PasswordHasher::hash)).
    pub password_hash: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Scopes the user may be granted.
    pub scopes: Vec<String>,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The outcome of [`UserStore::create`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// The new user.
    Created(User),
    /// The (normalised) username is taken.
    Taken,
    /// The username is not valid (see [`normalize_username`](crate::normalize_username)).
    InvalidUsername,
}

/// Where the accounts live. The router calls it with normalised usernames.
pub trait UserStore: Send + Sync + 'static {
    /// The user with this (normalised) username.
    fn find_by_username(&self, username: &str) -> StoreFuture<Option<User>>;
    /// The user with this id.
    fn find_by_id(&self, id: &str) -> StoreFuture<Option<User>>;
    /// Creates a user unless the normalised username is taken.
    fn create(&self, user: NewUser) -> StoreFuture<Created>;
    /// Replaces the password hash of user `id` (re-hash on login, password change); `false`
    /// when there is no such user.
    fn update_password_hash(&self, id: &str, password_hash: String) -> StoreFuture<bool>;
    /// Disables or re-enables user `id`; `false` when there is no such user.
    fn set_disabled(&self, id: &str, disabled: bool) -> StoreFuture<bool>;
    /// Replaces the roles and grantable scopes of user `id`; `false` when there is no such user.
    fn set_grants(&self, id: &str, roles: Vec<String>, scopes: Vec<String>) -> StoreFuture<bool>;
    /// Every user, ordered by username.
    fn list(&self) -> StoreFuture<Vec<User>>;
}

/// The default hard cap on accounts of a [`MemoryUserStore`].
pub const DEFAULT_MAX_USERS: usize = 100_000;

/// [`UserStore`] in process memory, for one instance and for tests. Holds at most
/// [`DEFAULT_MAX_USERS`] accounts (configurable); creating more fails with a [`StoreError`].
pub struct MemoryUserStore {
    state: Mutex<Users>,
    max_users: usize,
}

#[derive(Default)]
struct Users {
    by_id: HashMap<String, User>,
    by_name: HashMap<String, String>,
}

impl MemoryUserStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self {
            state: Mutex::new(Users::default()),
            max_users: DEFAULT_MAX_USERS,
        }
    }

    /// Caps the number of accounts.
    #[must_use]
    pub fn max_users(mut self, max: usize) -> Self {
        self.max_users = max;
        self
    }

    fn users(&self) -> std::sync::MutexGuard<'_, Users> {
        // Each write is one insert or field update: the maps are consistent even if a panic
        // poisoned the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut User)) -> StoreFuture<bool> {
        let mut users = self.users();
        StoreFuture::ready(Ok(users.by_id.get_mut(id).map(f).is_some()))
    }
}

impl Default for MemoryUserStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryUserStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryUserStore")
            .field("users", &self.users().by_id.len())
            .field("max_users", &self.max_users)
            .finish()
    }
}

impl UserStore for MemoryUserStore {
    fn find_by_username(&self, username: &str) -> StoreFuture<Option<User>> {
        let users = self.users();
        let user = users
            .by_name
            .get(username)
            .and_then(|id| users.by_id.get(id))
            .cloned();
        StoreFuture::ready(Ok(user))
    }

    fn find_by_id(&self, id: &str) -> StoreFuture<Option<User>> {
        StoreFuture::ready(Ok(self.users().by_id.get(id).cloned()))
    }

    fn create(&self, user: NewUser) -> StoreFuture<Created> {
        let Some(username) = normalize_username(&user.username) else {
            return StoreFuture::ready(Ok(Created::InvalidUsername));
        };
        let mut users = self.users();
        if users.by_name.contains_key(&username) {
            return StoreFuture::ready(Ok(Created::Taken));
        }
        if users.by_id.len() >= self.max_users {
            return StoreFuture::ready(Err(StoreError::new("user store is full")));
        }
        let id = match crate::ids::random_id() {
            Ok(id) => id,
            Err(error) => return StoreFuture::ready(Err(error.into())),
        };
        let user = User {
            id: id.clone(),
            username: username.clone(),
            email: user.email,
            password_hash: user.password_hash,
            roles: user.roles,
            scopes: user.scopes,
            disabled: false,
        };
        users.by_name.insert(username, id.clone());
        users.by_id.insert(id, user.clone());
        StoreFuture::ready(Ok(Created::Created(user)))
    }

    fn update_password_hash(&self, id: &str, password_hash: String) -> StoreFuture<bool> {
        self.update(id, |user| user.password_hash = password_hash)
    }

    fn set_disabled(&self, id: &str, disabled: bool) -> StoreFuture<bool> {
        self.update(id, |user| user.disabled = disabled)
    }

    fn set_grants(&self, id: &str, roles: Vec<String>, scopes: Vec<String>) -> StoreFuture<bool> {
        self.update(id, |user| {
            user.roles = roles;
            user.scopes = scopes;
        })
    }

    fn list(&self) -> StoreFuture<Vec<User>> {
        let mut all: Vec<User> = self.users().by_id.values().cloned().collect();
        all.sort_by(|a, b| a.username.cmp(&b.username));
        StoreFuture::ready(Ok(all))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_user(name: &str) -> NewUser {
        NewUser {
            username: name.to_owned(),
            email: None,
            password_hash: "$argon2id$secret".to_owned(),
            roles: vec!["user".to_owned()],
            scopes: vec!["items:read".to_owned()],
        }
    }

    fn ready<T>(future: StoreFuture<T>) -> T {
        future.into_ready().unwrap().unwrap()
    }

    #[test]
    fn create_refuses_taken_and_invalid_names() {
        let store = MemoryUserStore::new();
        let Created::Created(alice) = ready(store.create(new_user("Alice"))) else {
            panic!("created")
        };
        assert_eq!(alice.username, "alice");
        assert_eq!(ready(store.create(new_user(" ALICE "))), Created::Taken);
        assert_eq!(
            ready(store.create(new_user("a b"))),
            Created::InvalidUsername
        );
        assert_eq!(ready(store.find_by_username("alice")), Some(alice.clone()));
        assert_eq!(ready(store.find_by_id(&alice.id)), Some(alice));
        assert_eq!(ready(store.find_by_username("bob")), None);
    }

    #[test]
    fn updates_apply_to_existing_users_only() {
        let store = MemoryUserStore::new();
        let Created::Created(user) = ready(store.create(new_user("carol"))) else {
            panic!("created")
        };
        assert!(ready(
            store.update_password_hash(&user.id, "$new".to_owned())
        ));
        assert!(ready(store.set_disabled(&user.id, true)));
        assert!(ready(store.set_grants(
            &user.id,
            vec!["admin".to_owned()],
            vec![]
        )));
        let stored = ready(store.find_by_id(&user.id)).unwrap();
        assert_eq!(stored.password_hash, "$new");
        assert!(stored.disabled);
        assert_eq!(stored.roles, ["admin"]);
        assert!(!ready(store.set_disabled("nobody", true)));
        assert!(!ready(store.update_password_hash("nobody", String::new())));
    }

    #[test]
    fn the_store_is_capped_and_listing_hides_nothing_it_should_not() {
        let store = MemoryUserStore::new().max_users(2);
        ready(store.create(new_user("b")));
        ready(store.create(new_user("a")));
        let error = store
            .create(new_user("c"))
            .into_ready()
            .unwrap()
            .unwrap_err();
        assert_eq!(error.message(), "user store is full");
        let names: Vec<_> = ready(store.list())
            .into_iter()
            .map(|u| u.username)
            .collect();
        assert_eq!(names, ["a", "b"]);
        let user = ready(store.find_by_username("a")).unwrap();
        assert!(
            !format!("{user:?}").contains("argon2"),
            "Debug hides the hash"
        );
        let public = serde_json::to_string(&user.public()).unwrap();
        assert!(!public.contains("argon2") && !public.contains("password"));
    }
}
