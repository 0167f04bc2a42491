//! Demo keys and tokens shared by the examples (included with `#[path]`, so not an example of
//! its own): a fresh random HS256 secret per start, and tokens valid for an hour.

use std::error::Error;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use tower_jwt_auth::{Algorithm, KeySet, TokenSigner, Verifier};

/// The issuer of the demo tokens.
pub const ISSUER: &str = "https://auth.example";
/// The audience of the demo tokens.
pub const AUDIENCE: &str = "api";

/// A verifier and a signer sharing a fresh random HS256 secret.
///
/// # Errors
///
/// When the operating system's random source fails.
pub fn keys() -> Result<(Verifier, TokenSigner), Box<dyn Error + Send + Sync>> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|err| format!("no randomness: {err}"))?;
    let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, &secret)?)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()?;
    Ok((verifier, TokenSigner::hmac(Algorithm::HS256, &secret)?))
}

/// A token for `sub` with these roles and space-delimited scopes, valid for an hour.
///
/// # Errors
///
/// When signing fails.
pub fn token(
    signer: &TokenSigner,
    sub: &str,
    roles: &[&str],
    scope: &str,
) -> Result<String, Box<dyn Error + Send + Sync>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    Ok(signer.sign(&json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "jti": format!("{sub}-{now}"),
        "iat": now, "exp": now + 3600, "roles": roles, "scope": scope,
    }))?)
}
