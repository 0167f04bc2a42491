//! A `TestIssuer` as a process: an OpenID Connect provider on a loopback port that signs in
//! one scripted user without asking anything (consent skipped), for trying external sign-in by
//! hand or from a browser test, with no network and no account anywhere.
//!
//! ```text
//! cargo run --features testing --example test_issuer -- "Ada Lovelace" ada@example.com
//! ```
//!
//! It prints one JSON line, `{"issuer", "client_id", "client_secret"}`, the three settings of
//! the example server (`AUTH_OIDC_<NAME>_ISSUER`, `_CLIENT_ID`, `_CLIENT_SECRET`), then serves
//! until its standard input closes or it is interrupted. The user's subject is `test-user`, its
//! name the first argument (default `Test User`), and its address, when given, is marked
//! verified. Nothing here is meant for production.

use std::error::Error;

use tower_jwt_auth::testing::{TestIssuer, TestUser};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "Test User".to_owned());
    let mut user = TestUser::new("test-user").name(name);
    if let Some(email) = args.next() {
        user = user.email(email, true);
    }
    let issuer = TestIssuer::start().await?;
    issuer.sign_in_as(user);
    println!(
        "{}",
        serde_json::json!({
            "issuer": issuer.issuer(),
            "client_id": issuer.client_id(),
            "client_secret": issuer.client_secret(),
        })
    );
    // Until stdin closes (the parent process ended) or Ctrl-C.
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    });
    tokio::select! {
        _ = stdin_closed => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
