//! The crate's two error types: [`ConfigError`] when something is built, [`AuthError`] per
//! request.
//!
//! ```
//! use tower_jwt_auth::{Algorithm, ConfigError, ErrorKind, KeySet, Verifier};
//!
//! // Configuration mistakes surface when keys or verifiers are built...
//! let short = KeySet::hmac(Algorithm::HS256, b"too short");
//! assert!(matches!(short, Err(ConfigError::WeakHmacSecret { .. })));
//!
//! // ...and a rejected token is an `AuthError` with a stable kind.
//! let keys = KeySet::hmac(Algorithm::HS256, &[7u8; 32])?;
//! let verifier = Verifier::builder(keys).issuer("https://issuer.example").audience("api").build()?;
//! let err = verifier.verify("not-a-token").unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Malformed);
//! assert_eq!(err.kind().as_str(), "malformed");
//! # Ok::<(), ConfigError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use crate::algorithm::Algorithm;

/// Why a token was rejected. Stable: use it for metrics, logs and response mapping.
///
/// The string form ([`ErrorKind::as_str`]) is a fixed, lowercase reason code that never contains
/// any part of the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No token was presented.
    Missing,
    /// The token is longer than the configured maximum; it was not decoded.
    TooLong,
    /// Not a compact JWS: wrong number of segments, empty segment, non-canonical base64url,
    /// header or payload not a JSON object, duplicate members, wrongly typed header members.
    Malformed,
    /// The `alg` is not allowed: `none`, unknown, outside the allow-list, or not the algorithm
    /// the selected key is bound to.
    Algorithm,
    /// No key in the key set matches the token's `kid`.
    UnknownKey,
    /// The header lists a critical extension (`crit`) this verifier does not understand.
    UnsupportedCritical,
    /// The signature does not verify with the selected key.
    InvalidSignature,
    /// The `typ` header does not match the required token type.
    WrongType,
    /// A required claim is absent.
    MissingClaim,
    /// A claim has the wrong JSON type or an out-of-range value.
    InvalidClaim,
    /// The token has expired (`exp`, with leeway).
    Expired,
    /// The token is not valid yet (`nbf`, with leeway).
    NotYetValid,
    /// The token claims to be issued in the future (`iat`, with leeway).
    IssuedInFuture,
    /// The `iss` claim is not an accepted issuer.
    WrongIssuer,
    /// The `aud` claim contains none of the accepted audiences.
    WrongAudience,
    /// The credentials are malformed or were sent more than once (several `Authorization`
    /// headers, a header and a cookie, a value outside the RFC 6750 grammar).
    InvalidRequest,
    /// The token lacks a role or scope the route requires.
    InsufficientScope,
    /// The token verified but has been revoked: its `jti` or its session (`sid`) is on the
    /// denylist, or it was issued before the user's "log out everywhere" instant.
    Revoked,
    /// Something the verdict depends on could not be had: remote keys that are not fetched
    /// (or stale beyond their limit), or a revocation store that cannot answer (and the layer
    /// fails closed). Answered 503, gRPC `UNAVAILABLE`; the token itself was not judged.
    Unavailable,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    #[cfg(test)]
    pub(crate) const ALL: [ErrorKind; 19] = [
        Self::Missing,
        Self::TooLong,
        Self::Malformed,
        Self::Algorithm,
        Self::UnknownKey,
        Self::UnsupportedCritical,
        Self::InvalidSignature,
        Self::WrongType,
        Self::MissingClaim,
        Self::InvalidClaim,
        Self::Expired,
        Self::NotYetValid,
        Self::IssuedInFuture,
        Self::WrongIssuer,
        Self::WrongAudience,
        Self::InvalidRequest,
        Self::InsufficientScope,
        Self::Revoked,
        Self::Unavailable,
    ];

    /// A short, stable, lowercase reason code (`"expired"`, `"invalid_signature"`, ...).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::TooLong => "too_long",
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm",
            Self::UnknownKey => "unknown_key",
            Self::UnsupportedCritical => "unsupported_critical",
            Self::InvalidSignature => "invalid_signature",
            Self::WrongType => "wrong_type",
            Self::MissingClaim => "missing_claim",
            Self::InvalidClaim => "invalid_claim",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::InvalidRequest => "invalid_request",
            Self::InsufficientScope => "insufficient_scope",
            Self::Revoked => "revoked",
            Self::Unavailable => "unavailable",
        }
    }

    /// A human-readable description, safe to show to the client.
    #[must_use]
    pub const fn description(self) -> &'static str {
        match self {
            Self::Missing => "no token",
            Self::TooLong => "token too long",
            Self::Malformed => "malformed token",
            Self::Algorithm => "algorithm not allowed",
            Self::UnknownKey => "unknown key",
            Self::UnsupportedCritical => "unsupported critical header",
            Self::InvalidSignature => "invalid signature",
            Self::WrongType => "wrong token type",
            Self::MissingClaim => "missing required claim",
            Self::InvalidClaim => "invalid claim",
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::IssuedInFuture => "token issued in the future",
            Self::WrongIssuer => "wrong issuer",
            Self::WrongAudience => "wrong audience",
            Self::InvalidRequest => "malformed credentials",
            Self::InsufficientScope => "insufficient scope",
            Self::Revoked => "token revoked",
            Self::Unavailable => "authentication temporarily unavailable",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// A token was rejected.
///
/// Opaque: inspect it with [`AuthError::kind`] and [`AuthError::claim`]. Neither its `Display`
/// nor its `Debug` output ever contains bytes of the token; the only detail it carries is the
/// name of a registered claim (such as `exp`), which comes from this crate, not from the token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthError {
    kind: ErrorKind,
    claim: Option<&'static str>,
}

impl AuthError {
    pub(crate) const fn new(kind: ErrorKind) -> Self {
        Self { kind, claim: None }
    }

    pub(crate) const fn claim_error(kind: ErrorKind, claim: &'static str) -> Self {
        Self {
            kind,
            claim: Some(claim),
        }
    }

    /// Why the token was rejected.
    #[must_use]
    pub const fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The claim concerned, for [`ErrorKind::MissingClaim`], [`ErrorKind::InvalidClaim`] and the
    /// time-based kinds (for example `Some("exp")`).
    #[must_use]
    pub const fn claim(&self) -> Option<&'static str> {
        self.claim
    }
}

impl From<ErrorKind> for AuthError {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind)
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("AuthError");
        d.field("kind", &self.kind);
        if let Some(claim) = self.claim {
            d.field("claim", &claim);
        }
        d.finish()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.claim {
            Some(claim) => write!(f, "{} (`{claim}`)", self.kind.description()),
            None => f.write_str(self.kind.description()),
        }
    }
}

impl std::error::Error for AuthError {}

/// Building a key set, a verifier or a signer failed.
///
/// Returned only while configuring; nothing on the request path produces it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// An HMAC secret is shorter than the output of its hash (RFC 7518 section 3.2).
    WeakHmacSecret {
        /// The algorithm the secret was meant for.
        algorithm: Algorithm,
        /// The minimum length in bytes.
        min_len: usize,
        /// The length that was given.
        len: usize,
    },
    /// An RSA modulus outside the accepted size range: at least 2048 bits (NIST SP 800-131A),
    /// at most what the backend verifies (aws-lc-rs: 8192 bits; RustCrypto's `rsa`: 4096).
    RsaKeySize {
        /// The modulus size that was given.
        bits: usize,
        /// The smallest size accepted.
        min: usize,
        /// The largest size accepted.
        max: usize,
    },
    /// A key that cannot be used safely or at all: bad encoding, a point not on its curve, an
    /// RSA exponent that is even or too small, a known-weak key (ROCA).
    InvalidKey(&'static str),
    /// The key's type or curve does not fit the algorithm it was bound to.
    KeyAlgorithmMismatch(&'static str),
    /// The algorithm name is not one this crate verifies (for example `none` or `ES512`).
    UnsupportedAlgorithm(String),
    /// Private key material (`d`, `p`, `q`, ... or a private-key PEM) was given where only
    /// public keys belong.
    PrivateKeyMaterial,
    /// Two keys in one key set share a `kid` (or more than one key has no `kid`).
    DuplicateKid(Option<String>),
    /// A JWKS document mixes symmetric (`oct`) and asymmetric keys.
    MixedKeySet,
    /// A JWK or JWKS document is not valid JSON of the expected shape.
    InvalidJwk(String),
    /// A key set with no usable key.
    EmptyKeySet,
    /// No accepted issuer configured (call `issuer` or, deliberately, `accept_any_issuer`).
    MissingIssuer,
    /// No accepted audience configured (call `audience` or, deliberately, `accept_any_audience`).
    MissingAudience,
    /// A claim name that is not a registered claim this crate checks.
    UnknownClaim(String),
    /// A claim path that is not a valid JSON pointer, or points into a registered claim.
    InvalidClaimPath(String),
    /// A `crit` extension name that is itself a registered header parameter.
    InvalidCritical(String),
    /// A `typ` or other setting outside its valid range.
    InvalidSetting(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WeakHmacSecret {
                algorithm,
                min_len,
                len,
            } => write!(
                f,
                "hmac secret for {algorithm} must be at least {min_len} bytes, got {len}"
            ),
            Self::RsaKeySize { bits, min, max } => write!(
                f,
                "rsa modulus of {bits} bits is outside the accepted range ({min} to {max} bits)"
            ),
            Self::InvalidKey(why) => write!(f, "invalid key: {why}"),
            Self::KeyAlgorithmMismatch(why) => write!(f, "key does not fit its algorithm: {why}"),
            Self::UnsupportedAlgorithm(alg) => write!(f, "unsupported algorithm {alg:?}"),
            Self::PrivateKeyMaterial => {
                f.write_str("private key material where a public key was expected")
            }
            Self::DuplicateKid(Some(kid)) => write!(f, "duplicate key id {kid:?}"),
            Self::DuplicateKid(None) => f.write_str("more than one key without a key id"),
            Self::MixedKeySet => f.write_str("jwks mixes symmetric and asymmetric keys"),
            Self::InvalidJwk(why) => write!(f, "invalid jwk: {why}"),
            Self::EmptyKeySet => f.write_str("key set has no usable key"),
            Self::MissingIssuer => f.write_str("no accepted issuer configured"),
            Self::MissingAudience => f.write_str("no accepted audience configured"),
            Self::UnknownClaim(name) => write!(f, "unknown registered claim {name:?}"),
            Self::InvalidClaimPath(path) => write!(f, "invalid claim path {path:?}"),
            Self::InvalidCritical(name) => {
                write!(
                    f,
                    "{name:?} is a registered header parameter, not an extension"
                )
            }
            Self::InvalidSetting(why) => write!(f, "invalid setting: {why}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parses a registered algorithm name exactly (case-sensitive); anything else, `none`
/// included, is [`ConfigError::UnsupportedAlgorithm`]. This impl lives beside the error rather
/// than beside [`Algorithm`] so that the algorithm module stays a leaf.
impl FromStr for Algorithm {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or_else(|| ConfigError::UnsupportedAlgorithm(s.to_owned()))
    }
}

/// Signing a token failed (serialising the claims or the backend refused the key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignError(pub(crate) String);

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "signing failed: {}", self.0)
    }
}

impl std::error::Error for SignError {}

impl From<crate::ids::RandomError> for SignError {
    fn from(_: crate::ids::RandomError) -> Self {
        Self("the random number generator failed".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_claim_and_nothing_else() {
        let err = AuthError::claim_error(ErrorKind::Expired, "exp");
        assert_eq!(err.to_string(), "token expired (`exp`)");
        assert_eq!(
            format!("{err:?}"),
            "AuthError { kind: Expired, claim: \"exp\" }"
        );
        assert_eq!(
            AuthError::new(ErrorKind::Malformed).to_string(),
            "malformed token"
        );
    }

    #[test]
    fn reason_codes_are_distinct() {
        let all = ErrorKind::ALL;
        let mut codes: Vec<_> = all.iter().map(|k| k.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!(
            codes
                .iter()
                .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
    }
}
