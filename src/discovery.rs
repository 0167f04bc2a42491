//! Discovery: documents that tell clients where to get a token for an API, served at
//! well-known paths.
//!
//! ```
//! use http::StatusCode;
//! use tower_jwt_auth::bearer::BearerAuthLayer;
//! use tower_jwt_auth::discovery::ProtectedResource;
//! use tower_jwt_auth::{Algorithm, KeySet, Verifier};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let resource = ProtectedResource::builder("https://api.example/v1")?
//!     .authorization_server("https://auth.example")?
//!     .scopes(["items:read", "items:write"])?
//!     .build();
//! // Served at the host's root, the resource's path after the well-known segment.
//! assert_eq!(resource.path(), "/.well-known/oauth-protected-resource/v1");
//! assert_eq!(
//!     resource.metadata_url(),
//!     "https://api.example/.well-known/oauth-protected-resource/v1",
//! );
//! let document: serde_json::Value = serde_json::from_slice(resource.response().body())?;
//! assert_eq!(document["authorization_servers"][0], "https://auth.example");
//!
//! // Every challenge of the layer now names the document (RFC 9728 section 5.1).
//! let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, &[7; 32])?)
//!     .issuer("https://auth.example")
//!     .audience("https://api.example/v1")
//!     .build()?;
//! let layer = BearerAuthLayer::new(verifier).resource_metadata(resource.metadata_url())?;
//! # let _ = (layer, StatusCode::OK);
//! # Ok(()) }
//! ```
//!
//! - [`ProtectedResource`] is RFC 9728 protected-resource metadata: the API's resource
//!   identifier, the authorization servers whose tokens it accepts, the scopes it knows and how
//!   it takes a token (the `Authorization` header). With
//!   [`BearerAuthLayer::resource_metadata`](crate::bearer::BearerAuthLayer::resource_metadata),
//!   every `WWW-Authenticate` challenge carries the document's URL, so a client that was
//!   refused learns where to log in from the refusal alone (what MCP clients look for). Serve
//!   [`ProtectedResource::response`] at [`ProtectedResource::path`] from any stack, or merge
//!   `router()` into an axum app (feature `router`).
#![cfg_attr(
    feature = "router",
    doc = "- The login router's RFC 8414 authorization-server metadata comes from \
           [`AuthRouter::metadata_router`](crate::router::AuthRouter::metadata_router)."
)]
//!
//! URLs are checked when set: absolute `https` (plain `http` only to `localhost` or a loopback
//! address, for development), with no credentials, query or fragment.

use std::fmt;
use std::net::IpAddr;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, Uri};
use serde::Serialize;

use crate::claims::is_scope_token;
use crate::error::ConfigError;

/// The well-known path segment of RFC 9728 protected-resource metadata.
pub const PROTECTED_RESOURCE_PATH: &str = "/.well-known/oauth-protected-resource";

/// The well-known path segment of RFC 8414 authorization-server metadata.
pub const AUTHORIZATION_SERVER_PATH: &str = "/.well-known/oauth-authorization-server";

/// How long clients may cache a discovery document (`Cache-Control: public, max-age=…`).
pub const DOCUMENT_MAX_AGE_SECS: u32 = 3600;

/// RFC 9728 protected-resource metadata for one API; see the [module docs](self).
#[derive(Clone)]
pub struct ProtectedResource {
    resource: String,
    path: String,
    metadata_url: String,
    document: Bytes,
}

/// Builds a [`ProtectedResource`]; start with [`ProtectedResource::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct ProtectedResourceBuilder {
    resource: String,
    authorization_servers: Vec<String>,
    scopes: Vec<String>,
    name: Option<String>,
    documentation: Option<String>,
}

impl ProtectedResource {
    /// Starts the metadata of the API whose resource identifier is `resource` (RFC 9728
    /// section 1.2: the URL clients call it by, and the `aud` its tokens carry when the
    /// authorization server follows RFC 8707). The document carries it exactly as given.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] unless `resource` is an absolute `https` URL (`http`
    /// only to a loopback host) without credentials, query or fragment.
    pub fn builder(resource: &str) -> Result<ProtectedResourceBuilder, ConfigError> {
        checked_url(resource)?;
        Ok(ProtectedResourceBuilder {
            resource: resource.to_owned(),
            authorization_servers: Vec::new(),
            scopes: Vec::new(),
            name: None,
            documentation: None,
        })
    }

    /// The resource identifier.
    #[must_use]
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The path to serve the document at, on the resource's host:
    /// [`PROTECTED_RESOURCE_PATH`] followed by the resource's own path (RFC 9728 section 3.1).
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The document's absolute URL, for the challenges' `resource_metadata` parameter.
    #[must_use]
    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// The document: `200`, `application/json`, cacheable for [`DOCUMENT_MAX_AGE_SECS`].
    #[must_use]
    pub fn response(&self) -> Response<Bytes> {
        document_response(self.document.clone())
    }

    /// An axum router serving [`response`](Self::response) at [`path`](Self::path) (`GET` and
    /// `HEAD`), to merge into the app at its root (outside any bearer layer: the document is
    /// public).
    #[cfg(feature = "router")]
    #[cfg_attr(docsrs, doc(cfg(feature = "router")))]
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        document_router(&self.path, self.document.clone())
    }
}

impl fmt::Debug for ProtectedResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectedResource")
            .field("resource", &self.resource)
            .field("metadata_url", &self.metadata_url)
            .finish_non_exhaustive()
    }
}

impl ProtectedResourceBuilder {
    /// Adds an authorization server (its issuer identifier) whose tokens the resource accepts;
    /// clients find its metadata (RFC 8414) from this URL. Several may be added, in order.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for a URL as [`ProtectedResource::builder`] refuses, or
    /// one already added.
    pub fn authorization_server(mut self, issuer: &str) -> Result<Self, ConfigError> {
        checked_url(issuer)?;
        if self
            .authorization_servers
            .iter()
            .any(|known| known == issuer)
        {
            return Err(ConfigError::InvalidSetting(
                "an authorization server is named twice",
            ));
        }
        self.authorization_servers.push(issuer.to_owned());
        Ok(self)
    }

    /// The scopes the resource's routes check (`scopes_supported`), in order, without
    /// duplicates.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for a value that is not an RFC 6749 scope token.
    pub fn scopes<I>(mut self, scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        for scope in scopes {
            let scope = scope.as_ref();
            if !is_scope_token(scope) {
                return Err(ConfigError::InvalidSetting(
                    "scopes are non-empty printable ascii without spaces, quotes or backslashes",
                ));
            }
            if !self.scopes.iter().any(|known| known == scope) {
                self.scopes.push(scope.to_owned());
            }
        }
        Ok(self)
    }

    /// A human-readable name of the resource (`resource_name`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// A page documenting the resource for developers (`resource_documentation`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for a URL as [`ProtectedResource::builder`] refuses.
    pub fn documentation(mut self, url: &str) -> Result<Self, ConfigError> {
        checked_url(url)?;
        self.documentation = Some(url.to_owned());
        Ok(self)
    }

    /// The metadata, its document serialised once.
    pub fn build(self) -> ProtectedResource {
        #[derive(Serialize)]
        struct Document<'a> {
            resource: &'a str,
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            authorization_servers: &'a [String],
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            scopes_supported: &'a [String],
            bearer_methods_supported: [&'a str; 1],
            #[serde(skip_serializing_if = "Option::is_none")]
            resource_name: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            resource_documentation: Option<&'a str>,
        }
        let document = Document {
            resource: &self.resource,
            authorization_servers: &self.authorization_servers,
            scopes_supported: &self.scopes,
            bearer_methods_supported: ["header"],
            resource_name: self.name.as_deref(),
            resource_documentation: self.documentation.as_deref(),
        };
        // Strings and arrays of strings always serialise.
        let document = serde_json::to_vec(&document).map_or_else(|_| Bytes::new(), Bytes::from);
        let (origin, path) = well_known(&self.resource, PROTECTED_RESOURCE_PATH);
        ProtectedResource {
            metadata_url: format!("{origin}{path}"),
            path,
            resource: self.resource,
            document,
        }
    }
}

/// A router that serves `document` at `path` (`GET`, and so `HEAD`).
#[cfg(feature = "router")]
pub(crate) fn document_router<S: Clone + Send + Sync + 'static>(
    path: &str,
    document: Bytes,
) -> axum::Router<S> {
    axum::Router::new().route(
        path,
        axum::routing::get(move || {
            let response = document_response(document.clone()).map(axum::body::Body::from);
            async move { response }
        }),
    )
}

/// `200 application/json` with `document`, cacheable by anyone for an hour.
fn document_response(document: Bytes) -> Response<Bytes> {
    let mut response = Response::new(document);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static(DOCUMENT_CACHE_CONTROL),
    );
    response
}

/// `Cache-Control` of the documents; a unit test checks it says [`DOCUMENT_MAX_AGE_SECS`].
const DOCUMENT_CACHE_CONTROL: &str = "public, max-age=3600";

/// The origin of `url` (`scheme://authority`) and the path to serve its well-known document
/// at: `segment` followed by the URL's path without its trailing `/` (RFC 8414 section 3.1,
/// RFC 9728 section 3.1). `url` has been checked.
pub(crate) fn well_known(url: &str, segment: &str) -> (String, String) {
    let uri: Uri = url.parse().unwrap_or_default();
    let origin = format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map_or("", |a| a.as_str())
    );
    let path = uri.path().trim_end_matches('/');
    (origin, format!("{segment}{path}"))
}

/// `url` checked as a public URL: absolute `https` (`http` only to a loopback host), without
/// credentials, query or fragment; returned without its trailing `/`.
///
/// # Errors
///
/// [`ConfigError::InvalidSetting`] otherwise.
pub(crate) fn checked_url(url: &str) -> Result<String, ConfigError> {
    let invalid = ConfigError::InvalidSetting(
        "a public URL is https://host[:port][/path] (http:// only to a loopback host), without \
         credentials, query or fragment",
    );
    let uri: Uri = url.parse().map_err(|_| invalid.clone())?;
    let authority = uri.authority().ok_or_else(|| invalid.clone())?;
    let host = authority.host();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let loopback = bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback());
    let scheme_ok = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => loopback,
        _ => false,
    };
    if !scheme_ok
        || bare.is_empty()
        || uri.query().is_some()
        || url.contains('#')
        || authority.as_str().contains('@')
        || !url
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(invalid);
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_header_says_the_documented_age() {
        assert_eq!(
            DOCUMENT_CACHE_CONTROL,
            format!("public, max-age={DOCUMENT_MAX_AGE_SECS}")
        );
    }

    #[test]
    fn urls_are_https_or_loopback_and_plain() {
        for good in [
            "https://api.example",
            "https://api.example/",
            "https://api.example:8443/v1/",
            "http://127.0.0.1:8000",
            "http://[::1]:8000/x",
            "http://localhost",
        ] {
            assert!(checked_url(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "api.example",
            "/relative",
            "http://api.example",
            "ftp://api.example",
            "https://user:pw@api.example",
            "https://api.example/?q=1",
            "https://api.example/#f",
            "https://api.example/a\"b",
            "http://10.0.0.1",
        ] {
            assert!(checked_url(bad).is_err(), "{bad}");
        }
        assert_eq!(
            checked_url("https://api.example/v1/").unwrap(),
            "https://api.example/v1"
        );
    }

    #[test]
    fn the_well_known_segment_goes_between_host_and_path() {
        assert_eq!(
            well_known("https://api.example", PROTECTED_RESOURCE_PATH),
            (
                "https://api.example".to_owned(),
                "/.well-known/oauth-protected-resource".to_owned()
            )
        );
        assert_eq!(
            well_known("https://a.example:8443/t/1/", AUTHORIZATION_SERVER_PATH).1,
            "/.well-known/oauth-authorization-server/t/1"
        );
    }

    #[test]
    fn the_document_has_what_was_configured_and_nothing_empty() {
        let resource = ProtectedResource::builder("https://api.example/")
            .unwrap()
            .build();
        let document: serde_json::Value =
            serde_json::from_slice(resource.response().body()).unwrap();
        assert_eq!(
            document,
            serde_json::json!({"resource": "https://api.example/", "bearer_methods_supported": ["header"]})
        );
        assert_eq!(resource.path(), PROTECTED_RESOURCE_PATH);

        let resource = ProtectedResource::builder("https://api.example/v1")
            .unwrap()
            .authorization_server("https://a.example/tenant")
            .unwrap()
            .authorization_server("https://b.example")
            .unwrap()
            .scopes(["b", "a", "b"])
            .unwrap()
            .name("Items API")
            .documentation("https://docs.example/api")
            .unwrap()
            .build();
        let response = resource.response();
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let document: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(
            document,
            serde_json::json!({
                "resource": "https://api.example/v1",
                "authorization_servers": ["https://a.example/tenant", "https://b.example"],
                "scopes_supported": ["b", "a"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Items API",
                "resource_documentation": "https://docs.example/api",
            })
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        let builder = || ProtectedResource::builder("https://api.example").unwrap();
        assert!(ProtectedResource::builder("http://api.example").is_err());
        assert!(builder().authorization_server("http://a.example").is_err());
        assert!(
            builder()
                .authorization_server("https://a.example")
                .unwrap()
                .authorization_server("https://a.example")
                .is_err()
        );
        for bad in ["", "a b", "a\"b", "caf\u{e9}"] {
            assert!(builder().scopes([bad]).is_err(), "{bad:?}");
        }
        assert!(builder().documentation("/docs").is_err());
    }
}
