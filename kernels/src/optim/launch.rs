//! The host side of `optim.cu`'s multi-tensor launch contract, with no CUDA in it: the
//! device-side tables a launch reads, how a parameter group is cut into chunks, and how many
//! Philox blocks a step consumes. The code that allocates device memory and launches lives
//! with the CUDA backend; it fills these structs and copies them to the device.
//!
//! One launch updates every tensor of a group: `tensors[k]` describes tensor `k` (pointers to
//! its parameter, gradient and state, its length, its Philox offsets), and `chunks[c]` names
//! a `chunk_size`-element slice of one tensor. Block `b` processes chunks `b, b + gridDim.x,
//! ...`, so the grid can be a few waves whatever the group's size, and one tiny tensor costs
//! one chunk, not one launch.

/// One tensor of a group, as `optim.cu` reads it (64 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptimTensor {
    /// Device address of the parameter (`float*` or bf16 bits).
    pub param: u64,
    /// Device address of the gradient, same dtype as the parameter.
    pub grad: u64,
    /// First f32 state buffer (m, momentum buffer, utility); 0 when the optimizer keeps none.
    pub state0: u64,
    /// Second f32 state buffer (AdamW's v); 0 otherwise.
    pub state1: u64,
    pub numel: i64,
    /// Philox block offset of this tensor's Gaussian noise this step (UPGD).
    pub noise_offset: u64,
    /// Philox block offset of this tensor's stochastic-rounding bits this step (bf16).
    pub round_offset: u64,
    /// Its chunks are `chunks[first_chunk .. first_chunk + num_chunks]`.
    pub first_chunk: i32,
    pub num_chunks: i32,
}

/// A slice `[start, min(start + chunk_size, numel))` of tensor `tensor` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptimChunk {
    pub tensor: i32,
    pub _pad: i32,
    pub start: i64,
}

/// The chunk list of a group and each tensor's range in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChunkPlan {
    pub chunks: Vec<OptimChunk>,
    /// `(first_chunk, num_chunks)` per tensor, for [`OptimTensor`].
    pub ranges: Vec<(i32, i32)>,
}

/// Cuts tensors of `numels` elements into `chunk_size`-element chunks, tensor by tensor, so a
/// tensor's chunks are contiguous (the per-tensor norm pass relies on it). `chunk_size` must be
/// a positive multiple of 4: threads move 4 elements at a time and a stochastic-rounding Philox
/// block covers 4 elements, so a chunk must start on a block boundary. Empty tensors get no
/// chunk. Returns `None` on a bad `chunk_size` or when a count does not fit the i32 fields.
pub fn plan_chunks(numels: &[usize], chunk_size: usize) -> Option<ChunkPlan> {
    if chunk_size == 0 || !chunk_size.is_multiple_of(4) {
        return None;
    }
    let mut plan = ChunkPlan::default();
    for (k, &n) in numels.iter().enumerate() {
        let first = i32::try_from(plan.chunks.len()).ok()?;
        let count = n.div_ceil(chunk_size);
        for c in 0..count {
            plan.chunks.push(OptimChunk {
                tensor: i32::try_from(k).ok()?,
                _pad: 0,
                start: i64::try_from(c * chunk_size).ok()?,
            });
        }
        plan.ranges.push((first, i32::try_from(count).ok()?));
    }
    i32::try_from(plan.chunks.len()).ok()?;
    Some(plan)
}

/// Philox blocks one step draws for a tensor of `numel` elements: `ceil(n/2)` for Gaussian
/// noise (one Box–Muller pair per two elements) and `ceil(n/4)` for stochastic rounding (one
/// word per element). The host advances its offset by this much per tensor.
pub fn rng_blocks(numel: usize, noise: bool, rounding: bool) -> (u64, u64) {
    let n = numel as u64;
    (
        if noise { n.div_ceil(2) } else { 0 },
        if rounding { n.div_ceil(4) } else { 0 },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layouts_match_optim_cu() {
        assert_eq!(size_of::<OptimTensor>(), 64);
        assert_eq!(offset_of!(OptimTensor, numel), 32);
        assert_eq!(offset_of!(OptimTensor, first_chunk), 56);
        assert_eq!(size_of::<OptimChunk>(), 16);
        assert_eq!(offset_of!(OptimChunk, start), 8);
    }

    #[test]
    fn chunks_cover_every_element_once() {
        let numels = [10, 0, 8, 9, 1];
        let plan = plan_chunks(&numels, 4).unwrap();
        let mut seen: Vec<Vec<u32>> = numels.iter().map(|&n| vec![0; n]).collect();
        for (k, &(first, count)) in plan.ranges.iter().enumerate() {
            for c in &plan.chunks[first as usize..(first + count) as usize] {
                assert_eq!(c.tensor as usize, k);
                assert_eq!(c.start % 4, 0);
                let end = (c.start as usize + 4).min(numels[k]);
                for s in &mut seen[k][c.start as usize..end] {
                    *s += 1;
                }
            }
        }
        assert!(seen.iter().flatten().all(|&s| s == 1));
        assert_eq!(plan.ranges[1], (3, 0));
        assert!(plan_chunks(&numels, 6).is_none());
        assert!(plan_chunks(&numels, 0).is_none());
    }

    #[test]
    fn rng_block_counts() {
        assert_eq!(rng_blocks(9, true, true), (5, 3));
        assert_eq!(rng_blocks(8, false, true), (0, 2));
        assert_eq!(rng_blocks(0, true, true), (0, 0));
    }
}
