//! Elementwise kernels: unary maps, broadcast binary and ternary maps, and the scalar math of
//! every unary op with its derivative (`UnaryOp`), written once so the forward, the backward and
//! the CUDA port all read the same formulas.

pub mod cast;
pub mod cast_cuda;
pub mod cost;
pub mod cpu;
pub mod cuda;
mod unary_op;

pub use unary_op::UnaryOp;
