//! The login router and the example server: `AuthRouter` route by route, the example server
//! over loopback, login back-pressure through the whole app, and the username and password
//! normalisation rules over HTTP.
#![cfg(feature = "router")]
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod login_backpressure;
mod router;
mod server;
mod usernames;
