//! Fuzz harness for tower-jwt-auth. The checks live in `harness.rs` and `signed_claims/`,
//! which the main crate's `tests/token_path/fuzz_corpus.rs` also includes, so a plain `cargo test`
//! replays the committed corpus.

mod harness;
mod signed_claims;

pub use harness::*;
pub use signed_claims::*;
