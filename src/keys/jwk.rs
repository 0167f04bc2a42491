//! JSON Web Keys (RFC 7517) into key material bound to one algorithm.
//!
//! A key the verifier cannot use (`use` other than `sig`, `key_ops` without `verify`, an
//! unsupported `kty`, curve or `alg`, no `alg` where the key type does not imply one) is
//! skipped and recorded. A key that is broken or dangerous (private parameters, an `alg` that
//! contradicts the key, bad encoding, a weak key) fails the whole load.
//!
//! ```
//! use tower_jwt_auth::{Algorithm, KeySet};
//!
//! let jwks = r#"{"keys": [
//!   {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
//!   {"kty": "RSA", "use": "enc", "kid": "for-encryption", "n": "AQAB", "e": "AQAB"}
//! ]}"#;
//! let keys = KeySet::from_jwks(jwks)?;
//! assert_eq!(keys.algorithm(Some("ed")), Some(Algorithm::EdDSA));
//! assert_eq!(keys.skipped()[0].kid(), Some("for-encryption"));
//! # Ok::<(), tower_jwt_auth::ConfigError>(())
//! ```

use base64::Engine;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::algorithm::{Algorithm, Family};
use crate::backend::Material;
use crate::encoding::BASE64URL;
use crate::error::ConfigError;
use crate::keys;
use crate::keys::der::strip_leading_zeros;

/// One JWK as it appears on the wire. Duplicate known members fail deserialisation.
#[derive(Deserialize)]
pub(crate) struct RawJwk {
    kty: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    kid: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    k: Option<String>,
    d: Option<IgnoredAny>,
    p: Option<IgnoredAny>,
    q: Option<IgnoredAny>,
    dp: Option<IgnoredAny>,
    dq: Option<IgnoredAny>,
    qi: Option<IgnoredAny>,
    oth: Option<IgnoredAny>,
}

/// A JWK Set document.
#[derive(Deserialize)]
pub(crate) struct RawJwks {
    pub(crate) keys: Vec<RawJwk>,
}

/// What a JWK turned into.
pub(crate) enum Parsed {
    Key {
        kid: Option<String>,
        alg: Algorithm,
        material: Material,
    },
    Skipped {
        kid: Option<String>,
        reason: &'static str,
    },
}

impl RawJwk {
    pub(crate) fn is_symmetric(&self) -> bool {
        self.kty.as_deref() == Some("oct")
    }

    pub(crate) fn is_asymmetric(&self) -> bool {
        matches!(self.kty.as_deref(), Some("RSA" | "EC" | "OKP"))
    }

    pub(crate) fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether any private parameter (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`) is present.
    pub(crate) fn has_private_members(&self) -> bool {
        [
            &self.d, &self.p, &self.q, &self.dp, &self.dq, &self.qi, &self.oth,
        ]
        .iter()
        .any(|member| member.is_some())
    }

    /// Turns the JWK into material bound to one algorithm, or says why it was skipped.
    /// `rsa_default` binds RSA keys that carry no `alg`.
    pub(crate) fn parse(self, rsa_default: Option<Algorithm>) -> Result<Parsed, ConfigError> {
        let kty = self.kty.as_deref().ok_or_else(|| invalid("missing kty"))?;
        if self.has_private_members() {
            return Err(ConfigError::PrivateKeyMaterial);
        }
        let skip = |reason| {
            Ok(Parsed::Skipped {
                kid: self.kid.clone(),
                reason,
            })
        };
        if self.usage.as_deref().is_some_and(|usage| usage != "sig") {
            return skip("use is not sig");
        }
        if let Some(ops) = &self.key_ops
            && !ops.iter().any(|op| op == "verify")
        {
            return skip("key_ops does not include verify");
        }
        // A named algorithm this crate does not implement (ES512, RSA-OAEP, A256GCM...) makes
        // the key unusable here, not invalid.
        let named = match self.alg.as_deref() {
            None => None,
            Some(name) => match Algorithm::from_name(name) {
                Some(alg) => Some(alg),
                None => return skip("unsupported alg"),
            },
        };
        let (alg, material) = match kty {
            "RSA" => {
                let Some(alg) = named.or(rsa_default) else {
                    return skip("rsa key without alg");
                };
                require_family(alg, Family::Rsa)?;
                let n = field(&self.n, "n")?;
                let e = field(&self.e, "e")?;
                let n = strip_leading_zeros(&n).to_vec();
                let e = strip_leading_zeros(&e).to_vec();
                keys::rsa::check_public_key(&n, &e)?;
                (alg, Material::Rsa { n, e })
            }
            "EC" => {
                let (implied, size) = match self.crv.as_deref() {
                    Some("P-256") => (Algorithm::ES256, 32),
                    Some("P-384") => (Algorithm::ES384, 48),
                    Some(_) => return skip("unsupported curve"),
                    None => return Err(invalid("ec key without crv")),
                };
                let alg = bound(named, implied)?;
                let x = field(&self.x, "x")?;
                let y = field(&self.y, "y")?;
                if x.len() != size || y.len() != size {
                    return Err(ConfigError::InvalidKey(
                        "ec coordinates have the wrong length",
                    ));
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                (alg, Material::Ec(point))
            }
            "OKP" => {
                match self.crv.as_deref() {
                    Some("Ed25519") => {}
                    Some(_) => return skip("unsupported curve"),
                    None => return Err(invalid("okp key without crv")),
                }
                let alg = bound(named, Algorithm::EdDSA)?;
                let x = field(&self.x, "x")?;
                if x.len() != 32 {
                    return Err(ConfigError::InvalidKey("ed25519 key must be 32 bytes"));
                }
                (alg, Material::Ed(x))
            }
            "oct" => {
                let Some(alg) = named else {
                    return skip("symmetric key without alg");
                };
                require_family(alg, Family::Hmac)?;
                let secret = zeroize::Zeroizing::new(field(&self.k, "k")?);
                keys::check_hmac_secret(alg, &secret)?;
                (alg, Material::Secret(secret))
            }
            _ => return skip("unsupported kty"),
        };
        Ok(Parsed::Key {
            kid: self.kid,
            alg,
            material,
        })
    }
}

fn invalid(what: &str) -> ConfigError {
    ConfigError::InvalidJwk(what.to_owned())
}

fn field(value: &Option<String>, name: &'static str) -> Result<Vec<u8>, ConfigError> {
    let value = value
        .as_deref()
        .ok_or_else(|| invalid(&format!("missing {name}")))?;
    BASE64URL
        .decode(value)
        .map_err(|_| invalid(&format!("{name} is not unpadded base64url")))
}

fn require_family(alg: Algorithm, family: Family) -> Result<(), ConfigError> {
    if alg.family() == family {
        Ok(())
    } else {
        Err(ConfigError::KeyAlgorithmMismatch(
            "alg does not fit the key type",
        ))
    }
}

/// The algorithm a key with an implied algorithm is bound to: `alg`, if given, must agree.
fn bound(named: Option<Algorithm>, implied: Algorithm) -> Result<Algorithm, ConfigError> {
    match named {
        Some(alg) if alg != implied => Err(ConfigError::KeyAlgorithmMismatch(
            "alg does not fit the key's curve",
        )),
        _ => Ok(implied),
    }
}
