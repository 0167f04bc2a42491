//! An axum API behind `BearerAuthLayer`, with role and scope routes.
//!
//! ```text
//! cargo run --example axum_basic
//! ```
//!
//! It listens on 127.0.0.1:3000 (`BIND` to change), mints two demo tokens with a random HS256
//! secret, and prints them with curl lines to try:
//!
//! | route | needs |
//! |---|---|
//! | `GET /health` | nothing |
//! | `GET /me` | a valid token |
//! | `GET /admin` | role `admin` (or a role that implies it) |
//! | `GET /items` | scope `items:read` |
//! | `POST /items` | scope `items:write` |

use std::error::Error;

use axum::handler::Handler;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tower_jwt_auth::bearer::BearerAuthLayer;
use tower_jwt_auth::require::{RequireRoleLayer, RequireScopeLayer, RoleHierarchy};
use tower_jwt_auth::{Claims, Verifier};

#[path = "support/demo.rs"]
pub mod demo;

/// The application: public `/health`, everything else behind `BearerAuth`.
///
/// # Errors
///
/// A `ConfigError` if a layer's configuration were invalid (it is not).
pub fn app(verifier: Verifier) -> Result<Router, tower_jwt_auth::ConfigError> {
    let roles = RoleHierarchy::new().grant("admin", ["user"]);
    let protected = Router::new()
        .route("/me", get(me))
        .route(
            "/admin",
            get(admin.layer(RequireRoleLayer::any(["admin"])?.hierarchy(&roles))),
        )
        .route(
            "/items",
            get(list_items.layer(RequireScopeLayer::all(["items:read"])?))
                .post(create_item.layer(RequireScopeLayer::all(["items:write"])?)),
        )
        .layer(BearerAuthLayer::new(verifier));
    Ok(Router::new()
        .route("/health", get(|| async { "ok" }))
        .merge(protected))
}

async fn me(claims: Claims) -> Json<Value> {
    Json(json!({
        "sub": claims.subject(),
        "roles": claims.roles(),
        "scopes": claims.scopes().iter().collect::<Vec<_>>(),
    }))
}

async fn admin(claims: Claims) -> String {
    format!("admin area, welcome {}", claims.subject().unwrap_or("?"))
}

async fn list_items() -> Json<Value> {
    Json(json!(["item-1", "item-2"]))
}

async fn create_item() -> (StatusCode, &'static str) {
    (StatusCode::CREATED, "created")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let (verifier, signer) = demo::keys()?;
    let user = demo::token(&signer, "alice", &["user"], "items:read")?;
    let admin = demo::token(&signer, "root", &["admin"], "items:read items:write")?;
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    let base = format!("http://{}", listener.local_addr()?);

    println!("listening on {base} (demo secret is random per start; tokens valid 1 h)\n");
    println!("user token  (role user, scope items:read):\n  {user}\n");
    println!("admin token (role admin, scopes items:read items:write):\n  {admin}\n");
    println!("try:");
    println!("  curl -i {base}/health");
    println!("  curl -i {base}/me");
    println!("  curl -i -H 'Authorization: Bearer {user}' {base}/me");
    println!("  curl -i -H 'Authorization: Bearer {user}' {base}/admin");
    println!("  curl -i -H 'Authorization: Bearer {admin}' {base}/admin");
    println!("  curl -i -H 'Authorization: Bearer {user}' -X POST {base}/items");
    println!("  curl -i -H 'Authorization: Bearer {admin}' -X POST {base}/items");

    axum::serve(listener, app(verifier)?)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
