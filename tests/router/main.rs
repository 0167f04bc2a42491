//! The login router and the example server: `AuthRouter` route by route, the example server
//! over loopback, its edge (connection timeouts and caps, security headers), login back-pressure
//! through the whole app, and the username and password normalisation rules over HTTP.
#![cfg(feature = "router")]
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

/// The example server (`cargo run --example server`), which `server` and `edge` run in-process.
#[cfg(all(feature = "sqlite", feature = "openapi", feature = "external"))]
#[path = "../../examples/server.rs"]
#[allow(dead_code, unreachable_pub)]
mod example;

mod accounts;
#[cfg(all(feature = "sqlite", feature = "openapi", feature = "external"))]
mod edge;
#[cfg(all(feature = "external", feature = "testing"))]
mod external;
mod login_backpressure;
mod mail;
mod router;
#[cfg(all(feature = "sqlite", feature = "openapi", feature = "external"))]
mod server;
mod usernames;
