//! The surveyed training methods, one module per paper (see shared METHODS.md).
//!
//! * [`convex_relu`]: [161] global training of two-layer ReLU networks through their convex
//!   reformulation (ADMM, gated-ReLU FISTA, robust adversarial training, recovery, baseline).

pub mod convex_relu;
