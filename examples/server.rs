//! The project's main example: a complete auth-protected API on the embedded defaults (an
//! SQLite file next to where it runs), the FastAPI OAuth2 tutorial's app done properly.
//!
//! ```text
//! cargo run --example server
//! ```
//!
//! On its first start the database is empty: the server creates the account `admin` with a
//! random password, written once to a file only its owner can read (the log names the file,
//! never the password). Users, sessions, revocations and login limits survive restarts; with no
//! key configured, the signing key is generated once and kept beside the database.
//!
//! | route | needs |
//! |---|---|
//! | `POST /auth/token`, `/auth/revoke`, `GET /auth/jwks.json` | see [`AuthRouter`] |
//! | `POST /auth/logout`, `/auth/logout/all` | a valid token |
//! | `POST /auth/register` | `AUTH_REGISTRATION=1` |
//! | `GET /auth/me`, `DELETE /auth/me` (`{password}`), `POST /auth/password` (`{current_password, new_password}`) | a valid token |
//! | `POST /auth/password/forgot` (`{email}` or `{username}`: always 202), `POST /auth/password/reset` (`{token, new_password}`) | nothing: the token comes by mail |
//! | `POST /auth/email/verify` (`{token}`), `POST /auth/email/verify/resend` (`{email}` or `{username}`) | `AUTH_EMAIL_VERIFICATION=1` |
//! | `GET /users/me` | a valid token: `{sub, username, email, roles, scopes}`, the roles and scopes this token grants |
//! | `GET /admin/users` (also `/auth/admin/users`) | role `admin`: the users by name, 100 at a time (`limit` up to 1000); a `Link: <?limit=…&cursor=…>; rel="next"` header leads to the next page |
//! | `GET`, `PATCH` (`{disabled?, roles?, scopes?, email_verified?}`), `DELETE /admin/users/{id}` (also under `/auth`) | role `admin`; `id` is the user's `sub` |
//! | `GET /items` | scope `items:read` |
//! | `POST /items` | scope `items:write` |
//! | `GET /` (the sign-in page: a button per external provider), `GET /auth/external/{provider}/start` and `/callback` | nothing: see [External sign-in](tower_jwt_auth::router::external) |
//! | `POST`, `PUT`, `DELETE /auth/external/{provider}/link` (start, claim, unlink) | a valid token |
//! | `GET /health` | nothing |
//! | `GET /docs` (Swagger UI), `GET /openapi.json` (OpenAPI 3.1) | nothing; off with `API_DOCS=off` |
//! | `GET /.well-known/oauth-authorization-server` (RFC 8414, under the issuer's path if it has one), `GET /.well-known/oauth-protected-resource` (RFC 9728; every 401 of the API's routes names it in `resource_metadata`) | nothing |
//!
//! Configuration (environment):
//!
//! | variable | meaning |
//! |---|---|
//! | `BIND` | listen address (default `127.0.0.1:8000`) |
//! | `HTTP_HEADER_READ_TIMEOUT` | seconds a client has to send a complete request head, from the connection's opening or the end of the previous answer; then the connection is closed (default 10) |
//! | `HTTP_IDLE_TIMEOUT` | seconds a connection with no request in flight stays open (default 30; over HTTP/1.1 the header-read timeout bounds the wait as well). A client that stops reading its answer counts as idle |
//! | `HTTP_REQUEST_TIMEOUT` | seconds from a request's head to its answer, reading the body included; past them, 408 (default 30) |
//! | `HTTP_MAX_CONNECTIONS` | open connections at most; past it, new ones are closed at once (default: 10 000, or the open-file limit less 128 if lower; the soft limit is raised to the hard one at start, and a larger value is refused) |
//! | `HTTP_MAX_CONNECTIONS_PER_IP` | open connections per client (an IPv4 address or an IPv6 `/64`) at most; past it, that client's new ones are closed at once; peers in `AUTH_TRUSTED_PROXIES` count only towards the total (default 64) |
//! | `DATABASE_URL` | where users, sessions, revocations and login limits live: `sqlite://path` (default `sqlite://tower-jwt-auth.db`, relative to the working directory; the file is created when missing), `postgres://…` for several instances (build with `--features postgres`), or `memory` (nothing survives the process; tests). Migrations run at start |
//! | `JWT_PRIVATE_KEY_FILE` | PEM private key; RSA → RS256, P-256 → ES256, P-384 → ES384, Ed25519 → EdDSA. Unset: on SQLite, an Ed25519 key generated once and kept in `<database>.signing-key.pem` (owner-only); in memory, a fresh key each start; on PostgreSQL, refused (every instance must sign with one key) |
//! | `JWT_SECRET` | HS256 with this secret (at least 32 bytes) instead |
//! | `AUTH_ISSUER`, `AUTH_AUDIENCE` | defaults `http://127.0.0.1:8000`, `api` |
//! | `AUTH_BOOTSTRAP_ADMIN=username:password` | creates that admin at start when missing (role `admin`, scopes `items:read items:write`); an existing account keeps its password. Unset, a database with no account at all gets `admin` with a random password in `<database>.admin-password` (owner-only) |
//! | `AUTH_REGISTRATION=1` | enables `/auth/register` (role `user`, scope `items:read`) |
//! | `AUTH_REFRESH_GRACE=<seconds>` | lets a client that lost a refresh's answer present the same refresh token again within that many seconds (1 to 300) and get the same new one back, instead of ending the session as a replay (default: off) |
//! | `AUTH_PUBLIC_URL` | the address users open (default: `AUTH_ISSUER`): mailed links are this, a path (`/reset-password`, `/verify-email`) and `?token=…`; the discovery documents' endpoints and the API's resource identifier are absolute on it; `https://`, or `http://` to a loopback host |
//! | `AUTH_OIDC_<NAME>_ISSUER`, `_CLIENT_ID`, `_CLIENT_SECRET` | an OpenID Connect provider (all three together), route `<name>` lower-cased (`_` becomes `-`); providers send browsers back to `AUTH_PUBLIC_URL/auth/external/<name>/callback` |
//! | `AUTH_GITHUB_CLIENT_ID`, `AUTH_GITHUB_CLIENT_SECRET` | GitHub sign-in, route `github`, scopes `read:user user:email` |
//! | `AUTH_ALLOWED_REDIRECTS` | comma-separated first-party origins an external sign-in may return to (the server's own origin always may) |
//! | `AUTH_EXTERNAL_SIGNUP` | `closed` (default), `open` or `domains:a.example,b.example` (addresses the provider marks verified); new accounts get role `user`, scope `items:read`, no password |
//! | `AUTH_EXTERNAL_LINK_BY_EMAIL=1` | a first external sign-in joins the account with its address when both the provider and this server verified it (needs `AUTH_EMAIL_VERIFICATION=1`, or it never happens: the server says so at start) |
//! | `SMTP_URL` | the mail server: `smtps://host[:port]` (implicit TLS), `smtp://host[:port]` (STARTTLS required) or `smtp://localhost:port?tls=none` (plain, loopback only). Unset: mail is only written to the log at `INFO`, link included, and the server warns at start that this is for development |
//! | `SMTP_USERNAME`, `SMTP_PASSWORD` | the mail server's credentials (both or neither) |
//! | `SMTP_ROOT_CERT_FILE` | a PEM root certificate to trust besides Mozilla's (a private relay) |
//! | `MAIL_FROM` | the sender, needed with `SMTP_URL` (`Name <no-reply@example.com>`) |
//! | `AUTH_RESET_TTL=<seconds>` | how long a password-reset link works, 60 to 86400 (default 1800) |
//! | `AUTH_EMAIL_VERIFICATION=1` | registration needs an address and mails a link to verify it; until it is used, that account's logins are refused (default: off) |
//! | `AUTH_RATE_LIMIT=off` | no per-client limits (failed logins, verifications, registrations, `/auth/revoke`, password change, forgot, verification resend); the password hasher's global cap and fair admission stay (test set-ups only) |
//! | `AUTH_TRUSTED_PROXIES=cidr,…` | peers whose forwarding header is trusted for the client address |
//! | `AUTH_FORWARDED_HEADER` | the one header those proxies write: `x-forwarded-for` (default) or `forwarded`; the other is ignored |
//! | `REDIS_URL` | revocations and login limits in Redis (build with `--features redis`); only with a shared `DATABASE_URL=postgres://…` for the users and sessions, which alone is already a complete deployment of several instances |
//! | `API_DOCS=off` | no `/openapi.json` and no Swagger UI at `/docs` (default: on) |
//! | `CORS_ALLOWED_ORIGINS` | comma-separated origins of browser apps allowed to call the API from their pages, each exactly as browsers send it: `https://host[:port]` (`http://` only to a loopback host), no path, no wildcard. Preflights are answered before any token check; `Authorization` and `Content-Type` may be sent; `WWW-Authenticate`, `Retry-After` and `Link` can be read; no cookies (tokens travel in the header). Unset (the default): no CORS headers at all, so browsers keep other origins out |
//! | `METRICS=1` | installs a Prometheus recorder and serves the crate's counters at `GET /metrics` on a separate listener (see [`telemetry`]) |
//! | `METRICS_BIND` | that listener's address (default `127.0.0.1:9000`); keep it off the public interface |
//!
//! The timeouts are whole seconds from 1 to 3600; the caps from 1 to 1 000 000. Every answer
//! carries `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
//! `Referrer-Policy: no-referrer`, a content security policy that loads and frames nothing, and
//! `Cache-Control: no-store` (the JWKS excepted: `public, max-age=300`; the discovery documents:
//! `public, max-age=3600`), and Swagger UI's pages a policy that lets them load their own
//! scripts and styles; bodies over 16 KiB are
//! answered 413 before any route reads them. Details in `examples/support/edge.rs`.
//!
//! With `REDIS_URL`, Redis must persist (`appendonly yes`) and never evict
//! (`maxmemory-policy noeviction`), or revoked tokens work again after a restart or under memory
//! pressure: the server asks Redis at start (`tower_jwt_auth::redis::durability`) and warns
//! about each setting that falls short.
//!
//! [`telemetry`]: tower_jwt_auth::telemetry
//!
//! [`AuthRouter`]: tower_jwt_auth::router::AuthRouter

use std::collections::HashMap;
use std::error::Error;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tower_jwt_auth::Claims;
use tower_jwt_auth::discovery::ProtectedResource;
use tower_jwt_auth::issuer::TokenIssuer;
use tower_jwt_auth::mail::{LogMailer, Mailer};
use tower_jwt_auth::openapi::{Guard, secure};
use tower_jwt_auth::ratelimit::{
    ForwardedHeader, LimiterStore, LoginLimits, MemoryLimiterStore, RateLimitLoginLayer,
};
use tower_jwt_auth::require::RequireScopeLayer;
use tower_jwt_auth::router::external::{ExternalSignIn, Provider, Signup};
use tower_jwt_auth::router::{
    AuthRouter, AuthRouterBuilder, CreateUserError, MIN_PASSWORD_CHARS, MemoryOneTimeStore,
    OneTimeStore, Registration,
};
use tower_jwt_auth::sql::{Database, ReplicaOptions, SqlUserStore};
use tower_jwt_auth::store::StoreError;
use utoipa::{OpenApi, ToSchema};
use zeroize::Zeroizing;

#[path = "support/edge.rs"]
pub mod edge;
#[path = "support/signin.rs"]
pub mod signin;

use edge::ConnectionLimits;

type BoxError = Box<dyn Error + Send + Sync>;

/// The server's settings, read from the environment.
#[derive(Clone, Debug)]
pub struct Config {
    /// `BIND`.
    pub bind: String,
    /// `HTTP_HEADER_READ_TIMEOUT`.
    pub header_read_timeout: Duration,
    /// `HTTP_IDLE_TIMEOUT`.
    pub idle_timeout: Duration,
    /// `HTTP_REQUEST_TIMEOUT`.
    pub request_timeout: Duration,
    /// `HTTP_MAX_CONNECTIONS`; unset, derived from the open-file limit.
    pub max_connections: Option<usize>,
    /// `HTTP_MAX_CONNECTIONS_PER_IP`.
    pub max_connections_per_ip: usize,
    /// `JWT_PRIVATE_KEY_FILE`.
    pub private_key_file: Option<String>,
    /// `JWT_SECRET`.
    pub secret: Option<String>,
    /// `AUTH_ISSUER`.
    pub issuer: String,
    /// `AUTH_AUDIENCE`.
    pub audience: String,
    /// `AUTH_BOOTSTRAP_ADMIN` as (username, password).
    pub bootstrap_admin: Option<(String, String)>,
    /// `AUTH_REGISTRATION=1`.
    pub registration: bool,
    /// `AUTH_REFRESH_GRACE`, whole seconds.
    pub refresh_grace: Option<Duration>,
    /// `AUTH_RATE_LIMIT` is not `off`.
    pub rate_limit: bool,
    /// `AUTH_PUBLIC_URL` (default: the issuer).
    pub public_url: String,
    /// `SMTP_URL`; unset, mail is logged.
    pub smtp_url: Option<String>,
    /// `SMTP_USERNAME` and `SMTP_PASSWORD`.
    pub smtp_credentials: Option<(String, Zeroizing<String>)>,
    /// `SMTP_ROOT_CERT_FILE`.
    pub smtp_root_cert_file: Option<String>,
    /// `MAIL_FROM`.
    pub mail_from: Option<String>,
    /// `AUTH_RESET_TTL`.
    pub reset_ttl: Duration,
    /// `AUTH_EMAIL_VERIFICATION=1`.
    pub email_verification: bool,
    /// `AUTH_TRUSTED_PROXIES`, split at commas.
    pub trusted_proxies: Vec<String>,
    /// `AUTH_FORWARDED_HEADER`.
    pub forwarded_header: ForwardedHeader,
    /// `DATABASE_URL`: `memory`, `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// `REDIS_URL` (needs the `redis` feature).
    pub redis_url: Option<String>,
    /// `METRICS=1`.
    pub metrics: bool,
    /// `METRICS_BIND`.
    pub metrics_bind: String,
    /// `CORS_ALLOWED_ORIGINS`, checked; empty: no CORS headers at all.
    pub cors_allowed_origins: Vec<String>,
    /// `API_DOCS` is not `off`: `/openapi.json` and Swagger UI at `/docs`.
    pub api_docs: bool,
    /// `AUTH_OIDC_<NAME>_*` and `AUTH_GITHUB_*`: the external providers, by route name.
    pub providers: Vec<ProviderVars>,
    /// `AUTH_ALLOWED_REDIRECTS`, split at commas.
    pub allowed_redirects: Vec<String>,
    /// `AUTH_EXTERNAL_SIGNUP` (default `closed`).
    pub external_signup: Signup,
    /// `AUTH_EXTERNAL_LINK_BY_EMAIL=1`.
    pub link_by_email: bool,
}

/// One external provider's settings.
#[derive(Clone)]
pub struct ProviderVars {
    /// The route name: `<name>` of `AUTH_OIDC_<NAME>_ISSUER` lower-cased, or `github`.
    pub name: String,
    /// The issuer (OpenID Connect); `None` for GitHub.
    pub issuer: Option<String>,
    /// The client id registered at the provider.
    pub client_id: String,
    /// Its secret.
    pub client_secret: Zeroizing<String>,
}

impl std::fmt::Debug for ProviderVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderVars")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The external providers of `vars`: `AUTH_OIDC_<NAME>_ISSUER`, `_CLIENT_ID` and
/// `_CLIENT_SECRET` for each OpenID Connect provider, `AUTH_GITHUB_CLIENT_ID` and
/// `AUTH_GITHUB_CLIENT_SECRET` for GitHub; sorted by name.
fn provider_vars(vars: &HashMap<String, String>) -> Result<Vec<ProviderVars>, BoxError> {
    let get = |name: &str| vars.get(name).filter(|v| !v.is_empty()).cloned();
    let mut providers = Vec::new();
    let mut names: Vec<&str> = vars
        .keys()
        .filter_map(|key| key.strip_prefix("AUTH_OIDC_"))
        .filter_map(|rest| {
            ["_ISSUER", "_CLIENT_ID", "_CLIENT_SECRET"]
                .iter()
                .find_map(|suffix| rest.strip_suffix(suffix))
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let var = |suffix: &str| format!("AUTH_OIDC_{name}_{suffix}");
        let (Some(issuer), Some(client_id), Some(client_secret)) = (
            get(&var("ISSUER")),
            get(&var("CLIENT_ID")),
            get(&var("CLIENT_SECRET")),
        ) else {
            return Err(format!(
                "set {}, {} and {} together",
                var("ISSUER"),
                var("CLIENT_ID"),
                var("CLIENT_SECRET")
            )
            .into());
        };
        providers.push(ProviderVars {
            name: name.to_ascii_lowercase().replace('_', "-"),
            issuer: Some(issuer),
            client_id,
            client_secret: Zeroizing::new(client_secret),
        });
    }
    match (
        get("AUTH_GITHUB_CLIENT_ID"),
        get("AUTH_GITHUB_CLIENT_SECRET"),
    ) {
        (Some(client_id), Some(client_secret)) => {
            if providers.iter().any(|p| p.name == "github") {
                return Err(
                    "AUTH_OIDC_GITHUB_* and AUTH_GITHUB_* both name a provider github".into(),
                );
            }
            providers.push(ProviderVars {
                name: "github".to_owned(),
                issuer: None,
                client_id,
                client_secret: Zeroizing::new(client_secret),
            });
        }
        (None, None) => {}
        _ => return Err("set AUTH_GITHUB_CLIENT_ID and AUTH_GITHUB_CLIENT_SECRET together".into()),
    }
    providers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(providers)
}

/// `AUTH_EXTERNAL_SIGNUP`: `open`, `closed` (the default) or `domains:a.example,b.example`.
fn external_signup(value: Option<&str>) -> Result<Signup, BoxError> {
    match value {
        None | Some("closed") => Ok(Signup::Closed),
        Some("open") => Ok(Signup::Open),
        Some(list) => match list.strip_prefix("domains:") {
            Some(domains) => Signup::domains(domains.split(',').map(str::trim))
                .map_err(|e| format!("AUTH_EXTERNAL_SIGNUP: {e}").into()),
            None => Err("AUTH_EXTERNAL_SIGNUP must be open, closed or domains:a.example,…".into()),
        },
    }
}

impl Config {
    /// Reads the settings from `vars` (the process environment in `main`).
    ///
    /// # Errors
    ///
    /// When a setting is malformed or cannot be honoured.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, BoxError> {
        let get = |name: &str| vars.get(name).filter(|v| !v.is_empty()).cloned();
        let seconds = |name: &str, default: Duration| match get(name) {
            None => Ok(default),
            Some(value) => value
                .parse::<u64>()
                .ok()
                .filter(|secs| (1..=3600).contains(secs))
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    format!("{name} must be whole seconds from 1 to 3600, not {value:?}")
                }),
        };
        let header_read_timeout = seconds(
            "HTTP_HEADER_READ_TIMEOUT",
            edge::DEFAULT_HEADER_READ_TIMEOUT,
        )?;
        let idle_timeout = seconds("HTTP_IDLE_TIMEOUT", edge::DEFAULT_IDLE_TIMEOUT)?;
        let request_timeout = seconds("HTTP_REQUEST_TIMEOUT", edge::DEFAULT_REQUEST_TIMEOUT)?;
        let count = |name: &str| match get(name) {
            None => Ok(None),
            Some(value) => value
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .map(Some)
                .ok_or_else(|| format!("{name} must be a number from 1 to 1000000, not {value:?}")),
        };
        let max_connections = count("HTTP_MAX_CONNECTIONS")?;
        let max_connections_per_ip = count("HTTP_MAX_CONNECTIONS_PER_IP")?
            .unwrap_or(edge::DEFAULT_MAX_CONNECTIONS_PER_CLIENT);
        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let shared = match database_url.as_str() {
            "memory" => false,
            url if url.starts_with("sqlite:") => false,
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => true,
            _ => {
                return Err("DATABASE_URL must be sqlite://path, postgres://… or memory".into());
            }
        };
        if shared && !cfg!(feature = "postgres") {
            return Err(
                "DATABASE_URL is a PostgreSQL URL, but this build has no PostgreSQL support: \
                 run with `--features postgres`"
                    .into(),
            );
        }
        let redis_url = get("REDIS_URL");
        if redis_url.is_some() && !shared {
            // Users and sessions in each instance's own database: a session from one
            // instance would be refused and killed by the next.
            return Err(
                "REDIS_URL is for several instances, which need one shared database for their \
                 users and sessions: set DATABASE_URL=postgres://… too (PostgreSQL alone is \
                 enough; Redis is optional beside it)"
                    .into(),
            );
        }
        if redis_url.is_some() && !cfg!(feature = "redis") {
            return Err(
                "REDIS_URL is set, but this build has no Redis support: run with \
                        `--features redis` (refusing to start several instances on separate \
                        in-memory stores)"
                    .into(),
            );
        }
        let rate_limit = match get("AUTH_RATE_LIMIT").as_deref() {
            None | Some("on" | "1") => true,
            Some("off" | "0") => {
                tracing::warn!(
                    "AUTH_RATE_LIMIT=off: no per-client limits on logins, registrations or \
                     revocations (test set-ups only)"
                );
                false
            }
            Some(_) => return Err("AUTH_RATE_LIMIT must be on or off".into()),
        };
        let trusted_proxies = get("AUTH_TRUSTED_PROXIES")
            .map(|list| list.split(',').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default();
        let forwarded_header = match get("AUTH_FORWARDED_HEADER") {
            Some(name) => name
                .parse()
                .map_err(|_| "AUTH_FORWARDED_HEADER must be x-forwarded-for or forwarded")?,
            None => ForwardedHeader::default(),
        };
        let bootstrap_admin = match get("AUTH_BOOTSTRAP_ADMIN") {
            Some(value) => {
                let usage = "AUTH_BOOTSTRAP_ADMIN must be username:password, the password at least \
                             8 characters";
                let (user, password) = value.split_once(':').ok_or(usage)?;
                if user.is_empty() || password.chars().count() < MIN_PASSWORD_CHARS {
                    return Err(usage.into());
                }
                Some((user.to_owned(), password.to_owned()))
            }
            None => None,
        };
        let registration = match get("AUTH_REGISTRATION").as_deref() {
            None | Some("0" | "false" | "off") => false,
            Some("1" | "true" | "on") => true,
            Some(_) => return Err("AUTH_REGISTRATION must be 1 or 0".into()),
        };
        let refresh_grace = match get("AUTH_REFRESH_GRACE") {
            Some(seconds) => match seconds.parse::<u64>() {
                Ok(seconds @ 1..=300) => Some(Duration::from_secs(seconds)),
                _ => return Err("AUTH_REFRESH_GRACE must be whole seconds from 1 to 300".into()),
            },
            None => None,
        };
        let smtp_url = get("SMTP_URL");
        if smtp_url.is_some() && !cfg!(feature = "smtp") {
            return Err(
                "SMTP_URL is set, but this build has no SMTP support: run with `--features smtp`"
                    .into(),
            );
        }
        let smtp_credentials = match (get("SMTP_USERNAME"), get("SMTP_PASSWORD")) {
            (Some(user), Some(password)) => Some((user, Zeroizing::new(password))),
            (None, None) => None,
            _ => return Err("set SMTP_USERNAME and SMTP_PASSWORD together".into()),
        };
        let mail_from = get("MAIL_FROM");
        if smtp_url.is_some() && mail_from.is_none() {
            return Err("SMTP_URL needs MAIL_FROM, the sender's address".into());
        }
        if smtp_url.is_none()
            && (smtp_credentials.is_some() || get("SMTP_ROOT_CERT_FILE").is_some())
        {
            return Err(
                "SMTP_USERNAME, SMTP_PASSWORD and SMTP_ROOT_CERT_FILE need SMTP_URL".into(),
            );
        }
        let reset_ttl = match get("AUTH_RESET_TTL") {
            None => tower_jwt_auth::router::DEFAULT_RESET_TTL,
            Some(value) => match value.parse::<u64>() {
                Ok(seconds @ 60..=86_400) => Duration::from_secs(seconds),
                _ => return Err("AUTH_RESET_TTL must be whole seconds from 60 to 86400".into()),
            },
        };
        let email_verification = match get("AUTH_EMAIL_VERIFICATION").as_deref() {
            None | Some("0" | "false" | "off") => false,
            Some("1" | "true" | "on") => true,
            Some(_) => return Err("AUTH_EMAIL_VERIFICATION must be 1 or 0".into()),
        };
        let metrics = match get("METRICS").as_deref() {
            None | Some("0" | "false" | "off") => false,
            Some("1" | "true" | "on") => true,
            Some(_) => return Err("METRICS must be 1 or 0".into()),
        };
        let cors_allowed_origins = match get("CORS_ALLOWED_ORIGINS") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|origin| edge::cors_origin(origin.trim()))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("CORS_ALLOWED_ORIGINS: {e}"))?,
        };
        let api_docs = match get("API_DOCS").as_deref() {
            None | Some("on" | "1") => true,
            Some("off" | "0") => false,
            Some(_) => return Err("API_DOCS must be on or off".into()),
        };
        let providers = provider_vars(vars)?;
        let allowed_redirects = get("AUTH_ALLOWED_REDIRECTS")
            .map(|list| list.split(',').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default();
        let external_signup = external_signup(get("AUTH_EXTERNAL_SIGNUP").as_deref())?;
        let link_by_email = match get("AUTH_EXTERNAL_LINK_BY_EMAIL").as_deref() {
            None | Some("0" | "false" | "off") => false,
            Some("1" | "true" | "on") => true,
            Some(_) => return Err("AUTH_EXTERNAL_LINK_BY_EMAIL must be 1 or 0".into()),
        };
        let issuer = get("AUTH_ISSUER").unwrap_or_else(|| "http://127.0.0.1:8000".to_owned());
        let config = Self {
            bind: get("BIND").unwrap_or_else(|| "127.0.0.1:8000".to_owned()),
            header_read_timeout,
            idle_timeout,
            request_timeout,
            max_connections,
            max_connections_per_ip,
            private_key_file: get("JWT_PRIVATE_KEY_FILE"),
            secret: get("JWT_SECRET"),
            public_url: get("AUTH_PUBLIC_URL").unwrap_or_else(|| issuer.clone()),
            issuer,
            audience: get("AUTH_AUDIENCE").unwrap_or_else(|| "api".to_owned()),
            bootstrap_admin,
            registration,
            refresh_grace,
            rate_limit,
            smtp_url,
            smtp_credentials,
            smtp_root_cert_file: get("SMTP_ROOT_CERT_FILE"),
            mail_from,
            reset_ttl,
            email_verification,
            trusted_proxies,
            forwarded_header,
            database_url,
            redis_url,
            metrics,
            metrics_bind: get("METRICS_BIND").unwrap_or_else(|| "127.0.0.1:9000".to_owned()),
            cors_allowed_origins,
            api_docs,
            providers,
            allowed_redirects,
            external_signup,
            link_by_email,
        };
        if config.private_key_file.is_some() && config.secret.is_some() {
            return Err("set JWT_PRIVATE_KEY_FILE or JWT_SECRET, not both".into());
        }
        if shared && config.private_key_file.is_none() && config.secret.is_none() {
            // A key of each instance's own would make every instance reject the others'
            // tokens.
            return Err(
                "DATABASE_URL=postgres://… shares sessions between instances, which must all \
                 sign with one key: set JWT_PRIVATE_KEY_FILE or JWT_SECRET"
                    .into(),
            );
        }
        Ok(config)
    }

    /// The connection timeouts and caps, with the open-file limit raised to its hard limit
    /// where the system allows.
    ///
    /// # Errors
    ///
    /// When `HTTP_MAX_CONNECTIONS` needs more open files than the limit allows, or an
    /// `AUTH_TRUSTED_PROXIES` entry is not an address or a network.
    pub fn connection_limits(&self) -> Result<ConnectionLimits, BoxError> {
        ConnectionLimits::new(
            self.header_read_timeout,
            self.idle_timeout,
            self.max_connections,
            self.max_connections_per_ip,
            &self.trusted_proxies,
        )
    }

    /// The SQLite database file, when `DATABASE_URL` names one (not `:memory:`).
    fn sqlite_file(&self) -> Option<PathBuf> {
        let rest = self.database_url.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or(rest);
        (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
    }

    /// A file beside the SQLite database: `<database><suffix>`.
    fn beside_database(&self, suffix: &str) -> Option<PathBuf> {
        let mut name = self.sqlite_file()?.into_os_string();
        name.push(suffix);
        Some(PathBuf::from(name))
    }

    fn token_issuer(&self) -> Result<TokenIssuer, BoxError> {
        let kept = self.beside_database(".signing-key.pem");
        let issuer = match (&self.private_key_file, &self.secret) {
            (Some(path), _) => {
                let pem =
                    std::fs::read(path).map_err(|e| format!("JWT_PRIVATE_KEY_FILE {path}: {e}"))?;
                TokenIssuer::from_pem(&pem, &self.issuer, &self.audience)?
            }
            (None, Some(secret)) => {
                TokenIssuer::hmac(secret.as_bytes(), &self.issuer, &self.audience)?
            }
            (None, None) => match kept {
                Some(path) => {
                    let pem = kept_signing_key(&path)?;
                    TokenIssuer::from_pem(pem.as_bytes(), &self.issuer, &self.audience)
                        .map_err(|e| format!("{}: {e}", path.display()))?
                }
                None => {
                    tracing::warn!(
                        "no JWT_PRIVATE_KEY_FILE or JWT_SECRET: signing with a fresh Ed25519 key; tokens die with this process"
                    );
                    TokenIssuer::generate_ed25519(&self.issuer, &self.audience)?
                }
            },
        };
        tracing::info!(algorithm = ?issuer.algorithm(), kid = issuer.kid(), "token issuer ready");
        Ok(issuer)
    }
}

/// The default `DATABASE_URL`: a file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://tower-jwt-auth.db";

/// The signing key kept at `path`: read when it exists (refused when others may read it),
/// else generated and written there, readable by its owner only.
fn kept_signing_key(path: &Path) -> Result<Zeroizing<String>, BoxError> {
    match read_secret(path) {
        Ok(pem) => {
            tracing::info!(file = %path.display(), "signing with the key kept beside the database");
            return Ok(pem);
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(format!("{}: {error}", path.display()).into()),
    }
    let pem = TokenIssuer::generate_ed25519_pem()?;
    match write_secret(path, pem.as_bytes(), false) {
        Ok(()) => {
            tracing::info!(file = %path.display(), "generated a signing key and kept it beside the database");
            Ok(pem)
        }
        // Another process got there first: use its key.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            read_secret(path).map_err(|e| format!("{}: {e}", path.display()).into())
        }
        Err(error) => Err(format!("{}: {error}", path.display()).into()),
    }
}

/// Reads a secret file, refusing one that its group or others may read or write.
fn read_secret(path: &Path) -> std::io::Result<Zeroizing<String>> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "readable by others (mode {:o}): `chmod 600` it",
                mode & 0o777
            ),
        ));
    }
    std::fs::read_to_string(path).map(Zeroizing::new)
}

/// Writes a secret file readable and writable by its owner only; `replace` replaces an
/// existing one, otherwise an existing file is an `AlreadyExists` error.
fn write_secret(path: &Path, contents: &[u8], replace: bool) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if replace {
        match std::fs::remove_file(path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// The items of `GET/POST /items`: a small shared list.
#[derive(Clone, Default)]
struct Items(Arc<Mutex<Vec<Item>>>);

const MAX_ITEMS: usize = 1000;

/// Where the server keeps its state: the stores of `DATABASE_URL` (migrated at start), with
/// revocations and login limits in Redis when `REDIS_URL` is set; the user store is returned
/// when it is a database's (to see whether this is a first start).
async fn shared_stores(
    config: &Config,
    builder: AuthRouterBuilder,
) -> Result<
    (
        AuthRouterBuilder,
        Arc<dyn LimiterStore>,
        Option<SqlUserStore>,
        Arc<dyn OneTimeStore>,
    ),
    BoxError,
> {
    let mut builder = builder;
    let mut one_time: Arc<dyn OneTimeStore> = Arc::new(MemoryOneTimeStore::new());
    let mut limiter: Arc<dyn LimiterStore> =
        Arc::new(MemoryLimiterStore::new(LoginLimits::default()));
    let mut database_users = None;
    if config.database_url == "memory" {
        tracing::warn!(
            "DATABASE_URL=memory: users, sessions and revocations end with this process \
             (tests only)"
        );
    } else {
        // Never the URL in a message: it may carry a password.
        let db = Database::connect(&config.database_url)
            .await
            .map_err(|e| format!("DATABASE_URL: {e}"))?;
        tracing::info!(
            backend = db.backend(),
            "DATABASE_URL: running the migrations"
        );
        db.migrate()
            .await
            .map_err(|e| format!("DATABASE_URL: {e}"))?;
        let revocations = db
            .revocations(ReplicaOptions::default())
            .await
            .map_err(|e| format!("DATABASE_URL: {e}"))?;
        builder = builder
            .users(Arc::new(db.users()))
            .refresh_store(Arc::new(db.refresh()))
            .revocation_store(Arc::new(revocations));
        limiter = Arc::new(db.limiter(LoginLimits::default()));
        database_users = Some(db.users());
        one_time = Arc::new(db.one_time());
        tracing::info!(
            backend = db.backend(),
            "users, sessions, revocations and login limits are kept in the database"
        );
    }
    #[cfg(feature = "redis")]
    if let Some(url) = &config.redis_url {
        use tower_jwt_auth::redis::{RedisLimiterStore, RedisRevocationStore, connect};
        let connection = connect(url).await.map_err(|e| format!("REDIS_URL: {e}"))?;
        warn_unless_durable(connection.clone()).await;
        builder = builder.revocation_store(Arc::new(RedisRevocationStore::new(connection.clone())));
        limiter = Arc::new(RedisLimiterStore::new(connection, LoginLimits::default()));
        tracing::info!("revocations and login limits are in Redis");
    }
    Ok((builder, limiter, database_users, one_time))
}

/// The first start on an empty database: the account `admin`, with a random password written
/// first to a file only its owner can read (so a crash cannot leave an account nobody can
/// log in to), then hashed into the store.
async fn first_start_admin(config: &Config, auth: &AuthRouter) -> Result<(), BoxError> {
    let path = config
        .beside_database(".admin-password")
        .unwrap_or_else(|| PathBuf::from("tower-jwt-auth.admin-password"));
    let mut random = Zeroizing::new([0u8; 18]);
    getrandom::fill(random.as_mut_slice()).map_err(|e| format!("random password: {e}"))?;
    let password = Zeroizing::new(URL_SAFE_NO_PAD.encode(random.as_slice()));
    write_secret(&path, format!("{}\n", password.as_str()).as_bytes(), true)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    match auth
        .create_user(
            "admin",
            &password,
            &["admin"],
            &["items:read", "items:write"],
        )
        .await
    {
        Ok(_) => {
            tracing::warn!(
                file = %path.display(),
                "first start: created the account `admin`; its password is in this file \
                 (readable by its owner only): store it elsewhere, then delete the file"
            );
            Ok(())
        }
        // Another instance started first and created it: its password is in its file.
        Err(CreateUserError::Taken) => {
            let _ = std::fs::remove_file(&path);
            tracing::info!("first start: another instance created the account `admin`");
            Ok(())
        }
        Err(error) => {
            let _ = std::fs::remove_file(&path);
            Err(format!("first start: creating `admin`: {error}").into())
        }
    }
}

/// Logs each way the Redis server could lose revocations (no persistence, eviction), or that it
/// would not say.
#[cfg(feature = "redis")]
async fn warn_unless_durable(mut connection: redis::aio::ConnectionManager) {
    match tower_jwt_auth::redis::durability(&mut connection).await {
        Ok(found) => {
            let warnings = found.warnings();
            for warning in &warnings {
                tracing::warn!("REDIS_URL: {warning}");
            }
            if warnings.is_empty() {
                tracing::info!("Redis persists with an append-only file and never evicts");
            }
        }
        Err(error) => {
            tracing::warn!(%error, "REDIS_URL: could not ask Redis about persistence and eviction");
        }
    }
}

/// Builds the application and its login router, creating the bootstrap admin if configured.
///
/// # Errors
///
/// When the issuer, the router or the bootstrap admin cannot be set up.
pub async fn app(config: &Config) -> Result<(Router, AuthRouter), BoxError> {
    let mut builder = AuthRouter::builder(config.token_issuer()?);
    if config.registration {
        builder = builder.registration(Registration {
            roles: vec!["user".to_owned()],
            scopes: vec!["items:read".to_owned()],
        });
    }
    if let Some(grace) = config.refresh_grace {
        builder = builder.refresh_grace(grace)?;
    }
    builder = builder
        .mail(mailer(config)?, &config.public_url)
        .map_err(|e| format!("AUTH_PUBLIC_URL: {e}"))?
        .reset_ttl(config.reset_ttl)?
        .email_verification(config.email_verification)
        .scopes_supported(SCOPES)?;
    let (mut builder, limiter_store, database_users, one_time) =
        shared_stores(config, builder).await?;
    if let Some(external) = external_sign_in(config, one_time)? {
        builder = builder.external_sign_in(external);
    }
    if config.rate_limit {
        let limiter = RateLimitLoginLayer::new(limiter_store)
            .trusted_proxies(config.trusted_proxies.iter().map(String::as_str))
            .map_err(|e| format!("AUTH_TRUSTED_PROXIES: {e}"))?
            .forwarded_header(config.forwarded_header);
        builder = builder.rate_limit(limiter);
    }
    let auth = builder.build()?;
    match (&config.bootstrap_admin, database_users) {
        (Some((username, password)), _) => {
            let created = auth
                .create_user(
                    username,
                    password,
                    &["admin"],
                    &["items:read", "items:write"],
                )
                .await;
            match created {
                Ok(admin) => {
                    tracing::info!(username = %admin.username, "bootstrap admin created");
                }
                // An existing account (or one whose name looks the same) is never changed.
                Err(CreateUserError::Taken) => tracing::info!(
                    username = %username,
                    "AUTH_BOOTSTRAP_ADMIN: the account exists; left it and its password as they are"
                ),
                Err(error) => return Err(format!("AUTH_BOOTSTRAP_ADMIN: {error}").into()),
            }
        }
        (None, Some(users)) => {
            let count = users
                .count()
                .await
                .map_err(|e| format!("DATABASE_URL: {e}"))?;
            if count == 0 {
                first_start_admin(config, &auth).await?;
            }
        }
        (None, None) if !config.registration => tracing::warn!(
            "no users and no way to create one: set AUTH_BOOTSTRAP_ADMIN=username:password \
             and/or AUTH_REGISTRATION=1"
        ),
        (None, None) => {}
    }

    // Discovery: RFC 8414 metadata for the issuer, RFC 9728 metadata for the API, and every
    // challenge of the API's routes names the latter.
    let public_url = config.public_url.trim_end_matches('/');
    let issuer_metadata = auth
        .metadata_router(&format!("{public_url}/auth"))
        .map_err(|e| format!("AUTH_ISSUER must be a URL its metadata can be found from: {e}"))?;
    let resource = ProtectedResource::builder(public_url)
        .map_err(|e| format!("AUTH_PUBLIC_URL: {e}"))?
        .authorization_server(auth.issuer().issuer())
        .map_err(|e| format!("AUTH_ISSUER: {e}"))?
        .scopes(SCOPES)?
        .name("tower-jwt-auth example API")
        .build();
    let bearer = auth
        .bearer_layer()
        .resource_metadata(resource.metadata_url())?;

    // Each requirement is written once: the same layers guard the routes and document them.
    let read = RequireScopeLayer::all(["items:read"])?;
    let write = RequireScopeLayer::all(["items:write"])?;
    let docs = if config.api_docs {
        let mut document = ApiDoc::openapi();
        document.merge(auth.openapi("/auth")?);
        document.merge(auth.admin_openapi("")?);
        let token = Guard::from(&bearer);
        secure(
            &mut document,
            &Method::GET,
            "/users/me",
            std::slice::from_ref(&token),
        )?;
        secure(
            &mut document,
            &Method::GET,
            "/items",
            &[token.clone(), Guard::from(&read)],
        )?;
        secure(
            &mut document,
            &Method::POST,
            "/items",
            &[token, Guard::from(&write)],
        )?;
        Some(edge::api_docs(document))
    } else {
        None
    };

    let items = Items::default();
    let protected = Router::new()
        .route("/users/me", get(me))
        .route(
            "/items",
            get(list_items.layer(read)).post(create_item.layer(write)),
        )
        // route_layer, not layer: a layer would also wrap the fallback, answering 401 for paths
        // that do not exist.
        .route_layer(bearer)
        .layer(DefaultBodyLimit::max(4096));
    let mut router = Router::new()
        .route("/health", get(health))
        .merge(protected)
        .with_state(AppState {
            auth: auth.clone(),
            items,
        })
        // `/admin/users` and `/admin/users/{id}`: the router's own administration routes, also
        // under `/auth`, with their bearer and `admin` role checks.
        .merge(auth.admin_router())
        .nest("/auth", auth.router())
        .merge(issuer_metadata)
        .merge(resource.router());
    if let Some(docs) = docs {
        router = router.merge(docs);
    }
    let providers: Vec<(String, String)> = auth
        .external_providers()
        .iter()
        .map(|p| (p.name().to_owned(), p.display_name().to_owned()))
        .collect();
    router = router.merge(signin::router(&providers));
    // Around every route, so that a preflight is answered before any bearer check or limiter.
    let router = if config.cors_allowed_origins.is_empty() {
        router
    } else {
        router.layer(edge::cors(&config.cors_allowed_origins))
    };
    Ok((edge::harden(router, config.request_timeout), auth))
}

/// External sign-in with the configured providers, ending on the sign-in page at `/` (this
/// server's own origin) or on an `AUTH_ALLOWED_REDIRECTS` front end. `None` without providers.
fn external_sign_in(
    config: &Config,
    store: Arc<dyn OneTimeStore>,
) -> Result<Option<ExternalSignIn>, BoxError> {
    if config.providers.is_empty() {
        if !config.allowed_redirects.is_empty() {
            tracing::warn!("AUTH_ALLOWED_REDIRECTS is set, but no external provider is configured");
        }
        return Ok(None);
    }
    let base = format!("{}/auth", config.public_url.trim_end_matches('/'));
    let mut external = ExternalSignIn::new(&base)
        .map_err(|e| format!("AUTH_PUBLIC_URL: {e}"))?
        .signup(config.external_signup.clone())
        .link_by_email(config.link_by_email)
        .new_users(Registration {
            roles: vec!["user".to_owned()],
            scopes: vec!["items:read".to_owned()],
        })
        .store(store);
    for origin in &config.allowed_redirects {
        external = external
            .allowed_redirect(origin)
            .map_err(|e| format!("AUTH_ALLOWED_REDIRECTS: {origin:?}: {e}"))?;
    }
    for vars in &config.providers {
        let provider = match &vars.issuer {
            Some(issuer) => {
                let upper = vars.name.to_ascii_uppercase().replace('-', "_");
                Provider::oidc(&vars.name, issuer, &vars.client_id, &vars.client_secret)
                    .map_err(|e| format!("AUTH_OIDC_{upper}_*: {e}"))?
            }
            None => Provider::github(&vars.client_id, &vars.client_secret)
                .map_err(|e| format!("AUTH_GITHUB_*: {e}"))?,
        };
        tracing::info!(
            provider = %vars.name,
            callback = %external.callback_url(&vars.name),
            "external sign-in: register this callback address with the provider"
        );
        external = external.provider(provider)?;
    }
    if config.link_by_email && !config.email_verification {
        tracing::warn!(
            "AUTH_EXTERNAL_LINK_BY_EMAIL=1 without AUTH_EMAIL_VERIFICATION=1: no local address \
             is ever verified, so no sign-in is linked to an account by its address (that \
             would let whoever registered someone else's address take their sign-in over)"
        );
    }
    Ok(Some(external))
}

/// The scopes the API's routes check.
const SCOPES: [&str; 2] = ["items:read", "items:write"];

/// The SMTP mailer of `SMTP_URL`, or without it the development mailer (announced).
fn mailer(config: &Config) -> Result<Arc<dyn Mailer>, BoxError> {
    let Some(url) = &config.smtp_url else {
        tracing::warn!(
            "SMTP_URL is unset: password-reset and verification mail is only written to the \
             log, links included (development only; set SMTP_URL and MAIL_FROM to send it)"
        );
        return Ok(Arc::new(LogMailer));
    };
    smtp_mailer(config, url)
}

#[cfg(feature = "smtp")]
fn smtp_mailer(config: &Config, url: &str) -> Result<Arc<dyn Mailer>, BoxError> {
    let from = config.mail_from.as_deref().unwrap_or_default();
    let mut builder = tower_jwt_auth::mail::SmtpMailer::builder(url, from)
        .map_err(|e| format!("SMTP_URL or MAIL_FROM: {e}"))?;
    if let Some((user, password)) = &config.smtp_credentials {
        builder = builder.credentials(user, password);
    }
    if let Some(path) = &config.smtp_root_cert_file {
        let pem = std::fs::read(path).map_err(|e| format!("SMTP_ROOT_CERT_FILE: {path}: {e}"))?;
        builder = builder
            .root_certificate_pem(&pem)
            .map_err(|e| format!("SMTP_ROOT_CERT_FILE: {e}"))?;
    }
    let mailer = builder.build()?;
    tracing::info!(server = ?mailer, "account mail goes out over SMTP");
    Ok(Arc::new(mailer))
}

#[cfg(not(feature = "smtp"))]
fn smtp_mailer(_: &Config, _: &str) -> Result<Arc<dyn Mailer>, BoxError> {
    Err("SMTP_URL is set, but this build has no SMTP support: run with `--features smtp`".into())
}

#[derive(Clone)]
struct AppState {
    auth: AuthRouter,
    items: Items,
}

/// The example API's own routes; the login router's and the security of every route are
/// merged in at start ([`app`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tower-jwt-auth example API",
        description = "Log in with \"Authorize\" (the password flow against `/auth/token`), \
                       then try the routes. Registered users get the scope `items:read`; \
                       `POST /items` needs `items:write`."
    ),
    paths(health, me, list_items, create_item),
    components(schemas(Me, Item, NewItem, ApiError))
)]
struct ApiDoc;

/// Whether the server is up.
#[utoipa::path(get, path = "/health", tag = "api", responses(
    (status = 200, description = "The server is up.", body = String, content_type = "text/plain"),
))]
async fn health() -> &'static str {
    "ok"
}

/// What `GET /users/me` answers.
#[derive(Serialize, ToSchema)]
struct Me {
    /// The user id (the token's `sub`).
    sub: String,
    username: String,
    email: Option<String>,
    /// The roles this token grants.
    roles: Vec<String>,
    /// The scopes this token grants.
    scopes: Vec<String>,
}

/// An error body: a code and a fixed description.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
struct ApiError {
    error: String,
    error_description: String,
}

/// `{sub, username, email, roles, scopes}`: the account, with the roles and scopes this token
/// grants.
#[utoipa::path(get, path = "/users/me", tag = "api", responses(
    (status = 200, description = "The account, with what this token grants.", body = Me),
    (status = 404, description = "The account no longer exists."),
    (status = 503, description = "`temporarily_unavailable`: the user store or the revocation store did not answer; try again after `Retry-After` seconds.", body = ApiError),
))]
async fn me(State(state): State<AppState>, claims: Claims) -> Result<Json<Me>, Response> {
    let sub = claims
        .subject()
        .ok_or_else(|| StatusCode::UNAUTHORIZED.into_response())?;
    let user = state
        .auth
        .users()
        .find_by_id(sub)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| StatusCode::NOT_FOUND.into_response())?;
    Ok(Json(Me {
        sub: user.id,
        username: user.username,
        email: user.email,
        roles: claims.roles().to_vec(),
        scopes: claims.scopes().iter().map(str::to_owned).collect(),
    }))
}

/// A store that cannot answer: 503, and when to try again.
fn unavailable(_: StoreError) -> Response {
    let body = ApiError {
        error: "temporarily_unavailable".to_owned(),
        error_description: "the user store did not answer, try again later".to_owned(),
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::RETRY_AFTER, "1")],
        Json(body),
    )
        .into_response()
}

/// An item of the demo list.
#[derive(Clone, Serialize, ToSchema)]
struct Item {
    id: usize,
    name: String,
    /// The `sub` of the user who created it.
    owner: Option<String>,
}

#[utoipa::path(get, path = "/items", tag = "api", responses(
    (status = 200, description = "Every item.", body = [Item]),
))]
async fn list_items(State(state): State<AppState>) -> Json<Vec<Item>> {
    let items = state
        .items
        .0
        .lock()
        .map_or_else(|e| e.into_inner().clone(), |i| i.clone());
    Json(items)
}

/// A new item.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewItem {
    /// 1 to 100 characters.
    name: String,
}

#[utoipa::path(post, path = "/items", tag = "api", request_body = NewItem, responses(
    (status = 201, description = "The new item.", body = Item),
    (status = 400, description = "`invalid_request`: the name is empty or longer than 100 characters.", body = ApiError),
    (status = 415, description = "Not `application/json`."),
    (status = 422, description = "Not an item (missing or unknown fields).", body = String, content_type = "text/plain"),
    (status = 507, description = "`full`: the demo list holds 1000 items.", body = ApiError),
))]
async fn create_item(
    State(state): State<AppState>,
    claims: Claims,
    Json(item): Json<NewItem>,
) -> Result<(StatusCode, Json<Item>), (StatusCode, Json<ApiError>)> {
    let refuse = |status, error: &str, description: &str| {
        let body = ApiError {
            error: error.to_owned(),
            error_description: description.to_owned(),
        };
        (status, Json(body))
    };
    let name = item.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "name must be 1 to 100 characters",
        ));
    }
    let mut items = state.items.0.lock().unwrap_or_else(|e| e.into_inner());
    if items.len() >= MAX_ITEMS {
        return Err(refuse(
            StatusCode::INSUFFICIENT_STORAGE,
            "full",
            "the demo list is full",
        ));
    }
    let created = Item {
        id: items.len() + 1,
        name: name.to_owned(),
        owner: claims.subject().map(str::to_owned),
    };
    items.push(created.clone());
    Ok((StatusCode::CREATED, Json(created)))
}

/// Serves `router` on `listener` with the default connection timeouts and caps until `shutdown`
/// completes, then finishes in-flight requests (see [`edge::serve_with`]).
///
/// # Errors
///
/// When the default connection limits cannot be set up (see [`Config::connection_limits`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = Config::from_vars(&HashMap::new())
        .and_then(|config| config.connection_limits())
        .map_err(std::io::Error::other)?;
    edge::serve_with(listener, router, limits, shutdown).await
}

/// Installs a Prometheus recorder as the process's global recorder, with the crate's counter
/// descriptions, and returns the handle that renders what it has counted.
///
/// # Errors
///
/// When a global recorder is already installed.
pub fn install_metrics() -> Result<PrometheusHandle, BoxError> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("METRICS: {e}"))?;
    #[cfg(feature = "metrics")]
    tower_jwt_auth::telemetry::describe();
    #[cfg(not(feature = "metrics"))]
    tracing::warn!("built without the `metrics` feature: /metrics will stay empty");
    Ok(handle)
}

/// `GET /metrics`: the Prometheus text exposition of `handle`. Served on its own listener, so
/// the scrape endpoint is never reachable where the API is.
pub fn metrics_router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
            }
        }),
    )
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = Config::from_vars(&std::env::vars().collect())?;
    let limits = config.connection_limits()?;
    tracing::info!(
        header_read_timeout = ?config.header_read_timeout,
        idle_timeout = ?config.idle_timeout,
        request_timeout = ?config.request_timeout,
        max_connections = limits.max(),
        max_connections_per_ip = config.max_connections_per_ip,
        "connection limits"
    );
    if config.metrics {
        // Before the app, so that nothing it counts is lost.
        let handle = install_metrics()?;
        let listener = TcpListener::bind(&config.metrics_bind)
            .await
            .map_err(|e| format!("METRICS_BIND {}: {e}", config.metrics_bind))?;
        tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
        let (metrics, limits) = (metrics_router(handle), limits.clone());
        tokio::spawn(async move {
            let forever = std::future::pending();
            if let Err(error) = edge::serve_with(listener, metrics, limits, forever).await {
                tracing::error!(%error, "metrics listener failed");
            }
        });
    }
    let (router, _auth) = app(&config).await?;
    let listener = TcpListener::bind(&config.bind).await?;
    let addr = listener.local_addr()?;
    tracing::info!("listening on http://{addr}");
    println!("listening on http://{addr}");
    edge::serve_with(listener, router, limits, async {
        // Without a signal handler there is nothing to wait for: serve until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down");
    })
    .await?;
    Ok(())
}
