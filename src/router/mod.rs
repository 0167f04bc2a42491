//! [`AuthRouter`]: an axum router for first-party logins. OAuth2 password and refresh grants
//! (RFC 6749), refresh-token rotation with reuse detection (RFC 9700 §4.14.2), revocation
//! (RFC 7009), logout, and the issuer's JWKS.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_jwt_auth::issuer::TokenIssuer;
//! use tower_jwt_auth::password::PasswordHasher;
//! use tower_jwt_auth::Claims;
//! use tower_jwt_auth::router::AuthRouter;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let issuer = TokenIssuer::generate_ed25519("https://api.example", "api")?;
//! let auth = AuthRouter::builder(issuer)
//!     .hasher(PasswordHasher::builder().params(1024, 1, 1)?.build()?) // cheap, for the example only
//!     .build()?;
//! auth.create_user("alice", "correct horse battery staple", &["user"], &["items:read"]).await?;
//!
//! let app: Router = Router::new()
//!     .route("/me", get(|claims: Claims| async move { claims.subject().unwrap_or("").to_owned() }))
//!     .route_layer(auth.bearer_layer()) // the routes above; unknown paths stay 404
//!     .nest("/auth", auth.router());
//!
//! # use tower::ServiceExt;
//! let login = http::Request::post("/auth/token")
//!     .header("content-type", "application/x-www-form-urlencoded")
//!     .body(axum::body::Body::from(
//!         "grant_type=password&username=alice&password=correct+horse+battery+staple",
//!     ))?;
//! let response = app.clone().oneshot(login).await?;
//! assert_eq!(response.status(), 200);
//! # Ok(()) }
//! ```
//!
//! | route (relative to the mount) | |
//! |---|---|
//! | `POST /token` | `grant_type=password` (`username`, `password`, optional `scope`), `grant_type=refresh_token` (`refresh_token`, optional narrower `scope`) and, with external sign-in, `grant_type=authorization_code` (`code`, `code_verifier`); form-encoded (RFC 6749) or JSON. Answers `{access_token, token_type, expires_in, refresh_token, scope}` |
//! | `POST /revoke` | RFC 7009: `token`, optional `token_type_hint`, and the client's credentials when it has any; 200 for a well-formed request (an unknown or expired token too), 400 `unauthorized_client` for a token issued to another client. Revoking an access token that carries a `sid` ends its session |
//! | `POST /logout` | bearer token required: ends this session (its access token and refresh family) |
//! | `POST /logout/all` | bearer token required: ends every session of the user |
//! | `GET /jwks.json` | the issuer's public keys (empty for HMAC) |
//! | `POST /register` | only when [enabled](AuthRouterBuilder::registration): JSON `{username, password, email?}` |
//! | `GET /me` | bearer token required: the token's account, `{sub, username, email, roles, scopes, disabled}` (never a hash) |
//! | `DELETE /me` | bearer token required, JSON `{password}`: deletes the account and ends every session of it; 204 |
//! | `POST /password` | bearer token required, JSON `{current_password, new_password}`: the new password meets the registration policy; every *other* session of the user ends at once; 204 |
//! | `GET /admin/users` | [administrators](AuthRouterBuilder::admin_role): a JSON array of users by username, `limit` (1 to [`MAX_PAGE_SIZE`], default [`DEFAULT_PAGE_SIZE`]) at a time; when more follow, `Link: <?limit=…&cursor=…>; rel="next"` |
//! | `GET /admin/users/{id}` | administrators: one user (404 `not_found`) |
//! | `PATCH /admin/users/{id}` | administrators, JSON `{disabled?, roles?, scopes?, email_verified?}`: the user as changed |
//! | `DELETE /admin/users/{id}` | administrators: deletes the user; 204 |
//! | `POST /password/forgot` | with a [mailer](AuthRouterBuilder::mail), JSON `{email}` or `{username}`: mails a reset link when an account matches; always 202 with one body |
//! | `POST /password/reset` | with a mailer, JSON `{token, new_password}`: sets the password; every session of the user ends; 204 |
//! | `POST /email/verify` | with [verification](AuthRouterBuilder::email_verification), JSON `{token}`: the address is verified; 204 |
//! | `POST /email/verify/resend` | with verification, JSON `{email}` or `{username}`: mails a new link to an unverified address; always 202 with one body |
//! | `GET /external/{provider}/start`, `GET /external/{provider}/callback`, `POST\|PUT\|DELETE /external/{provider}/link` | with [external sign-in](AuthRouterBuilder::external_sign_in) (feature `external`): see the `external` module |
//!
//! Errors follow RFC 6749 §5.2 (`invalid_request`, `invalid_client` (401),
//! `invalid_grant`, `unauthorized_client`, `unsupported_grant_type`, `invalid_scope`), every
//! token-endpoint answer carries `Cache-Control: no-store` and `Pragma: no-cache`, bodies over
//! 8 KiB are refused with 413, and a busy password hasher or an unavailable store answers 503
//! with `Retry-After`. An unknown user, a wrong password and a disabled account get
//! byte-identical answers after the same amount of hashing. HTTP Basic with an empty id and
//! secret (`Basic Og==`, what Swagger UI's password flow sends when no client is configured) is
//! a public client that did not name itself, never answered with a `Basic` challenge, and an
//! empty secret after an id is no secret.
//!
//! # Accounts
//!
//! A password checked outside the token endpoint (`POST /password`, `DELETE /me`) costs one
//! verification, counts as a login to that account on the [rate limiter](AuthRouterBuilder::rate_limit),
//! and a wrong one answers 400 `invalid_grant`. Whatever ends a user's standing ends their
//! sessions at once, their access tokens included: a password change (all but the session
//! that made it), deleting an account, and an administrator disabling it or taking a role or
//! scope away. Granting more takes effect at the next login or refresh. The last enabled
//! holder of the [administrator role](AuthRouterBuilder::admin_role) cannot be disabled,
//! demoted or deleted (409 `last_admin`), checked atomically by the [`UserStore`]. A login
//! reads the account again once its session is stored, so a change made while it checked the
//! password is never missed. Each change emits an audit event (target
//! [`TARGET_AUDIT`](crate::telemetry::TARGET_AUDIT)) naming the acting and the changed user
//! ids.
//!
//! # Account mail
//!
//! With a [`Mailer`](crate::mail::Mailer) the router mails one-time links (see
//! [`mail`](crate::mail)): a password reset on `POST /password/forgot` and, with
//! [verification](AuthRouterBuilder::email_verification), an address check on registration.
//! `forgot` and `verify/resend` answer 202 at once with the same body whether or not an account
//! matches, and look the account up and mail it in the background, so neither the answer nor
//! its timing tells who has an account. A link's token is 256 random bits, kept by the
//! [`UserStore`] only as its SHA-256 ([`AccountToken`]), single use, and valid
//! [`DEFAULT_RESET_TTL`] (reset) or [`DEFAULT_VERIFICATION_TTL`] (verification); a newer link
//! replaces the older, a password change discards an outstanding reset link, and an account gets
//! at most one mail of each kind per [`MAIL_INTERVAL`]. Every unusable token gets one answer, 400
//! `invalid_grant`. A reset ends every session of the user and marks the address verified.
//! Addresses must be bare (`addr-spec`): a `name <addr>` form is refused at registration. With
//! [`rate_limit`](AuthRouterBuilder::rate_limit), each mail request counts on the client's
//! registration rate and each wrong token as a failed login.
//!
//! # First-party clients only
//!
//! The password grant hands the user's password to the client. RFC 9700 §2.4 forbids it for
//! third-party clients: use it for your own web and mobile apps, and give anyone else an
//! authorization server with the authorization-code flow (PKCE).
//!
//! # Sessions and revocation
//!
//! Every login starts a refresh family, whose id is the access tokens' `sid`. Refresh tokens are
//! 256-bit random strings, stored only as SHA-256 hashes, and rotated on every use; presenting
//! a rotated one again (a replay: someone else holds a copy) revokes the whole family. Two
//! concurrent refreshes with one token are a replay too: exactly one succeeds, and the family
//! ends. Clients that may lose a refresh's answer (mobile networks, several browser tabs) can be
//! given a [grace period](AuthRouterBuilder::refresh_grace): within it, the token the family was
//! last rotated away from, presented again by the same client, gets the same new refresh token
//! back (never a second one), and concurrent refreshes all succeed. Revoking a family (replay, `/revoke`, `/logout`) also denylists its `sid` in the
//! [`RevocationStore`], so with [`AuthRouter::bearer_layer`] its access tokens stop working at
//! once rather than at their `exp`.
//!
//! No one account exhausts shared state: a user holds at most
//! [`max_sessions_per_user`](AuthRouterBuilder::max_sessions_per_user) sessions (a login past
//! it ends the oldest), ending a session writes one denylist entry (its `sid`), not one per
//! token, and a full in-memory revocation store, rather than forget a revocation, refuses every
//! token of that issuer issued no later than the entry it dropped.
//!
//! # Outages and abuse
//!
//! Before verifying a password, the router checks that the stores the login needs answer, and
//! checks again after a failed verification: while one is down, every password login answers
//! 503 whatever the password, so the answer never tells a right password from a wrong one. With
//! [`rate_limit`](AuthRouterBuilder::rate_limit), the password hasher's fair admission also
//! weighs the clients the limiter refused, and the limiter guards `/revoke` and `/register`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::bearer::BearerAuthLayer;
use crate::error::ConfigError;
use crate::issuer::TokenIssuer;
use crate::password::{PasswordError, PasswordHasher};
use crate::ratelimit::{Action, RateLimitLoginLayer};
use crate::require::RequireRoleLayer;
use crate::revocation::{MemoryRevocationStore, RevocationStore};
use crate::store::StoreError;
use crate::username::normalize_username;
use crate::verifier::{DEFAULT_LEEWAY, Verifier};

mod account;
mod admin;
mod endpoints;
mod events;
#[cfg(feature = "external")]
#[cfg_attr(docsrs, doc(cfg(feature = "external")))]
pub mod external;
mod identities;
mod metadata;
#[cfg(feature = "openapi")]
mod openapi;
mod recovery;
mod refresh;
mod reply;
mod request;
mod users;

pub use admin::{DEFAULT_PAGE_SIZE, MAX_GRANTS, MAX_PAGE_SIZE};
pub use identities::{
    DEFAULT_MAX_ONE_TIME_VALUES, Identity, Linked, MemoryOneTimeStore, OneTimeStore, Unlinked,
};
pub use recovery::{
    DEFAULT_RESET_TTL, DEFAULT_VERIFICATION_TTL, MAIL_INTERVAL, MAIL_JOB_TIMEOUT, MAX_MAIL_JOBS,
    RESET_PATH, VERIFY_PATH,
};
pub use refresh::{
    DEFAULT_MAX_SESSIONS, MemoryRefreshStore, REMEMBERED_ROTATIONS, RefreshSession, RefreshStore,
    RefreshToken, Retry, Rotation, SealedToken, TokenHash,
};
pub use request::MAX_BODY_BYTES;
pub use users::{
    AccountToken, Changed, Created, DEFAULT_MAX_USERS, Issued, MemoryUserStore, NewUser,
    PublicUser, TokenPurpose, User, UserChange, UserStore, email_key,
};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use users::{loses_role, stored_form};

/// The default idle lifetime of a refresh token: unused for this long, the session ends.
pub const DEFAULT_REFRESH_IDLE_TTL: Duration = Duration::from_secs(14 * 24 * 3600);
/// The default absolute lifetime of a session, however often it is refreshed.
pub const DEFAULT_REFRESH_ABSOLUTE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// The default cap on live sessions (refresh families) of one user: a login past it ends the
/// user's oldest session.
pub const DEFAULT_MAX_SESSIONS_PER_USER: usize = 100;
/// The `client_id` recorded when a public client does not name itself.
pub const DEFAULT_CLIENT_ID: &str = "default";
/// The shortest password [registration](AuthRouterBuilder::registration) accepts, in
/// characters (NIST SP 800-63B).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The role that may use the administration routes unless
/// [`admin_role`](AuthRouterBuilder::admin_role) says otherwise.
pub const DEFAULT_ADMIN_ROLE: &str = "admin";

/// A grant type a [`Client`] may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrantType {
    /// `password` (RFC 6749 §4.3).
    Password,
    /// `refresh_token` (RFC 6749 §6).
    RefreshToken,
    /// `authorization_code` (RFC 6749 §4.1.3 with RFC 7636): the one-time code an
    /// [external sign-in](external) ends with.
    AuthorizationCode,
}

/// A registered client. Once any client is registered, only registered clients may use the
/// router; without any, every request is a public client (its `client_id` is recorded, or
/// [`DEFAULT_CLIENT_ID`]).
#[derive(Clone)]
pub struct Client {
    id: String,
    /// SHA-256 of the secret; `None` for a public client.
    secret: Option<[u8; 32]>,
    grants: Vec<GrantType>,
}

impl Client {
    /// A public client (no secret: a browser or mobile app), allowed every grant.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] unless `id` is 1..=128 printable ASCII characters.
    pub fn public(id: &str) -> Result<Self, ConfigError> {
        check_client_id(id)?;
        Ok(Self {
            id: id.to_owned(),
            secret: None,
            grants: vec![
                GrantType::Password,
                GrantType::RefreshToken,
                GrantType::AuthorizationCode,
            ],
        })
    }

    /// A confidential client that authenticates with `secret`, preferably by HTTP Basic
    /// (RFC 6749 §2.3.1). Only a hash of the secret is kept, and it is compared in constant
    /// time.
    ///
    /// # Errors
    ///
    /// As [`Client::public`], and [`ConfigError::InvalidSetting`] for a secret shorter than 16
    /// bytes.
    pub fn confidential(id: &str, secret: &str) -> Result<Self, ConfigError> {
        if secret.len() < 16 {
            return Err(ConfigError::InvalidSetting(
                "client secrets must be at least 16 bytes",
            ));
        }
        let mut client = Self::public(id)?;
        client.secret = Some(Sha256::digest(secret.as_bytes()).into());
        Ok(client)
    }

    /// Restricts the grant types this client may use (others: `unauthorized_client`).
    #[must_use]
    pub fn grants(mut self, grants: &[GrantType]) -> Self {
        self.grants = grants.to_vec();
        self
    }

    fn secret_matches(&self, presented: Option<&str>) -> bool {
        match (&self.secret, presented) {
            (None, None) => true,
            (Some(expected), Some(presented)) => {
                let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
                bool::from(expected.ct_eq(&presented))
            }
            _ => false,
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("confidential", &self.secret.is_some())
            .field("grants", &self.grants)
            .finish()
    }
}

fn check_client_id(id: &str) -> Result<(), ConfigError> {
    let printable = id.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if id.is_empty() || id.len() > 128 || !printable {
        return Err(ConfigError::InvalidSetting(
            "client ids must be 1..=128 printable ascii characters",
        ));
    }
    Ok(())
}

/// What [`registration`](AuthRouterBuilder::registration) gives new users.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registration {
    /// Roles of every registered user.
    pub roles: Vec<String>,
    /// Scopes every registered user may be granted.
    pub scopes: Vec<String>,
}

/// Builds an [`AuthRouter`]; start with [`AuthRouter::builder`].
#[must_use]
pub struct AuthRouterBuilder {
    issuer: TokenIssuer,
    hasher: Option<PasswordHasher>,
    config: Config,
}

/// Everything the builder sets that the router keeps as it is.
struct Config {
    users: Arc<dyn UserStore>,
    refresh: Arc<dyn RefreshStore>,
    /// `None` until built: the default memory store must follow the router's clock, which may
    /// be set after the store.
    revocation: Option<Arc<dyn RevocationStore>>,
    refresh_idle_ttl: Duration,
    refresh_absolute_ttl: Duration,
    refresh_grace: Option<Duration>,
    max_sessions_per_user: usize,
    leeway: Duration,
    clients: HashMap<String, Client>,
    registration: Option<Registration>,
    rate_limit: Option<RateLimitLoginLayer>,
    admin_role: String,
    mail: Option<recovery::MailConfig>,
    mail_templates: Option<crate::mail::MailTemplates>,
    /// The paths of the reset and verification links.
    mail_links: (String, String),
    reset_ttl: Duration,
    verification_ttl: Duration,
    email_verification: bool,
    /// `scopes_supported` of the metadata.
    scopes_supported: Vec<String>,
    /// `service_documentation` of the metadata.
    service_documentation: Option<String>,
    #[cfg(feature = "external")]
    external: Option<external::ExternalSignIn>,
    clock: Clock,
}

type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

impl fmt::Debug for AuthRouterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRouterBuilder")
            .field("issuer", &self.issuer)
            .field("clients", &self.config.clients.values().collect::<Vec<_>>())
            .field("registration", &self.config.registration)
            .field("rate_limit", &self.config.rate_limit)
            .finish_non_exhaustive()
    }
}

impl AuthRouterBuilder {
    /// The password hasher (default: [`PasswordHasher::new`], argon2id at the OWASP floor).
    pub fn hasher(mut self, hasher: PasswordHasher) -> Self {
        self.hasher = Some(hasher);
        self
    }

    /// Where users live (default: a [`MemoryUserStore`]).
    pub fn users(mut self, users: Arc<dyn UserStore>) -> Self {
        self.config.users = users;
        self
    }

    /// Where refresh families live (default: a [`MemoryRefreshStore`]).
    pub fn refresh_store(mut self, store: Arc<dyn RefreshStore>) -> Self {
        self.config.refresh = store;
        self
    }

    /// The denylist of revoked tokens and sessions (default: a [`MemoryRevocationStore`] on the
    /// router's [clock](AuthRouterBuilder::clock)).
    /// [`AuthRouter::bearer_layer`] checks it on every request.
    pub fn revocation_store(mut self, store: Arc<dyn RevocationStore>) -> Self {
        self.config.revocation = Some(store);
        self
    }

    /// How long an unused refresh token stays valid (default [`DEFAULT_REFRESH_IDLE_TTL`]) and
    /// how long a session lasts at most (default [`DEFAULT_REFRESH_ABSOLUTE_TTL`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] unless 1 min ≤ `idle` ≤ `absolute` ≤ 1 year.
    pub fn refresh_ttl(mut self, idle: Duration, absolute: Duration) -> Result<Self, ConfigError> {
        let year = Duration::from_secs(366 * 24 * 3600);
        if idle < Duration::from_secs(60) || idle > absolute || absolute > year {
            return Err(ConfigError::InvalidSetting(
                "refresh lifetimes must satisfy 1 min <= idle <= absolute <= 1 year",
            ));
        }
        self.config.refresh_idle_ttl = idle;
        self.config.refresh_absolute_ttl = absolute;
        Ok(self)
    }

    /// Lets a client that lost the answer to a refresh (a timeout, a second browser tab)
    /// present the token it sent again for `grace` after the rotation, and get the same new
    /// refresh token back with a fresh access token, instead of ending the session as a replay
    /// (default: no grace; every replay ends the session).
    ///
    /// Only the token the session was last rotated away from, only by the client the session
    /// was granted to, and only within `grace`: the token before it, a later replay, or the
    /// same token from another `client_id` still end the session. A retry never forks the
    /// session: it is handed the very token the first answer carried, which each store keeps
    /// sealed under the old token (a one-time pad only the old token's holder can remove), so
    /// one lineage of refresh tokens stays live. Concurrent refreshes with one token then all
    /// succeed, with one new token between them.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for a grace of 0 or more than 5 minutes (whole seconds).
    pub fn refresh_grace(mut self, grace: Duration) -> Result<Self, ConfigError> {
        if grace.as_secs() == 0 || grace > Duration::from_secs(300) || grace.subsec_nanos() != 0 {
            return Err(ConfigError::InvalidSetting(
                "the refresh grace period must be whole seconds from 1 to 300",
            ));
        }
        self.config.refresh_grace = Some(grace);
        Ok(self)
    }

    /// How many live sessions one user may have (default [`DEFAULT_MAX_SESSIONS_PER_USER`]).
    /// A login that would pass the cap ends the user's oldest session first, and denylists
    /// its `sid` so its access tokens stop working too: one account cannot fill the shared
    /// refresh store, however often it logs in.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for 0.
    pub fn max_sessions_per_user(mut self, max: usize) -> Result<Self, ConfigError> {
        if max == 0 {
            return Err(ConfigError::InvalidSetting(
                "a user must be allowed at least one session",
            ));
        }
        self.config.max_sessions_per_user = max;
        Ok(self)
    }

    /// The clock leeway of the router's own verifier, also added to how long revocations are
    /// kept (default [`DEFAULT_LEEWAY`]). Keep it equal to the leeway of every verifier that
    /// accepts these tokens.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.config.leeway = leeway;
        self
    }

    /// Registers a client (see [`Client`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when a client with this id is already registered.
    pub fn client(mut self, client: Client) -> Result<Self, ConfigError> {
        if self.config.clients.contains_key(&client.id) {
            return Err(ConfigError::InvalidSetting("duplicate client id"));
        }
        self.config.clients.insert(client.id.clone(), client);
        Ok(self)
    }

    /// Enables `POST /register`, giving new users these roles and scopes.
    pub fn registration(mut self, registration: Registration) -> Self {
        self.config.registration = Some(registration);
        self
    }

    /// Puts `limiter` in front of `POST /token`, `POST /revoke` and `POST /register`, so that
    /// failed logins are limited before any password hashing. The router tells the limiter
    /// each attempt's outcome: failed password and refresh grants and refused revocations
    /// count as failures, every password verification counts on the client's verification
    /// rate, and every registration attempt on its registration rate (the router sets
    /// [`Action::Registration`] on the
    /// registration route's copy). The peer address must be in the request extensions: serve
    /// with `into_make_service_with_connect_info::<SocketAddr>()` or insert
    /// [`ClientAddr`](crate::ratelimit::ClientAddr).
    pub fn rate_limit(mut self, limiter: RateLimitLoginLayer) -> Self {
        self.config.rate_limit = Some(limiter);
        self
    }

    /// The role that may use `/admin/users` (default [`DEFAULT_ADMIN_ROLE`]). The last
    /// enabled account holding it can be neither disabled, demoted nor deleted, whoever asks.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for an empty role or one with control characters.
    pub fn admin_role(mut self, role: &str) -> Result<Self, ConfigError> {
        if !crate::require::is_role_name(role) {
            return Err(ConfigError::InvalidSetting(
                "the admin role must be non-empty without control characters",
            ));
        }
        role.clone_into(&mut self.config.admin_role);
        Ok(self)
    }

    /// Sends account mail through `mailer`, with links on `public_url` (the address users
    /// open, such as `https://app.example`; the link paths are [`RESET_PATH`] and
    /// [`VERIFY_PATH`] unless [`mail_links`](Self::mail_links) says otherwise). Enables
    /// `POST /password/forgot` and `POST /password/reset`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] unless `public_url` is an absolute `https://` URL (or
    /// `http://` to a loopback host, for development) without query or fragment.
    pub fn mail(
        mut self,
        mailer: Arc<dyn crate::mail::Mailer>,
        public_url: &str,
    ) -> Result<Self, ConfigError> {
        self.config.mail = Some(recovery::MailConfig::new(mailer, public_url)?);
        Ok(self)
    }

    /// What the mail says (default: [`MailTemplates::default`](crate::mail::MailTemplates)).
    /// Takes effect with [`mail`](Self::mail), in either order.
    pub fn mail_templates(mut self, templates: crate::mail::MailTemplates) -> Self {
        self.config.mail_templates = Some(templates);
        self
    }

    /// The paths, on the public URL, of the reset and verification links (defaults
    /// [`RESET_PATH`] and [`VERIFY_PATH`]): the pages of your front end that read the `token`
    /// query parameter and post it to `/password/reset` or `/email/verify`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] unless each path starts with `/` and has no query,
    /// fragment, spaces or controls.
    pub fn mail_links(mut self, reset: &str, verify: &str) -> Result<Self, ConfigError> {
        for path in [reset, verify] {
            let bad =
                |c: char| matches!(c, '?' | '#' | '\\') || c.is_whitespace() || c.is_control();
            if !path.starts_with('/') || path.starts_with("//") || path.contains(bad) {
                return Err(ConfigError::InvalidSetting(
                    "mail link paths start with one / and have no query, fragment or spaces",
                ));
            }
        }
        self.config.mail_links = (reset.to_owned(), verify.to_owned());
        Ok(self)
    }

    /// How long a password-reset link works (default [`DEFAULT_RESET_TTL`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] unless 1 minute ≤ `ttl` ≤ 1 day.
    pub fn reset_ttl(mut self, ttl: Duration) -> Result<Self, ConfigError> {
        self.config.reset_ttl = recovery::link_ttl(ttl)?;
        Ok(self)
    }

    /// Requires a verified e-mail address to log in (default: not required). Registration
    /// then requires an address and mails a verification link (valid
    /// [`DEFAULT_VERIFICATION_TTL`]); until it is used, a login with the right password is
    /// refused with `invalid_grant` saying so. `POST /email/verify` and
    /// `POST /email/verify/resend` are served. Accounts without an address (created with
    /// [`AuthRouter::create_user`]) are not held back; existing accounts whose address was
    /// never verified are, until they verify it (or an administrator sets `email_verified`).
    /// Needs [`mail`](Self::mail).
    pub fn email_verification(mut self, required: bool) -> Self {
        self.config.email_verification = required;
        self
    }

    /// The clock for refresh-token expiry and revocation lifetimes (default: the system
    /// clock). Tests pair it with [`TokenIssuer::clock`].
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.config.clock = Arc::new(clock);
        self
    }

    /// The scopes the [metadata](AuthRouter::metadata_router) lists as `scopes_supported`:
    /// those users can be granted, which the application's routes check. Unset, the member is
    /// left out.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for a value that is not an RFC 6749 scope token.
    pub fn scopes_supported<I>(mut self, scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut list: Vec<String> = Vec::new();
        for scope in scopes {
            let scope = scope.as_ref();
            if !crate::claims::is_scope_token(scope) {
                return Err(ConfigError::InvalidSetting(
                    "scopes are non-empty printable ascii without spaces, quotes or backslashes",
                ));
            }
            if !list.iter().any(|known| known == scope) {
                list.push(scope.to_owned());
            }
        }
        self.config.scopes_supported = list;
        Ok(self)
    }

    /// A page documenting the API for developers, listed in the
    /// [metadata](AuthRouter::metadata_router) as `service_documentation`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] unless `url` is an absolute `https` URL (`http` only to a
    /// loopback host) without credentials, query or fragment.
    pub fn service_documentation(mut self, url: &str) -> Result<Self, ConfigError> {
        crate::discovery::checked_url(url)?;
        self.config.service_documentation = Some(url.to_owned());
        Ok(self)
    }

    /// Serves sign-in with external identity providers (OpenID Connect, GitHub) ending in
    /// this router's sessions, and the `authorization_code` grant that finishes it. See
    /// [`external`].
    #[cfg(feature = "external")]
    pub fn external_sign_in(mut self, external: external::ExternalSignIn) -> Self {
        self.config.external = Some(external);
        self
    }

    /// Builds the router's state.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] from building the issuer's verifier or the default password hasher.
    pub fn build(self) -> Result<AuthRouter, ConfigError> {
        let mut config = self.config;
        let revocation = match config.revocation.take() {
            Some(store) => store,
            None => {
                // Entries are kept until instants computed on the router's clock, so the
                // store must expire them on that clock too.
                let clock = Arc::clone(&config.clock);
                Arc::new(MemoryRevocationStore::new().clock(move || unix_secs(clock()))) as _
            }
        };
        config.revocation = Some(Arc::clone(&revocation));
        let verifier = self
            .issuer
            .verifier_builder()?
            .leeway(config.leeway)
            .build()?;
        let hasher = match self.hasher {
            Some(hasher) => hasher,
            None => PasswordHasher::builder().build()?,
        };
        // The limiter's refusals weigh in the hasher's fair admission.
        config.rate_limit = config
            .rate_limit
            .take()
            .map(|limiter| limiter.ledger(hasher.ledger()));
        if let Some(mail) = &mut config.mail {
            mail.templates = config.mail_templates.take().unwrap_or_default();
            mail.links.clone_from(&config.mail_links);
        } else if config.email_verification {
            return Err(ConfigError::InvalidSetting(
                "email verification needs a mailer (AuthRouterBuilder::mail)",
            ));
        }
        let bearer = BearerAuthLayer::new(verifier.clone()).revocation(Arc::clone(&revocation));
        let require_admin = RequireRoleLayer::any([config.admin_role.as_str()])?;
        #[cfg(feature = "external")]
        let external = config
            .external
            .take()
            .map(external::ExternalState::new)
            .transpose()?;
        Ok(AuthRouter {
            state: Arc::new(State {
                #[cfg(feature = "external")]
                external,
                issuer: self.issuer,
                verifier,
                bearer,
                require_admin,
                hasher,
                revocation,
                config,
            }),
        })
    }
}

/// The login router and the state behind it. Cheap to clone.
#[derive(Clone)]
pub struct AuthRouter {
    state: Arc<State>,
}

struct State {
    issuer: TokenIssuer,
    verifier: Verifier,
    bearer: BearerAuthLayer,
    require_admin: RequireRoleLayer,
    hasher: PasswordHasher,
    revocation: Arc<dyn RevocationStore>,
    config: Config,
    #[cfg(feature = "external")]
    external: Option<external::ExternalState>,
}

impl State {
    /// Whether external sign-in (and so the code grant) is served.
    fn has_external_sign_in(&self) -> bool {
        #[cfg(feature = "external")]
        return self.external.is_some();
        #[cfg(not(feature = "external"))]
        false
    }

    fn now(&self) -> u64 {
        unix_secs((self.config.clock)())
    }

    /// Until when a session or user revocation must be kept: the longest an access token issued
    /// now could still be accepted.
    fn revocation_horizon(&self, now: u64) -> u64 {
        now + self.issuer.access_ttl().as_secs() + self.config.leeway.as_secs() + 1
    }
}

impl fmt::Debug for AuthRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRouter")
            .field("issuer", &self.state.issuer)
            .field("hasher", &self.state.hasher)
            .field("registration", &self.state.config.registration.is_some())
            .finish_non_exhaustive()
    }
}

/// Why [`AuthRouter::create_user`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CreateUserError {
    /// The username is taken, or an existing account's name looks like it (see
    /// [`username_skeleton`](crate::username_skeleton)).
    Taken,
    /// The username is not valid (see [`normalize_username`]).
    InvalidUsername,
    /// Hashing the password failed (too long, or the hasher is overloaded).
    Password(PasswordError),
    /// The user store failed.
    Store(StoreError),
}

impl fmt::Display for CreateUserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Taken => f.write_str("username taken"),
            Self::InvalidUsername => f.write_str("invalid username"),
            Self::Password(error) => write!(f, "password: {error}"),
            Self::Store(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for CreateUserError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Password(error) => Some(error),
            Self::Store(error) => Some(error),
            _ => None,
        }
    }
}

impl AuthRouter {
    /// Starts a builder around the issuer of the access tokens, with in-memory stores.
    pub fn builder(issuer: TokenIssuer) -> AuthRouterBuilder {
        AuthRouterBuilder {
            issuer,
            hasher: None,
            config: Config {
                users: Arc::new(MemoryUserStore::new()),
                refresh: Arc::new(MemoryRefreshStore::new()),
                revocation: None,
                refresh_idle_ttl: DEFAULT_REFRESH_IDLE_TTL,
                refresh_absolute_ttl: DEFAULT_REFRESH_ABSOLUTE_TTL,
                refresh_grace: None,
                max_sessions_per_user: DEFAULT_MAX_SESSIONS_PER_USER,
                leeway: DEFAULT_LEEWAY,
                clients: HashMap::new(),
                registration: None,
                rate_limit: None,
                admin_role: DEFAULT_ADMIN_ROLE.to_owned(),
                mail: None,
                mail_templates: None,
                mail_links: (RESET_PATH.to_owned(), VERIFY_PATH.to_owned()),
                reset_ttl: DEFAULT_RESET_TTL,
                verification_ttl: DEFAULT_VERIFICATION_TTL,
                email_verification: false,
                scopes_supported: Vec::new(),
                service_documentation: None,
                #[cfg(feature = "external")]
                external: None,
                clock: Arc::new(SystemTime::now),
            },
        }
    }

    /// The routes, to mount with `Router::nest` (any outer state type).
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let state = Arc::clone(&self.state);
        let mut token = post(endpoints::token);
        let mut revoke = post(endpoints::revoke);
        let mut register = post(endpoints::register);
        let mut password = post(account::change_password);
        let mut delete_me = delete(account::delete_me);
        // Requests that send mail count on the client's registration rate (each one, whatever
        // its answer); presenting a mailed token counts a wrong one as a failure.
        let mut forgot = post(recovery::forgot);
        let mut reset = post(recovery::reset);
        let mut verify = post(recovery::verify);
        let mut resend = post(recovery::resend);
        if let Some(limiter) = &state.config.rate_limit {
            token = token.layer(limiter.clone().action(Action::Login));
            revoke = revoke.layer(limiter.clone().action(Action::Login));
            register = register.layer(limiter.clone().action(Action::Registration));
            // The password in these bodies is checked like a login's, for the token's account.
            let named = from_fn_with_state(Arc::clone(&state), account::name_the_account);
            let login = limiter.clone().action(Action::Login);
            password = password.layer(login.clone()).layer(named.clone());
            delete_me = delete_me.layer(login.clone()).layer(named);
            let mailing = limiter.clone().action(Action::Registration);
            forgot = forgot.layer(mailing.clone());
            resend = resend.layer(mailing);
            reset = reset.layer(login.clone());
            verify = verify.layer(login);
        }
        #[cfg_attr(not(feature = "external"), allow(unused_mut))]
        let mut signed_in = Router::new()
            .route("/logout", post(endpoints::logout))
            .route("/logout/all", post(endpoints::logout_all))
            .route("/me", get(account::me).merge(delete_me))
            .route("/password", password);
        #[cfg(feature = "external")]
        if state.external.is_some() {
            signed_in = signed_in.route(
                "/external/{provider}/link",
                post(external::link)
                    .put(external::claim)
                    .delete(external::unlink),
            );
        }
        let signed_in = signed_in
            .route_layer(state.bearer.clone())
            .merge(self.admin_router());
        let mut router = Router::new()
            .route("/token", token)
            .route("/revoke", revoke)
            .route("/jwks.json", get(endpoints::jwks))
            .merge(signed_in);
        if state.config.registration.is_some() {
            router = router.route("/register", register);
        }
        #[cfg(feature = "external")]
        if state.external.is_some() {
            let mut start = get(external::start);
            let mut callback = get(external::callback);
            // A client refused for failed logins is refused here too, and a callback that
            // belongs to no sign-in of its browser counts as a failure.
            if let Some(limiter) = &state.config.rate_limit {
                start = start.layer(limiter.clone().action(Action::Login));
                callback = callback.layer(limiter.clone().action(Action::Login));
            }
            router = router
                .route("/external/{provider}/start", start)
                .route("/external/{provider}/callback", callback);
        }
        if state.config.mail.is_some() {
            router = router
                .route("/password/forgot", forgot)
                .route("/password/reset", reset);
        }
        if state.config.email_verification {
            router = router
                .route("/email/verify", verify)
                .route("/email/verify/resend", resend);
        }
        router.with_state(state)
    }

    /// The administration routes alone, `GET /admin/users` and `GET|PATCH|DELETE
    /// /admin/users/{id}` with their bearer and [role](AuthRouterBuilder::admin_role) checks
    /// (also part of [`router`](Self::router)), to serve them at another place too: an app
    /// whose clients already call its own `/admin/users` merges this at its root.
    pub fn admin_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let state = Arc::clone(&self.state);
        Router::new()
            .route("/admin/users", get(admin::list))
            .route(
                "/admin/users/{id}",
                get(admin::show).patch(admin::update).delete(admin::delete),
            )
            .route_layer(state.require_admin.clone())
            .route_layer(state.bearer.clone())
            .with_state(state)
    }

    /// The router's RFC 8414 authorization-server metadata, to merge into the app at the root
    /// of the issuer's host: served (`GET`) at `/.well-known/oauth-authorization-server`
    /// followed by the issuer's path, if it has one (RFC 8414 section 3.1). `base_url` is the
    /// absolute URL the [routes](Self::router) are reachable under, mount path included
    /// (`https://api.example/auth`); the endpoints in the document are absolute on it.
    ///
    /// The document names the issuer, the token, revocation and JWKS endpoints, the grant
    /// types and client authentication methods the registered clients may use (`none`: public
    /// clients), and the [scopes](AuthRouterBuilder::scopes_supported) and
    /// [documentation](AuthRouterBuilder::service_documentation) when set. Clients that start
    /// from the issuer URL, such as [`RemoteJwks::discover`][discover], find the keys with it.
    /// `response_types_supported` is empty: the router has no authorization endpoint.
    ///
    #[cfg_attr(
        feature = "remote-jwks",
        doc = "[discover]: crate::remote::RemoteJwks::discover"
    )]
    #[cfg_attr(not(feature = "remote-jwks"), doc = "[discover]: crate#features")]
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when `base_url` or the issuer is not an absolute `https`
    /// URL (`http` only to a loopback host) without credentials, query or fragment.
    pub fn metadata_router<S: Clone + Send + Sync + 'static>(
        &self,
        base_url: &str,
    ) -> Result<Router<S>, ConfigError> {
        let metadata = metadata::Metadata::new(&self.state, base_url)?;
        Ok(crate::discovery::document_router(
            &metadata.path,
            metadata.document,
        ))
    }

    /// A [`BearerAuthLayer`] for the application's routes: the issuer's verifier (issuer,
    /// audience, `typ: at+jwt`) with this router's revocation store.
    pub fn bearer_layer(&self) -> BearerAuthLayer {
        self.state.bearer.clone()
    }

    /// The verifier of this router's access tokens (no revocation check).
    #[must_use]
    pub fn verifier(&self) -> &Verifier {
        &self.state.verifier
    }

    /// The issuer.
    #[must_use]
    pub fn issuer(&self) -> &TokenIssuer {
        &self.state.issuer
    }

    /// The [external sign-in](external) providers (none without external sign-in).
    #[cfg(feature = "external")]
    #[must_use]
    pub fn external_providers(&self) -> &[external::Provider] {
        self.state
            .external
            .as_ref()
            .map_or(&[], |external| external.settings.providers())
    }

    /// The password hasher.
    #[must_use]
    pub fn hasher(&self) -> &PasswordHasher {
        &self.state.hasher
    }

    /// The user store.
    #[must_use]
    pub fn users(&self) -> &Arc<dyn UserStore> {
        &self.state.config.users
    }

    /// The revocation store.
    #[must_use]
    pub fn revocation(&self) -> &Arc<dyn RevocationStore> {
        &self.state.revocation
    }

    /// Creates a user with this password (hashed with the router's hasher), roles and scopes:
    /// for bootstrap accounts and admin tools.
    ///
    /// # Errors
    ///
    /// See [`CreateUserError`].
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        roles: &[&str],
        scopes: &[&str],
    ) -> Result<User, CreateUserError> {
        let username = normalize_username(username).ok_or(CreateUserError::InvalidUsername)?;
        let password_hash = self
            .state
            .hasher
            .hash(password)
            .await
            .map_err(CreateUserError::Password)?;
        let created = self
            .state
            .config
            .users
            .create(NewUser {
                username,
                email: None,
                password_hash,
                roles: roles.iter().map(|&r| r.to_owned()).collect(),
                scopes: scopes.iter().map(|&s| s.to_owned()).collect(),
            })
            .await
            .map_err(CreateUserError::Store)?;
        match created {
            Created::Created(user) => Ok(user),
            Created::Taken => Err(CreateUserError::Taken),
            Created::InvalidUsername => Err(CreateUserError::InvalidUsername),
            // No address and no identity were given.
            Created::EmailTaken | Created::IdentityTaken => Err(CreateUserError::Taken),
        }
    }
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Instant;

    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use tower::ServiceExt;

    use super::*;
    use crate::ratelimit::{ClientAddr, LoginLimits, MemoryLimiterStore};

    #[tokio::test]
    async fn the_limiters_refusals_weigh_in_the_hashers_admission() {
        let limits = LoginLimits::default()
            .per_client_verifications(1, Duration::from_secs(3600), 1)
            .unwrap();
        let limiter = RateLimitLoginLayer::new(Arc::new(MemoryLimiterStore::new(limits)));
        let hasher = PasswordHasher::builder()
            .params(8, 1, 1)
            .unwrap()
            .build()
            .unwrap();
        let auth =
            AuthRouter::builder(TokenIssuer::generate_ed25519("https://t.test", "t").unwrap())
                .hasher(hasher)
                .rate_limit(limiter)
                .build()
                .unwrap();
        let router: Router = auth.router();
        let client = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        let mut statuses = Vec::new();
        for _ in 0..6 {
            let mut request = Request::post("/token")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(
                    "grant_type=password&username=nobody&password=wrong",
                ))
                .unwrap();
            request.extensions_mut().insert(ClientAddr(client));
            statuses.push(router.clone().oneshot(request).await.unwrap().status());
        }
        assert_eq!(statuses[0], StatusCode::BAD_REQUEST, "{statuses:?}");
        assert!(
            statuses[1..]
                .iter()
                .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
            "{statuses:?}"
        );
        let weight = auth
            .state
            .hasher
            .ledger()
            .weight(Some(client), Instant::now());
        assert!(
            weight > 5.5,
            "one verification and five refusals weigh {weight}"
        );
    }
}
