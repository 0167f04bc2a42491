//! `TestIssuer` driving an app protected by `BearerAuth` + `RequireScope` + `RequireRole`: the
//! `external_issuer` example's own app, verifying through discovery, with every kind of token
//! the kit mints, key rotation, and the issuer going down.

#[path = "../../examples/external_issuer.rs"]
#[allow(dead_code, unreachable_pub)]
mod external_issuer;

use axum::Router;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_jwt_auth::testing::TestIssuer;
use tower_jwt_auth::{Algorithm, ErrorKind};

use crate::common::ManualClock;
use crate::common::answer::{Answer, answer};

/// The example's app, trusting `issuer` as it would trust Keycloak.
async fn app(issuer: &TestIssuer) -> Router {
    let verifier = external_issuer::keycloak_verifier(issuer.issuer(), issuer.audience())
        .await
        .unwrap();
    external_issuer::app(verifier).unwrap()
}

async fn get(app: &Router, path: &str, token: Option<&str>) -> Answer {
    let mut request = Request::builder().uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    answer(response).await
}

fn admin_roles() -> Value {
    json!({"roles": ["admin"]})
}

#[tokio::test]
async fn scopes_and_roles_of_minted_tokens_decide_access() {
    let issuer = TestIssuer::start().await.unwrap();
    let app = app(&issuer).await;

    let reader = issuer
        .token()
        .subject("bob")
        .scope("openid reports:read")
        .sign()
        .unwrap();
    let me = get(&app, "/me", Some(&reader)).await;
    assert_eq!(me.status, StatusCode::OK);
    let me: Value = serde_json::from_slice(&me.body).unwrap();
    assert_eq!(me["sub"], "bob");
    assert_eq!(me["scopes"], json!(["openid", "reports:read"]));
    assert_eq!(
        get(&app, "/reports", Some(&reader)).await.status,
        StatusCode::OK
    );
    let admin = get(&app, "/admin", Some(&reader)).await;
    assert_eq!(
        (admin.status, admin.kind()),
        (StatusCode::FORBIDDEN, Some(ErrorKind::InsufficientScope))
    );

    let no_scope = issuer.token().scope("openid").sign().unwrap();
    let reports = get(&app, "/reports", Some(&no_scope)).await;
    assert_eq!(
        (reports.status, reports.kind()),
        (StatusCode::FORBIDDEN, Some(ErrorKind::InsufficientScope))
    );

    let administrator = issuer
        .token()
        .claim("realm_access", admin_roles())
        .sign()
        .unwrap();
    assert_eq!(
        get(&app, "/admin", Some(&administrator)).await.status,
        StatusCode::OK
    );
    // Roles at the top level are not where this app reads them.
    let top_level = issuer.token().roles(["admin"]).sign().unwrap();
    assert_eq!(
        get(&app, "/admin", Some(&top_level)).await.status,
        StatusCode::FORBIDDEN
    );

    let anonymous = get(&app, "/me", None).await;
    assert_eq!(
        (anonymous.status, anonymous.kind()),
        (StatusCode::UNAUTHORIZED, Some(ErrorKind::Missing))
    );
}

#[tokio::test]
async fn bad_tokens_are_refused_for_the_right_reason() {
    let issuer = TestIssuer::start().await.unwrap();
    let app = app(&issuer).await;
    let scoped = || issuer.token().scope("reports:read");
    let cases = [
        (scoped().expired().sign().unwrap(), ErrorKind::Expired),
        (
            scoped().not_yet_valid().sign().unwrap(),
            ErrorKind::NotYetValid,
        ),
        (
            scoped().wrong_key().sign().unwrap(),
            ErrorKind::InvalidSignature,
        ),
        (
            scoped().audience("someone-else").sign().unwrap(),
            ErrorKind::WrongAudience,
        ),
        (
            scoped()
                .claim("iss", "https://impostor.example")
                .sign()
                .unwrap(),
            ErrorKind::WrongIssuer,
        ),
        (
            scoped().without("exp").sign().unwrap(),
            ErrorKind::MissingClaim,
        ),
        (
            scoped().kid("no-such-key").sign().unwrap(),
            ErrorKind::UnknownKey,
        ),
    ];
    for (token, kind) in cases {
        let reply = get(&app, "/reports", Some(&token)).await;
        assert_eq!(
            (reply.status, reply.kind()),
            (StatusCode::UNAUTHORIZED, Some(kind)),
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn every_asymmetric_algorithm_verifies_through_the_published_jwks() {
    let issuer = TestIssuer::builder()
        .algorithm(Algorithm::RS256)
        .audience("account")
        .start()
        .await
        .unwrap();
    let asymmetric: Vec<Algorithm> = Algorithm::ALL
        .into_iter()
        .filter(|alg| !alg.as_str().starts_with("HS"))
        .collect();
    // A token for a new algorithm makes (and publishes) that algorithm's key.
    let tokens: Vec<String> = asymmetric
        .iter()
        .map(|alg| issuer.token().algorithm(*alg).sign().unwrap())
        .collect();
    assert_eq!(issuer.published_kids().len(), 9, "one key per algorithm");
    let app = app(&issuer).await;
    for (alg, token) in asymmetric.iter().zip(&tokens) {
        assert_eq!(
            get(&app, "/me", Some(token)).await.status,
            StatusCode::OK,
            "{alg}"
        );
    }
    assert_eq!(issuer.jwks_requests(), 1, "one fetch serves them all");
    assert!(issuer.token().algorithm(Algorithm::HS256).sign().is_err());
    assert!(
        TestIssuer::builder()
            .algorithm(Algorithm::HS512)
            .start()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn rotation_and_retirement_reach_the_app_without_a_restart() {
    let issuer = TestIssuer::start().await.unwrap();
    let clock = ManualClock::new();
    let keys = issuer
        .remote_jwks()
        .unwrap()
        .clock({
            let clock = clock.clone();
            move || clock.now()
        })
        .build()
        .unwrap();
    let verifier = tower_jwt_auth::Verifier::builder(keys.clone())
        .issuer(issuer.issuer())
        .audience(issuer.audience())
        .roles_claim("/realm_access/roles")
        .unwrap()
        .build()
        .unwrap();
    let app = external_issuer::app(verifier).unwrap();
    let old = issuer.token().sign().unwrap();
    assert_eq!(get(&app, "/me", Some(&old)).await.status, StatusCode::OK);
    assert_eq!(issuer.jwks_requests(), 1);

    let new_kid = issuer.rotate().unwrap();
    let new = issuer.token().sign().unwrap();
    assert_eq!(header_kid(&new), new_kid);
    assert_ne!(header_kid(&old), new_kid);
    // Right after the first fetch, an unknown kid waits for the cooldown...
    let early = get(&app, "/me", Some(&new)).await;
    assert_eq!(early.kind(), Some(ErrorKind::UnknownKey));
    assert_eq!(issuer.jwks_requests(), 1);
    // ...after which the first token with it fetches once and passes.
    clock.advance(std::time::Duration::from_secs(31));
    assert_eq!(get(&app, "/me", Some(&new)).await.status, StatusCode::OK);
    assert_eq!(
        get(&app, "/me", Some(&old)).await.status,
        StatusCode::OK,
        "old key still published"
    );
    assert_eq!(issuer.jwks_requests(), 2);

    // The old key is retired: gone after the next refresh.
    let old_kid = issuer
        .published_kids()
        .into_iter()
        .find(|kid| *kid != new_kid)
        .unwrap();
    assert!(issuer.retire(&old_kid));
    assert!(!issuer.retire(&old_kid));
    keys.refresh().await.unwrap();
    let refused = get(&app, "/me", Some(&old)).await;
    assert_eq!(
        (refused.status, refused.kind()),
        (StatusCode::UNAUTHORIZED, Some(ErrorKind::UnknownKey))
    );
    assert_eq!(get(&app, "/me", Some(&new)).await.status, StatusCode::OK);
}

/// The `kid` in a token's header.
fn header_kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_issuer_down_at_start_means_503_until_it_is_back() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_available(false);
    let app = app(&issuer).await;
    let token = issuer.token().scope("reports:read").sign().unwrap();
    let reply = get(&app, "/reports", Some(&token)).await;
    assert_eq!(
        (reply.status, reply.kind()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(ErrorKind::Unavailable)
        )
    );
    assert!(issuer.discovery_requests() >= 1);
    assert_eq!(issuer.jwks_requests(), 0, "discovery failed first");

    issuer.set_available(true);
    let app = self::app(&issuer).await;
    assert_eq!(
        get(&app, "/reports", Some(&token)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn custom_claims_reach_the_handler() {
    let issuer = TestIssuer::start().await.unwrap();
    let verifier = issuer.verifier().unwrap();
    let token = issuer
        .token()
        .claim("tenant", "acme")
        .claim("aud", json!(["api", "billing"]))
        .sign()
        .unwrap();
    let claims = verifier.verify_async(&token).await.unwrap();
    assert_eq!(claims.extra()["tenant"], "acme");
    assert_eq!(claims.audience(), ["api", "billing"]);
    assert_eq!(claims.issuer(), Some(issuer.issuer()));
    assert!(claims.jwt_id().is_some_and(|jti| jti.len() == 22));
    // `typ` is `at+jwt` unless told otherwise, and the kit's verifier insists on it.
    let untyped = issuer.token().typ(None).sign().unwrap();
    assert_eq!(
        verifier.verify_async(&untyped).await.unwrap_err().kind(),
        ErrorKind::WrongType
    );
    assert!(format!("{issuer:?}").contains(issuer.issuer()));
}
