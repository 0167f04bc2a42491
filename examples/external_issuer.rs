//! An API that trusts tokens from an external issuer: Keycloak here (roles under
//! `realm_access.roles`), and anything else that publishes OIDC discovery.
//!
//! ```sh
//! # Against a real Keycloak realm:
//! ISSUER_URL=https://sso.example.com/realms/acme AUDIENCE=account \
//!     cargo run --example external_issuer --features testing
//!
//! # Without ISSUER_URL, a TestIssuer on loopback stands in and the example prints tokens:
//! cargo run --example external_issuer --features testing
//! ```
//!
//! Routes: `GET /me` (any valid token), `GET /reports` (scope `reports:read`), `GET /admin`
//! (realm role `admin`). `tests/remote_keys/test_issuer.rs` runs this very app against a `TestIssuer`.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use tower_jwt_auth::bearer::BearerAuthLayer;
use tower_jwt_auth::remote::RemoteJwks;
use tower_jwt_auth::require::{RequireRoleLayer, RequireScopeLayer};
use tower_jwt_auth::testing::TestIssuer;
use tower_jwt_auth::{Claims, ConfigError, Verifier};

/// A verifier for a Keycloak realm's access tokens: keys through discovery, roles read from
/// `realm_access.roles`. The keys are fetched once now so the first request need not wait;
/// if the issuer is down, the app still starts and answers 503 until it is back.
pub async fn keycloak_verifier(issuer: &str, audience: &str) -> Result<Verifier, ConfigError> {
    let keys = RemoteJwks::discover(issuer)?.build()?;
    if let Err(error) = keys.refresh().await {
        tracing::warn!(%error, "issuer keys not fetched at start; retrying in the background");
    }
    Verifier::builder(keys)
        .issuer(issuer)
        .audience(audience)
        .roles_claim("/realm_access/roles")?
        .build()
}

/// The protected API.
pub fn app(verifier: Verifier) -> Result<Router, ConfigError> {
    Ok(Router::new()
        .route("/me", get(me))
        .route(
            "/reports",
            get(|| async { "quarterly numbers" })
                .route_layer(RequireScopeLayer::all(["reports:read"])?),
        )
        .route(
            "/admin",
            get(|| async { "admin console" }).route_layer(RequireRoleLayer::any(["admin"])?),
        )
        .layer(BearerAuthLayer::new(verifier)))
}

async fn me(claims: Claims) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "sub": claims.subject(),
        "roles": claims.roles(),
        "scopes": claims.scopes().iter().collect::<Vec<_>>(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_jwt_auth=debug".into()),
        )
        .init();
    let bind: SocketAddr = std::env::var("BIND")
        .unwrap_or_else(|_| "127.0.0.1:8001".to_owned())
        .parse()?;
    // Kept alive for as long as the app serves.
    let mut stand_in = None;
    let verifier = match std::env::var("ISSUER_URL") {
        Ok(issuer) => {
            let audience = std::env::var("AUDIENCE").unwrap_or_else(|_| "account".to_owned());
            keycloak_verifier(&issuer, &audience).await?
        }
        Err(_) => {
            let issuer = TestIssuer::builder().audience("account").start().await?;
            let verifier = keycloak_verifier(issuer.issuer(), "account").await?;
            let admin = issuer
                .token()
                .subject("alice")
                .scope("openid reports:read")
                .claim("realm_access", serde_json::json!({"roles": ["admin"]}))
                .sign()?;
            let user = issuer.token().subject("bob").scope("openid").sign()?;
            println!("stand-in issuer at {} (no ISSUER_URL set)", issuer.issuer());
            println!("  admin token: {admin}");
            println!("  user token:  {user}");
            println!("try: curl -H \"authorization: Bearer $TOKEN\" http://{bind}/reports");
            stand_in = Some(issuer);
            verifier
        }
    };
    let listener = tokio::net::TcpListener::bind(bind).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(verifier)?)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    drop(stand_in);
    Ok(())
}
