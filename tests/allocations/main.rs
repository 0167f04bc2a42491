//! The allocation budget of an authenticated request, held in a test: counts, unlike times,
//! are the same on every machine. The scenarios and the budget live in
//! `benches/allocations.rs`, which also prints them as a table.
#![cfg(feature = "axum")]

#[allow(dead_code)]
#[path = "../../benches/allocations.rs"]
mod allocations;

/// One test only: the counting allocator counts every thread of this binary.
#[test]
fn an_authenticated_request_allocates_within_its_budget() {
    allocations::check();
}
