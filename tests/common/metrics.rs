//! Counters read back from metrics-util's `DebuggingRecorder`, as `name{label=value,…}` → count,
//! and the same shape for the expected side of an assertion.

use std::collections::BTreeMap;

use metrics_util::debugging::{DebugValue, Snapshotter};

/// The crate's counters that moved since the last snapshot.
pub fn counted(snapshotter: &Snapshotter) -> BTreeMap<String, u64> {
    let mut counted = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let DebugValue::Counter(n) = value else {
            panic!("{key:?} is not a counter")
        };
        if n == 0 || !key.name().starts_with("tower_jwt_auth_") {
            continue;
        }
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        counted.insert(format!("{}{{{}}}", key.name(), labels.join(",")), n);
    }
    counted
}

/// `(name, labels, count)` entries in the shape [`counted`] returns.
pub fn series(entries: &[(&str, &str, u64)]) -> BTreeMap<String, u64> {
    entries
        .iter()
        .map(|(name, labels, n)| (format!("{name}{{{labels}}}"), *n))
        .collect()
}
