//! Replays every committed fuzz corpus input (fuzz/corpus/*) through the same harness the
//! cargo-fuzz targets use, so a stable `cargo test` covers what fuzzing found.
#![allow(clippy::unwrap_used)]

#[path = "../fuzz/src/harness.rs"]
#[allow(dead_code, unreachable_pub)]
mod harness;

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "fuzz", "corpus", target]
        .iter()
        .collect();
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn verify_token_corpus_replays() {
    let inputs = inputs("verify_token");
    assert!(inputs.len() >= 40, "seed corpus went missing");
    for (name, data) in &inputs {
        harness::verify_token(data);
        // The named seeds keep their meaning: valid ones verify, the rest are rejected.
        let verdict = harness::verifier().verify(&String::from_utf8_lossy(data));
        if name.starts_with("valid_") {
            assert!(verdict.is_ok(), "{name}: {verdict:?}");
        } else if !name.chars().all(|c| c.is_ascii_hexdigit()) {
            assert!(verdict.is_err(), "{name} was accepted");
        }
    }
}

#[test]
fn jwks_document_corpus_replays() {
    let inputs = inputs("jwks_document");
    assert!(inputs.len() >= 20, "seed corpus went missing");
    for (name, data) in &inputs {
        harness::jwks_document(data);
        let loaded = tower_jwt_auth::KeySet::from_jwks(data);
        match name.as_str() {
            "public" | "oct" | "single_rsa2048" | "single_p256" | "single_p384"
            | "single_ed25519" => {
                assert!(loaded.is_ok(), "{name}: {loaded:?}")
            }
            "mixed" | "duplicate_kid" | "private" | "off_curve" | "duplicate_member"
            | "not_array" | "empty" => assert!(loaded.is_err(), "{name} loaded"),
            _ => {}
        }
    }
}
