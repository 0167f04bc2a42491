//! The router's handlers.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State as AxumState};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::events::{self, Grant, RouterError};
use super::refresh::{RefreshSession, RefreshToken, Retry, Rotation, SealedToken, TokenHash};
use super::reply::{self, BAD_CREDENTIALS, BAD_REFRESH_TOKEN, OAuthError, Reply};
use super::request::{self, ClientCredentials, Params};
use super::users::{Created, NewUser, User, find_login_user};
use super::{GrantType, MIN_PASSWORD_CHARS, State};
use crate::claims::{Claims, is_scope_token};
use crate::issuer::AccessGrant;
use crate::password::{PasswordError, Verified, normalize_password};
use crate::ratelimit::{ClientAddr, LimitedClient, LoginOutcome};
use crate::store;
use crate::store::StoreError;
use crate::telemetry::TARGET_ROUTER;
use crate::username::normalize_username;

type Shared = AxumState<Arc<State>>;

/// Everything that ends a request early.
pub(super) enum Stop {
    OAuth(OAuthError),
    /// A finished answer and its `error` code.
    Reply(Box<Reply>, RouterError),
}

impl From<OAuthError> for Stop {
    fn from(error: OAuthError) -> Self {
        Self::OAuth(error)
    }
}

impl From<StoreError> for Stop {
    fn from(error: StoreError) -> Self {
        store::failed(
            store::Kind::Router,
            &error,
            "auth router: store unavailable; answering 503",
        );
        Self::unavailable(std::time::Duration::from_secs(1))
    }
}

impl Stop {
    pub(super) fn reply(reply: Reply, code: RouterError) -> Self {
        Self::Reply(Box::new(reply), code)
    }

    /// 503 `temporarily_unavailable` with `Retry-After`.
    fn unavailable(retry_after: std::time::Duration) -> Self {
        Self::reply(
            reply::unavailable(retry_after),
            RouterError::TemporarilyUnavailable,
        )
    }

    /// The `error` code of the answer.
    fn code(&self) -> RouterError {
        match self {
            Self::OAuth(error) => error.code(),
            Self::Reply(_, code) => *code,
        }
    }

    fn into_reply(self) -> Reply {
        match self {
            Self::OAuth(error) => error.reply(),
            Self::Reply(reply, _) => *reply,
        }
    }

    /// A hashing error: busy → 503; anything about the stored hash → the generic credential
    /// failure (logged for the operator, invisible to the client).
    pub(super) fn password(error: PasswordError, user: Option<&User>) -> Self {
        match error {
            // The hasher logged and counted the refusal.
            PasswordError::Overloaded { retry_after } => Self::unavailable(retry_after),
            PasswordError::TooLong => Self::OAuth(BAD_CREDENTIALS),
            error => {
                tracing::error!(
                    target: TARGET_ROUTER,
                    %error,
                    user = user.map(|u| u.id.as_str()),
                    "auth router: stored password hash unusable"
                );
                Self::OAuth(BAD_CREDENTIALS)
            }
        }
    }
}

pub(super) type Outcome = Result<Reply, Stop>;

/// The answer of `endpoint`, its error logged.
pub(super) fn finish(endpoint: &'static str, outcome: Outcome) -> Reply {
    outcome.unwrap_or_else(|stop| {
        events::rejected(endpoint, stop.code());
        stop.into_reply()
    })
}

/// Reads and parses the body of a token or revocation request.
async fn params(request: Request) -> Result<(http::HeaderMap, Params), Stop> {
    let (parts, body) = request.into_parts();
    let body = request::read_body(&parts.headers, body)
        .await
        .map_err(|reply| Stop::reply(reply, RouterError::InvalidRequest))?;
    let params = Params::parse(&parts.headers, &body)?;
    Ok((parts.headers, params))
}

/// The parameters of a token or revocation request and the client making it, authenticated
/// when it is confidential. `grant` learns the request's grant type once the body is read.
async fn client_request(
    state: &State,
    request: Request,
    grant: &mut Grant,
) -> Result<(Params, String), Stop> {
    let (headers, params) = params(request).await?;
    *grant = Grant::of(params.get("grant_type"));
    let credentials = request::client_credentials(&headers, &params)?;
    let client_id = authenticate_client(state, &credentials)?;
    Ok((params, client_id))
}

/// The client making the request, authenticated when it is confidential.
fn authenticate_client(
    state: &State,
    credentials: &ClientCredentials,
) -> Result<String, OAuthError> {
    let failed = OAuthError::InvalidClient {
        basic: credentials.basic,
    };
    if state.config.clients.is_empty() {
        // Public clients only: a secret means the client believes it is confidential, and
        // nothing here could check it.
        if credentials.secret.is_some() {
            return Err(failed);
        }
        return match &credentials.id {
            Some(id) if super::check_client_id(id).is_err() => {
                Err(OAuthError::invalid_request("malformed client_id"))
            }
            Some(id) => Ok(id.clone()),
            None => Ok(super::DEFAULT_CLIENT_ID.to_owned()),
        };
    }
    let client = credentials
        .id
        .as_deref()
        .and_then(|id| state.config.clients.get(id))
        .ok_or(failed)?;
    if !client.secret_matches(credentials.secret.as_deref()) {
        return Err(failed);
    }
    Ok(client.id.clone())
}

fn check_grant(state: &State, client_id: &str, grant: GrantType) -> Result<(), OAuthError> {
    match state.config.clients.get(client_id) {
        Some(client) if !client.grants.contains(&grant) => Err(OAuthError::UnauthorizedClient),
        _ => Ok(()),
    }
}

/// The `scope` parameter as a list; `Err` when a token breaks the RFC 6749 grammar.
pub(super) fn requested_scopes(params: &Params) -> Result<Option<Vec<String>>, OAuthError> {
    let Some(scope) = params.get("scope") else {
        return Ok(None);
    };
    let mut scopes: Vec<String> = Vec::new();
    for token in scope.split(' ').filter(|t| !t.is_empty()) {
        if !is_scope_token(token) {
            return Err(OAuthError::InvalidScope);
        }
        if !scopes.iter().any(|s| s == token) {
            scopes.push(token.to_owned());
        }
    }
    Ok(Some(scopes))
}

/// RFC 6749 §3.3: the requested scopes when each is allowed, every allowed scope when none
/// were requested.
pub(super) fn negotiate(
    requested: Option<Vec<String>>,
    allowed: &[String],
) -> Result<Vec<String>, OAuthError> {
    match requested {
        None => Ok(allowed.to_vec()),
        Some(requested) if requested.iter().all(|s| allowed.contains(s)) => Ok(requested),
        Some(_) => Err(OAuthError::InvalidScope),
    }
}

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: &'a str,
    scope: String,
}

/// `POST /token`. The reply tells a [`RateLimitLogin`](crate::ratelimit::RateLimitLogin) in
/// front what the attempt was worth: wrong credentials (or an unusable refresh token or client
/// secret) are failures, a token is a success, anything else neither.
pub(super) async fn token(AxumState(state): Shared, request: Request) -> Reply {
    let mut grant = Grant::Other;
    let client = hashing_client(&request);
    let outcome = token_grant(&state, request, &mut grant, client).await;
    let login = match &outcome {
        Ok(_) => LoginOutcome::Success,
        Err(Stop::OAuth(OAuthError::InvalidGrant(_) | OAuthError::InvalidClient { .. })) => {
            LoginOutcome::Failure
        }
        Err(_) => LoginOutcome::Neither,
    };
    events::token_answered(grant, outcome.as_ref().map(|_| ()).map_err(Stop::code));
    let mut reply = outcome.unwrap_or_else(Stop::into_reply);
    reply.extensions_mut().insert(login);
    reply
}

async fn token_grant(
    state: &State,
    request: Request,
    grant: &mut Grant,
    client: Option<IpAddr>,
) -> Outcome {
    let (params, client_id) = client_request(state, request, grant).await?;
    match params.required("grant_type", "missing parameter: grant_type")? {
        "password" => {
            check_grant(state, &client_id, GrantType::Password)?;
            password_grant(state, &params, client_id, client).await
        }
        "refresh_token" => {
            check_grant(state, &client_id, GrantType::RefreshToken)?;
            refresh_grant(state, &params, &client_id).await
        }
        #[cfg(feature = "external")]
        "authorization_code" if state.external.is_some() => {
            check_grant(state, &client_id, GrantType::AuthorizationCode)?;
            super::external::code_grant(state, &params, client_id).await
        }
        _ => Err(OAuthError::UnsupportedGrantType.into()),
    }
}

/// Who a password verification is done for, for the hasher's fair admission: the client the
/// rate limiter counted the request as, else the peer address.
pub(super) fn hashing_client(request: &Request) -> Option<IpAddr> {
    let extensions = request.extensions();
    if let Some(LimitedClient(client)) = extensions.get::<LimitedClient>() {
        return Some(*client);
    }
    if let Some(ClientAddr(client)) = extensions.get::<ClientAddr>() {
        return Some(*client);
    }
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
}

/// The answer for credentials that did not verify: the generic failure, unless the refresh
/// store has become unreachable meanwhile; then the 503 a right password would have got, so
/// that during an outage no answer tells a right password from a wrong one.
async fn refused(state: &State) -> Stop {
    match state.config.refresh.ready(state.now()).await {
        Ok(()) => BAD_CREDENTIALS.into(),
        Err(error) => error.into(),
    }
}

async fn password_grant(
    state: &State,
    params: &Params,
    client_id: String,
    client: Option<IpAddr>,
) -> Outcome {
    let username = params.required("username", "missing parameter: username")?;
    let password = params.required("password", "missing parameter: password")?;
    // A malformed scope is reported only once the credentials are known to be good, so the
    // answer never depends on the scope for a wrong password.
    let requested = requested_scopes(params);
    // What a successful login will need is asked for before any hashing: with the refresh
    // store down, every login gets the same 503, whatever its password.
    state.config.refresh.ready(state.now()).await?;
    let hasher = state.hasher.for_client(client);

    let user = find_login_user(&*state.config.users, username).await?;
    // An account without a password (made by an external sign-in) costs what an unknown
    // user costs, and answers the same.
    let Some(user) = user.filter(User::has_password) else {
        // Same work as for a real user's wrong password: the same verifications, current
        // parameters.
        hasher
            .verify_dummy(password)
            .await
            .map_err(|e| Stop::password(e, None))?;
        return Err(refused(state).await);
    };
    let verified = hasher
        .verify(password, &user.password_hash)
        .await
        .map_err(|e| Stop::password(e, Some(&user)))?;
    let Verified::Match { needs_rehash } = verified else {
        return Err(refused(state).await);
    };
    // Checked after the verification, so a disabled account costs the same and answers the same.
    if user.disabled {
        return Err(refused(state).await);
    }
    // Only once the password was right: whether an address is verified is the account's own
    // business. Neither a failure nor a success for a rate limiter in front.
    if state.config.email_verification && user.email.is_some() && !user.email_verified {
        let unverified = OAuthError::InvalidGrant("the email address is not verified yet");
        return Err(Stop::reply(unverified.reply(), unverified.code()));
    }
    let mut scopes = negotiate(requested?, &user.scopes)?;
    let mut verified_hash = user.password_hash.clone();
    if needs_rehash && let Some(hash) = rehash(state, &user, password).await {
        verified_hash = hash;
    }

    let (session, refresh_token) = open_session(state, &user, client_id, &scopes).await?;
    let now = state.now();
    // The account as it is now that the session exists. An administrator's change (disable,
    // delete, grants taken away) or a password change that ended the user's sessions before
    // this one was stored is seen here; one made later ends this session too.
    let current = state.config.users.find_by_id(&user.id).await?;
    let usable = match &current {
        Some(current) if current.password_hash == verified_hash => !current.disabled,
        // The password changed while this login verified the old one: it must match the
        // new one too.
        Some(current) => check_password(state, client, Some(current), password).await?,
        None => false,
    };
    let Some(current) = current.filter(|_| usable) else {
        let _ = end_session(state, &session.session_id, now).await;
        return Err(refused(state).await);
    };
    scopes.retain(|scope| current.scopes.contains(scope));
    tracing::info!(target: TARGET_ROUTER, user = %user.id, sid = %session.session_id, "auth router: login");
    access_token_reply(state, &current, &session, &scopes, &refresh_token)
}

/// Starts a session (a refresh family) of `user` for `client_id` with these scopes, first
/// ending the user's oldest sessions past the cap: its record and its first refresh token.
pub(super) async fn open_session(
    state: &State,
    user: &User,
    client_id: String,
    scopes: &[String],
) -> Result<(RefreshSession, RefreshToken), Stop> {
    let now = state.now();
    // Room for this session within the user's cap: the oldest ones end, their access tokens
    // with them.
    let keep = state.config.max_sessions_per_user - 1;
    for ended in state.config.refresh.end_oldest(&user.id, keep, now).await? {
        events::session_evicted(&user.id, &ended.session_id);
        revoke_sid(state, &ended.session_id, now).await?;
    }
    let session = RefreshSession {
        session_id: crate::ids::random_id().map_err(StoreError::from)?,
        user_id: user.id.clone(),
        client_id,
        scopes: scopes.to_vec(),
        created_at: now,
        expires_at: now + state.config.refresh_absolute_ttl.as_secs(),
    };
    let refresh_token = RefreshToken::generate()?;
    state
        .config
        .refresh
        .create(
            session.clone(),
            refresh_token.hash(),
            now + state.config.refresh_idle_ttl.as_secs(),
        )
        .await?;
    Ok((session, refresh_token))
}

/// Replaces a hash with weaker parameters (or bcrypt) after a successful login; the new hash
/// when it was stored. A failure only costs the upgrade: the login goes on.
async fn rehash(state: &State, user: &User, password: &str) -> Option<String> {
    match state.hasher.hash(password).await {
        Ok(hash) => match state
            .config
            .users
            .update_password_hash(&user.id, hash.clone())
            .await
        {
            Ok(stored) => {
                tracing::info!(target: TARGET_ROUTER, user = %user.id, "auth router: password re-hashed with current parameters");
                stored.then_some(hash)
            }
            Err(error) => {
                tracing::warn!(target: TARGET_ROUTER, %error, user = %user.id, "auth router: re-hash not stored");
                None
            }
        },
        Err(error) => {
            tracing::warn!(target: TARGET_ROUTER, %error, user = %user.id, "auth router: re-hash skipped");
            None
        }
    }
}

async fn refresh_grant(state: &State, params: &Params, client_id: &str) -> Outcome {
    let presented = params.required("refresh_token", "missing parameter: refresh_token")?;
    let requested = requested_scopes(params)?;
    let hash = TokenHash::of(presented);
    let now = state.now();
    let replacement = RefreshToken::generate()?;
    let idle_expires_at = now + state.config.refresh_idle_ttl.as_secs();
    // With a grace period, the rotation keeps the new token sealed under the presented one,
    // so that presenting it again soon gets this same new token: one lineage, never two.
    let retry = state.config.refresh_grace.map(|grace| Retry {
        sealed: replacement.seal(presented),
        until: now + grace.as_secs(),
    });
    let rotate = || {
        let store = &state.config.refresh;
        store.rotate(&hash, replacement.hash(), now, idle_expires_at, retry)
    };

    let Some(session) = state.config.refresh.get(&hash, now).await? else {
        // Not a current token. If it is a rotated one this is a replay: rotating it revokes
        // its family (the replacement is never stored), unless it is a retry.
        match rotate().await? {
            Rotation::Retried(session, sealed) => {
                return retried(state, &session, &sealed, presented, client_id, requested).await;
            }
            Rotation::Reused(session) => family_revoked(state, &session, now).await,
            Rotation::Rotated(_) | Rotation::Invalid => {}
        }
        return Err(BAD_REFRESH_TOKEN.into());
    };
    if session.client_id != client_id {
        return Err(BAD_REFRESH_TOKEN.into());
    }
    let (user, scopes) = refreshable(state, &session, requested, now).await?;
    match rotate().await? {
        Rotation::Rotated(session) => {
            access_token_reply(state, &user, &session, &scopes, &replacement)
        }
        Rotation::Retried(session, sealed) => {
            // Another request rotated this token a moment ago, keeping a retry: both get
            // that request's new token.
            access_token_reply(state, &user, &session, &scopes, &sealed.open(presented))
        }
        Rotation::Reused(session) => {
            // Another request rotated this token first: a replay or a racing client. The
            // family is gone either way.
            family_revoked(state, &session, now).await;
            Err(BAD_REFRESH_TOKEN.into())
        }
        Rotation::Invalid => Err(BAD_REFRESH_TOKEN.into()),
    }
}

/// The account behind a session that is to be refreshed, and the scopes of the new access
/// token; a missing or disabled account ends the session.
async fn refreshable(
    state: &State,
    session: &RefreshSession,
    requested: Option<Vec<String>>,
    now: u64,
) -> Result<(User, Vec<String>), Stop> {
    let user = state.config.users.find_by_id(&session.user_id).await?;
    let Some(user) = user.filter(|user| !user.disabled) else {
        // The answer is the same whether or not the session could be ended (a failure is
        // logged and counted).
        let _ = end_session(state, &session.session_id, now).await;
        return Err(BAD_REFRESH_TOKEN.into());
    };
    // A refresh may narrow the session's scopes, never widen them, and loses any scope the
    // user has been refused since.
    let allowed: Vec<String> = session
        .scopes
        .iter()
        .filter(|s| user.scopes.contains(s))
        .cloned()
        .collect();
    let scopes = negotiate(requested, &allowed)?;
    Ok((user, scopes))
}

/// A retry within the grace period: the token the family was rotated away from a moment ago,
/// presented again. Its client gets the same new token as the first time (and a fresh access
/// token); from another client it is a replay, never a retry, and ends the family.
async fn retried(
    state: &State,
    session: &RefreshSession,
    sealed: &SealedToken,
    presented: &str,
    client_id: &str,
    requested: Option<Vec<String>>,
) -> Outcome {
    let now = state.now();
    if session.client_id != client_id {
        events::refresh_reused(&session.user_id, &session.session_id);
        let _ = end_session(state, &session.session_id, now).await;
        return Err(BAD_REFRESH_TOKEN.into());
    }
    let (user, scopes) = refreshable(state, session, requested, now).await?;
    events::refresh_retried(&session.user_id, &session.session_id);
    access_token_reply(state, &user, session, &scopes, &sealed.open(presented))
}

/// A replayed refresh token ended its family; its `sid` goes on the denylist. The answer is
/// `invalid_grant` either way: a denylist that cannot be written is logged and counted, but
/// does not change what the replaying client learns.
async fn family_revoked(state: &State, session: &RefreshSession, now: u64) {
    events::refresh_reused(&session.user_id, &session.session_id);
    let _ = revoke_sid(state, &session.session_id, now).await;
}

/// Ends a session: its `sid` on the denylist first, so that its access tokens stop working at
/// once, then its refresh family. When the denylist cannot be written the session is left
/// whole (the caller answers 503 and may retry), never half-ended with its tokens still valid.
pub(super) async fn end_session(state: &State, session_id: &str, now: u64) -> Result<(), Stop> {
    revoke_sid(state, session_id, now).await?;
    state.config.refresh.revoke_session(session_id).await?;
    Ok(())
}

/// Denylists a session's `sid` for as long as its access tokens could live.
pub(super) async fn revoke_sid(state: &State, session_id: &str, now: u64) -> Result<(), Stop> {
    state
        .revocation
        .revoke_session(
            state.issuer.issuer(),
            session_id,
            state.revocation_horizon(now),
        )
        .await?;
    Ok(())
}

pub(super) fn access_token_reply(
    state: &State,
    user: &User,
    session: &RefreshSession,
    scopes: &[String],
    refresh_token: &RefreshToken,
) -> Outcome {
    let issued = state
        .issuer
        .issue(&AccessGrant {
            subject: &user.id,
            client_id: &session.client_id,
            scopes,
            roles: &user.roles,
            session_id: &session.session_id,
        })
        .map_err(|error| {
            tracing::error!(target: TARGET_ROUTER, reason = "server_error", %error, "auth router: signing failed");
            Stop::reply(
                reply::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "could not issue a token",
                ),
                RouterError::ServerError,
            )
        })?;
    Ok(reply::json(
        StatusCode::OK,
        &TokenResponse {
            access_token: &issued.token,
            token_type: "Bearer",
            expires_in: issued.expires_at.saturating_sub(issued.issued_at),
            refresh_token: refresh_token.as_str(),
            scope: scopes.join(" "),
        },
    ))
}

/// `POST /revoke` (RFC 7009). The reply tells a rate limiter in front what the attempt was
/// worth, as the token endpoint's does: a refused client or a token of another client is a
/// failure.
pub(super) async fn revoke(AxumState(state): Shared, request: Request) -> Reply {
    let outcome = revoke_token(&state, request).await;
    let counted = match &outcome {
        Ok(_) => LoginOutcome::Success,
        Err(Stop::OAuth(OAuthError::InvalidClient { .. } | OAuthError::NotIssuedToClient)) => {
            LoginOutcome::Failure
        }
        Err(_) => LoginOutcome::Neither,
    };
    let mut reply = finish("revoke", outcome);
    reply.extensions_mut().insert(counted);
    reply
}

async fn revoke_token(state: &State, request: Request) -> Outcome {
    let (params, client_id) = client_request(state, request, &mut Grant::Other).await?;
    let token = params.required("token", "missing parameter: token")?;
    let now = state.now();
    // The hint only orders the search (RFC 7009 §2.1); both kinds are always tried.
    let access_first = params.get("token_type_hint") == Some("access_token");
    let found = access_first && revoke_access(state, token, &client_id, now).await?;
    let found = found || revoke_refresh(state, token, &client_id, now).await?;
    if !found && !access_first {
        revoke_access(state, token, &client_id, now).await?;
    }
    // 200 whether or not the token was known: the client's goal is met either way.
    Ok(reply::json(StatusCode::OK, &serde_json::json!({})))
}

/// Revokes the family of a refresh token; `true` when the token was one. A token issued to
/// another client is refused (RFC 7009 §2.1), and nothing is revoked.
async fn revoke_refresh(
    state: &State,
    token: &str,
    client_id: &str,
    now: u64,
) -> Result<bool, Stop> {
    let Some(session) = state
        .config
        .refresh
        .find_session(&TokenHash::of(token))
        .await?
    else {
        return Ok(false);
    };
    if session.client_id != client_id {
        return Err(OAuthError::NotIssuedToClient.into());
    }
    end_session(state, &session.session_id, now).await?;
    Ok(true)
}

/// Revokes an access token; `true` when the token was one of ours (valid signature, issuer and
/// audience). A token issued to another client is refused (RFC 7009 §2.1). A token of a
/// session ends that whole session (its refresh family and its `sid`): one denylist entry per
/// session however many of its access tokens are revoked, so that revoking in a loop cannot
/// fill the denylist. Only a token without a session is denylisted by its `jti`.
async fn revoke_access(
    state: &State,
    token: &str,
    client_id: &str,
    now: u64,
) -> Result<bool, Stop> {
    let Ok(claims) = state.verifier.verify(token) else {
        return Ok(false);
    };
    if claims.client_id() != Some(client_id) {
        return Err(OAuthError::NotIssuedToClient.into());
    }
    match claims.session_id() {
        Some(sid) => end_session(state, sid, now).await?,
        None => revoke_claims(state, &claims).await?,
    }
    Ok(true)
}

/// Denylists the token's `jti` until `exp` + leeway.
async fn revoke_claims(state: &State, claims: &Claims) -> Result<(), Stop> {
    if let (Some(jti), Some(exp)) = (claims.jwt_id(), claims.expires_at()) {
        let until = exp.as_secs() + state.config.leeway.as_secs() + 1;
        state
            .revocation
            .revoke_token(claims.issuer().unwrap_or(""), jti, until)
            .await?;
    }
    Ok(())
}

/// `POST /logout`: this session. Behind the router's `BearerAuth`, so the claims are verified
/// and not revoked.
pub(super) async fn logout(AxumState(state): Shared, claims: Claims) -> Reply {
    finish("logout", logout_session(&state, &claims).await)
}

/// One denylist entry: the session's `sid` (which covers this token), or for a token without a
/// session its `jti`.
async fn logout_session(state: &State, claims: &Claims) -> Outcome {
    let now = state.now();
    match claims.session_id() {
        Some(sid) => end_session(state, sid, now).await?,
        None => revoke_claims(state, claims).await?,
    }
    Ok(reply::no_content())
}

/// `POST /logout/all`: every session of the user.
pub(super) async fn logout_all(AxumState(state): Shared, claims: Claims) -> Reply {
    finish("logout_all", logout_everywhere(&state, &claims).await)
}

async fn logout_everywhere(state: &State, claims: &Claims) -> Outcome {
    let Some(subject) = claims.subject() else {
        return Err(OAuthError::invalid_request("token has no subject").into());
    };
    end_all_sessions(state, subject, state.now()).await?;
    Ok(reply::no_content())
}

/// Ends every session of user `subject`: its access tokens are refused from now on, its
/// refresh tokens at once.
pub(super) async fn end_all_sessions(state: &State, subject: &str, now: u64) -> Result<(), Stop> {
    // Every token issued before this second, by any session (including ones this instance
    // does not know): one entry for the user. It goes first, so a failure leaves the sessions
    // whole rather than half-ended.
    state
        .revocation
        .revoke_subject_before(
            state.issuer.issuer(),
            subject,
            now,
            state.revocation_horizon(now),
        )
        .await?;
    // Tokens of this second: one `sid` per session ended (which covers this token too).
    end_other_sessions(state, subject, None, now).await
}

/// Ends every session of user `subject` but `keep` (by its `sid`): their refresh families,
/// and their access tokens through their `sid`s.
pub(super) async fn end_other_sessions(
    state: &State,
    subject: &str,
    keep: Option<&str>,
    now: u64,
) -> Result<(), Stop> {
    for session in state.config.refresh.revoke_user(subject, keep).await? {
        revoke_sid(state, &session.session_id, now).await?;
    }
    Ok(())
}

/// `GET /jwks.json`.
pub(super) async fn jwks(AxumState(state): Shared) -> Reply {
    let mut reply = reply::json(StatusCode::OK, &state.issuer.jwks());
    let headers = reply.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/jwk-set+json"),
    );
    // Public keys may be cached; verifiers refetch on an unknown kid anyway.
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=300"),
    );
    headers.remove(http::header::PRAGMA);
    reply
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    username: String,
    password: String,
    #[serde(default)]
    email: Option<String>,
}

/// `POST /register` (only routed when registration is enabled).
pub(super) async fn register(AxumState(state): Shared, request: Request) -> Reply {
    finish("register", register_user(&state, request).await)
}

async fn register_user(state: &Arc<State>, request: Request) -> Outcome {
    let client = hashing_client(&request);
    let Some(registration) = &state.config.registration else {
        return Ok(reply::error(
            StatusCode::NOT_FOUND,
            "not_found",
            "registration is disabled",
        ));
    };
    let (parts, body) = request.into_parts();
    let body = request::read_body(&parts.headers, body)
        .await
        .map_err(|reply| Stop::reply(reply, RouterError::InvalidRequest))?;
    let policy =
        |description| reply::error(StatusCode::BAD_REQUEST, "invalid_request", description);
    if request::format(&parts.headers) != Some(request::Format::Json) {
        return Ok(policy("content type must be application/json"));
    }
    let Ok(form) = serde_json::from_slice::<RegisterRequest>(&body) else {
        return Ok(policy("body must be {username, password, email?}"));
    };
    let Some(username) = normalize_username(&form.username) else {
        return Ok(policy(
            "username must be 1 to 64 letters, digits or ASCII punctuation, in one script, \
             without spaces, ':' or invisible characters",
        ));
    };
    if let Err(description) = password_policy(state, &form.password) {
        return Ok(policy(description));
    }
    if let Some(email) = &form.email
        && !is_plausible_email(email)
    {
        return Ok(policy("email is not a valid address"));
    }
    if state.config.email_verification && form.email.is_none() {
        return Ok(policy("email is required"));
    }
    let taken = || reply::error(StatusCode::CONFLICT, "username_taken", "username is taken");
    let email_taken = || {
        reply::error(
            StatusCode::CONFLICT,
            "email_taken",
            "an account with this email exists",
        )
    };
    // Checked before hashing, like the name; `create` checks again.
    if let Some(email) = &form.email
        && state.config.users.find_by_email(email).await?.is_some()
    {
        return Ok(email_taken());
    }
    // Checked before hashing so a taken name costs no argon2 work; `create` checks again.
    if state
        .config
        .users
        .find_by_username(&username)
        .await?
        .is_some()
    {
        return Ok(taken());
    }
    let password_hash = state
        .hasher
        .for_client(client)
        .hash(&form.password)
        .await
        .map_err(|e| Stop::password(e, None))?;
    let created = state
        .config
        .users
        .create(NewUser {
            username,
            email: form.email,
            password_hash,
            roles: registration.roles.clone(),
            scopes: registration.scopes.clone(),
        })
        .await?;
    match created {
        Created::Created(user) => {
            tracing::info!(target: TARGET_ROUTER, user = %user.id, "auth router: user registered");
            let reply = reply::json(StatusCode::CREATED, &user.public());
            super::recovery::verification_on_registration(state, user);
            Ok(reply)
        }
        // No identity was given, so none is taken.
        Created::Taken | Created::IdentityTaken => Ok(taken()),
        Created::EmailTaken => Ok(email_taken()),
        Created::InvalidUsername => Ok(policy("invalid username")),
    }
}

/// What a new password must be (NIST SP 800-63B: a minimum length, no composition rules);
/// `Err` with the description of the rule it breaks.
pub(super) fn password_policy(state: &State, password: &str) -> Result<(), &'static str> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err("password must be at least 8 characters");
    }
    if password.len() > state.hasher.max_password_len() {
        return Err("password is too long");
    }
    if normalize_password(password).is_none() {
        return Err(
            "password must not contain control or invisible characters, nor characters newer \
             than Unicode 6.3 such as recent emoji",
        );
    }
    Ok(())
}

/// Reads a JSON body of shape `T` (unknown fields refused); anything else is 400
/// `invalid_request` with `shape` as the description.
pub(super) async fn json_body<T: serde::de::DeserializeOwned>(
    request: Request,
    shape: &'static str,
) -> Result<T, Stop> {
    let (parts, body) = request.into_parts();
    let body = request::read_body(&parts.headers, body)
        .await
        .map_err(|reply| Stop::reply(reply, RouterError::InvalidRequest))?;
    if request::format(&parts.headers) != Some(request::Format::Json) {
        return Err(OAuthError::invalid_request("content type must be application/json").into());
    }
    serde_json::from_slice(&body).map_err(|_| OAuthError::invalid_request(shape).into())
}

/// Verifies `password` for `user` with the hasher's fair admission for `client`: `Ok(true)`
/// when it matches. Without a user (or with a disabled one) the same work is done and the
/// answer is `false`.
pub(super) async fn check_password(
    state: &State,
    client: Option<IpAddr>,
    user: Option<&User>,
    password: &str,
) -> Result<bool, Stop> {
    let hasher = state.hasher.for_client(client);
    let Some(user) = user.filter(|user| user.has_password()) else {
        hasher
            .verify_dummy(password)
            .await
            .map_err(|e| Stop::password(e, None))?;
        return Ok(false);
    };
    let verified = hasher
        .verify(password, &user.password_hash)
        .await
        .map_err(|e| Stop::password(e, Some(user)))?;
    Ok(matches!(verified, Verified::Match { .. }) && !user.disabled)
}

/// A deliberately loose check of a bare address (one `@`, something on each side, a dot in
/// the domain, no spaces or controls, at most 254 bytes): the only real check is a
/// confirmation mail. What would make it more than one address to a mail library (a display
/// name, `<…>`, a group, a comment, a list, quoting) is refused: `x<victim@example.com>` must
/// not register an address that differs from the victim's yet delivers to it.
pub(super) fn is_plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(
                    c,
                    '<' | '>' | '(' | ')' | '[' | ']' | ',' | ';' | ':' | '"' | '\\'
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_negotiation_grants_subsets_only() {
        let allowed = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(negotiate(None, &allowed).unwrap(), allowed);
        assert_eq!(
            negotiate(Some(vec!["b".to_owned()]), &allowed).unwrap(),
            ["b"]
        );
        assert_eq!(
            negotiate(Some(vec![]), &allowed).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            negotiate(Some(vec!["c".to_owned()]), &allowed).unwrap_err(),
            OAuthError::InvalidScope
        );
    }

    #[test]
    fn emails_are_checked_loosely() {
        for good in ["a@b.co", "first.last+tag@sub.example.org"] {
            assert!(is_plausible_email(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "@b.co",
            "a@",
            "a@b",
            "a@.b",
            "a@b.",
            "a b@c.d",
            "a@b@c.d",
            "a@b.c\n",
            "x<victim@example.com>",
            "<victim@example.com>",
            "\"v\"@b.co",
            "a@[10.0.0.1].co",
            "a@b.co,c@d.co",
            "a@b.co;",
            "x:a@b.co;",
            "(c)a@b.co",
            "a\\b@c.co",
        ] {
            assert!(!is_plausible_email(bad), "{bad:?}");
        }
        assert!(!is_plausible_email(&format!("{}@b.co", "a".repeat(250))));
    }
}
