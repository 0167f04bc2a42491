//! Compact JWS (RFC 7515): steps 1 to 4 of the token path, the part attacker bytes reach first.
//!
//! 1. length cap, before anything else;
//! 2. exactly three segments, header and signature non-empty, each canonical base64url (no
//!    padding, no whitespace, no `+` or `/`, no stray trailing bits);
//! 3. the header: one typed parse of a JSON object without duplicate members; `alg` on the
//!    allow-list and equal to the selected key's algorithm; unknown `crit` refused; `typ`
//!    checked when required; `jku`, `x5u`, `jwk`, `x5c` never used;
//! 4. the signature, with the key's prebuilt verifier.
//!
//! [`KeySet::verify_jws`](crate::KeySet::verify_jws) exposes these steps alone, for payloads
//! that are not JWT claims:
//!
//! ```
//! use tower_jwt_auth::{Algorithm, KeySet, TokenSigner};
//!
//! let secret = [9u8; 32];
//! let token = TokenSigner::hmac(Algorithm::HS256, &secret)?.sign_raw(br#"{"alg":"HS256"}"#, b"hello")?;
//! let jws = KeySet::hmac(Algorithm::HS256, &secret)?.verify_jws(&token)?;
//! assert_eq!(jws.payload(), b"hello");
//! assert_eq!(jws.algorithm(), Algorithm::HS256);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cell::Cell;
use std::fmt;
use std::ops::Deref;

use base64::Engine;

use crate::algorithm::Algorithm;
use crate::encoding::BASE64URL;
use crate::error::{AuthError, ErrorKind};
use crate::keys::KeySet;

mod header;
mod memo;

/// The default maximum token length in bytes.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// The largest signature any supported algorithm produces (RSA with an 8192-bit modulus).
const MAX_SIGNATURE_LEN: usize = 1024;

pub(crate) const MALFORMED: AuthError = AuthError::new(ErrorKind::Malformed);

/// The header rules of one verifier.
#[derive(Clone, Debug)]
pub(crate) struct HeaderPolicy {
    pub(crate) max_len: usize,
    /// Allowed algorithms as a bit set of [`Algorithm::bit`].
    pub(crate) algorithms: u16,
    /// The required `typ`, lowercase and without an `application/` prefix.
    pub(crate) typ: Option<Box<str>>,
    /// Extension names this verifier's application understands and processes itself.
    pub(crate) critical: Box<[Box<str>]>,
    /// Identifies this policy in the header memo; 0 for none. Never reused.
    pub(crate) memo_id: u64,
}

impl HeaderPolicy {
    pub(crate) fn for_keys(keys: &KeySet) -> Self {
        Self {
            max_len: DEFAULT_MAX_TOKEN_LEN,
            algorithms: keys.algorithm_bits(),
            typ: None,
            critical: Box::default(),
            memo_id: 0,
        }
    }
}

/// The most a thread keeps of a decoding buffer for its next token: more than a token at the
/// default length cap needs (its header and payload decode to under 6 KiB).
const SPARE_CAPACITY: usize = 16 * 1024;

thread_local! {
    /// The decoding buffer of this thread's last token, kept for its next one, so that a
    /// verification allocates no buffer of its own once its thread has verified a token.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A decoding buffer, taken from this thread's spare and given back (wiped) when dropped.
struct Buffer(Vec<u8>);

impl Buffer {
    fn with_capacity(capacity: usize) -> Self {
        let mut buf = SPARE.try_with(Cell::take).unwrap_or_default();
        buf.reserve(capacity);
        Self(buf)
    }
}

impl Deref for Buffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // Decoded claims do not outlive their verification in the spare.
        self.0.fill(0);
        self.0.clear();
        if self.0.capacity() <= SPARE_CAPACITY {
            let buf = std::mem::take(&mut self.0);
            // During thread teardown the slot may be gone; the buffer is then freed.
            let _ = SPARE.try_with(|spare| spare.set(buf));
        }
    }
}

/// A JWS whose signature verified: the decoded header and payload in one buffer.
pub(crate) struct Checked {
    buf: Buffer,
    header_len: usize,
    pub(crate) alg: Algorithm,
}

impl Checked {
    pub(crate) fn payload(&self) -> &[u8] {
        &self.buf.0[self.header_len..]
    }

    /// The decoded header; empty when the header memo answered (never on the
    /// [`KeySet::verify_jws`] path, whose policy has no memo id).
    pub(crate) fn header(&self) -> &[u8] {
        &self.buf.0[..self.header_len]
    }
}

/// Steps 1 to 4. `allow_empty_payload` is for plain JWS (RFC 7515 allows an empty payload);
/// JWT claims are never empty.
pub(crate) fn verify_compact(
    keys: &KeySet,
    token: &[u8],
    policy: &HeaderPolicy,
    allow_empty_payload: bool,
) -> Result<Checked, AuthError> {
    // 1. Length, before anything else.
    if token.len() > policy.max_len {
        return Err(AuthError::new(ErrorKind::TooLong));
    }

    // 2. Three segments, canonical base64url.
    let Segments {
        header: header_b64,
        payload: payload_b64,
        signature: signature_b64,
        signing_input,
    } = split(token)?;
    if header_b64.is_empty()
        || signature_b64.is_empty()
        || (payload_b64.is_empty() && !allow_empty_payload)
    {
        return Err(MALFORMED);
    }
    // A header this verifier already accepted, byte for byte, for a token whose signature then
    // verified, needs neither decoding nor parsing again (see `memo`).
    let remembered = memo::lookup(policy.memo_id, keys.id(), header_b64);
    let header_capacity = match remembered {
        Some(_) => 0,
        None => base64::decoded_len_estimate(header_b64.len()),
    };
    let mut buf =
        Buffer::with_capacity(header_capacity + base64::decoded_len_estimate(payload_b64.len()));
    if remembered.is_none() {
        BASE64URL
            .decode_vec(header_b64, &mut buf.0)
            .map_err(|_| MALFORMED)?;
    }
    let header_len = buf.0.len();
    BASE64URL
        .decode_vec(payload_b64, &mut buf.0)
        .map_err(|_| MALFORMED)?;
    let mut signature = [0u8; MAX_SIGNATURE_LEN];
    let signature_len = BASE64URL
        .decode_slice(signature_b64, &mut signature)
        .map_err(|_| MALFORMED)?;

    // 3. The header.
    let (index, alg) = match remembered {
        Some(outcome) => outcome,
        None => header::check(keys, &buf.0[..header_len], policy)?,
    };

    // 4. The signature.
    keys.key(index)
        .verify(signing_input, &signature[..signature_len])?;
    if remembered.is_none() {
        memo::remember(policy.memo_id, keys.id(), header_b64, index, alg);
    }
    Ok(Checked {
        buf,
        header_len,
        alg,
    })
}

/// The `kid` of a token's header, read without verifying anything: for deciding whether a key
/// source should look for a key it does not have (never for choosing a key). `None` when the
/// token has no readable header or no `kid`, or a `kid` longer than `max_len` bytes.
#[cfg(feature = "remote-jwks")]
pub(crate) fn unverified_kid(token: &[u8], max_len: usize) -> Option<String> {
    let segments = split(token).ok()?;
    let header = BASE64URL.decode(segments.header).ok()?;
    let kid = header::parse_header(&header).ok()?.kid?;
    (kid.len() <= max_len).then(|| kid.into_owned())
}

/// The decoded payload of a token, unverified: only for choosing which verifier will then
/// check the whole token.
pub(crate) fn unverified_payload(token: &[u8]) -> Result<impl Deref<Target = [u8]>, AuthError> {
    let segments = split(token)?;
    if segments.header.is_empty() || segments.signature.is_empty() {
        return Err(MALFORMED);
    }
    let mut buf = Buffer::with_capacity(base64::decoded_len_estimate(segments.payload.len()));
    BASE64URL
        .decode_vec(segments.payload, &mut buf.0)
        .map_err(|_| MALFORMED)?;
    Ok(buf)
}

/// The three segments of a compact JWS and the signing input `header.payload`.
struct Segments<'a> {
    header: &'a [u8],
    payload: &'a [u8],
    signature: &'a [u8],
    signing_input: &'a [u8],
}

/// Splits into exactly three segments.
fn split(token: &[u8]) -> Result<Segments<'_>, AuthError> {
    // The first and the last dot: only the header and the signature are scanned. A dot between
    // them stays in the payload, where strict base64url decoding rejects it.
    let first = memchr::memchr(b'.', token).ok_or(MALFORMED)?;
    let second = memchr::memrchr(b'.', token)
        .filter(|&last| last > first)
        .ok_or(MALFORMED)?;
    Ok(Segments {
        header: &token[..first],
        payload: &token[first + 1..second],
        signature: &token[second + 1..],
        signing_input: &token[..second],
    })
}

/// A JWS whose signature verified with a key of a [`KeySet`], from
/// [`KeySet::verify_jws`](crate::KeySet::verify_jws).
pub struct VerifiedJws {
    checked: Checked,
}

impl VerifiedJws {
    /// The algorithm it was verified with (always the key's algorithm).
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.checked.alg
    }

    /// The decoded payload.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        self.checked.payload()
    }

    /// The decoded JOSE header, a JSON object.
    #[must_use]
    pub fn header(&self) -> &[u8] {
        self.checked.header()
    }
}

impl fmt::Debug for VerifiedJws {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedJws")
            .field("algorithm", &self.checked.alg)
            .field("payload_len", &self.payload().len())
            .finish_non_exhaustive()
    }
}

impl KeySet {
    /// Steps 1 to 4 of the token path on a compact JWS whose payload need not be JWT claims:
    /// length cap ([`DEFAULT_MAX_TOKEN_LEN`]), structure, canonical base64url, strict header,
    /// `alg` bound to the selected key, no `crit` extensions, signature. The payload may be
    /// empty.
    ///
    /// # Errors
    ///
    /// An [`AuthError`] of kind [`TooLong`](ErrorKind::TooLong),
    /// [`Malformed`](ErrorKind::Malformed), [`Algorithm`](ErrorKind::Algorithm),
    /// [`UnknownKey`](ErrorKind::UnknownKey),
    /// [`UnsupportedCritical`](ErrorKind::UnsupportedCritical) or
    /// [`InvalidSignature`](ErrorKind::InvalidSignature).
    pub fn verify_jws(&self, token: &str) -> Result<VerifiedJws, AuthError> {
        let policy = HeaderPolicy::for_keys(self);
        verify_compact(self, token.as_bytes(), &policy, true).map(|checked| VerifiedJws { checked })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_is_canonical() {
        let ok = |s: &str| BASE64URL.decode(s).is_ok();
        assert!(ok("Zm9v"));
        assert!(ok("_-8"));
        assert!(!ok("Zm9v="), "padding");
        assert!(!ok("Zg=="), "padding");
        assert!(!ok("Zm 9v"), "space");
        assert!(!ok("Zm9v\n"), "newline");
        assert!(!ok("+/8"), "standard alphabet");
        assert!(!ok("Zh"), "non-zero trailing bits");
        assert!(!ok("Z"), "impossible length");
    }

    #[test]
    fn split_requires_exactly_three_segments() {
        let segments = split(b"ab.cd.ef").unwrap();
        assert_eq!(segments.header, b"ab");
        assert_eq!(segments.payload, b"cd");
        assert_eq!(segments.signature, b"ef");
        assert_eq!(segments.signing_input, b"ab.cd");
        for bad in [&b"a"[..], b"", b"ab", b"a.b", b".", b"ab."] {
            assert!(split(bad).is_err(), "{bad:?}");
        }
        // An empty payload is a segment; the caller decides whether it may be empty.
        assert_eq!(split(b"a..b").unwrap().payload, b"");
        // Extra dots stay in the payload, where base64url decoding refuses them.
        assert_eq!(split(b"a.b.c.d").unwrap().payload, b"b.c");
        assert!(BASE64URL.decode("b.c").is_err());
    }

    fn spare_capacity() -> usize {
        SPARE.with(|spare| {
            let buf = spare.take();
            let capacity = buf.capacity();
            assert!(buf.is_empty(), "the spare is kept empty");
            spare.set(buf);
            capacity
        })
    }

    #[test]
    fn the_decoding_buffer_is_kept_for_the_next_token_unless_large() {
        let keys = KeySet::hmac(Algorithm::HS256, &[5; 32]).unwrap();
        let signer = crate::signer::TokenSigner::hmac(Algorithm::HS256, &[5; 32]).unwrap();
        let mut policy = HeaderPolicy::for_keys(&keys);
        let token = signer
            .sign_raw(br#"{"alg":"HS256"}"#, &[b'x'; 300])
            .unwrap();
        SPARE.with(Cell::take);
        let checked = verify_compact(&keys, token.as_bytes(), &policy, false).unwrap();
        assert_eq!(checked.payload(), &[b'x'; 300][..]);
        assert_eq!(spare_capacity(), 0, "in use, not spare");
        drop(checked);
        let kept = spare_capacity();
        assert!(kept >= 300, "kept after use: {kept}");
        // A refused token gives it back too.
        let mut forged = token.clone().into_bytes();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        assert!(verify_compact(&keys, &forged, &policy, false).is_err());
        assert_eq!(spare_capacity(), kept);
        assert_eq!(
            &*unverified_payload(token.as_bytes()).unwrap(),
            &[b'x'; 300][..]
        );
        assert_eq!(spare_capacity(), kept);
        // A buffer larger than a token at the default cap needs is freed, not kept.
        policy.max_len = 64 * 1024;
        let large = signer
            .sign_raw(br#"{"alg":"HS256"}"#, &[b'y'; 20 * 1024])
            .unwrap();
        drop(verify_compact(&keys, large.as_bytes(), &policy, false).unwrap());
        assert_eq!(spare_capacity(), 0);
    }
}
