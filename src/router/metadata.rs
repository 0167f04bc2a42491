//! RFC 8414 authorization-server metadata: what a client needs to find the router's endpoints
//! and keys from the issuer URL alone.

use bytes::Bytes;
use serde::Serialize;

use super::{GrantType, State};
use crate::discovery::{AUTHORIZATION_SERVER_PATH, checked_url, well_known};
use crate::error::ConfigError;

/// The document and the path it is served at.
pub(super) struct Metadata {
    pub(super) path: String,
    pub(super) document: Bytes,
}

impl Metadata {
    /// The metadata of the router in `state`, whose routes are served under `base_url`.
    pub(super) fn new(state: &State, base_url: &str) -> Result<Self, ConfigError> {
        let base = checked_url(base_url)?;
        let issuer = state.issuer.issuer();
        // The issuer must be a URL its metadata can be found from (RFC 8414 section 2).
        checked_url(issuer).map_err(|_| {
            ConfigError::InvalidSetting(
                "authorization-server metadata needs an https issuer (http only to a loopback \
                 host) without query or fragment",
            )
        })?;
        let clients = &state.config.clients;
        let mut grants = Vec::new();
        // The code grant only ends an external sign-in.
        let codes = state.has_external_sign_in();
        for grant in [
            GrantType::Password,
            GrantType::RefreshToken,
            GrantType::AuthorizationCode,
        ] {
            let served = grant != GrantType::AuthorizationCode || codes;
            if served && (clients.is_empty() || clients.values().any(|c| c.grants.contains(&grant)))
            {
                grants.push(match grant {
                    GrantType::Password => "password",
                    GrantType::RefreshToken => "refresh_token",
                    GrantType::AuthorizationCode => "authorization_code",
                });
            }
        }
        // Without registered clients every caller is a public client; with them, the methods
        // the registered ones can use (RFC 6749 section 2.3.1: Basic, or the body).
        let mut auth_methods = Vec::new();
        if clients.is_empty() || clients.values().any(|c| c.secret.is_none()) {
            auth_methods.push("none");
        }
        if clients.values().any(|c| c.secret.is_some()) {
            auth_methods.extend(["client_secret_basic", "client_secret_post"]);
        }
        #[derive(Serialize)]
        struct Document<'a> {
            issuer: &'a str,
            token_endpoint: String,
            revocation_endpoint: String,
            jwks_uri: String,
            grant_types_supported: &'a [&'a str],
            // Required by RFC 8414 even without an authorization endpoint: none is offered.
            response_types_supported: [&'a str; 0],
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            scopes_supported: &'a [String],
            token_endpoint_auth_methods_supported: &'a [&'a str],
            revocation_endpoint_auth_methods_supported: &'a [&'a str],
            #[serde(skip_serializing_if = "Option::is_none")]
            service_documentation: Option<&'a str>,
            /// RFC 7636: the code grant's verifier is checked against an S256 challenge.
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            code_challenge_methods_supported: &'a [&'a str],
        }
        let document = Document {
            issuer,
            token_endpoint: format!("{base}/token"),
            revocation_endpoint: format!("{base}/revoke"),
            jwks_uri: format!("{base}/jwks.json"),
            grant_types_supported: &grants,
            response_types_supported: [],
            scopes_supported: &state.config.scopes_supported,
            token_endpoint_auth_methods_supported: &auth_methods,
            revocation_endpoint_auth_methods_supported: &auth_methods,
            service_documentation: state.config.service_documentation.as_deref(),
            code_challenge_methods_supported: if codes { &["S256"] } else { &[] },
        };
        let document = serde_json::to_vec(&document)
            .map_err(|_| ConfigError::InvalidSetting("metadata does not serialise"))?;
        Ok(Self {
            path: well_known(issuer, AUTHORIZATION_SERVER_PATH).1,
            document: Bytes::from(document),
        })
    }
}
