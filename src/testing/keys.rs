//! The test issuer's keys: generated in memory (aws-lc-rs), published as JWKs.

use serde_json::{Map, Value};

use crate::algorithm::{Algorithm, Family};
use crate::error::SignError;
use crate::signer::TokenSigner;

/// A key pair bound to one algorithm, under its RFC 7638 thumbprint as `kid`.
#[derive(Clone)]
pub(super) struct TestKey {
    pub(super) kid: String,
    pub(super) alg: Algorithm,
    pub(super) signer: TokenSigner,
    /// The public members (`kty`, `crv`, `n`, `e`, `x`, `y`).
    public: Map<String, Value>,
}

impl TestKey {
    /// A fresh key for `alg`: RSA 2048 bits, P-256, P-384 or Ed25519.
    pub(super) fn generate(alg: Algorithm) -> Result<Self, SignError> {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
            Ed25519KeyPair,
        };

        let failed = |_| SignError("test key generation failed".to_owned());
        let pkcs8: Vec<u8> = match alg {
            Algorithm::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|pair| pair.to_pkcs8v1())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            Algorithm::ES384 => EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING)
                .and_then(|pair| pair.to_pkcs8v1())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            Algorithm::EdDSA => Ed25519KeyPair::generate()
                .and_then(|pair| pair.to_pkcs8v1())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            rsa if rsa.family() == Family::Rsa => {
                aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .and_then(|pair| pair.as_der())
                    .map_err(failed)?
                    .as_ref()
                    .to_vec()
            }
            hmac => {
                return Err(SignError(format!("{hmac} has no key pair")));
            }
        };
        let unusable = |err: crate::error::ConfigError| SignError(err.to_string());
        let signer = TokenSigner::from_pkcs8(&pkcs8, alg).map_err(unusable)?;
        let (public, kid) = signer.public_jwk().map_err(unusable)?;
        Ok(Self {
            kid,
            alg,
            signer,
            public,
        })
    }

    /// The published JWK: public members, `kid`, `alg` (binding the key), `use: sig`.
    pub(super) fn jwk(&self) -> Value {
        let mut jwk = self.public.clone();
        jwk.insert("kid".to_owned(), Value::from(self.kid.as_str()));
        jwk.insert("alg".to_owned(), Value::from(self.alg.as_str()));
        jwk.insert("use".to_owned(), Value::from("sig"));
        Value::Object(jwk)
    }
}
