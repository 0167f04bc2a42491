//! The project's main example: a complete auth-protected API on the embedded defaults
//! (in-memory stores), the FastAPI OAuth2 tutorial's app done properly.
//!
//! ```text
//! AUTH_BOOTSTRAP_ADMIN=admin:change-me-please AUTH_REGISTRATION=1 cargo run --example server
//! ```
//!
//! | route | needs |
//! |---|---|
//! | `POST /auth/token`, `/auth/revoke`, `GET /auth/jwks.json` | see [`AuthRouter`] |
//! | `POST /auth/logout`, `/auth/logout/all` | a valid token |
//! | `POST /auth/register` | `AUTH_REGISTRATION=1` |
//! | `GET /users/me` | a valid token |
//! | `GET /admin/users` | role `admin` |
//! | `GET /items` | scope `items:read` |
//! | `POST /items` | scope `items:write` |
//! | `GET /health` | nothing |
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
//! | `JWT_PRIVATE_KEY_FILE` | PEM private key; RSA → RS256, P-256 → ES256, P-384 → ES384, Ed25519 → EdDSA. Unset: a fresh Ed25519 key each start |
//! | `JWT_SECRET` | HS256 with this secret (at least 32 bytes) instead |
//! | `AUTH_ISSUER`, `AUTH_AUDIENCE` | defaults `http://127.0.0.1:8000`, `api` |
//! | `AUTH_BOOTSTRAP_ADMIN=username:password` | creates that admin at start (role `admin`, scopes `items:read items:write`) |
//! | `AUTH_REGISTRATION=1` | enables `/auth/register` (role `user`, scope `items:read`) |
//! | `AUTH_RATE_LIMIT=off` | no per-client limits (failed logins, verifications, registrations, `/auth/revoke`); the password hasher's global cap and fair admission stay (test set-ups only) |
//! | `AUTH_TRUSTED_PROXIES=cidr,…` | peers whose forwarding header is trusted for the client address |
//! | `AUTH_FORWARDED_HEADER` | the one header those proxies write: `x-forwarded-for` (default) or `forwarded`; the other is ignored |
//! | `REDIS_URL` | refresh sessions, revocations and login limits in Redis, shared by several instances (build with `--features redis`; needs `JWT_PRIVATE_KEY_FILE` or `JWT_SECRET`, the same on every instance; users stay in each instance's memory) |
//! | `METRICS=1` | installs a Prometheus recorder and serves the crate's counters at `GET /metrics` on a separate listener (see [`telemetry`]) |
//! | `METRICS_BIND` | that listener's address (default `127.0.0.1:9000`); keep it off the public interface |
//!
//! The timeouts are whole seconds from 1 to 3600; the caps from 1 to 1 000 000. Every answer
//! carries `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
//! `Referrer-Policy: no-referrer`, a content security policy that loads and frames nothing, and
//! `Cache-Control: no-store` (the JWKS excepted: `public, max-age=300`); bodies over 16 KiB are
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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower_jwt_auth::Claims;
use tower_jwt_auth::issuer::TokenIssuer;
use tower_jwt_auth::ratelimit::{
    ForwardedHeader, LimiterStore, LoginLimits, MemoryLimiterStore, RateLimitLoginLayer,
};
use tower_jwt_auth::require::{RequireRoleLayer, RequireScopeLayer};
use tower_jwt_auth::router::{AuthRouter, AuthRouterBuilder, MIN_PASSWORD_CHARS, Registration};

#[path = "support/edge.rs"]
pub mod edge;

use edge::ConnectionLimits;

type BoxError = Box<dyn Error + Send + Sync>;

/// The server's settings, read from the environment.
#[derive(Clone, Debug, Default)]
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
    /// `AUTH_RATE_LIMIT` is not `off`.
    pub rate_limit: bool,
    /// `AUTH_TRUSTED_PROXIES`, split at commas.
    pub trusted_proxies: Vec<String>,
    /// `AUTH_FORWARDED_HEADER`.
    pub forwarded_header: ForwardedHeader,
    /// `REDIS_URL` (needs the `redis` feature).
    pub redis_url: Option<String>,
    /// `METRICS=1`.
    pub metrics: bool,
    /// `METRICS_BIND`.
    pub metrics_bind: String,
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
        let redis_url = get("REDIS_URL");
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
        let metrics = match get("METRICS").as_deref() {
            None | Some("0" | "false" | "off") => false,
            Some("1" | "true" | "on") => true,
            Some(_) => return Err("METRICS must be 1 or 0".into()),
        };
        let config = Self {
            bind: get("BIND").unwrap_or_else(|| "127.0.0.1:8000".to_owned()),
            header_read_timeout,
            idle_timeout,
            request_timeout,
            max_connections,
            max_connections_per_ip,
            private_key_file: get("JWT_PRIVATE_KEY_FILE"),
            secret: get("JWT_SECRET"),
            issuer: get("AUTH_ISSUER").unwrap_or_else(|| "http://127.0.0.1:8000".to_owned()),
            audience: get("AUTH_AUDIENCE").unwrap_or_else(|| "api".to_owned()),
            bootstrap_admin,
            registration,
            rate_limit,
            trusted_proxies,
            forwarded_header,
            redis_url,
            metrics,
            metrics_bind: get("METRICS_BIND").unwrap_or_else(|| "127.0.0.1:9000".to_owned()),
        };
        if config.private_key_file.is_some() && config.secret.is_some() {
            return Err("set JWT_PRIVATE_KEY_FILE or JWT_SECRET, not both".into());
        }
        if config.redis_url.is_some()
            && config.private_key_file.is_none()
            && config.secret.is_none()
        {
            // A fresh key per process would make every instance reject the others' tokens.
            return Err(
                "REDIS_URL shares sessions between instances, which must all sign \
                        with one key: set JWT_PRIVATE_KEY_FILE or JWT_SECRET"
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

    fn token_issuer(&self) -> Result<TokenIssuer, BoxError> {
        let issuer = match (&self.private_key_file, &self.secret) {
            (Some(path), _) => {
                let pem =
                    std::fs::read(path).map_err(|e| format!("JWT_PRIVATE_KEY_FILE {path}: {e}"))?;
                TokenIssuer::from_pem(&pem, &self.issuer, &self.audience)?
            }
            (None, Some(secret)) => {
                TokenIssuer::hmac(secret.as_bytes(), &self.issuer, &self.audience)?
            }
            (None, None) => {
                tracing::warn!(
                    "no JWT_PRIVATE_KEY_FILE or JWT_SECRET: signing with a fresh Ed25519 key; tokens die with this process"
                );
                TokenIssuer::generate_ed25519(&self.issuer, &self.audience)?
            }
        };
        tracing::info!(algorithm = ?issuer.algorithm(), kid = issuer.kid(), "token issuer ready");
        Ok(issuer)
    }
}

/// The items of `GET/POST /items`: a small shared list.
#[derive(Clone, Default)]
struct Items(Arc<Mutex<Vec<Value>>>);

const MAX_ITEMS: usize = 1000;

/// The stores several instances must share: in Redis when `REDIS_URL` is set (one
/// reconnecting connection for the three; users stay in memory), else in memory.
async fn shared_stores(
    config: &Config,
    builder: AuthRouterBuilder,
) -> Result<(AuthRouterBuilder, Arc<dyn LimiterStore>), BoxError> {
    #[cfg(feature = "redis")]
    if let Some(url) = &config.redis_url {
        use tower_jwt_auth::redis::{
            RedisLimiterStore, RedisRefreshStore, RedisRevocationStore, connect,
        };
        let connection = connect(url).await.map_err(|e| format!("REDIS_URL: {e}"))?;
        warn_unless_durable(connection.clone()).await;
        let builder = builder
            .refresh_store(Arc::new(RedisRefreshStore::new(connection.clone())))
            .revocation_store(Arc::new(RedisRevocationStore::new(connection.clone())));
        let limits = Arc::new(RedisLimiterStore::new(connection, LoginLimits::default()));
        tracing::info!("refresh sessions, revocations and login limits are in Redis");
        return Ok((builder, limits));
    }
    #[cfg(not(feature = "redis"))]
    let _ = config;
    Ok((
        builder,
        Arc::new(MemoryLimiterStore::new(LoginLimits::default())),
    ))
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
    let (mut builder, limiter_store) = shared_stores(config, builder).await?;
    if config.rate_limit {
        let limiter = RateLimitLoginLayer::new(limiter_store)
            .trusted_proxies(config.trusted_proxies.iter().map(String::as_str))
            .map_err(|e| format!("AUTH_TRUSTED_PROXIES: {e}"))?
            .forwarded_header(config.forwarded_header);
        builder = builder.rate_limit(limiter);
    }
    let auth = builder.build()?;
    if let Some((username, password)) = &config.bootstrap_admin {
        let admin = auth
            .create_user(
                username,
                password,
                &["admin"],
                &["items:read", "items:write"],
            )
            .await
            .map_err(|e| format!("AUTH_BOOTSTRAP_ADMIN: {e}"))?;
        tracing::info!(username = %admin.username, "bootstrap admin created");
    }

    if config.bootstrap_admin.is_none() && !config.registration {
        tracing::warn!(
            "no users and no way to create one: set AUTH_BOOTSTRAP_ADMIN=username:password \
             and/or AUTH_REGISTRATION=1"
        );
    }

    let items = Items::default();
    let protected = Router::new()
        .route("/users/me", get(me))
        .route(
            "/admin/users",
            get(list_users.layer(RequireRoleLayer::any(["admin"])?)),
        )
        .route(
            "/items",
            get(list_items.layer(RequireScopeLayer::all(["items:read"])?))
                .post(create_item.layer(RequireScopeLayer::all(["items:write"])?)),
        )
        // route_layer, not layer: a layer would also wrap the fallback, answering 401 for paths
        // that do not exist.
        .route_layer(auth.bearer_layer())
        .layer(DefaultBodyLimit::max(4096));
    let router = Router::new()
        .route("/health", get(|| async { "ok" }))
        .merge(protected)
        .with_state(AppState {
            auth: auth.clone(),
            items,
        })
        .nest("/auth", auth.router());
    Ok((edge::harden(router, config.request_timeout), auth))
}

#[derive(Clone)]
struct AppState {
    auth: AuthRouter,
    items: Items,
}

/// `{sub, username, email, roles, scopes}`: the account, with the roles and scopes this token
/// grants.
async fn me(State(state): State<AppState>, claims: Claims) -> Result<Json<Value>, StatusCode> {
    let sub = claims.subject().ok_or(StatusCode::UNAUTHORIZED)?;
    let user = state
        .auth
        .users()
        .find_by_id(sub)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?
        .ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(json!({
        "sub": user.id,
        "username": user.username,
        "email": user.email,
        "roles": claims.roles(),
        "scopes": claims.scopes().iter().collect::<Vec<_>>(),
    })))
}

async fn list_users(State(state): State<AppState>) -> Result<Json<Value>, StatusCode> {
    let users = state
        .auth
        .users()
        .list()
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Ok(Json(json!(
        users.iter().map(|u| u.public()).collect::<Vec<_>>()
    )))
}

async fn list_items(State(state): State<AppState>) -> Json<Value> {
    let items = state
        .items
        .0
        .lock()
        .map_or_else(|e| e.into_inner().clone(), |i| i.clone());
    Json(Value::Array(items))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewItem {
    name: String,
}

async fn create_item(
    State(state): State<AppState>,
    claims: Claims,
    Json(item): Json<NewItem>,
) -> Result<(StatusCode, Json<Value>), (StatusCode, Json<Value>)> {
    let name = item.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err((
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": "invalid_request", "error_description": "name must be 1 to 100 characters"}),
            ),
        ));
    }
    let mut items = state.items.0.lock().unwrap_or_else(|e| e.into_inner());
    if items.len() >= MAX_ITEMS {
        return Err((
            StatusCode::INSUFFICIENT_STORAGE,
            Json(json!({"error": "full", "error_description": "the demo list is full"})),
        ));
    }
    let created = json!({"id": items.len() + 1, "name": name, "owner": claims.subject()});
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
