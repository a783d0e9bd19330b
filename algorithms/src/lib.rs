//! The surveyed training methods, one module per paper (see shared METHODS.md), and the
//! machinery `cargo xtask repro` runs them with.
//!
//! * [`convex_relu`]: [161] global training of two-layer ReLU networks through their convex
//!   reformulation (ADMM, gated-ReLU FISTA, robust adversarial training, recovery, baseline).
//! * [`repro`]: the registry of runnable experiments; [`report`]: their markdown reports and SVG
//!   figures.

pub mod classifier;
pub mod continual;
pub mod convex_relu;
pub mod convex_relu_demo;
pub mod decoupled_wd;
pub mod harness;
pub mod lion_box;
pub mod logit_masking;
pub mod report;
pub mod repro;
pub mod softmax_masking;
