//! `RateLimitLogin`'s events and counters (names and labels in the `telemetry` module).

use std::net::IpAddr;
use std::time::Duration;

use super::LimitReason;
use crate::telemetry::TARGET_RATE_LIMIT;
#[cfg(feature = "metrics")]
use crate::telemetry::{LIMIT, LOGIN_RATE_LIMITED_TOTAL};

/// `RateLimitLogin` answered 429.
pub(super) fn limited(client: IpAddr, reason: LimitReason, retry_after: Duration) {
    // As the answer's `Retry-After` says it (a truncated 0.9 s would log 0).
    let retry_after_secs = super::retry_after_secs(retry_after);
    if reason == LimitReason::AccountLocked {
        tracing::warn!(
            target: TARGET_RATE_LIMIT,
            reason = reason.as_str(),
            %client,
            retry_after_secs,
            "login refused: account locked after too many consecutive failures"
        );
    } else {
        tracing::info!(
            target: TARGET_RATE_LIMIT,
            reason = reason.as_str(),
            %client,
            retry_after_secs,
            "login rate-limited"
        );
    }
    #[cfg(feature = "metrics")]
    {
        use crate::telemetry::metric::{key, one};
        one(match reason {
            LimitReason::ClientAndUsername => {
                key!(LOGIN_RATE_LIMITED_TOTAL, LIMIT => LimitReason::ClientAndUsername.as_str())
            }
            LimitReason::Username => {
                key!(LOGIN_RATE_LIMITED_TOTAL, LIMIT => LimitReason::Username.as_str())
            }
            LimitReason::AccountLocked => {
                key!(LOGIN_RATE_LIMITED_TOTAL, LIMIT => LimitReason::AccountLocked.as_str())
            }
            LimitReason::Client => {
                key!(LOGIN_RATE_LIMITED_TOTAL, LIMIT => LimitReason::Client.as_str())
            }
            LimitReason::Verifications => {
                key!(LOGIN_RATE_LIMITED_TOTAL, LIMIT => LimitReason::Verifications.as_str())
            }
            LimitReason::Registrations => {
                key!(LOGIN_RATE_LIMITED_TOTAL, LIMIT => LimitReason::Registrations.as_str())
            }
        });
    }
}

/// `RateLimitLogin` answered 413: the body is over its limit.
pub(super) fn body_too_large() {
    tracing::debug!(
        target: TARGET_RATE_LIMIT,
        reason = "body_too_large",
        "login rejected: body too large (413)"
    );
}

/// `RateLimitLogin` answered 500: the app gives it no peer address.
pub(super) fn without_peer() {
    #[cfg(feature = "router")]
    let message = "RateLimitLogin: no peer address in the request extensions (insert ClientAddr or use axum's ConnectInfo); answering 500";
    #[cfg(not(feature = "router"))]
    let message = "RateLimitLogin: no peer address in the request extensions (insert ClientAddr); answering 500";
    tracing::error!(target: TARGET_RATE_LIMIT, reason = "no_peer_address", "{message}");
}

/// The limiter store answered again after an outage: limits are shared again.
pub(super) fn store_recovered() {
    tracing::warn!(
        target: TARGET_RATE_LIMIT,
        "RateLimitLogin: limiter store answers again; limits are shared again"
    );
}

/// The limiter store failed again while the layer was already limiting in process memory
/// (counted; logged once, when the fallback began).
pub(super) fn store_still_failing(error: &crate::store::StoreError) {
    crate::store::failed_again(crate::store::Kind::Limiter, error);
}
