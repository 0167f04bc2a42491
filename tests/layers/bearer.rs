//! `BearerAuthLayer` driven in-process: every HTTP row of the rejection table it owns, the
//! `Authorization` and cookie grammar, optional mode, the rejection responses and hook,
//! `poll_ready` back-pressure, and the axum extractors.

use crate::common;
use crate::common::answer::answer;
use crate::common::layers::{
    Inner, Stack, anonymous, assert_invalid_request, assert_invalid_token, assert_missing,
    assert_missing_with, assert_rejection, bearer,
};

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body as _;
use serde_json::{Value, json};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_jwt_auth::bearer::{BearerAuth, BearerAuthLayer};
use tower_jwt_auth::response::{OnRejection, Rejection, ResponseBody};
use tower_jwt_auth::{
    Algorithm, AuthError, Claims, ConfigError, ErrorKind, KeySet, TokenSigner, Verifier,
};
use tower_test::mock;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// The `sub` of [`common::claims`].
const SUBJECT: &str = "user-1";

/// A service under test and the inner service behind it: the kit's [`Stack`], whose passing
/// requests must also carry no challenge and the claims of [`SUBJECT`].
struct Harness(Stack);

impl std::ops::Deref for Harness {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        &self.0
    }
}

impl Harness {
    fn new<R>(layer: BearerAuthLayer<R>) -> Self
    where
        R: OnRejection + Clone + Send + 'static,
    {
        Self::build(|inner| layer.layer(inner))
    }

    /// Wraps the inner service with whatever stack `stack` builds.
    fn build<S>(stack: impl FnOnce(Inner) -> S) -> Self
    where
        S: Service<Request<String>, Response = Response<ResponseBody<String>>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        Self(Stack::build(stack))
    }

    /// Sends `request`, expects the inner service's 200 with claims for [`SUBJECT`], and returns
    /// those claims.
    async fn assert_passes(&self, request: Request<String>) -> Claims {
        let (answer, claims) = self.0.passes(request).await;
        assert!(answer.challenge().is_none());
        assert_eq!(claims.subject(), Some(SUBJECT));
        claims
    }
}

fn layer() -> BearerAuthLayer {
    BearerAuthLayer::new(common::verifier())
}

fn valid_token() -> String {
    common::token(Algorithm::HS256, &common::claims())
}

fn request() -> http::request::Builder {
    Request::builder().uri("/resource")
}

/// A request with these headers; values as raw bytes.
fn with_headers(headers: &[(&str, &[u8])]) -> Request<String> {
    let mut builder = request();
    for (name, value) in headers {
        builder = builder.header(*name, HeaderValue::from_bytes(value).unwrap());
    }
    builder.body(String::new()).unwrap()
}

fn with_authorization(value: &str) -> Request<String> {
    with_headers(&[("authorization", value.as_bytes())])
}

fn expired_claims() -> Value {
    common::claims_with(json!({
        "iat": common::NOW - 7200, "nbf": common::NOW - 7200, "exp": common::NOW - 3600,
    }))
}

/// Tokens the verifier rejects, each with the kind it must be rejected for.
fn bad_tokens() -> Vec<(&'static str, String, ErrorKind)> {
    let payload = serde_json::to_string(&common::claims()).unwrap();
    let wrong_key = TokenSigner::hmac(Algorithm::HS256, &[0x5a; 32])
        .unwrap()
        .with_kid("hs256");
    vec![
        (
            "expired",
            common::token(Algorithm::HS256, &expired_claims()),
            ErrorKind::Expired,
        ),
        (
            "not yet valid",
            common::token(
                Algorithm::ES256,
                &common::claims_with(json!({"nbf": common::NOW + 3600})),
            ),
            ErrorKind::NotYetValid,
        ),
        (
            "wrong audience",
            common::token(
                Algorithm::HS256,
                &common::claims_with(json!({"aud": "another-api"})),
            ),
            ErrorKind::WrongAudience,
        ),
        (
            "wrong issuer",
            common::token(
                Algorithm::EdDSA,
                &common::claims_with(json!({"iss": "https://evil.test"})),
            ),
            ErrorKind::WrongIssuer,
        ),
        (
            "missing sub",
            common::token(Algorithm::HS256, &common::claims_with(json!({"sub": null}))),
            ErrorKind::MissingClaim,
        ),
        (
            "wrong key",
            wrong_key.sign(&common::claims()).unwrap(),
            ErrorKind::InvalidSignature,
        ),
        (
            "unknown kid",
            common::signer(Algorithm::HS256)
                .with_kid("no-such-key")
                .sign(&common::claims())
                .unwrap(),
            ErrorKind::UnknownKey,
        ),
        (
            "alg none",
            common::raw_token(
                Algorithm::HS256,
                r#"{"typ":"JWT","alg":"none","kid":"hs256"}"#,
                &payload,
            ),
            ErrorKind::Algorithm,
        ),
        (
            "alg none, no signature",
            format!(
                "{}.",
                common::raw_token(
                    Algorithm::HS256,
                    r#"{"typ":"JWT","alg":"none","kid":"hs256"}"#,
                    &payload
                )
                .rsplit_once('.')
                .unwrap()
                .0
            ),
            ErrorKind::Malformed,
        ),
        (
            "alg of another key",
            common::raw_token(
                Algorithm::HS256,
                r#"{"typ":"JWT","alg":"HS384","kid":"hs256"}"#,
                &payload,
            ),
            ErrorKind::Algorithm,
        ),
        ("not a jws", String::from("a.b.c"), ErrorKind::Malformed),
        (
            "two segments",
            String::from("abc.def"),
            ErrorKind::Malformed,
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// The rejection table (the `response` module docs), the HTTP rows
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_valid_token_reaches_the_inner_service_with_its_claims() {
    let harness = Harness::new(layer());
    for alg in Algorithm::ALL {
        let token = common::token(alg, &common::claims());
        let claims = harness.assert_passes(bearer(&token)).await;
        assert_eq!(claims, common::verifier().verify(&token).unwrap(), "{alg}");
        assert!(claims.has_role("admin") && claims.has_scope("items:read"));
    }
}

#[tokio::test]
async fn no_credentials_is_401_with_a_bare_challenge() {
    let harness = Harness::new(layer());
    assert_missing(&harness.rejected(anonymous()).await);
    harness.assert_passes(bearer(&valid_token())).await;
}

#[tokio::test]
async fn the_realm_goes_into_every_challenge() {
    let harness = Harness::new(layer().realm("x").unwrap());
    assert_missing_with(&harness.rejected(anonymous()).await, r#"Bearer realm="x""#);

    let spaced = Harness::new(layer().realm("example api").unwrap());
    assert_missing_with(
        &spaced.rejected(anonymous()).await,
        r#"Bearer realm="example api""#,
    );
    let expired = spaced
        .rejected(bearer(&common::token(Algorithm::HS256, &expired_claims())))
        .await;
    assert_eq!(
        expired.challenge(),
        Some(
            r#"Bearer realm="example api", error="invalid_token", error_description="token expired""#
        )
    );
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    let malformed = spaced.rejected(with_authorization("Bearer a b")).await;
    assert_eq!(
        malformed.challenge(),
        Some(
            r#"Bearer realm="example api", error="invalid_request", error_description="malformed credentials""#
        )
    );
    spaced.assert_passes(bearer(&valid_token())).await;
}

#[test]
fn a_realm_that_could_break_the_header_is_refused() {
    for bad in ["", "a\"b", "a\\b", "line\nbreak", "tab\there", "caf\u{e9}"] {
        assert!(
            matches!(layer().realm(bad), Err(ConfigError::InvalidSetting(_))),
            "{bad:?}"
        );
    }
    assert!(layer().realm("printable ASCII, with spaces").is_ok());
}

#[tokio::test]
async fn a_malformed_authorization_header_is_400_invalid_request() {
    let harness = Harness::new(layer());
    let token = valid_token();
    for value in [
        String::from("Bearer"),
        String::from("Bearer "),
        String::from("Bearer a b"),
        format!("Bearer {token} "),
        format!("Bearer {token} {token}"),
        format!("Bearer {token},Bearer {token}"),
        format!("Bearer {token}, Bearer {token}"),
        format!("Bearer \"{token}\""),
        String::from("Bearer a=b"),
        String::from("Bearer ="),
        format!("Bearer {token}\t"),
        // RFC 9110 separates scheme and credentials with SP only; a tab leaves no valid scheme.
        format!("Bearer\t{token}"),
    ] {
        let answer = harness.rejected(with_authorization(&value)).await;
        assert_invalid_request(&answer);
    }
    harness.assert_passes(bearer(&token)).await;
}

/// Every byte outside the RFC 6750 `b64token` grammar, anywhere in an otherwise valid token, makes
/// the credentials malformed (400), not the token invalid (401). Bytes inside the grammar that
/// base64url does not use (`+ / ~`, trailing `=`) make a token that fails as malformed (401).
#[tokio::test]
async fn a_byte_outside_the_grammar_anywhere_in_a_token_is_400() {
    let harness = Harness::new(layer());
    let token = valid_token();
    let first_dot = token.find('.').unwrap();
    let last_dot = token.rfind('.').unwrap();
    let positions = [
        0,
        first_dot / 2,
        first_dot,
        first_dot + 1,
        (first_dot + last_dot) / 2,
        last_dot + 1,
        token.len() - 1,
        token.len(),
    ];
    let outside: &[&[u8]] = &[
        b",",
        b"\"",
        b"\\",
        b"@",
        b"!",
        b"%",
        b"*",
        b"(",
        b"{",
        b";",
        b":",
        b"#",
        b"\t",
        b"\x80",
        b"\xc3\xa9",
        b"=a",
    ];
    for at in positions {
        for bad in outside {
            let mut value = format!("Bearer {}", &token[..at]).into_bytes();
            value.extend_from_slice(bad);
            value.extend_from_slice(&token.as_bytes()[at..]);
            let answer = harness
                .rejected(with_headers(&[("authorization", &value)]))
                .await;
            assert_invalid_request(&answer);
        }
        for inside in ["+", "/", "~"] {
            let mut value = token.clone();
            value.insert_str(at, inside);
            let answer = harness.rejected(bearer(&value)).await;
            assert_invalid_token(&answer, ErrorKind::Malformed);
        }
    }
    for padded in [format!("{token}="), format!("{token}==")] {
        assert_invalid_token(
            &harness.rejected(bearer(&padded)).await,
            ErrorKind::Malformed,
        );
    }
    harness.assert_passes(bearer(&token)).await;
}

#[tokio::test]
async fn a_rejected_token_is_401_invalid_token_with_its_description() {
    let harness = Harness::new(layer());
    for (label, token, kind) in bad_tokens() {
        assert_eq!(
            common::verifier().verify(&token).unwrap_err().kind(),
            kind,
            "{label}"
        );
        let answer = harness.rejected(bearer(&token)).await;
        assert_invalid_token(&answer, kind);
    }
    harness.assert_passes(bearer(&valid_token())).await;
}

#[tokio::test]
async fn an_expired_token_is_401_token_expired_with_the_claim_named() {
    let harness = Harness::new(layer());
    let answer = harness
        .rejected(bearer(&common::token(Algorithm::ES256, &expired_claims())))
        .await;
    assert_rejection(
        &answer,
        StatusCode::UNAUTHORIZED,
        r#"Bearer error="invalid_token", error_description="token expired""#,
        r#"{"error":"invalid_token","error_description":"token expired"}"#,
        ErrorKind::Expired,
    );
    assert_eq!(answer.error.unwrap().claim(), Some("exp"));
    // Inside the leeway (30 s by default) the same shape of token passes.
    let recent = common::claims_with(json!({"exp": common::NOW - 10}));
    harness
        .assert_passes(bearer(&common::token(Algorithm::ES256, &recent)))
        .await;
}

// ---------------------------------------------------------------------------------------------
// Header grammar
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_empty_token_is_400() {
    let harness = Harness::new(layer());
    for value in ["Bearer", "Bearer ", "Bearer    ", "bearer"] {
        assert_invalid_request(&harness.rejected(with_authorization(value)).await);
    }
    harness.assert_passes(bearer(&valid_token())).await;
}

#[tokio::test]
async fn two_authorization_headers_are_400_even_if_both_are_valid() {
    let harness = Harness::new(layer());
    let bearer_value = format!("Bearer {}", valid_token());
    for second in [
        bearer_value.as_str(),
        "Basic dXNlcjpwYXNz",
        "Bearer a.b.c",
        "",
    ] {
        let request = with_headers(&[
            ("authorization", bearer_value.as_bytes()),
            ("authorization", second.as_bytes()),
        ]);
        assert_invalid_request(&harness.rejected(request).await);
        // And in the other order.
        let request = with_headers(&[
            ("authorization", second.as_bytes()),
            ("authorization", bearer_value.as_bytes()),
        ]);
        assert_invalid_request(&harness.rejected(request).await);
    }
    harness
        .assert_passes(with_headers(&[("authorization", bearer_value.as_bytes())]))
        .await;
}

#[tokio::test]
async fn a_16_kib_header_value_is_rejected_as_too_long_before_decoding() {
    let harness = Harness::new(layer());
    // Grammatical but far over the verifier's 8 KiB cap.
    let filler = "a".repeat(16 * 1024);
    let answer = harness.rejected(bearer(&filler)).await;
    assert_invalid_token(&answer, ErrorKind::TooLong);
    // Over the cap and outside the grammar: malformed credentials, not a bad token.
    let spaced = format!("{filler} {filler}");
    assert_invalid_request(&harness.rejected(bearer(&spaced)).await);
    let commas = "a,".repeat(8 * 1024);
    assert_invalid_request(&harness.rejected(bearer(&commas)).await);
    assert_eq!(
        answer.challenge(),
        Some(r#"Bearer error="invalid_token", error_description="token too long""#)
    );

    // A genuine, validly signed token of about 16 KiB: too long for the default verifier...
    let big_claims = common::claims_with(json!({"pad": "p".repeat(12 * 1024)}));
    let big = common::token(Algorithm::HS256, &big_claims);
    assert!(
        big.len() > 16 * 1024 - 1024 && big.len() < 17 * 1024,
        "{}",
        big.len()
    );
    assert_invalid_token(&harness.rejected(bearer(&big)).await, ErrorKind::TooLong);

    // ...and accepted by one whose cap is raised: the length is the only thing wrong with it.
    let roomy = common::builder()
        .max_token_len(32 * 1024)
        .unwrap()
        .build()
        .unwrap();
    Harness::new(BearerAuthLayer::new(roomy))
        .assert_passes(bearer(&big))
        .await;
}

#[tokio::test]
async fn the_scheme_is_case_insensitive() {
    let harness = Harness::new(layer());
    let token = valid_token();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR", "BeArEr"] {
        harness
            .assert_passes(with_authorization(&format!("{scheme} {token}")))
            .await;
    }
}

#[tokio::test]
async fn several_spaces_after_the_scheme_are_accepted() {
    let harness = Harness::new(layer());
    let token = valid_token();
    for spaces in [" ", "  ", "     "] {
        harness
            .assert_passes(with_authorization(&format!("Bearer{spaces}{token}")))
            .await;
    }
}

#[tokio::test]
async fn another_scheme_counts_as_no_credentials() {
    let harness = Harness::new(layer());
    let token = valid_token();
    for value in [
        String::from("Basic dXNlcjpwYXNz"),
        String::from("Digest username=\"a\""),
        format!("Token {token}"),
        format!("JWT {token}"),
        format!("Bearerx {token}"),
        format!("DPoP {token}"),
        token.clone(),
        String::new(),
    ] {
        assert_missing(&harness.rejected(with_authorization(&value)).await);
    }
    harness.assert_passes(bearer(&token)).await;
}

#[tokio::test]
async fn non_ascii_bytes_in_the_authorization_header_are_400() {
    let harness = Harness::new(layer());
    let token = valid_token();
    let with_obs_text = |prefix: &[u8], suffix: &[u8]| {
        let mut value = prefix.to_vec();
        value.extend_from_slice(suffix);
        with_headers(&[("authorization", &value)])
    };
    for request in [
        with_obs_text(b"Bearer ", "caf\u{e9}".as_bytes()),
        with_obs_text(b"Bearer ", b"\xff\xfe"),
        with_obs_text(format!("Bearer {token}").as_bytes(), b"\x80"),
        with_obs_text(b"Bearer\xa0", token.as_bytes()),
        with_obs_text(b"Basic ", b"\xe9"),
    ] {
        assert_invalid_request(&harness.rejected(request).await);
    }
    harness.assert_passes(bearer(&token)).await;
}

// ---------------------------------------------------------------------------------------------
// Cookie source
// ---------------------------------------------------------------------------------------------

fn cookie_layer() -> BearerAuthLayer {
    layer().cookie("access_token").unwrap()
}

fn with_cookies(cookies: &[&str]) -> Request<String> {
    let headers: Vec<(&str, &[u8])> = cookies.iter().map(|c| ("cookie", c.as_bytes())).collect();
    with_headers(&headers)
}

#[tokio::test]
async fn the_token_can_come_from_the_configured_cookie() {
    let harness = Harness::new(cookie_layer());
    let token = valid_token();
    harness
        .assert_passes(with_cookies(&[&format!("access_token={token}")]))
        .await;
    harness
        .assert_passes(with_cookies(&[&format!(
            "theme=dark; access_token={token}; lang=en"
        )]))
        .await;
    // Split across two `Cookie` headers (as HTTP/2 may send them).
    harness
        .assert_passes(with_cookies(&[
            "theme=dark",
            &format!("access_token={token}"),
        ]))
        .await;
    // The header still works when the cookie is configured.
    harness.assert_passes(bearer(&token)).await;
}

#[tokio::test]
async fn a_quoted_cookie_value_is_unquoted() {
    let harness = Harness::new(cookie_layer());
    let token = valid_token();
    harness
        .assert_passes(with_cookies(&[&format!("access_token=\"{token}\"")]))
        .await;
    // Half a quote is outside the cookie-value grammar.
    for value in [format!("\"{token}"), format!("{token}\"")] {
        let answer = harness
            .rejected(with_cookies(&[&format!("access_token={value}")]))
            .await;
        assert_invalid_request(&answer);
    }
}

#[tokio::test]
async fn a_bad_token_in_the_cookie_is_401_invalid_token() {
    let harness = Harness::new(cookie_layer());
    let expired = common::token(Algorithm::HS256, &expired_claims());
    let answer = harness
        .rejected(with_cookies(&[&format!("access_token={expired}")]))
        .await;
    assert_invalid_token(&answer, ErrorKind::Expired);
    harness
        .assert_passes(with_cookies(&[&format!("access_token={}", valid_token())]))
        .await;
}

#[tokio::test]
async fn cookie_and_authorization_together_are_400() {
    let harness = Harness::new(cookie_layer());
    let token = valid_token();
    let request = with_headers(&[
        ("authorization", format!("Bearer {token}").as_bytes()),
        ("cookie", format!("access_token={token}").as_bytes()),
    ]);
    assert_invalid_request(&harness.rejected(request).await);
    harness
        .assert_passes(with_cookies(&[&format!("access_token={token}")]))
        .await;
}

#[tokio::test]
async fn the_cookie_twice_is_400() {
    let harness = Harness::new(cookie_layer());
    let token = valid_token();
    let once = format!("access_token={token}");
    for cookies in [
        vec![format!("{once}; {once}")],
        vec![format!("{once}; access_token=other")],
        vec![once.clone(), once.clone()],
        vec![once.clone(), String::from("x=1; access_token=other")],
    ] {
        let cookies: Vec<&str> = cookies.iter().map(String::as_str).collect();
        assert_invalid_request(&harness.rejected(with_cookies(&cookies)).await);
    }
    for bad_value in ["access_token=", "access_token=a b", "access_token=a,b"] {
        assert_invalid_request(&harness.rejected(with_cookies(&[bad_value])).await);
    }
    harness.assert_passes(with_cookies(&[&once])).await;
}

#[tokio::test]
async fn other_cookies_are_not_the_token() {
    let harness = Harness::new(cookie_layer());
    let token = valid_token();
    // Names are exact and case-sensitive; a near miss is simply absent.
    for cookie in [
        format!("Access_Token={token}"),
        format!("access_token_2={token}"),
        format!("xaccess_token={token}"),
        format!("session={token}"),
    ] {
        assert_missing(&harness.rejected(with_cookies(&[&cookie])).await);
    }
    harness
        .assert_passes(with_cookies(&[&format!("access_token={token}")]))
        .await;
}

#[tokio::test]
async fn cookies_are_not_read_unless_configured() {
    let harness = Harness::new(layer());
    let token = valid_token();
    let answer = harness
        .rejected(with_cookies(&[&format!("access_token={token}")]))
        .await;
    assert_missing(&answer);
    // Nor do they clash with the header.
    let request = with_headers(&[
        ("authorization", format!("Bearer {token}").as_bytes()),
        ("cookie", format!("access_token={token}").as_bytes()),
    ]);
    harness.assert_passes(request).await;
}

/// A `Cookie` header whose bytes are not all ASCII (here a UTF-8 `lang=café`, which browsers do
/// send when a script set it) next to the token cookie.
fn cookie_with_non_ascii_neighbour(token: &str) -> Vec<u8> {
    let mut value = b"lang=caf\xc3\xa9; access_token=".to_vec();
    value.extend_from_slice(token.as_bytes());
    value
}

/// A cookie sent twice is 400 `invalid_request`. A second `access_token` in a `Cookie` header that also holds a
/// non-ASCII byte is still a second token, wherever the other one is.
#[tokio::test]
async fn the_cookie_twice_is_400_even_when_one_header_has_non_ascii_bytes() {
    let harness = Harness::new(cookie_layer());
    let token = valid_token();
    let expired = common::token(Algorithm::HS256, &expired_claims());
    let hidden = cookie_with_non_ascii_neighbour(&expired);
    let visible = format!("access_token={token}");
    for headers in [
        [
            ("cookie", hidden.as_slice()),
            ("cookie", visible.as_bytes()),
        ],
        [
            ("cookie", visible.as_bytes()),
            ("cookie", hidden.as_slice()),
        ],
    ] {
        assert_invalid_request(&harness.rejected(with_headers(&headers)).await);
    }
    harness.assert_passes(with_cookies(&[&visible])).await;
}

/// A token cookie must not be silently dropped because a neighbouring cookie has a non-ASCII
/// byte: either the token is used (verified, so an expired one is 401 `invalid_token`) or the
/// header is refused as 400 `invalid_request`. Treating the request as carrying no credentials
/// lets a bad token through optional mode and answers a good one with "no token".
#[tokio::test]
async fn a_token_cookie_next_to_a_non_ascii_cookie_is_not_ignored() {
    let expired = common::token(Algorithm::HS256, &expired_claims());
    let optional = Harness::new(cookie_layer().optional());
    let answer = optional
        .send(with_headers(&[(
            "cookie",
            &cookie_with_non_ascii_neighbour(&expired),
        )]))
        .await;
    let passed_anonymously = optional.inner.take() == vec![None];
    assert!(
        !passed_anonymously,
        "an expired token cookie let the request through optional mode as anonymous: {answer:?}"
    );
    assert!(
        matches!(
            (answer.status, answer.kind()),
            (StatusCode::UNAUTHORIZED, Some(ErrorKind::Expired))
                | (StatusCode::BAD_REQUEST, Some(ErrorKind::InvalidRequest))
        ),
        "{answer:?}"
    );

    let strict = Harness::new(cookie_layer());
    let answer = strict
        .send(with_headers(&[(
            "cookie",
            &cookie_with_non_ascii_neighbour(&valid_token()),
        )]))
        .await;
    let seen = strict.inner.take();
    match answer.status {
        StatusCode::OK => {
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].as_ref().unwrap().subject(), Some(SUBJECT));
        }
        _ => {
            assert!(seen.is_empty());
            assert_invalid_request(&answer);
        }
    }
}

#[test]
fn an_invalid_cookie_name_is_refused_at_configuration() {
    for bad in [
        "",
        "a b",
        "a=b",
        "a;b",
        "a,b",
        "caf\u{e9}",
        "a\"b",
        "(a)",
        "a\tb",
        "a/b",
    ] {
        assert!(
            matches!(layer().cookie(bad), Err(ConfigError::InvalidSetting(_))),
            "{bad:?}"
        );
    }
    for good in ["access_token", "__Host-jwt", "a", "x!#$%&'*+-.^_`|~"] {
        assert!(layer().cookie(good).is_ok(), "{good:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Optional mode
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn optional_mode_lets_anonymous_requests_through_without_claims() {
    let harness = Harness::new(layer().optional());
    harness.assert_passes_anonymously(anonymous()).await;
    // Another scheme is no bearer credentials either.
    harness
        .assert_passes_anonymously(with_authorization("Basic dXNlcjpwYXNz"))
        .await;
    harness.assert_passes(bearer(&valid_token())).await;
}

#[tokio::test]
async fn optional_mode_still_rejects_bad_tokens() {
    let harness = Harness::new(layer().optional());
    for (_, token, kind) in bad_tokens() {
        assert_invalid_token(&harness.rejected(bearer(&token)).await, kind);
    }
    harness.assert_passes(bearer(&valid_token())).await;
}

#[tokio::test]
async fn optional_mode_still_rejects_malformed_credentials() {
    let harness = Harness::new(layer().optional().cookie("access_token").unwrap());
    let token = valid_token();
    assert_invalid_request(&harness.rejected(with_authorization("Bearer a b")).await);
    assert_invalid_request(&harness.rejected(with_authorization("Bearer")).await);
    let twice = with_headers(&[
        ("authorization", format!("Bearer {token}").as_bytes()),
        ("authorization", format!("Bearer {token}").as_bytes()),
    ]);
    assert_invalid_request(&harness.rejected(twice).await);
    let both = with_headers(&[
        ("authorization", format!("Bearer {token}").as_bytes()),
        ("cookie", format!("access_token={token}").as_bytes()),
    ]);
    assert_invalid_request(&harness.rejected(both).await);
    harness.assert_passes(bearer(&token)).await;
    harness.assert_passes_anonymously(anonymous()).await;
}

/// Claims an outer layer (or an attacker-controlled glue layer) put in before `BearerAuth` ran.
fn planted_claims() -> Claims {
    let token = common::token(
        Algorithm::HS256,
        &common::claims_with(json!({"sub": "planted", "roles": ["superuser"]})),
    );
    common::verifier().verify(&token).unwrap()
}

fn planting(layer: BearerAuthLayer) -> Harness {
    let planted = planted_claims();
    Harness::build(move |inner| {
        ServiceBuilder::new()
            .map_request(move |mut request: Request<String>| {
                request.extensions_mut().insert(planted.clone());
                request
            })
            .layer(layer)
            .service(inner)
    })
}

#[tokio::test]
async fn claims_planted_by_an_outer_layer_are_removed_or_replaced() {
    let optional = planting(layer().optional());
    // Anonymous: the planted claims are gone.
    optional.assert_passes_anonymously(anonymous()).await;
    // Authenticated: the token's claims replace them.
    let claims = optional.assert_passes(bearer(&valid_token())).await;
    assert!(!claims.has_role("superuser"));

    let required = planting(layer());
    assert_missing(&required.rejected(anonymous()).await);
    let claims = required.assert_passes(bearer(&valid_token())).await;
    assert_ne!(claims, planted_claims());
}

// ---------------------------------------------------------------------------------------------
// Response details
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_rejection_is_exactly_status_challenge_and_a_small_json_body() {
    let harness = Harness::new(layer());
    let token = common::token(Algorithm::HS256, &expired_claims());
    let answer = harness.rejected(bearer(&token)).await;
    let names: Vec<&str> = answer.headers.keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["content-type", "www-authenticate"]);
    assert_eq!(answer.headers[CONTENT_TYPE], "application/json");
    let json: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        json,
        json!({"error": "invalid_token", "error_description": "token expired"})
    );
    assert_eq!(answer.kind(), Some(ErrorKind::Expired));
}

#[tokio::test]
async fn the_body_size_is_known_and_the_auth_error_is_in_the_extensions() {
    let harness = Harness::new(layer());
    let response = harness.service.clone().oneshot(anonymous()).await.unwrap();
    let error = response.extensions().get::<AuthError>().copied().unwrap();
    assert_eq!(error.kind(), ErrorKind::Missing);
    let expected = r#"{"error":"unauthorized","error_description":"no token"}"#;
    assert_eq!(
        response.body().size_hint().exact(),
        Some(expected.len() as u64)
    );
    assert_eq!(answer(response).await.text(), expected);
    assert!(harness.inner.take().is_empty());
}

#[tokio::test]
async fn no_token_bytes_or_library_text_reach_the_client() {
    const CANARY: &str = "CANARY7f3a";
    let harness = Harness::new(layer());
    let canary_claims = common::claims_with(json!({
        "sub": format!("sub-{CANARY}"), "jti": format!("jti-{CANARY}"),
        "iat": common::NOW - 7200, "nbf": common::NOW - 7200, "exp": common::NOW - 3600,
    }));
    let payload = serde_json::to_string(&canary_claims).unwrap();
    let cases = [
        common::token(Algorithm::HS256, &canary_claims),
        common::signer(Algorithm::ES256)
            .with_kid(format!("kid-{CANARY}"))
            .sign(&common::claims())
            .unwrap(),
        common::raw_token(
            Algorithm::HS256,
            &format!(r#"{{"alg":"none","kid":"kid-{CANARY}"}}"#),
            &payload,
        ),
        common::raw_token(
            Algorithm::HS256,
            &format!(r#"{{"alg":"HS256","kid":"hs256","crit":["x-{CANARY}"],"x-{CANARY}":1}}"#),
            &payload,
        ),
        // Not JSON: a parser error message would quote it.
        common::raw_token(
            Algorithm::HS256,
            &format!("{{\"alg\":\"HS256\",{CANARY}"),
            &payload,
        ),
        common::raw_token(Algorithm::HS256, &common::header(Algorithm::HS256), CANARY),
        common::raw_token(
            Algorithm::HS256,
            &common::header(Algorithm::HS256),
            &format!(r#"{{"iss":"{CANARY}","exp":"{CANARY}"}}"#),
        ),
        format!("{}.{CANARY}", valid_token().rsplit_once('.').unwrap().0),
    ];
    // Words that would betray a library's error text rather than this crate's fixed one.
    let library_words = [
        "serde",
        "json",
        "line",
        "column",
        "expected",
        "base64",
        "jsonwebtoken",
        "invalid type",
        "Error",
        "error:",
        "{:",
        "Utf8",
    ];
    for token in cases {
        let answer = harness.rejected(bearer(&token)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
        let everything = answer.everything();
        assert!(!everything.contains(CANARY), "{everything}");
        for segment in token.split('.').filter(|s| s.len() >= 8) {
            assert!(!everything.contains(segment), "{everything}");
        }
        let description = answer.kind().unwrap().description();
        assert_invalid_token(&answer, answer.kind().unwrap());
        for word in library_words {
            // The only JSON the client sees is the fixed body with the fixed description.
            let without_fixed_text = everything
                .replace("application/json", "")
                .replace(description, "");
            assert!(!without_fixed_text.contains(word), "{word}: {everything}");
        }
        // Neither does the error that travels in the extensions carry any of it.
        let error = answer.error.unwrap();
        assert!(!format!("{error:?} {error}").contains(CANARY));
    }
    harness.assert_passes(bearer(&valid_token())).await;
}

// ---------------------------------------------------------------------------------------------
// Rejection hook
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_hook_can_replace_the_response_entirely() {
    let calls = Arc::new(Mutex::new(0_usize));
    let counted = Arc::clone(&calls);
    let harness = Harness::new(layer().on_rejection(move |_: Rejection| {
        *counted.lock().unwrap() += 1;
        Response::builder()
            .status(StatusCode::IM_A_TEAPOT)
            .header("x-custom", "yes")
            .body(Bytes::from_static(b"short and stout"))
            .unwrap()
    }));
    for (request, kind) in [
        (anonymous(), ErrorKind::Missing),
        (with_authorization("Bearer a b"), ErrorKind::InvalidRequest),
        (
            bearer(&common::token(Algorithm::HS256, &expired_claims())),
            ErrorKind::Expired,
        ),
    ] {
        let answer = harness.rejected(request).await;
        assert_eq!(answer.status, StatusCode::IM_A_TEAPOT);
        assert_eq!(answer.text(), "short and stout");
        assert_eq!(answer.headers["x-custom"], "yes");
        assert!(answer.challenge().is_none());
        assert!(answer.headers.get(CONTENT_TYPE).is_none());
        assert_eq!(answer.kind(), Some(kind));
    }
    assert_eq!(*calls.lock().unwrap(), 3);
    // The hook is for rejections only.
    harness.assert_passes(bearer(&valid_token())).await;
    assert_eq!(*calls.lock().unwrap(), 3);
}

#[tokio::test]
async fn a_hook_can_decorate_the_default_response() {
    let harness = Harness::new(layer().on_rejection(|rejection: Rejection| {
        let mut response = rejection.into_response();
        response
            .headers_mut()
            .insert("cache-control", HeaderValue::from_static("no-store"));
        response
    }));
    let answer = harness.rejected(anonymous()).await;
    assert_missing(&answer);
    assert_eq!(answer.headers["cache-control"], "no-store");
    let answer = harness
        .rejected(bearer(&common::token(Algorithm::HS256, &expired_claims())))
        .await;
    assert_invalid_token(&answer, ErrorKind::Expired);
    assert_eq!(answer.headers["cache-control"], "no-store");
    harness.assert_passes(bearer(&valid_token())).await;
}

#[tokio::test]
async fn the_hook_sees_the_reason_status_and_protocol() {
    type Seen = Arc<Mutex<Vec<(ErrorKind, StatusCode, bool)>>>;
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    let harness = Harness::new(layer().on_rejection(move |rejection: Rejection| {
        record.lock().unwrap().push((
            rejection.error().kind(),
            rejection.status(),
            rejection.is_grpc(),
        ));
        assert!(!format!("{rejection:?}").is_empty());
        rejection.into_response()
    }));
    let expired = common::token(Algorithm::HS256, &expired_claims());
    harness.rejected(anonymous()).await;
    harness.rejected(with_authorization("Bearer a b")).await;
    harness.rejected(bearer(&expired)).await;
    let mut grpc = bearer(&expired);
    grpc.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    let answer = harness.rejected(grpc).await;
    assert_eq!(answer.headers["grpc-status"], "16");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (ErrorKind::Missing, StatusCode::UNAUTHORIZED, false),
            (ErrorKind::InvalidRequest, StatusCode::BAD_REQUEST, false),
            (ErrorKind::Expired, StatusCode::UNAUTHORIZED, false),
            (ErrorKind::Expired, StatusCode::OK, true),
        ]
    );
    harness.assert_passes(bearer(&valid_token())).await;
    assert_eq!(seen.lock().unwrap().len(), 4);
}

// ---------------------------------------------------------------------------------------------
// The tower contract
// ---------------------------------------------------------------------------------------------

type MockRequest = Request<String>;
type MockResponse = Response<String>;

#[tokio::test]
async fn poll_ready_waits_for_the_inner_service() {
    let (mut service, mut handle) = mock::spawn_layer::<MockRequest, MockResponse, _>(layer());
    handle.allow(0);
    assert!(service.poll_ready::<MockRequest>().is_pending());
    assert!(service.poll_ready::<MockRequest>().is_pending());
    handle.allow(1);
    assert!(service.is_woken());
    assert!(matches!(
        service.poll_ready::<MockRequest>(),
        Poll::Ready(Ok(()))
    ));

    let response = service.call(bearer(&valid_token()));
    let (request, send) = handle.next_request().await.unwrap();
    assert_eq!(
        request.extensions().get::<Claims>().unwrap().subject(),
        Some(SUBJECT)
    );
    send.send_response(Response::new(String::from("from the mock")));
    let response = answer(response.await.unwrap()).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.text(), "from the mock");

    // Capacity used up: pending again.
    assert!(service.poll_ready::<MockRequest>().is_pending());
}

#[tokio::test]
async fn a_rejection_does_not_reach_the_inner_service() {
    let (mut service, mut handle) = mock::spawn_layer::<MockRequest, MockResponse, _>(layer());
    handle.allow(1);
    assert!(service.poll_ready::<MockRequest>().is_ready());
    let answer = answer(service.call(anonymous()).await.unwrap()).await;
    assert_missing(&answer);
    assert!(handle.poll_request().is_pending(), "nothing was forwarded");
    // The slot reserved by `poll_ready` is still there for the next request.
    assert!(service.poll_ready::<MockRequest>().is_ready());
    let response = service.call(bearer(&valid_token()));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(Response::new(String::new()));
    assert_eq!(response.await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn errors_of_the_inner_service_pass_through_unchanged() {
    let (mut service, mut handle) = mock::spawn_layer::<MockRequest, MockResponse, _>(layer());
    // From poll_ready...
    handle.send_error("not ready: overloaded");
    match service.poll_ready::<MockRequest>() {
        Poll::Ready(Err(error)) => assert_eq!(error.to_string(), "not ready: overloaded"),
        other => panic!("{other:?}"),
    }
    // ...and from the call.
    handle.allow(1);
    assert!(service.poll_ready::<MockRequest>().is_ready());
    let response = service.call(bearer(&valid_token()));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error("inner failure");
    assert_eq!(response.await.unwrap_err().to_string(), "inner failure");
}

#[tokio::test]
async fn the_layer_and_the_service_clone() {
    let layer = layer().cookie("access_token").unwrap().optional();
    let copy = layer.clone();
    let first = Harness::new(layer);
    let second = Harness::new(copy);
    let token = valid_token();
    first.assert_passes(bearer(&token)).await;
    second
        .assert_passes(with_cookies(&[&format!("access_token={token}")]))
        .await;
    second.assert_passes_anonymously(anonymous()).await;

    // A clone of the service shares the configuration and the inner service.
    let inner = Inner::default();
    let service = layer_with_hook().layer(inner.clone());
    let mut clone = service.clone();
    let response = clone
        .ready()
        .await
        .unwrap()
        .call(anonymous())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    let response = service.oneshot(bearer(&token)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(inner.take().len(), 1);
}

/// The service's own constructors and accessors, as tower-http's services have them.
#[tokio::test]
async fn the_service_is_built_and_taken_apart_like_tower_https() {
    let inner = Inner::default();
    let built = BearerAuth::new(inner.clone(), common::verifier());
    let layered = BearerAuth::layer(common::verifier()).layer(inner.clone());
    for mut service in [built, layered] {
        service.get_mut().take();
        assert!(service.get_ref().take().is_empty());
        let passed = answer(
            service
                .clone()
                .oneshot(bearer(&valid_token()))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(passed.status, StatusCode::OK);
        assert_missing(&answer(service.clone().oneshot(anonymous()).await.unwrap()).await);
        // The inner service saw only the verified request.
        let seen = service.into_inner().take();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].as_ref().and_then(Claims::subject), Some("user-1"));
    }
}

fn layer_with_hook() -> BearerAuthLayer<impl OnRejection + Clone> {
    layer().on_rejection(|_: Rejection| {
        Response::builder()
            .status(StatusCode::IM_A_TEAPOT)
            .body(Bytes::new())
            .unwrap()
    })
}

#[test]
fn debug_output_redacts_the_secret() {
    let secret = b"SECRET-CANARY-0123456789-abcdefghij!";
    let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, secret).unwrap())
        .issuer(common::ISSUER)
        .audience(common::AUDIENCE)
        .build()
        .unwrap();
    let layer = BearerAuthLayer::new(verifier)
        .cookie("access_token")
        .unwrap();
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let decimal = format!("{:?}", &secret[..]);
    let decimal = decimal.trim_matches(|c| c == '[' || c == ']');
    let service = layer.layer(Inner::default());
    for debug in [
        format!("{layer:?}"),
        format!("{layer:#?}"),
        format!("{:?}", service.clone()),
    ] {
        assert!(!debug.contains("SECRET-CANARY"), "{debug}");
        assert!(!debug.contains("CANARY"), "{debug}");
        assert!(!debug.to_lowercase().contains(&hex), "{debug}");
        assert!(!debug.contains(&hex[..16]), "{debug}");
        assert!(!debug.contains(decimal), "{debug}");
        assert!(!debug.contains(&decimal[..20]), "{debug}");
        assert!(!debug.contains("U0VDUkVU"), "base64 of the secret: {debug}");
    }
    assert!(format!("{layer:?}").starts_with("BearerAuthLayer"));
    // The harmless parts are still there to help debugging.
    assert!(format!("{layer:?}").contains("access_token"));
}

// ---------------------------------------------------------------------------------------------
// axum
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "axum")]
mod with_axum {
    use super::*;
    use crate::common::answer::Answer;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::header::{AUTHORIZATION, COOKIE};

    async fn me(claims: Claims) -> String {
        format!("hello {}", claims.subject().unwrap_or("?"))
    }

    async fn greeting(claims: Option<Claims>) -> String {
        match claims {
            Some(claims) => format!("welcome back {}", claims.subject().unwrap_or("?")),
            None => String::from("welcome stranger"),
        }
    }

    fn app() -> Router {
        Router::new()
            .route("/me", get(me))
            .route("/greeting", get(greeting))
    }

    fn get_request(uri: &str, token: Option<&str>) -> Request<Body> {
        let mut builder = Request::builder().uri(uri);
        if let Some(token) = token {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        builder.body(Body::empty()).unwrap()
    }

    async fn send(app: &Router, request: Request<Body>) -> Answer {
        answer(app.clone().oneshot(request).await.unwrap()).await
    }

    #[tokio::test]
    async fn the_claims_extractor_gets_the_claims_from_the_layer() {
        let app = app().layer(layer());
        let token = valid_token();
        let ok = send(&app, get_request("/me", Some(&token))).await;
        assert_eq!(ok.status, StatusCode::OK);
        assert_eq!(ok.text(), "hello user-1");
        let ok = send(&app, get_request("/greeting", Some(&token))).await;
        assert_eq!(ok.text(), "welcome back user-1");

        // The layer rejects before the handler runs.
        assert_missing(&send(&app, get_request("/me", None)).await);
        let expired = common::token(Algorithm::HS256, &expired_claims());
        assert_invalid_token(
            &send(&app, get_request("/me", Some(&expired))).await,
            ErrorKind::Expired,
        );
    }

    #[tokio::test]
    async fn the_claims_extractor_without_the_layer_is_401() {
        let app = app();
        // Even a valid token is not looked at: only the layer verifies.
        for token in [None, Some(valid_token())] {
            let answer = send(&app, get_request("/me", token.as_deref())).await;
            assert_missing(&answer);
        }
        // `Option<Claims>` never rejects.
        let answer = send(&app, get_request("/greeting", Some(&valid_token()))).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.text(), "welcome stranger");
    }

    #[tokio::test]
    async fn optional_claims_are_none_for_anonymous_requests_in_optional_mode() {
        let app = app().layer(layer().optional());
        let anonymous = send(&app, get_request("/greeting", None)).await;
        assert_eq!(anonymous.status, StatusCode::OK);
        assert_eq!(anonymous.text(), "welcome stranger");
        assert_eq!(anonymous.error, None);
        let known = send(&app, get_request("/greeting", Some(&valid_token()))).await;
        assert_eq!(known.text(), "welcome back user-1");
        // The strict extractor behind an optional layer: 401 for the anonymous request.
        assert_missing(&send(&app, get_request("/me", None)).await);
        let me = send(&app, get_request("/me", Some(&valid_token()))).await;
        assert_eq!(me.text(), "hello user-1");
        // A bad token is still rejected by the layer.
        let expired = common::token(Algorithm::HS256, &expired_claims());
        assert_invalid_token(
            &send(&app, get_request("/greeting", Some(&expired))).await,
            ErrorKind::Expired,
        );
    }

    #[derive(serde::Deserialize)]
    struct Tenant {
        tenant: String,
    }

    async fn tenant(claims: Claims<Tenant>) -> String {
        format!(
            "{} of {}",
            claims.subject().unwrap_or("?"),
            claims.extra().tenant
        )
    }

    async fn maybe_tenant(claims: Option<Claims<Tenant>>) -> String {
        claims.map_or_else(|| String::from("nobody"), |c| c.extra().tenant.clone())
    }

    #[tokio::test]
    async fn an_applications_own_claims_are_extracted_typed() {
        let app = Router::new()
            .route("/tenant", get(tenant))
            .route("/maybe", get(maybe_tenant))
            .layer(layer().optional());
        let with_tenant = common::token(
            Algorithm::HS256,
            &common::claims_with(json!({"tenant": "acme"})),
        );
        let ok = send(&app, get_request("/tenant", Some(&with_tenant))).await;
        assert_eq!(
            (ok.status, ok.text().as_str()),
            (StatusCode::OK, "user-1 of acme")
        );
        let ok = send(&app, get_request("/maybe", Some(&with_tenant))).await;
        assert_eq!(ok.text(), "acme");

        // Verified, but its claims lack what the handler's type needs: 401 invalid_token, as
        // `Verifier::verify_as` would have answered; `Option<Claims<T>>` rejects it too.
        for path in ["/tenant", "/maybe"] {
            let answer = send(&app, get_request(path, Some(&valid_token()))).await;
            assert_invalid_token(&answer, ErrorKind::InvalidClaim);
        }
        // Without claims: 401 without an error code; `None` for the optional extractor.
        assert_missing(&send(&app, get_request("/tenant", None)).await);
        assert_eq!(
            send(&app, get_request("/maybe", None)).await.text(),
            "nobody"
        );
    }

    #[tokio::test]
    async fn the_cookie_source_works_under_axum() {
        let app = app().layer(cookie_layer());
        let request = Request::builder()
            .uri("/me")
            .header(COOKIE, format!("access_token={}", valid_token()))
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, request).await.text(), "hello user-1");
    }
}
