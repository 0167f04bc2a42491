//! [`TokenSigner`]: mints compact JWS tokens with any key type a [`KeySet`](crate::KeySet)
//! verifies, through `jsonwebtoken::encode`. Tests, benchmarks and fuzz seeds use it to make real
//! tokens; the token issuer builds on it.
//!
//! ```
//! use tower_jwt_auth::{Algorithm, KeySet, TokenSigner, Verifier};
//!
//! let pem = std::fs::read("tests/data/keys/p256.pkcs8.pem")?;
//! let signer = TokenSigner::from_pem(Algorithm::ES256, &pem)?.with_kid("ec-256");
//! let token = signer.sign(&serde_json::json!({"sub": "carol"}))?;
//!
//! let keys = KeySet::from_jwks(std::fs::read("tests/data/keys/public.jwks")?)?;
//! let verifier = Verifier::builder(keys)
//!     .accept_any_issuer()
//!     .accept_any_audience()
//!     .required_claims(["sub"])?
//!     .build()?;
//! assert_eq!(verifier.verify(&token)?.subject(), Some("carol"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::algorithm::{Algorithm, Family};
use crate::backend::install_default_provider;
use crate::encoding::BASE64URL;
use crate::error::{ConfigError, SignError};
use crate::keys;
use crate::keys::der::{self, PrivateKeyType};

/// Signs tokens with one private key (or HMAC secret) bound to one algorithm.
#[derive(Clone)]
pub struct TokenSigner {
    alg: Algorithm,
    kid: Option<String>,
    typ: Option<String>,
    key: EncodingKey,
}

impl TokenSigner {
    /// A signer with an HMAC secret.
    ///
    /// # Errors
    ///
    /// [`ConfigError::WeakHmacSecret`] when the secret is shorter than the hash output,
    /// [`ConfigError::KeyAlgorithmMismatch`] when `alg` is not HS256/384/512.
    pub fn hmac(alg: Algorithm, secret: &[u8]) -> Result<Self, ConfigError> {
        if alg.family() != Family::Hmac {
            return Err(ConfigError::KeyAlgorithmMismatch(
                "hmac secret for a non-hmac algorithm",
            ));
        }
        keys::check_hmac_secret(alg, secret)?;
        Self::new(alg, EncodingKey::from_secret(secret))
    }

    /// A signer with a private key in PEM: RSA as PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8
    /// (`PRIVATE KEY`); P-256, P-384 and Ed25519 as PKCS#8 (`PRIVATE KEY`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidKey`] when the PEM is not such a key or does not fit `alg` (for
    /// example a P-384 key for ES256), [`ConfigError::RsaKeySize`] for RSA keys under 2048
    /// bits, [`ConfigError::KeyAlgorithmMismatch`] for an HMAC algorithm.
    pub fn from_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, ConfigError> {
        let unreadable = |_| ConfigError::InvalidKey("not a private key pem for this algorithm");
        let key = match alg.family() {
            Family::Rsa => EncodingKey::from_rsa_pem(pem).map_err(unreadable)?,
            Family::Ec => EncodingKey::from_ec_pem(pem).map_err(unreadable)?,
            Family::Ed => EncodingKey::from_ed_pem(pem).map_err(unreadable)?,
            Family::Hmac => {
                return Err(ConfigError::KeyAlgorithmMismatch(
                    "hmac keys are secrets, not pem",
                ));
            }
        };
        Self::new(alg, key)
    }

    /// A signer with a private key in DER: RSA as PKCS#1, P-256, P-384 and Ed25519 as PKCS#8.
    ///
    /// # Errors
    ///
    /// As [`TokenSigner::from_pem`].
    pub fn from_der(alg: Algorithm, der: &[u8]) -> Result<Self, ConfigError> {
        let key = match alg.family() {
            Family::Rsa => EncodingKey::from_rsa_der(der),
            Family::Ec => EncodingKey::from_ec_der(der),
            Family::Ed => EncodingKey::from_ed_der(der),
            Family::Hmac => {
                return Err(ConfigError::KeyAlgorithmMismatch(
                    "hmac keys are secrets, not der",
                ));
            }
        };
        Self::new(alg, key)
    }

    fn new(alg: Algorithm, key: EncodingKey) -> Result<Self, ConfigError> {
        install_default_provider();
        if alg.family() == Family::Rsa {
            // jsonwebtoken keeps RSA signing keys as PKCS#1 DER, whichever PEM form they came in.
            let (n, e) = keys::der::rsa_private_key_public_part(key.as_bytes())?;
            keys::rsa::check_public_key(&n, &e)?;
        }
        // Sign once now so a key the backend refuses fails here, not at the first token.
        jsonwebtoken::crypto::sign(b"probe", &key, alg.to_jwt())
            .map_err(|_| ConfigError::InvalidKey("rejected by the crypto backend"))?;
        Ok(Self {
            alg,
            kid: None,
            typ: Some("JWT".to_owned()),
            key,
        })
    }

    /// Puts this `kid` in every token's header.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Puts this `typ` in every token's header (default `JWT`; RFC 9068 access tokens use
    /// `at+jwt`).
    pub fn with_type(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// Leaves `typ` out of the header.
    pub fn without_type(mut self) -> Self {
        self.typ = None;
        self
    }

    /// The algorithm.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The `kid`, if set.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The signing key, for deriving its public JWK (and, for HMAC, its verification key).
    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.key
    }

    /// Signs these claims: header `{"typ", "alg", "kid"}`, payload the claims as JSON.
    ///
    /// # Errors
    ///
    /// [`SignError`] when the claims do not serialise or the backend fails.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, SignError> {
        let mut header = Header::new(self.alg.to_jwt());
        header.kid.clone_from(&self.kid);
        header.typ.clone_from(&self.typ);
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|err| SignError(err.to_string()))
    }

    /// Signs a payload given as JSON text, exactly as written (so tests can mint tokens with
    /// duplicate members or odd types that a typed value cannot hold).
    ///
    /// # Errors
    ///
    /// [`SignError`] when `claims` is not syntactically JSON or the backend fails.
    pub fn sign_json(&self, claims: &str) -> Result<String, SignError> {
        let raw = serde_json::value::RawValue::from_string(claims.to_owned())
            .map_err(|err| SignError(err.to_string()))?;
        self.sign(&raw)
    }

    /// Signs exactly these header and payload bytes, base64url-encoding each. Nothing is
    /// checked: this is for minting hostile tokens in tests and fuzz seeds.
    ///
    /// # Errors
    ///
    /// [`SignError`] when the backend fails.
    pub fn sign_raw(&self, header: &[u8], payload: &[u8]) -> Result<String, SignError> {
        let mut token = BASE64URL.encode(header);
        token.push('.');
        BASE64URL.encode_string(payload, &mut token);
        let signature = jsonwebtoken::crypto::sign(token.as_bytes(), &self.key, self.alg.to_jwt())
            .map_err(|err| SignError(err.to_string()))?;
        token.push('.');
        token.push_str(&signature);
        Ok(token)
    }
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("typ", &self.typ)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Key material: a signer from any PKCS#8 key, and the public JWK of a key pair (what the
/// token issuer and the test issuer publish).
impl TokenSigner {
    /// Signs with a PKCS#8 key; its `AlgorithmIdentifier` picks the algorithm, and `rsa` the
    /// one an RSA key signs with.
    pub(crate) fn from_pkcs8(der: &[u8], rsa: Algorithm) -> Result<Self, ConfigError> {
        let (key_type, private_key) = der::private_key_info(der)?;
        match key_type {
            // jsonwebtoken signs with the PKCS#1 key the PKCS#8 wrapper holds.
            PrivateKeyType::Rsa => Self::from_der(rsa, private_key),
            PrivateKeyType::P256 => Self::from_der(Algorithm::ES256, der),
            PrivateKeyType::P384 => Self::from_der(Algorithm::ES384, der),
            // Re-encoded as version 1 (seed only): that is the form jsonwebtoken derives the
            // public key from, whichever version (RFC 5958 allows the public key alongside)
            // came in.
            PrivateKeyType::Ed25519 => Self::from_der(
                Algorithm::EdDSA,
                &der::ed25519_pkcs8(der::ed25519_seed(private_key)?),
            ),
        }
    }

    /// The public members of this key pair's JWK and its RFC 7638 thumbprint.
    pub(crate) fn public_jwk(&self) -> Result<(Map<String, Value>, String), ConfigError> {
        let unusable = |_| ConfigError::InvalidKey("public key not derivable from the private key");
        let jwk = Jwk::from_encoding_key(&self.key, self.alg.to_jwt()).map_err(unusable)?;
        let public = public_members(&jwk.algorithm)?;
        let thumbprint = jwk.thumbprint(ThumbprintHash::SHA256).map_err(unusable)?;
        Ok((public, thumbprint))
    }
}

/// The public members of a JWK, named one by one.
fn public_members(params: &AlgorithmParameters) -> Result<Map<String, Value>, ConfigError> {
    let mut jwk = Map::new();
    let mut put = |name: &str, value: &str| jwk.insert(name.to_owned(), Value::from(value));
    match params {
        AlgorithmParameters::RSA(rsa) => {
            put("kty", "RSA");
            put("n", &rsa.n);
            put("e", &rsa.e);
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            put("kty", "EC");
            put("crv", curve_name(&ec.curve)?);
            put("x", &ec.x);
            put("y", &ec.y);
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            put("kty", "OKP");
            put("crv", curve_name(&okp.curve)?);
            put("x", &okp.x);
        }
        _ => return Err(ConfigError::InvalidKey("not an asymmetric key")),
    }
    Ok(jwk)
}

fn curve_name(curve: &EllipticCurve) -> Result<&'static str, ConfigError> {
    match curve {
        EllipticCurve::P256 => Ok("P-256"),
        EllipticCurve::P384 => Ok("P-384"),
        EllipticCurve::Ed25519 => Ok("Ed25519"),
        _ => Err(ConfigError::KeyAlgorithmMismatch("unsupported curve")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_do_not_fit_are_refused_at_construction() {
        assert!(
            TokenSigner::from_pem(
                Algorithm::ES256,
                &crate::fixtures::key_file("p384.pkcs8.pem")
            )
            .is_err()
        );
        assert!(
            TokenSigner::from_pem(
                Algorithm::ES384,
                &crate::fixtures::key_file("p256.pkcs8.pem")
            )
            .is_err()
        );
        assert!(
            TokenSigner::from_pem(
                Algorithm::EdDSA,
                &crate::fixtures::key_file("p256.pkcs8.pem")
            )
            .is_err()
        );
        assert!(
            TokenSigner::from_pem(
                Algorithm::RS256,
                &crate::fixtures::key_file("p256.pkcs8.pem")
            )
            .is_err()
        );
        assert!(
            TokenSigner::from_pem(Algorithm::ES256, &crate::fixtures::key_file("p256.pub.pem"))
                .is_err()
        );
        assert!(
            TokenSigner::from_pem(
                Algorithm::HS256,
                &crate::fixtures::key_file("p256.pkcs8.pem")
            )
            .is_err()
        );
        assert!(matches!(
            TokenSigner::from_pem(
                Algorithm::RS256,
                &crate::fixtures::key_file("rsa1024.pkcs1.pem")
            )
            .unwrap_err(),
            ConfigError::RsaKeySize { bits: 1024, .. }
        ));
        assert!(TokenSigner::hmac(Algorithm::HS512, &[0; 63]).is_err());
        assert!(TokenSigner::hmac(Algorithm::RS256, &[0; 64]).is_err());
    }

    #[test]
    fn every_key_format_loads() {
        for (alg, file) in [
            (Algorithm::RS256, "rsa2048.pkcs1.pem"),
            (Algorithm::PS512, "rsa2048.pkcs8.pem"),
            (Algorithm::ES256, "p256.pkcs8.pem"),
            (Algorithm::ES384, "p384.pkcs8.pem"),
            (Algorithm::EdDSA, "ed25519.pkcs8.pem"),
        ] {
            assert!(
                TokenSigner::from_pem(alg, &crate::fixtures::key_file(file)).is_ok(),
                "{alg} {file}"
            );
        }
        assert!(
            TokenSigner::from_der(
                Algorithm::RS384,
                &crate::fixtures::key_file("rsa2048.pkcs1.der")
            )
            .is_ok()
        );
        assert!(
            TokenSigner::from_der(
                Algorithm::ES256,
                &crate::fixtures::key_file("p256.pkcs8.der")
            )
            .is_ok()
        );
        assert!(
            TokenSigner::from_der(
                Algorithm::EdDSA,
                &crate::fixtures::key_file("ed25519.pkcs8.der")
            )
            .is_ok()
        );
    }

    #[test]
    fn debug_redacts_the_key() {
        let signer =
            TokenSigner::hmac(Algorithm::HS256, b"0123456789abcdef0123456789abcdef").unwrap();
        let debug = format!("{signer:?}");
        assert!(debug.contains("[redacted]"));
        assert!(!debug.contains("0123456789"));
    }
}
