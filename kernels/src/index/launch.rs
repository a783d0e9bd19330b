//! Launch shapes for `index.cu` (pure functions of the sizes), its entry points, and
//! [`IndexDims`], the by-value shape argument of `gather_*` / `scatter_add_*`.

use cudarc::driver::LaunchConfig;

use crate::reduce::launch::grid_for;
use crate::strided::contiguous_strides;

/// Every `extern "C"` entry point of `index.cu`.
pub const KERNELS: &[&str] = &[
    "index_select_f32",
    "index_select_bf16",
    "index_add_f32",
    "index_add_bf16",
    "index_add_det_f32",
    "index_add_det_bf16",
    "gather_f32",
    "gather_bf16",
    "scatter_add_f32",
    "scatter_add_bf16",
    "index_check",
];

/// The value the host writes into the `error` word before a launch ("no bad index"). Any other
/// value afterwards is the smallest position of an out-of-range index.
pub const NO_ERROR: u64 = u64::MAX;

/// Most dimensions `gather_*` / `scatter_add_*` take (`INDEX_MAX_RANK` in `index.cu`).
pub const MAX_RANK: usize = 8;

/// Threads per block of every kernel of `index.cu`.
pub const THREADS: u32 = 256;

/// Mirror of `struct IndexDims` in `index.cu`, passed by value (224 bytes, 8-byte aligned).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexDims {
    pub rank: i64,
    pub axis: i64,
    pub axis_size: i64,
    pub numel: i64,
    pub index_shape: [i64; MAX_RANK],
    pub data_strides: [i64; MAX_RANK],
    pub src_strides: [i64; MAX_RANK],
}

// SAFETY: plain old data with the C layout of the kernel's parameter.
unsafe impl cudarc::driver::DeviceRepr for IndexDims {}

impl IndexDims {
    /// For `gather(src, axis, index)`: `src_shape` is the indexed tensor, the output is
    /// contiguous over `index_shape`. Shapes as the CPU `gather` takes them (same rank,
    /// `index_shape[d] <= src_shape[d]` off the axis; callers check that).
    pub fn gather(src_shape: &[usize], axis: usize, index_shape: &[usize]) -> Result<IndexDims, String> {
        Self::build(src_shape, axis, index_shape, index_shape)
    }

    /// For `dst.scatter_add_(axis, index, src)`.
    pub fn scatter_add(
        dst_shape: &[usize],
        axis: usize,
        index_shape: &[usize],
        src_shape: &[usize],
    ) -> Result<IndexDims, String> {
        Self::build(dst_shape, axis, index_shape, src_shape)
    }

    fn build(data: &[usize], axis: usize, index: &[usize], src: &[usize]) -> Result<IndexDims, String> {
        let rank = index.len();
        if rank == 0 || rank > MAX_RANK || data.len() != rank || src.len() != rank || axis >= rank {
            return Err(format!(
                "index.cu takes ranks 1..={MAX_RANK} with matching ranks and axis < rank; got \
                 data {data:?}, index {index:?}, src {src:?}, axis {axis}"
            ));
        }
        let pad = |v: Vec<usize>| {
            let mut a = [0i64; MAX_RANK];
            for (d, x) in v.into_iter().enumerate() {
                a[d] = x as i64;
            }
            a
        };
        // Unused dimensions get extent 1 so the kernel never divides by 0.
        let mut index_shape = [1i64; MAX_RANK];
        for (d, &x) in index.iter().enumerate() {
            index_shape[d] = x as i64;
        }
        Ok(IndexDims {
            rank: rank as i64,
            axis: axis as i64,
            axis_size: data[axis] as i64,
            numel: index.iter().product::<usize>() as i64,
            index_shape,
            data_strides: pad(contiguous_strides(data)),
            src_strides: pad(contiguous_strides(src)),
        })
    }
}

/// Rows of `inner` elements per block and threads per row for `index_select_*` /
/// `index_add_*`: block `(BX, 256 / BX, 1)` with `BX` a power of two in `[32, 256]` covering
/// the row in 16-byte vectors (`elem_bytes` = 4 for f32, 2 for bf16).
pub fn rows(outer: usize, nidx: usize, inner: usize, elem_bytes: usize) -> LaunchConfig {
    let vec = (16 / elem_bytes.max(1)).max(1);
    let bx = inner
        .div_ceil(vec)
        .next_power_of_two()
        .clamp(32, THREADS as usize) as u32;
    let by = THREADS / bx;
    LaunchConfig {
        grid_dim: (grid_for(outer.saturating_mul(nidx), by as usize), 1, 1),
        block_dim: (bx, by, 1),
        shared_mem_bytes: 0,
    }
}

/// `index_add_det_*`: one thread per (o, k) column.
pub fn columns(outer: usize, inner: usize) -> LaunchConfig {
    flat(outer.saturating_mul(inner))
}

/// `gather_*`, `scatter_add_*`, `index_check`: one thread per index element.
pub fn flat(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (grid_for(n, THREADS as usize), 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_dims_layout_matches_the_kernel() {
        assert_eq!(std::mem::size_of::<IndexDims>(), 4 * 8 + 3 * 8 * 8);
        assert_eq!(std::mem::align_of::<IndexDims>(), 8);
        let d = IndexDims::gather(&[3, 4, 2], 1, &[2, 5, 2]).unwrap();
        assert_eq!((d.rank, d.axis, d.axis_size, d.numel), (3, 1, 4, 20));
        assert_eq!(&d.index_shape[..4], &[2, 5, 2, 1]);
        assert_eq!(&d.data_strides[..3], &[8, 2, 1]);
        assert_eq!(&d.src_strides[..3], &[10, 2, 1]);
        let s = IndexDims::scatter_add(&[3, 5], 0, &[1, 5], &[2, 5]).unwrap();
        assert_eq!((s.axis_size, s.numel), (3, 5));
        assert_eq!(&s.data_strides[..2], &[5, 1]);
        assert_eq!(&s.src_strides[..2], &[5, 1]);
        assert!(IndexDims::gather(&[1; 9], 0, &[1; 9]).is_err());
        assert!(IndexDims::gather(&[2, 2], 2, &[2, 2]).is_err());
        assert!(IndexDims::gather(&[2], 0, &[2, 2]).is_err());
    }

    #[test]
    fn row_teams_fit_the_row() {
        // Embedding rows of 768 f32: 192 vectors -> 256 threads per row, 1 row per block.
        let c = rows(1, 4096, 768, 4);
        assert_eq!((c.block_dim, c.grid_dim), ((256, 1, 1), (4096, 1, 1)));
        // Rows of 8 bf16 (one vector): 32 threads, 8 rows per block.
        let c = rows(2, 100, 8, 2);
        assert_eq!((c.block_dim, c.grid_dim), ((32, 8, 1), (25, 1, 1)));
        assert_eq!(rows(0, 0, 0, 4).grid_dim, (1, 1, 1));
        assert_eq!(flat(1000).grid_dim, (4, 1, 1));
        assert_eq!(columns(3, 100).grid_dim, (2, 1, 1));
    }

    #[test]
    fn kernel_names_are_in_the_source() {
        let src = include_str!("index.cu");
        for k in KERNELS {
            assert!(src.contains(&format!("void {k}(")), "{k} not in index.cu");
        }
        assert_eq!(src.matches("extern \"C\" __global__").count(), KERNELS.len());
    }
}
