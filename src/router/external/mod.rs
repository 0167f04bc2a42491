//! Sign-in with external identity providers (feature `external`): OpenID Connect providers by
//! issuer URL, and GitHub's OAuth2, ending in the router's own sessions.
//!
//! ```
//! use tower_jwt_auth::issuer::TokenIssuer;
//! use tower_jwt_auth::password::PasswordHasher;
//! use tower_jwt_auth::router::AuthRouter;
//! use tower_jwt_auth::router::external::{ExternalSignIn, Provider, Signup};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let google = Provider::oidc("google", "https://accounts.google.com", "client-id", "client-secret")?
//!     .label("Google");
//! let github = Provider::github("github-client-id", "github-client-secret")?;
//! let external = ExternalSignIn::new("https://app.example/auth")?
//!     .provider(google)?
//!     .provider(github)?
//!     .allowed_redirect("https://www.app.example")?
//!     .signup(Signup::domains(["app.example"])?);
//! let issuer = TokenIssuer::generate_ed25519("https://app.example", "api")?;
//! let auth = AuthRouter::builder(issuer)
//!     .hasher(PasswordHasher::builder().params(1024, 1, 1)?.build()?) // cheap, for the example only
//!     .external_sign_in(external)
//!     .build()?;
//! // Providers send the browser back to
//! // https://app.example/auth/external/google/callback and .../github/callback.
//! # let _: axum::Router = auth.router();
//! # Ok(()) }
//! ```
//!
//! # The flow
//!
//! | route (relative to the mount) | |
//! |---|---|
//! | `GET /external/{provider}/start` | `redirect_to` (an [allowed](ExternalSignIn::allowed_redirect) address), `code_challenge` and `code_challenge_method=S256` (RFC 7636: the front end's own PKCE challenge). Answers 302 to the provider, with the router's own PKCE challenge, `state` and `nonce` |
//! | `GET /external/{provider}/callback` | where the provider sends the browser back. Answers 302 to `redirect_to?code=…` on success, `redirect_to?error=…` on failure |
//! | `POST /external/{provider}/link` | bearer token required, JSON `{redirect_to, code_challenge, code_challenge_method: "S256"}`: answers 200 `{authorization_url}`, a one-time address (valid [`LINK_TTL`]) to send the signed-in user's browser to; the sign-in there ends on `redirect_to?link_code=…` |
//! | `PUT /external/{provider}/link` | bearer token required, JSON `{link_code, code_verifier}`: links the identity that sign-in found to the account, when the token is the account's that asked and the verifier matches; 204, 400 `invalid_grant`, 409 `identity_taken` or `provider_taken` |
//! | `DELETE /external/{provider}/link` | bearer token required: unlinks the user's identity at that provider; 204, 404 `not_linked`, or 409 `last_sign_in_method` when the account has no password and no other identity |
//!
//! The front end exchanges the one-time `code` at `POST /token` with
//! `grant_type=authorization_code`, `code` and `code_verifier` (RFC 6749 §4.1.3, RFC 7636) for
//! the same token pair a password login gets: a new session, with its `sid`, refresh rotation,
//! revocation and limits. Tokens never travel in a URL. The code is single use, valid
//! [`CODE_TTL`], and bound to the front end's PKCE verifier: a code read from a browser's
//! history or a log is useless without the verifier the front end keeps. A start that a page
//! of another site sends the browser to (with a challenge of its choosing) is refused: browsers
//! say `Sec-Fetch-Site: cross-site`, and the `Referer` must then name an allowed origin.
//!
//! Linking is claimed the same way: a link address is minted for one account, but the identity
//! found at the provider is linked only when that account's own token and the front end's
//! verifier claim it with `PUT`. Someone who mints a link address for their own account and
//! sends a victim through it gets nothing: the victim's browser ends with a link code its
//! minter cannot read, and the victim's front end cannot claim it for another account.
//!
//! The state of a sign-in lives in the [`OneTimeStore`] for at most
//! [`FLOW_TTL`], keyed by a hash of its `state`, and is taken (used up) by the callback: a
//! replayed callback finds nothing. It is bound to the browser that started it by an
//! `HttpOnly`, `SameSite=Lax` cookie (`Secure`, and `__Host-` prefixed, on `https`), so a
//! sign-in started by someone else cannot be finished in a victim's browser. The ID token is
//! checked by this crate's strict [`Verifier`](crate::verifier::Verifier) on the provider's
//! published keys: issuer, audience (the client id), signature, `exp`, `iat`, then `nonce`,
//! and `azp` where present. A provider's RFC 9207 `iss` parameter, when sent, must name it.
//!
//! # Errors at the callback
//!
//! A failure never opens a session. When the sign-in's `redirect_to` is known, the browser goes
//! back to it with `error` set to one of [`CallbackError`]'s codes; otherwise (no or unknown
//! `state`) the answer is a short HTML page with a 400. A provider that cannot be reached at
//! the start answers 503 with `Retry-After`.
//!
//! # Accounts
//!
//! An identity is `(issuer, subject)`, never an address. A known identity signs in to its
//! account. A new one:
//! - with [linking by e-mail](ExternalSignIn::link_by_email) (off by default), is linked to
//!   the account with its address when the provider says the address is verified **and** the
//!   account's own address is verified. Without the second condition, whoever registered the
//!   victim's address first (and never proved it) would own the victim's external sign-in:
//!   account pre-hijacking. Without [e-mail verification](super::AuthRouterBuilder::email_verification)
//!   no local address is verified, so linking by e-mail never happens.
//! - otherwise creates an account when the [sign-up policy](Signup) allows it, without a
//!   password, with the provider's address only when the provider says it is verified (and
//!   then marked verified).
//!
//! A signed-in user may link more providers and unlink them while another way to sign in
//! remains.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use super::Registration;
use super::identities::{MemoryOneTimeStore, OneTimeStore};
use crate::discovery::checked_url;
use crate::error::ConfigError;

mod flow;
mod page;
mod provider;

pub(super) use flow::{ExternalState, callback, claim, code_grant, link, start, unlink};

/// How long a sign-in may take between its start and the provider's callback.
pub const FLOW_TTL: Duration = Duration::from_secs(600);
/// How long a one-time sign-in code is valid.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// How long the address a [link request](self#the-flow) answers stays usable.
pub const LINK_TTL: Duration = Duration::from_secs(60);
/// The scopes asked of an OpenID Connect provider unless [`Provider::scopes`] says otherwise.
pub const DEFAULT_OIDC_SCOPES: &[&str] = &["openid", "email", "profile"];
/// The scopes asked of GitHub: the profile and the addresses (with their verified flags).
pub const GITHUB_SCOPES: &[&str] = &["read:user", "user:email"];

/// Where a provider's endpoints come from.
#[derive(Clone, Debug)]
pub(super) enum Kind {
    /// OpenID Connect: discovery from the issuer URL; the user from the ID token.
    Oidc { issuer: String },
    /// GitHub's OAuth2: fixed endpoints on `web`; the user from the API at `api`.
    GitHub { web: String, api: String },
}

/// An identity provider users may sign in with. Its `name` is its route segment
/// (`/external/{name}/…`) and the `provider` of the identities it links.
#[derive(Clone)]
pub struct Provider {
    pub(super) name: String,
    pub(super) label: String,
    pub(super) kind: Kind,
    pub(super) client_id: String,
    pub(super) client_secret: Arc<Zeroizing<String>>,
    pub(super) scopes: Vec<String>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("label", &self.label)
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// An OpenID Connect provider, found by discovery from its issuer identifier (Google:
    /// `https://accounts.google.com`; Keycloak: `https://host/realms/{realm}`; Entra ID:
    /// `https://login.microsoftonline.com/{tenant}/v2.0`), with the client registered there.
    /// Asks for [`DEFAULT_OIDC_SCOPES`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for a `name` that is not 1 to 32 lower-case letters,
    /// digits or `-`, an issuer that is not an absolute `https` URL (`http` only to a
    /// loopback host) without credentials, query or fragment, or an empty client id or secret.
    pub fn oidc(
        name: &str,
        issuer: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Self, ConfigError> {
        checked_url(issuer)?;
        Self::new(
            name,
            Kind::Oidc {
                issuer: issuer.to_owned(),
            },
            client_id,
            client_secret,
            DEFAULT_OIDC_SCOPES,
        )
    }

    /// GitHub (OAuth2, no ID token): named `github`, labelled `GitHub`, asking for
    /// [`GITHUB_SCOPES`]. The user is read from GitHub's API: the account id is the subject,
    /// and the primary address is used only when GitHub marks it verified. Identities have
    /// the issuer `https://github.com`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for an empty client id or secret.
    pub fn github(client_id: &str, client_secret: &str) -> Result<Self, ConfigError> {
        Self::new(
            "github",
            Kind::GitHub {
                web: "https://github.com".to_owned(),
                api: "https://api.github.com".to_owned(),
            },
            client_id,
            client_secret,
            GITHUB_SCOPES,
        )
        .map(|provider| provider.label("GitHub"))
    }

    /// For [`github`](Self::github): other addresses of the web site (authorization and token
    /// endpoints under `/login/oauth/`) and of the API, such as a GitHub Enterprise server or
    /// a test double. The identities' issuer becomes `web`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when this is not a GitHub provider, or for a URL that
    /// is not an absolute `https` URL (`http` only to a loopback host) without credentials,
    /// query or fragment.
    pub fn github_endpoints(mut self, web: &str, api: &str) -> Result<Self, ConfigError> {
        let Kind::GitHub { .. } = self.kind else {
            return Err(ConfigError::InvalidSetting(
                "github_endpoints applies to Provider::github only",
            ));
        };
        checked_url(web)?;
        checked_url(api)?;
        self.kind = Kind::GitHub {
            web: web.trim_end_matches('/').to_owned(),
            api: api.trim_end_matches('/').to_owned(),
        };
        Ok(self)
    }

    /// The name shown on the sign-in button (default: the provider's name).
    #[must_use]
    pub fn label(mut self, label: &str) -> Self {
        label.clone_into(&mut self.label);
        self
    }

    /// The scopes asked of the provider. An OpenID Connect provider must be asked for
    /// `openid`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for a value that is not an RFC 6749 scope token, or
    /// OpenID Connect scopes without `openid`.
    pub fn scopes<I>(mut self, scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut list = Vec::new();
        for scope in scopes {
            let scope = scope.as_ref();
            if !crate::claims::is_scope_token(scope) {
                return Err(ConfigError::InvalidSetting(
                    "provider scopes are RFC 6749 scope tokens",
                ));
            }
            list.push(scope.to_owned());
        }
        if matches!(self.kind, Kind::Oidc { .. }) && !list.iter().any(|s| s == "openid") {
            return Err(ConfigError::InvalidSetting(
                "an OpenID Connect provider must be asked for the openid scope",
            ));
        }
        self.scopes = list;
        Ok(self)
    }

    /// The provider's name: its route segment.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name shown on its sign-in button.
    #[must_use]
    pub fn display_name(&self) -> &str {
        &self.label
    }

    fn new(
        name: &str,
        kind: Kind,
        client_id: &str,
        client_secret: &str,
        scopes: &[&str],
    ) -> Result<Self, ConfigError> {
        let valid_name = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid_name {
            return Err(ConfigError::InvalidSetting(
                "provider names are 1 to 32 lower-case letters, digits or -",
            ));
        }
        let printable = |s: &str| !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if !printable(client_id) || !printable(client_secret) {
            return Err(ConfigError::InvalidSetting(
                "a provider's client id and secret are non-empty printable ascii",
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            label: name.to_owned(),
            kind,
            client_id: client_id.to_owned(),
            client_secret: Arc::new(Zeroizing::new(client_secret.to_owned())),
            scopes: scopes.iter().map(|&s| s.to_owned()).collect(),
        })
    }
}

/// Who may get a new account by signing in with a provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signup {
    /// Anyone the provider signs in.
    Open,
    /// Only users whose address the provider says is verified and whose domain (the part
    /// after `@`, compared in lower case) is one of these.
    Domains(Vec<String>),
    /// No one: only identities already linked (and, with
    /// [linking by e-mail](ExternalSignIn::link_by_email), verified addresses of existing
    /// accounts) sign in.
    Closed,
}

impl Signup {
    /// [`Signup::Domains`], checked.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for no domains, or a domain that is not lower-case
    /// letters, digits, `-` and `.` between labels.
    pub fn domains<I>(domains: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut list = Vec::new();
        for domain in domains {
            let domain = domain.as_ref().to_ascii_lowercase();
            let valid = domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
            if !valid || domain.len() > 253 {
                return Err(ConfigError::InvalidSetting(
                    "sign-up domains are host names such as example.com",
                ));
            }
            list.push(domain);
        }
        if list.is_empty() {
            return Err(ConfigError::InvalidSetting(
                "a domain sign-up policy needs at least one domain",
            ));
        }
        Ok(Self::Domains(list))
    }

    /// Whether an account may be created for this address (`Some` only when the provider
    /// says it is verified).
    pub(super) fn admits(&self, verified_email: Option<&str>) -> bool {
        match self {
            Self::Open => true,
            Self::Closed => false,
            Self::Domains(domains) => verified_email
                .and_then(|email| email.rsplit_once('@'))
                .is_some_and(|(_, domain)| {
                    let domain = domain.to_ascii_lowercase();
                    domains.contains(&domain)
                }),
        }
    }
}

/// Why a sign-in failed, as the `error` parameter of the redirect back to the front end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallbackError {
    /// `access_denied`: the user declined at the provider, or the account is disabled.
    AccessDenied,
    /// `invalid_request`: the callback does not belong to a sign-in this browser started, or
    /// misses its parameters.
    InvalidRequest,
    /// `invalid_token`: the provider's answer did not verify (signature, issuer, audience,
    /// expiry, `nonce`, `azp`).
    InvalidToken,
    /// `temporarily_unavailable`: the provider (or a store) could not be reached.
    TemporarilyUnavailable,
    /// `server_error`: the provider answered something unusable.
    ServerError,
    /// `signup_closed`: a new identity, and the sign-up policy creates no account for it.
    SignupClosed,
    /// `account_exists`: an account already has the provider's address; sign in to it with a
    /// password and link the provider from there.
    AccountExists,
    /// `identity_taken`: linking an identity that is already linked to another account.
    IdentityTaken,
    /// `provider_taken`: linking a second identity from one provider.
    ProviderTaken,
}

impl CallbackError {
    /// The code.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AccessDenied => "access_denied",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
            Self::SignupClosed => "signup_closed",
            Self::AccountExists => "account_exists",
            Self::IdentityTaken => "identity_taken",
            Self::ProviderTaken => "provider_taken",
        }
    }
}

/// External sign-in for [`AuthRouterBuilder::external_sign_in`](super::AuthRouterBuilder::external_sign_in):
/// the providers, where the router is reachable, where browsers may be sent back to, and the
/// account policy. See the [module docs](self).
#[must_use]
pub struct ExternalSignIn {
    pub(super) base_url: String,
    pub(super) providers: Vec<Provider>,
    pub(super) origins: Vec<String>,
    pub(super) signup: Signup,
    pub(super) link_by_email: bool,
    pub(super) store: Arc<dyn OneTimeStore>,
    pub(super) new_users: Registration,
}

impl fmt::Debug for ExternalSignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalSignIn")
            .field("base_url", &self.base_url)
            .field("providers", &self.providers)
            .field("origins", &self.origins)
            .field("signup", &self.signup)
            .field("link_by_email", &self.link_by_email)
            .finish_non_exhaustive()
    }
}

impl ExternalSignIn {
    /// External sign-in for a router reachable at `base_url`, its mount path included
    /// (`https://app.example/auth`): providers send browsers back to
    /// `{base_url}/external/{name}/callback`, the address to register with each of them. The
    /// origin of `base_url` is an allowed `redirect_to`. New accounts: [`Signup::Open`], no
    /// roles or scopes; no linking by e-mail; a [`MemoryOneTimeStore`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] unless `base_url` is an absolute `https` URL (`http`
    /// only to a loopback host) without credentials, query or fragment.
    pub fn new(base_url: &str) -> Result<Self, ConfigError> {
        checked_url(base_url)?;
        let base_url = base_url.trim_end_matches('/').to_owned();
        let origin = page::origin_of(&base_url)
            .ok_or(ConfigError::InvalidSetting("the base url has no origin"))?;
        Ok(Self {
            base_url,
            providers: Vec::new(),
            origins: vec![origin],
            signup: Signup::Open,
            link_by_email: false,
            store: Arc::new(MemoryOneTimeStore::new()),
            new_users: Registration::default(),
        })
    }

    /// Adds a provider.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when a provider with its name is already configured.
    pub fn provider(mut self, provider: Provider) -> Result<Self, ConfigError> {
        if self.providers.iter().any(|p| p.name == provider.name) {
            return Err(ConfigError::InvalidSetting("duplicate provider name"));
        }
        self.providers.push(provider);
        Ok(self)
    }

    /// Allows `redirect_to` addresses on this origin (`scheme://host[:port]`, as browsers
    /// write it): the first-party front ends. Nothing else is ever redirected to, so the
    /// flow is no open redirect.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for anything but an exact origin: `https` (`http` only
    /// to a loopback host), lower case, no path, default port left out.
    pub fn allowed_redirect(mut self, origin: &str) -> Result<Self, ConfigError> {
        checked_url(origin)?;
        if page::origin_of(origin).as_deref() != Some(origin) {
            return Err(ConfigError::InvalidSetting(
                "allowed redirects are exact origins: scheme://host[:port], lower case, no path",
            ));
        }
        if !self.origins.iter().any(|known| known == origin) {
            self.origins.push(origin.to_owned());
        }
        Ok(self)
    }

    /// Who gets a new account (default [`Signup::Open`]).
    pub fn signup(mut self, signup: Signup) -> Self {
        self.signup = signup;
        self
    }

    /// Links a new identity to the account with the same address when the provider says the
    /// address is verified and the account's own address is verified too (default: off). See
    /// the [module docs](self#accounts) for why both.
    pub fn link_by_email(mut self, enabled: bool) -> Self {
        self.link_by_email = enabled;
        self
    }

    /// The roles and scopes of accounts created by a sign-in (default: none).
    pub fn new_users(mut self, grants: Registration) -> Self {
        self.new_users = grants;
        self
    }

    /// Where sign-ins in progress and one-time codes live (default: a
    /// [`MemoryOneTimeStore`]). Several instances must share one.
    pub fn store(mut self, store: Arc<dyn OneTimeStore>) -> Self {
        self.store = store;
        self
    }

    /// The configured providers.
    #[must_use]
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// The address a provider sends browsers back to.
    #[must_use]
    pub fn callback_url(&self, provider: &str) -> String {
        format!("{}/external/{provider}/callback", self.base_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert!(Provider::oidc("Google", "https://accounts.google.com", "id", "secret").is_err());
        assert!(Provider::oidc("g", "http://idp.example", "id", "secret").is_err());
        assert!(Provider::oidc("g", "https://idp.example", "", "secret").is_err());
        assert!(Provider::oidc("g", "https://idp.example", "id", "a b").is_err());
        let oidc = Provider::oidc("g", "https://idp.example", "id", "secret").unwrap();
        assert!(oidc.clone().scopes(["email"]).is_err(), "openid is needed");
        assert!(
            oidc.clone()
                .github_endpoints("https://a", "https://b")
                .is_err()
        );
        assert!(
            format!("{oidc:?}").contains("client_id") && !format!("{oidc:?}").contains("secret\"")
        );
        let external = ExternalSignIn::new("https://app.example/auth/").unwrap();
        assert_eq!(external.origins, ["https://app.example"]);
        assert_eq!(
            external.callback_url("g"),
            "https://app.example/auth/external/g/callback"
        );
        for bad in [
            "https://app.example/",
            "https://App.example",
            "https://app.example:443",
            "http://app.example",
            "*",
        ] {
            assert!(
                ExternalSignIn::new("https://app.example")
                    .unwrap()
                    .allowed_redirect(bad)
                    .is_err(),
                "{bad}"
            );
        }
        let external = external
            .provider(oidc.clone())
            .unwrap()
            .allowed_redirect("http://127.0.0.1:8080")
            .unwrap();
        assert!(external.provider(oidc).is_err(), "duplicate name");
        assert!(Signup::domains(Vec::<String>::new()).is_err());
        assert!(Signup::domains(["-a.example"]).is_err());
        assert!(Signup::domains(["a..example"]).is_err());
    }

    #[test]
    fn the_domain_policy_admits_verified_addresses_of_its_domains_only() {
        let policy = Signup::domains(["Corp.Example"]).unwrap();
        assert!(policy.admits(Some("ann@corp.example")));
        assert!(policy.admits(Some("ann@CORP.example")));
        assert!(!policy.admits(Some("ann@evil-corp.example")));
        assert!(!policy.admits(Some("ann@corp.example.evil")));
        assert!(!policy.admits(None), "unverified or no address");
        assert!(Signup::Open.admits(None));
        assert!(!Signup::Closed.admits(Some("ann@corp.example")));
    }
}
