//! The server process (`loadgen serve`): the apps under test, each on its own loopback port, in
//! one tokio runtime with the default worker count (one per core).

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Json, Router};
use jsonwebtoken::{DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower_jwt_auth::bearer::BearerAuthLayer;
use tower_jwt_auth::issuer::{AccessGrant, TokenIssuer};
use tower_jwt_auth::password::{HashingThreads, PasswordHasher};
use tower_jwt_auth::ratelimit::{LoginLimits, MemoryLimiterStore, RateLimitLoginLayer};
use tower_jwt_auth::router::AuthRouter;
use tower_jwt_auth::{Claims, Verifier, VerifierBuilder};

pub(crate) type BoxError = Box<dyn Error + Send + Sync>;

const ISSUER: &str = "http://loadgen.test";
const AUDIENCE: &str = "api";
/// A test key from the crate's fixtures (never a secret): ES256 tokens for (c) and (d).
const P256_PEM: &[u8] = include_bytes!("../../tests/data/keys/p256.pkcs8.pem");
/// The password of every user of the login app.
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// What the server was asked to build (the parent's flags).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ServeArgs {
    /// Distinct users (and so distinct tokens) per token pool.
    pub(crate) token_users: usize,
    /// Users of the login app (one per flooding client).
    pub(crate) login_users: usize,
    /// Users of the fairness apps (the abusers and the victim).
    pub(crate) fair_users: usize,
    /// `PasswordHasherBuilder::max_concurrent`; `None`: the crate's default.
    pub(crate) hasher_permits: Option<usize>,
    /// `PasswordHasherBuilder::max_queued`; `None`: the crate's default.
    pub(crate) hasher_queue: Option<usize>,
    /// `PasswordHasherBuilder::threads` (`idle`, `normal`, `blocking`); `None`: the default.
    pub(crate) hasher_threads: Option<String>,
    /// Tokens (d)'s verification cache holds (`VerifierBuilder::cache`).
    pub(crate) cache_capacity: usize,
}

/// What the server tells the parent, as one JSON line on stdout.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Ready {
    /// Scenario letter → port.
    pub(crate) ports: Vec<(String, u16)>,
    pub hs256_tokens: Vec<String>,
    pub es256_tokens: Vec<String>,
    /// Usernames of the login app; each has [`PASSWORD`].
    pub(crate) login_users: Vec<String>,
    /// Usernames of the fairness apps, on both; each has [`PASSWORD`].
    pub(crate) fair_users: Vec<String>,
    /// The hasher as configured, for the report.
    pub(crate) hasher: String,
    /// Worker threads of the server's runtime.
    pub(crate) workers: usize,
}

/// The handler of every scenario: a small JSON body naming the caller. Behind `BearerAuth`
/// it reads `sub` from the claims the layer put into the request extensions.
async fn hello(claims: Option<Claims>) -> Json<Value> {
    let sub = claims
        .as_ref()
        .and_then(Claims::subject)
        .unwrap_or("anonymous");
    Json(json!({ "hello": sub }))
}

/// `GET /hello`, behind `BearerAuth` with this verifier if given; `GET /stats` (never
/// protected) reports the verifier's cache counters.
fn app(verifier: Option<&Verifier>) -> Router {
    let router = Router::new().route("/hello", get(hello));
    let Some(verifier) = verifier else {
        return router;
    };
    let stats = verifier.clone();
    router
        .route_layer(BearerAuthLayer::new(verifier.clone()))
        .route(
            "/stats",
            get(move || {
                let cache = stats.cache_stats();
                async move {
                    Json(cache.map_or(
                        Value::Null,
                        |c| json!({"hits": c.hits(), "misses": c.misses(), "entries": c.entries()}),
                    ))
                }
            }),
        )
}

/// The claims scenario (p) reads: what a hand-written middleware declares for the tokens it
/// accepts (the `sub` the handler needs, and the claims it checks).
#[derive(Clone, Deserialize)]
struct HandClaims {
    sub: String,
    #[allow(dead_code)]
    scope: Option<String>,
    #[allow(dead_code)]
    roles: Option<Vec<String>>,
}

/// Scenario (p): the middleware a Rust user writes by hand today, as tutorials show it:
/// `axum::middleware::from_fn` taking the bearer token, a `Validation` built per request (issuer,
/// audience, the claims it requires), `jsonwebtoken::decode` with a key built once, and the
/// claims inserted into the request extensions.
async fn by_hand(
    State(key): State<Arc<DecodingKey>>,
    mut request: axum::extract::Request,
    next: Next,
) -> axum::response::Response {
    let token = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(token) = token else {
        return http::StatusCode::UNAUTHORIZED.into_response();
    };
    let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    match jsonwebtoken::decode::<HandClaims>(token, &key, &validation) {
        Ok(data) => {
            request.extensions_mut().insert(data.claims);
            next.run(request).await
        }
        Err(_) => http::StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// `GET /hello` behind [`by_hand`], its handler reading the hand-made claims.
fn app_by_hand(secret: &[u8]) -> Router {
    let key = Arc::new(DecodingKey::from_secret(secret));
    Router::new()
        .route(
            "/hello",
            get(|Extension(claims): Extension<HandClaims>| async move {
                Json(json!({ "hello": claims.sub }))
            }),
        )
        .route_layer(middleware::from_fn_with_state(key, by_hand))
}

/// `count` access tokens of distinct users, as the login router would issue them (RFC 9068,
/// `typ: at+jwt`, a role and a scope), valid for an hour.
fn tokens(issuer: &TokenIssuer, count: usize) -> Result<Vec<String>, BoxError> {
    let scopes = ["items:read".to_owned()];
    let roles = ["user".to_owned()];
    (0..count)
        .map(|i| {
            let (sub, sid) = (format!("user-{i}"), format!("session-{i}"));
            let grant = AccessGrant::new(&sub, "loadgen", &sid)
                .with_scopes(&scopes)
                .with_roles(&roles);
            Ok(issuer.issue(&grant)?.token)
        })
        .collect()
}

/// The policy the login router's own verifier has: issuer, audience, `typ: at+jwt`.
fn issuer_verifier(issuer: &TokenIssuer) -> Result<VerifierBuilder, BoxError> {
    Ok(issuer.verifier_builder()?)
}

fn verifier(issuer: &TokenIssuer) -> Result<Verifier, BoxError> {
    Ok(issuer_verifier(issuer)?.build()?)
}

/// Scenario (e): the login router as the example server mounts it (in-memory stores,
/// `RateLimitLogin` with the default limits, the peer address from `ConnectInfo`), `/health`,
/// and a cheap protected GET behind `auth.bearer_layer()`, with `users` users named
/// `{prefix}-{i}`. Without `limited`, no `RateLimitLogin` (the hasher's fair admission stays).
async fn login_app(
    args: &ServeArgs,
    prefix: &str,
    users: usize,
    limited: bool,
) -> Result<(Router, Vec<String>, String), BoxError> {
    let mut hasher = PasswordHasher::builder();
    if let Some(permits) = args.hasher_permits {
        hasher = hasher.max_concurrent(permits)?;
    }
    if let Some(queue) = args.hasher_queue {
        hasher = hasher.max_queued(queue);
    }
    if let Some(threads) = &args.hasher_threads {
        hasher = hasher.threads(match threads.as_str() {
            "idle" => HashingThreads::IdlePriority,
            "normal" => HashingThreads::NormalPriority,
            "blocking" => HashingThreads::BlockingPool,
            other => {
                return Err(format!("--hasher-threads {other}: idle, normal or blocking").into());
            }
        });
    }
    let hasher = hasher.build()?;
    let mut auth = AuthRouter::builder(TokenIssuer::generate_ed25519(ISSUER, AUDIENCE)?)
        .hasher(hasher.clone());
    if limited {
        let limiter =
            RateLimitLoginLayer::new(Arc::new(MemoryLimiterStore::new(LoginLimits::default())));
        auth = auth.rate_limit(limiter);
    }
    let auth = auth.build()?;
    // One user per client, each with a real argon2id hash at the default parameters, created
    // one after another so the hasher's queue never refuses one.
    let count = users;
    let mut users = Vec::with_capacity(count);
    for i in 0..count {
        let name = format!("{prefix}-{i}");
        auth.create_user(&name, PASSWORD, &["user"], &["items:read"])
            .await?;
        users.push(name);
    }
    let stats_hasher = hasher.clone();
    let router = Router::new()
        .route("/hello", get(hello))
        .route_layer(auth.bearer_layer())
        .route("/health", get(|| async { "ok" }))
        // The hasher's counters, so the parent can compare them with what it saw.
        .route(
            "/stats",
            get(move || {
                let stats = stats_hasher.stats();
                async move {
                    Json(json!({
                        "verifications": stats.verifications,
                        "dummy_verifications": stats.dummy_verifications,
                        "overloaded": stats.overloaded,
                    }))
                }
            }),
        )
        .nest("/auth", auth.router());
    let described = format!("{hasher:?}");
    Ok((router, users, described))
}

async fn listen(router: Router) -> Result<u16, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(error) = axum::serve(listener, service).await {
            eprintln!("loadgen server: {error}");
        }
    });
    Ok(port)
}

/// Builds every app, prints [`Ready`] and serves until stdin closes (the parent went away).
pub(crate) fn run(args: &ServeArgs) -> Result<(), BoxError> {
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // (j)'s server, started by hand, verifies with `LOADGEN_HS256_SECRET`; without it the
        // secret is random.
        let secret = match std::env::var("LOADGEN_HS256_SECRET") {
            Ok(secret) if secret.len() >= 32 => secret.into_bytes(),
            Ok(_) => return Err("LOADGEN_HS256_SECRET needs at least 32 characters".into()),
            Err(_) => {
                let mut secret = vec![0u8; 32];
                getrandom::fill(&mut secret).map_err(|e| format!("no randomness: {e}"))?;
                secret
            }
        };
        let hs256 = TokenIssuer::hmac(&secret, ISSUER, AUDIENCE)?
            .with_access_ttl(Duration::from_secs(3600))?;
        let es256 = TokenIssuer::from_pem(P256_PEM, ISSUER, AUDIENCE)?
            .with_access_ttl(Duration::from_secs(3600))?;

        let cached = issuer_verifier(&es256)?
            .cache(args.cache_capacity)?
            .build()?;
        let hs256_cached = issuer_verifier(&hs256)?
            .cache(args.cache_capacity)?
            .build()?;
        let mut ports = vec![
            ("a".to_owned(), listen(app(None)).await?),
            ("b".to_owned(), listen(app(Some(&verifier(&hs256)?))).await?),
            ("c".to_owned(), listen(app(Some(&verifier(&es256)?))).await?),
            ("d".to_owned(), listen(app(Some(&cached))).await?),
            ("f".to_owned(), listen(app(Some(&hs256_cached))).await?),
            ("p".to_owned(), listen(app_by_hand(&secret)).await?),
        ];
        let (login, login_users, hasher) = login_app(args, "flood", args.login_users, true).await?;
        ports.push(("e".to_owned(), listen(login).await?));
        let mut fair_users = Vec::new();
        if args.fair_users > 0 {
            let (fair, users, _) = login_app(args, "fair", args.fair_users, true).await?;
            ports.push(("g".to_owned(), listen(fair).await?));
            let (open, _, _) = login_app(args, "fair", args.fair_users, false).await?;
            ports.push(("g-unlimited".to_owned(), listen(open).await?));
            fair_users = users;
        }

        let ready = Ready {
            ports,
            hs256_tokens: tokens(&hs256, args.token_users)?,
            es256_tokens: tokens(&es256, args.token_users)?,
            login_users,
            fair_users,
            hasher,
            workers,
        };
        println!("{}", serde_json::to_string(&ready)?);
        Ok::<_, BoxError>(())
    })?;
    // The runtime's workers serve; this thread waits until the parent closes our stdin (it is
    // done, or it died).
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    Ok(())
}
