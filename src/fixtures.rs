//! Test fixtures shared by the unit tests: the key files under `tests/data/keys/`.

/// Reads a file of `tests/data/keys/`.
pub(crate) fn key_file(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}
