//! Layer norm and RMS norm over the innermost `n` elements of a contiguous `[rows, n]` buffer
//! (`n` is the product of the normalized trailing dims), forward with saved per-row statistics
//! and backward giving the input and the per-feature parameter gradients.

pub mod cost;
pub mod cpu;
pub mod cuda;
pub mod launch;
