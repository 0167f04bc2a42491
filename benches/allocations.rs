//! What an authenticated request costs beside verifying: heap allocations and bytes per
//! request, counted by a global allocator, through an axum `Router` driven in process (no
//! network, no runtime: every handler here is ready at once), for:
//!
//! - `none`: the route alone (the baseline every other row is compared with);
//! - `bearer/hs256`: `BearerAuthLayer` (HS256) on the route;
//! - `cached/hs256`: the same with the verification cache on, the token already in it (a hit);
//! - `scope/hs256`: `RequireScopeLayer` after a cached `BearerAuthLayer`;
//! - `extractor/hs256`: a cached `BearerAuthLayer` and a handler taking the axum `Claims`
//!   extractor.
//!
//! Every request carries the same `Authorization` header, built afresh each time, so the
//! baseline pays for building it too. `cargo bench --bench allocations` prints the table;
//! `python3 benches/instructions.py` runs each scenario under callgrind and prints
//! instructions per request (`ONLY=<scenario> ITERS=<n>` makes this binary run one scenario
//! silently, for that script).
#![allow(clippy::unwrap_used, missing_docs)]

use std::alloc::System;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::header::AUTHORIZATION;
use http::{Request, StatusCode};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tower::{Service, ServiceExt};
use tower_jwt_auth::bearer::BearerAuthLayer;
use tower_jwt_auth::require::RequireScopeLayer;
use tower_jwt_auth::{Algorithm, Claims, KeySet, TokenSigner, Verifier};

/// Counts every allocation, reallocation and the bytes asked for.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations (reallocations included) and bytes allocated so far.
fn totals() -> (u64, u64) {
    let stats = GLOBAL.stats();
    let reallocated = u64::try_from(stats.bytes_reallocated.max(0)).unwrap();
    (
        (stats.allocations + stats.reallocations) as u64,
        stats.bytes_allocated as u64 + reallocated,
    )
}

const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "api.example.com";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// Polls a future that needs no reactor to completion.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

fn token() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "user-42", "aud": AUDIENCE, "exp": now + 3600, "iat": now,
        "nbf": now, "jti": "0123456789abcdef", "roles": ["user", "editor"],
        "scope": "items:read items:write profile",
    });
    TokenSigner::hmac(Algorithm::HS256, SECRET)
        .unwrap()
        .with_kid("key-1")
        .sign(&claims)
        .unwrap()
}

fn verifier(cache: bool) -> Verifier {
    let keys = KeySet::builder()
        .hmac(Some("key-1"), Algorithm::HS256, SECRET)
        .unwrap()
        .build()
        .unwrap();
    let mut builder = Verifier::builder(keys).issuer(ISSUER).audience(AUDIENCE);
    if cache {
        builder = builder.cache(10_000).unwrap();
    }
    builder.build().unwrap()
}

fn scenarios() -> Vec<(&'static str, Router)> {
    let ok = || async { "ok" };
    let bearer = |cache| BearerAuthLayer::new(verifier(cache));
    vec![
        ("none", Router::new().route("/", get(ok))),
        (
            "bearer/hs256",
            Router::new().route("/", get(ok)).route_layer(bearer(false)),
        ),
        (
            "cached/hs256",
            Router::new().route("/", get(ok)).route_layer(bearer(true)),
        ),
        (
            "scope/hs256",
            Router::new()
                .route("/", get(ok))
                .route_layer(RequireScopeLayer::all(["items:read"]).unwrap())
                .route_layer(bearer(true)),
        ),
        (
            "extractor/hs256",
            Router::new()
                .route(
                    "/",
                    get(|claims: Claims| async move {
                        black_box(claims.subject().is_some());
                        "ok"
                    }),
                )
                .route_layer(bearer(true)),
        ),
    ]
}

/// One request through `router`, answered 200.
fn request(router: &mut Router, header: &str) {
    let request = Request::get("/")
        .header(AUTHORIZATION, header)
        .body(Body::empty())
        .unwrap();
    let service = ready(ServiceExt::<Request<Body>>::ready(router)).unwrap();
    let response = ready(service.call(request)).unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    drop(black_box(response));
}

/// Allocations and bytes per request over `iterations` requests (after a warm-up).
fn count(router: &mut Router, header: &str, iterations: u64) -> (f64, f64) {
    for _ in 0..100 {
        request(router, header);
    }
    let (allocations, bytes) = totals();
    for _ in 0..iterations {
        request(router, header);
    }
    let (allocations_after, bytes_after) = totals();
    let per = |after: u64, before: u64| (after - before) as f64 / iterations as f64;
    (per(allocations_after, allocations), per(bytes_after, bytes))
}

fn main() {
    let header = format!("Bearer {}", token());
    // `ONLY=<scenario> ITERS=<n>`: that scenario, n requests, nothing printed (for callgrind).
    if let Ok(only) = std::env::var("ONLY") {
        let iterations: u64 = std::env::var("ITERS").map_or(1000, |n| n.parse().unwrap());
        let (_, mut router) = scenarios()
            .into_iter()
            .find(|(name, _)| *name == only)
            .unwrap_or_else(|| panic!("no scenario {only}"));
        request(&mut router, &header);
        for _ in 0..iterations {
            request(&mut router, &header);
        }
        return;
    }
    // `cargo bench` passes `--bench`; any other argument filters by name.
    let filter = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with("--"))
        .unwrap_or_default();
    println!("allocations per request (axum Router in process, HS256, 10 000 requests each)");
    println!(
        "{:<18} {:>12} {:>12} {:>16} {:>16}",
        "scenario", "allocations", "bytes", "+allocations", "+bytes"
    );
    let mut baseline = None;
    for (name, mut router) in scenarios() {
        if !name.contains(&filter) && name != "none" {
            continue;
        }
        let (allocations, bytes) = count(&mut router, &header, 10_000);
        let (base_allocations, base_bytes) = *baseline.get_or_insert((allocations, bytes));
        println!(
            "{name:<18} {allocations:>12.1} {bytes:>12.0} {:>16.1} {:>16.0}",
            allocations - base_allocations,
            bytes - base_bytes
        );
    }
}
