//! The login router's events and counters (names and labels in the `telemetry` module).

use crate::telemetry::{
    AUDIT_EVENTS_TOTAL, EVENT, LOGINS_TOTAL, REASON, REFRESH_REUSE_TOTAL, REFRESHES_TOTAL, RESULT,
    TARGET_AUDIT, TARGET_ROUTER, count, count_by,
};

/// The grant type of a token request, as far as it is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Grant {
    Password,
    RefreshToken,
    AuthorizationCode,
    /// Missing, unsupported, or the body could not be read.
    Other,
}

impl Grant {
    pub(super) fn of(grant_type: Option<&str>) -> Self {
        match grant_type {
            Some("password") => Self::Password,
            Some("refresh_token") => Self::RefreshToken,
            Some("authorization_code") => Self::AuthorizationCode,
            _ => Self::Other,
        }
    }

    const fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::RefreshToken => "refresh_token",
            Self::AuthorizationCode => "authorization_code",
            Self::Other => "other",
        }
    }
}

/// The `error` code of a router answer: RFC 6749 §5.2, plus the two server-side ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RouterError {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    TemporarilyUnavailable,
    ServerError,
}

impl RouterError {
    pub(super) const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }
}

/// The token endpoint answered: `Ok` with tokens, or with this error.
pub(super) fn token_answered(grant: Grant, outcome: Result<(), RouterError>) {
    let Err(error) = outcome else {
        match grant {
            // A code exchange ends an external sign-in: a login too.
            Grant::Password | Grant::AuthorizationCode => {
                count!(LOGINS_TOTAL, RESULT => "ok");
            }
            Grant::RefreshToken => {
                count!(REFRESHES_TOTAL, RESULT => "ok");
            }
            Grant::Other => {}
        }
        return;
    };
    tracing::debug!(
        target: TARGET_ROUTER,
        reason = error.as_str(),
        endpoint = "token",
        grant = grant.as_str(),
        "token request rejected"
    );
    match grant {
        Grant::Password | Grant::AuthorizationCode => {
            count_by!(
                error => REASON,
                RouterError::{
                    InvalidRequest, InvalidClient, InvalidGrant, UnauthorizedClient,
                    UnsupportedGrantType, InvalidScope, TemporarilyUnavailable, ServerError,
                },
                RouterError::as_str,
                LOGINS_TOTAL,
                [RESULT => "failed"]
            );
        }
        Grant::RefreshToken => {
            count_by!(
                error => REASON,
                RouterError::{
                    InvalidRequest, InvalidClient, InvalidGrant, UnauthorizedClient,
                    UnsupportedGrantType, InvalidScope, TemporarilyUnavailable, ServerError,
                },
                RouterError::as_str,
                REFRESHES_TOTAL,
                [RESULT => "failed"]
            );
        }
        Grant::Other => {}
    }
}

/// `/revoke`, `/logout`, `/logout/all` or `/register` answered with this error.
pub(super) fn rejected(endpoint: &'static str, error: RouterError) {
    tracing::debug!(
        target: TARGET_ROUTER,
        reason = error.as_str(),
        endpoint,
        "request rejected"
    );
}

/// A rotated refresh token was presented again; its session is being revoked.
pub(super) fn refresh_reused(user: &str, sid: &str) {
    tracing::warn!(
        target: TARGET_ROUTER,
        reason = "refresh_reuse",
        user,
        sid,
        "refresh token reuse detected, session revoked"
    );
    count!(REFRESH_REUSE_TOTAL);
}

/// A rotated refresh token was presented again within the grace period by its own client:
/// a retry, answered with the same new token.
pub(super) fn refresh_retried(user: &str, sid: &str) {
    tracing::info!(
        target: TARGET_ROUTER,
        reason = "refresh_retry",
        user,
        sid,
        "refresh retried within the grace period"
    );
}

/// A login past the user's session cap ended the user's oldest session.
pub(super) fn session_evicted(user: &str, sid: &str) {
    tracing::info!(
        target: TARGET_ROUTER,
        reason = "session_cap",
        user,
        sid,
        "auth router: oldest session ended to stay within the per-user session cap"
    );
}

/// A change to an account, for the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Audit {
    PasswordChanged,
    UserDisabled,
    UserEnabled,
    GrantsChanged,
    UserDeleted,
    SelfDeleted,
    PasswordReset,
    EmailVerified,
    #[cfg_attr(not(feature = "external"), allow(dead_code))]
    IdentityLinked,
    #[cfg_attr(not(feature = "external"), allow(dead_code))]
    IdentityUnlinked,
}

impl Audit {
    pub(super) const fn as_str(self) -> &'static str {
        match self {
            Self::PasswordChanged => "password_changed",
            Self::UserDisabled => "user_disabled",
            Self::UserEnabled => "user_enabled",
            Self::GrantsChanged => "grants_changed",
            Self::UserDeleted => "user_deleted",
            Self::SelfDeleted => "self_deleted",
            Self::PasswordReset => "password_reset",
            Self::EmailVerified => "email_verified",
            Self::IdentityLinked => "identity_linked",
            Self::IdentityUnlinked => "identity_unlinked",
        }
    }
}

/// `actor` (a user id) made the change `event` to the account `subject` (a user id). Ids
/// only: never a username, an address or a secret.
pub(super) fn audit(event: Audit, actor: &str, subject: &str) {
    tracing::info!(
        target: TARGET_AUDIT,
        event = event.as_str(),
        actor,
        subject,
        "account changed"
    );
    count_by!(
        event => EVENT,
        Audit::{
            PasswordChanged, UserDisabled, UserEnabled, GrantsChanged, UserDeleted, SelfDeleted,
            PasswordReset, EmailVerified, IdentityLinked, IdentityUnlinked,
        },
        Audit::as_str,
        AUDIT_EVENTS_TOTAL
    );
}
