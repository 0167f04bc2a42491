//! Keys from elsewhere: `RemoteJwks` against scripted issuers, and the `TestIssuer` kit driving
//! the `external_issuer` example's app.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

#[cfg(feature = "remote-jwks")]
mod remote_jwks;
#[cfg(all(feature = "testing", feature = "axum"))]
mod test_issuer;
#[cfg(feature = "testing")]
mod test_issuer_login;
