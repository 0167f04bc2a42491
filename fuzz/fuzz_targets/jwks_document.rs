//! Bytes -> `KeySet::from_jwks`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tower_jwt_auth_fuzz::jwks_document(data));
