//! The shared stores against real servers: the Redis stores on a `redis-server` each test
//! starts itself, and the check of what that server keeps.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod durability;
mod redis;
