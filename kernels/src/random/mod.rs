//! Counter-based random numbers: Philox4x32-10, and dropout built on it.
//!
//! A counter-based generator is a pure function `(counter, key) -> 128 random bits` with no
//! state, so element `i` of a tensor can be drawn by whichever thread owns it, in any order, on
//! the CPU or a GPU, and the same `(seed, offset)` always gives the same tensor. That is what
//! lets dropout's backward regenerate its mask instead of saving it, and what lets a CUDA kernel
//! be checked bit for bit against this CPU reference.
//!
//! # The contract (the CUDA dropout must follow it exactly)
//!
//! For a tensor of `n` elements drawn with `(seed: u64, offset: u64)`, element `i` (`0 <= i < n`,
//! the row-major position in the tensor's *logical* shape, whatever its strides in memory) is
//! computed as follows:
//!
//! 1. **Key**: `key = [seed as u32, (seed >> 32) as u32]` (low word first).
//! 2. **Counter**: with the block number `b = offset.wrapping_add(i / 4)` (u64 arithmetic, so
//!    `offset` counts 4-element blocks, not elements), `counter = [b as u32, (b >> 32) as u32,
//!    0, 0]`. Words 2 and 3 are reserved and always 0.
//! 3. **Bits**: `w = philox4x32_10(counter, key)[i % 4]` (the [`philox`] definition below; word
//!    0 is the first word Random123 prints).
//! 4. **Uniform**: `u24 = w >> 8` (the top 24 bits), and the uniform is `u = u24 as f32 * 2^-24`,
//!    which lies in `[0, 1)` and is exact in f32 and f64.
//! 5. **Dropout** with probability `p` in `[0, 1]`: the host computes the integer threshold
//!    `t = ceil(p * 2^24)` in f64 ([`dropout::keep_threshold`]; exact, since multiplying by
//!    2^24 only changes the exponent), and element `i` is **kept iff `u24 >= t`**, which is the
//!    same as `u >= p` compared exactly. (Comparing `u >= (float)p` in f32 is *not* the same:
//!    rounding `p` to f32 can move it across a multiple of 2^-24.) Kept elements are
//!    `x * scale` with `scale = (T)(1.0 / (1.0 - p))` computed in f64 on the host and rounded
//!    once to the element type `T`, then multiplied in `T`; dropped elements are exactly `0`
//!    (written, not multiplied, so a dropped inf or NaN gives 0). For `p = 1`, `t = 2^24`,
//!    nothing is kept and the output is all zeros.
//!
//! A caller that draws several tensors from one seed advances `offset` by
//! [`philox::blocks_for`]`(n) = ceil(n / 4)` after each, so no two draws share a counter.

pub mod cost;
pub mod cuda;
pub mod dropout;
pub mod launch;
pub mod philox;
