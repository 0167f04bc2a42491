//! `BearerAuth`'s events and counters (names and labels in the `telemetry` module).

use crate::error::{AuthError, ErrorKind};
use crate::telemetry::{REASON, RESULT, TARGET_BEARER, VERIFICATIONS_TOTAL, count, count_by};

/// `BearerAuth` passed a request on with verified claims.
#[inline]
pub(super) fn verified() {
    count!(VERIFICATIONS_TOTAL, RESULT => "ok");
}

/// An optional `BearerAuth` let a request without credentials through.
#[inline]
pub(super) fn anonymous() {
    count!(VERIFICATIONS_TOTAL, RESULT => "anonymous");
}

/// `BearerAuth` rejected a request.
pub(super) fn rejected(error: AuthError) {
    let reason = error.kind().as_str();
    if error.kind() == ErrorKind::Unavailable {
        tracing::warn!(
            target: TARGET_BEARER,
            reason,
            "request rejected: keys or revocation store unavailable (503)"
        );
    } else {
        tracing::debug!(target: TARGET_BEARER, reason, claim = error.claim(), "request rejected");
    }
    count_by!(
        error.kind() => REASON,
        ErrorKind::{
            Missing, TooLong, Malformed, Algorithm, UnknownKey, UnsupportedCritical,
            InvalidSignature, WrongType, MissingClaim, InvalidClaim, Expired, NotYetValid,
            IssuedInFuture, WrongIssuer, WrongAudience, InvalidRequest, InsufficientScope,
            Revoked, Unavailable,
        },
        ErrorKind::as_str,
        VERIFICATIONS_TOTAL,
        [RESULT => "failed"]
    );
}
