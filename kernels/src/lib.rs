//! Raw kernels under the autograd ops: each family has a plain CPU implementation on slices
//! and, once the CUDA backend lands, its `.cu` source beside it. This crate knows buffers,
//! shapes as numbers, and launch parameters; it never sees a tensor or a tape.
//!
//! Families: `elementwise` (unary and broadcast binary maps), `reduce` (row reductions),
//! `matmul` (blocked GEMM).

pub mod elementwise;
pub mod float;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod reduce;
pub mod softmax;
pub mod strided;

pub use float::Float;
