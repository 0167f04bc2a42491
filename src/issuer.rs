//! Token issuing (being written).
