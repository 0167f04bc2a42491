//! Account mail: `POST /password/forgot`, `POST /password/reset`, `POST /email/verify` and
//! `POST /email/verify/resend`, and the verification mail sent on registration.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Request, State as AxumState};
use http::StatusCode;
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::State;
use super::account::counted;
use super::endpoints::{
    Outcome, Stop, end_all_sessions, hashing_client, json_body, password_policy,
};
use super::events::{Audit, audit};
use super::refresh::{RefreshToken, TokenHash};
use super::reply::{self, OAuthError, Reply};
use super::users::{
    AccountToken, Changed, Issued, TokenPurpose, User, UserChange, find_login_user,
};
use crate::error::ConfigError;
use crate::mail::{MailTemplates, Mailer};
use crate::telemetry::{TARGET_MAIL, TARGET_ROUTER};

/// How long a password-reset link works unless
/// [`reset_ttl`](super::AuthRouterBuilder::reset_ttl) says otherwise: 30 minutes.
pub const DEFAULT_RESET_TTL: Duration = Duration::from_secs(30 * 60);
/// How long an e-mail verification link works: 24 hours.
pub const DEFAULT_VERIFICATION_TTL: Duration = Duration::from_secs(24 * 3600);
/// The least time between two mails of one kind to one account: a request sooner than this
/// after the last mail sends nothing (and answers as always), and the earlier link stays good.
pub const MAIL_INTERVAL: Duration = Duration::from_secs(60);
/// How many mail requests one router works on at once, beyond which it drops them (logged;
/// the answer is the same): a flood of requests cannot queue unbounded work.
pub const MAX_MAIL_JOBS: usize = 64;
/// How long one mail request may take, lookups and delivery included; past it, it is given up
/// (logged), so that a hung mail server or mailer cannot hold a place for good.
pub const MAIL_JOB_TIMEOUT: Duration = Duration::from_secs(30);
/// The default path of the password-reset link.
pub const RESET_PATH: &str = "/reset-password";
/// The default path of the e-mail verification link.
pub const VERIFY_PATH: &str = "/verify-email";

/// The answer to a presented token that is unknown, used, expired, or whose account cannot be
/// used: one answer for all of them.
const BAD_TOKEN: OAuthError = OAuthError::InvalidGrant("the token is invalid, used or expired");

/// How the router sends mail.
pub(super) struct MailConfig {
    mailer: Arc<dyn Mailer>,
    /// The public base URL, without a trailing `/`.
    public_url: String,
    pub(super) templates: MailTemplates,
    /// The reset and verification link paths.
    pub(super) links: (String, String),
    jobs: Arc<Semaphore>,
    /// Requests dropped since the last warning, and when (Unix seconds) it was written.
    dropped: AtomicU64,
    last_warning: AtomicU64,
}

impl MailConfig {
    pub(super) fn new(mailer: Arc<dyn Mailer>, public_url: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            mailer,
            public_url: crate::discovery::checked_url(public_url)?,
            templates: MailTemplates::default(),
            links: (RESET_PATH.to_owned(), VERIFY_PATH.to_owned()),
            jobs: Arc::new(Semaphore::new(MAX_MAIL_JOBS)),
            dropped: AtomicU64::new(0),
            last_warning: AtomicU64::new(0),
        })
    }
}

/// `ttl` checked as a link lifetime.
pub(super) fn link_ttl(ttl: Duration) -> Result<Duration, ConfigError> {
    if ttl < Duration::from_secs(60) || ttl > Duration::from_secs(24 * 3600) {
        return Err(ConfigError::InvalidSetting(
            "a mailed link must work between 1 minute and 1 day",
        ));
    }
    Ok(ttl)
}

/// Whose account a mail request names.
enum Who {
    Email(String),
    Username(String),
    /// Just registered: already known.
    User(User),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MailRequest {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

/// `POST /password/forgot`: `{email}` or `{username}`.
pub(super) async fn forgot(AxumState(state): AxumState<Arc<State>>, request: Request) -> Reply {
    let outcome = mail_request(&state, request, TokenPurpose::PasswordReset).await;
    super::endpoints::finish("password_forgot", outcome)
}

/// `POST /email/verify/resend`: `{email}` or `{username}`.
pub(super) async fn resend(AxumState(state): AxumState<Arc<State>>, request: Request) -> Reply {
    let outcome = mail_request(&state, request, TokenPurpose::EmailVerification).await;
    super::endpoints::finish("email_verify_resend", outcome)
}

/// Answers 202 at once, the same whether or not an account matches; the account is looked up
/// and mailed in the background.
async fn mail_request(state: &Arc<State>, request: Request, purpose: TokenPurpose) -> Outcome {
    let form: MailRequest = json_body(request, "body must be {email} or {username}").await?;
    let who = match (form.email, form.username) {
        (Some(email), None) => Who::Email(email),
        (None, Some(username)) => Who::Username(username),
        _ => return Err(OAuthError::invalid_request("body must be {email} or {username}").into()),
    };
    send_in_background(state, who, purpose);
    Ok(reply::json(
        StatusCode::ACCEPTED,
        &serde_json::json!({
            "status": "accepted",
            "detail": "if an account matches, a message is on its way",
        }),
    ))
}

/// Mails the verification link to a user who just registered (in the background).
pub(super) fn verification_on_registration(state: &Arc<State>, user: User) {
    if state.config.email_verification {
        send_in_background(state, Who::User(user), TokenPurpose::EmailVerification);
    }
}

fn send_in_background(state: &Arc<State>, who: Who, purpose: TokenPurpose) {
    let Some(mail) = &state.config.mail else {
        return;
    };
    let Ok(permit) = Arc::clone(&mail.jobs).try_acquire_owned() else {
        // One warning a minute at most, with the count: a flood must not flood the log too.
        let dropped = mail.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let now = state.now();
        let last = mail.last_warning.load(Ordering::Relaxed);
        if now >= last + 60
            && mail
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            mail.dropped.fetch_sub(dropped, Ordering::Relaxed);
            tracing::warn!(
                target: TARGET_MAIL,
                dropped,
                "auth router: {MAX_MAIL_JOBS} mail requests in progress; dropped the ones past it"
            );
        }
        return;
    };
    let state = Arc::clone(state);
    tokio::spawn(async move {
        let _permit = permit;
        let job = tokio::time::timeout(MAIL_JOB_TIMEOUT, send_account_mail(&state, who, purpose));
        let error = match job.await {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error,
            Err(_) => "gave up after MAIL_JOB_TIMEOUT".into(),
        };
        tracing::warn!(
            target: TARGET_MAIL,
            %error,
            purpose = purpose.as_str(),
            "auth router: account mail not sent"
        );
    });
}

type JobError = Box<dyn Error + Send + Sync>;

async fn send_account_mail(state: &State, who: Who, purpose: TokenPurpose) -> Result<(), JobError> {
    let users = &*state.config.users;
    let user = match who {
        Who::Email(email) => users.find_by_email(&email).await?,
        Who::Username(name) => find_login_user(users, &name).await?,
        Who::User(user) => Some(user),
    };
    let Some(user) = user.filter(|user| !user.disabled) else {
        return Ok(());
    };
    let Some(address) = user.email.clone() else {
        return Ok(());
    };
    if purpose == TokenPurpose::EmailVerification && user.email_verified {
        return Ok(());
    }
    let Some(mail) = &state.config.mail else {
        return Ok(());
    };
    let (ttl, template, path) = match purpose {
        TokenPurpose::PasswordReset => (
            state.config.reset_ttl,
            &mail.templates.password_reset,
            &mail.links.0,
        ),
        TokenPurpose::EmailVerification => (
            state.config.verification_ttl,
            &mail.templates.email_verification,
            &mail.links.1,
        ),
    };
    let token = RefreshToken::generate()?;
    let now = state.now();
    let issued = users
        .issue_token(
            AccountToken {
                user_id: user.id.clone(),
                purpose,
                hash: *TokenHash::of(token.as_str()).as_bytes(),
                issued_at: now,
                expires_at: now + ttl.as_secs(),
            },
            MAIL_INTERVAL.as_secs(),
        )
        .await?;
    if issued != Issued::Issued {
        tracing::debug!(
            target: TARGET_ROUTER,
            user = %user.id,
            purpose = purpose.as_str(),
            ?issued,
            "auth router: no mail sent"
        );
        return Ok(());
    }
    let link = format!("{}{path}?token={}", mail.public_url, token.as_str());
    let message = template.render(&address, &user.username, &link, ttl.as_secs() / 60);
    if let Err(error) = mail.mailer.send(message).await {
        // Nobody holds this link: discard it, so that the next request mails a new one at
        // once rather than a minute later.
        users.revoke_tokens(&user.id, purpose).await?;
        return Err(error.into());
    }
    tracing::info!(
        target: TARGET_ROUTER,
        user = %user.id,
        purpose = purpose.as_str(),
        "auth router: account mail sent"
    );
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    token: String,
    new_password: String,
}

/// `POST /password/reset`: `{token, new_password}`. Every session of the user ends.
pub(super) async fn reset(AxumState(state): AxumState<Arc<State>>, request: Request) -> Reply {
    let outcome = reset_password(&state, request).await;
    counted("password_reset", outcome)
}

async fn reset_password(state: &State, request: Request) -> Outcome {
    let client = hashing_client(&request);
    let form: ResetRequest = json_body(request, "body must be {token, new_password}").await?;
    if let Err(description) = password_policy(state, &form.new_password) {
        return Ok(reply::error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            description,
        ));
    }
    let users = &*state.config.users;
    let hash = *TokenHash::of(&form.token).as_bytes();
    let purpose = TokenPurpose::PasswordReset;
    // Looked at, not used up, before the costly hashing: an unknown token costs one query,
    // and a busy hasher (503) leaves the link usable for another try.
    let Some(id) = users.find_token(purpose, &hash, state.now()).await? else {
        return Err(BAD_TOKEN.into());
    };
    let Some(user) = users.find_by_id(&id).await?.filter(|user| !user.disabled) else {
        return Err(BAD_TOKEN.into());
    };
    let password_hash = state
        .hasher
        .for_client(client)
        .hash(&form.new_password)
        .await
        .map_err(|e| Stop::password(e, Some(&user)))?;
    // Whoever held the account (possibly whoever made the owner reset it) is out first: if
    // that fails, nothing else happened and the link still works. A login that verifies the
    // old password meanwhile is caught by its own re-read of the account.
    end_all_sessions(state, &user.id, state.now()).await?;
    // Of two resets with one link, one gets here.
    if users
        .redeem_token(purpose, &hash, state.now())
        .await?
        .as_ref()
        != Some(&user.id)
    {
        return Err(BAD_TOKEN.into());
    }
    if !users.update_password_hash(&user.id, password_hash).await? {
        return Err(BAD_TOKEN.into());
    }
    audit(Audit::PasswordReset, &user.id, &user.id);
    // The link came by mail: the address is the user's. Worth recording, not worth failing
    // a reset that is done.
    if !user.email_verified {
        let verified = UserChange {
            email_verified: Some(true),
            ..UserChange::default()
        };
        match users.update(&user.id, verified, None).await {
            Ok(_) => audit(Audit::EmailVerified, &user.id, &user.id),
            Err(error) => tracing::warn!(
                target: TARGET_ROUTER,
                %error,
                user = %user.id,
                "auth router: password reset, but the address not marked verified"
            ),
        }
    }
    Ok(reply::no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    token: String,
}

/// `POST /email/verify`: `{token}`.
pub(super) async fn verify(AxumState(state): AxumState<Arc<State>>, request: Request) -> Reply {
    let outcome = verify_email(&state, request).await;
    counted("email_verify", outcome)
}

async fn verify_email(state: &State, request: Request) -> Outcome {
    let form: VerifyRequest = json_body(request, "body must be {token}").await?;
    let hash = *TokenHash::of(&form.token).as_bytes();
    let users = &*state.config.users;
    let Some(id) = users
        .redeem_token(TokenPurpose::EmailVerification, &hash, state.now())
        .await?
    else {
        return Err(BAD_TOKEN.into());
    };
    let verified = UserChange {
        email_verified: Some(true),
        ..UserChange::default()
    };
    match users.update(&id, verified, None).await? {
        Changed::Changed(_) => {}
        Changed::NotFound | Changed::LastWithRole => return Err(BAD_TOKEN.into()),
    }
    audit(Audit::EmailVerified, &id, &id);
    Ok(reply::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_lifetimes_are_bounded() {
        assert!(link_ttl(Duration::from_secs(59)).is_err());
        assert!(link_ttl(Duration::from_secs(24 * 3600 + 1)).is_err());
        assert_eq!(link_ttl(DEFAULT_RESET_TTL).unwrap(), DEFAULT_RESET_TTL);
    }
}
