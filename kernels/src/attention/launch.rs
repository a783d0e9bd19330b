//! How to launch the attention CUDA kernels: the parameter block, the entry names, and pure
//! functions from a problem's shape to grid, block and shared memory. Nothing here touches a
//! device; the CUDA runtime layer calls these and does the launching.
//!
//! Sequence: forward = one launch of `attention_fwd_{dtype}_d{D}` (the host fills `max_logit` with
//! -inf first). Backward = `attention_bwd_delta_{dtype}`, then `attention_bwd_dkdv_*` and
//! `attention_bwd_dq_*` (independent of each other, both reading `delta`). When the bias needs a
//! gradient, the dQ launch is `attention_bwd_dq_dbias_*` instead: the same kernel that also stores
//! every dS it forms into `params.dbias`, a zero-filled f32 `[B, H, nq, nk]` buffer (O(nq·nk) like
//! the bias itself) that the caller sums down to the bias's broadcast shape. Without a bias
//! gradient the plain entry runs, so that path costs nothing extra.
//!
//! The tile constants below are also compiled into the `.cu` files as `FwdBf16Tile<D>` etc.; the
//! NVRTC test at the bottom asserts that both sides agree, and that [`AttnParams`] has the C
//! struct's layout field by field.

use super::AttnShape;
use std::fmt;

/// Head dims with a compiled instance.
pub const HEAD_DIMS: [usize; 3] = [32, 64, 128];

/// The GPU kernels' element types (bf16 on tensor cores, f32 on CUDA cores).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttnDtype {
    F32,
    Bf16,
}

impl AttnDtype {
    pub fn name(self) -> &'static str {
        match self {
            AttnDtype::F32 => "f32",
            AttnDtype::Bf16 => "bf16",
        }
    }
    pub fn size(self) -> usize {
        match self {
            AttnDtype::F32 => 4,
            AttnDtype::Bf16 => 2,
        }
    }
}

/// Mirror of `struct AttnParams` in `attention_common.cuh`, passed by value as the only kernel
/// argument. Pointers are device addresses (0 = null = "absent"); strides count elements.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AttnParams {
    pub q: u64,
    pub k: u64,
    pub v: u64,
    pub out: u64,
    pub lse: u64,
    pub max_logit: u64,
    pub mask: u64,
    pub bias: u64,
    pub key_lengths: u64,
    pub dout: u64,
    pub dq: u64,
    pub dk: u64,
    pub dv: u64,
    pub delta: u64,
    pub dbias: u64,
    pub q_stride: [i64; 3],
    pub k_stride: [i64; 3],
    pub v_stride: [i64; 3],
    pub o_stride: [i64; 3],
    pub mask_stride: [i64; 4],
    pub bias_stride: [i64; 4],
    pub batch: i32,
    pub heads: i32,
    pub kv_heads: i32,
    pub q_len: i32,
    pub kv_len: i32,
    pub head_dim: i32,
    pub causal: i32,
    pub diagonal: i32,
    pub scale: f32,
}

/// Tile sizes of one kernel instance (rows per block, rows per streamed step, threads, smem).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    /// Rows a block owns: queries (forward, dQ) or keys (dK/dV).
    pub block_rows: usize,
    /// Rows streamed through shared memory per step: keys (forward, dQ) or queries (dK/dV).
    pub step_rows: usize,
    pub threads: usize,
    /// Static shared memory per block, bytes (ptxas reports the same).
    pub smem: usize,
}

/// Which kernel of the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Forward,
    BackwardDkDv,
    BackwardDq,
    /// `BackwardDq` that also writes dS to `params.dbias` (the bias gradient before reduction).
    BackwardDqBias,
}

impl Kernel {
    pub const ALL: [Kernel; 4] = [
        Kernel::Forward,
        Kernel::BackwardDkDv,
        Kernel::BackwardDq,
        Kernel::BackwardDqBias,
    ];
}

/// The tile of `kernel` for `dtype` and head dim `d` (one of [`HEAD_DIMS`]).
pub fn tile(kernel: Kernel, dtype: AttnDtype, d: usize) -> Tile {
    let bf16_ld = d + 8; // padded smem row, elements
    match (kernel, dtype) {
        (Kernel::Forward, AttnDtype::Bf16) => {
            let bc = if d <= 64 { 64 } else { 32 };
            Tile {
                block_rows: 64,
                step_rows: bc,
                threads: 128,
                smem: (64 + 2 * bc) * bf16_ld * 2 + 4 * 4,
            }
        }
        (Kernel::Forward, AttnDtype::F32) => Tile {
            block_rows: 32,
            step_rows: 32,
            threads: 128,
            smem: 2 * 32 * d * 4 + 4 * 4,
        },
        (Kernel::BackwardDkDv, AttnDtype::Bf16) => {
            let br = if d <= 64 { 64 } else { 16 };
            Tile {
                block_rows: 64,
                step_rows: br,
                threads: 128,
                smem: (2 * 64 + 2 * br) * bf16_ld * 2 + 8 * br,
            }
        }
        (Kernel::BackwardDq | Kernel::BackwardDqBias, AttnDtype::Bf16) => {
            let bc = if d <= 64 { 64 } else { 16 };
            Tile {
                block_rows: 64,
                step_rows: bc,
                threads: 128,
                smem: (2 * 64 + 2 * bc) * bf16_ld * 2,
            }
        }
        (Kernel::BackwardDkDv, AttnDtype::F32) => Tile {
            block_rows: 16,
            step_rows: 32,
            threads: 128,
            smem: 2 * 32 * d * 4 + 8 * 32,
        },
        (Kernel::BackwardDq, AttnDtype::F32) => Tile {
            block_rows: 16,
            step_rows: 32,
            threads: 128,
            smem: 2 * 32 * d * 4,
        },
        // Plus the padded [16][33] f32 staging tile of dS.
        (Kernel::BackwardDqBias, AttnDtype::F32) => Tile {
            block_rows: 16,
            step_rows: 32,
            threads: 128,
            smem: 2 * 32 * d * 4 + 16 * 33 * 4,
        },
    }
}

/// Entry name of `kernel` for `dtype` and head dim `d`.
pub fn entry_name(kernel: Kernel, dtype: AttnDtype, d: usize) -> String {
    let k = match kernel {
        Kernel::Forward => "fwd",
        Kernel::BackwardDkDv => "bwd_dkdv",
        Kernel::BackwardDq => "bwd_dq",
        Kernel::BackwardDqBias => "bwd_dq_dbias",
    };
    format!("attention_{k}_{}_d{d}", dtype.name())
}

/// Every entry point, with the source file that defines it.
pub fn entries() -> Vec<(&'static str, String)> {
    let mut all = Vec::new();
    for dtype in [AttnDtype::Bf16, AttnDtype::F32] {
        for d in HEAD_DIMS {
            all.push(("attention_fwd.cu", entry_name(Kernel::Forward, dtype, d)));
            all.push(("attention_bwd.cu", entry_name(Kernel::BackwardDkDv, dtype, d)));
            all.push(("attention_bwd.cu", entry_name(Kernel::BackwardDq, dtype, d)));
            all.push(("attention_bwd.cu", entry_name(Kernel::BackwardDqBias, dtype, d)));
        }
        all.push((
            "attention_bwd.cu",
            format!("attention_bwd_delta_{}", dtype.name()),
        ));
    }
    all
}

/// One launch: entry, grid, block, static shared memory (no dynamic shared memory is used).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchConfig {
    pub entry: String,
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub shared_bytes: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaunchError {
    HeadDim(usize),
    /// `heads` not a positive multiple of `kv_heads`.
    Heads {
        heads: usize,
        kv_heads: usize,
    },
    /// A grid dimension over the hardware limit (y and z: 65535).
    Grid {
        what: &'static str,
        blocks: usize,
    },
    /// A size over `i32::MAX` (the kernels index rows with 32-bit ints).
    TooLarge(&'static str),
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchError::HeadDim(d) => write!(f, "head dim {d} has no CUDA instance (have {HEAD_DIMS:?})"),
            LaunchError::Heads { heads, kv_heads } => {
                write!(
                    f,
                    "query heads ({heads}) must be a positive multiple of key/value heads ({kv_heads})"
                )
            }
            LaunchError::Grid { what, blocks } => {
                write!(f, "{what} needs {blocks} blocks in grid.y (limit 65535)")
            }
            LaunchError::TooLarge(what) => write!(f, "{what} exceeds i32::MAX"),
        }
    }
}

impl std::error::Error for LaunchError {}

fn check(shape: &AttnShape) -> Result<(), LaunchError> {
    if !HEAD_DIMS.contains(&shape.head_dim) {
        return Err(LaunchError::HeadDim(shape.head_dim));
    }
    if shape.kv_heads == 0 || !shape.heads.is_multiple_of(shape.kv_heads) {
        return Err(LaunchError::Heads {
            heads: shape.heads,
            kv_heads: shape.kv_heads,
        });
    }
    for (what, n) in [
        ("q_len", shape.q_len),
        ("kv_len", shape.kv_len),
        ("batch * heads", shape.batch * shape.heads),
        ("batch * heads * q_len", shape.rows()),
    ] {
        if n > i32::MAX as usize {
            return Err(LaunchError::TooLarge(what));
        }
    }
    Ok(())
}

fn config(entry: String, grid_x: usize, grid_y: usize, t: Tile) -> Result<Option<LaunchConfig>, LaunchError> {
    if grid_y > 65535 {
        return Err(LaunchError::Grid {
            what: "batch * heads",
            blocks: grid_y,
        });
    }
    if grid_x == 0 || grid_y == 0 {
        return Ok(None); // nothing to compute: launching a 0-block grid is an error
    }
    Ok(Some(LaunchConfig {
        entry,
        grid: (grid_x as u32, grid_y as u32, 1),
        block: (t.threads as u32, 1, 1),
        shared_bytes: 0,
    }))
}

/// The forward's launch (none when there are no query rows).
pub fn forward_launches(dtype: AttnDtype, shape: &AttnShape) -> Result<Vec<LaunchConfig>, LaunchError> {
    check(shape)?;
    let t = tile(Kernel::Forward, dtype, shape.head_dim);
    let bh = shape.batch * shape.heads;
    let c = config(
        entry_name(Kernel::Forward, dtype, shape.head_dim),
        shape.q_len.div_ceil(t.block_rows),
        bh,
        t,
    )?;
    Ok(c.into_iter().collect())
}

/// The backward's launches in order: delta, dK/dV, dQ (those with an empty grid left out: with
/// `kv_len = 0` there is no dK/dV, and dQ still runs to write its zeros). With `dbias` the dQ
/// launch is the entry that also writes dS to `params.dbias`.
pub fn backward_launches(
    dtype: AttnDtype,
    shape: &AttnShape,
    dbias: bool,
) -> Result<Vec<LaunchConfig>, LaunchError> {
    check(shape)?;
    let d = shape.head_dim;
    let rows = shape.rows();
    let delta = LaunchConfig {
        entry: format!("attention_bwd_delta_{}", dtype.name()),
        grid: (rows.div_ceil(4) as u32, 1, 1),
        block: (128, 1, 1),
        shared_bytes: 0,
    };
    let kv = tile(Kernel::BackwardDkDv, dtype, d);
    let dq_kernel = if dbias {
        Kernel::BackwardDqBias
    } else {
        Kernel::BackwardDq
    };
    let dq = tile(dq_kernel, dtype, d);
    let mut launches: Vec<LaunchConfig> = (rows > 0).then_some(delta).into_iter().collect();
    launches.extend(config(
        entry_name(Kernel::BackwardDkDv, dtype, d),
        shape.kv_len.div_ceil(kv.block_rows),
        shape.batch * shape.kv_heads,
        kv,
    )?);
    launches.extend(config(
        entry_name(dq_kernel, dtype, d),
        shape.q_len.div_ceil(dq.block_rows),
        shape.batch * shape.heads,
        dq,
    )?);
    Ok(launches)
}

/// The kernels copy rows in 16-byte pieces: every row start must be 16-byte aligned, so the base
/// address and the batch/head/row strides (in elements) must all be multiples of 16 bytes.
pub fn rows_aligned(dtype: AttnDtype, base: u64, strides: [i64; 3]) -> bool {
    let per = 16 / dtype.size() as i64;
    base.is_multiple_of(16) && strides.iter().all(|s| s % per == 0)
}

/// FLOPs the benchmarks divide by: `4·B·H·nq·nk·D` forward (halved for causal square problems),
/// 2.5 times that backward (FlashAttention's convention).
pub fn nominal_flops(shape: &AttnShape, causal: bool, backward: bool) -> f64 {
    let f = shape.forward_flops() * if causal { 0.5 } else { 1.0 };
    if backward {
        2.5 * f
    } else {
        f
    }
}

#[cfg(test)]
mod tests;
