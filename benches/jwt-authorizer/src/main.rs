//! `GET /hello` behind jwt-authorizer's layer (HS256, issuer and audience checked), answering
//! as the load generator's other apps do, so that `examples/loadgen --peer` drives it with the
//! same client and tokens. The secret is `LOADGEN_HS256_SECRET`, which `loadgen serve` then
//! signs its HS256 tokens with.
//!
//! ```text
//! export LOADGEN_HS256_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
//! cargo build --release --manifest-path benches/jwt-authorizer/Cargo.toml
//! benches/jwt-authorizer/target/release/jwt-authorizer-peer 127.0.0.1:7878 &
//! cargo run --release --example loadgen -- --scenarios a,b,p,j --peer 127.0.0.1:7878 --peer-pid $!
//! ```

use axum::routing::get;
use axum::{Json, Router};
use jwt_authorizer::{Authorizer, IntoLayer, JwtAuthorizer, JwtClaims, Validation};
use serde::Deserialize;
use serde_json::{Value, json};

/// Must match the load generator's issuer and audience.
const ISSUER: &str = "http://loadgen.test";
const AUDIENCE: &str = "api";

#[derive(Clone, Deserialize)]
struct User {
    sub: String,
}

async fn hello(JwtClaims(user): JwtClaims<User>) -> Json<Value> {
    Json(json!({ "hello": user.sub }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7878".to_owned());
    let secret = std::env::var("LOADGEN_HS256_SECRET")
        .map_err(|_| "set LOADGEN_HS256_SECRET (at least 32 characters)")?;
    if secret.len() < 32 {
        return Err("LOADGEN_HS256_SECRET needs at least 32 characters".into());
    }
    let secret: &'static str = Box::leak(secret.into_boxed_str());
    let authorizer: Authorizer<User> = JwtAuthorizer::from_secret(secret)
        .validation(Validation::new().iss(&[ISSUER]).aud(&[AUDIENCE]))
        .build()
        .await?;
    let app = Router::new()
        .route("/hello", get(hello))
        .layer(authorizer.into_layer());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("jwt-authorizer peer on {addr}");
    axum::serve(listener, app).await?;
    Ok(())
}
