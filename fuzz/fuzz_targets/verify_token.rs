//! Bytes -> `Verifier::verify` against fixed keys of several algorithms.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tower_jwt_auth_fuzz::verify_token(data));
