//! The selected crypto backend, and the per-thread cache of prebuilt signature verifiers.
//!
//! Exactly one backend is active: `rust-crypto` when that feature is on, otherwise `aws-lc-rs`
//! (the default). With neither, the crate does not compile, so nothing can panic at run time for
//! want of a provider.
//!
//! ```
//! let backend = tower_jwt_auth::crypto_backend();
//! assert!(backend == "aws-lc-rs" || backend == "rust-crypto");
//! ```
//!
//! `jsonwebtoken`'s `verifier_factory` returns `Box<dyn JwtVerifier>`, which is neither `Send`
//! nor `Sync`, so a verifier cannot be shared between threads without `unsafe` (forbidden in this
//! crate). Each thread therefore builds the verifier for a key the first time it meets that key
//! and reuses it for every later token; entries of key sets that were dropped are swept whenever
//! a new entry is added, so the cache holds no more than the live keys a thread has used.

use std::cell::RefCell;
use std::sync::{Arc, Once, Weak};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier};

use crate::algorithm::{Algorithm, Family};
use crate::error::{AuthError, ConfigError, ErrorKind};

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "tower-jwt-auth needs a crypto backend: enable the `aws-lc-rs` (default) or `rust-crypto` feature"
);

/// The name of the crypto backend this build verifies and signs with: `"aws-lc-rs"` or
/// `"rust-crypto"`.
#[must_use]
pub fn crypto_backend() -> &'static str {
    if cfg!(feature = "rust-crypto") {
        "rust-crypto"
    } else {
        "aws-lc-rs"
    }
}

/// The largest RSA modulus the backend verifies (aws-lc-rs: 8192 bits; RustCrypto's `rsa`: 4096).
pub(crate) const MAX_RSA_BITS: usize = if cfg!(feature = "rust-crypto") {
    4096
} else {
    8192
};

#[cfg(feature = "rust-crypto")]
pub(crate) fn provider() -> &'static CryptoProvider {
    &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
}

#[cfg(all(feature = "aws-lc-rs", not(feature = "rust-crypto")))]
pub(crate) fn provider() -> &'static CryptoProvider {
    &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
}

/// `jsonwebtoken::encode` asks for the process-wide provider, which jsonwebtoken cannot pick by
/// itself when both of its backend features are compiled in. Install ours once; if the
/// application installed its own first, that one stays.
pub(crate) fn install_default_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _already_installed = provider().install_default();
    });
}

/// Public (or HMAC) key material in one canonical form per family.
pub(crate) enum Material {
    /// An HMAC secret.
    Secret(zeroize::Zeroizing<Vec<u8>>),
    /// Big-endian modulus and exponent without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An uncompressed SEC1 point, `0x04 || x || y`.
    Ec(Vec<u8>),
    /// The 32-byte Ed25519 public key.
    Ed(Vec<u8>),
}

/// A key bound to one algorithm, validated, ready to verify.
pub(crate) struct PreparedKey {
    id: u64,
    pub(crate) kid: Option<Box<str>>,
    pub(crate) alg: Algorithm,
    decoding: DecodingKey,
}

impl PreparedKey {
    /// Validates `material` for `alg` with the backend and builds the key once.
    pub(crate) fn new(
        kid: Option<&str>,
        alg: Algorithm,
        material: Material,
    ) -> Result<Arc<Self>, ConfigError> {
        validate_with_backend(alg, &material)?;
        let decoding = match &material {
            Material::Secret(secret) => DecodingKey::from_secret(secret),
            Material::Rsa { n, e } => DecodingKey::from_rsa_raw_components(n, e),
            Material::Ec(point) => DecodingKey::from_ec_der(point),
            Material::Ed(x) => DecodingKey::from_ed_der(x),
        };
        // Build the verifier once now, so a key the backend refuses fails here, not per token.
        (provider().verifier_factory)(&alg.to_jwt(), &decoding)
            .map_err(|_| ConfigError::InvalidKey("rejected by the crypto backend"))?;
        Ok(Arc::new(Self {
            id: crate::ids::next_id(),
            kid: kid.map(Box::from),
            alg,
            decoding,
        }))
    }

    /// Verifies `signature` over `message` with this key's prebuilt verifier.
    pub(crate) fn verify(
        self: &Arc<Self>,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), AuthError> {
        let cached = CACHE.try_with(|cache| match cache.try_borrow_mut() {
            Ok(mut cache) => Some(cache.verify(self, message, signature)),
            Err(_) => None,
        });
        match cached {
            Ok(Some(result)) => result,
            // Thread-local storage is being torn down, or (never in practice) re-entered:
            // build a verifier just for this call rather than fail or panic.
            _ => {
                let verifier = self.build_verifier()?;
                check(verifier.as_ref(), message, &signature.to_vec())
            }
        }
    }

    fn build_verifier(&self) -> Result<Box<dyn JwtVerifier>, AuthError> {
        (provider().verifier_factory)(&self.alg.to_jwt(), &self.decoding)
            .map_err(|_| AuthError::new(ErrorKind::InvalidSignature))
    }
}

fn check(verifier: &dyn JwtVerifier, message: &[u8], signature: &Vec<u8>) -> Result<(), AuthError> {
    verifier
        .verify(message, signature)
        .map_err(|_| AuthError::new(ErrorKind::InvalidSignature))
}

struct CachedVerifier {
    id: u64,
    owner: Weak<PreparedKey>,
    verifier: Box<dyn JwtVerifier>,
}

#[derive(Default)]
struct VerifierCache {
    entries: Vec<CachedVerifier>,
    /// The decoded signature, reused: the backend's trait takes `&Vec<u8>`.
    signature: Vec<u8>,
}

thread_local! {
    static CACHE: RefCell<VerifierCache> = RefCell::new(VerifierCache::default());
}

impl VerifierCache {
    fn verify(
        &mut self,
        key: &Arc<PreparedKey>,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), AuthError> {
        let index = match self.entries.iter().position(|entry| entry.id == key.id) {
            Some(index) => index,
            None => {
                let verifier = key.build_verifier()?;
                self.entries.retain(|entry| entry.owner.strong_count() > 0);
                self.entries.push(CachedVerifier {
                    id: key.id,
                    owner: Arc::downgrade(key),
                    verifier,
                });
                self.entries.len() - 1
            }
        };
        self.signature.clear();
        self.signature.extend_from_slice(signature);
        check(
            self.entries[index].verifier.as_ref(),
            message,
            &self.signature,
        )
    }
}

#[cfg(test)]
pub(crate) fn cached_verifiers_on_this_thread() -> usize {
    CACHE.with(|cache| cache.borrow().entries.len())
}

/// Checks that the backend accepts the public key (a point on its curve, a consistent RSA
/// key). HMAC secrets and RustCrypto keys are checked when the verifier is built.
#[cfg(all(feature = "aws-lc-rs", not(feature = "rust-crypto")))]
fn validate_with_backend(alg: Algorithm, material: &Material) -> Result<(), ConfigError> {
    use aws_lc_rs::signature as sig;

    let rejected = |_| ConfigError::InvalidKey("rejected by the crypto backend");
    match (alg.family(), material) {
        (Family::Ec, Material::Ec(point)) => {
            let params: &'static sig::EcdsaVerificationAlgorithm = match alg {
                Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
                _ => &sig::ECDSA_P256_SHA256_FIXED,
            };
            sig::ParsedPublicKey::new(params, point)
                .map(drop)
                .map_err(rejected)
        }
        (Family::Ed, Material::Ed(x)) => sig::ParsedPublicKey::new(&sig::ED25519, x)
            .map(drop)
            .map_err(rejected),
        (Family::Rsa, Material::Rsa { n, e }) => sig::RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(&sig::RSA_PKCS1_2048_8192_SHA256)
            .map(drop)
            .map_err(rejected),
        (Family::Hmac, Material::Secret(_)) => Ok(()),
        _ => Err(ConfigError::KeyAlgorithmMismatch(
            "key type does not fit the algorithm",
        )),
    }
}

#[cfg(feature = "rust-crypto")]
fn validate_with_backend(alg: Algorithm, material: &Material) -> Result<(), ConfigError> {
    match (alg.family(), material) {
        (Family::Ec, Material::Ec(_))
        | (Family::Ed, Material::Ed(_))
        | (Family::Rsa, Material::Rsa { .. })
        | (Family::Hmac, Material::Secret(_)) => Ok(()),
        _ => Err(ConfigError::KeyAlgorithmMismatch(
            "key type does not fit the algorithm",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac_key() -> Arc<PreparedKey> {
        let secret = zeroize::Zeroizing::new(vec![1u8; 32]);
        PreparedKey::new(Some("k"), Algorithm::HS256, Material::Secret(secret)).unwrap()
    }

    #[test]
    fn verifiers_are_cached_per_key_and_swept_when_keys_drop() {
        // Run on a fresh thread so other tests sharing this thread do not disturb the count.
        std::thread::spawn(|| {
            let key = hmac_key();
            let bad = [0u8; 32];
            for _ in 0..3 {
                assert_eq!(
                    key.verify(b"msg", &bad).unwrap_err().kind(),
                    ErrorKind::InvalidSignature
                );
            }
            assert_eq!(cached_verifiers_on_this_thread(), 1);
            drop(key);
            let other = hmac_key();
            let _ = other.verify(b"msg", &bad);
            // The dropped key's verifier was swept when the new one was added.
            assert_eq!(cached_verifiers_on_this_thread(), 1);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn family_mismatch_is_a_config_error() {
        let err = PreparedKey::new(None, Algorithm::ES256, Material::Ed(vec![0; 32]));
        assert!(matches!(err, Err(ConfigError::KeyAlgorithmMismatch(_))));
    }
}
