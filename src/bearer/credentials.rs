//! Finding the token in a request: the `Authorization: Bearer` header (RFC 6750 section 2.1)
//! and, when configured, one named cookie. Never the query string.
//!
//! ```
//! use http::Request;
//! use tower_jwt_auth::bearer::{Credentials, credentials};
//!
//! let request = Request::builder().header("authorization", "bearer abc.def.ghi").body(())?;
//! assert_eq!(credentials(&request, None), Credentials::Token("abc.def.ghi"));
//!
//! let twice = Request::builder()
//!     .header("authorization", "Bearer abc.def.ghi")
//!     .header("authorization", "Bearer abc.def.ghi")
//!     .body(())?;
//! assert_eq!(credentials(&twice, None), Credentials::Invalid);
//! # Ok::<(), http::Error>(())
//! ```

use http::Request;
use http::header::{AUTHORIZATION, COOKIE};

/// What a request presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// No bearer credentials (no `Authorization` header, another scheme, no cookie).
    None,
    /// Exactly one token, in the RFC 6750 `b64token` grammar.
    Token(&'a str),
    /// Malformed, or presented more than once: several `Authorization` headers, a header and
    /// the cookie, the cookie twice, a bearer value outside the grammar.
    Invalid,
}

/// The bearer credentials of `request`, from `Authorization` and, if `cookie` names one, that
/// cookie.
pub fn credentials<'a, B>(request: &'a Request<B>, cookie: Option<&str>) -> Credentials<'a> {
    match unchecked_credentials(request, cookie) {
        Raw::Token(token) if is_b64token(token) => {
            // The grammar is ASCII, so this cannot fail.
            std::str::from_utf8(token).map_or(Credentials::Invalid, Credentials::Token)
        }
        Raw::Token(_) | Raw::Invalid => Credentials::Invalid,
        Raw::None => Credentials::None,
    }
}

/// What [`unchecked_credentials`] finds: a token as bytes, unchecked.
pub(crate) enum Raw<'a> {
    None,
    Token(&'a [u8]),
    Invalid,
}

/// As [`credentials`], except that the token is neither checked against the `b64token` grammar
/// nor for UTF-8: the caller checks the grammar only when the token fails to verify (a token
/// that verifies is canonical base64url and dots, inside the grammar), which spares two passes
/// over every accepted token.
pub(crate) fn unchecked_credentials<'a, B>(
    request: &'a Request<B>,
    cookie: Option<&str>,
) -> Raw<'a> {
    let from_header = match authorization(request) {
        Err(()) => return Raw::Invalid,
        Ok(token) => token,
    };
    let from_cookie = match cookie.map(|name| named_cookie(request, name)) {
        Some(Err(())) => return Raw::Invalid,
        Some(Ok(token)) => token,
        None => None,
    };
    match (from_header, from_cookie) {
        (Some(_), Some(_)) => Raw::Invalid,
        (Some(token), None) | (None, Some(token)) => Raw::Token(token),
        (None, None) => Raw::None,
    }
}

/// The token of a single `Authorization: Bearer` header. `Ok(None)` when there is no header
/// or it uses another scheme; `Err` when there are several or the value is malformed.
fn authorization<B>(request: &Request<B>) -> Result<Option<&[u8]>, ()> {
    let mut values = request.headers().get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    // credentials = auth-scheme [ 1*SP token68 ]; the scheme is case-insensitive.
    let value = value.as_bytes();
    let (scheme, rest) = match memchr::memchr(b' ', value) {
        Some(space) => (&value[..space], &value[space..]),
        None => (value, &[][..]),
    };
    if !scheme.iter().all(|&b| is_tchar(b)) {
        return Err(());
    }
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        // Another scheme is no bearer credentials, but bytes outside visible ASCII are a
        // malformed header whatever the scheme. (For bearer tokens the same bytes fail the
        // b64token grammar, checked when the token fails to verify.)
        return if rest.iter().all(|&b| b == b' ' || b.is_ascii_graphic()) {
            Ok(None)
        } else {
            Err(())
        };
    }
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    Ok(Some(&rest[start..]))
}

/// RFC 9110 `tchar`: the characters of an auth-scheme (and of cookie names).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 6750: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub(crate) fn is_b64token(token: &[u8]) -> bool {
    let body_len = token
        .iter()
        .rposition(|&b| b != b'=')
        .map_or(0, |last| last + 1);
    let body = &token[..body_len];
    !body.is_empty()
        && body.iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// The value of the cookie `name` across every `Cookie` header (HTTP/2 may split them).
/// `Err` when it appears twice.
fn named_cookie<'a, B>(request: &'a Request<B>, name: &str) -> Result<Option<&'a [u8]>, ()> {
    let mut found = None;
    for header in request.headers().get_all(COOKIE) {
        for pair in header.as_bytes().split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (key, value) = (&pair[..eq], &pair[eq + 1..]);
            if key != name.as_bytes() {
                continue;
            }
            if found.is_some() {
                return Err(());
            }
            // cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE )
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            found = Some(value);
        }
    }
    Ok(found)
}

/// Whether `name` is a valid cookie name (an RFC 6265 / RFC 9110 token).
pub(crate) fn is_cookie_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(is_tchar)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(headers: &[(&str, &[u8])]) -> Request<()> {
        let mut builder = Request::builder();
        for (name, value) in headers {
            builder = builder.header(*name, http::HeaderValue::from_bytes(value).unwrap());
        }
        builder.body(()).unwrap()
    }

    /// An owned mirror of [`Credentials`], so closures can return it.
    #[derive(Debug, PartialEq)]
    enum Seen {
        None,
        Token(String),
        Invalid,
    }

    fn seen(credentials: Credentials<'_>) -> Seen {
        match credentials {
            Credentials::None => Seen::None,
            Credentials::Token(token) => Seen::Token(token.to_owned()),
            Credentials::Invalid => Seen::Invalid,
        }
    }

    #[test]
    fn the_authorization_grammar() {
        let token = |value: &[u8]| seen(credentials(&with(&[("authorization", value)]), None));
        assert_eq!(token(b"Bearer a.b.c"), Seen::Token("a.b.c".into()));
        assert_eq!(token(b"bearer a.b.c"), Seen::Token("a.b.c".into()));
        assert_eq!(token(b"BEARER a.b.c"), Seen::Token("a.b.c".into()));
        assert_eq!(token(b"Bearer   a.b.c"), Seen::Token("a.b.c".into()));
        assert_eq!(token(b"Bearer a+/~-_.=="), Seen::Token("a+/~-_.==".into()));
        assert_eq!(token(b"Basic dXNlcjpwYXNz"), Seen::None);
        assert_eq!(token(b"Bearerx a"), Seen::None);
        assert_eq!(token(b"Bear er a.b.c"), Seen::None);
        for bad in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer a b",
            b"Bearer a.b.c ",
            b"Bearer =",
            b"Bearer a=b",
            b"Bearer a,b",
            b"Bearer \"a\"",
            b"Bearer a\tb",
            b"Bearer \xc3\xa9",
            b"Basic \xe9",
            b"Bearer\xa0a.b.c",
        ] {
            assert_eq!(
                token(bad),
                Seen::Invalid,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn two_authorization_headers_are_invalid() {
        let request = with(&[
            ("authorization", b"Bearer a"),
            ("authorization", b"Basic b"),
        ]);
        assert_eq!(seen(credentials(&request, None)), Seen::Invalid);
    }

    #[test]
    fn the_cookie_source() {
        let cookie =
            |headers: &[(&str, &[u8])]| seen(credentials(&with(headers), Some("access_token")));
        assert_eq!(
            cookie(&[("cookie", b"access_token=a.b.c")]),
            Seen::Token("a.b.c".into())
        );
        assert_eq!(
            cookie(&[("cookie", b"x=1; access_token=\"a.b.c\"; y=2")]),
            Seen::Token("a.b.c".into())
        );
        assert_eq!(
            cookie(&[("cookie", b"x=1"), ("cookie", b"access_token=a.b.c")]),
            Seen::Token("a.b.c".into())
        );
        assert_eq!(cookie(&[("cookie", b"other=a.b.c")]), Seen::None);
        assert_eq!(cookie(&[]), Seen::None);
        assert_eq!(
            cookie(&[("cookie", b"access_token=a; access_token=a")]),
            Seen::Invalid
        );
        assert_eq!(
            cookie(&[("cookie", b"access_token=a"), ("cookie", b"access_token=b")]),
            Seen::Invalid
        );
        assert_eq!(cookie(&[("cookie", b"access_token=a b")]), Seen::Invalid);
        assert_eq!(cookie(&[("cookie", b"access_token=")]), Seen::Invalid);
        // A header and the cookie: two places.
        assert_eq!(
            cookie(&[
                ("authorization", b"Bearer a.b.c"),
                ("cookie", b"access_token=a.b.c")
            ]),
            Seen::Invalid
        );
        // Without a configured cookie name, cookies are never read.
        assert_eq!(
            seen(credentials(
                &with(&[("cookie", b"access_token=a.b.c")]),
                None
            )),
            Seen::None
        );
    }

    #[test]
    fn cookie_names_are_tokens() {
        assert!(is_cookie_name("access_token"));
        assert!(is_cookie_name("__Host-jwt"));
        for bad in ["", "a b", "a=b", "a;b", "caf\u{e9}", "a\"b"] {
            assert!(!is_cookie_name(bad), "{bad:?}");
        }
    }
}
