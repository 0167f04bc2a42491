//! Strict, fast JWT bearer authentication for tower services (axum, tonic, hyper).
//!
//! - **The token path**, which attacker bytes reach first: a [`KeySet`] holds verification
//!   keys by `kid`, each bound to exactly one [`Algorithm`]; a [`Verifier`] checks a compact JWS
//!   access token against it and returns its [`Claims`], or an [`AuthError`] whose
//!   [`ErrorKind`] says which rule the token broke.
//! - **The layers**: [`BearerAuthLayer`] verifies the bearer token of each request and puts its
//!   claims into the request extensions; [`RequireScopeLayer`] and [`RequireRoleLayer`]
//!   authorise. They are generic over request and response bodies and work unchanged under
//!   axum, tonic and hyper; rejections follow RFC 6750, or gRPC's trailers-only form (see
//!   [`response`]). With the `axum` feature, handlers take [`Claims`] or `Option<Claims>`.
//!   With a [`revocation`] store, `BearerAuth` also rejects revoked tokens and sessions.
//! - **Keys from elsewhere** (feature `remote-jwks`): a `remote::RemoteJwks` fetches an issuer's
//!   JWKS (or finds it through OIDC discovery), caches it and keeps it fresh, for tokens that
//!   Keycloak, Auth0, Entra ID or another service issues; [`Verifier::by_issuer`] accepts the
//!   tokens of several issuers, each with its own keys and policy.
//! - **Issuing** (feature `router`): [`TokenIssuer`] signs RFC 9068 access tokens and publishes
//!   its JWKS; [`PasswordHasher`] hashes passwords with argon2id behind a bounded queue; the
//!   [`router`] module's `AuthRouter` is an axum login router (OAuth2 password and refresh
//!   grants with rotation and reuse detection, RFC 7009 revocation, logout, registration) for
//!   first-party clients. `cargo run --example server` shows all of it.
//!
//! ```
//! use tower_jwt_auth::{Algorithm, ErrorKind, KeySet, TokenSigner, Verifier};
//!
//! let secret = b"an hmac secret of at least 32 bytes!";
//! let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, secret)?)
//!     .issuer("https://auth.example")
//!     .audience("api")
//!     .build()?;
//!
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
//! let token = TokenSigner::hmac(Algorithm::HS256, secret)?.sign(&serde_json::json!({
//!     "iss": "https://auth.example", "aud": "api", "sub": "alice", "jti": "8f2c",
//!     "iat": now, "exp": now + 900, "roles": ["admin"], "scope": "items:read",
//! }))?;
//!
//! let claims = verifier.verify(&token)?;
//! assert_eq!(claims.subject(), Some("alice"));
//! assert!(claims.has_role("admin") && claims.has_scope("items:read"));
//!
//! let forged = format!("{}x", &token[..token.len() - 1]);
//! assert!(verifier.verify(&forged).is_err());
//! assert_eq!(verifier.verify("").unwrap_err().kind(), ErrorKind::Malformed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The token path
//!
//! Per token, in this order, stopping at the first failure:
//!
//! 1. **Length** cap (default 8 KiB) before any decoding ([`ErrorKind::TooLong`]).
//! 2. **Structure**: exactly three segments, header and signature non-empty, each canonical
//!    unpadded base64url ([`ErrorKind::Malformed`]).
//! 3. **Header**: a JSON object without duplicate members, parsed once into a typed struct.
//!    `alg` must be on the allow-list and equal to the algorithm of the key selected by `kid`
//!    ([`ErrorKind::Algorithm`], [`ErrorKind::UnknownKey`]); there is no `none`. Unknown `crit`
//!    extensions fail ([`ErrorKind::UnsupportedCritical`]). `jku`, `x5u`, `jwk` and `x5c` are
//!    never used to find a key. `typ` is checked when required ([`ErrorKind::WrongType`]).
//! 4. **Signature** with the key's verifier, built once ([`ErrorKind::InvalidSignature`]).
//! 5. **Claims**: one typed parse, no duplicate members, wrong types fail
//!    ([`ErrorKind::InvalidClaim`]); required claims present (default `exp iat sub iss aud
//!    jti`, [`ErrorKind::MissingClaim`]); `exp`, `nbf`, `iat` against the clock with leeway
//!    (default 30 s); `iss` an exact match; `aud` containing an accepted audience.
//!
//! Errors never carry token bytes: an [`AuthError`] is a kind plus, at most, the name of a
//! registered claim.
//!
//! # Design notes
//!
//! - **Issuer and audience are decisions.** A verifier without an accepted issuer or audience
//!   does not build; accepting any value takes `accept_any_issuer()` / `accept_any_audience()`.
//! - **Scopes are one normalised string.** [`Claims::scopes`] is a [`Scopes`] view over the
//!   `scope` claim (or a joined `scp` array) rather than a list of `String`s: splitting into
//!   strings cost ~5% of a verification. Tokens must follow the RFC 6749 scope-token grammar, and
//!   a token carrying both `scope` and `scp` is refused rather than guessed at.
//! - **Verifiers are built once per key per thread.** `jsonwebtoken`'s `verifier_factory`
//!   returns a verifier that is neither `Send` nor `Sync`, so each thread builds a key's
//!   verifier on first use and keeps it; entries of dropped keys are swept.
//! - **Header outcomes are remembered per thread.** One issuer's tokens share their header byte
//!   for byte; the outcome of the header rules is remembered for (verifier, key set, exact
//!   header bytes), only after a signature verified. See the `jws::memo` module docs.
//! - **Verified tokens can be remembered (opt-in).** [`VerifierBuilder::cache`] keeps the
//!   claims of verified tokens by their exact bytes, so a token presented again skips the
//!   signature check (most of an asymmetric verification); the claims are validated again on
//!   every hit, entries end at `exp` and belong to one key set. See the `verifier::cache`
//!   module docs.
//! - **[`KeySet::verify_jws`]** exposes steps 1 to 4 alone for payloads that are not JWT claims
//!   (and runs the Wycheproof JWS vectors).
//!
//! # Features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `aws-lc-rs` | yes | signature primitives from aws-lc-rs |
//! | `rust-crypto` | no | signature primitives from the pure-Rust RustCrypto crates; takes precedence when both are on (use `default-features = false` to avoid compiling aws-lc) |
//! | `axum` | yes | `Claims` / `Option<Claims>` extractors (pulls in `axum-core` only) |
//! | `router` | yes | [`router::AuthRouter`], [`PasswordHasher`] and the in-memory user and refresh stores (pulls in axum, tokio and argon2) |
//! | `rate-limit` | yes (through `router`) | [`ratelimit::RateLimitLoginLayer`] and its in-memory limiter store; no framework needed |
//! | `redis` | no | [`redis`] stores (refresh families, revocation, login limits) shared by several instances; pulls in the `redis` crate, needs Redis 6.2+ |
//! | `remote-jwks` | no | [`remote::RemoteJwks`]: an issuer's keys from a JWKS URL or OIDC / RFC 8414 discovery, cached and refreshed; pulls in hyper's client, rustls (aws-lc-rs provider) and tokio |
//! | `testing` | no | [`testing::TestIssuer`]: a loopback OIDC issuer that mints tokens, for testing protected apps (implies `remote-jwks`) |
//! | `bcrypt` | no | [`PasswordHasher`] verifies legacy `$2b$` bcrypt hashes (as passlib writes them) and asks for a re-hash |
//! | `metrics` | yes | counters through the `metrics` facade (see [`telemetry`]); a no-op until the application installs a recorder. The `tracing` events do not depend on it |
//!
//! Exactly one backend is always active; a build with neither does not compile.
//! [`crypto_backend`] names the one in use.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod algorithm;
#[cfg(feature = "axum")]
pub mod axum;
mod backend;
pub mod bearer;
mod claims;
mod error;
pub mod issuer;
mod json;
mod jws;
mod keys;
#[cfg(feature = "router")]
pub mod password;
#[cfg(feature = "rate-limit")]
pub mod ratelimit;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "remote-jwks")]
pub mod remote;
pub mod require;
pub mod response;
pub mod revocation;
#[cfg(feature = "router")]
pub mod router;
mod signer;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "rate-limit")]
mod username;
mod verifier;

/// A process-wide id that is never reused: identifies keys, key sets and verifier policies in
/// the per-thread caches, where a reused address could otherwise alias a dropped one.
pub(crate) fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `N` bytes from the OS CSPRNG, base64url without padding: token ids, session ids, refresh
/// tokens.
pub(crate) fn random_b64<const N: usize>() -> Result<String, getrandom::Error> {
    use base64::Engine as _;
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(jws::BASE64URL.encode(bytes))
}

/// Reads a file of `tests/data/keys/` in unit tests.
#[cfg(test)]
pub(crate) fn test_key_file(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

pub use algorithm::Algorithm;
pub use backend::crypto_backend;
pub use bearer::{BearerAuth, BearerAuthLayer, StoreErrorPolicy};
pub use claims::{Claims, NumericDate, Scopes};
pub use error::{AuthError, ConfigError, ErrorKind, SignError};
pub use issuer::{AccessGrant, IssuedToken, TokenIssuer};
pub use jws::{DEFAULT_MAX_TOKEN_LEN, VerifiedJws};
pub use keys::{KeySet, KeySetBuilder, SkippedKey};
#[cfg(feature = "router")]
pub use password::{
    HashingThreads, PasswordError, PasswordHasher, PasswordHasherBuilder, PasswordStats, Verified,
};
pub use require::{RequireRole, RequireRoleLayer, RequireScope, RequireScopeLayer, RoleHierarchy};
pub use signer::TokenSigner;
#[cfg(feature = "rate-limit")]
pub use username::{MAX_USERNAME_CHARS, normalize_username};
pub use verifier::{
    ACCESS_TOKEN_TYPE, CacheStats, DEFAULT_LEEWAY, KeySource, MAX_CACHE_CAPACITY,
    MAX_TOKEN_LEN_LIMIT, Verifier, VerifierBuilder,
};
