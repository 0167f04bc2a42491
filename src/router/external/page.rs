//! What external sign-in answers a browser: redirects with parameters, the short error page,
//! and the cookie that binds a sign-in to the browser that started it.

use std::time::Duration;

use axum::body::Body;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY, RETRY_AFTER,
    SET_COOKIE,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode, Uri};

use super::super::reply::Reply;

/// The origin (`scheme://host[:port]`, lower case, default port left out) of an absolute
/// `http(s)` URL.
pub(crate) fn origin_of(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    let default = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    Some(match authority.port_u16() {
        Some(port) if port != default => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// `url` with these query parameters added (`?` or `&` as `url` needs), form-encoded.
pub(super) fn with_query(url: &str, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    let query = query.finish();
    let (base, fragment) = url
        .split_once('#')
        .map_or((url, None), |(b, f)| (b, Some(f)));
    let separator = if !base.contains('?') {
        "?"
    } else if base.ends_with('?') || base.ends_with('&') {
        ""
    } else {
        "&"
    };
    match fragment {
        // A fragment stays last, where the browser keeps it to itself.
        Some(fragment) => format!("{base}{separator}{query}#{fragment}"),
        None => format!("{base}{separator}{query}"),
    }
}

/// Headers every answer of the flow carries: no caching, no `Referer` with codes in it.
fn private(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

/// 302 to `location`. A location that is not a valid header value (it never is one: every
/// location is built from checked URLs and form-encoded parameters) gets the error page.
pub(super) fn redirect(location: &str) -> Reply {
    let Ok(value) = HeaderValue::try_from(location) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The address to go back to is not valid.",
        );
    };
    let mut reply = Response::new(Body::empty());
    *reply.status_mut() = StatusCode::FOUND;
    reply.headers_mut().insert(LOCATION, value);
    private(reply.headers_mut());
    reply
}

/// A short HTML page saying what went wrong; `message` is fixed text, escaped all the same.
pub(super) fn error_page(status: StatusCode, message: &str) -> Reply {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>Sign-in failed</title></head>\n<body><h1>Sign-in failed</h1>\n<p>{}</p>\n\
         <p>Go back and try again.</p></body></html>\n",
        escape(message)
    );
    let mut reply = Response::new(Body::from(html));
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    private(headers);
    reply
}

/// 503 with `Retry-After`: the provider could not be reached.
pub(super) fn unavailable_page(retry_after: Duration) -> Reply {
    let mut reply = error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The sign-in provider cannot be reached right now.",
    );
    reply
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
    reply
}

/// HTML text escaping: `& < > " '`.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The cookie binding a sign-in to its browser: `__Host-` prefixed and `Secure` on `https`
/// (a browser refuses `Secure` cookies from plain `http` origins other than loopback, and
/// the prefix needs `Secure`).
#[derive(Clone, Copy, Debug)]
pub(super) struct FlowCookie {
    secure: bool,
}

impl FlowCookie {
    pub(super) fn for_base(base_url: &str) -> Self {
        Self {
            secure: base_url.starts_with("https://"),
        }
    }

    /// One cookie per sign-in, named after a hash of its `state`: a second sign-in in another
    /// tab, or a forged callback, leaves the others' cookies alone.
    fn name(self, state: &str) -> String {
        use sha2::{Digest, Sha256};
        let hash = Sha256::digest(state.as_bytes());
        let suffix: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
        if self.secure {
            format!("__Host-tja-external-{suffix}")
        } else {
            format!("tja-external-{suffix}")
        }
    }

    /// Sets the cookie of sign-in `state` to `value` for `max_age`.
    pub(super) fn set(self, reply: &mut Reply, state: &str, value: &str, max_age: Duration) {
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!(
            "{}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            self.name(state),
            max_age.as_secs()
        );
        if let Ok(value) = HeaderValue::try_from(cookie) {
            reply.headers_mut().append(SET_COOKIE, value);
        }
    }

    /// Removes the cookie of sign-in `state`.
    pub(super) fn clear(self, reply: &mut Reply, state: &str) {
        self.set(reply, state, "", Duration::ZERO);
    }

    /// The value of the cookie of sign-in `state` in the request, if it carries one.
    pub(super) fn read(self, headers: &HeaderMap, state: &str) -> Option<String> {
        let name = self.name(state);
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_and_credentials_refused() {
        assert_eq!(
            origin_of("https://App.Example:443/x?y").as_deref(),
            Some("https://app.example")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080/").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("https://a@b.example/"), None);
        assert_eq!(origin_of("/relative"), None);
        assert_eq!(origin_of("javascript:alert(1)"), None);
        assert_eq!(origin_of("ftp://a.example/"), None);
    }

    #[test]
    fn query_parameters_are_encoded_and_keep_the_fragment_last() {
        assert_eq!(
            with_query("https://a/x", &[("code", "a b&c")]),
            "https://a/x?code=a+b%26c"
        );
        assert_eq!(
            with_query("https://a/x?y=1", &[("e", "1")]),
            "https://a/x?y=1&e=1"
        );
        assert_eq!(with_query("https://a/x?", &[("e", "1")]), "https://a/x?e=1");
        assert_eq!(
            with_query("https://a/#/p", &[("e", "1")]),
            "https://a/?e=1#/p"
        );
    }

    #[test]
    fn the_page_escapes_and_the_cookie_round_trips() {
        let page = error_page(StatusCode::BAD_REQUEST, "<script>'x'</script>");
        assert_eq!(page.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let cookie = FlowCookie::for_base("https://app.example/auth");
        let mut reply = redirect("https://idp.example/authorize?x=1");
        cookie.set(&mut reply, "state-1", "abc", Duration::from_secs(600));
        let set = reply.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        let name = cookie.name("state-1");
        assert!(
            name.starts_with("__Host-tja-external-") && name.len() == 36,
            "{name}"
        );
        assert_eq!(
            set,
            format!("{name}=abc; Path=/; Max-Age=600; HttpOnly; SameSite=Lax; Secure")
        );
        let plain = FlowCookie::for_base("http://127.0.0.1:3000");
        let header = format!(
            "a=1; {name}=abc; {}=zzz; {}=other",
            plain.name("state-1"),
            plain.name("state-2")
        );
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, HeaderValue::try_from(header).unwrap());
        assert_eq!(cookie.read(&headers, "state-1").as_deref(), Some("abc"));
        assert_eq!(cookie.read(&headers, "state-2"), None);
        assert_eq!(plain.read(&headers, "state-1").as_deref(), Some("zzz"));
        assert_eq!(plain.read(&headers, "state-2").as_deref(), Some("other"));
        assert_eq!(plain.read(&HeaderMap::new(), "state-1"), None);
    }
}
