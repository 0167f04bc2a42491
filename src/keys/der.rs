//! A strict reader for the two public-key encodings keys arrive in: `SubjectPublicKeyInfo`
//! (RFC 5280, the `PUBLIC KEY` PEM label) and PKCS#1 `RSAPublicKey` (RFC 8017, the
//! `RSA PUBLIC KEY` label). Definite, minimal lengths only; nothing may trail.
//!
//! ```
//! use tower_jwt_auth::{Algorithm, KeySet};
//!
//! let der = std::fs::read("tests/data/keys/p256.pub.der")?;
//! let keys = KeySet::builder().der(Some("ec"), Algorithm::ES256, &der)?.build()?;
//! assert_eq!(keys.algorithm(Some("ec")), Some(Algorithm::ES256));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::error::ConfigError;

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
/// `[0] IMPLICIT Attributes` and `[1] IMPLICIT PublicKey` of a PKCS#8 `OneAsymmetricKey`.
const PKCS8_ATTRIBUTES: u8 = 0xa0;
const PKCS8_PUBLIC_KEY: u8 = 0x81;

const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// A public key as found in a `SubjectPublicKeyInfo`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PublicKey {
    /// Modulus and exponent, big-endian, without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// A SEC1 point on P-256.
    P256(Vec<u8>),
    /// A SEC1 point on P-384.
    P384(Vec<u8>),
    /// A 32-byte Ed25519 key.
    Ed25519(Vec<u8>),
}

fn bad(what: &'static str) -> ConfigError {
    ConfigError::InvalidKey(what)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tag of the next element, if any.
    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// Reads one element with the expected tag and returns its contents.
    fn read(&mut self, tag: u8) -> Result<&'a [u8], ConfigError> {
        let (&actual, rest) = self.0.split_first().ok_or(bad("truncated der"))?;
        if actual != tag {
            return Err(bad("unexpected der element"));
        }
        let (&first, mut rest) = rest.split_first().ok_or(bad("truncated der"))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            // 0x80 is the indefinite form (not DER); more than 3 length bytes is absurd here.
            if count == 0 || count > 3 || rest.len() < count {
                return Err(bad("invalid der length"));
            }
            let (bytes, tail) = rest.split_at(count);
            rest = tail;
            let len = bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            // Minimal encoding: long form only when needed, no leading zero byte.
            if len < 0x80 || bytes[0] == 0 {
                return Err(bad("non-minimal der length"));
            }
            len
        };
        if rest.len() < len {
            return Err(bad("truncated der"));
        }
        let (value, tail) = rest.split_at(len);
        self.0 = tail;
        Ok(value)
    }

    fn finish(&self) -> Result<(), ConfigError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(bad("trailing bytes after der element"))
        }
    }
}

/// Reads a positive DER INTEGER, returning it without leading zero bytes.
fn positive_integer(bytes: &[u8]) -> Result<Vec<u8>, ConfigError> {
    match bytes {
        [] => Err(bad("empty der integer")),
        [first, ..] if first & 0x80 != 0 => Err(bad("negative rsa parameter")),
        [0, second, ..] if second & 0x80 == 0 => Err(bad("non-minimal der integer")),
        _ => Ok(strip_leading_zeros(bytes).to_vec()),
    }
}

pub(crate) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// Whether `der` has the shape of a private key: PKCS#8 `PrivateKeyInfo`, PKCS#1
/// `RSAPrivateKey` and SEC1 `ECPrivateKey` all open with `SEQUENCE { INTEGER version, ...`
/// where the version is 0 or 1; a public key never does (an `RSAPublicKey` opens with the
/// modulus, a `SubjectPublicKeyInfo` with a `SEQUENCE`).
pub(crate) fn looks_like_private_key(der: &[u8]) -> bool {
    let Ok(body) = Reader(der).read(SEQUENCE) else {
        return false;
    };
    let mut seq = Reader(body);
    matches!(seq.read(INTEGER), Ok([0] | [1])) && !seq.is_empty()
}

/// Parses a PKCS#1 `RSAPublicKey`: `SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
pub(crate) fn rsa_public_key(der: &[u8]) -> Result<PublicKey, ConfigError> {
    let mut outer = Reader(der);
    let mut seq = Reader(outer.read(SEQUENCE)?);
    outer.finish()?;
    let n = positive_integer(seq.read(INTEGER)?)?;
    let e = positive_integer(seq.read(INTEGER)?)?;
    seq.finish()?;
    Ok(PublicKey::Rsa { n, e })
}

/// Reads the public half (`modulus`, `publicExponent`) of a PKCS#1 `RSAPrivateKey`
/// (RFC 8017 appendix A.1.2), for size checks on signing keys.
pub(crate) fn rsa_private_key_public_part(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ConfigError> {
    let mut outer = Reader(der);
    let mut seq = Reader(outer.read(SEQUENCE)?);
    outer.finish()?;
    let _version = seq.read(INTEGER)?;
    let n = positive_integer(seq.read(INTEGER)?)?;
    let e = positive_integer(seq.read(INTEGER)?)?;
    Ok((n, e))
}

/// Parses a `SubjectPublicKeyInfo` for RSA, P-256, P-384 or Ed25519.
pub(crate) fn subject_public_key_info(der: &[u8]) -> Result<PublicKey, ConfigError> {
    let mut outer = Reader(der);
    let mut spki = Reader(outer.read(SEQUENCE)?);
    outer.finish()?;
    let mut algorithm = Reader(spki.read(SEQUENCE)?);
    let bits = spki.read(BIT_STRING)?;
    spki.finish()?;

    let key = match bits.split_first() {
        Some((0, key)) => key,
        _ => return Err(bad("public key bit string has unused bits")),
    };
    let oid = algorithm.read(OID)?;
    if oid == OID_RSA_ENCRYPTION {
        // RFC 3279 requires NULL parameters; tolerate their absence as many encoders do.
        if !algorithm.is_empty() {
            if !algorithm.read(NULL)?.is_empty() {
                return Err(bad("rsa parameters must be null"));
            }
            algorithm.finish()?;
        }
        rsa_public_key(key)
    } else if oid == OID_EC_PUBLIC_KEY {
        let curve = algorithm.read(OID)?;
        algorithm.finish()?;
        if curve == OID_P256 {
            Ok(PublicKey::P256(key.to_vec()))
        } else if curve == OID_P384 {
            Ok(PublicKey::P384(key.to_vec()))
        } else {
            Err(ConfigError::KeyAlgorithmMismatch(
                "unsupported elliptic curve",
            ))
        }
    } else if oid == OID_ED25519 {
        algorithm.finish()?;
        Ok(PublicKey::Ed25519(key.to_vec()))
    } else {
        Err(ConfigError::KeyAlgorithmMismatch(
            "unsupported public key algorithm",
        ))
    }
}

/// The key type of a PKCS#8 private key, as its `AlgorithmIdentifier` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PrivateKeyType {
    Rsa,
    P256,
    P384,
    Ed25519,
}

/// Reads a PKCS#8 `PrivateKeyInfo` / `OneAsymmetricKey` (RFC 5208, RFC 5958): the key type its
/// `AlgorithmIdentifier` (and, for EC, curve) names, and the contents of its `privateKey`
/// OCTET STRING (a PKCS#1 `RSAPrivateKey`, a SEC1 `ECPrivateKey`, or for Ed25519 an OCTET
/// STRING holding the 32-byte seed, RFC 8410). Attributes and (in version 2) the public key
/// may follow; nothing else may.
pub(crate) fn private_key_info(der: &[u8]) -> Result<(PrivateKeyType, &[u8]), ConfigError> {
    let mut outer = Reader(der);
    let mut info = Reader(outer.read(SEQUENCE)?);
    outer.finish()?;
    let version = match info.read(INTEGER)? {
        [0] => 0,
        [1] => 1,
        _ => return Err(bad("unsupported pkcs#8 version")),
    };
    let mut algorithm = Reader(info.read(SEQUENCE)?);
    let private_key = info.read(OCTET_STRING)?;
    if info.peek() == Some(PKCS8_ATTRIBUTES) {
        info.read(PKCS8_ATTRIBUTES)?;
    }
    if version == 1 && info.peek() == Some(PKCS8_PUBLIC_KEY) {
        info.read(PKCS8_PUBLIC_KEY)?;
    }
    info.finish()?;

    let oid = algorithm.read(OID)?;
    let key_type = if oid == OID_RSA_ENCRYPTION {
        if !algorithm.is_empty() && !algorithm.read(NULL)?.is_empty() {
            return Err(bad("rsa parameters must be null"));
        }
        PrivateKeyType::Rsa
    } else if oid == OID_EC_PUBLIC_KEY {
        let curve = algorithm.read(OID)?;
        if curve == OID_P256 {
            PrivateKeyType::P256
        } else if curve == OID_P384 {
            PrivateKeyType::P384
        } else {
            return Err(ConfigError::KeyAlgorithmMismatch(
                "unsupported elliptic curve (P-256 and P-384 are supported)",
            ));
        }
    } else if oid == OID_ED25519 {
        PrivateKeyType::Ed25519
    } else {
        return Err(ConfigError::KeyAlgorithmMismatch(
            "unsupported private key algorithm (RSA, P-256, P-384 and Ed25519 are supported)",
        ));
    };
    algorithm.finish()?;
    Ok((key_type, private_key))
}

/// The 32-byte seed inside the `privateKey` of an Ed25519 PKCS#8 key (RFC 8410 section 7:
/// `CurvePrivateKey ::= OCTET STRING`).
pub(crate) fn ed25519_seed(private_key: &[u8]) -> Result<&[u8; 32], ConfigError> {
    let mut reader = Reader(private_key);
    let seed = reader.read(OCTET_STRING)?;
    reader.finish()?;
    seed.try_into()
        .map_err(|_| bad("ed25519 private key must be 32 bytes"))
}

/// The PKCS#8 version 1 encoding of an Ed25519 private key (RFC 8410 section 7): a fixed
/// 16-byte prefix, then the seed.
pub(crate) fn ed25519_pkcs8(seed: &[u8; 32]) -> zeroize::Zeroizing<Vec<u8>> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, // SEQUENCE, 46 bytes
        0x02, 0x01, 0x00, // INTEGER 0 (version 1)
        0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, // AlgorithmIdentifier { id-Ed25519 }
        0x04, 0x22, 0x04, 0x20, // OCTET STRING { OCTET STRING, 32 bytes }
    ];
    let mut der = zeroize::Zeroizing::new(Vec::with_capacity(PREFIX.len() + seed.len()));
    der.extend_from_slice(&PREFIX);
    der.extend_from_slice(seed);
    der
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_fixture_key_type() {
        assert!(
            matches!(subject_public_key_info(&crate::fixtures::key_file("rsa2048.pub.der")), Ok(PublicKey::Rsa { n, e }) if n.len() == 256 && e == [1, 0, 1])
        );
        assert!(
            matches!(subject_public_key_info(&crate::fixtures::key_file("p256.pub.der")), Ok(PublicKey::P256(p)) if p.len() == 65)
        );
        assert!(
            matches!(subject_public_key_info(&crate::fixtures::key_file("p384.pub.der")), Ok(PublicKey::P384(p)) if p.len() == 97)
        );
        assert!(
            matches!(subject_public_key_info(&crate::fixtures::key_file("ed25519.pub.der")), Ok(PublicKey::Ed25519(p)) if p.len() == 32)
        );
    }

    #[test]
    fn rejects_trailing_bytes_truncation_and_indefinite_lengths() {
        let mut der = crate::fixtures::key_file("p256.pub.der");
        der.push(0);
        assert!(subject_public_key_info(&der).is_err());
        let der = crate::fixtures::key_file("p256.pub.der");
        for len in 0..der.len() {
            assert!(
                subject_public_key_info(&der[..len]).is_err(),
                "prefix {len}"
            );
        }
        assert!(subject_public_key_info(&[0x30, 0x80, 0, 0]).is_err());
        // Long-form length for a short value is not DER.
        assert!(rsa_public_key(&[0x30, 0x81, 0x06, 0x02, 0x01, 0x03, 0x02, 0x01, 0x03]).is_err());
    }

    #[test]
    fn integers_must_be_positive_and_minimal() {
        assert!(positive_integer(&[0x80]).is_err());
        assert!(positive_integer(&[0x00, 0x01]).is_err());
        assert!(positive_integer(&[]).is_err());
        assert_eq!(positive_integer(&[0x00, 0x80]).unwrap(), vec![0x80]);
    }

    #[test]
    fn private_key_der_is_not_a_public_key() {
        assert!(subject_public_key_info(&crate::fixtures::key_file("p256.pkcs8.der")).is_err());
        assert!(subject_public_key_info(&crate::fixtures::key_file("rsa2048.pkcs1.der")).is_err());
        for private in ["p256.pkcs8.der", "rsa2048.pkcs1.der", "ed25519.pkcs8.der"] {
            assert!(
                looks_like_private_key(&crate::fixtures::key_file(private)),
                "{private}"
            );
        }
        for public in ["p256.pub.der", "rsa2048.pub.der", "ed25519.pub.der"] {
            assert!(
                !looks_like_private_key(&crate::fixtures::key_file(public)),
                "{public}"
            );
        }
    }

    #[test]
    fn reads_pkcs8_private_keys() {
        for (file, expected) in [
            ("p256.pkcs8.der", PrivateKeyType::P256),
            ("ed25519.pkcs8.der", PrivateKeyType::Ed25519),
        ] {
            let der = crate::fixtures::key_file(file);
            assert_eq!(private_key_info(&der).unwrap().0, expected, "{file}");
        }
        let der = crate::fixtures::key_file("ed25519.pkcs8.der");
        let (_, private_key) = private_key_info(&der).unwrap();
        let seed = ed25519_seed(private_key).unwrap();
        assert_eq!(*ed25519_pkcs8(seed), der);
        // Public keys and PKCS#1 are not PKCS#8; trailing bytes and truncation fail.
        assert!(private_key_info(&crate::fixtures::key_file("p256.pub.der")).is_err());
        assert!(private_key_info(&crate::fixtures::key_file("rsa2048.pkcs1.der")).is_err());
        let mut long = der.clone();
        long.push(0);
        assert!(private_key_info(&long).is_err());
        for len in 0..der.len() {
            assert!(private_key_info(&der[..len]).is_err(), "prefix {len}");
        }
    }
}
