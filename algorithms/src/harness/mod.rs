//! Seeded synthetic data sets shared by the methods (shared METHODS.md, "Shared synthetic
//! harnesses" H1-H7). Every generator is a pure function of its configuration and seed.

pub mod timeseries;
pub mod tokens;
