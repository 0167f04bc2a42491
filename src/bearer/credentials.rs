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
    let from_header = match authorization(request) {
        Err(()) => return Credentials::Invalid,
        Ok(token) => token,
    };
    let from_cookie = match cookie.map(|name| named_cookie(request, name)) {
        Some(Err(())) => return Credentials::Invalid,
        Some(Ok(token)) => token,
        None => None,
    };
    match (from_header, from_cookie) {
        (Some(_), Some(_)) => Credentials::Invalid,
        (Some(token), None) | (None, Some(token)) => Credentials::Token(token),
        (None, None) => Credentials::None,
    }
}

/// The token of a single `Authorization: Bearer` header. `Ok(None)` when there is no header
/// or it uses another scheme; `Err` when there are several or the value is malformed.
fn authorization<B>(request: &Request<B>) -> Result<Option<&str>, ()> {
    let mut values = request.headers().get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    let value = value.to_str().map_err(|_| ())?;
    // credentials = auth-scheme [ 1*SP token68 ]; the scheme is case-insensitive.
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim_start_matches(' ');
    if is_b64token(token) {
        Ok(Some(token))
    } else {
        Err(())
    }
}

/// RFC 6750: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// The value of the cookie `name` across every `Cookie` header (HTTP/2 may split them).
/// `Err` when it appears twice or its value is not a `b64token`.
fn named_cookie<'a, B>(request: &'a Request<B>, name: &str) -> Result<Option<&'a str>, ()> {
    let mut found = None;
    for header in request.headers().get_all(COOKIE) {
        let Ok(header) = header.to_str() else {
            continue;
        };
        for pair in header.split(';') {
            let Some((key, value)) = pair.trim_matches(' ').split_once('=') else {
                continue;
            };
            if key != name {
                continue;
            }
            if found.is_some() {
                return Err(());
            }
            // cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE )
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if !is_b64token(value) {
                return Err(());
            }
            found = Some(value);
        }
    }
    Ok(found)
}

/// Whether `name` is a valid cookie name (an RFC 6265 / RFC 9110 token).
pub(crate) fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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
