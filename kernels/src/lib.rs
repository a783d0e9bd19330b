//! Raw kernels under the autograd ops: each family has a plain CPU implementation on slices
//! and, once the CUDA backend lands, its `.cu` source beside it. This crate knows buffers,
//! shapes as numbers, and launch parameters; it never sees a tensor or a tape.
pub mod matmul;
