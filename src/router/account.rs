//! Self-service: `GET /me`, `DELETE /me` and `POST /password`, for the user of the bearer
//! token.

use std::sync::Arc;

use axum::extract::{Request, State as AxumState};
use axum::middleware::Next;
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;

use super::State;
use super::endpoints::{
    Outcome, Stop, check_password, end_all_sessions, end_other_sessions, finish, hashing_client,
    json_body, password_policy,
};
use super::events::{Audit, audit};
use super::reply::{self, OAuthError, Reply};
use super::users::{Changed, TokenPurpose, User};
use crate::claims::Claims;
use crate::ratelimit::{LoginName, LoginOutcome};

type Shared = AxumState<Arc<State>>;

/// The answer for a current password that does not verify (or an account that can no longer
/// be used): counted as a failed login by a rate limiter in front.
const WRONG_PASSWORD: OAuthError = OAuthError::InvalidGrant("password is incorrect");

/// The user of a verified token, or 401-equivalent `invalid_grant` when it has none.
fn subject(claims: &Claims) -> Result<&str, Stop> {
    claims
        .subject()
        .ok_or_else(|| OAuthError::invalid_request("token has no subject").into())
}

/// 404 for a token whose account no longer exists.
fn no_account() -> Reply {
    reply::error(
        StatusCode::NOT_FOUND,
        "not_found",
        "the account does not exist",
    )
}

/// Names the token's account for the rate limiter behind it (see [`LoginName`]), so that a
/// password checked here counts as a login to that account does.
pub(super) async fn name_the_account(
    AxumState(state): Shared,
    mut request: Request,
    next: Next,
) -> Response {
    let id = request
        .extensions()
        .get::<Claims>()
        .and_then(|claims| claims.subject().map(str::to_owned));
    if let Some(id) = id
        && let Ok(Some(user)) = state.config.users.find_by_id(&id).await
    {
        request.extensions_mut().insert(LoginName(user.username));
    }
    next.run(request).await
}

/// `GET /me`: the account of the token, without any hash.
pub(super) async fn me(AxumState(state): Shared, claims: Claims) -> Reply {
    finish("me", show_me(&state, &claims).await)
}

async fn show_me(state: &State, claims: &Claims) -> Outcome {
    match state.config.users.find_by_id(subject(claims)?).await? {
        Some(user) => Ok(reply::json(StatusCode::OK, &user.public())),
        None => Ok(no_account()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `POST /password`: `{current_password, new_password}`. Ends every other session of the user.
pub(super) async fn change_password(
    AxumState(state): Shared,
    claims: Claims,
    request: Request,
) -> Reply {
    let outcome = password_change(&state, &claims, request).await;
    counted("password", outcome)
}

async fn password_change(state: &State, claims: &Claims, request: Request) -> Outcome {
    let id = subject(claims)?;
    let client = hashing_client(&request);
    let form: PasswordChange =
        json_body(request, "body must be {current_password, new_password}").await?;
    if let Err(description) = password_policy(state, &form.new_password) {
        return Ok(reply::error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            description,
        ));
    }
    let user = verified_user(state, client, id, &form.current_password).await?;
    let hash = state
        .hasher
        .for_client(client)
        .hash(&form.new_password)
        .await
        .map_err(|e| Stop::password(e, Some(&user)))?;
    // A reset link mailed before is of no use once the password changed (discarded first: a
    // failure here leaves the password as it was, and the request can be repeated).
    state
        .config
        .users
        .revoke_tokens(&user.id, TokenPurpose::PasswordReset)
        .await?;
    if !state
        .config
        .users
        .update_password_hash(&user.id, hash)
        .await?
    {
        return Err(WRONG_PASSWORD.into());
    }
    // Whoever else held a session with the old password loses it at once; the session that
    // changed it stays.
    end_other_sessions(state, &user.id, claims.session_id(), state.now()).await?;
    audit(Audit::PasswordChanged, &user.id, &user.id);
    Ok(reply::no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Deletion {
    password: String,
}

/// `DELETE /me`: `{password}`. Deletes the account and ends every session of it.
pub(super) async fn delete_me(AxumState(state): Shared, claims: Claims, request: Request) -> Reply {
    let outcome = self_deletion(&state, &claims, request).await;
    counted("delete_me", outcome)
}

async fn self_deletion(state: &State, claims: &Claims, request: Request) -> Outcome {
    let id = subject(claims)?;
    let client = hashing_client(&request);
    let form: Deletion = json_body(request, "body must be {password}").await?;
    let user = verified_user(state, client, id, &form.password).await?;
    match state
        .config
        .users
        .delete(&user.id, Some(&state.config.admin_role))
        .await?
    {
        Changed::Changed(_) => {}
        Changed::NotFound => return Err(WRONG_PASSWORD.into()),
        Changed::LastWithRole => return Ok(super::admin::last_admin()),
    }
    end_all_sessions(state, &user.id, state.now()).await?;
    audit(Audit::SelfDeleted, &user.id, &user.id);
    Ok(reply::no_content())
}

/// The account `id` when `password` is its password (one verification, the same work when
/// there is no such account); otherwise [`WRONG_PASSWORD`].
async fn verified_user(
    state: &State,
    client: Option<std::net::IpAddr>,
    id: &str,
    password: &str,
) -> Result<User, Stop> {
    let user = state.config.users.find_by_id(id).await?;
    if check_password(state, client, user.as_ref(), password).await? {
        // `check_password` is true only with a user.
        return user.ok_or_else(|| WRONG_PASSWORD.into());
    }
    Err(WRONG_PASSWORD.into())
}

/// The answer of a route that checks a password, logged, with what it was worth to a rate
/// limiter in front: a wrong password is a failed login, a change made is a success.
pub(super) fn counted(endpoint: &'static str, outcome: Outcome) -> Reply {
    let login = match &outcome {
        Ok(reply) if reply.status().is_success() => LoginOutcome::Success,
        Err(Stop::OAuth(OAuthError::InvalidGrant(_))) => LoginOutcome::Failure,
        _ => LoginOutcome::Neither,
    };
    let mut reply = finish(endpoint, outcome);
    reply.extensions_mut().insert(login);
    reply
}
