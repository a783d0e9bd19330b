//! Layer 3 of the test plan: CPU vs CUDA parity for every op with a CUDA path, forward and
//! backward (through the tape), on fresh random inputs of awkward sizes (1, 31, 33, 1000,
//! 4097, rows longer than a grid wave), with every new device buffer poisoned (NaN bytes) so
//! an element a kernel forgets to write shows up as NaN.
//!
//! Skips with a printed reason where there is no GPU; `REQUIRE_CUDA=1` turns the skip into a
//! failure (the GPU machine's run script sets it).

mod attention;
mod attention_bf16;
mod attention_bias;
mod bf16;
mod bf16_rows;
mod cases;
mod cast;
mod common;
mod coverage;
mod elementwise;
mod layout;
mod loss_index;
mod masked_xent;
mod masked_xent_softmax;
mod matmul;
mod memory;
mod rows;
