//! Users: the [`UserStore`] trait, its in-memory implementation, and how a login finds its
//! account.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use super::identities::{Identity, Linked, Unlinked};
use crate::store::{StoreError, StoreFuture};
use crate::username::{legacy_username, normalize_username, username_skeleton};

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
    /// The PHC string (argon2id, or a legacy bcrypt hash) of the password; empty for an
    /// account without one (created by an external sign-in), which no password opens.
    pub password_hash: String,
    /// Roles, copied into the access tokens' `roles`.
    pub roles: Vec<String>,
    /// The scopes this user may be granted (a token request may ask for fewer).
    pub scopes: Vec<String>,
    /// A disabled account cannot log in or refresh.
    pub disabled: bool,
    /// Whether the owner of [`email`](Self::email) has confirmed it (by the link of a
    /// verification mail).
    pub email_verified: bool,
}

impl User {
    /// Whether the account has a password (an account created by an external sign-in has
    /// none until it sets one through a reset link).
    #[must_use]
    pub fn has_password(&self) -> bool {
        !self.password_hash.is_empty()
    }

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
            email_verified: self.email_verified,
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
            .field("email_verified", &self.email_verified)
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
    /// Whether the e-mail address is verified.
    pub email_verified: bool,
}

/// A user to create. The store assigns the id.
#[derive(Clone)]
pub struct NewUser {
    /// The username, as [`normalize_username`](crate::normalize_username) returns it (the
    /// router passes nothing else). [`MemoryUserStore`] normalises any other spelling, and
    /// keeps as it is a name in the form earlier versions stored (NFKC, lower-cased,
    /// trimmed), so that existing accounts can be imported.
    pub username: String,
    /// An e-mail address. No two accounts share one, compared by [`email_key`].
    pub email: Option<String>,
    /// The PHC string of the password (from
    /// [`PasswordHasher::hash`](crate::password::PasswordHasher::hash)).
    pub password_hash: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Scopes the user may be granted.
    pub scopes: Vec<String>,
}

impl NewUser {
    /// The account a store created from this: enabled, its address not verified yet.
    pub(crate) fn into_user(self, id: String, username: String) -> User {
        User {
            id,
            username,
            email: self.email,
            password_hash: self.password_hash,
            roles: self.roles,
            scopes: self.scopes,
            disabled: false,
            email_verified: false,
        }
    }
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
    /// The (normalised) username is taken, or an existing account's name looks like it (the
    /// same [`username_skeleton`](crate::username_skeleton)).
    Taken,
    /// The username is not valid (see [`normalize_username`](crate::normalize_username)).
    InvalidUsername,
    /// Another account has this e-mail address (by [`email_key`]).
    EmailTaken,
    /// The external identity given to [`UserStore::create_linked`] is already linked to an
    /// account.
    IdentityTaken,
}

/// How e-mail addresses are compared: ASCII letters lower-cased, everything else as it is.
/// Two accounts cannot have addresses with one key, and
/// [`find_by_email`](UserStore::find_by_email) looks addresses up by it. (The local part is
/// case-sensitive by RFC 5321, but no provider a user would sign up with treats it so, and a
/// stricter uniqueness is the safe side: one address, one account.)
#[must_use]
pub fn email_key(email: &str) -> String {
    email.to_ascii_lowercase()
}

/// What a one-time account token proves when it is presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenPurpose {
    /// That the bearer may set a new password (`POST /password/reset`).
    PasswordReset,
    /// That the bearer reads the account's mail (`POST /email/verify`).
    EmailVerification,
}

impl TokenPurpose {
    /// The name stored beside a token.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::EmailVerification => "email_verification",
        }
    }
}

/// A one-time token of an account, as a [`UserStore`] keeps it: its SHA-256 only, never the
/// token. An account has at most one live token per [purpose](TokenPurpose).
#[derive(Clone, PartialEq, Eq)]
pub struct AccountToken {
    /// The account (its id).
    pub user_id: String,
    /// What the token proves.
    pub purpose: TokenPurpose,
    /// SHA-256 of the token.
    pub hash: [u8; 32],
    /// When it was issued (Unix seconds).
    pub issued_at: u64,
    /// When it stops being accepted (Unix seconds).
    pub expires_at: u64,
}

impl fmt::Debug for AccountToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountToken")
            .field("user_id", &self.user_id)
            .field("purpose", &self.purpose)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The outcome of [`UserStore::issue_token`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Issued {
    /// Stored; any older token of the account for this purpose is gone.
    Issued,
    /// Not stored: the account's current token for this purpose is younger than the minimum
    /// interval, and stays.
    TooSoon,
    /// There is no such account.
    NoSuchUser,
}

/// Where the accounts live. The router calls it with normalised usernames.
pub trait UserStore: Send + Sync + 'static {
    /// The user with this (normalised) username.
    fn find_by_username(&self, username: &str) -> StoreFuture<Option<User>>;
    /// The user with this id.
    fn find_by_id(&self, id: &str) -> StoreFuture<Option<User>>;
    /// Creates a user unless the normalised username is taken.
    ///
    /// Implementations must also refuse, with [`Created::Taken`], a name whose
    /// [`username_skeleton`](crate::username_skeleton) is an existing account's: `adrnin`
    /// when `admin` exists, or `аdmin` with a Cyrillic `а`. Store the skeleton beside the name
    /// (a unique index on it, in SQL) so that the check and the insert are one atomic step, as
    /// they are for the name itself; two concurrent registrations of look-alikes must not
    /// both succeed.
    fn create(&self, user: NewUser) -> StoreFuture<Created>;
    /// Replaces the password hash of user `id` (re-hash on login, password change); `false`
    /// when there is no such user.
    fn update_password_hash(&self, id: &str, password_hash: String) -> StoreFuture<bool>;
    /// Applies `change` to user `id` and answers the account as it was before.
    ///
    /// With a `protected_role`, a change that would leave no enabled account holding that
    /// role (disabling its last enabled holder, or taking it away from them) is refused with
    /// [`Changed::LastWithRole`], and nothing changes. The check and the write are one atomic
    /// step: of two administrators demoting each other at once, on any number of instances,
    /// one is refused.
    fn update(
        &self,
        id: &str,
        change: UserChange,
        protected_role: Option<&str>,
    ) -> StoreFuture<Changed>;
    /// Deletes user `id` and answers the account as it was; refused like
    /// [`update`](Self::update) when it would remove the last enabled holder of
    /// `protected_role`.
    fn delete(&self, id: &str, protected_role: Option<&str>) -> StoreFuture<Changed>;
    /// At most `limit` users ordered by username, from the first whose username is greater
    /// than `after` (from the first of all without one): one page of a listing.
    fn page(&self, after: Option<&str>, limit: usize) -> StoreFuture<Vec<User>>;
    /// The user whose e-mail address has this [`email_key`].
    fn find_by_email(&self, email: &str) -> StoreFuture<Option<User>>;
    /// Stores `token` as its account's one live token for its purpose, replacing an older
    /// one, unless that older one was issued less than `min_interval` seconds before
    /// `token.issued_at` ([`Issued::TooSoon`]: one mail a minute per account, however many
    /// instances are asked). The check and the write are one atomic step.
    fn issue_token(&self, token: AccountToken, min_interval: u64) -> StoreFuture<Issued>;
    /// The account of the live token with this hash and purpose (unexpired at `now`), without
    /// using it up.
    fn find_token(
        &self,
        purpose: TokenPurpose,
        hash: &[u8; 32],
        now: u64,
    ) -> StoreFuture<Option<String>>;
    /// Uses up the token with this hash and purpose and answers its account, when it is live
    /// at `now`. Atomic: of two concurrent redemptions of one token, one gets the account.
    fn redeem_token(
        &self,
        purpose: TokenPurpose,
        hash: &[u8; 32],
        now: u64,
    ) -> StoreFuture<Option<String>>;
    /// Discards the account's token for `purpose`, if any (a password change makes an
    /// outstanding reset link useless).
    fn revoke_tokens(&self, user_id: &str, purpose: TokenPurpose) -> StoreFuture<()>;
    /// The user linked to the external identity `(issuer, subject)`.
    fn find_by_identity(&self, issuer: &str, subject: &str) -> StoreFuture<Option<User>>;
    /// The external identities linked to user `user_id`, by provider name.
    fn identities(&self, user_id: &str) -> StoreFuture<Vec<Identity>>;
    /// Creates a user, as [`create`](Self::create) does, with `identity` linked to it, in one
    /// atomic step: [`Created::IdentityTaken`], and no user, when the identity is already
    /// linked (two first sign-ins of one person at once create one account).
    fn create_linked(&self, user: NewUser, identity: Identity) -> StoreFuture<Created>;
    /// Links `identity` to user `user_id`, unless the identity is linked to an account
    /// already or the user has one from its provider. Atomic.
    fn link_identity(&self, user_id: &str, identity: Identity) -> StoreFuture<Linked>;
    /// Unlinks the user's identity from `provider`, unless it is the last way the account
    /// has to sign in: no password and no other identity ([`Unlinked::LastWayToSignIn`]). The
    /// check and the removal are one atomic step, so two concurrent unlinks of an account's
    /// last two identities leave one.
    fn unlink_identity(&self, user_id: &str, provider: &str) -> StoreFuture<Unlinked>;
}

/// A change to an account's standing; a field left `None` stays as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserChange {
    /// Disables (`true`) or re-enables the account.
    pub disabled: Option<bool>,
    /// New roles.
    pub roles: Option<Vec<String>>,
    /// New grantable scopes.
    pub scopes: Option<Vec<String>>,
    /// Marks the e-mail address verified (`true`) or not.
    pub email_verified: Option<bool>,
}

impl UserChange {
    /// `user` with this change applied.
    #[must_use]
    pub fn apply(&self, user: &User) -> User {
        let mut changed = user.clone();
        if let Some(disabled) = self.disabled {
            changed.disabled = disabled;
        }
        if let Some(roles) = &self.roles {
            changed.roles.clone_from(roles);
        }
        if let Some(scopes) = &self.scopes {
            changed.scopes.clone_from(scopes);
        }
        if let Some(verified) = self.email_verified {
            changed.email_verified = verified;
        }
        changed
    }
}

/// The outcome of [`UserStore::update`] and [`UserStore::delete`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// Done; the account as it was before.
    Changed(User),
    /// There is no such user.
    NotFound,
    /// Refused, nothing changed: no enabled account would hold the protected role.
    LastWithRole,
}

/// Whether going from `before` to `after` (`None`: deleted) takes `role` from an enabled
/// account: only then does a store look for another enabled holder.
pub(crate) fn loses_role(before: &User, after: Option<&User>, role: &str) -> bool {
    let holds = |user: &User| !user.disabled && user.roles.iter().any(|r| r == role);
    holds(before) && !after.is_some_and(holds)
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
    /// The [`username_skeleton`] of every account.
    skeletons: HashSet<String>,
    /// Ids by [`email_key`].
    by_email: HashMap<String, String>,
    /// One-time tokens by hash, and the hash of each account's token per purpose.
    tokens: HashMap<[u8; 32], AccountToken>,
    token_of: HashMap<(String, TokenPurpose), [u8; 32]>,
    /// Linked identities by `(issuer, subject)`, with the id of their user.
    identities: HashMap<(String, String), (String, Identity)>,
}

impl Users {
    fn drop_token(&mut self, user_id: &str, purpose: TokenPurpose) {
        if let Some(hash) = self.token_of.remove(&(user_id.to_owned(), purpose)) {
            self.tokens.remove(&hash);
        }
    }

    /// The account of the live token `hash` for `purpose`.
    fn live_token(&self, purpose: TokenPurpose, hash: &[u8; 32], now: u64) -> Option<&str> {
        self.tokens
            .get(hash)
            .filter(|token| token.purpose == purpose && now < token.expires_at)
            .map(|token| token.user_id.as_str())
    }
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

    /// Creates `user`, with `identity` linked to it when given.
    fn insert(&self, user: NewUser, identity: Option<Identity>) -> Result<Created, StoreError> {
        let Some(username) = stored_form(&user.username) else {
            return Ok(Created::InvalidUsername);
        };
        let skeleton = username_skeleton(&username);
        let mut users = self.users();
        if users.by_name.contains_key(&username) || users.skeletons.contains(&skeleton) {
            return Ok(Created::Taken);
        }
        let key = user.email.as_deref().map(email_key);
        if key
            .as_ref()
            .is_some_and(|key| users.by_email.contains_key(key))
        {
            return Ok(Created::EmailTaken);
        }
        let identity_key = identity
            .as_ref()
            .map(|identity| (identity.issuer.clone(), identity.subject.clone()));
        if identity_key
            .as_ref()
            .is_some_and(|key| users.identities.contains_key(key))
        {
            return Ok(Created::IdentityTaken);
        }
        if users.by_id.len() >= self.max_users {
            return Err(StoreError::new("user store is full"));
        }
        let id = crate::ids::random_id()?;
        let user = user.into_user(id.clone(), username.clone());
        if let Some(key) = key {
            users.by_email.insert(key, id.clone());
        }
        if let (Some(key), Some(identity)) = (identity_key, identity) {
            users.identities.insert(key, (id.clone(), identity));
        }
        users.by_name.insert(username, id.clone());
        users.skeletons.insert(skeleton);
        users.by_id.insert(id, user.clone());
        Ok(Created::Created(user))
    }

    /// Applies `change` (`None`: deletes) unless it takes `protected_role` from its last
    /// enabled holder.
    fn change(
        &self,
        id: &str,
        change: Option<&UserChange>,
        protected_role: Option<&str>,
    ) -> StoreFuture<Changed> {
        let mut users = self.users();
        let Some(before) = users.by_id.get(id).cloned() else {
            return StoreFuture::ready(Ok(Changed::NotFound));
        };
        let after = change.map(|change| change.apply(&before));
        if let Some(role) = protected_role
            && loses_role(&before, after.as_ref(), role)
        {
            let another = users.by_id.values().any(|user| {
                user.id != before.id && !user.disabled && user.roles.iter().any(|r| r == role)
            });
            if !another {
                return StoreFuture::ready(Ok(Changed::LastWithRole));
            }
        }
        match after {
            Some(after) => {
                users.by_id.insert(before.id.clone(), after);
            }
            None => {
                users.by_id.remove(id);
                users.by_name.remove(&before.username);
                users.skeletons.remove(&username_skeleton(&before.username));
                if let Some(email) = &before.email {
                    let key = email_key(email);
                    if users.by_email.get(&key) == Some(&before.id) {
                        users.by_email.remove(&key);
                    }
                }
                users.drop_token(id, TokenPurpose::PasswordReset);
                users.drop_token(id, TokenPurpose::EmailVerification);
                users.identities.retain(|_, (owner, _)| owner != id);
            }
        }
        StoreFuture::ready(Ok(Changed::Changed(before)))
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
        StoreFuture::ready(self.insert(user, None))
    }

    fn update_password_hash(&self, id: &str, password_hash: String) -> StoreFuture<bool> {
        let mut users = self.users();
        let user = users.by_id.get_mut(id);
        let found = user.is_some();
        if let Some(user) = user {
            user.password_hash = password_hash;
        }
        StoreFuture::ready(Ok(found))
    }

    fn update(
        &self,
        id: &str,
        change: UserChange,
        protected_role: Option<&str>,
    ) -> StoreFuture<Changed> {
        self.change(id, Some(&change), protected_role)
    }

    fn delete(&self, id: &str, protected_role: Option<&str>) -> StoreFuture<Changed> {
        self.change(id, None, protected_role)
    }

    fn page(&self, after: Option<&str>, limit: usize) -> StoreFuture<Vec<User>> {
        let users = self.users();
        // Names are unique: a sorted scan of the name index from `after`, exclusive.
        let mut names: Vec<&String> = users
            .by_name
            .keys()
            .filter(|name| after.is_none_or(|after| name.as_str() > after))
            .collect();
        names.sort_unstable();
        let page = names
            .into_iter()
            .take(limit)
            .filter_map(|name| users.by_name.get(name).and_then(|id| users.by_id.get(id)))
            .cloned()
            .collect();
        StoreFuture::ready(Ok(page))
    }

    fn find_by_email(&self, email: &str) -> StoreFuture<Option<User>> {
        let users = self.users();
        let user = users
            .by_email
            .get(&email_key(email))
            .and_then(|id| users.by_id.get(id))
            .cloned();
        StoreFuture::ready(Ok(user))
    }

    fn issue_token(&self, token: AccountToken, min_interval: u64) -> StoreFuture<Issued> {
        let mut users = self.users();
        if !users.by_id.contains_key(&token.user_id) {
            return StoreFuture::ready(Ok(Issued::NoSuchUser));
        }
        let key = (token.user_id.clone(), token.purpose);
        if let Some(current) = users.token_of.get(&key).and_then(|h| users.tokens.get(h))
            && token.issued_at < current.issued_at.saturating_add(min_interval)
        {
            return StoreFuture::ready(Ok(Issued::TooSoon));
        }
        users.drop_token(&token.user_id, token.purpose);
        users.token_of.insert(key, token.hash);
        users.tokens.insert(token.hash, token);
        StoreFuture::ready(Ok(Issued::Issued))
    }

    fn find_token(
        &self,
        purpose: TokenPurpose,
        hash: &[u8; 32],
        now: u64,
    ) -> StoreFuture<Option<String>> {
        let users = self.users();
        StoreFuture::ready(Ok(users.live_token(purpose, hash, now).map(str::to_owned)))
    }

    fn redeem_token(
        &self,
        purpose: TokenPurpose,
        hash: &[u8; 32],
        now: u64,
    ) -> StoreFuture<Option<String>> {
        let mut users = self.users();
        let Some(user) = users.live_token(purpose, hash, now).map(str::to_owned) else {
            return StoreFuture::ready(Ok(None));
        };
        users.drop_token(&user, purpose);
        StoreFuture::ready(Ok(Some(user)))
    }

    fn revoke_tokens(&self, user_id: &str, purpose: TokenPurpose) -> StoreFuture<()> {
        self.users().drop_token(user_id, purpose);
        StoreFuture::ready(Ok(()))
    }

    fn find_by_identity(&self, issuer: &str, subject: &str) -> StoreFuture<Option<User>> {
        let users = self.users();
        let user = users
            .identities
            .get(&(issuer.to_owned(), subject.to_owned()))
            .and_then(|(id, _)| users.by_id.get(id))
            .cloned();
        StoreFuture::ready(Ok(user))
    }

    fn identities(&self, user_id: &str) -> StoreFuture<Vec<Identity>> {
        let users = self.users();
        let mut linked: Vec<Identity> = users
            .identities
            .values()
            .filter(|(owner, _)| owner == user_id)
            .map(|(_, identity)| identity.clone())
            .collect();
        linked.sort_by(|a, b| a.provider.cmp(&b.provider));
        StoreFuture::ready(Ok(linked))
    }

    fn create_linked(&self, user: NewUser, identity: Identity) -> StoreFuture<Created> {
        StoreFuture::ready(self.insert(user, Some(identity)))
    }

    fn link_identity(&self, user_id: &str, identity: Identity) -> StoreFuture<Linked> {
        let mut users = self.users();
        if !users.by_id.contains_key(user_id) {
            return StoreFuture::ready(Ok(Linked::NoSuchUser));
        }
        let key = (identity.issuer.clone(), identity.subject.clone());
        if users.identities.contains_key(&key) {
            return StoreFuture::ready(Ok(Linked::IdentityTaken));
        }
        let has_provider = users
            .identities
            .values()
            .any(|(owner, linked)| owner == user_id && linked.provider == identity.provider);
        if has_provider {
            return StoreFuture::ready(Ok(Linked::ProviderTaken));
        }
        users.identities.insert(key, (user_id.to_owned(), identity));
        StoreFuture::ready(Ok(Linked::Linked))
    }

    fn unlink_identity(&self, user_id: &str, provider: &str) -> StoreFuture<Unlinked> {
        let mut users = self.users();
        let has_password = users.by_id.get(user_id).is_some_and(User::has_password);
        let mut mine = users
            .identities
            .iter()
            .filter(|(_, (owner, _))| owner == user_id);
        let found = mine
            .clone()
            .find(|(_, (_, identity))| identity.provider == provider)
            .map(|(key, _)| key.clone());
        let Some(key) = found else {
            return StoreFuture::ready(Ok(Unlinked::NotLinked));
        };
        if !has_password && mine.nth(1).is_none() {
            return StoreFuture::ready(Ok(Unlinked::LastWayToSignIn));
        }
        let removed = users.identities.remove(&key).map(|(_, identity)| identity);
        StoreFuture::ready(Ok(removed.map_or(Unlinked::NotLinked, Unlinked::Unlinked)))
    }
}

/// The name a [`UserStore::create`] stores: one already in a stored form (the current
/// normal form, or the one earlier versions stored) as it is, any other normalised.
pub(crate) fn stored_form(name: &str) -> Option<String> {
    let current = normalize_username(name);
    if current.as_deref() == Some(name) || legacy_username(name).as_deref() == Some(name) {
        return Some(name.to_owned());
    }
    current
}

/// The account a password login names: the user stored under `raw`'s normal form
/// ([`normalize_username`]) or, failing that, under the form earlier versions stored (so that
/// accounts created before the current rules still log in, with the spellings they always
/// could). Both forms are looked up whenever they differ, whatever the first lookup found, so
/// the number of store queries depends on the name typed, never on which accounts exist.
///
/// # Errors
///
/// The store's.
pub(super) async fn find_login_user(
    users: &dyn UserStore,
    raw: &str,
) -> Result<Option<User>, StoreError> {
    let current = normalize_username(raw);
    let legacy = legacy_username(raw).filter(|legacy| current.as_ref() != Some(legacy));
    let mut found = None;
    for name in current.iter().chain(legacy.iter()) {
        let user = users.find_by_username(name).await?;
        found = found.or(user);
    }
    Ok(found)
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

    impl User {
        fn with_hash(mut self, hash: &str) -> Self {
            self.password_hash = hash.to_owned();
            self
        }
    }

    #[test]
    fn the_last_enabled_holder_of_the_protected_role_stays() {
        let store = MemoryUserStore::new();
        let admin = |name| NewUser {
            roles: vec!["admin".to_owned()],
            ..new_user(name)
        };
        let Created::Created(ann) = ready(store.create(admin("ann"))) else {
            panic!("created")
        };
        let Created::Created(bob) = ready(store.create(admin("bob"))) else {
            panic!("created")
        };
        let demote = UserChange {
            roles: Some(vec!["user".to_owned()]),
            ..UserChange::default()
        };
        let disable = UserChange {
            disabled: Some(true),
            ..UserChange::default()
        };
        // Unprotected, anything goes; protected, the second-to-last holder may go.
        assert!(matches!(
            ready(store.update(&bob.id, disable.clone(), Some("admin"))),
            Changed::Changed(_)
        ));
        // Bob is disabled: Ann is the last enabled admin, whichever way she would go.
        for change in [demote.clone(), disable.clone()] {
            assert_eq!(
                ready(store.update(&ann.id, change, Some("admin"))),
                Changed::LastWithRole
            );
        }
        assert_eq!(
            ready(store.delete(&ann.id, Some("admin"))),
            Changed::LastWithRole
        );
        assert_eq!(
            ready(store.find_by_id(&ann.id)),
            Some(ann.clone()),
            "unchanged"
        );
        // Changes that keep her an enabled admin, and changes to others, are fine.
        let scopes = UserChange {
            scopes: Some(vec![]),
            ..UserChange::default()
        };
        assert!(matches!(
            ready(store.update(&ann.id, scopes, Some("admin"))),
            Changed::Changed(_)
        ));
        assert!(matches!(
            ready(store.update(&bob.id, demote.clone(), Some("admin"))),
            Changed::Changed(_)
        ));
        // Without a protected role nothing is checked.
        assert!(matches!(
            ready(store.update(&ann.id, demote, None)),
            Changed::Changed(_)
        ));
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
    fn create_refuses_a_name_that_looks_like_an_existing_one() {
        let store = MemoryUserStore::new();
        assert!(matches!(
            ready(store.create(new_user("admin"))),
            Created::Created(_)
        ));
        for look_alike in [
            "adrnin",
            "ADRNIN",
            "\u{430}dmin",
            "ad\u{200b}min",
            "ad\u{ad}min",
        ] {
            assert_eq!(
                ready(store.create(new_user(look_alike))),
                Created::Taken,
                "{look_alike:?}"
            );
        }
        // Distinct names stay distinct.
        assert!(matches!(
            ready(store.create(new_user("admins"))),
            Created::Created(_)
        ));
        assert_eq!(ready(store.page(None, 10)).len(), 2);
    }

    #[test]
    fn create_keeps_a_name_stored_in_the_legacy_form_as_it_is() {
        let store = MemoryUserStore::new();
        let Created::Created(legacy) = ready(store.create(new_user("straße"))) else {
            panic!("created")
        };
        assert_eq!(legacy.username, "straße", "imported as it was stored");
        // Its current spelling is the same name to a reader: taken.
        assert_eq!(ready(store.create(new_user("strasse"))), Created::Taken);
        assert_eq!(ready(store.create(new_user("Strasse"))), Created::Taken);
        // Any other spelling is normalised by the current rules.
        let Created::Created(bob) = ready(store.create(new_user("ＢＯＢ"))) else {
            panic!("created")
        };
        assert_eq!(bob.username, "bob");
        // A name neither form accepts is invalid.
        assert_eq!(
            ready(store.create(new_user("a\u{0}b"))),
            Created::InvalidUsername
        );
    }

    /// A [`MemoryUserStore`] that counts `find_by_username` calls.
    struct Counting(MemoryUserStore, std::sync::atomic::AtomicUsize);

    impl UserStore for Counting {
        fn find_by_username(&self, username: &str) -> StoreFuture<Option<User>> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0.find_by_username(username)
        }
        fn find_by_id(&self, id: &str) -> StoreFuture<Option<User>> {
            self.0.find_by_id(id)
        }
        fn create(&self, user: NewUser) -> StoreFuture<Created> {
            self.0.create(user)
        }
        fn update_password_hash(&self, id: &str, hash: String) -> StoreFuture<bool> {
            self.0.update_password_hash(id, hash)
        }
        fn update(&self, id: &str, change: UserChange, role: Option<&str>) -> StoreFuture<Changed> {
            self.0.update(id, change, role)
        }
        fn delete(&self, id: &str, role: Option<&str>) -> StoreFuture<Changed> {
            self.0.delete(id, role)
        }
        fn page(&self, after: Option<&str>, limit: usize) -> StoreFuture<Vec<User>> {
            self.0.page(after, limit)
        }
        fn find_by_email(&self, email: &str) -> StoreFuture<Option<User>> {
            self.0.find_by_email(email)
        }
        fn issue_token(&self, token: AccountToken, interval: u64) -> StoreFuture<Issued> {
            self.0.issue_token(token, interval)
        }
        fn find_token(
            &self,
            p: TokenPurpose,
            h: &[u8; 32],
            now: u64,
        ) -> StoreFuture<Option<String>> {
            self.0.find_token(p, h, now)
        }
        fn redeem_token(
            &self,
            p: TokenPurpose,
            h: &[u8; 32],
            now: u64,
        ) -> StoreFuture<Option<String>> {
            self.0.redeem_token(p, h, now)
        }
        fn revoke_tokens(&self, id: &str, p: TokenPurpose) -> StoreFuture<()> {
            self.0.revoke_tokens(id, p)
        }
        fn find_by_identity(&self, issuer: &str, subject: &str) -> StoreFuture<Option<User>> {
            self.0.find_by_identity(issuer, subject)
        }
        fn identities(&self, id: &str) -> StoreFuture<Vec<Identity>> {
            self.0.identities(id)
        }
        fn create_linked(&self, user: NewUser, identity: Identity) -> StoreFuture<Created> {
            self.0.create_linked(user, identity)
        }
        fn link_identity(&self, id: &str, identity: Identity) -> StoreFuture<Linked> {
            self.0.link_identity(id, identity)
        }
        fn unlink_identity(&self, id: &str, provider: &str) -> StoreFuture<Unlinked> {
            self.0.unlink_identity(id, provider)
        }
    }

    #[tokio::test]
    async fn a_login_finds_current_accounts_then_legacy_ones_with_as_many_queries_either_way() {
        let store = Counting(MemoryUserStore::new(), Default::default());
        let Created::Created(legacy) = ready(store.create(new_user("o’brien"))) else {
            panic!("created")
        };
        let Created::Created(current) = ready(store.create(new_user("strasse"))) else {
            panic!("created")
        };
        let find = |raw: &'static str| {
            let store = &store;
            async move {
                let before = store.1.load(std::sync::atomic::Ordering::Relaxed);
                let user = find_login_user(store, raw).await.unwrap();
                let queries = store.1.load(std::sync::atomic::Ordering::Relaxed) - before;
                (user.map(|user| user.id), queries)
            }
        };
        // The current form first; the legacy one (`straße`) is looked up too, found or not.
        assert_eq!(find("Straße").await, (Some(current.id.clone()), 2));
        assert_eq!(find("Gasse").await, (None, 1));
        assert_eq!(find("Größe").await, (None, 2));
        // A name the current rules refuse is looked up in the legacy form alone.
        assert_eq!(find("O’Brien").await, (Some(legacy.id), 1));
        assert_eq!(find("\u{430}dmin").await, (None, 1));
        assert_eq!(find("STRASSE").await, (Some(current.id), 1));
        assert_eq!(find("a b").await, (None, 0));
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
        let change = UserChange {
            disabled: Some(true),
            roles: Some(vec!["admin".to_owned()]),
            scopes: None,
            email_verified: None,
        };
        assert_eq!(
            ready(store.update(&user.id, change.clone(), None)),
            Changed::Changed(user.clone().with_hash("$new"))
        );
        let stored = ready(store.find_by_id(&user.id)).unwrap();
        assert_eq!(stored.password_hash, "$new");
        assert!(stored.disabled);
        assert_eq!(stored.roles, ["admin"]);
        assert_eq!(stored.scopes, user.scopes, "left as it was");
        assert_eq!(
            ready(store.update("nobody", change, None)),
            Changed::NotFound
        );
        assert_eq!(ready(store.delete("nobody", None)), Changed::NotFound);
        assert!(!ready(store.update_password_hash("nobody", String::new())));
        // A deleted account's name is free again.
        assert!(matches!(
            ready(store.delete(&user.id, None)),
            Changed::Changed(_)
        ));
        assert_eq!(ready(store.find_by_id(&user.id)), None);
        assert_eq!(ready(store.find_by_username("carol")), None);
        assert!(matches!(
            ready(store.create(new_user("carol"))),
            Created::Created(_)
        ));
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
        let names = |after, limit| -> Vec<String> {
            ready(store.page(after, limit))
                .into_iter()
                .map(|u| u.username)
                .collect()
        };
        assert_eq!(names(None, 10), ["a", "b"]);
        assert_eq!(names(None, 1), ["a"]);
        assert_eq!(names(Some("a"), 1), ["b"]);
        assert!(names(Some("b"), 1).is_empty());
        assert!(names(None, 0).is_empty());
        let user = ready(store.find_by_username("a")).unwrap();
        assert!(
            !format!("{user:?}").contains("argon2"),
            "Debug hides the hash"
        );
        let public = serde_json::to_string(&user.public()).unwrap();
        assert!(!public.contains("argon2") && !public.contains("password"));
    }
}
