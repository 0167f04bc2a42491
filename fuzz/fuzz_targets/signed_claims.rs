//! Structured header and claims (`arbitrary`) → a correctly signed token → `Verifier::verify`,
//! judged by an oracle computed from the structure.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tower_jwt_auth_fuzz::signed_claims(data));
