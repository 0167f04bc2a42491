//! Strict, fast JWT bearer authentication for tower services (axum, tonic, hyper).
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
//! # Where things are
//!
//! Every public item has exactly one path. The token path, which everything else builds on, is
//! at the crate root; each middleware and each optional part is a module of its own, and its
//! items are found only there (as in tower-http).
//!
//! - **The token path** (root): a [`KeySet`] holds verification keys by `kid`, each bound to
//!   exactly one [`Algorithm`]; a [`Verifier`] checks a compact JWS access token against it
//!   and returns its [`Claims`], or an [`AuthError`] whose [`ErrorKind`] says which rule the
//!   token broke. [`TokenSigner`] mints tokens with the same key types;
//!   [`normalize_username`][normalize-username] is the one username form the router and the
//!   limiter share, and [`username_skeleton`][username-skeleton] tells look-alike names apart
//!   for user stores.
//! - **The layers**: [`bearer`] (`BearerAuthLayer`: verifies the bearer token of each request
//!   and puts its claims into the request extensions) and [`require`] (`RequireScopeLayer`,
//!   `RequireRoleLayer`: authorise). They are generic over request and response bodies and work
//!   unchanged under axum, tonic and hyper; [`response`] describes their rejections (RFC 6750,
//!   or gRPC's trailers-only form) and the hook that replaces them. With a [`revocation`]
//!   store, `BearerAuth` also rejects revoked tokens and sessions. With the `axum` feature,
//!   handlers take `Claims`, `Option<Claims>` or `Claims<YourClaims>` ([`axum`][axum-mod]).
//! - **Logins**: [`ratelimit`][ratelimit-mod] (`RateLimitLoginLayer`: failed logins limited per
//!   client and per account, before any hashing), [`password`][password-mod] (argon2id
//!   `PasswordHasher` on threads of its own), [`issuer`] (`TokenIssuer`: RFC 9068 access tokens
//!   and the JWKS that verifies them), and [`router`][router-mod] (`AuthRouter`: an axum login
//!   router with the OAuth2 password and refresh grants, rotation with reuse detection, RFC 7009
//!   revocation, logout and registration, for first-party clients). `cargo run --example
//!   server` shows all of it.
//! - **State**: [`store`] (what the store traits share, and what a layer does when its store
//!   fails) and, for several instances, [`redis`][redis-mod] (feature `redis`).
//! - **Keys from elsewhere**: [`remote`][remote-mod] (feature `remote-jwks`: an issuer's JWKS, or
//!   OIDC discovery, fetched, cached and refreshed, for tokens that Keycloak, Auth0 or Entra ID
//!   issue); [`Verifier::by_issuer`] accepts the tokens of several issuers, each with its own
//!   keys and policy. [`testing`][testing-mod] (feature `testing`) is a loopback issuer for
//!   your own tests.
//! - **Where users meet it**: [`discovery`] (RFC 9728 protected-resource metadata, and the
//!   challenge that points at it; the router serves RFC 8414 metadata) and
//!   [`openapi`][openapi-mod] (feature `openapi`: OpenAPI 3.1 security derived from the layers,
//!   and the router's routes, for Swagger UI's "Authorize" button).
//! - **Observability**: [`telemetry`] lists every event target, counter name and label.
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
//!   for byte. After a signature verified, the outcome of the header rules (which key, which
//!   algorithm) is remembered for that verifier, key set and exact header bytes, in a small
//!   per-thread table (four entries, headers up to 256 bytes); the next token with the same
//!   header skips the header parse, never the signature.
//! - **Verified tokens can be remembered (opt-in).** [`VerifierBuilder::cache`] keeps the
//!   claims of verified tokens by their exact bytes, so a token presented again skips the
//!   signature check (most of an asymmetric verification); the claims are validated again on
//!   every hit, entries end at `exp` and belong to one key set.
//! - **[`KeySet::verify_jws`]** exposes steps 1 to 4 alone for payloads that are not JWT claims
//!   (and runs the Wycheproof JWS vectors).
//!
//! # Features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `aws-lc-rs` | yes | signature primitives from aws-lc-rs |
//! | `rust-crypto` | no | signature primitives from the pure-Rust RustCrypto crates; takes precedence when both are on (use `default-features = false` to avoid compiling aws-lc) |
//! | `axum` | yes | `Claims` extractors for axum handlers ([`axum`][axum-mod]; pulls in `axum-core` only) |
//! | `router` | yes | [`router`][router-mod] (`AuthRouter`, in-memory user and refresh stores) and [`password`][password-mod] (`PasswordHasher`); pulls in axum, tokio and argon2 |
//! | `rate-limit` | yes (through `router`) | [`ratelimit`][ratelimit-mod] (`RateLimitLoginLayer` and its in-memory limiter store) and [`normalize_username`][normalize-username] / [`username_skeleton`][username-skeleton]; no framework needed (tokio's runtime handle only, to finish giving back an abandoned attempt to a store that answers later) |
//! | `redis` | no | [`redis`][redis-mod] stores (refresh families, revocation, login limits) shared by several instances; pulls in the `redis` crate, needs Redis 6.2+ |
//! | `remote-jwks` | no | [`remote`][remote-mod] (`RemoteJwks`): an issuer's keys from a JWKS URL or OIDC / RFC 8414 discovery, cached and refreshed; pulls in hyper's client, rustls (aws-lc-rs provider) and tokio |
//! | `testing` | no | [`testing`][testing-mod] (`TestIssuer`): a loopback OIDC issuer that mints tokens, for testing protected apps (implies `remote-jwks`) |
//! | `smtp` | yes | [`mail::SmtpMailer`][smtp-mailer]: reset and verification mail over SMTP with TLS (lettre, rustls); the `Mailer` trait and the development `LogMailer` come with `router` |
//! | `bcrypt` | no | `PasswordHasher` verifies legacy `$2b$` bcrypt hashes (as passlib writes them) and asks for a re-hash |
//! | `openapi` | yes | [`openapi`][openapi-mod]: OpenAPI 3.1 documents on utoipa: security requirements derived from the layers, and with `router` the router's routes (`AuthRouter::openapi`) |
//! | `metrics` | yes | counters through the `metrics` facade (see [`telemetry`]); a no-op until the application installs a recorder. The `tracing` events do not depend on it |
//!
//! Exactly one backend is always active; a build with neither does not compile.
//! [`crypto_backend`] names the one in use. Issuing (`TokenSigner`, `TokenIssuer`) needs no
//! feature beyond the backend.
//!
#![cfg_attr(feature = "router", doc = "[router-mod]: crate::router")]
#![cfg_attr(not(feature = "router"), doc = "[router-mod]: crate#features")]
#![cfg_attr(feature = "router", doc = "[password-mod]: crate::password")]
#![cfg_attr(not(feature = "router"), doc = "[password-mod]: crate#features")]
#![cfg_attr(feature = "rate-limit", doc = "[ratelimit-mod]: crate::ratelimit")]
#![cfg_attr(not(feature = "rate-limit"), doc = "[ratelimit-mod]: crate#features")]
#![cfg_attr(
    feature = "rate-limit",
    doc = "[normalize-username]: crate::normalize_username"
)]
#![cfg_attr(
    not(feature = "rate-limit"),
    doc = "[normalize-username]: crate#features"
)]
#![cfg_attr(
    feature = "rate-limit",
    doc = "[username-skeleton]: crate::username_skeleton"
)]
#![cfg_attr(
    not(feature = "rate-limit"),
    doc = "[username-skeleton]: crate#features"
)]
#![cfg_attr(feature = "axum", doc = "[axum-mod]: crate::axum")]
#![cfg_attr(not(feature = "axum"), doc = "[axum-mod]: crate#features")]
#![cfg_attr(feature = "redis", doc = "[redis-mod]: crate::redis")]
#![cfg_attr(not(feature = "redis"), doc = "[redis-mod]: crate#features")]
#![cfg_attr(feature = "remote-jwks", doc = "[remote-mod]: crate::remote")]
#![cfg_attr(not(feature = "remote-jwks"), doc = "[remote-mod]: crate#features")]
#![cfg_attr(feature = "openapi", doc = "[openapi-mod]: crate::openapi")]
#![cfg_attr(not(feature = "openapi"), doc = "[openapi-mod]: crate#features")]
#![cfg_attr(feature = "smtp", doc = "[smtp-mailer]: crate::mail::SmtpMailer")]
#![cfg_attr(not(feature = "smtp"), doc = "[smtp-mailer]: crate#features")]
#![cfg_attr(feature = "testing", doc = "[testing-mod]: crate::testing")]
#![cfg_attr(not(feature = "testing"), doc = "[testing-mod]: crate#features")]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The token path: private modules, their types at the root.
mod algorithm;
mod backend;
mod claims;
mod encoding;
mod error;
#[cfg(test)]
mod fixtures;
mod ids;
mod json;
mod jws;
mod keys;
#[cfg(feature = "rate-limit")]
mod ledger;
mod pass;
mod service;
mod signer;
#[cfg(feature = "rate-limit")]
mod username;
mod verifier;

// Each middleware and each optional part: a public module, its items only there.
#[cfg(feature = "axum")]
pub mod axum;
pub mod bearer;
pub mod discovery;
pub mod issuer;
#[cfg(feature = "router")]
pub mod mail;
#[cfg(feature = "openapi")]
pub mod openapi;
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
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod sql;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use algorithm::Algorithm;
pub use backend::crypto_backend;
pub use claims::{Claims, NumericDate, Scopes};
pub use error::{AuthError, ConfigError, ErrorKind, SignError};
pub use jws::{DEFAULT_MAX_TOKEN_LEN, VerifiedJws};
pub use keys::{KeySet, KeySetBuilder, SkippedKey};
pub use signer::TokenSigner;
#[cfg(feature = "rate-limit")]
pub use username::{MAX_USERNAME_CHARS, normalize_username, username_skeleton};
pub use verifier::{
    ACCESS_TOKEN_TYPE, CacheStats, DEFAULT_LEEWAY, KeySource, MAX_CACHE_CAPACITY,
    MAX_TOKEN_LEN_LIMIT, Verifier, VerifierBuilder,
};
