//! Modules, losses, optimizers and schedules.
//!
//! * [`modules`]: `Module` (named parameters, train/eval, `to(device)`, safetensors save/load),
//!   Linear, Embedding, LayerNorm, RMSNorm, Mlp, Dropout, MultiHeadAttention (qk-LN, GQA),
//!   TransformerBlock (Pre-LN, Post-LN, Mix-LN), DecoderLm; seeded initializers in [`modules::init`].
//! * [`optim`]: the optimizer API (parameter groups, `step`, checkpoints) over the fused
//!   update kernels of `kernels::optim`: AdamW with four weight-decay modes, Lion-κ, Signum,
//!   signSGD, SGD(W) and UPGD.
//! * [`schedule`]: learning-rate schedules as pure functions of the step.

pub mod modules;
pub mod optim;
pub mod schedule;
