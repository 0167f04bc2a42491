//! The shared stores against real servers: the Redis stores on a `redis-server` each test
//! starts itself.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod redis;
