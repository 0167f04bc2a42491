//! Talking to providers: discovery (cached), the code exchange with the provider's client
//! authentication, the ID token's checks, and GitHub's user API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Request, Uri};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use super::{CallbackError, Kind, Provider};
use crate::discovery::checked_url;
use crate::error::{ConfigError, ErrorKind};
use crate::remote::client::HttpClient;
use crate::remote::{FetchError, RemoteJwks};
use crate::router::endpoints::is_plausible_email;
use crate::telemetry::TARGET_ROUTER;
use crate::verifier::Verifier;

/// How long discovered endpoints are used before they are read again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// The longest one HTTP request to a provider may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a whole callback's talk with the provider (the code exchange, keys, the user
/// API) may take, within the 30 s a front proxy or the example server gives a request.
pub(super) const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a slow failed discovery is remembered: starts against a provider that hangs answer
/// at once instead of each waiting for its own timeout.
const FAILURE_MEMORY: Duration = Duration::from_secs(5);
/// A failed discovery that took this long is remembered.
const SLOW_FAILURE: Duration = Duration::from_secs(1);
/// The largest answer read from a provider.
const MAX_ANSWER: usize = 256 * 1024;

/// The configured providers, ready to talk to.
pub(crate) struct Providers {
    by_name: HashMap<String, Arc<Live>>,
    http: HttpClient,
}

/// A provider and what was learnt about it.
pub(super) struct Live {
    pub(super) config: Provider,
    /// The ID token's verifier (OpenID Connect only).
    verifier: Option<Verifier>,
    endpoints: Mutex<Option<(Arc<Endpoints>, Instant)>>,
    /// When discovery last failed, and how.
    failed: Mutex<Option<(CallbackError, Instant)>>,
}

/// Where to send the browser and the code, and how the client authenticates.
pub(super) struct Endpoints {
    pub(super) authorization: String,
    token: String,
    basic: bool,
    /// RFC 9207: the provider names itself in every authorization response.
    pub(super) iss_parameter: bool,
}

/// Who the provider says signed in.
#[derive(Debug)]
pub(super) struct Asserted {
    pub(super) issuer: String,
    pub(super) subject: String,
    /// The address, only when the provider says it is verified.
    pub(super) verified_email: Option<String>,
    /// A name to derive a username from.
    pub(super) name_hint: Option<String>,
}

/// What the provider's token endpoint answers that this reads.
#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Discovered {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

impl Providers {
    pub(crate) fn new(providers: &[Provider]) -> Result<Self, ConfigError> {
        let mut by_name = HashMap::new();
        for provider in providers {
            let verifier = match &provider.kind {
                Kind::Oidc { issuer } => Some(
                    Verifier::builder(RemoteJwks::discover(issuer)?.build()?)
                        .issuer(issuer.clone())
                        .audience(provider.client_id.clone())
                        .required_claims(["iss", "sub", "aud", "exp", "iat"])?
                        .build()?,
                ),
                Kind::GitHub { .. } => None,
            };
            let live = Live {
                config: provider.clone(),
                verifier,
                endpoints: Mutex::new(None),
                failed: Mutex::new(None),
            };
            by_name.insert(provider.name.clone(), Arc::new(live));
        }
        Ok(Self {
            by_name,
            http: HttpClient::new(Duration::from_secs(5), MAX_ANSWER, &[])?,
        })
    }

    pub(super) fn get(&self, name: &str) -> Option<&Arc<Live>> {
        self.by_name.get(name)
    }

    /// The provider's endpoints, discovered when not known or stale.
    pub(super) async fn endpoints(&self, live: &Live) -> Result<Arc<Endpoints>, CallbackError> {
        let cached = live
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some((endpoints, at)) = cached
            && at.elapsed() < METADATA_TTL
        {
            return Ok(endpoints);
        }
        let failed = *live.failed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((error, at)) = failed
            && at.elapsed() < FAILURE_MEMORY
        {
            return Err(error);
        }
        let endpoints = Arc::new(match &live.config.kind {
            Kind::GitHub { web, .. } => Endpoints {
                authorization: format!("{web}/login/oauth/authorize"),
                token: format!("{web}/login/oauth/access_token"),
                basic: false,
                iss_parameter: false,
            },
            Kind::Oidc { issuer } => {
                let began = Instant::now();
                match self.discover(&live.config.name, issuer).await {
                    Ok(endpoints) => endpoints,
                    Err(error) => {
                        // Only a slow failure is worth remembering: it held its request.
                        if began.elapsed() >= SLOW_FAILURE {
                            *live.failed.lock().unwrap_or_else(PoisonError::into_inner) =
                                Some((error, Instant::now()));
                        }
                        return Err(error);
                    }
                }
            }
        });
        *live
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            Some((Arc::clone(&endpoints), Instant::now()));
        Ok(endpoints)
    }

    async fn discover(&self, name: &str, issuer: &str) -> Result<Endpoints, CallbackError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let request = Request::get(url.as_str())
            .header(ACCEPT, "application/json")
            .body(Full::default());
        let body = self.send(name, "discovery", request).await?;
        let metadata: Discovered = serde_json::from_slice(&body)
            .map_err(|_| invalid(name, "discovery document is not usable json"))?;
        if metadata.issuer != issuer {
            return Err(invalid(name, "discovery names another issuer"));
        }
        for url in [&metadata.authorization_endpoint, &metadata.token_endpoint] {
            if checked_url(url).is_err() {
                return Err(invalid(name, "discovery endpoint is not an acceptable url"));
            }
        }
        // RFC 8414 §2: client_secret_basic when the provider lists nothing.
        let methods = metadata
            .token_endpoint_auth_methods_supported
            .unwrap_or_else(|| vec!["client_secret_basic".to_owned()]);
        let basic = if methods.iter().any(|m| m == "client_secret_basic") {
            true
        } else if methods.iter().any(|m| m == "client_secret_post") {
            false
        } else {
            return Err(invalid(
                name,
                "provider supports no client-secret authentication",
            ));
        };
        Ok(Endpoints {
            authorization: metadata.authorization_endpoint,
            token: metadata.token_endpoint,
            basic,
            iss_parameter: metadata.authorization_response_iss_parameter_supported,
        })
    }

    /// Sends a request to a provider: the answer's body when it is 200, else the error the
    /// callback ends with (unreachable: `temporarily_unavailable`).
    async fn send(
        &self,
        name: &str,
        what: &'static str,
        request: Result<Request<Full<Bytes>>, http::Error>,
    ) -> Result<Bytes, CallbackError> {
        let request = request.map_err(|_| invalid(name, "request not buildable"))?;
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, self.http.send(request))
            .await
            .unwrap_or(Err(FetchError::Timeout));
        match answer {
            Ok(fetched) => Ok(fetched.body),
            Err(error) => {
                tracing::warn!(target: TARGET_ROUTER, provider = name, what, %error, "auth router: external provider request failed");
                Err(match error {
                    FetchError::Status(429) => CallbackError::TemporarilyUnavailable,
                    FetchError::Status(400..=499) => CallbackError::InvalidRequest,
                    FetchError::Status(_) | FetchError::Timeout | FetchError::Connection(_) => {
                        CallbackError::TemporarilyUnavailable
                    }
                    _ => CallbackError::ServerError,
                })
            }
        }
    }

    /// Exchanges the provider's code and answers who signed in.
    pub(super) async fn exchange(
        &self,
        live: &Live,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<Asserted, CallbackError> {
        let provider = &live.config;
        let endpoints = self.endpoints(live).await?;
        let (basic, form) =
            token_request(provider, endpoints.basic, code, redirect_uri, pkce_verifier);
        let mut request = Request::post(endpoints.token.as_str())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(basic) = basic {
            let value = HeaderValue::try_from(basic)
                .map_err(|_| invalid(&provider.name, "client credentials not sendable"))?;
            request = request.header(AUTHORIZATION, value);
        }
        let body = self
            .send(
                &provider.name,
                "token",
                request.body(Full::new(Bytes::from(form))),
            )
            .await?;
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|_| invalid(&provider.name, "token answer is not usable json"))?;
        if let Some(error) = answer.error {
            // GitHub answers errors with 200.
            tracing::warn!(target: TARGET_ROUTER, provider = %provider.name, error = ?truncated(&error), "auth router: external provider refused the code");
            return Err(CallbackError::InvalidRequest);
        }
        match &provider.kind {
            Kind::Oidc { issuer } => {
                let id_token = answer
                    .id_token
                    .ok_or_else(|| invalid(&provider.name, "token answer has no id_token"))?;
                self.check_id_token(live, issuer, &id_token, nonce).await
            }
            Kind::GitHub { web, api } => {
                let access_token = answer
                    .access_token
                    .ok_or_else(|| invalid(&provider.name, "token answer has no access_token"))?;
                self.github_user(&provider.name, web, api, &access_token)
                    .await
            }
        }
    }

    async fn check_id_token(
        &self,
        live: &Live,
        issuer: &str,
        id_token: &str,
        nonce: &str,
    ) -> Result<Asserted, CallbackError> {
        let name = &live.config.name;
        let Some(verifier) = &live.verifier else {
            return Err(invalid(name, "no verifier for an openid provider"));
        };
        let claims = match verifier.verify_async(id_token).await {
            Ok(claims) => claims,
            Err(error) if error.kind() == ErrorKind::Unavailable => {
                tracing::warn!(target: TARGET_ROUTER, provider = %name, "auth router: external provider keys unavailable");
                return Err(CallbackError::TemporarilyUnavailable);
            }
            Err(error) => {
                tracing::warn!(target: TARGET_ROUTER, provider = %name, reason = error.kind().as_str(), "auth router: id token refused");
                return Err(CallbackError::InvalidToken);
            }
        };
        let extra: &Map<String, Value> = claims.extra();
        let refused = |why: &'static str| {
            tracing::warn!(target: TARGET_ROUTER, provider = %name, reason = why, "auth router: id token refused");
            CallbackError::InvalidToken
        };
        // OpenID Connect Core §3.1.3.7: the nonce of this sign-in, and the client as the
        // authorized party when several audiences are named.
        let presented = extra.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !bool::from(presented.as_bytes().ct_eq(nonce.as_bytes())) {
            return Err(refused("nonce"));
        }
        match extra.get("azp") {
            Some(Value::String(azp)) if *azp == live.config.client_id => {}
            Some(_) => return Err(refused("azp")),
            None if claims.audience().len() > 1 => return Err(refused("azp")),
            None => {}
        }
        let subject = claims.subject().unwrap_or_default();
        if subject.is_empty() || subject.len() > 255 {
            return Err(refused("sub"));
        }
        let verified = matches!(extra.get("email_verified"), Some(Value::Bool(true)));
        let email = extra.get("email").and_then(Value::as_str);
        let name_hint = ["preferred_username", "nickname", "given_name", "name"]
            .iter()
            .find_map(|claim| extra.get(*claim).and_then(Value::as_str))
            .or_else(|| email.and_then(|e| e.split('@').next()));
        Ok(Asserted {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            verified_email: email
                .filter(|email| verified && is_plausible_email(email))
                .map(str::to_owned),
            name_hint: name_hint.map(str::to_owned),
        })
    }

    /// GitHub's user: the numeric id as the subject, the login as the name, and the primary
    /// address when GitHub marks it verified.
    async fn github_user(
        &self,
        name: &str,
        web: &str,
        api: &str,
        access_token: &str,
    ) -> Result<Asserted, CallbackError> {
        #[derive(Deserialize)]
        struct User {
            id: u64,
            login: String,
        }
        #[derive(Deserialize)]
        struct Email {
            email: String,
            primary: bool,
            verified: bool,
        }
        let get = |path: &str| {
            let bearer = HeaderValue::try_from(format!("Bearer {access_token}"));
            let url = format!("{api}{path}");
            async move {
                let bearer = bearer.map_err(|_| invalid(name, "access token not sendable"))?;
                let request =
                    Request::get(url.parse::<Uri>().map_err(|_| invalid(name, "api url"))?)
                        .header(ACCEPT, "application/vnd.github+json")
                        .header(AUTHORIZATION, bearer)
                        .header("x-github-api-version", "2022-11-28")
                        .body(Full::default());
                self.send(name, "user", request).await
            }
        };
        let user: User = serde_json::from_slice(&get("/user").await?)
            .map_err(|_| invalid(name, "user answer is not usable json"))?;
        let emails: Vec<Email> = serde_json::from_slice(&get("/user/emails").await?)
            .map_err(|_| invalid(name, "emails answer is not usable json"))?;
        let verified_email = emails
            .into_iter()
            .find(|e| e.primary && e.verified && is_plausible_email(&e.email))
            .map(|e| e.email);
        Ok(Asserted {
            issuer: web.to_owned(),
            subject: user.id.to_string(),
            verified_email,
            name_hint: Some(user.login),
        })
    }
}

/// The code exchange's `Authorization: Basic` value (when the provider takes HTTP Basic) and
/// form body (with the client's credentials when it does not).
fn token_request(
    provider: &Provider,
    basic: bool,
    code: &str,
    redirect_uri: &str,
    pkce_verifier: &str,
) -> (Option<String>, String) {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_verifier", pkce_verifier);
    let secret = provider.client_secret.as_str();
    if basic {
        // RFC 6749 §2.3.1: each part form-encoded before the Basic encoding.
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let credentials = format!("{}:{}", encode(&provider.client_id), encode(secret));
        (
            Some(format!("Basic {}", STANDARD.encode(credentials))),
            form.finish(),
        )
    } else {
        form.append_pair("client_id", &provider.client_id)
            .append_pair("client_secret", secret);
        (None, form.finish())
    }
}

/// The provider answered something unusable: logged for the operator, `server_error` for the
/// browser.
fn invalid(provider: &str, why: &'static str) -> CallbackError {
    tracing::warn!(target: TARGET_ROUTER, provider, reason = why, "auth router: external provider answer unusable");
    CallbackError::ServerError
}

/// At most 64 bytes of text from a provider, for a log line.
fn truncated(text: &str) -> &str {
    let cut = (0..=text.len().min(64))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    &text[..cut]
}
