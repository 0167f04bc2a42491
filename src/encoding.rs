//! Base64url without padding, the one encoding of JWS segments, JWK members and the random
//! identifiers the crate mints. A leaf: it imports nothing from the crate.
//!
//! ```
//! use tower_jwt_auth::{Algorithm, ErrorKind, KeySet, TokenSigner};
//!
//! let secret = [5u8; 32];
//! let keys = KeySet::hmac(Algorithm::HS256, &secret)?;
//! let token = TokenSigner::hmac(Algorithm::HS256, &secret)?.sign_raw(br#"{"alg":"HS256"}"#, b"x")?;
//! assert!(keys.verify_jws(&token).is_ok());
//! // The same signature with padding is another encoding of it: refused, not normalised.
//! let padded = format!("{token}=");
//! assert_eq!(keys.verify_jws(&padded).unwrap_err().kind(), ErrorKind::Malformed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Unpadded base64url that refuses padding, characters outside the URL-safe alphabet
/// (whitespace, `+`, `/`), impossible lengths and non-zero trailing bits: one encoding per
/// byte string (RFC 7515 section 2, RFC 4648 section 3.5).
pub(crate) const BASE64URL: base64::engine::GeneralPurpose = URL_SAFE_NO_PAD;
