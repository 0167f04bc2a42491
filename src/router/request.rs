//! Reading the router's requests: the bounded body, the OAuth parameters (form or JSON), and
//! client authentication (RFC 6749 §2.3).

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::BodyExt;

use super::reply::{self, OAuthError, Reply};

/// The largest request body the router reads (RFC 6749 requests are a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`] (413) without reading past it.
pub(super) async fn read_body(headers: &HeaderMap, body: axum::body::Body) -> Result<Bytes, Reply> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(reply::payload_too_large());
    }
    let mut body = body;
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| OAuthError::invalid_request("unreadable body").reply())?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > MAX_BODY_BYTES {
                return Err(reply::payload_too_large());
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(collected.freeze())
}

/// The body's media type: `application/x-www-form-urlencoded` (RFC 6749) or `application/json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    Form,
    Json,
}

pub(super) fn format(headers: &HeaderMap) -> Option<Format> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Some(Format::Form)
    } else if essence.eq_ignore_ascii_case("application/json") {
        Some(Format::Json)
    } else {
        None
    }
}

/// OAuth request parameters: each at most once (RFC 6749 §3.2), empty values treated as absent
/// (§3.1).
#[derive(Default)]
pub(super) struct Params(HashMap<String, String>);

impl Params {
    /// Parses a form or a JSON object of strings.
    pub(super) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, OAuthError> {
        let pairs: Vec<(String, String)> = match format(headers) {
            Some(Format::Form) => form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            Some(Format::Json) => {
                let JsonPairs(pairs) = serde_json::from_slice(body).map_err(|_| {
                    OAuthError::invalid_request("body must be a json object of strings")
                })?;
                pairs
            }
            None => {
                return Err(OAuthError::invalid_request(
                    "content type must be application/x-www-form-urlencoded or application/json",
                ));
            }
        };
        let mut params = HashMap::with_capacity(pairs.len());
        for (key, value) in pairs {
            if params.contains_key(&key) {
                return Err(OAuthError::invalid_request("repeated parameter"));
            }
            // Empty values are kept until every repeat has been caught.
            params.insert(key, value);
        }
        params.retain(|_, value| !value.is_empty());
        Ok(Self(params))
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The parameter, or `invalid_request` with `missing` as the description.
    pub(super) fn required(&self, name: &str, missing: &'static str) -> Result<&str, OAuthError> {
        self.get(name).ok_or(OAuthError::invalid_request(missing))
    }
}

/// A JSON object whose members are strings (or null, meaning absent), in order, with repeated
/// names kept so they can be refused (serde_json's map would keep only the last).
struct JsonPairs(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for JsonPairs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = JsonPairs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JsonPairs, A::Error> {
                let mut pairs = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Option<String>>()? {
                    pairs.push((key, value.unwrap_or_default()));
                }
                Ok(JsonPairs(pairs))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// What the client said about itself.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ClientCredentials {
    pub(super) id: Option<String>,
    pub(super) secret: Option<String>,
    /// The credentials came in an `Authorization: Basic` header (a failure must then answer
    /// with a `WWW-Authenticate: Basic` challenge).
    pub(super) basic: bool,
}

/// Client id and secret from HTTP Basic (RFC 6749 §2.3.1: each form-urlencoded, then joined by
/// `:`) or from the `client_id` / `client_secret` parameters; using both methods is refused.
///
/// Browser tools that always send Basic (Swagger UI's password flow, say) send `Basic Og==`,
/// an empty id and secret, when no client is configured: that is a public client that did not
/// name itself, as if no header had been sent, and never earns a `Basic` challenge (which would
/// make the browser open a login prompt). An empty secret after an id is no secret: a public
/// client naming itself.
pub(super) fn client_credentials(
    headers: &HeaderMap,
    params: &Params,
) -> Result<ClientCredentials, OAuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let header = values.next();
    if values.next().is_some() {
        return Err(OAuthError::invalid_request("several authorization headers"));
    }
    let body_id = params.get("client_id").map(str::to_owned);
    let body_secret = params.get("client_secret").map(str::to_owned);
    let basic = match header {
        Some(header) => {
            parse_basic(header.as_bytes()).ok_or(OAuthError::InvalidClient { basic: true })?
        }
        None => (String::new(), String::new()),
    };
    let (id, secret) = match basic {
        (id, secret) if id.is_empty() && secret.is_empty() => {
            if body_secret.is_some() && body_id.is_none() {
                return Err(OAuthError::invalid_request(
                    "client_secret without client_id",
                ));
            }
            return Ok(ClientCredentials {
                id: body_id,
                secret: body_secret,
                basic: false,
            });
        }
        (id, _) if id.is_empty() => return Err(OAuthError::InvalidClient { basic: true }),
        pair => pair,
    };
    if body_secret.is_some() {
        return Err(OAuthError::invalid_request(
            "client authenticated by more than one method",
        ));
    }
    if body_id.as_deref().is_some_and(|body_id| body_id != id) {
        return Err(OAuthError::invalid_request("client_id does not match"));
    }
    Ok(ClientCredentials {
        id: Some(id),
        secret: (!secret.is_empty()).then_some(secret),
        basic: true,
    })
}

fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim_ascii()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let decode = |part: &[u8]| -> Option<String> {
        let text = std::str::from_utf8(part).ok()?;
        // `+` is a space in form encoding.
        let mut out = String::new();
        for (key, value) in form_urlencoded::parse(format!("x={text}").as_bytes()) {
            debug_assert_eq!(key, "x");
            out = value.into_owned();
        }
        Some(out)
    };
    Some((decode(&decoded[..colon])?, decode(&decoded[colon + 1..])?))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        headers
    }

    #[test]
    fn forms_and_json_objects_of_strings_are_parameters() {
        let form = Params::parse(
            &headers("application/x-www-form-urlencoded; charset=UTF-8"),
            b"grant_type=password&username=al%20ice&password=p%2Bw+d&scope=",
        )
        .unwrap();
        assert_eq!(form.get("username"), Some("al ice"));
        assert_eq!(form.get("password"), Some("p+w d"));
        assert_eq!(form.get("scope"), None, "empty means absent");
        let json = Params::parse(
            &headers("application/json"),
            br#"{"grant_type":"password","username":"a","scope":null}"#,
        )
        .unwrap();
        assert_eq!(json.get("grant_type"), Some("password"));
        assert_eq!(json.get("scope"), None);
        assert!(json.required("password", "missing").is_err());
        assert_eq!(json.required("username", "missing").unwrap(), "a");
    }

    #[test]
    fn repeats_other_types_and_other_media_are_invalid_requests() {
        let form = headers("application/x-www-form-urlencoded");
        for body in [&b"a=1&a=2"[..], b"a=&a=1"] {
            assert!(Params::parse(&form, body).is_err());
        }
        let json = headers("application/json");
        for body in [
            &br#"{"a":1}"#[..],
            br#"{"a":["x"]}"#,
            b"[]",
            b"{",
            br#"{"a":"1","a":"2"}"#,
            br#"{"a":"1"} x"#,
        ] {
            let parsed = Params::parse(&json, body);
            assert!(parsed.is_err(), "{}", String::from_utf8_lossy(body));
        }
        assert!(Params::parse(&headers("text/plain"), b"a=1").is_err());
        assert!(Params::parse(&HeaderMap::new(), b"a=1").is_err());
    }

    #[test]
    fn basic_credentials_are_form_decoded_and_exclusive() {
        let mut h = HeaderMap::new();
        let value = STANDARD.encode("my%20app:s3cr%3At+x");
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {value}")).unwrap(),
        );
        let creds = client_credentials(&h, &Params::default()).unwrap();
        assert_eq!(creds.id.as_deref(), Some("my app"));
        assert_eq!(creds.secret.as_deref(), Some("s3cr:t x"));
        assert!(creds.basic);

        let mut both = Params::default();
        both.0.insert("client_secret".into(), "x".into());
        assert!(client_credentials(&h, &both).is_err());
        let mut other_id = Params::default();
        other_id.0.insert("client_id".into(), "other".into());
        assert!(client_credentials(&h, &other_id).is_err());

        for bad in [
            "Basic !!!",
            "Basic",
            "Bearer abc",
            "Basic OmZvbw==",
            "Basic Zm9v",
        ] {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, HeaderValue::from_str(bad).unwrap());
            assert_eq!(
                client_credentials(&h, &Params::default()).unwrap_err(),
                OAuthError::InvalidClient { basic: true },
                "{bad}"
            );
        }
    }

    #[test]
    fn empty_basic_credentials_are_a_public_client_and_an_empty_secret_is_none() {
        let basic = |credentials: &str| {
            let mut h = HeaderMap::new();
            let value = format!("Basic {}", STANDARD.encode(credentials));
            h.insert(AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
            h
        };
        // Swagger UI's `Basic Og==`: as if nothing had been sent, a body client_id included.
        assert_eq!(basic(":")[AUTHORIZATION], "Basic Og==");
        let creds = client_credentials(&basic(":"), &Params::default()).unwrap();
        assert_eq!(
            creds,
            ClientCredentials {
                id: None,
                secret: None,
                basic: false
            }
        );
        let mut named = Params::default();
        named.0.insert("client_id".into(), "spa".into());
        let creds = client_credentials(&basic(":"), &named).unwrap();
        assert_eq!((creds.id.as_deref(), creds.basic), (Some("spa"), false));
        let mut secret_only = Params::default();
        secret_only.0.insert("client_secret".into(), "x".into());
        assert!(client_credentials(&basic(":"), &secret_only).is_err());

        let creds = client_credentials(&basic("spa:"), &Params::default()).unwrap();
        assert_eq!(
            creds,
            ClientCredentials {
                id: Some("spa".into()),
                secret: None,
                basic: true
            }
        );
        // A secret without an id is still a failed Basic authentication.
        assert_eq!(
            client_credentials(&basic(":secret"), &Params::default()).unwrap_err(),
            OAuthError::InvalidClient { basic: true }
        );
    }

    #[test]
    fn body_credentials_need_an_id() {
        let mut params = Params::default();
        params.0.insert("client_secret".into(), "x".into());
        assert!(client_credentials(&HeaderMap::new(), &params).is_err());
        params.0.insert("client_id".into(), "svc".into());
        let creds = client_credentials(&HeaderMap::new(), &params).unwrap();
        assert_eq!(creds.id.as_deref(), Some("svc"));
        assert!(!creds.basic);
    }
}
