//! The HTTP side of remote keys: which URLs are acceptable, a small HTTP/1.1 client over rustls
//! with a connect timeout and a response size cap, and OIDC / RFC 8414 discovery.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_LENGTH, USER_AGENT};
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Deserialize;

use super::FetchError;
use crate::error::ConfigError;

/// Why a URL is not acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BadUrl {
    /// Not an absolute `http`/`https` URL with a host.
    NotUrl,
    /// `http` to a host other than a loopback address.
    Insecure,
    /// User name or password in the URL.
    Credentials,
}

impl BadUrl {
    pub(super) fn message(self) -> &'static str {
        match self {
            Self::NotUrl => "not an absolute http(s) url with a host",
            Self::Insecure => "must be https (plain http only to a loopback address)",
            Self::Credentials => "must not carry a user name or password",
        }
    }
}

/// An absolute URL that is `https`, or `http` to `localhost` or a loopback address, without
/// credentials.
pub(super) fn checked_url(url: &str) -> Result<Uri, BadUrl> {
    let uri: Uri = url.parse().map_err(|_| BadUrl::NotUrl)?;
    let authority = uri.authority().ok_or(BadUrl::NotUrl)?;
    if authority.as_str().contains('@') {
        return Err(BadUrl::Credentials);
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(BadUrl::NotUrl);
    }
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if is_loopback(host) => Ok(uri),
        Some("http") => Err(BadUrl::Insecure),
        _ => Err(BadUrl::NotUrl),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// Where an issuer's metadata is: OIDC Discovery section 4 first, RFC 8414 section 3 second.
#[derive(Clone, Debug)]
pub(super) struct Discovery {
    pub(super) issuer: String,
    openid: Uri,
    oauth: Uri,
}

impl Discovery {
    pub(super) fn new(issuer: &str) -> Result<Self, ConfigError> {
        let uri = checked_url(issuer).map_err(|bad| ConfigError::InvalidSetting(bad.message()))?;
        if uri.query().is_some() || issuer.contains('#') {
            return Err(ConfigError::InvalidSetting(
                "an issuer has no query or fragment",
            ));
        }
        let bad = |_| ConfigError::InvalidSetting("issuer does not make a discovery url");
        let openid = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        // RFC 8414 inserts the well-known segment between the host and the issuer's path.
        let path = uri.path().trim_end_matches('/');
        let oauth = format!(
            "{}://{}/.well-known/oauth-authorization-server{path}",
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map_or("", |a| a.as_str()),
        );
        Ok(Self {
            issuer: issuer.to_owned(),
            openid: openid.parse().map_err(bad)?,
            oauth: oauth.parse().map_err(bad)?,
        })
    }

    /// The two metadata URLs, in the order they are tried.
    #[cfg(test)]
    fn urls(&self) -> [String; 2] {
        [self.openid.to_string(), self.oauth.to_string()]
    }
}

/// The members of issuer metadata this crate reads.
#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

/// A 200 answer, its body read up to the size cap.
pub(crate) struct Fetched {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// HTTP/1.1 over rustls (aws-lc-rs provider, Mozilla's roots plus any configured ones), no
/// redirects followed, a connect timeout and a response size cap. The whole-fetch timeout is
/// the caller's.
pub(crate) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    max_body: usize,
}

impl HttpClient {
    pub(crate) fn new(
        connect_timeout: Duration,
        max_body: usize,
        extra_roots: &[rustls::pki_types::CertificateDer<'static>],
    ) -> Result<Self, ConfigError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for root in extra_roots {
            roots
                .add(root.clone())
                .map_err(|_| ConfigError::InvalidSetting("root certificate not usable"))?;
        }
        // An explicit provider: a process whose other dependencies enable rustls' ring
        // provider too must not make this client panic over which one is the default.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|_| ConfigError::InvalidSetting("tls provider refused its protocols"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1)
            .build(connector);
        Ok(Self { client, max_body })
    }

    /// GET `uri`: its body when the answer is 200 and within the size cap.
    pub(super) async fn get(&self, uri: &Uri) -> Result<Fetched, FetchError> {
        let request = Request::get(uri.clone())
            .header(ACCEPT, "application/jwk-set+json, application/json")
            .body(Full::default())
            .map_err(|_| FetchError::Connection("request not buildable".to_owned()))?;
        self.send(request).await
    }

    /// Sends `request` (with this crate's `User-Agent`): the body of the answer when it is 200
    /// and within the size cap.
    pub(crate) async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Fetched, FetchError> {
        request.headers_mut().insert(
            USER_AGENT,
            http::HeaderValue::from_static(concat!("tower-jwt-auth/", env!("CARGO_PKG_VERSION"))),
        );
        let response = self
            .client
            .request(request)
            .await
            .map_err(|err| FetchError::Connection(with_sources(&err)))?;
        if response.status() != StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let too_large = FetchError::TooLarge {
            limit: self.max_body,
        };
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|len| len.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_body as u64) {
            return Err(too_large);
        }
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, self.max_body)
            .collect()
            .await
            .map_err(|err| {
                if err.downcast_ref::<LengthLimitError>().is_some() {
                    too_large
                } else {
                    FetchError::Connection(with_sources(err.as_ref()))
                }
            })?
            .to_bytes();
        Ok(Fetched {
            headers: parts.headers,
            body,
        })
    }
}

/// An error with its chain of sources, for logs (hyper's top-level messages say little).
fn with_sources(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads the issuer's metadata and returns its `jwks_uri`, after checking that the metadata
/// names exactly the configured issuer (OIDC Discovery section 4.3, RFC 8414 section 3.3).
pub(super) async fn discover(
    client: &HttpClient,
    discovery: &Discovery,
) -> Result<Uri, FetchError> {
    let fetched = match client.get(&discovery.openid).await {
        // No OIDC metadata here: try the OAuth 2.0 authorization server metadata instead.
        Err(FetchError::Status(400..=499)) => client.get(&discovery.oauth).await?,
        other => other?,
    };
    let metadata: Metadata = crate::json::from_strict_slice(&fetched.body)
        .map_err(|why| FetchError::InvalidDocument(format!("issuer metadata: {why}")))?;
    if metadata.issuer != discovery.issuer {
        let mut found = metadata.issuer;
        if found.len() > 200 {
            let cut = (0..=200)
                .rev()
                .find(|&i| found.is_char_boundary(i))
                .unwrap_or(0);
            found.truncate(cut);
        }
        return Err(FetchError::IssuerMismatch { found });
    }
    checked_url(&metadata.jwks_uri).map_err(|bad| match bad {
        BadUrl::Insecure => FetchError::InsecureUrl,
        other => FetchError::InvalidDocument(format!("jwks_uri {}", other.message())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_or_loopback_http() {
        for ok in [
            "https://sso.example.com/realms/acme/protocol/openid-connect/certs",
            "https://sso.example.com:8443/jwks",
            "http://127.0.0.1:8080/jwks.json",
            "http://127.9.9.9/jwks",
            "http://[::1]:9000/jwks",
            "http://[::ffff:127.0.0.1]/jwks",
            "http://localhost:3000/jwks",
            "http://LOCALHOST/jwks",
        ] {
            assert!(checked_url(ok).is_ok(), "{ok}");
        }
        let cases = [
            ("http://sso.example.com/jwks", BadUrl::Insecure),
            ("http://10.0.0.1/jwks", BadUrl::Insecure),
            ("http://localhost.example.com/jwks", BadUrl::Insecure),
            ("http://[::2]/jwks", BadUrl::Insecure),
            (
                "https://user:pass@sso.example.com/jwks",
                BadUrl::Credentials,
            ),
            ("http://user@127.0.0.1/jwks", BadUrl::Credentials),
            ("ftp://sso.example.com/jwks", BadUrl::NotUrl),
            ("/jwks", BadUrl::NotUrl),
            ("sso.example.com/jwks", BadUrl::NotUrl),
            ("", BadUrl::NotUrl),
            ("https:///jwks", BadUrl::NotUrl),
        ];
        for (url, why) in cases {
            assert_eq!(checked_url(url).map(drop), Err(why), "{url}");
        }
    }

    #[test]
    fn discovery_urls_follow_both_specs() {
        let d = Discovery::new("https://sso.example.com/realms/acme").unwrap();
        assert_eq!(
            d.urls(),
            [
                "https://sso.example.com/realms/acme/.well-known/openid-configuration",
                "https://sso.example.com/.well-known/oauth-authorization-server/realms/acme",
            ]
        );
        let d = Discovery::new("https://auth.example.com/").unwrap();
        assert_eq!(
            d.urls(),
            [
                "https://auth.example.com/.well-known/openid-configuration",
                "https://auth.example.com/.well-known/oauth-authorization-server",
            ]
        );
        assert_eq!(
            d.issuer, "https://auth.example.com/",
            "compared as configured"
        );
        assert!(Discovery::new("https://auth.example.com/?tenant=1").is_err());
        assert!(Discovery::new("https://auth.example.com/#x").is_err());
        assert!(Discovery::new("http://auth.example.com").is_err());
    }

    #[test]
    fn metadata_is_strict_json() {
        let ok: Result<Metadata, _> = crate::json::from_strict_slice(
            br#"{"issuer":"i","jwks_uri":"https://x/j","other":[1,{"a":2}]}"#,
        );
        assert!(ok.is_ok());
        let twice: Result<Metadata, _> = crate::json::from_strict_slice(
            br#"{"issuer":"i","jwks_uri":"https://x/j","jwks_uri":"https://y/j"}"#,
        );
        assert!(twice.is_err());
        let missing: Result<Metadata, _> = crate::json::from_strict_slice(br#"{"issuer":"i"}"#);
        assert!(missing.is_err());
    }
}
