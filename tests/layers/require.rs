//! `RequireScopeLayer` and `RequireRoleLayer` driven in-process behind `BearerAuthLayer`: any/all,
//! exact matching, the 403 challenge, role hierarchies, layer-order mistakes, back-pressure and
//! configuration checks.

use crate::common;
use crate::common::answer::{Answer, answer};
use crate::common::layers::{
    Inner, Stack, anonymous, assert_invalid_token, assert_missing, assert_rejection, bearer,
};

use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::Bytes;
use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Request, Response, StatusCode};
use serde_json::{Value, json};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_jwt_auth::bearer::BearerAuthLayer;
use tower_jwt_auth::require::{
    RequireRole, RequireRoleLayer, RequireScope, RequireScopeLayer, RoleHierarchy,
};
use tower_jwt_auth::response::Rejection;
use tower_jwt_auth::{Algorithm, Claims, ConfigError, ErrorKind};
use tower_test::mock;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// A stack under test and the inner service behind it.
type Harness = Stack;

const INSUFFICIENT_BODY: &str =
    r#"{"error":"insufficient_scope","error_description":"insufficient scope"}"#;

/// 403 for a scope route, naming the listed scopes.
fn assert_insufficient_scope(answer: &Answer, scopes: &str) {
    assert_rejection(
        answer,
        StatusCode::FORBIDDEN,
        &format!(
            r#"Bearer error="insufficient_scope", error_description="insufficient scope", scope="{scopes}""#
        ),
        INSUFFICIENT_BODY,
        ErrorKind::InsufficientScope,
    );
}

/// 403 for a role route: no `scope` attribute.
fn assert_insufficient_role(answer: &Answer) {
    assert_rejection(
        answer,
        StatusCode::FORBIDDEN,
        r#"Bearer error="insufficient_scope", error_description="insufficient scope""#,
        INSUFFICIENT_BODY,
        ErrorKind::InsufficientScope,
    );
}

/// A valid token with exactly this `scope` (`None`: no scope claim) and these roles.
fn token(scope: Option<&str>, roles: &[&str]) -> String {
    let scope = scope.map_or(Value::Null, |s| json!(s));
    common::token(
        Algorithm::HS256,
        &common::claims_with(json!({"scope": scope, "roles": roles})),
    )
}

fn scoped(scope: &str) -> String {
    token(Some(scope), &[])
}

fn with_roles(roles: &[&str]) -> String {
    token(None, roles)
}

fn expired(scope: &str, roles: &[&str]) -> String {
    common::token(
        Algorithm::HS256,
        &common::claims_with(json!({
            "scope": scope, "roles": roles,
            "iat": common::NOW - 7200, "nbf": common::NOW - 7200, "exp": common::NOW - 3600,
        })),
    )
}

fn scopes_any(scopes: &[&str]) -> Harness {
    Harness::behind_bearer(RequireScopeLayer::any(scopes).unwrap())
}

fn scopes_all(scopes: &[&str]) -> Harness {
    Harness::behind_bearer(RequireScopeLayer::all(scopes).unwrap())
}

fn roles_any(roles: &[&str]) -> Harness {
    Harness::behind_bearer(RequireRoleLayer::any(roles).unwrap())
}

fn roles_all(roles: &[&str]) -> Harness {
    Harness::behind_bearer(RequireRoleLayer::all(roles).unwrap())
}

// ---------------------------------------------------------------------------------------------
// any / all, exact matching
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn any_scope_needs_one_of_the_list() {
    let harness = scopes_any(&["items:read", "items:write"]);
    for scope in [
        "items:read",
        "items:write",
        "profile items:write",
        "items:read items:write",
    ] {
        let claims = harness.assert_passes(bearer(&scoped(scope))).await;
        assert_eq!(claims.scopes().as_str(), scope);
    }
    for scope in ["profile", "items", "items:delete profile"] {
        let answer = harness.rejected(bearer(&scoped(scope))).await;
        assert_insufficient_scope(&answer, "items:read items:write");
    }
    // No scope claim at all.
    assert_insufficient_scope(
        &harness.rejected(bearer(&with_roles(&["admin"]))).await,
        "items:read items:write",
    );
}

#[tokio::test]
async fn all_scopes_need_every_one_of_the_list() {
    let harness = scopes_all(&["items:read", "items:write"]);
    for scope in [
        "items:read items:write",
        "items:write items:read",
        "profile items:write openid items:read",
    ] {
        harness.assert_passes(bearer(&scoped(scope))).await;
    }
    for scope in ["items:read", "items:write", "profile", "items:read profile"] {
        let answer = harness.rejected(bearer(&scoped(scope))).await;
        assert_insufficient_scope(&answer, "items:read items:write");
    }
}

#[tokio::test]
async fn scopes_from_an_scp_array_count_too() {
    let harness = scopes_all(&["items:read", "items:write"]);
    let both = common::token(
        Algorithm::HS256,
        &common::claims_with(json!({"scope": null, "scp": ["items:write", "items:read"]})),
    );
    harness.assert_passes(bearer(&both)).await;
    let one = common::token(
        Algorithm::HS256,
        &common::claims_with(json!({"scope": null, "scp": ["items:read"]})),
    );
    assert_insufficient_scope(
        &harness.rejected(bearer(&one)).await,
        "items:read items:write",
    );
}

#[tokio::test]
async fn scope_matching_is_exact_and_case_sensitive() {
    let harness = scopes_any(&["items:read"]);
    harness.assert_passes(bearer(&scoped("items:read"))).await;
    for near_miss in [
        "items:Read",
        "ITEMS:READ",
        "Items:read",
        // Prefixes and superstrings of the required scope, and the other way round.
        "items",
        "items:",
        "items:rea",
        "items:reader",
        "items:read:all",
        "xitems:read",
        "read",
        "items/read",
        "items:read_only",
    ] {
        let answer = harness.rejected(bearer(&scoped(near_miss))).await;
        assert_insufficient_scope(&answer, "items:read");
    }
    // A required scope that is a prefix of the token's one does not match either.
    let short = scopes_any(&["items"]);
    assert_insufficient_scope(
        &short
            .rejected(bearer(&scoped("items:read items:write")))
            .await,
        "items",
    );
    short
        .assert_passes(bearer(&scoped("items:read items")))
        .await;
}

#[tokio::test]
async fn any_role_needs_one_of_the_list() {
    let harness = roles_any(&["admin", "moderator"]);
    for roles in [
        &["admin"][..],
        &["moderator"],
        &["user", "moderator"],
        &["admin", "moderator"],
    ] {
        let claims = harness.assert_passes(bearer(&with_roles(roles))).await;
        assert_eq!(claims.roles(), roles);
    }
    for roles in [&["user"][..], &[], &["auditor", "guest"]] {
        assert_insufficient_role(&harness.rejected(bearer(&with_roles(roles))).await);
    }
}

#[tokio::test]
async fn all_roles_need_every_one_of_the_list() {
    let harness = roles_all(&["admin", "auditor"]);
    harness
        .assert_passes(bearer(&with_roles(&["auditor", "user", "admin"])))
        .await;
    for roles in [&["admin"][..], &["auditor"], &["user"], &[]] {
        assert_insufficient_role(&harness.rejected(bearer(&with_roles(roles))).await);
    }
}

#[tokio::test]
async fn role_matching_is_exact_and_case_sensitive() {
    let harness = roles_any(&["admin"]);
    harness.assert_passes(bearer(&with_roles(&["admin"]))).await;
    for near_miss in [
        "Admin",
        "ADMIN",
        "admins",
        "adm",
        "administrator",
        "sysadmin",
    ] {
        let answer = harness.rejected(bearer(&with_roles(&[near_miss]))).await;
        assert_insufficient_role(&answer);
    }
    // Roles are not scopes, nor the other way round.
    assert_insufficient_role(&harness.rejected(bearer(&scoped("admin"))).await);
    let scopes = scopes_any(&["admin"]);
    assert_insufficient_scope(
        &scopes.rejected(bearer(&with_roles(&["admin"]))).await,
        "admin",
    );
}

// ---------------------------------------------------------------------------------------------
// The 403 challenge
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_scope_challenge_lists_the_required_scopes_in_order() {
    for (required, listed) in [
        (&["items:read"][..], "items:read"),
        (&["b", "a"], "b a"),
        (
            &["items:write", "items:read", "profile"],
            "items:write items:read profile",
        ),
    ] {
        for harness in [scopes_any(required), scopes_all(required)] {
            let answer = harness.rejected(bearer(&scoped("unrelated"))).await;
            assert_insufficient_scope(&answer, listed);
        }
    }
}

#[tokio::test]
async fn the_realm_comes_first_in_the_challenge() {
    let harness = Harness::behind_bearer(
        RequireScopeLayer::all(["items:read"])
            .unwrap()
            .realm("shop")
            .unwrap(),
    );
    let answer = harness.rejected(bearer(&scoped("profile"))).await;
    assert_eq!(
        answer.challenge(),
        Some(
            r#"Bearer realm="shop", error="insufficient_scope", error_description="insufficient scope", scope="items:read""#
        )
    );
    harness.assert_passes(bearer(&scoped("items:read"))).await;

    let roles = Harness::behind_bearer(
        RequireRoleLayer::any(["admin"])
            .unwrap()
            .realm("shop")
            .unwrap(),
    );
    let answer = roles.rejected(bearer(&with_roles(&["user"]))).await;
    assert_eq!(
        answer.challenge(),
        Some(
            r#"Bearer realm="shop", error="insufficient_scope", error_description="insufficient scope""#
        )
    );
    roles.assert_passes(bearer(&with_roles(&["admin"]))).await;
}

#[tokio::test]
async fn a_hook_on_a_require_layer_sees_insufficient_scope() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let layer = RequireScopeLayer::any(["items:read"])
        .unwrap()
        .on_rejection(move |rejection: Rejection| {
            record
                .lock()
                .unwrap()
                .push((rejection.error().kind(), rejection.status()));
            Response::builder()
                .status(StatusCode::NOT_FOUND)
                .body(Bytes::from_static(b"nothing here"))
                .unwrap()
        });
    let harness = Harness::behind_bearer(layer);
    let answer = harness.rejected(bearer(&scoped("profile"))).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.text(), "nothing here");
    assert!(answer.challenge().is_none());
    assert_eq!(answer.kind(), Some(ErrorKind::InsufficientScope));
    harness.assert_passes(bearer(&scoped("items:read"))).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [(ErrorKind::InsufficientScope, StatusCode::FORBIDDEN)]
    );
}

// ---------------------------------------------------------------------------------------------
// Role hierarchy
// ---------------------------------------------------------------------------------------------

fn staff() -> RoleHierarchy {
    RoleHierarchy::new()
        .grant("admin", ["moderator"])
        .grant("moderator", ["user"])
}

fn roles_any_in(roles: &[&str], hierarchy: &RoleHierarchy) -> Harness {
    Harness::behind_bearer(RequireRoleLayer::any(roles).unwrap().hierarchy(hierarchy))
}

#[tokio::test]
async fn a_higher_role_passes_a_lower_route_transitively() {
    let user_route = roles_any_in(&["user"], &staff());
    for role in ["user", "moderator", "admin"] {
        user_route.assert_passes(bearer(&with_roles(&[role]))).await;
    }
    for role in ["guest", "Admin", "users"] {
        assert_insufficient_role(&user_route.rejected(bearer(&with_roles(&[role]))).await);
    }
    assert_insufficient_role(&user_route.rejected(bearer(&with_roles(&[]))).await);
}

#[tokio::test]
async fn a_lower_role_fails_a_higher_route() {
    let admin_route = roles_any_in(&["admin"], &staff());
    admin_route
        .assert_passes(bearer(&with_roles(&["admin"])))
        .await;
    for roles in [&["user"][..], &["moderator"], &["user", "moderator"]] {
        assert_insufficient_role(&admin_route.rejected(bearer(&with_roles(roles))).await);
    }
    let moderator_route = roles_any_in(&["moderator"], &staff());
    moderator_route
        .assert_passes(bearer(&with_roles(&["admin"])))
        .await;
    moderator_route
        .assert_passes(bearer(&with_roles(&["moderator"])))
        .await;
    assert_insufficient_role(
        &moderator_route
            .rejected(bearer(&with_roles(&["user"])))
            .await,
    );
}

#[tokio::test]
async fn without_the_hierarchy_an_admin_is_not_a_user() {
    let harness = roles_any(&["user"]);
    assert_insufficient_role(&harness.rejected(bearer(&with_roles(&["admin"]))).await);
    harness.assert_passes(bearer(&with_roles(&["user"]))).await;
}

#[tokio::test]
async fn all_roles_through_the_hierarchy() {
    let hierarchy = staff().grant("auditor", ["reader"]);
    let harness = Harness::behind_bearer(
        RequireRoleLayer::all(["user", "reader"])
            .unwrap()
            .hierarchy(&hierarchy),
    );
    harness
        .assert_passes(bearer(&with_roles(&["admin", "auditor"])))
        .await;
    harness
        .assert_passes(bearer(&with_roles(&["user", "reader"])))
        .await;
    for roles in [&["admin"][..], &["auditor"], &["moderator", "user"]] {
        assert_insufficient_role(&harness.rejected(bearer(&with_roles(roles))).await);
    }
}

#[tokio::test]
async fn long_chains_and_repeated_grants_resolve() {
    let chain = RoleHierarchy::new()
        .grant("r0", ["r1"])
        .grant("r1", ["r2"])
        .grant("r2", ["r3"])
        .grant("r3", ["r4"])
        .grant("r4", ["r5"])
        .grant("owner", ["billing"])
        .grant("owner", ["r0"]);
    let harness = roles_any_in(&["r5"], &chain);
    for role in ["r5", "r4", "r2", "r0", "owner"] {
        harness.assert_passes(bearer(&with_roles(&[role]))).await;
    }
    assert_insufficient_role(&harness.rejected(bearer(&with_roles(&["billing"]))).await);
    let billing = roles_any_in(&["billing"], &chain);
    billing.assert_passes(bearer(&with_roles(&["owner"]))).await;
    assert_insufficient_role(&billing.rejected(bearer(&with_roles(&["r0"]))).await);
}

#[tokio::test]
async fn cycles_terminate_and_make_their_roles_equivalent() {
    let cycle = RoleHierarchy::new()
        .grant("a", ["b"])
        .grant("b", ["c"])
        .grant("c", ["a"])
        .grant("self", ["self"]);
    for required in ["a", "b", "c"] {
        let harness = roles_any_in(&[required], &cycle);
        for role in ["a", "b", "c"] {
            harness.assert_passes(bearer(&with_roles(&[role]))).await;
        }
        assert_insufficient_role(&harness.rejected(bearer(&with_roles(&["d"]))).await);
        assert_insufficient_role(&harness.rejected(bearer(&with_roles(&["self"]))).await);
    }
    let harness = roles_any_in(&["self"], &cycle);
    harness.assert_passes(bearer(&with_roles(&["self"]))).await;
    assert_insufficient_role(&harness.rejected(bearer(&with_roles(&["a"]))).await);
}

// ---------------------------------------------------------------------------------------------
// Layer-order mistakes
// ---------------------------------------------------------------------------------------------

/// Headers an attacker (or a confused proxy) might send to claim an identity.
fn spoofed(token: &str) -> Request<String> {
    Request::builder()
        .uri("/items")
        .header("x-user", "admin")
        .header("x-user-id", "1")
        .header("x-roles", "admin")
        .header("x-scopes", "items:read items:write")
        .header("x-scope", "items:read")
        .header("x-forwarded-user", "admin")
        .header(
            "x-jwt-claims",
            r#"{"roles":["admin"],"scope":"items:read"}"#,
        )
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .unwrap()
}

#[tokio::test]
async fn require_without_bearer_auth_is_401_and_ignores_identity_headers() {
    let full = token(Some("items:read"), &["admin"]);
    let scopes =
        Harness::build(|inner| RequireScopeLayer::any(["items:read"]).unwrap().layer(inner));
    let roles = Harness::build(|inner| RequireRoleLayer::any(["admin"]).unwrap().layer(inner));
    for harness in [&scopes, &roles] {
        assert_missing(&harness.rejected(anonymous()).await);
        // A valid token that carries everything: never verified, never trusted, never 403.
        assert_missing(&harness.rejected(bearer(&full)).await);
        assert_missing(&harness.rejected(spoofed(&full)).await);
    }
    // Positive control: the same layers pass this token once BearerAuth is in front.
    scopes_any(&["items:read"])
        .assert_passes(spoofed(&full))
        .await;
    roles_any(&["admin"]).assert_passes(spoofed(&full)).await;
}

#[tokio::test]
async fn require_in_front_of_bearer_auth_is_401() {
    let full = token(Some("items:read"), &["admin"]);
    let harness = Harness::build(|inner| {
        ServiceBuilder::new()
            .layer(RequireScopeLayer::any(["items:read"]).unwrap())
            .layer(RequireRoleLayer::any(["admin"]).unwrap())
            .layer(BearerAuthLayer::new(common::verifier()))
            .service(inner)
    });
    assert_missing(&harness.rejected(bearer(&full)).await);
    assert_missing(&harness.rejected(spoofed(&full)).await);
    // The right order passes.
    let right = Harness::build(|inner| {
        ServiceBuilder::new()
            .layer(BearerAuthLayer::new(common::verifier()))
            .layer(RequireRoleLayer::any(["admin"]).unwrap())
            .layer(RequireScopeLayer::any(["items:read"]).unwrap())
            .service(inner)
    });
    right.assert_passes(bearer(&full)).await;
}

#[tokio::test]
async fn spoofed_identity_headers_do_not_help_a_verified_token() {
    let harness = scopes_any(&["items:read"]);
    // The token's own claims decide; the headers say admin with every scope.
    let answer = harness.rejected(spoofed(&scoped("profile"))).await;
    assert_insufficient_scope(&answer, "items:read");
    let roles = roles_any(&["admin"]);
    assert_insufficient_role(&roles.rejected(spoofed(&with_roles(&["user"]))).await);
    roles.assert_passes(spoofed(&with_roles(&["admin"]))).await;
}

#[tokio::test]
async fn an_expired_token_is_401_never_403() {
    let scopes = scopes_any(&["items:read"]);
    let roles = roles_any(&["admin"]);
    for harness in [&scopes, &roles] {
        // With the scope and role, and without: the token is the problem, not the permission.
        for token in [
            expired("items:read", &["admin"]),
            expired("profile", &["user"]),
        ] {
            let answer = harness.rejected(bearer(&token)).await;
            assert_invalid_token(&answer, ErrorKind::Expired);
            assert_eq!(
                answer.challenge(),
                Some(r#"Bearer error="invalid_token", error_description="token expired""#)
            );
        }
    }
    // A valid token lacking the scope is the one that gets 403.
    assert_insufficient_scope(
        &scopes.rejected(bearer(&scoped("profile"))).await,
        "items:read",
    );
    assert_insufficient_role(&roles.rejected(bearer(&with_roles(&["user"]))).await);
    scopes.assert_passes(bearer(&scoped("items:read"))).await;
    roles.assert_passes(bearer(&with_roles(&["admin"]))).await;
}

#[tokio::test]
async fn malformed_credentials_on_a_scoped_route_are_400() {
    let harness = scopes_any(&["items:read"]);
    let answer = harness
        .rejected(
            Request::builder()
                .header("authorization", "Bearer a b")
                .body(String::new())
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.kind(), Some(ErrorKind::InvalidRequest));
    assert_missing(&harness.rejected(anonymous()).await);
    harness.assert_passes(bearer(&scoped("items:read"))).await;
}

#[tokio::test]
async fn optional_bearer_auth_then_require_rejects_anonymous_requests_with_401() {
    let harness = Harness::build(|inner| {
        ServiceBuilder::new()
            .layer(BearerAuthLayer::new(common::verifier()).optional())
            .layer(RequireRoleLayer::any(["user"]).unwrap())
            .layer(RequireScopeLayer::any(["items:read"]).unwrap())
            .service(inner)
    });
    assert_missing(&harness.rejected(anonymous()).await);
    assert_insufficient_scope(
        &harness
            .rejected(bearer(&token(Some("profile"), &["user"])))
            .await,
        "items:read",
    );
    assert_insufficient_role(
        &harness
            .rejected(bearer(&token(Some("items:read"), &["guest"])))
            .await,
    );
    assert_invalid_token(
        &harness
            .rejected(bearer(&expired("items:read", &["user"])))
            .await,
        ErrorKind::Expired,
    );
    harness
        .assert_passes(bearer(&token(Some("items:read"), &["user"])))
        .await;

    // Only the scope check behind an optional layer: same 401.
    let scopes_only = Harness::build(|inner| {
        ServiceBuilder::new()
            .layer(BearerAuthLayer::new(common::verifier()).optional())
            .layer(RequireScopeLayer::any(["items:read"]).unwrap())
            .service(inner)
    });
    assert_missing(&scopes_only.rejected(anonymous()).await);
    scopes_only
        .assert_passes(bearer(&scoped("items:read")))
        .await;
}

#[tokio::test]
async fn claims_planted_before_an_optional_bearer_auth_do_not_satisfy_require() {
    let planted = common::verifier()
        .verify(&token(Some("items:read"), &["admin"]))
        .unwrap();
    let harness = Harness::build(move |inner| {
        ServiceBuilder::new()
            .map_request(move |mut request: Request<String>| {
                request.extensions_mut().insert(planted.clone());
                request
            })
            .layer(BearerAuthLayer::new(common::verifier()).optional())
            .layer(RequireScopeLayer::any(["items:read"]).unwrap())
            .service(inner)
    });
    assert_missing(&harness.rejected(anonymous()).await);
    // Authenticated: the token's claims, not the planted ones, decide.
    assert_insufficient_scope(
        &harness.rejected(bearer(&scoped("profile"))).await,
        "items:read",
    );
    harness.assert_passes(bearer(&scoped("items:read"))).await;
}

// ---------------------------------------------------------------------------------------------
// The tower contract
// ---------------------------------------------------------------------------------------------

type MockRequest = Request<String>;
type MockResponse = Response<String>;

/// A request carrying claims, as `BearerAuth` would pass it on.
fn with_claims(token: &str) -> Request<String> {
    let mut request = anonymous();
    request
        .extensions_mut()
        .insert(common::verifier().verify(token).unwrap());
    request
}

#[tokio::test]
async fn poll_ready_passes_through_require_scope() {
    let (mut service, mut handle) = mock::spawn_layer::<MockRequest, MockResponse, _>(
        RequireScopeLayer::any(["items:read"]).unwrap(),
    );
    handle.allow(0);
    assert!(service.poll_ready::<MockRequest>().is_pending());
    handle.allow(1);
    assert!(service.is_woken());
    assert!(matches!(
        service.poll_ready::<MockRequest>(),
        Poll::Ready(Ok(()))
    ));

    // Rejected (no claims, then short of the scope): nothing is forwarded.
    assert_missing(&answer(service.call(anonymous()).await.unwrap()).await);
    let denied = answer(service.call(with_claims(&scoped("profile"))).await.unwrap()).await;
    assert_insufficient_scope(&denied, "items:read");
    assert!(handle.poll_request().is_pending());

    // Passed: the mock gets the request with its claims, and its answer comes back.
    let response = service.call(with_claims(&scoped("items:read")));
    let (request, send) = handle.next_request().await.unwrap();
    assert!(
        request
            .extensions()
            .get::<Claims>()
            .unwrap()
            .has_scope("items:read")
    );
    send.send_response(Response::new(String::from("from the mock")));
    let ok = answer(response.await.unwrap()).await;
    assert_eq!(
        (ok.status, ok.text().as_str()),
        (StatusCode::OK, "from the mock")
    );
    assert!(service.poll_ready::<MockRequest>().is_pending());

    // Inner errors pass through unchanged.
    handle.send_error("inner not ready");
    match service.poll_ready::<MockRequest>() {
        Poll::Ready(Err(error)) => assert_eq!(error.to_string(), "inner not ready"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn poll_ready_passes_through_require_role() {
    let (mut service, mut handle) = mock::spawn_layer::<MockRequest, MockResponse, _>(
        RequireRoleLayer::any(["user"]).unwrap().hierarchy(&staff()),
    );
    handle.allow(0);
    assert!(service.poll_ready::<MockRequest>().is_pending());
    handle.allow(1);
    assert!(service.is_woken());
    assert!(service.poll_ready::<MockRequest>().is_ready());
    assert_insufficient_role(
        &answer(
            service
                .call(with_claims(&with_roles(&["guest"])))
                .await
                .unwrap(),
        )
        .await,
    );
    let response = service.call(with_claims(&with_roles(&["admin"])));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error("inner failure");
    assert_eq!(response.await.unwrap_err().to_string(), "inner failure");
}

#[tokio::test]
async fn poll_ready_passes_through_the_full_stack() {
    let stack = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(common::verifier()))
        .layer(RequireRoleLayer::any(["user"]).unwrap().hierarchy(&staff()))
        .layer(RequireScopeLayer::all(["items:read"]).unwrap());
    let (mut service, mut handle) = mock::spawn_layer::<MockRequest, MockResponse, _>(stack);
    handle.allow(0);
    assert!(service.poll_ready::<MockRequest>().is_pending());
    handle.allow(1);
    assert!(service.is_woken());
    assert!(matches!(
        service.poll_ready::<MockRequest>(),
        Poll::Ready(Ok(()))
    ));

    // Each layer rejects on its own without forwarding.
    assert_missing(&answer(service.call(anonymous()).await.unwrap()).await);
    assert_invalid_token(
        &answer(
            service
                .call(bearer(&expired("items:read", &["admin"])))
                .await
                .unwrap(),
        )
        .await,
        ErrorKind::Expired,
    );
    assert_insufficient_role(
        &answer(
            service
                .call(bearer(&token(Some("items:read"), &["guest"])))
                .await
                .unwrap(),
        )
        .await,
    );
    assert_insufficient_scope(
        &answer(
            service
                .call(bearer(&token(Some("profile"), &["admin"])))
                .await
                .unwrap(),
        )
        .await,
        "items:read",
    );
    assert!(handle.poll_request().is_pending());

    let response = service.call(bearer(&token(Some("items:read"), &["admin"])));
    let (request, send) = handle.next_request().await.unwrap();
    assert_eq!(
        request.extensions().get::<Claims>().unwrap().subject(),
        Some("user-1")
    );
    send.send_response(Response::new(String::from("through three layers")));
    let ok = answer(response.await.unwrap()).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.text(), "through three layers");
    assert!(service.poll_ready::<MockRequest>().is_pending());

    handle.send_error("overloaded");
    match service.poll_ready::<MockRequest>() {
        Poll::Ready(Err(error)) => assert_eq!(error.to_string(), "overloaded"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn layers_and_services_clone() {
    let layer = RequireScopeLayer::any(["items:read"]).unwrap();
    let service = layer.clone().layer(Inner::default());
    let mut copy = service.clone();
    let ok = copy
        .ready()
        .await
        .unwrap()
        .call(with_claims(&scoped("items:read")))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let denied = service.oneshot(with_claims(&scoped("x"))).await.unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let debug = format!("{layer:?}");
    assert!(debug.contains("items:read"), "{debug}");
    let roles = RequireRoleLayer::all(["admin"]).unwrap();
    assert!(format!("{:?}", roles.clone()).contains("admin"));
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

#[test]
fn an_empty_list_is_refused() {
    let none: [&str; 0] = [];
    assert!(matches!(
        RequireScopeLayer::any(none),
        Err(ConfigError::InvalidSetting(_))
    ));
    assert!(matches!(
        RequireScopeLayer::all(Vec::<String>::new()),
        Err(ConfigError::InvalidSetting(_))
    ));
    assert!(matches!(
        RequireRoleLayer::any(none),
        Err(ConfigError::InvalidSetting(_))
    ));
    assert!(matches!(
        RequireRoleLayer::all(Vec::<String>::new()),
        Err(ConfigError::InvalidSetting(_))
    ));
}

#[test]
fn values_that_could_break_the_challenge_are_refused() {
    // Scopes are named in the challenge: they must be RFC 6749 scope tokens.
    for bad in [
        "",
        "items read",
        " items:read",
        "items:read ",
        "items\"read",
        "\"",
        "items\\read",
        "caf\u{e9}",
        "items:r\u{e9}ad",
        "\u{1f600}",
        "tab\there",
        "line\nbreak",
        "nul\0",
        "del\u{7f}",
    ] {
        let label = format!("{bad:?}");
        assert!(
            matches!(
                RequireScopeLayer::any([bad]),
                Err(ConfigError::InvalidSetting(_))
            ),
            "scope any {label}"
        );
        assert!(
            matches!(
                RequireScopeLayer::all(["items:read", bad]),
                Err(ConfigError::InvalidSetting(_))
            ),
            "scope all {label}"
        );
    }
    // Roles never reach a header: only empty names and control characters are refused, so
    // directory groups such as "Domain Admins" can be required.
    for bad in ["", "tab\there", "line\nbreak", "nul\0", "del\u{7f}"] {
        let label = format!("{bad:?}");
        assert!(
            matches!(
                RequireRoleLayer::any([bad]),
                Err(ConfigError::InvalidSetting(_))
            ),
            "role any {label}"
        );
        assert!(
            matches!(
                RequireRoleLayer::all(["admin", bad]),
                Err(ConfigError::InvalidSetting(_))
            ),
            "role all {label}"
        );
    }
    for role in ["Domain Admins", "caf\u{e9}", "items\"read", "\u{1f600}"] {
        assert!(RequireRoleLayer::any([role]).is_ok(), "{role:?}");
    }
    for good in [
        "items:read",
        "https://api.example/items.read",
        "a",
        "!#$%&'()*+,-./:;<=>?@[]^_`{|}~",
    ] {
        assert!(RequireScopeLayer::any([good]).is_ok(), "{good}");
        assert!(RequireScopeLayer::all([good, "x"]).is_ok(), "{good}");
        assert!(RequireRoleLayer::any([good]).is_ok(), "{good}");
        assert!(RequireRoleLayer::all([good]).is_ok(), "{good}");
    }
}

#[tokio::test]
async fn directory_group_names_with_spaces_are_matched_exactly() {
    let harness = roles_any(&["Domain Admins"]);
    harness
        .assert_passes(bearer(&with_roles(&["Domain Admins"])))
        .await;
    for other in [
        &["Domain  Admins"][..],
        &["domain admins"],
        &["Domain"],
        &["Admins"],
    ] {
        assert_insufficient_role(&harness.rejected(bearer(&with_roles(other))).await);
    }
}

#[test]
fn a_realm_that_could_break_the_challenge_is_refused() {
    for bad in ["", "a\"b", "a\\b", "line\nbreak", "caf\u{e9}"] {
        let scope = RequireScopeLayer::any(["items:read"]).unwrap().realm(bad);
        assert!(
            matches!(scope, Err(ConfigError::InvalidSetting(_))),
            "{bad:?}"
        );
        let role = RequireRoleLayer::any(["admin"]).unwrap().realm(bad);
        assert!(
            matches!(role, Err(ConfigError::InvalidSetting(_))),
            "{bad:?}"
        );
    }
    assert!(
        RequireScopeLayer::any(["items:read"])
            .unwrap()
            .realm("shop")
            .is_ok()
    );
}

#[tokio::test]
async fn a_valid_scope_with_unusual_characters_is_quoted_safely() {
    let scope = "https://api.example/items.read";
    let harness = scopes_any(&[scope, "a!#[]"]);
    let answer = harness.rejected(bearer(&scoped("profile"))).await;
    assert_insufficient_scope(&answer, "https://api.example/items.read a!#[]");
    // The header value round-trips through the `http` types unchanged.
    let value = HeaderValue::from_str(answer.challenge().unwrap()).unwrap();
    assert_eq!(value, answer.headers[WWW_AUTHENTICATE]);
    harness.assert_passes(bearer(&scoped(scope))).await;
}

/// The services' own constructors and accessors, as tower-http's services have them: the same
/// checks as the layers build, and the inner service within reach.
#[tokio::test]
async fn the_services_are_built_and_taken_apart_like_tower_https() {
    let inner = Inner::default();
    let bearer_layer = BearerAuthLayer::new(common::verifier());
    let scope = RequireScope::all(inner.clone(), ["items:read", "items:write"]).unwrap();
    let mut scope = bearer_layer.layer(scope);
    let granted = answer(
        scope
            .clone()
            .oneshot(bearer(&scoped("items:read items:write")))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(granted.status, StatusCode::OK);
    let short = answer(
        scope
            .clone()
            .oneshot(bearer(&scoped("items:read")))
            .await
            .unwrap(),
    )
    .await;
    assert_insufficient_scope(&short, "items:read items:write");
    assert_eq!(scope.get_mut().get_mut().take().len(), 1);

    let role = RequireRole::any(inner.clone(), ["admin", "auditor"]).unwrap();
    assert!(role.get_ref().take().is_empty());
    let role = bearer_layer.layer(role);
    let admitted = answer(
        role.clone()
            .oneshot(bearer(&with_roles(&["auditor"])))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(admitted.status, StatusCode::OK);
    let refused = answer(
        role.clone()
            .oneshot(bearer(&with_roles(&["user"])))
            .await
            .unwrap(),
    )
    .await;
    assert_insufficient_role(&refused);
    let all = RequireRole::all(Inner::default(), ["admin", "auditor"]).unwrap();
    let refused = answer(
        bearer_layer
            .layer(all)
            .oneshot(bearer(&with_roles(&["admin"])))
            .await
            .unwrap(),
    )
    .await;
    assert_insufficient_role(&refused);
    assert_eq!(role.into_inner().into_inner().take().len(), 1);

    // The same checks on the values as the layers make.
    assert!(RequireScope::any(Inner::default(), ["has space"]).is_err());
    assert!(RequireRole::all(Inner::default(), Vec::<&str>::new()).is_err());
}
