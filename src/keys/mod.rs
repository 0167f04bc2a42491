//! [`KeySet`]: verification keys by `kid`, each bound to exactly one algorithm.
//!
//! ```
//! use tower_jwt_auth::{Algorithm, KeySet};
//!
//! let pem = std::fs::read("tests/data/keys/p256.pub.pem")?;
//! let jwks = std::fs::read_to_string("tests/data/keys/public.jwks")?;
//! let keys = KeySet::builder()
//!     .hmac(Some("shared"), Algorithm::HS256, &[42u8; 32])?
//!     .pem(Some("local-ec"), Algorithm::ES256, &pem)?
//!     .jwks(&jwks)?
//!     .build()?;
//! assert_eq!(keys.algorithm(Some("local-ec")), Some(Algorithm::ES256));
//! assert_eq!(keys.algorithm(Some("rsa-1")), Some(Algorithm::RS256));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A key is validated and its verifier prepared when it is added; the request path only looks
//! keys up. A `kid` is only ever a map key, never a path or a query.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::algorithm::{Algorithm, Family};
use crate::backend::{Material, PreparedKey};
use crate::error::{AuthError, ConfigError, ErrorKind};

pub(crate) mod der;
mod jwk;
pub(crate) mod rsa;

/// Up to this many keys, `kid` lookup is a linear scan.
const LINEAR_SCAN_MAX: usize = 8;

/// Verification keys by `kid`, each bound to exactly one algorithm.
///
/// Cheap to clone (one `Arc`). Build it with [`KeySet::builder`] or one of the shortcuts.
///
/// Key selection for a token:
/// - a token with a `kid` uses the key with exactly that `kid`, or is rejected
///   ([`ErrorKind::UnknownKey`]);
/// - a token without a `kid` uses the key registered without one, or the only key of a
///   single-key set, or is rejected.
///
/// The token's `alg` must then equal the key's algorithm: a key never verifies under another
/// algorithm, not even one of the same family.
#[derive(Clone)]
pub struct KeySet {
    inner: Arc<Inner>,
}

struct Inner {
    id: u64,
    keys: Vec<Arc<PreparedKey>>,
    by_kid: HashMap<Box<str>, usize>,
    kidless: Option<usize>,
    skipped: Vec<SkippedKey>,
}

/// A JWK that was present in a JWKS document but is not usable for verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedKey {
    kid: Option<String>,
    reason: &'static str,
}

impl SkippedKey {
    /// The key's `kid`, if it had one.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Why it was skipped (for example `"use is not sig"`).
    #[must_use]
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl KeySet {
    /// Starts an empty key set.
    pub fn builder() -> KeySetBuilder {
        KeySetBuilder::default()
    }

    /// A set of one HMAC key without a `kid`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::WeakHmacSecret`] when the secret is shorter than the hash output (32, 48 or
    /// 64 bytes), [`ConfigError::KeyAlgorithmMismatch`] when `alg` is not an HMAC algorithm.
    pub fn hmac(alg: Algorithm, secret: &[u8]) -> Result<Self, ConfigError> {
        Self::builder().hmac(None, alg, secret)?.build()
    }

    /// A set of one public key without a `kid`, from PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`).
    ///
    /// # Errors
    ///
    /// See [`KeySetBuilder::pem`].
    pub fn from_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, ConfigError> {
        Self::builder().pem(None, alg, pem)?.build()
    }

    /// A set of one key from a JWK document.
    ///
    /// # Errors
    ///
    /// See [`KeySetBuilder::jwk`].
    pub fn from_jwk(json: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        Self::builder().jwk(json)?.build()
    }

    /// The usable keys of a JWKS document.
    ///
    /// # Errors
    ///
    /// See [`KeySetBuilder::jwks`]; also [`ConfigError::EmptyKeySet`] when no key is usable.
    pub fn from_jwks(json: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        Self::builder().jwks(json)?.build()
    }

    /// The number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.keys.len()
    }

    /// Whether the set has no key (never true for a built set).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inner.keys.is_empty()
    }

    /// The algorithm of the key a token with this `kid` (or none) would use.
    #[must_use]
    pub fn algorithm(&self, kid: Option<&str>) -> Option<Algorithm> {
        self.select_index(kid).ok().map(|index| self.key(index).alg)
    }

    /// The `kid` and algorithm of every key.
    pub fn keys(&self) -> impl Iterator<Item = (Option<&str>, Algorithm)> + '_ {
        self.inner
            .keys
            .iter()
            .map(|key| (key.kid.as_deref(), key.alg))
    }

    /// JWKs that were present but not usable, with the reason.
    #[must_use]
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.inner.skipped
    }

    /// A bit set of the algorithms in this set.
    pub(crate) fn algorithm_bits(&self) -> u16 {
        self.inner
            .keys
            .iter()
            .fold(0, |bits, key| bits | key.alg.bit())
    }

    /// Identifies this key set (and its clones); never reused.
    pub(crate) fn id(&self) -> u64 {
        self.inner.id
    }

    /// The key at an index from [`KeySet::select_index`].
    pub(crate) fn key(&self, index: usize) -> &Arc<PreparedKey> {
        &self.inner.keys[index]
    }

    /// The index of the key for a token's `kid`.
    pub(crate) fn select_index(&self, kid: Option<&str>) -> Result<usize, AuthError> {
        let inner = &*self.inner;
        let index = match kid {
            // A handful of keys is the common case: comparing them beats hashing the kid.
            Some(kid) if inner.keys.len() <= LINEAR_SCAN_MAX => inner
                .keys
                .iter()
                .position(|key| key.kid.as_deref() == Some(kid)),
            Some(kid) => inner.by_kid.get(kid).copied(),
            None => inner
                .kidless
                .or(if inner.keys.len() == 1 { Some(0) } else { None }),
        };
        index.ok_or(AuthError::new(ErrorKind::UnknownKey))
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("keys", &self.keys().collect::<Vec<_>>())
            .field("skipped", &self.inner.skipped)
            .finish()
    }
}

/// Builds a [`KeySet`]; each setter validates its key and fails fast.
#[must_use]
#[derive(Default)]
pub struct KeySetBuilder {
    keys: Vec<Arc<PreparedKey>>,
    by_kid: HashMap<Box<str>, usize>,
    kidless: Option<usize>,
    skipped: Vec<SkippedKey>,
    rsa_default: Option<Algorithm>,
}

impl fmt::Debug for KeySetBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySetBuilder")
            .field(
                "keys",
                &self
                    .keys
                    .iter()
                    .map(|k| (&k.kid, k.alg))
                    .collect::<Vec<_>>(),
            )
            .field("skipped", &self.skipped)
            .field("rsa_default", &self.rsa_default)
            .finish()
    }
}

impl KeySetBuilder {
    /// Adds an HMAC secret.
    ///
    /// # Errors
    ///
    /// [`ConfigError::WeakHmacSecret`] when the secret is shorter than the hash output,
    /// [`ConfigError::KeyAlgorithmMismatch`] when `alg` is not HS256/384/512,
    /// [`ConfigError::DuplicateKid`].
    pub fn hmac(
        self,
        kid: Option<&str>,
        alg: Algorithm,
        secret: &[u8],
    ) -> Result<Self, ConfigError> {
        if alg.family() != Family::Hmac {
            return Err(ConfigError::KeyAlgorithmMismatch(
                "hmac secret for a non-hmac algorithm",
            ));
        }
        check_hmac_secret(alg, secret)?;
        self.add(
            kid,
            alg,
            Material::Secret(zeroize::Zeroizing::new(secret.to_vec())),
        )
    }

    /// Adds a public key from PEM: `PUBLIC KEY` (SubjectPublicKeyInfo) for any asymmetric
    /// algorithm, or `RSA PUBLIC KEY` (PKCS#1) for RSA.
    ///
    /// # Errors
    ///
    /// [`ConfigError::PrivateKeyMaterial`] for a private-key PEM, [`ConfigError::InvalidKey`]
    /// for anything unreadable, otherwise as [`KeySetBuilder::der`].
    pub fn pem(self, kid: Option<&str>, alg: Algorithm, pem: &[u8]) -> Result<Self, ConfigError> {
        let block = ::pem::parse(pem).map_err(|_| ConfigError::InvalidKey("not a pem block"))?;
        let key = match block.tag() {
            "PUBLIC KEY" => der::subject_public_key_info(block.contents())?,
            "RSA PUBLIC KEY" => der::rsa_public_key(block.contents())?,
            tag if tag.contains("PRIVATE KEY") => return Err(ConfigError::PrivateKeyMaterial),
            _ => return Err(ConfigError::InvalidKey("unsupported pem label")),
        };
        self.public_key(kid, alg, key)
    }

    /// Adds a public key from DER: a SubjectPublicKeyInfo, or for RSA also a PKCS#1
    /// `RSAPublicKey`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::PrivateKeyMaterial`] for a private key (PKCS#8, PKCS#1 or SEC1),
    /// [`ConfigError::InvalidKey`] for unreadable DER or a weak or broken key,
    /// [`ConfigError::RsaKeySize`], [`ConfigError::KeyAlgorithmMismatch`] when the key's type or
    /// curve does not fit `alg`, [`ConfigError::DuplicateKid`].
    pub fn der(self, kid: Option<&str>, alg: Algorithm, der: &[u8]) -> Result<Self, ConfigError> {
        let key = match der::subject_public_key_info(der) {
            Ok(key) => key,
            Err(_) if der::looks_like_private_key(der) => {
                return Err(ConfigError::PrivateKeyMaterial);
            }
            Err(err) if alg.family() == Family::Rsa => der::rsa_public_key(der).map_err(|_| err)?,
            Err(err) => return Err(err),
        };
        self.public_key(kid, alg, key)
    }

    /// Adds one key from a JWK document. Its algorithm is its `alg`, or the one its curve
    /// implies, or (for RSA) the [default](KeySetBuilder::default_rsa_algorithm).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidJwk`] for malformed JSON or a key not usable for verification
    /// (wrong `use`, unsupported type), [`ConfigError::PrivateKeyMaterial`], and the key errors
    /// of [`KeySetBuilder::der`].
    pub fn jwk(self, json: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let raw: jwk::RawJwk = strict_json(json.as_ref())?;
        match raw.parse(self.rsa_default)? {
            jwk::Parsed::Key { kid, alg, material } => self.add(kid.as_deref(), alg, material),
            jwk::Parsed::Skipped { reason, .. } => Err(ConfigError::InvalidJwk(format!(
                "key not usable for verification: {reason}"
            ))),
        }
    }

    /// Adds the usable keys of a JWKS document (`{"keys": [...]}`).
    ///
    /// Skipped, and listed in [`KeySet::skipped`]: keys with `use` other than `sig`, `key_ops`
    /// without `verify`, unsupported `kty`, curve or `alg`, RSA or `oct` keys without `alg`
    /// (unless a default RSA algorithm is set), and keys without `kid` in a multi-key document.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidJwk`] for malformed JSON (including duplicate members),
    /// [`ConfigError::MixedKeySet`] when `oct` keys (of any `use`) sit beside asymmetric ones,
    /// [`ConfigError::PrivateKeyMaterial`] when any key has private parameters,
    /// [`ConfigError::DuplicateKid`], and the key errors of [`KeySetBuilder::der`].
    pub fn jwks(mut self, json: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let doc: jwk::RawJwks = strict_json(json.as_ref())?;
        // Judged on every member, usable or not: a symmetric secret has no business in a
        // document that also carries public keys, whatever its `use`.
        if doc.keys.iter().any(jwk::RawJwk::is_symmetric)
            && doc.keys.iter().any(jwk::RawJwk::is_asymmetric)
        {
            return Err(ConfigError::MixedKeySet);
        }
        let mut parsed = Vec::with_capacity(doc.keys.len());
        for (index, raw) in doc.keys.into_iter().enumerate() {
            parsed.push(raw.parse(self.rsa_default).map_err(|err| match err {
                ConfigError::InvalidJwk(why) => {
                    ConfigError::InvalidJwk(format!("key {index}: {why}"))
                }
                other => other,
            })?);
        }
        // A key without a kid is addressable only when it is the document's one usable key.
        let usable = parsed
            .iter()
            .filter(|p| matches!(p, jwk::Parsed::Key { .. }))
            .count();
        for parsed in parsed {
            match parsed {
                jwk::Parsed::Key { kid: None, .. } if usable > 1 => {
                    self.skipped.push(SkippedKey {
                        kid: None,
                        reason: "no kid in a multi-key set",
                    });
                }
                jwk::Parsed::Key { kid, alg, material } => {
                    self = self.add(kid.as_deref(), alg, material)?;
                }
                jwk::Parsed::Skipped { kid, reason } => {
                    self.skipped.push(SkippedKey { kid, reason });
                }
            }
        }
        Ok(self)
    }

    /// Adds the usable keys of a JWKS document that an issuer publishes (what
    /// [`RemoteJwks`][remote-jwks] fetches). More forgiving than
    /// [`KeySetBuilder::jwks`] about single keys, so that one odd key cannot take the whole
    /// issuer down, and stricter about secrets:
    ///
    /// - skipped, besides what [`KeySetBuilder::jwks`] skips: any symmetric (`oct`) key (a
    ///   secret published in a JWKS is known to everyone, so it must never verify anything),
    ///   any key that fails to load (bad encoding, a weak or broken key, an `alg` that
    ///   contradicts the key), and every key of a `kid` that more than one usable key claims;
    /// - still fatal: malformed JSON (including duplicate members), and private parameters on
    ///   any key, which means the issuer is leaking its signing keys.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidJwk`] for malformed JSON, [`ConfigError::PrivateKeyMaterial`],
    /// and [`ConfigError::DuplicateKid`] when a key's `kid` is already in this builder.
    ///
    #[cfg_attr(
        feature = "remote-jwks",
        doc = "[remote-jwks]: crate::remote::RemoteJwks"
    )]
    #[cfg_attr(not(feature = "remote-jwks"), doc = "[remote-jwks]: crate#features")]
    pub fn issuer_jwks(mut self, json: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let doc: jwk::RawJwks = strict_json(json.as_ref())?;
        if doc.keys.iter().any(jwk::RawJwk::has_private_members) {
            return Err(ConfigError::PrivateKeyMaterial);
        }
        let mut parsed = Vec::with_capacity(doc.keys.len());
        for raw in doc.keys {
            let kid = raw.kid().map(str::to_owned);
            if raw.is_symmetric() {
                self.skipped.push(SkippedKey {
                    kid,
                    reason: "symmetric key in an issuer's jwks",
                });
                continue;
            }
            match raw.parse(self.rsa_default) {
                Ok(jwk::Parsed::Key { kid, alg, material }) => parsed.push((kid, alg, material)),
                Ok(jwk::Parsed::Skipped { kid, reason }) => {
                    self.skipped.push(SkippedKey { kid, reason });
                }
                Err(error) => {
                    tracing::debug!(%error, "jwks key not loaded");
                    self.skipped.push(SkippedKey {
                        kid,
                        reason: "invalid key",
                    });
                }
            }
        }
        let mut per_kid: HashMap<&str, usize> = HashMap::new();
        for kid in parsed.iter().filter_map(|(kid, ..)| kid.as_deref()) {
            *per_kid.entry(kid).or_default() += 1;
        }
        let verdicts: Vec<Option<&'static str>> = parsed
            .iter()
            .map(|(kid, ..)| match kid.as_deref() {
                None if parsed.len() > 1 => Some("no kid in a multi-key set"),
                Some(kid) if per_kid[kid] > 1 => Some("duplicate kid"),
                _ => None,
            })
            .collect();
        for ((kid, alg, material), verdict) in parsed.into_iter().zip(verdicts) {
            if let Some(reason) = verdict {
                self.skipped.push(SkippedKey { kid, reason });
                continue;
            }
            let existing = match &kid {
                Some(kid) => self.by_kid.contains_key(kid.as_str()),
                None => self.kidless.is_some(),
            };
            if existing {
                return Err(ConfigError::DuplicateKid(kid));
            }
            match PreparedKey::new(kid.as_deref(), alg, material) {
                Ok(key) => self.insert(key),
                Err(error) => {
                    tracing::debug!(%error, "jwks key refused by the crypto backend");
                    self.skipped.push(SkippedKey {
                        kid,
                        reason: "invalid key",
                    });
                }
            }
        }
        Ok(self)
    }

    /// The algorithm for RSA JWKs that carry no `alg` (some issuers omit it). Without this,
    /// such keys are skipped: an RSA key alone does not say whether it is for PKCS#1 v1.5 or
    /// PSS, nor with which hash.
    ///
    /// # Errors
    ///
    /// [`ConfigError::KeyAlgorithmMismatch`] when `alg` is not an RSA algorithm.
    pub fn default_rsa_algorithm(mut self, alg: Algorithm) -> Result<Self, ConfigError> {
        if alg.family() != Family::Rsa {
            return Err(ConfigError::KeyAlgorithmMismatch(
                "default rsa algorithm is not rsa",
            ));
        }
        self.rsa_default = Some(alg);
        Ok(self)
    }

    /// Finishes the set.
    ///
    /// # Errors
    ///
    /// [`ConfigError::EmptyKeySet`] when no key was added.
    pub fn build(self) -> Result<KeySet, ConfigError> {
        if self.keys.is_empty() {
            return Err(ConfigError::EmptyKeySet);
        }
        Ok(KeySet {
            inner: Arc::new(Inner {
                id: crate::ids::next_id(),
                keys: self.keys,
                by_kid: self.by_kid,
                kidless: self.kidless,
                skipped: self.skipped,
            }),
        })
    }

    fn public_key(
        self,
        kid: Option<&str>,
        alg: Algorithm,
        key: der::PublicKey,
    ) -> Result<Self, ConfigError> {
        let material = match (alg, key) {
            (Algorithm::ES256, der::PublicKey::P256(point))
            | (Algorithm::ES384, der::PublicKey::P384(point)) => {
                let coordinate_len = if alg == Algorithm::ES256 { 32 } else { 48 };
                if point.len() != 1 + 2 * coordinate_len || point[0] != 0x04 {
                    return Err(ConfigError::InvalidKey("ec point must be uncompressed"));
                }
                Material::Ec(point)
            }
            (Algorithm::EdDSA, der::PublicKey::Ed25519(x)) => Material::Ed(x),
            (alg, der::PublicKey::Rsa { n, e }) if alg.family() == Family::Rsa => {
                rsa::check_public_key(&n, &e)?;
                Material::Rsa { n, e }
            }
            _ => {
                return Err(ConfigError::KeyAlgorithmMismatch(
                    "key type or curve does not fit the algorithm",
                ));
            }
        };
        self.add(kid, alg, material)
    }

    fn add(
        mut self,
        kid: Option<&str>,
        alg: Algorithm,
        material: Material,
    ) -> Result<Self, ConfigError> {
        let duplicate = match kid {
            Some(kid) => self.by_kid.contains_key(kid),
            None => self.kidless.is_some(),
        };
        if duplicate {
            return Err(ConfigError::DuplicateKid(kid.map(str::to_owned)));
        }
        let key = PreparedKey::new(kid, alg, material)?;
        self.insert(key);
        Ok(self)
    }

    /// Registers a prepared key whose `kid` is known not to be taken.
    fn insert(&mut self, key: Arc<PreparedKey>) {
        let index = self.keys.len();
        match &key.kid {
            Some(kid) => {
                self.by_kid.insert(kid.clone(), index);
            }
            None => self.kidless = Some(index),
        }
        self.keys.push(key);
    }
}

/// Parses a JWK or JWKS document, refusing duplicate member names at any depth.
fn strict_json<T: serde::de::DeserializeOwned>(json: &[u8]) -> Result<T, ConfigError> {
    crate::json::from_strict_slice(json).map_err(|err| ConfigError::InvalidJwk(err.to_string()))
}

/// HMAC secrets must be at least as long as the hash output (RFC 7518 section 3.2).
pub(crate) fn check_hmac_secret(alg: Algorithm, secret: &[u8]) -> Result<(), ConfigError> {
    let min_len = alg.hmac_min_len();
    if secret.len() < min_len {
        return Err(ConfigError::WeakHmacSecret {
            algorithm: alg,
            min_len,
            len: secret.len(),
        });
    }
    Ok(())
}
