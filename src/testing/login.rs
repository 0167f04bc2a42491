//! The login endpoints: `/authorize` signs in the scripted [`TestUser`] at once (no login form,
//! no consent) and redirects back with a code; `/token` redeems the code (RFC 6749 section 4.1,
//! PKCE S256 of RFC 7636, `iss` in the redirect per RFC 9207) for an access token and, under
//! scope `openid`, an ID token.

use std::collections::HashMap;
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq as _;

use super::form::{self, Params, Repeated};
use super::{State, TokenBuilder, unix_now};
use crate::encoding::BASE64URL;
use crate::error::SignError;

/// The largest token request body read.
const MAX_TOKEN_REQUEST: usize = 16 * 1024;

/// Lifetime of the tokens `/token` hands out, in seconds.
const TOKEN_LIFETIME: u64 = 300;

/// The user a [`TestIssuer`](super::TestIssuer) signs in when an app sends someone to its
/// `/authorize` endpoint: set with [`TestIssuer::sign_in_as`](super::TestIssuer::sign_in_as).
/// Its claims go into the ID token.
///
/// ```
/// use tower_jwt_auth::testing::TestUser;
///
/// let alice = TestUser::new("alice")
///     .email("alice@example.com", true)
///     .name("Alice Liddell")
///     .claim("groups", serde_json::json!(["staff"]));
/// assert_eq!(alice.subject(), "alice");
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct TestUser {
    subject: String,
    email: Option<(String, bool)>,
    name: Option<String>,
    claims: Map<String, Value>,
}

impl TestUser {
    /// A user whose ID tokens carry `sub` `subject`, and no email or name.
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            email: None,
            name: None,
            claims: Map::new(),
        }
    }

    /// The `email` claim, and `email_verified` as `verified`.
    pub fn email(mut self, address: impl Into<String>, verified: bool) -> Self {
        self.email = Some((address.into(), verified));
        self
    }

    /// The `name` claim.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Another ID token claim (`preferred_username`, `groups`...). It replaces a claim of the
    /// same name the issuer would set (`email_verified` as a string, say). To break the
    /// token itself, use
    /// [`TestIssuer::tamper_next_id_token`](super::TestIssuer::tamper_next_id_token).
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// The `sub` of the user's tokens.
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

impl Default for TestUser {
    /// `test-user`, without email or name: the user signed in until told otherwise.
    fn default() -> Self {
        Self::new("test-user")
    }
}

/// Changes the next ID token before it is signed.
pub(super) type Tamper = Box<dyn for<'a> FnOnce(TokenBuilder<'a>) -> TokenBuilder<'a> + Send>;

/// The scripted side of the login, and the codes handed out.
#[derive(Default)]
pub(super) struct Login {
    pub(super) user: TestUser,
    /// The error the next authorization request is answered with.
    pub(super) refusal: Option<String>,
    pub(super) tamper: Option<Tamper>,
    codes: HashMap<String, Grant>,
}

/// What an authorization code stands for.
struct Grant {
    client_id: String,
    redirect_uri: String,
    nonce: Option<String>,
    challenge: Option<String>,
    user: TestUser,
    scope: String,
    issued: Instant,
}

/// `GET /authorize`. A bad `client_id` or `redirect_uri` gets a 400 page (the redirect target
/// cannot be trusted); anything else goes back to the client's `redirect_uri`.
pub(super) fn authorize<B>(state: &State, request: &Request<B>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return not_allowed("GET");
    }
    let Some(params) = Params::parse(request.uri().query().unwrap_or_default()) else {
        return page("The query string is not form-urlencoded.");
    };
    let client_id = match params.get("client_id") {
        Ok(Some(id)) => id,
        Ok(None) => return page("client_id is missing."),
        Err(Repeated) => return page("client_id is repeated."),
    };
    if client_id != state.client_id {
        return page("Unknown client_id.");
    }
    let redirect_uri = match params.get("redirect_uri") {
        Ok(Some(uri)) if valid_redirect_uri(uri) => uri,
        Ok(Some(_)) => return page("redirect_uri must be an absolute http or https URI."),
        Ok(None) => return page("redirect_uri is missing."),
        Err(Repeated) => return page("redirect_uri is repeated."),
    };

    // From here on, errors go back to the client.
    let client_state = params.get("state");
    let back = |error: &str| {
        let mut answer = vec![("error", error)];
        if let Ok(Some(client_state)) = client_state {
            answer.push(("state", client_state));
        }
        answer.push(("iss", state.issuer.as_str()));
        redirect(redirect_uri, &answer)
    };
    if params.has_repeats() {
        return back("invalid_request");
    }
    match params.get("response_type") {
        Ok(Some("code")) => {}
        Ok(Some(_)) => return back("unsupported_response_type"),
        _ => return back("invalid_request"),
    }
    let scope = params
        .get("scope")
        .ok()
        .flatten()
        .unwrap_or_default()
        .split_ascii_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let nonce = params.get("nonce").ok().flatten().map(str::to_owned);
    let challenge = match (
        params.get("code_challenge").ok().flatten(),
        params.get("code_challenge_method").ok().flatten(),
    ) {
        (None, None) => None,
        (Some(challenge), Some("S256")) if is_s256_challenge(challenge) => {
            Some(challenge.to_owned())
        }
        _ => return back("invalid_request"),
    };

    // The login itself: whoever is signed in now, unless a refusal is scripted.
    let mut login = state.login();
    if let Some(error) = login.refusal.take() {
        drop(login);
        return back(&error);
    }
    let Ok(code) = crate::ids::random_b64::<32>() else {
        drop(login);
        return back("server_error");
    };
    let grant = Grant {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        nonce,
        challenge,
        user: login.user.clone(),
        scope,
        issued: Instant::now(),
    };
    let lifetime = state.code_lifetime;
    login
        .codes
        .retain(|_, grant| grant.issued.elapsed() < lifetime);
    login.codes.insert(code.clone(), grant);
    drop(login);
    let mut answer = vec![("code", code.as_str())];
    if let Ok(Some(client_state)) = client_state {
        answer.push(("state", client_state));
    }
    answer.push(("iss", state.issuer.as_str()));
    redirect(redirect_uri, &answer)
}

/// An absolute `http` or `https` URI with a host, no fragment, nothing but visible ASCII.
fn valid_redirect_uri(uri: &str) -> bool {
    if !uri.bytes().all(|byte| byte.is_ascii_graphic()) || uri.contains('#') {
        return false;
    }
    let Ok(parsed) = uri.parse::<http::Uri>() else {
        return false;
    };
    let scheme_ok = matches!(parsed.scheme_str(), Some(scheme)
        if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"));
    scheme_ok && parsed.host().is_some_and(|host| !host.is_empty())
}

/// A S256 challenge: the 43 base64url characters of a SHA-256 digest.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && BASE64URL
            .decode(challenge)
            .is_ok_and(|hash| hash.len() == 32)
}

/// A PKCE verifier (RFC 7636 section 4.1): 43 to 128 unreserved characters.
fn is_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~'))
}

/// `POST /token`: the authorization code grant, for the registered client only.
pub(super) async fn token<B>(state: &State, request: Request<B>) -> Response<Full<Bytes>>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if request.method() != Method::POST {
        return not_allowed("POST");
    }
    let (parts, body) = request.into_parts();
    let form_body = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_body {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let body = match Limited::new(body, MAX_TOKEN_REQUEST).collect().await {
        Ok(body) => body.to_bytes(),
        Err(err) if err.is::<LengthLimitError>() => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "the body is too large",
            );
        }
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body could not be read",
            );
        }
    };
    let Some(params) = std::str::from_utf8(&body).ok().and_then(Params::parse) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body is not form-urlencoded",
        );
    };
    if params.has_repeats() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a parameter is repeated",
        );
    }
    let param = |name| params.get(name).ok().flatten();

    // Client authentication: HTTP Basic or the body, not both (RFC 6749 section 2.3.1).
    let basic = match parts.headers.get(AUTHORIZATION) {
        None => None,
        Some(value) => match basic_credentials(value) {
            Some(credentials) => Some(credentials),
            None => {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "malformed Basic credentials",
                );
            }
        },
    };
    let (id, secret) = match (basic, param("client_id"), param("client_secret")) {
        (Some(_), _, Some(_)) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "more than one client authentication method",
            );
        }
        (Some((id, _)), Some(body_id), None) if body_id != id => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "client_id differs from the authenticated client",
            );
        }
        (Some(credentials), _, None) => credentials,
        (None, Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
        (None, _, _) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication is required",
            );
        }
    };
    let secret_matches: bool = secret
        .as_bytes()
        .ct_eq(state.client_secret.as_bytes())
        .into();
    if id != state.client_id || !secret_matches {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong secret",
        );
    }

    match param("grant_type") {
        Some("authorization_code") => {}
        Some(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only authorization_code is supported",
            );
        }
        None => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is missing",
            );
        }
    }
    let (Some(code), Some(redirect_uri)) = (param("code"), param("redirect_uri")) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code and redirect_uri are required",
        );
    };
    let invalid_grant = |why| refuse(StatusCode::BAD_REQUEST, "invalid_grant", why);
    // Presented once, gone: a second attempt fails whatever happens to this one.
    let Some(grant) = state.login().codes.remove(code) else {
        return invalid_grant("unknown or already used code");
    };
    if grant.issued.elapsed() >= state.code_lifetime {
        return invalid_grant("the code has expired");
    }
    if grant.client_id != id {
        return invalid_grant("the code was issued to another client");
    }
    if grant.redirect_uri != redirect_uri {
        return invalid_grant("redirect_uri differs from the authorization request");
    }
    match (&grant.challenge, param("code_verifier")) {
        (None, None) => {}
        (Some(challenge), Some(verifier)) if is_verifier(verifier) => {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
            let computed = BASE64URL.encode(digest.as_ref());
            if !bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
                return invalid_grant("code_verifier does not match the code_challenge");
            }
        }
        (Some(_), Some(_)) => return invalid_grant("code_verifier is malformed"),
        (Some(_), None) => return invalid_grant("code_verifier is missing"),
        (None, Some(_)) => {
            return invalid_grant("code_verifier without a code_challenge");
        }
    }

    match mint(state, &grant) {
        Ok(answer) => {
            let mut response = json(StatusCode::OK, &answer);
            response
                .headers_mut()
                .insert(http::header::PRAGMA, HeaderValue::from_static("no-cache"));
            response
        }
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the tokens could not be signed",
        ),
    }
}

/// The user and password of an `Authorization: Basic` header, each form-urlencoded.
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (id, secret) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((form::decode(id)?, form::decode(secret)?))
}

/// The token response: an access token for the issuer's audience, and an ID token under
/// scope `openid`.
fn mint(state: &State, grant: &Grant) -> Result<Value, SignError> {
    let mut access = state
        .token()
        .subject(&grant.user.subject)
        .claim("client_id", grant.client_id.as_str());
    if !grant.scope.is_empty() {
        access = access.scope(&grant.scope);
    }
    let mut answer = Map::new();
    answer.insert("access_token".to_owned(), Value::from(access.sign()?));
    answer.insert("token_type".to_owned(), Value::from("Bearer"));
    answer.insert("expires_in".to_owned(), Value::from(TOKEN_LIFETIME));
    if !grant.scope.is_empty() {
        answer.insert("scope".to_owned(), Value::from(grant.scope.as_str()));
    }
    if grant.scope.split(' ').any(|scope| scope == "openid") {
        let tamper = state.login().tamper.take();
        let mut id_token = id_token(state, grant);
        if let Some(tamper) = tamper {
            id_token = tamper(id_token);
        }
        answer.insert("id_token".to_owned(), Value::from(id_token.sign()?));
    }
    Ok(Value::Object(answer))
}

/// The ID token of `grant`, before signing.
fn id_token<'a>(state: &'a State, grant: &Grant) -> TokenBuilder<'a> {
    let now = unix_now();
    let user = &grant.user;
    let mut token = state
        .token()
        .typ(Some("JWT"))
        .subject(&user.subject)
        .audience(&grant.client_id)
        .claim("azp", grant.client_id.as_str())
        .claim("iat", now)
        .claim("exp", now + TOKEN_LIFETIME);
    if let Some(nonce) = &grant.nonce {
        token = token.claim("nonce", nonce.as_str());
    }
    if let Some((email, verified)) = &user.email {
        token = token
            .claim("email", email.as_str())
            .claim("email_verified", *verified);
    }
    if let Some(name) = &user.name {
        token = token.claim("name", name.as_str());
    }
    for (name, value) in &user.claims {
        token = token.claim(name, value.clone());
    }
    token
}

/// A redirect to `target` with `params` added to its query.
fn redirect(target: &str, params: &[(&str, &str)]) -> Response<Full<Bytes>> {
    let mut location = target.to_owned();
    if !location.contains('?') {
        location.push('?');
    } else if !location.ends_with(['?', '&']) {
        location.push('&');
    }
    let query: Vec<String> = params
        .iter()
        .map(|(name, value)| format!("{name}={}", form::encode(value)))
        .collect();
    location.push_str(&query.join("&"));
    let Ok(location) = HeaderValue::try_from(location) else {
        return page("The redirect could not be built.");
    };
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::FOUND;
    response.headers_mut().insert(LOCATION, location);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A 400 page for the person at the browser: the client could not be identified.
fn page(message: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(message.as_bytes())));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
        .headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// A token error response (RFC 6749 section 5.2).
fn refuse(status: StatusCode, error: &str, description: &str) -> Response<Full<Bytes>> {
    let mut body = Map::new();
    body.insert("error".to_owned(), Value::from(error));
    body.insert("error_description".to_owned(), Value::from(description));
    let mut response = json(status, &Value::Object(body));
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"test-issuer\""),
        );
    }
    response
}

/// A JSON answer that no cache keeps.
fn json(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_must_be_absolute_http() {
        for good in [
            "http://127.0.0.1:3000/callback",
            "https://app.example/cb?tenant=a",
            "HTTPS://app.example",
        ] {
            assert!(valid_redirect_uri(good), "{good}");
        }
        for bad in [
            "/callback",
            "ftp://app.example/cb",
            "https://app.example/cb#frag",
            "https://app.example/c b",
            "https:///cb",
            "javascript:alert(1)",
            "app.example/cb",
        ] {
            assert!(!valid_redirect_uri(bad), "{bad}");
        }
    }

    #[test]
    fn redirects_add_to_the_query() {
        let location = |target| {
            let response = redirect(target, &[("code", "c"), ("state", "a b")]);
            response.headers()[LOCATION].to_str().unwrap().to_owned()
        };
        assert_eq!(
            location("https://a.example/cb"),
            "https://a.example/cb?code=c&state=a%20b"
        );
        assert_eq!(
            location("https://a.example/cb?x=1"),
            "https://a.example/cb?x=1&code=c&state=a%20b"
        );
        assert_eq!(
            location("https://a.example/cb?"),
            "https://a.example/cb?code=c&state=a%20b"
        );
    }

    #[test]
    fn pkce_shapes() {
        assert!(is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"
        ));
        assert!(!is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"
        ));
        assert!(is_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert!(!is_verifier("short"));
        assert!(!is_verifier(&"a".repeat(129)));
        assert!(!is_verifier(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = |raw: &str| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
            HeaderValue::try_from(format!("Basic {encoded}")).unwrap()
        };
        assert_eq!(
            basic_credentials(&header("my%3Aapp:s%2Bcret+x")),
            Some(("my:app".to_owned(), "s+cret x".to_owned()))
        );
        assert_eq!(basic_credentials(&header("no-colon")), None);
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Bearer abc")),
            None
        );
    }
}
