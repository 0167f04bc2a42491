//! The routes of external sign-in and the code grant that ends it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, Request, State as AxumState};
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::page::{self, FlowCookie};
use super::provider::{Asserted, EXCHANGE_TIMEOUT, Live, Providers};
use super::{CODE_TTL, CallbackError, ExternalSignIn, FLOW_TTL, Kind, LINK_TTL};
use crate::claims::Claims;
use crate::ratelimit::LoginOutcome;
use crate::router::State;
use crate::router::endpoints::{
    self, Outcome, Stop, access_token_reply, negotiate, open_session, requested_scopes,
};
use crate::router::events::{self, Audit, RouterError};
use crate::router::identities::{Identity, Linked, Unlinked};
use crate::router::reply::{self, OAuthError, Reply};
use crate::router::request::Params;
use crate::router::users::{Created, NewUser, User, UserChange};
use crate::store::StoreError;
use crate::telemetry::TARGET_ROUTER;
use crate::username::normalize_username;

type Shared = AxumState<Arc<State>>;

/// External sign-in as the router runs it.
pub(crate) struct ExternalState {
    pub(crate) settings: ExternalSignIn,
    pub(crate) providers: Providers,
    cookie: FlowCookie,
}

impl ExternalState {
    pub(crate) fn new(settings: ExternalSignIn) -> Result<Self, crate::error::ConfigError> {
        Ok(Self {
            providers: Providers::new(&settings.providers)?,
            cookie: FlowCookie::for_base(&settings.base_url),
            settings,
        })
    }

    /// Whether a browser navigation to the start comes from a first-party page (or from no
    /// page: a bookmark, a typed address). A page of another site sending a victim's
    /// browser through a sign-in it chose (its own PKCE challenge, its own link address) is
    /// refused: browsers say `Sec-Fetch-Site: cross-site`, and the `Referer` then names an
    /// allowed origin or the start is refused. Clients that send neither header pass.
    fn started_here(&self, headers: &HeaderMap) -> bool {
        let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        if site != Some("cross-site") {
            return true;
        }
        headers
            .get(http::header::REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(page::origin_of)
            .is_some_and(|origin| self.settings.origins.contains(&origin))
    }

    fn allowed(&self, redirect_to: &str) -> bool {
        let printable = redirect_to.bytes().all(|b| (0x21..=0x7e).contains(&b));
        printable
            && redirect_to.len() <= 2048
            && page::origin_of(redirect_to)
                .is_some_and(|origin| self.settings.origins.contains(&origin))
            // `origin_of` reads the authority the way `http` does; a backslash, which a
            // browser may read as a `/` and so as another authority, is refused outright.
            && !redirect_to.contains('\\')
    }
}

/// What a sign-in keeps between its start and the callback.
#[derive(Serialize, Deserialize)]
struct Flow {
    provider: String,
    redirect_to: String,
    nonce: String,
    /// The router's own PKCE verifier for the provider.
    verifier: String,
    /// The front end's S256 challenge.
    challenge: String,
    /// The account to link the identity to, when linking.
    link: Option<String>,
    /// SHA-256 (hex) of the browser cookie's value.
    browser: String,
}

/// What a one-time code stands for.
#[derive(Serialize, Deserialize)]
struct Code {
    user: String,
    challenge: String,
    redirect_to: String,
}

/// What a link address stands for.
#[derive(Serialize, Deserialize)]
struct LinkTicket {
    user: String,
    provider: String,
    redirect_to: String,
    challenge: String,
}

/// A linking sign-in that ended: the identity waits for its account's owner to claim it.
#[derive(Serialize, Deserialize)]
struct PendingLink {
    user: String,
    challenge: String,
    identity: Identity,
}

/// The store key of a secret `value` used as `purpose`: a state can never be used as a code.
fn key(purpose: &str, value: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(purpose.as_bytes());
    hash.update([0]);
    hash.update(value.as_bytes());
    hash.finalize().into()
}

fn hex_sha256(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// RFC 7636's S256 of a verifier.
fn s256(verifier: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn is_verifier(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An S256 challenge: 43 base64url characters.
fn is_challenge(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// The query's parameters; `None` when one is repeated.
fn query(raw: Option<&str>) -> Option<Vec<(String, String)>> {
    let mut params: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if params.iter().any(|(known, _)| *known == name) {
            return None;
        }
        params.push((name.into_owned(), value.into_owned()));
    }
    Some(params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(known, _)| known == name)
        .map(|(_, value)| value.as_str())
}

fn now(state: &State) -> u64 {
    state.now()
}

fn store_failed(error: &StoreError) -> Reply {
    crate::store::failed(
        crate::store::Kind::Router,
        error,
        "auth router: store unavailable; answering 503",
    );
    page::unavailable_page(Duration::from_secs(1))
}

/// The provider `name` and the router's external state.
fn provider<'a>(state: &'a State, name: &str) -> Option<(&'a ExternalState, &'a Arc<Live>)> {
    let external = state.external.as_ref()?;
    Some((external, external.providers.get(name)?))
}

fn no_such_provider() -> Reply {
    page::error_page(StatusCode::NOT_FOUND, "There is no such sign-in provider.")
}

/// `GET /external/{provider}/start`.
pub(in crate::router) async fn start(
    AxumState(state): Shared,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Reply {
    let Some((external, live)) = provider(&state, &name) else {
        return no_such_provider();
    };
    let Some(params) = query(raw.as_deref()) else {
        return page::error_page(StatusCode::BAD_REQUEST, "A parameter is repeated.");
    };
    if !external.started_here(&headers) {
        return page::error_page(
            StatusCode::FORBIDDEN,
            "Sign-ins start from the application's own pages.",
        );
    }
    let now = now(&state);
    let store = &external.settings.store;
    // A link address (from `POST /external/{provider}/link`) or a front end's sign-in.
    let (redirect_to, challenge, link) = if let Some(ticket) = param(&params, "link") {
        let taken = match store.take(&key("link", ticket), now).await {
            Ok(taken) => taken,
            Err(error) => return store_failed(&error),
        };
        let ticket = taken.and_then(|json| serde_json::from_str::<LinkTicket>(&json).ok());
        let Some(ticket) = ticket.filter(|t| t.provider == name) else {
            return page::error_page(
                StatusCode::BAD_REQUEST,
                "This link has expired or was already used.",
            );
        };
        (ticket.redirect_to, ticket.challenge, Some(ticket.user))
    } else {
        let Some(redirect_to) = param(&params, "redirect_to").filter(|r| external.allowed(r))
        else {
            return page::error_page(
                StatusCode::BAD_REQUEST,
                "The address to go back to is missing or not allowed.",
            );
        };
        let challenge = param(&params, "code_challenge").filter(|c| is_challenge(c));
        let method = param(&params, "code_challenge_method");
        let Some(challenge) = challenge.filter(|_| method == Some("S256")) else {
            let location = page::with_query(
                redirect_to,
                &[("error", CallbackError::InvalidRequest.as_str())],
            );
            return page::redirect(&location);
        };
        (redirect_to.to_owned(), challenge.to_owned(), None)
    };
    let endpoints = match external.providers.endpoints(live).await {
        Ok(endpoints) => endpoints,
        Err(CallbackError::TemporarilyUnavailable) => {
            return page::unavailable_page(Duration::from_secs(30));
        }
        Err(_) => {
            return page::error_page(
                StatusCode::BAD_GATEWAY,
                "The sign-in provider answered something unusable.",
            );
        }
    };
    let secrets = (
        crate::ids::random_b64::<32>(),
        crate::ids::random_b64::<32>(),
        crate::ids::random_b64::<32>(),
        crate::ids::random_b64::<32>(),
    );
    let (Ok(state_value), Ok(nonce), Ok(verifier), Ok(browser)) = secrets else {
        return store_failed(&StoreError::new("the OS random source failed"));
    };
    let flow = Flow {
        provider: name.clone(),
        redirect_to,
        nonce: nonce.clone(),
        verifier: verifier.clone(),
        challenge,
        link,
        browser: hex_sha256(&browser),
    };
    let json = serde_json::to_string(&flow).unwrap_or_default();
    match store
        .put(
            &key("flow", &state_value),
            json,
            now + FLOW_TTL.as_secs(),
            now,
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => return store_failed(&StoreError::new("flow state collision")),
        Err(error) => return store_failed(&error),
    }
    let provider = &live.config;
    let scope = provider.scopes.join(" ");
    let callback = external.settings.callback_url(&name);
    let challenge = s256(&verifier);
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", provider.client_id.as_str()),
        ("redirect_uri", callback.as_str()),
        ("scope", scope.as_str()),
        ("state", state_value.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    if matches!(provider.kind, Kind::Oidc { .. }) {
        query.push(("nonce", nonce.as_str()));
    }
    let mut reply = page::redirect(&page::with_query(&endpoints.authorization, &query));
    external
        .cookie
        .set(&mut reply, &state_value, &browser, FLOW_TTL);
    tracing::debug!(target: TARGET_ROUTER, provider = %name, "auth router: external sign-in started");
    reply
}

/// `GET /external/{provider}/callback`.
pub(in crate::router) async fn callback(
    AxumState(state): Shared,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Reply {
    let Some((external, live)) = provider(&state, &name) else {
        return no_such_provider();
    };
    let Some(params) = query(raw.as_deref()) else {
        return page::error_page(StatusCode::BAD_REQUEST, "A parameter is repeated.");
    };
    let Some(state_value) = param(&params, "state") else {
        return failure(page::error_page(
            StatusCode::BAD_REQUEST,
            "The sign-in has no state.",
        ));
    };
    let now = now(&state);
    // Taken, so a second callback with this state (a replay) finds nothing.
    let flow = match external
        .settings
        .store
        .take(&key("flow", state_value), now)
        .await
    {
        Ok(flow) => flow.and_then(|json| serde_json::from_str::<Flow>(&json).ok()),
        Err(error) => return store_failed(&error),
    };
    let Some(flow) = flow else {
        return failure(page::error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in has expired or was already finished.",
        ));
    };
    let outcome = finish(&state, external, live, &name, &params, &headers, &flow, now).await;
    let (location, outcome) = match outcome {
        Ok(Finished::Code(code)) => (
            page::with_query(&flow.redirect_to, &[("code", &code)]),
            LoginOutcome::Success,
        ),
        Ok(Finished::Linked(code)) => (
            page::with_query(&flow.redirect_to, &[("link_code", &code)]),
            LoginOutcome::Success,
        ),
        Err(error) => {
            tracing::info!(target: TARGET_ROUTER, provider = %name, error = error.as_str(), "auth router: external sign-in failed");
            let forged = matches!(
                error,
                CallbackError::InvalidRequest | CallbackError::InvalidToken
            );
            (
                page::with_query(&flow.redirect_to, &[("error", error.as_str())]),
                if forged {
                    LoginOutcome::Failure
                } else {
                    LoginOutcome::Neither
                },
            )
        }
    };
    let mut reply = page::redirect(&location);
    external.cookie.clear(&mut reply, state_value);
    reply.extensions_mut().insert(outcome);
    reply
}

/// `reply`, counted as a failed login by a rate limiter in front.
fn failure(mut reply: Reply) -> Reply {
    reply.extensions_mut().insert(LoginOutcome::Failure);
    reply
}

/// How a callback ended well: a sign-in's code, or a linking sign-in's link code.
enum Finished {
    Code(String),
    Linked(String),
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    state: &State,
    external: &ExternalState,
    live: &Live,
    name: &str,
    params: &[(String, String)],
    headers: &HeaderMap,
    flow: &Flow,
    now: u64,
) -> Result<Finished, CallbackError> {
    if flow.provider != name {
        return Err(CallbackError::InvalidRequest);
    }
    // The browser that started the sign-in, and no other.
    let state_value = param(params, "state").unwrap_or_default();
    let cookie = external
        .cookie
        .read(headers, state_value)
        .unwrap_or_default();
    if !bool::from(
        hex_sha256(&cookie)
            .as_bytes()
            .ct_eq(flow.browser.as_bytes()),
    ) {
        return Err(CallbackError::InvalidRequest);
    }
    if let Some(error) = param(params, "error") {
        return Err(match error {
            "access_denied"
            | "login_required"
            | "consent_required"
            | "interaction_required"
            | "account_selection_required" => CallbackError::AccessDenied,
            "temporarily_unavailable" => CallbackError::TemporarilyUnavailable,
            _ => CallbackError::ServerError,
        });
    }
    // RFC 9207: a provider that names itself must name this one (mix-up attacks), and one
    // that says it always does must have.
    if let Kind::Oidc { issuer } = &live.config.kind {
        match param(params, "iss") {
            Some(iss) if iss != issuer => return Err(CallbackError::InvalidRequest),
            None if external.providers.endpoints(live).await?.iss_parameter => {
                return Err(CallbackError::InvalidRequest);
            }
            _ => {}
        }
    }
    let Some(code) = param(params, "code").filter(|c| !c.is_empty() && c.len() <= 2048) else {
        return Err(CallbackError::InvalidRequest);
    };
    let callback = external.settings.callback_url(name);
    let exchange = external
        .providers
        .exchange(live, code, &callback, &flow.verifier, &flow.nonce);
    let asserted = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .unwrap_or(Err(CallbackError::TemporarilyUnavailable))?;
    let unavailable = |error: StoreError| {
        crate::store::failed(
            crate::store::Kind::Router,
            &error,
            "auth router: store unavailable during an external sign-in",
        );
        CallbackError::TemporarilyUnavailable
    };
    let code = crate::ids::random_b64::<32>().map_err(|e| unavailable(e.into()))?;
    if let Some(user_id) = &flow.link {
        // Not linked yet: only the account's owner, with the front end's verifier, claims
        // it (`PUT /external/{provider}/link`). A link address someone else minted and
        // sent a victim to ends here, unclaimable by its minter.
        let pending = PendingLink {
            user: user_id.clone(),
            challenge: flow.challenge.clone(),
            identity: identity(name, &asserted, now),
        };
        let json = serde_json::to_string(&pending).unwrap_or_default();
        let stored = external
            .settings
            .store
            .put(
                &key("link-code", &code),
                json,
                now + CODE_TTL.as_secs(),
                now,
            )
            .await
            .map_err(unavailable)?;
        if !stored {
            return Err(CallbackError::TemporarilyUnavailable);
        }
        return Ok(Finished::Linked(code));
    }
    let user = sign_in(state, external, name, asserted, now)
        .await
        .map_err(|e| e.or_else(unavailable))?;
    let record = Code {
        user: user.id.clone(),
        challenge: flow.challenge.clone(),
        redirect_to: flow.redirect_to.clone(),
    };
    let json = serde_json::to_string(&record).unwrap_or_default();
    let stored = external
        .settings
        .store
        .put(&key("code", &code), json, now + CODE_TTL.as_secs(), now)
        .await
        .map_err(unavailable)?;
    if !stored {
        return Err(CallbackError::TemporarilyUnavailable);
    }
    tracing::info!(target: TARGET_ROUTER, provider = %name, user = %user.id, "auth router: external sign-in");
    Ok(Finished::Code(code))
}

/// A callback failure, or a store that failed on the way.
enum Failed {
    Callback(CallbackError),
    Store(StoreError),
}

impl Failed {
    fn or_else(self, store: impl FnOnce(StoreError) -> CallbackError) -> CallbackError {
        match self {
            Self::Callback(error) => error,
            Self::Store(error) => store(error),
        }
    }
}

impl From<StoreError> for Failed {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl From<CallbackError> for Failed {
    fn from(error: CallbackError) -> Self {
        Self::Callback(error)
    }
}

fn identity(provider: &str, asserted: &Asserted, now: u64) -> Identity {
    Identity {
        provider: provider.to_owned(),
        issuer: asserted.issuer.clone(),
        subject: asserted.subject.clone(),
        email: asserted.verified_email.clone(),
        linked_at: now,
    }
}

/// The account an identity signs in to: its own, one linked by address, or a new one.
async fn sign_in(
    state: &State,
    external: &ExternalState,
    provider: &str,
    asserted: Asserted,
    now: u64,
) -> Result<User, Failed> {
    let users = &state.config.users;
    if let Some(user) = users
        .find_by_identity(&asserted.issuer, &asserted.subject)
        .await?
    {
        return usable(user);
    }
    let identity = identity(provider, &asserted, now);
    if let Some(email) = &asserted.verified_email
        && let Some(local) = users.find_by_email(email).await?
    {
        // Both addresses proven, or no link: the account's owner signs in with their
        // password and links the provider from there.
        let linkable = external.settings.link_by_email
            && state.config.email_verification
            && local.email_verified;
        if !linkable {
            return Err(CallbackError::AccountExists.into());
        }
        return match users.link_identity(&local.id, identity).await? {
            Linked::Linked => {
                events::audit(Audit::IdentityLinked, &local.id, &local.id);
                usable(local)
            }
            // Linked meanwhile by a concurrent sign-in: sign in to whichever account has it.
            Linked::IdentityTaken => match users
                .find_by_identity(&asserted.issuer, &asserted.subject)
                .await?
            {
                Some(user) => usable(user),
                None => Err(CallbackError::TemporarilyUnavailable.into()),
            },
            Linked::ProviderTaken | Linked::NoSuchUser => Err(CallbackError::AccountExists.into()),
        };
    }
    if !external
        .settings
        .signup
        .admits(asserted.verified_email.as_deref())
    {
        return Err(CallbackError::SignupClosed.into());
    }
    create(state, external, &asserted, identity).await
}

/// A new account for a new identity, without a password, under a name derived from the
/// provider's (with a random suffix when it is taken).
async fn create(
    state: &State,
    external: &ExternalState,
    asserted: &Asserted,
    identity: Identity,
) -> Result<User, Failed> {
    let users = &state.config.users;
    let base = username_base(asserted.name_hint.as_deref());
    for attempt in 0..6 {
        let candidate = if attempt == 0 {
            base.clone()
        } else {
            let suffix = crate::ids::random_b64::<3>().map_err(StoreError::from)?;
            format!("{base}-{}", suffix.to_ascii_lowercase().replace('_', "x"))
        };
        let Some(username) = normalize_username(&candidate) else {
            continue;
        };
        let new = NewUser {
            username,
            email: asserted.verified_email.clone(),
            password_hash: String::new(),
            roles: external.settings.new_users.roles.clone(),
            scopes: external.settings.new_users.scopes.clone(),
        };
        match users.create_linked(new, identity.clone()).await? {
            Created::Created(mut user) => {
                if user.email.is_some() {
                    // The provider proved the address.
                    let verified = UserChange {
                        email_verified: Some(true),
                        ..UserChange::default()
                    };
                    users.update(&user.id, verified, None).await?;
                    user.email_verified = true;
                }
                tracing::info!(target: TARGET_ROUTER, user = %user.id, provider = %identity.provider, "auth router: user created by external sign-in");
                return Ok(user);
            }
            Created::Taken | Created::InvalidUsername => {}
            Created::EmailTaken => return Err(CallbackError::AccountExists.into()),
            // A concurrent first sign-in of the same person created the account.
            Created::IdentityTaken => {
                let user = users
                    .find_by_identity(&identity.issuer, &identity.subject)
                    .await?;
                return user.map_or(Err(CallbackError::TemporarilyUnavailable.into()), usable);
            }
        }
    }
    Err(CallbackError::ServerError.into())
}

fn usable(user: User) -> Result<User, Failed> {
    if user.disabled {
        return Err(CallbackError::AccessDenied.into());
    }
    Ok(user)
}

/// A username from the provider's name for the user: letters and digits kept (lower case),
/// anything else a `-`, at most 24 characters; `user` when nothing is left.
fn username_base(hint: Option<&str>) -> String {
    let mut base = String::new();
    for c in hint.unwrap_or("").chars() {
        if base.chars().count() >= 24 {
            break;
        }
        if c.is_alphanumeric() {
            base.extend(c.to_lowercase());
        } else if !base.ends_with('-') && !base.is_empty() {
            base.push('-');
        }
    }
    let base = base.trim_end_matches('-');
    if base.is_empty() || normalize_username(base).is_none() {
        "user".to_owned()
    } else {
        base.to_owned()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    redirect_to: String,
    code_challenge: String,
    code_challenge_method: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkClaim {
    link_code: String,
    code_verifier: String,
}

#[derive(Serialize)]
struct LinkAnswer {
    authorization_url: String,
}

/// `POST /external/{provider}/link` (bearer).
pub(in crate::router) async fn link(
    AxumState(state): Shared,
    Path(name): Path<String>,
    claims: Claims,
    request: Request,
) -> Reply {
    endpoints::finish(
        "external_link",
        link_address(&state, &name, &claims, request).await,
    )
}

async fn link_address(state: &State, name: &str, claims: &Claims, request: Request) -> Outcome {
    let Some(external) = state
        .external
        .as_ref()
        .filter(|external| external.providers.get(name).is_some())
    else {
        return Err(not_found());
    };
    let body: LinkRequest = endpoints::json_body(
        request,
        "expected {\"redirect_to\", \"code_challenge\", \"code_challenge_method\": \"S256\"}",
    )
    .await?;
    if !external.allowed(&body.redirect_to) {
        return Err(OAuthError::invalid_request("redirect_to is not an allowed address").into());
    }
    if body.code_challenge_method != "S256" || !is_challenge(&body.code_challenge) {
        return Err(OAuthError::invalid_request("an S256 code_challenge is required").into());
    }
    let user = claims.subject().unwrap_or_default().to_owned();
    let ticket = crate::ids::random_b64::<32>().map_err(StoreError::from)?;
    let record = LinkTicket {
        user,
        provider: name.to_owned(),
        redirect_to: body.redirect_to,
        challenge: body.code_challenge,
    };
    let json = serde_json::to_string(&record).unwrap_or_default();
    let now = state.now();
    let stored = external
        .settings
        .store
        .put(&key("link", &ticket), json, now + LINK_TTL.as_secs(), now)
        .await?;
    if !stored {
        return Err(StoreError::new("link ticket collision").into());
    }
    let start = format!("{}/external/{name}/start", external.settings.base_url);
    Ok(reply::json(
        StatusCode::OK,
        &LinkAnswer {
            authorization_url: page::with_query(&start, &[("link", &ticket)]),
        },
    ))
}

fn not_found() -> Stop {
    Stop::reply(
        reply::error(StatusCode::NOT_FOUND, "not_found", "no such provider"),
        RouterError::InvalidRequest,
    )
}

/// `PUT /external/{provider}/link` (bearer): links the identity a linking sign-in ended with,
/// for the account that asked for it and the front end that holds the verifier.
pub(in crate::router) async fn claim(
    AxumState(state): Shared,
    Path(name): Path<String>,
    claims: Claims,
    request: Request,
) -> Reply {
    endpoints::finish(
        "external_link",
        claim_link(&state, &name, &claims, request).await,
    )
}

async fn claim_link(state: &State, name: &str, claims: &Claims, request: Request) -> Outcome {
    let Some((external, _)) = provider(state, name) else {
        return Err(not_found());
    };
    let body: LinkClaim = endpoints::json_body(
        request,
        "expected {\"link_code\": string, \"code_verifier\": string}",
    )
    .await?;
    if !is_verifier(&body.code_verifier) {
        return Err(OAuthError::invalid_request("malformed code_verifier").into());
    }
    let invalid = OAuthError::InvalidGrant("invalid link code");
    let now = state.now();
    let taken = external
        .settings
        .store
        .take(&key("link-code", &body.link_code), now)
        .await?;
    let Some(pending) = taken.and_then(|json| serde_json::from_str::<PendingLink>(&json).ok())
    else {
        return Err(invalid.into());
    };
    let user = claims.subject().unwrap_or_default();
    let verified = s256(&body.code_verifier);
    if pending.identity.provider != name
        || pending.user != user
        || !bool::from(verified.as_bytes().ct_eq(pending.challenge.as_bytes()))
    {
        return Err(invalid.into());
    }
    let conflict = |code: &'static str, description: &'static str| {
        Stop::reply(
            reply::error(StatusCode::CONFLICT, code, description),
            RouterError::InvalidRequest,
        )
    };
    let users = &state.config.users;
    let identity = pending.identity;
    if let Some(owner) = users
        .find_by_identity(&identity.issuer, &identity.subject)
        .await?
    {
        return if owner.id == user {
            Ok(reply::no_content())
        } else {
            Err(conflict(
                CallbackError::IdentityTaken.as_str(),
                "this identity is linked to another account",
            ))
        };
    }
    match users.link_identity(user, identity).await? {
        Linked::Linked => {
            events::audit(Audit::IdentityLinked, user, user);
            Ok(reply::no_content())
        }
        Linked::IdentityTaken => Err(conflict(
            CallbackError::IdentityTaken.as_str(),
            "this identity is linked to another account",
        )),
        Linked::ProviderTaken => Err(conflict(
            CallbackError::ProviderTaken.as_str(),
            "the account already has an identity from this provider",
        )),
        Linked::NoSuchUser => Err(invalid.into()),
    }
}

/// `DELETE /external/{provider}/link` (bearer).
pub(in crate::router) async fn unlink(
    AxumState(state): Shared,
    Path(name): Path<String>,
    claims: Claims,
) -> Reply {
    endpoints::finish(
        "external_unlink",
        unlink_identity(&state, &name, &claims).await,
    )
}

async fn unlink_identity(state: &State, name: &str, claims: &Claims) -> Outcome {
    if state
        .external
        .as_ref()
        .and_then(|external| external.providers.get(name))
        .is_none()
    {
        return Err(not_found());
    }
    let user = claims.subject().unwrap_or_default();
    match state.config.users.unlink_identity(user, name).await? {
        Unlinked::Unlinked(_) => {
            events::audit(Audit::IdentityUnlinked, user, user);
            Ok(reply::no_content())
        }
        Unlinked::NotLinked => Err(Stop::reply(
            reply::error(
                StatusCode::NOT_FOUND,
                "not_linked",
                "no identity from this provider is linked",
            ),
            RouterError::InvalidRequest,
        )),
        Unlinked::LastWayToSignIn => Err(Stop::reply(
            reply::error(
                StatusCode::CONFLICT,
                "last_sign_in_method",
                "the account has no password and no other identity",
            ),
            RouterError::InvalidRequest,
        )),
    }
}

/// `grant_type=authorization_code` at `POST /token`: the one-time code of an external sign-in,
/// with the front end's PKCE verifier.
pub(in crate::router) async fn code_grant(
    state: &State,
    params: &Params,
    client_id: String,
) -> Outcome {
    let Some(external) = &state.external else {
        return Err(OAuthError::UnsupportedGrantType.into());
    };
    let code = params.required("code", "missing parameter: code")?;
    let verifier = params.required("code_verifier", "missing parameter: code_verifier")?;
    if !is_verifier(verifier) {
        return Err(OAuthError::invalid_request("malformed code_verifier").into());
    }
    let requested = requested_scopes(params)?;
    let invalid = OAuthError::InvalidGrant("invalid authorization code");
    let now = state.now();
    // A session will be needed: with the refresh store down, the code is not used up.
    state.config.refresh.ready(now).await?;
    // Taken first: a code is used up by any attempt, right or wrong.
    let record = external
        .settings
        .store
        .take(&key("code", code), now)
        .await?;
    let Some(record) = record.and_then(|json| serde_json::from_str::<Code>(&json).ok()) else {
        return Err(invalid.into());
    };
    let challenge = s256(verifier);
    if !bool::from(challenge.as_bytes().ct_eq(record.challenge.as_bytes())) {
        return Err(invalid.into());
    }
    if params
        .get("redirect_uri")
        .is_some_and(|uri| uri != record.redirect_to)
    {
        return Err(invalid.into());
    }
    let user = state.config.users.find_by_id(&record.user).await?;
    let Some(user) = user.filter(|user| !user.disabled) else {
        return Err(invalid.into());
    };
    let mut scopes = negotiate(requested, &user.scopes)?;
    let (session, refresh_token) = open_session(state, &user, client_id, &scopes).await?;
    // The account as it is now that the session exists, as after a password login: a change
    // an administrator made meanwhile is seen here, or ends this session too.
    let current = state.config.users.find_by_id(&user.id).await?;
    let Some(user) = current.filter(|current| !current.disabled) else {
        let _ = endpoints::end_session(state, &session.session_id, now).await;
        return Err(invalid.into());
    };
    scopes.retain(|scope| user.scopes.contains(scope));
    tracing::info!(target: TARGET_ROUTER, user = %user.id, sid = %session.session_id, "auth router: login by external sign-in");
    access_token_reply(state, &user, &session, &scopes, &refresh_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_values_follow_rfc_7636() {
        // RFC 7636 appendix B.
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(is_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert!(!is_verifier("short"));
        assert!(!is_verifier(&"a".repeat(129)));
        assert!(!is_verifier(&format!("{}+", "a".repeat(43))));
        assert!(is_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!is_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c="));
    }

    #[test]
    fn keys_are_per_purpose_and_queries_refuse_repeats() {
        assert_ne!(key("flow", "x"), key("code", "x"));
        assert!(query(Some("a=1&a=2")).is_none());
        let params = query(Some("state=a%20b&code=c")).unwrap();
        assert_eq!(param(&params, "state"), Some("a b"));
        assert_eq!(param(&params, "nope"), None);
    }

    #[test]
    fn usernames_come_from_the_providers_name() {
        assert_eq!(username_base(Some("Ann Lee")), "ann-lee");
        assert_eq!(username_base(Some("  ")), "user");
        assert_eq!(username_base(None), "user");
        assert_eq!(username_base(Some("octo_cat!")), "octo-cat");
        assert!(username_base(Some(&"x".repeat(100))).len() <= 24);
    }
}
