//! Wycheproof JSON Web Signature and JSON Web Key vectors (C2SP/wycheproof, see
//! `tests/data/wycheproof/SOURCE.md`) run through the public API: keys from
//! [`KeySet::from_jwk`] / [`KeySet::from_jwks`], tokens through [`KeySet::verify_jws`].
//!
//! Every verdict must agree with Wycheproof except the named cases in [`JWS_EXCEPTIONS`], and
//! each of those must still disagree, so the list stays exact.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::Value;
use tower_jwt_auth::{Algorithm, ConfigError, ErrorKind, KeySet};

/// Known disagreements with the Wycheproof labels of `json_web_signature_test.json`, each with
/// the reason. Nothing else may disagree, and each of these must.
const JWS_EXCEPTIONS: &[(u64, &str)] = &[
    (
        346,
        "key labelled PS256 used for a PS384 token: the crate pins the algorithm to the key",
    ),
    (
        347,
        "ES512 on P-521 (key alg ES521): unsupported by jsonwebtoken, the key set does not build",
    ),
    (
        350,
        "key labelled PS256 used for a PS384 token: the crate pins the algorithm to the key",
    ),
    (
        351,
        "ES512 on P-521 (key alg ES521): unsupported by jsonwebtoken, the key set does not build",
    ),
    (
        367,
        "data anomaly: byte-identical to the valid tcId 357 but labelled invalid",
    ),
    (
        370,
        "data anomaly: byte-identical to the valid tcId 357 but labelled invalid",
    ),
    (
        372,
        "data anomaly: contains '?' (not base64url) yet labelled valid",
    ),
    (
        373,
        "data anomaly: contains '?' (not base64url) yet labelled valid",
    ),
];

fn load(name: &str) -> Value {
    let path = format!(
        "{}/tests/data/wycheproof/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    serde_json::from_str(&text).unwrap()
}

fn groups(file: &Value) -> &[Value] {
    file["testGroups"].as_array().unwrap()
}

fn tests(group: &Value) -> &[Value] {
    group["tests"].as_array().unwrap()
}

fn tc_id(case: &Value) -> u64 {
    case["tcId"].as_u64().unwrap()
}

/// Wycheproof's label: `true` for `valid`, `false` for `invalid` (there is no `acceptable`).
fn expected_valid(case: &Value) -> bool {
    match case["result"].as_str().unwrap() {
        "valid" => true,
        "invalid" => false,
        other => panic!("tcId {}: unexpected result {other:?}", tc_id(case)),
    }
}

/// The `jws` member as the text a compact verifier is handed: the compact string itself, or the
/// JSON text of a JSON-serialised JWS.
fn jws_text(case: &Value) -> String {
    match &case["jws"] {
        Value::String(compact) => compact.clone(),
        json => json.to_string(),
    }
}

/// Verifies `jws` with `keys`: `true` when it verifies, `false` when the key set did not build or
/// the token is rejected.
fn verdict(keys: &Result<KeySet, ConfigError>, jws: &str) -> bool {
    keys.as_ref().is_ok_and(|keys| match keys.verify_jws(jws) {
        Ok(verified) => {
            // A verified JWS is always under the algorithm of a key in the set.
            assert!(keys.keys().any(|(_, alg)| alg == verified.algorithm()));
            true
        }
        Err(_) => false,
    })
}

fn label(valid: bool) -> &'static str {
    if valid { "valid" } else { "invalid" }
}

/// The key of a `json_web_signature_test.json` group: its public JWK, or for symmetric keys the
/// private JWK (which then holds only `k`).
fn jws_group_keys(group: &Value) -> Result<KeySet, ConfigError> {
    let jwk = group
        .get("public")
        .or_else(|| group.get("private"))
        .unwrap();
    KeySet::from_jwk(jwk.to_string())
}

/// One case's outcome, for the summary.
struct Outcome {
    tc_id: u64,
    comment: String,
    expected: bool,
    actual: bool,
    key_error: Option<ConfigError>,
}

fn summary(outcomes: &[Outcome]) -> String {
    let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for o in outcomes {
        let actual = if o.actual { "accepted" } else { "rejected" };
        *counts.entry((label(o.expected), actual)).or_default() += 1;
    }
    let mut out = format!("{} cases:", outcomes.len());
    for ((expected, actual), n) in counts {
        let _ = write!(out, " {expected}/{actual}={n}");
    }
    out
}

#[test]
fn json_web_signature_vectors() {
    let file = load("json_web_signature_test.json");
    let exceptions: BTreeMap<u64, &str> = JWS_EXCEPTIONS.iter().copied().collect();
    assert_eq!(exceptions.len(), JWS_EXCEPTIONS.len(), "repeated tcId");

    let mut outcomes = Vec::new();
    for group in groups(&file) {
        let keys = jws_group_keys(group);
        for case in tests(group) {
            let jws = jws_text(case);
            outcomes.push(Outcome {
                tc_id: tc_id(case),
                comment: case["comment"].as_str().unwrap_or_default().to_owned(),
                expected: expected_valid(case),
                actual: verdict(&keys, &jws),
                key_error: keys.as_ref().err().cloned(),
            });
        }
    }

    let mut failures = Vec::new();
    for o in &outcomes {
        let disagrees = o.expected != o.actual;
        match (disagrees, exceptions.get(&o.tc_id)) {
            (true, None) => failures.push(format!(
                "tcId {} ({}): wycheproof says {}, the crate {} it{}",
                o.tc_id,
                o.comment,
                label(o.expected),
                if o.actual { "accepts" } else { "rejects" },
                o.key_error
                    .as_ref()
                    .map(|err| format!(" (key set: {err})"))
                    .unwrap_or_default(),
            )),
            (false, Some(reason)) => failures.push(format!(
                "tcId {} ({}) is listed as an exception ({reason}) but now agrees with \
                 wycheproof ({}): remove it from JWS_EXCEPTIONS",
                o.tc_id,
                o.comment,
                label(o.expected),
            )),
            _ => {}
        }
    }
    let seen: BTreeSet<u64> = outcomes.iter().map(|o| o.tc_id).collect();
    for tc_id in exceptions.keys().filter(|id| !seen.contains(id)) {
        failures.push(format!("exception tcId {tc_id} is not in the file"));
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        summary(&outcomes),
        failures.join("\n")
    );
    assert_eq!(seen.len(), outcomes.len(), "tcIds are unique");
    assert_eq!(
        outcomes.len() as u64,
        file["numberOfTests"].as_u64().unwrap(),
        "every case of the file ran"
    );
}

/// The exception list is exact and its reasons hold: the anomalies are what SOURCE.md says they
/// are, and the P-521 / PS256-for-PS384 cases are exactly the ones of those groups.
#[test]
fn json_web_signature_exceptions_are_what_they_claim() {
    let file = load("json_web_signature_test.json");
    let mut by_id = BTreeMap::new();
    let mut p521 = BTreeSet::new();
    let mut ps256_key_other_alg = BTreeSet::new();
    for group in groups(&file) {
        let key = group
            .get("public")
            .or_else(|| group.get("private"))
            .unwrap();
        for case in tests(group) {
            let id = tc_id(case);
            by_id.insert(id, (jws_text(case), expected_valid(case)));
            if key["crv"] == "P-521" || key["alg"] == "ES521" {
                p521.insert(id);
            }
            let header = jws_header(case);
            if key["alg"] == "PS256" && header.is_some_and(|h| h["alg"] != "PS256") {
                ps256_key_other_alg.insert(id);
            }
        }
    }
    assert_eq!(p521, BTreeSet::from([347, 351]), "the ES512 / P-521 cases");
    assert_eq!(
        ps256_key_other_alg,
        BTreeSet::from([346, 350]),
        "the cases whose PS256 key signs another algorithm"
    );
    for id in [346, 347, 350, 351] {
        assert!(by_id[&id].1, "tcId {id} is labelled valid");
    }
    // 367 and 370 are the very bytes of the valid 357.
    let (valid_357, label_357) = &by_id[&357];
    assert!(*label_357);
    for id in [367, 370] {
        assert_eq!(&by_id[&id].0, valid_357, "tcId {id}");
        assert!(!by_id[&id].1, "tcId {id} is labelled invalid");
    }
    // 372 and 373 carry a '?', which is not in the base64url alphabet.
    for id in [372, 373] {
        assert!(by_id[&id].0.contains('?'), "tcId {id}");
        assert!(by_id[&id].1, "tcId {id} is labelled valid");
    }
    // The PS256-labelled key does verify the PS384 token when bound to PS384, so the only
    // reason for the disagreement is the algorithm pinning.
    for group in groups(&file) {
        let Some(key) = group.get("public") else {
            continue;
        };
        for case in tests(group)
            .iter()
            .filter(|c| [346, 350].contains(&tc_id(c)))
        {
            let mut rebound = key.clone();
            rebound["alg"] = Value::from("PS384");
            let keys = KeySet::from_jwk(rebound.to_string()).unwrap();
            let verified = keys.verify_jws(&jws_text(case)).unwrap();
            assert_eq!(verified.algorithm(), Algorithm::PS384);
            let as_labelled = KeySet::from_jwk(key.to_string()).unwrap();
            assert_eq!(as_labelled.algorithm(None), Some(Algorithm::PS256));
            assert_eq!(
                as_labelled.verify_jws(&jws_text(case)).unwrap_err().kind(),
                ErrorKind::Algorithm
            );
        }
    }
    // Each exception disagrees for its stated reason.
    let mut reasons_checked = BTreeSet::new();
    for group in groups(&file) {
        let keys = jws_group_keys(group);
        for case in tests(group) {
            let id = tc_id(case);
            let verify = || keys.as_ref().unwrap().verify_jws(&jws_text(case));
            match id {
                347 | 351 => assert!(
                    matches!(&keys, Err(ConfigError::InvalidJwk(why)) if why.contains("unsupported")),
                    "tcId {id}: {keys:?}"
                ),
                367 | 370 => assert!(verify().is_ok(), "tcId {id}"),
                372 | 373 => assert_eq!(
                    verify().unwrap_err().kind(),
                    ErrorKind::Malformed,
                    "tcId {id}"
                ),
                _ => continue,
            }
            reasons_checked.insert(id);
        }
    }
    assert_eq!(reasons_checked.len(), 6, "{reasons_checked:?}");
}

/// The decoded JOSE header of a compact case, if it has one that decodes.
fn jws_header(case: &Value) -> Option<Value> {
    use base64::Engine;
    let compact = case["jws"].as_str()?;
    let header = compact.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What a load-time rejection is for, and the check that the error is that one.
type LoadError = (&'static str, fn(&ConfigError) -> bool);

/// How a `json_web_key_test.json` case must be rejected when the key set is refused at load
/// time, by tcId.
fn expected_load_error(tc_id: u64) -> Option<LoadError> {
    fn weak(err: &ConfigError, alg: Algorithm, min: usize, given: usize) -> bool {
        *err == ConfigError::WeakHmacSecret {
            algorithm: alg,
            min_len: min,
            len: given,
        }
    }
    Some(match tc_id {
        1 => ("mixed symmetric and asymmetric keys", |e| {
            *e == ConfigError::MixedKeySet
        }),
        // The duplicate `kid` is never reached: the second key's `k` ends in 'e', whose unused
        // trailing bits are not zero, and is refused first. See
        // `duplicate_kid_set_is_refused_for_the_duplicate` for the same set with a canonical `k`.
        4 => (
            "duplicate kid: the second key's k is non-canonical base64url",
            |e| matches!(e, ConfigError::InvalidJwk(why) if why.contains("k is not unpadded base64url")),
        ),
        6 => ("use=enc (RSA1_5): skipped, nothing left", |e| {
            *e == ConfigError::EmptyKeySet
        }),
        7 => (
            "ROCA modulus",
            |e| matches!(e, ConfigError::InvalidKey(why) if why.contains("ROCA")),
        ),
        8 => ("RSA 1024", |e| {
            matches!(e, ConfigError::RsaKeySize { bits: 1024, .. })
        }),
        9 => (
            "RSA exponent 1",
            |e| matches!(e, ConfigError::InvalidKey(why) if why.contains("exponent")),
        ),
        10 => ("short HS256 key", |e| weak(e, Algorithm::HS256, 32, 31)),
        11 => ("short HS384 key", |e| weak(e, Algorithm::HS384, 48, 47)),
        12 => ("short HS512 key", |e| weak(e, Algorithm::HS512, 64, 63)),
        16 => ("empty HS256 key", |e| weak(e, Algorithm::HS256, 32, 0)),
        17 => ("empty HS384 key", |e| weak(e, Algorithm::HS384, 48, 0)),
        18 => ("empty HS512 key", |e| weak(e, Algorithm::HS512, 64, 0)),
        19 => ("alg ES521: unsupported, skipped, nothing left", |e| {
            *e == ConfigError::EmptyKeySet
        }),
        20 => ("alg ES224: unsupported, skipped, nothing left", |e| {
            *e == ConfigError::EmptyKeySet
        }),
        21 => ("use=enc: skipped, nothing left", |e| {
            *e == ConfigError::EmptyKeySet
        }),
        22 => ("point not on the curve", |e| {
            matches!(e, ConfigError::InvalidKey(_))
        }),
        23 => ("ES256 key on P-384", |e| {
            matches!(e, ConfigError::KeyAlgorithmMismatch(_))
        }),
        24 => ("EC coordinates with kty RSA and alg ES256", |e| {
            matches!(e, ConfigError::KeyAlgorithmMismatch(_))
        }),
        25 => ("A256GCM key: unsupported alg, skipped, nothing left", |e| {
            *e == ConfigError::EmptyKeySet
        }),
        26 => ("A256KW key: unsupported alg, skipped, nothing left", |e| {
            *e == ConfigError::EmptyKeySet
        }),
        _ => return None,
    })
}

/// The JWK set of a `json_web_key_test.json` group: `public` if present, else `private`
/// (symmetric keys).
fn jwks_group_keys(group: &Value) -> Result<KeySet, ConfigError> {
    let jwks = group
        .get("public")
        .or_else(|| group.get("private"))
        .unwrap();
    KeySet::from_jwks(jwks.to_string())
}

#[test]
fn json_web_key_vectors() {
    let file = load("json_web_key_test.json");
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    for group in groups(&file) {
        let keys = jwks_group_keys(group);
        for case in tests(group) {
            let id = tc_id(case);
            let expected = expected_valid(case);
            let actual = verdict(&keys, &jws_text(case));
            if expected != actual {
                failures.push(format!(
                    "tcId {id} ({}): wycheproof says {}, the crate {} it ({:?})",
                    case["comment"],
                    label(expected),
                    if actual { "accepts" } else { "rejects" },
                    keys.as_ref().err(),
                ));
            }
            match (expected_load_error(id), &keys) {
                (Some((what, _)), Ok(_)) => failures.push(format!(
                    "tcId {id} ({what}): the key set loaded; it must be refused at load time"
                )),
                (Some((what, check)), Err(err)) if !check(err) => failures.push(format!(
                    "tcId {id} ({what}): refused at load time, but with {err:?}"
                )),
                (None, Err(err)) => failures.push(format!(
                    "tcId {id}: the key set was refused ({err:?}) but no load-time error is \
                     expected"
                )),
                _ => {}
            }
            outcomes.push(Outcome {
                tc_id: id,
                comment: String::new(),
                expected,
                actual,
                key_error: keys.as_ref().err().cloned(),
            });
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        summary(&outcomes),
        failures.join("\n")
    );
    assert_eq!(
        outcomes.len() as u64,
        file["numberOfTests"].as_u64().unwrap(),
        "every case of the file ran"
    );
    let ids: BTreeSet<u64> = outcomes.iter().map(|o| o.tc_id).collect();
    assert_eq!(ids.len(), outcomes.len(), "tcIds are unique");
}

/// tcId 4's set is refused for its non-canonical `k` before the duplicate `kid` is reached; with
/// that `k` made canonical (its two unused trailing bits cleared), the same set is refused for
/// the duplicate `kid`, and with distinct kids it loads.
#[test]
fn duplicate_kid_set_is_refused_for_the_duplicate() {
    let file = load("json_web_key_test.json");
    let group = groups(&file)
        .iter()
        .find(|g| tests(g).iter().any(|c| tc_id(c) == 4))
        .unwrap();
    let mut jwks = group["private"].clone();
    let k = jwks["keys"][1]["k"].as_str().unwrap().to_owned();
    assert!(k.ends_with('e'), "{k}");
    // 'e' is 30 = 0b011110: the last two bits are unused in a 43-character segment; 'c' is 28.
    jwks["keys"][1]["k"] = Value::from(format!("{}c", &k[..k.len() - 1]));
    assert_eq!(
        KeySet::from_jwks(jwks.to_string()).unwrap_err(),
        ConfigError::DuplicateKid(Some("kid-aes-sign".to_owned()))
    );
    jwks["keys"][1]["kid"] = Value::from("kid-aes-sign-2");
    let keys = KeySet::from_jwks(jwks.to_string()).unwrap();
    assert_eq!(keys.len(), 2);
    // And the case's token verifies with the first key of that set.
    let case = &tests(group)[0];
    assert!(keys.verify_jws(&jws_text(case)).is_ok());
}
