//! Fused optimizer steps: the plain CPU reference of every update ([`cpu`]) and the CUDA
//! multi-tensor kernels (`optim.cu`) that perform exactly the same arithmetic.
//!
//! # How the pieces fit
//!
//! * [`config`]: one `#[repr(C)]` struct per optimizer holding the per-step scalars (betas,
//!   the bias-corrected step size, the weight-decay factor, ...). The host derives them once
//!   per step in f64 and rounds each to the compute type `M` (f32 for f32 and bf16
//!   parameters, f64 for f64 parameters), so the element update never recomputes them and the
//!   CPU and the GPU use the very same rounded numbers. `optim.cu` declares the same structs
//!   for `M = f32`; `config::tests` pin their sizes and field offsets.
//! * [`elem`]: how a parameter or gradient is stored (f32, f64, or bf16 as raw bits) and how a
//!   result is rounded back (to nearest even, or stochastically from Philox bits).
//! * [`cpu`]: the reference steps on slices, one tensor per call. The element update of each
//!   optimizer is written once, generic over the compute type, in the same order of operations
//!   as `optim.cu`; the CUDA side forbids contraction into FMAs (`__fmul_rn`, `__fadd_rn`), so
//!   the f32 results of AdamW, Lion (sign and Huber κ) and SGD are bit-identical on both.
//! * [`launch`]: the host side of the multi-tensor launch contract (`OptimTensor`,
//!   `OptimChunk`, how a group is cut into chunks, how many Philox blocks a step draws).
//!
//! # Random numbers
//!
//! Stochastic rounding of bf16 parameters and UPGD's Gaussian noise use the Philox stream of
//! [`crate::random`] under its contract (key from the seed, counter = offset + block):
//! * rounding: element `i` uses word `i % 4` of block `round_offset + i / 4`, one word each;
//! * noise: element `i` uses words `2(i % 2)` and `2(i % 2) + 1` of block
//!   `noise_offset + i / 2` for one Box–Muller draw (see [`elem::normal_from_words`]).
//!
//! The host gives each tensor its own `round_offset` / `noise_offset` per step
//! ([`launch::rng_blocks`]) so no two draws share a counter.

pub mod config;
pub mod cost;
pub mod cpu;
pub mod cuda;
pub mod elem;
pub mod launch;

pub use config::{AdamWConfig, Kappa, LionConfig, SgdConfig, UpgdConfig};
pub use elem::{Bf16, Elem};
pub use launch::{plan_chunks, rng_blocks, OptimChunk, OptimTensor};

#[cfg(test)]
mod tests;
