//! Observability: the events and counters of every rejection family.
//!
//! A binary of its own: `tracing` caches each event site's interest process-wide, so a test
//! that captures events with a subscriber of its thread only sees them reliably when no other
//! test in the process hits the same event sites without one (a site first reached on a thread
//! without a subscriber can be cached as uninteresting for everyone).
#![cfg(all(feature = "router", feature = "metrics"))]
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod observability;
