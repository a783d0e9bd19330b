//! The surveyed training methods, one module per paper (see shared METHODS.md), and the
//! machinery `cargo xtask repro` runs them with.
//!
//! * [`convex_relu`]: [161] global training of two-layer ReLU networks through their convex
//!   reformulation (ADMM, gated-ReLU FISTA, robust adversarial training, recovery, baseline).
//! * [`stability_proxies`]: [28] small-scale proxies for transformer instabilities (qk-LN, z-loss).
//! * [`saits`]: [427] SAITS diagonally-masked self-attention imputation.
//! * [`harness`]: seeded synthetic data (H2 token streams, correlated time series).
//! * [`repro`]: the registry of runnable experiments; [`report`]: their markdown reports and SVG
//!   figures.

pub mod convex_relu;
pub mod harness;
pub mod report;
pub mod repro;
pub mod saits;
pub mod stability_proxies;
