//! The login router and the example server: `AuthRouter` route by route, the example server
//! over loopback, and login back-pressure through the whole app.
#![cfg(feature = "router")]
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod login_backpressure;
mod router;
mod server;
