//! Raw kernels under the autograd ops: each family has a plain CPU implementation on slices
//! and, once the CUDA backend lands, its `.cu` source beside it. This crate knows buffers,
//! shapes as numbers, and launch parameters; it never sees a tensor or a tape.
//!
//! Families: `elementwise` (unary and broadcast binary maps), `reduce` (row and middle-axis
//! reductions), `matmul` (blocked GEMM), `softmax`, `norm` (layer and RMS norm), `loss`
//! (cross-entropy, squared error), `index` (select, gather, scatter), `random` (Philox and
//! dropout). `cuda` holds the NVRTC pipeline that compiles the `.cu` sources.

pub mod attention;
pub mod cuda;
pub mod cvx;
pub mod elementwise;
pub mod fast_exp;
pub mod float;
pub mod index;
pub mod loss;
pub mod masked_xent;
pub mod matmul;
pub mod norm;
pub mod optim;
pub mod random;
pub mod reduce;
pub mod softmax;
pub mod strided;

pub use float::Float;
