//! The GEMM drivers: a simple loop for small products and the cache-blocked, packed, threaded
//! BLIS loop nest (described in `mod.rs`) for everything else. All inputs were validated by the
//! public entry points; here `A` is `m x k`, `B` is `k x n` and `c` is exactly `m * n` long.

use super::microkernel::{Kernel, MAX_TILE};
use super::{GemmScalar, MatRef, SMALL_WORK};
use rayon::prelude::*;

/// Computes `C (=|+=) A @ B` with the best path for the size. `parallel` allows rayon threads.
pub(super) fn gemm_dispatch<T: GemmScalar>(
    kern: &Kernel<T>,
    a: MatRef<T>,
    b: MatRef<T>,
    c: &mut [T],
    accumulate: bool,
    parallel: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    debug_assert_eq!(c.len(), m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(T::ZERO);
        }
        return;
    }
    // The micro-kernel always computes whole MR x NR tiles; when most of each tile would be
    // padding (m or n far below MR or NR, e.g. a matrix-vector product) the simple loop does less
    // work, as it does for tiny products where packing costs more than it saves.
    // (Saturating: with zero strides a valid view can have huge dimensions over little data.)
    let padded = (m.div_ceil(kern.mr) * kern.mr).saturating_mul(n.div_ceil(kern.nr) * kern.nr);
    if (m * n).saturating_mul(k) < SMALL_WORK || (m * n).saturating_mul(4) < padded {
        gemm_small(a, b, c, accumulate);
    } else {
        gemm_blocked(kern, a, b, c, accumulate, parallel);
    }
}

/// The small-problem path: no packing, no threads, no allocation. With `B` row-contiguous (the
/// common case) the inner loop is `c_row += a_ip * b_row` over slices, which autovectorizes; any
/// other layout uses a dot product per element.
pub(super) fn gemm_small<T: GemmScalar>(a: MatRef<T>, b: MatRef<T>, c: &mut [T], accumulate: bool) {
    let (k, n) = (a.cols, b.cols);
    for (i, c_row) in c.chunks_exact_mut(n).enumerate() {
        if b.col_stride == 1 {
            if !accumulate {
                c_row.fill(T::ZERO);
            }
            for p in 0..k {
                let aip = a.data[a.idx(i, p)];
                let start = b.idx(p, 0);
                let b_row = &b.data[start..start + n];
                for (cj, &bj) in c_row.iter_mut().zip(b_row) {
                    *cj = *cj + aip * bj;
                }
            }
        } else {
            for (j, cj) in c_row.iter_mut().enumerate() {
                let mut s = T::ZERO;
                for p in 0..k {
                    s = s + a.data[a.idx(i, p)] * b.data[b.idx(p, j)];
                }
                *cj = if accumulate { *cj + s } else { s };
            }
        }
    }
}

/// Shares the base pointer of `C` between the threads; each writes a disjoint set of tiles.
#[derive(Clone, Copy)]
struct CPtr<T>(*mut T);
// SAFETY: the pointer is only used to write tiles that exactly one work item owns (see
// `gemm_blocked`), and `T: Send`.
unsafe impl<T: Send> Send for CPtr<T> {}
unsafe impl<T: Send> Sync for CPtr<T> {}

impl<T> CPtr<T> {
    /// Through a method, so closures capture the whole (`Sync`) wrapper and not the bare field.
    fn get(self) -> *mut T {
        self.0
    }
}

/// A `Vec` with room for `len` elements starting at a 64-byte boundary (one cache line, and one
/// `zmm` register), so that the micro-kernel's vector loads never straddle two cache lines.
///
/// The vector is borrowed from a per-thread scratch slot ([`Sealed::scratch`]) and given back on
/// drop, so steady-state calls reuse it. A nested use on the same thread (rayon may run another
/// product's work while this one waits) finds the slot empty and simply allocates its own.
///
/// [`Sealed::scratch`]: super::sealed::Sealed::scratch
struct AlignedBuf<T: GemmScalar> {
    slot: usize,
    buf: Vec<T>,
}

impl<T: GemmScalar> AlignedBuf<T> {
    fn new(slot: usize) -> Self {
        AlignedBuf {
            slot,
            buf: T::scratch(slot).take(),
        }
    }

    /// The aligned slice of `len` elements (contents unspecified), growing the buffer if needed.
    fn get(&mut self, len: usize) -> &mut [T] {
        let pad = 64 / std::mem::size_of::<T>();
        if self.buf.len() < len + pad {
            self.buf = vec![T::ZERO; len + pad];
        }
        let start = self.buf.as_ptr().align_offset(64).min(pad);
        &mut self.buf[start..start + len]
    }
}

impl<T: GemmScalar> Drop for AlignedBuf<T> {
    fn drop(&mut self) {
        T::scratch(self.slot).set(std::mem::take(&mut self.buf));
    }
}

/// Packs one panel of `w` lanes and `kc` steps: `out[p*w + l] = data[base + l*ls + p*ss]` for
/// lanes `l < lanes`, and zero for the padding lanes `lanes..w`.
///
/// An `A` panel has the `MR` rows as lanes and the `k` index as steps; a `B` panel has the `NR`
/// columns as lanes and `k` as steps. When the lanes are contiguous (`ls == 1`: row-major `B`,
/// transposed `A`) each step is one fixed-size copy. Otherwise each step gathers `lanes` values;
/// reading all lanes (e.g. the `MR` rows of a row-major `A`) at once keeps as many independent
/// cache-line streams in flight, which is what bounds packing when the operand is not in cache.
#[allow(clippy::too_many_arguments)]
fn pack_panel<T: GemmScalar>(
    data: &[T],
    base: usize,
    lanes: usize,
    ls: usize,
    ss: usize,
    w: usize,
    kc: usize,
    out: &mut [T],
) {
    debug_assert_eq!(out.len(), w * kc);
    if lanes == w && ls == 1 {
        match w {
            4 => return pack_contiguous_lanes::<T, 4>(data, base, ss, out),
            6 => return pack_contiguous_lanes::<T, 6>(data, base, ss, out),
            12 => return pack_contiguous_lanes::<T, 12>(data, base, ss, out),
            8 => return pack_contiguous_lanes::<T, 8>(data, base, ss, out),
            16 => return pack_contiguous_lanes::<T, 16>(data, base, ss, out),
            32 => return pack_contiguous_lanes::<T, 32>(data, base, ss, out),
            _ => {}
        }
    }
    if lanes == w && ss == 1 {
        match w {
            4 => return pack_contiguous_steps::<T, 4>(data, base, ls, kc, out),
            6 => return pack_contiguous_steps::<T, 6>(data, base, ls, kc, out),
            12 => return pack_contiguous_steps::<T, 12>(data, base, ls, kc, out),
            _ => {}
        }
    }
    for (p, dst) in out.chunks_exact_mut(w).enumerate() {
        for (l, d) in dst[..lanes].iter_mut().enumerate() {
            *d = data[base + l * ls + p * ss];
        }
    }
    if lanes < w {
        for dst in out.chunks_exact_mut(w) {
            dst[lanes..].fill(T::ZERO);
        }
    }
}

/// [`pack_panel`] for a full panel whose lanes are contiguous: each step copies `W` adjacent
/// values. `W` is a constant so the copy is a few vector moves rather than a `memcpy` call.
fn pack_contiguous_lanes<T: GemmScalar, const W: usize>(data: &[T], base: usize, ss: usize, out: &mut [T]) {
    for (p, dst) in out.chunks_exact_mut(W).enumerate() {
        let src: &[T; W] = data[base + p * ss..][..W].try_into().unwrap();
        let dst: &mut [T; W] = dst.try_into().unwrap();
        *dst = *src;
    }
}

/// [`pack_panel`] for a full panel whose steps are contiguous (the `MR` rows of a row-major
/// `A`): a transpose. It goes in `W x 8` blocks: eight contiguous values are read from each
/// lane, then written out step by step. With `W` and the block constant the compiler keeps the
/// block in registers and emits vector loads and shuffles instead of one scalar gather per
/// element, which ran at several cycles per element (strided loads interleaved with the stores).
fn pack_contiguous_steps<T: GemmScalar, const W: usize>(
    data: &[T],
    base: usize,
    ls: usize,
    kc: usize,
    out: &mut [T],
) {
    const Q: usize = 8;
    let full = kc / Q * Q;
    for (blk_idx, dst) in out[..full * W].chunks_exact_mut(Q * W).enumerate() {
        let p0 = blk_idx * Q;
        let mut blk = [[T::ZERO; Q]; W];
        for (l, row) in blk.iter_mut().enumerate() {
            *row = data[base + l * ls + p0..][..Q].try_into().unwrap();
        }
        for q in 0..Q {
            for l in 0..W {
                dst[q * W + l] = blk[l][q];
            }
        }
    }
    for p in full..kc {
        for l in 0..W {
            out[p * W + l] = data[base + l * ls + p];
        }
    }
}

/// Packs rows `i0..i0+mc`, columns `p0..p0+kc` of `A` into `MR`-row panels: panel `r` holds, for
/// each `p`, the `MR` values `A[i0 + r*MR + 0..MR, p0 + p]`, zero-padded past row `i0+mc`.
fn pack_a<T: GemmScalar>(
    a: &MatRef<T>,
    i0: usize,
    mc: usize,
    p0: usize,
    kc: usize,
    mr: usize,
    out: &mut [T],
) {
    for (r, panel) in out.chunks_exact_mut(mr * kc).enumerate() {
        let rows = mr.min(mc - r * mr);
        let base = a.idx(i0 + r * mr, p0);
        pack_panel(a.data, base, rows, a.row_stride, a.col_stride, mr, kc, panel);
    }
}

/// Packs one `NR`-column panel of `B`: for each `p` in `0..kc`, the `NR` values
/// `B[p0 + p, j0 .. j0 + NR]`, zero-padded past column `j0 + cols`.
fn pack_b_panel<T: GemmScalar>(
    b: &MatRef<T>,
    p0: usize,
    kc: usize,
    j0: usize,
    cols: usize,
    nr: usize,
    out: &mut [T],
) {
    let base = b.idx(p0, j0);
    pack_panel(b.data, base, cols, b.col_stride, b.row_stride, nr, kc, out);
}

/// Number of row blocks for `m_panels` panels of `MR` rows: blocks of at most `mc_panels`
/// panels, and a multiple of `threads` blocks (when there are enough panels) so that the threads
/// get equal shares. Block `b` then covers panels `[P*b/B, P*(b+1)/B)`, sizes differing by at
/// most one panel.
fn row_blocks(m_panels: usize, mc_panels: usize, threads: usize) -> usize {
    let blocks = m_panels.div_ceil(mc_panels.max(1));
    (blocks.div_ceil(threads) * threads).min(m_panels)
}

/// The blocked, packed GEMM (see the loop nest in `mod.rs`).
///
/// Threading: within one `(jc, pc)` step the packed `B` block is shared read-only and the `C`
/// block is cut into work items, each an `MC`-row block times a range of `NR` panels. A work item
/// packs its own `A` block (into a per-worker buffer) and owns the `C` tiles it covers, so no two
/// threads ever write the same element. Rows are split first (each thread then streams its own
/// `A`); only when `m` is too small to feed every thread are the columns split too.
pub(super) fn gemm_blocked<T: GemmScalar>(
    kern: &Kernel<T>,
    a: MatRef<T>,
    b: MatRef<T>,
    c: &mut [T],
    accumulate: bool,
    parallel: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let (mr, nr) = (kern.mr, kern.nr);
    let threads = if parallel { rayon::current_num_threads() } else { 1 };

    // Work decomposition of one (jc, pc) step: `m_blocks` row blocks times `n_parts` column
    // ranges.
    let m_panels = m.div_ceil(mr);
    let (m_blocks, n_parts) = if threads > 1 && m_panels >= threads * 4 {
        (row_blocks(m_panels, kern.mc / mr, threads), 1)
    } else {
        (row_blocks(m_panels, kern.mc / mr, 1), threads)
    };

    let kc_max = kern.kc.min(k);
    let nc_max = kern.nc.min(n.div_ceil(nr) * nr);
    let mut b_pack = AlignedBuf::<T>::new(1);
    let b_pack = b_pack.get(kc_max * nc_max.div_ceil(nr) * nr);
    let c_ptr = CPtr(c.as_mut_ptr());

    for jc in (0..n).step_by(kern.nc) {
        let nc = kern.nc.min(n - jc);
        let n_panels = nc.div_ceil(nr);
        for pc in (0..k).step_by(kern.kc) {
            let kc = kern.kc.min(k - pc);
            let overwrite = pc == 0 && !accumulate;

            // Pack the KC x NC block of B, one NR panel per chunk (in parallel when threaded).
            let b_block = &mut b_pack[..n_panels * nr * kc];
            let pack_one = |(jp, panel): (usize, &mut [T])| {
                let j0 = jc + jp * nr;
                pack_b_panel(&b, pc, kc, j0, nr.min(n - j0), nr, panel);
            };
            if threads > 1 {
                b_block.par_chunks_mut(nr * kc).enumerate().for_each(pack_one);
            } else {
                b_block.chunks_mut(nr * kc).enumerate().for_each(pack_one);
            }
            let b_block = &*b_block;

            // One work item: rows [ic, ic+mcb) x panels [jp0, jp1) of this block of C.
            let run_item = |a_buf: &mut AlignedBuf<T>, item: usize| {
                let (ib, part) = (item / n_parts, item % n_parts);
                let ip0 = m_panels * ib / m_blocks;
                let ip1 = m_panels * (ib + 1) / m_blocks;
                let jp0 = n_panels * part / n_parts;
                let jp1 = n_panels * (part + 1) / n_parts;
                if ip0 == ip1 || jp0 == jp1 {
                    return;
                }
                let ic = ip0 * mr;
                let mcb = (ip1 * mr).min(m) - ic;
                let block_panels = ip1 - ip0;
                let a_block = a_buf.get(block_panels * mr * kc);
                pack_a(&a, ic, mcb, pc, kc, mr, a_block);
                for jp in jp0..jp1 {
                    let j = jc + jp * nr;
                    let cols = nr.min(n - j);
                    let b_panel = &b_block[jp * nr * kc..(jp + 1) * nr * kc];
                    for ip in 0..block_panels {
                        let i = ic + ip * mr;
                        let rows = mr.min(m - i);
                        let a_panel = &a_block[ip * mr * kc..(ip + 1) * mr * kc];
                        // SAFETY: the panels hold kc*mr and kc*nr values; the kernel was
                        // selected for this CPU; tile (i.., j..) lies inside C (full tiles) or
                        // goes through the stack tile (edges); no other item writes it.
                        unsafe {
                            micro_tile(
                                kern,
                                kc,
                                a_panel,
                                b_panel,
                                c_ptr.get(),
                                n,
                                i,
                                j,
                                rows,
                                cols,
                                overwrite,
                            );
                        }
                    }
                }
            };

            let items = m_blocks * n_parts;
            if threads > 1 && items > 1 {
                (0..items)
                    .into_par_iter()
                    .for_each_init(|| AlignedBuf::new(0), run_item);
            } else {
                let mut a_buf = AlignedBuf::new(0);
                (0..items).for_each(|it| run_item(&mut a_buf, it));
            }
        }
    }
}

/// Runs the micro-kernel for the tile of `C` at `(i, j)` of which `rows x cols` is inside `C`.
/// Full tiles are written in place; edge tiles are computed into a stack tile and the valid
/// part copied (or added) into `C`.
///
/// # Safety
/// `c` is the base of the row-major `m x ldc` output, `(i, j)` with `rows x cols` inside it, and
/// no other thread accesses those elements concurrently.
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn micro_tile<T: GemmScalar>(
    kern: &Kernel<T>,
    kc: usize,
    a_panel: &[T],
    b_panel: &[T],
    c: *mut T,
    ldc: usize,
    i: usize,
    j: usize,
    rows: usize,
    cols: usize,
    overwrite: bool,
) {
    let (mr, nr) = (kern.mr, kern.nr);
    let dst = c.add(i * ldc + j);
    if rows == mr && cols == nr {
        (kern.func)(kc, a_panel.as_ptr(), b_panel.as_ptr(), dst, ldc, overwrite);
    } else {
        debug_assert!(mr * nr <= MAX_TILE);
        let mut tile = [T::ZERO; MAX_TILE];
        (kern.func)(
            kc,
            a_panel.as_ptr(),
            b_panel.as_ptr(),
            tile.as_mut_ptr(),
            nr,
            true,
        );
        for r in 0..rows {
            let src = &tile[r * nr..r * nr + cols];
            let out = std::slice::from_raw_parts_mut(dst.add(r * ldc), cols);
            for (o, &s) in out.iter_mut().zip(src) {
                *o = if overwrite { s } else { *o + s };
            }
        }
    }
}
