//! The surveyed training methods, one module per paper (see shared METHODS.md), and the
//! machinery `cargo xtask repro` runs them with.
//!
//! * [`convex_relu`]: [161] global training of two-layer ReLU networks through their convex
//!   reformulation (ADMM, gated-ReLU FISTA, robust adversarial training, recovery, baseline).
//! * [`stability_proxies`]: [28] small-scale proxies for transformer instabilities (qk-LN, z-loss).
//! * [`saits`]: [427] SAITS diagonally-masked self-attention imputation.
//! * [`lion_box`] [157], [`decoupled_wd`] [400], [`convex_relu_demo`] [161],
//!   [`softmax_masking`] [369], [`logit_masking`] [52]: the optimizer and continual-learning
//!   demos, on [`classifier`] and [`continual`] (a small MLP, replay buffer, masked training step).
//! * [`harness`]: seeded synthetic data (H1 blobs and blurry streams, H2 token streams,
//!   correlated time series).
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
pub mod saits;
pub mod softmax_masking;
pub mod stability_proxies;
