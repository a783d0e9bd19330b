//! Modules, losses, optimizers and schedules. The modules arrive with issue 9.
//!
//! * [`optim`]: the optimizer API (parameter groups, `step`, checkpoints) over the fused
//!   update kernels of `kernels::optim`: AdamW with four weight-decay modes, Lion-κ, Signum,
//!   signSGD, SGD(W) and UPGD.
//! * [`schedule`]: learning-rate schedules as pure functions of the step.

pub mod optim;
pub mod schedule;
