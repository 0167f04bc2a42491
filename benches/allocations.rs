//! What an authenticated request costs beside verifying: heap allocations and bytes per
//! request, counted by a global allocator, through an axum `Router` driven in process (no
//! network, no runtime: every handler here is ready at once), for:
//!
//! - `none`: the route alone (the baseline every other row is compared with);
//! - `bearer/hs256`: `BearerAuthLayer` (HS256) on the route;
//! - `cached/hs256`: the same with the verification cache on, the token already in it (a hit);
//! - `scope/hs256`: `RequireScopeLayer` after a cached `BearerAuthLayer`;
//! - `extractor/hs256`: a cached `BearerAuthLayer` and a handler taking the axum `Claims`
//!   extractor;
//! - `around/*`: the same four, the layers around the whole `Router` (tower's `Layer::layer`)
//!   rather than added to the route by axum, which boxes each route layer, its future and a
//!   response body of another type: what is left beside `none` is what the layers allocate.
//!
//! Every request carries the same `Authorization` header, built afresh each time, so the
//! baseline pays for building it too. `cargo bench --bench allocations` prints the table;
//! `python3 benches/instructions.py` runs each scenario under callgrind and prints
//! instructions per request (`ONLY=<scenario> ITERS=<n>` makes this binary run one scenario
//! silently, for that script). Counts do not depend on the machine, so `tests/allocations.rs`
//! includes this file and holds the layer to them ([`check`]).
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
use http::{Request, Response, StatusCode};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tower::{Layer, Service, ServiceExt};
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

/// Every scenario, in the order of the table.
const SCENARIOS: [&str; 9] = [
    "none",
    "bearer/hs256",
    "cached/hs256",
    "scope/hs256",
    "extractor/hs256",
    "around/bearer",
    "around/cached",
    "around/scope",
    "around/extractor",
];

async fn ok() -> &'static str {
    "ok"
}

async fn with_claims(claims: Claims) -> &'static str {
    black_box(claims.subject().is_some());
    "ok"
}

/// Allocations and bytes per request of one scenario over `iterations` requests.
fn run(scenario: &str, header: &str, iterations: u64) -> (f64, f64) {
    let bearer = |cache| BearerAuthLayer::new(verifier(cache));
    let scope = || RequireScopeLayer::all(["items:read"]).unwrap();
    let route = || Router::new().route("/", get(ok));
    let extracting = || Router::new().route("/", get(with_claims));
    match scenario {
        "none" => count(route(), header, iterations),
        // Each layer as axum applies it to the route (`route_layer`), boxing it.
        "bearer/hs256" => count(route().route_layer(bearer(false)), header, iterations),
        "cached/hs256" => count(route().route_layer(bearer(true)), header, iterations),
        "scope/hs256" => count(
            route().route_layer(scope()).route_layer(bearer(true)),
            header,
            iterations,
        ),
        "extractor/hs256" => count(extracting().route_layer(bearer(true)), header, iterations),
        // The same layers around the whole router (tower's `Layer::layer`): no boxing, so
        // what is left beside `none` is what the layers themselves allocate.
        "around/bearer" => count(bearer(false).layer(route()), header, iterations),
        "around/cached" => count(bearer(true).layer(route()), header, iterations),
        "around/scope" => count(
            bearer(true).layer(scope().layer(route())),
            header,
            iterations,
        ),
        "around/extractor" => count(bearer(true).layer(extracting()), header, iterations),
        other => panic!("no scenario {other}"),
    }
}

/// One request through `service`, answered 200.
fn request<S, B>(service: &mut S, header: &str)
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let request = Request::get("/")
        .header(AUTHORIZATION, header)
        .body(Body::empty())
        .unwrap();
    let service = ready(ServiceExt::<Request<Body>>::ready(service)).unwrap();
    let response = ready(service.call(request)).unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    drop(black_box(response));
}

/// Allocations and bytes per request over `iterations` requests (after a warm-up).
fn count<S, B>(mut service: S, header: &str, iterations: u64) -> (f64, f64)
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..100 {
        request(&mut service, header);
    }
    let (allocations, bytes) = totals();
    for _ in 0..iterations {
        request(&mut service, header);
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
        run(&only, &header, iterations);
        return;
    }
    println!("allocations per request (axum Router in process, HS256, 10 000 requests each)");
    println!(
        "{:<18} {:>12} {:>8} {:>14} {:>8}",
        "scenario", "allocations", "bytes", "+allocations", "+bytes"
    );
    let rows = measure(&header, 10_000);
    let none = row(&rows, "none");
    for &(name, allocations, bytes) in &rows {
        println!(
            "{name:<18} {allocations:>12.1} {bytes:>8.0} {:>14.1} {:>8.0}",
            allocations - none.0,
            bytes - none.1,
        );
    }
}

/// Allocations and bytes per request of every scenario, `iterations` requests each.
fn measure(header: &str, iterations: u64) -> Vec<(&'static str, f64, f64)> {
    SCENARIOS
        .into_iter()
        .map(|name| {
            let (allocations, bytes) = run(name, header, iterations);
            (name, allocations, bytes)
        })
        .collect()
}

fn row(rows: &[(&'static str, f64, f64)], name: &str) -> (f64, f64) {
    rows.iter()
        .find(|row| row.0 == name)
        .map(|&(_, allocations, bytes)| (allocations, bytes))
        .unwrap_or_else(|| panic!("no scenario {name}"))
}

/// The allocations of this token's claims themselves: `iss`, `sub`, `jti`, the scopes, the
/// audience (a list and its one string), the roles (a list and its two strings), and the
/// shared block that holds them.
const CLAIMS_OWN: f64 = 10.0;

/// Holds the layers to their allocation budget per request (counts, not times: they do not
/// depend on the machine). Panics with the table when one is over.
#[allow(dead_code)] // the bench binary prints; `tests/allocations` checks
pub(crate) fn check() {
    let header = format!("Bearer {}", token());
    let rows = measure(&header, 500);
    let table = format!("{rows:?}");
    let allocations = |name| row(&rows, name).0;
    let near = |a: f64, b: f64| (a - b).abs() < 0.05;
    let none = allocations("none");
    // A cache hit: the claims are shared with the cache; the one allocation is the box the
    // request extensions keep them in.
    let cached = allocations("around/cached");
    assert!(near(cached - none, 1.0), "a cache hit allocates: {table}");
    // `RequireScope` reads the stored claims, and the `Claims` extractor hands out another
    // handle on them: nothing, around the router or as axum's route layers.
    assert!(
        near(allocations("around/scope"), cached),
        "RequireScope allocates: {table}"
    );
    assert!(
        near(allocations("around/extractor"), cached),
        "the extractor allocates: {table}"
    );
    assert!(
        near(allocations("extractor/hs256"), allocations("cached/hs256")),
        "the extractor allocates: {table}"
    );
    // A miss (no cache): the claims' own allocations and the extensions' box, nothing more.
    assert!(
        near(allocations("around/bearer") - none, CLAIMS_OWN + 1.0),
        "a verification allocates: {table}"
    );
}
