//! Base64url without padding, the one encoding of JWS segments, JWK members and the random
//! identifiers the crate mints. A leaf: it imports nothing from the crate.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Unpadded base64url that refuses padding, characters outside the URL-safe alphabet
/// (whitespace, `+`, `/`), impossible lengths and non-zero trailing bits: one encoding per
/// byte string (RFC 7515 section 2, RFC 4648 section 3.5).
pub(crate) const BASE64URL: base64::engine::GeneralPurpose = URL_SAFE_NO_PAD;
