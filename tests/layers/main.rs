//! The tower layers in-process, under every body type they meet: `BearerAuth` (with its
//! revocation checks), `RequireScope` / `RequireRole`, gRPC answers, `RateLimitLogin`, and the
//! axum, hyper and tonic examples over loopback.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod bearer;
#[cfg(feature = "axum")]
mod examples;
mod grpc;
#[cfg(feature = "rate-limit")]
mod ratelimit;
mod require;
mod revocation;
