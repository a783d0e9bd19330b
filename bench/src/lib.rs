//! Shared helpers for the criterion benchmarks in `benches/`, and the roofline report behind
//! `cargo xtask bench` ([`report`], run by the `bench-report` binary).

pub mod crit;
pub mod report;
