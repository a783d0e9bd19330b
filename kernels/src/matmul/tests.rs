//! GEMM tests: every kernel this CPU can run, both code paths (simple and blocked), serial and
//! threaded, against a naive triple loop in `f64`.
//!
//! Most inputs are small integers, so every partial sum is exactly representable (|sum| < 2^24
//! for the sizes here) and results must match the reference *exactly* whatever the summation
//! order; one test uses general floats with a rounding-error bound.

use super::cpu::{gemm_blocked, gemm_small};
use super::microkernel::Kernel;
use super::*;

/// Deterministic generator (64-bit LCG, top bits) so the tests need no dependencies.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    /// Integer in -4..=4.
    fn int(&mut self) -> f64 {
        (self.next() % 9) as f64 - 4.0
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f64 {
        (self.next() as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
    }
}

trait FromF64: GemmScalar {
    fn from_f64(x: f64) -> Self;
    const EPS: f64;
}
impl FromF64 for f32 {
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    const EPS: f64 = f32::EPSILON as f64;
}
impl FromF64 for f64 {
    fn from_f64(x: f64) -> Self {
        x
    }
    const EPS: f64 = f64::EPSILON;
}

fn fill<T: FromF64>(len: usize, rng: &mut Lcg) -> Vec<T> {
    (0..len).map(|_| T::from_f64(rng.int())).collect()
}

/// `C (=|+=) A @ B` by the definition, in f64.
fn reference<T: GemmScalar>(a: &MatRef<T>, b: &MatRef<T>, c0: &[T], accumulate: bool) -> Vec<f64> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = if accumulate { c0[i * n + j].to_f64() } else { 0.0 };
            for p in 0..k {
                s += a.data[a.idx(i, p)].to_f64() * b.data[b.idx(p, j)].to_f64();
            }
            out[i * n + j] = s;
        }
    }
    out
}

fn assert_exact<T: GemmScalar>(got: &[T], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (idx, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_f64(), *w, "{what}: element {idx}");
    }
}

/// A copy of `k` with tiny blocking sizes, so that modest test sizes cross every KC, MC and NC
/// block boundary (and every partial block) of the loop nest.
fn tiny_blocks<T>(k: &Kernel<T>) -> Kernel<T> {
    Kernel {
        name: k.name,
        mr: k.mr,
        nr: k.nr,
        kc: 7,
        mc: 2 * k.mr,
        nc: 3 * k.nr,
        func: k.func,
    }
}

/// The row-major operands in the three layouts the backward pass produces: plain, transposed
/// storage (`X^T` viewed through swapped strides), and a strided sub-matrix with an offset.
fn views<T: FromF64>(
    rows: usize,
    cols: usize,
    layout: usize,
    rng: &mut Lcg,
) -> (Vec<T>, usize, usize, usize) {
    match layout {
        // plain row-major: (data, offset, row_stride, col_stride)
        0 => (fill(rows * cols, rng), 0, cols, 1),
        // stored transposed (cols x rows, row-major), read through swapped strides
        1 => (fill(rows * cols, rng), 0, 1, rows),
        // every other column of a wider matrix, rows padded, starting at an offset
        _ => {
            let rs = 2 * cols + 3;
            (fill(5 + rows * rs, rng), 5, rs, 2)
        }
    }
}

fn check_all<T: FromF64>(sizes: &[(usize, usize, usize)]) {
    let mut rng = Lcg(42);
    for kern in T::all_kernels() {
        let tiny = tiny_blocks(kern);
        for &(m, n, k) in sizes {
            for layout in 0..3 {
                let (ad, ao, ars, acs) = views::<T>(m, k, layout, &mut rng);
                let (bd, bo, brs, bcs) = views::<T>(k, n, (layout + 1) % 3, &mut rng);
                let a = MatRef {
                    data: &ad,
                    offset: ao,
                    rows: m,
                    cols: k,
                    row_stride: ars,
                    col_stride: acs,
                };
                let b = MatRef {
                    data: &bd,
                    offset: bo,
                    rows: k,
                    cols: n,
                    row_stride: brs,
                    col_stride: bcs,
                };
                for accumulate in [false, true] {
                    let c0: Vec<T> = fill(m * n, &mut rng);
                    let want = reference(&a, &b, &c0, accumulate);
                    let what = |path: &str| {
                        format!(
                            "{} {path} m={m} n={n} k={k} layout={layout} acc={accumulate}",
                            kern.name
                        )
                    };
                    for (path, kn, parallel) in [
                        ("blocked", kern, false),
                        ("blocked-par", kern, true),
                        ("tiny-par", &tiny, true),
                    ] {
                        let mut c = c0.clone();
                        gemm_blocked(kn, a, b, &mut c, accumulate, parallel);
                        assert_exact(&c, &want, &what(path));
                    }
                    let mut c = c0.clone();
                    gemm_small(a, b, &mut c, accumulate);
                    assert_exact(&c, &want, &what("small"));
                }
            }
        }
    }
}

const SIZES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 17, 5),
    (5, 1, 17),
    (2, 3, 1),
    (17, 63, 65),
    (65, 17, 63),
    (63, 65, 2),
    (13, 33, 130),
    (130, 31, 29),
    (37, 130, 41),
];

#[test]
fn all_kernels_f32() {
    check_all::<f32>(SIZES);
}

#[test]
fn all_kernels_f64() {
    check_all::<f64>(SIZES);
}

#[test]
fn larger_sizes_public_api() {
    // Through the public entry point, so the size-based dispatch (small / blocked / threaded) is
    // what runs; 257 crosses the 192/256-deep KC blocks of the real kernels.
    let mut rng = Lcg(7);
    for &(m, n, k) in &[(257, 130, 200), (200, 257, 257), (64, 64, 64), (63, 64, 65)] {
        let ad: Vec<f32> = fill(m * k, &mut rng);
        let bd: Vec<f32> = fill(n * k, &mut rng); // stored n x k: B is its transpose
        let a = MatRef::row_major(&ad, m, k);
        let b = MatRef::row_major(&bd, n, k).t();
        for accumulate in [false, true] {
            let c0: Vec<f32> = fill(m * n, &mut rng);
            let mut c = c0.clone();
            gemm(a, b, &mut c, accumulate).unwrap();
            assert_exact(&c, &reference(&a, &b, &c0, accumulate), &format!("{m}x{n}x{k}"));
        }
    }
}

#[test]
fn small_and_skinny_products_public_api() {
    // Below SMALL_WORK, and shapes whose tiles would be mostly padding (matrix-vector, outer
    // product): these take the simple path through `gemm`.
    let mut rng = Lcg(11);
    for &(m, n, k) in &[
        (3, 5, 7),
        (15, 16, 16),
        (1, 300, 200),
        (300, 1, 200),
        (2, 3, 1000),
        (70, 80, 1),
    ] {
        let ad: Vec<f64> = fill(m * k, &mut rng);
        let bd: Vec<f64> = fill(k * n, &mut rng);
        let (a, b) = (MatRef::row_major(&ad, m, k), MatRef::row_major(&bd, k, n));
        for (a, b) in [
            (a, b),
            (MatRef::row_major(&ad, k, m).t(), MatRef::row_major(&bd, n, k).t()),
        ] {
            for accumulate in [false, true] {
                let c0: Vec<f64> = fill(m * n, &mut rng);
                let mut c = c0.clone();
                gemm(a, b, &mut c, accumulate).unwrap();
                assert_exact(&c, &reference(&a, &b, &c0, accumulate), &format!("{m}x{n}x{k}"));
            }
        }
    }
}

#[test]
fn zero_stride_views() {
    // Broadcast views: every row of A is the same stored row (row_stride 0), and B's columns all
    // repeat one stored column (col_stride 0). Valid, and must not be mistaken for small data.
    let mut rng = Lcg(5);
    let (m, n, k) = (40, 60, 50);
    let ad: Vec<f32> = fill(k, &mut rng);
    let bd: Vec<f32> = fill(k, &mut rng);
    let a = MatRef {
        data: &ad,
        offset: 0,
        rows: m,
        cols: k,
        row_stride: 0,
        col_stride: 1,
    };
    let b = MatRef {
        data: &bd,
        offset: 0,
        rows: k,
        cols: n,
        row_stride: 1,
        col_stride: 0,
    };
    let mut c = vec![0.0f32; m * n];
    gemm(a, b, &mut c, false).unwrap();
    assert_exact(&c, &reference(&a, &b, &c, false), "zero strides");
}

#[test]
fn general_floats_within_rounding_bound() {
    let mut rng = Lcg(3);
    let (m, n, k) = (70, 90, 300);
    let ad: Vec<f32> = (0..m * k).map(|_| rng.unit() as f32).collect();
    let bd: Vec<f32> = (0..k * n).map(|_| rng.unit() as f32).collect();
    let (a, b) = (MatRef::row_major(&ad, m, k), MatRef::row_major(&bd, k, n));
    let mut c = vec![0.0f32; m * n];
    gemm(a, b, &mut c, false).unwrap();
    let want = reference(&a, &b, &c, false);
    for i in 0..m {
        for j in 0..n {
            // |fl(sum) - sum| <= gamma_k * sum |a||b|, gamma_k ~ k * eps (plus the final rounding).
            let abs: f64 = (0..k)
                .map(|p| (ad[i * k + p] as f64 * bd[p * n + j] as f64).abs())
                .sum();
            let bound = (k as f64 + 1.0) * f32::EPS * abs;
            let err = (c[i * n + j] as f64 - want[i * n + j]).abs();
            assert!(err <= bound, "({i},{j}): err {err} > bound {bound}");
        }
    }
}

#[test]
fn overwrite_ignores_nan_in_output() {
    for (m, n, k) in [(3, 4, 5), (100, 100, 100)] {
        let ad = vec![1.0f64; m * k];
        let bd = vec![2.0f64; k * n];
        let mut c = vec![f64::NAN; m * n];
        gemm(
            MatRef::row_major(&ad, m, k),
            MatRef::row_major(&bd, k, n),
            &mut c,
            false,
        )
        .unwrap();
        assert!(c.iter().all(|&x| x == 2.0 * k as f64), "{m}x{n}x{k}");
    }
}

#[test]
fn empty_dimensions() {
    let ad = vec![1.0f32; 12];
    // k = 0: zeros when overwriting (even over NaN), untouched when accumulating.
    let a = MatRef::row_major(&ad[..0], 3, 0);
    let b = MatRef::row_major(&ad[..0], 0, 4);
    let mut c = vec![f32::NAN; 12];
    gemm(a, b, &mut c, false).unwrap();
    assert!(c.iter().all(|&x| x == 0.0));
    let mut c = vec![5.0f32; 12];
    gemm(a, b, &mut c, true).unwrap();
    assert!(c.iter().all(|&x| x == 5.0));
    // m = 0 or n = 0: nothing to write, any output length is fine.
    gemm(
        MatRef::row_major(&ad, 0, 3),
        MatRef::row_major(&ad, 3, 4),
        &mut [],
        false,
    )
    .unwrap();
    gemm(
        MatRef::row_major(&ad, 4, 3),
        MatRef::row_major(&ad, 3, 0),
        &mut [],
        false,
    )
    .unwrap();
    // Batched with zero batches.
    gemm_batched(
        MatRef::row_major(&ad, 2, 2),
        &[],
        MatRef::row_major(&ad, 2, 2),
        &[],
        &mut [],
        false,
    )
    .unwrap();
}

fn check_batched<T: FromF64>(batch: usize, m: usize, n: usize, k: usize, seed: u64) {
    let mut rng = Lcg(seed);
    // A: `batch` distinct row-major matrices back to back. B: one k x n matrix stored transposed,
    // broadcast to every batch element through repeated offsets (plus a second copy at the end
    // used by odd batch elements, so the offsets really vary).
    let ad: Vec<T> = fill(batch * m * k, &mut rng);
    let bd: Vec<T> = fill(2 * k * n, &mut rng);
    let a = MatRef::row_major(&ad, m, k);
    let b = MatRef::row_major(&bd, n, k).t();
    let a_off: Vec<usize> = (0..batch).map(|i| i * m * k).collect();
    let b_off: Vec<usize> = (0..batch).map(|i| (i % 2) * k * n).collect();
    for accumulate in [false, true] {
        let c0: Vec<T> = fill(batch * m * n, &mut rng);
        let mut c = c0.clone();
        gemm_batched(a, &a_off, b, &b_off, &mut c, accumulate).unwrap();
        for i in 0..batch {
            let ai = MatRef {
                offset: a_off[i],
                ..a
            };
            let bi = MatRef {
                offset: b_off[i],
                ..b
            };
            let want = reference(&ai, &bi, &c0[i * m * n..(i + 1) * m * n], accumulate);
            assert_exact(
                &c[i * m * n..(i + 1) * m * n],
                &want,
                &format!("batch {i} of {batch}x{m}x{n}x{k}"),
            );
        }
    }
}

#[test]
fn batched_broadcast() {
    check_batched::<f32>(3, 5, 7, 9, 1); // small: serial loop over simple products
    check_batched::<f64>(8, 80, 70, 90, 2); // mid-size: batch elements in parallel
    check_batched::<f32>(2, 130, 200, 257, 3); // large: each product threaded in turn
}

#[test]
fn errors() {
    let d = vec![0.0f32; 64];
    let mut c = vec![0.0f32; 64];
    let e = gemm(
        MatRef::row_major(&d, 3, 4),
        MatRef::row_major(&d, 5, 2),
        &mut c,
        false,
    )
    .unwrap_err();
    assert_eq!(
        e,
        GemmError::InnerDimMismatch {
            a_rows: 3,
            a_cols: 4,
            b_rows: 5,
            b_cols: 2
        }
    );
    let msg = e.to_string();
    assert!(msg.contains("3x4") && msg.contains("5x2"), "{msg}");

    // A view reaching one element past the end.
    let a = MatRef {
        offset: 1,
        ..MatRef::row_major(&d, 8, 8)
    };
    let e = gemm(a, MatRef::row_major(&d, 8, 1), &mut c, false).unwrap_err();
    assert!(
        matches!(e, GemmError::ViewOutOfBounds { operand: "A", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("8x8"), "{e}");
    // Strides that overflow usize are an error, not a panic.
    let b = MatRef {
        row_stride: usize::MAX,
        ..MatRef::row_major(&d, 2, 2)
    };
    let e = gemm(MatRef::row_major(&d, 2, 2), b, &mut c, false).unwrap_err();
    assert!(
        matches!(e, GemmError::ViewOutOfBounds { operand: "B", .. }),
        "{e}"
    );

    let e = gemm(
        MatRef::row_major(&d, 4, 4),
        MatRef::row_major(&d, 4, 4),
        &mut c[..15],
        false,
    )
    .unwrap_err();
    assert_eq!(
        e,
        GemmError::OutputTooSmall {
            batch: 1,
            m: 4,
            n: 4,
            len: 15
        }
    );
    assert!(e.to_string().contains("4x4"), "{e}");

    let (a, b) = (MatRef::row_major(&d, 2, 2), MatRef::row_major(&d, 2, 2));
    let e = gemm_batched(a, &[0, 4], b, &[0], &mut c, false).unwrap_err();
    assert_eq!(
        e,
        GemmError::BatchMismatch {
            a_batch: 2,
            b_batch: 1
        }
    );
    let e = gemm_batched(a, &[0, 61], b, &[0, 0], &mut c, false).unwrap_err();
    assert!(
        matches!(
            e,
            GemmError::ViewOutOfBounds {
                operand: "A",
                offset: 61,
                ..
            }
        ),
        "{e}"
    );
    let e = gemm_batched(a, &[0; 17], b, &[0; 17], &mut c, false).unwrap_err();
    assert_eq!(
        e,
        GemmError::OutputTooSmall {
            batch: 17,
            m: 2,
            n: 2,
            len: 64
        }
    );
    // Nothing was written by any rejected call.
    assert!(c.iter().all(|&x| x == 0.0));
}

#[test]
fn kernel_is_reported() {
    assert!(!kernel_name::<f32>().is_empty());
    assert!(!kernel_name::<f64>().is_empty());
}
