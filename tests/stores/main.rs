//! The shared stores against real servers: the Redis stores on a `redis-server` each test
//! starts itself, and the check of what that server keeps.
#![cfg(any(feature = "redis", feature = "sqlite"))]
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod conformance;
#[cfg(feature = "redis")]
mod durability;
#[cfg(feature = "redis")]
mod redis;
#[cfg(all(feature = "sqlite", feature = "postgres"))]
mod sql;
