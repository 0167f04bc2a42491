//! Administration: `GET /admin/users`, `GET|PATCH|DELETE /admin/users/{id}`, behind the
//! router's bearer layer and the administrator role.

use std::sync::Arc;

use axum::extract::{Path, Request, State as AxumState};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, StatusCode, Uri};
use serde::Deserialize;

use super::State;
use super::endpoints::{Outcome, end_all_sessions, finish, json_body};
use super::events::{Audit, audit};
use super::reply::{self, Reply};
use super::users::{Changed, PublicUser, User, UserChange};
use crate::claims::{Claims, is_scope_token};
use crate::require::is_role_name;

type Shared = AxumState<Arc<State>>;

/// Users per page of `GET /admin/users` unless `limit` says otherwise.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The largest `limit` of `GET /admin/users`.
pub const MAX_PAGE_SIZE: usize = 1000;
/// The most roles, or scopes, one account may be given.
pub const MAX_GRANTS: usize = 64;
/// The longest cursor `GET /admin/users` accepts (a username is at most 64 characters).
const MAX_CURSOR_BYTES: usize = 512;

/// 409: the change would leave no enabled administrator.
pub(super) fn last_admin() -> Reply {
    reply::error(
        StatusCode::CONFLICT,
        "last_admin",
        "the last enabled administrator cannot be disabled, demoted or deleted",
    )
}

fn not_found() -> Reply {
    reply::error(StatusCode::NOT_FOUND, "not_found", "no such user")
}

fn bad_request(description: &'static str) -> Reply {
    reply::error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// The acting administrator's user id.
fn actor(claims: &Claims) -> &str {
    claims.subject().unwrap_or("")
}

/// `GET /admin/users?limit=&cursor=`: one page of users ordered by username, as a JSON array
/// of public users; when more follow, a `Link: <?limit=…&cursor=…>; rel="next"` header
/// (RFC 8288; the reference is relative to the request's own path).
pub(super) async fn list(AxumState(state): Shared, uri: Uri) -> Reply {
    finish("admin_users", list_page(&state, &uri).await)
}

async fn list_page(state: &State, uri: &Uri) -> Outcome {
    let (mut limit, mut cursor) = (None, None);
    for (key, value) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        let slot = match &*key {
            "limit" => &mut limit,
            "cursor" => &mut cursor,
            _ => return Ok(bad_request("the parameters are limit and cursor")),
        };
        if slot.replace(value.into_owned()).is_some() {
            return Ok(bad_request("each parameter at most once"));
        }
    }
    let limit = match limit.as_deref() {
        None => DEFAULT_PAGE_SIZE,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) && !text.starts_with('+') => n,
            _ => return Ok(bad_request("limit must be a number from 1 to 1000")),
        },
    };
    let after = match cursor.as_deref() {
        None => None,
        Some(cursor) => match decode_cursor(cursor) {
            Some(after) => Some(after),
            None => return Ok(bad_request("malformed cursor")),
        },
    };
    // One more than asked for tells whether a next page exists.
    let mut users = state.config.users.page(after.as_deref(), limit + 1).await?;
    let more = users.len() > limit;
    users.truncate(limit);
    let public: Vec<PublicUser> = users.iter().map(User::public).collect();
    let mut reply = reply::json(StatusCode::OK, &public);
    if more && let Some(last) = users.last() {
        let link = format!(
            "<?limit={limit}&cursor={}>; rel=\"next\"",
            URL_SAFE_NO_PAD.encode(last.username.as_bytes())
        );
        if let Ok(link) = HeaderValue::from_str(&link) {
            reply.headers_mut().insert(http::header::LINK, link);
        }
    }
    Ok(reply)
}

/// The username a cursor continues after. Opaque to clients; it is the last username of the
/// previous page, base64url-encoded.
fn decode_cursor(cursor: &str) -> Option<String> {
    if cursor.len() > MAX_CURSOR_BYTES {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    String::from_utf8(bytes)
        .ok()
        .filter(|name| !name.is_empty())
}

/// `GET /admin/users/{id}`.
pub(super) async fn show(AxumState(state): Shared, Path(id): Path<String>) -> Reply {
    finish("admin_user", show_user(&state, &id).await)
}

async fn show_user(state: &State, id: &str) -> Outcome {
    Ok(match state.config.users.find_by_id(id).await? {
        Some(user) => reply::json(StatusCode::OK, &user.public()),
        None => not_found(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    disabled: Option<bool>,
    roles: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    email_verified: Option<bool>,
}

/// `PATCH /admin/users/{id}`: `{disabled?, roles?, scopes?, email_verified?}`. Disabling the account, or taking
/// a role or scope away from it, ends its sessions at once; enabling it or adding grants takes
/// effect at its next login or refresh.
pub(super) async fn update(
    AxumState(state): Shared,
    claims: Claims,
    Path(id): Path<String>,
    request: Request,
) -> Reply {
    finish(
        "admin_update",
        update_user(&state, &claims, &id, request).await,
    )
}

async fn update_user(state: &State, claims: &Claims, id: &str, request: Request) -> Outcome {
    let patch: Patch = json_body(
        request,
        "body must be {disabled?, roles?, scopes?, email_verified?}",
    )
    .await?;
    let roles = match patch.roles.map(|roles| grants(roles, is_role_name)) {
        None => None,
        Some(Ok(roles)) => Some(roles),
        Some(Err(())) => {
            return Ok(bad_request(
                "roles must be at most 64 non-empty names without control characters",
            ));
        }
    };
    let scopes = match patch.scopes.map(|scopes| grants(scopes, is_scope_token)) {
        None => None,
        Some(Ok(scopes)) => Some(scopes),
        Some(Err(())) => {
            return Ok(bad_request(
                "scopes must be at most 64 RFC 6749 scope tokens",
            ));
        }
    };
    let change = UserChange {
        disabled: patch.disabled,
        roles,
        scopes,
        email_verified: patch.email_verified,
    };
    let before = match state
        .config
        .users
        .update(id, change.clone(), Some(&state.config.admin_role))
        .await?
    {
        Changed::Changed(before) => before,
        Changed::NotFound => return Ok(not_found()),
        Changed::LastWithRole => return Ok(last_admin()),
    };
    let after = change.apply(&before);
    let taken = |was: &[String], now: &[String]| was.iter().any(|g| !now.contains(g));
    let disabled = after.disabled && !before.disabled;
    if disabled || taken(&before.roles, &after.roles) || taken(&before.scopes, &after.scopes) {
        // Tokens carrying the old standing must not outlive the change.
        end_all_sessions(state, id, state.now()).await?;
    }
    let actor = actor(claims);
    if disabled {
        audit(Audit::UserDisabled, actor, id);
    } else if before.disabled && !after.disabled {
        audit(Audit::UserEnabled, actor, id);
    }
    if before.roles != after.roles || before.scopes != after.scopes {
        audit(Audit::GrantsChanged, actor, id);
    }
    if after.email_verified && !before.email_verified {
        audit(Audit::EmailVerified, actor, id);
    }
    Ok(reply::json(StatusCode::OK, &after.public()))
}

/// `list` without duplicates when every entry is valid and there are at most
/// [`MAX_GRANTS`].
fn grants(list: Vec<String>, valid: fn(&str) -> bool) -> Result<Vec<String>, ()> {
    if list.len() > MAX_GRANTS || !list.iter().all(|g| valid(g)) {
        return Err(());
    }
    let mut unique: Vec<String> = Vec::with_capacity(list.len());
    for grant in list {
        if !unique.contains(&grant) {
            unique.push(grant);
        }
    }
    Ok(unique)
}

/// `DELETE /admin/users/{id}`: deletes the account and ends every session of it.
pub(super) async fn delete(
    AxumState(state): Shared,
    claims: Claims,
    Path(id): Path<String>,
) -> Reply {
    finish("admin_delete", delete_user(&state, &claims, &id).await)
}

async fn delete_user(state: &State, claims: &Claims, id: &str) -> Outcome {
    match state
        .config
        .users
        .delete(id, Some(&state.config.admin_role))
        .await?
    {
        Changed::Changed(_) => {}
        Changed::NotFound => return Ok(not_found()),
        Changed::LastWithRole => return Ok(last_admin()),
    }
    end_all_sessions(state, id, state.now()).await?;
    audit(Audit::UserDeleted, actor(claims), id);
    Ok(reply::no_content())
}
