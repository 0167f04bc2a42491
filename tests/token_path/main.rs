//! The token path, end to end through the public API: every rule (`token_path`), key loading
//! (`keys`), the Wycheproof vectors, property tests, the header memo, the fuzz corpora replayed,
//! token issuing and the verification cache.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
// The harness the cargo-fuzz targets use, for `fuzz_corpus` (at the root, as in the fuzz crate).
#[path = "../../fuzz/src/harness.rs"]
#[allow(dead_code, unreachable_pub)]
mod harness;
#[path = "../../fuzz/src/signed_claims/mod.rs"]
#[allow(dead_code, unreachable_pub)]
mod signed_claims;

mod fuzz_corpus;
mod header_memo;
mod issuer;
mod keys;
mod properties;
mod smoke;
mod token_path;
mod verify_cache;
mod wycheproof;
