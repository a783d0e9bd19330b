//! Dense Cholesky factorization and solve for the symmetric positive-definite systems of convex
//! ReLU training: the `d × d` blocks `I + XᵀX` and the `n × n` Woodbury core of ADMM's linear
//! system (factored once per solve), and the `n × n` Newton systems of the dual barrier method
//! (factored every step, hence the blocked factorization).

use super::CvxError;
use crate::float::dot;
use crate::matmul::{gemm, GemmScalar, MatRef};
use crate::Float;

/// Columns per panel of the blocked factorization: the panel's own dot products are at most
/// this long, everything to its left goes through one GEMM per panel.
const PANEL: usize = 32;

/// In place, `a` (`m × m`, row-major, symmetric; only the lower triangle is read) becomes its
/// lower Cholesky factor L with `a = L Lᵀ`; the strict upper triangle is zeroed. Errors when a
/// pivot is not positive (the matrix is not positive definite, or is singular in floating point).
///
/// Blocked left-looking: for each panel of [`PANEL`] columns, the contribution of every column
/// to its left is subtracted with one `kernels::matmul::gemm` (about m³/3 of the m³/3 + O(m²·PANEL)
/// flops), then the panel is factored column by column with short dot products. The same
/// arithmetic as the textbook loop, summed in a different order.
pub fn cholesky<T: Float + GemmScalar>(a: &mut [T], m: usize) -> Result<(), CvxError> {
    if a.len() != m * m {
        return Err(CvxError(format!(
            "cholesky: {} elements for a {m}×{m} matrix",
            a.len()
        )));
    }
    let mut update = Vec::new();
    for k0 in (0..m).step_by(PANEL) {
        let k1 = (k0 + PANEL).min(m);
        let (rows, cols) = (m - k0, k1 - k0);
        if k0 > 0 {
            // A[k0.., k0..k1] −= L[k0.., ..k0] · L[k0..k1, ..k0]ᵀ
            update.clear();
            update.resize(rows * cols, <T as Float>::ZERO);
            let left = MatRef {
                data: &a[..],
                offset: k0 * m,
                rows,
                cols: k0,
                row_stride: m,
                col_stride: 1,
            };
            let top = MatRef { rows: cols, ..left };
            gemm(left, top.t(), &mut update, false)
                .map_err(|e| CvxError(format!("cholesky: panel update: {e}")))?;
            for (r, urow) in update.chunks(cols).enumerate() {
                let row = &mut a[(k0 + r) * m + k0..(k0 + r) * m + k1];
                for (x, u) in row.iter_mut().zip(urow) {
                    *x -= *u;
                }
            }
        }
        for j in k0..k1 {
            let row_j = j * m;
            let diag = a[row_j + j] - dot(&a[row_j + k0..row_j + j], &a[row_j + k0..row_j + j]);
            // Written to also reject a NaN pivot (every comparison with NaN is false).
            if diag.partial_cmp(&<T as Float>::ZERO) != Some(std::cmp::Ordering::Greater) {
                return Err(CvxError(format!(
                    "cholesky: pivot {j} of {m} is {:e}; the matrix is not positive definite",
                    Float::to_f64(diag)
                )));
            }
            let ljj = diag.sqrt();
            a[row_j + j] = ljj;
            for i in j + 1..m {
                let (head, tail) = a.split_at_mut(i * m);
                let s = tail[j] - dot(&tail[k0..j], &head[row_j + k0..row_j + j]);
                tail[j] = s / ljj;
            }
        }
    }
    for i in 0..m {
        a[i * m + i + 1..(i + 1) * m].fill(<T as Float>::ZERO);
    }
    Ok(())
}

/// In place, `b ← (L Lᵀ)⁻¹ b` for the factor from [`cholesky`]: a forward then a backward
/// substitution, `m²` multiply-adds each.
pub fn cholesky_solve<T: Float>(l: &[T], m: usize, b: &mut [T]) {
    debug_assert!(l.len() == m * m && b.len() == m);
    for i in 0..m {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * m + k] * b[k];
        }
        b[i] = s / l[i * m + i];
    }
    for i in (0..m).rev() {
        let mut s = b[i];
        for k in i + 1..m {
            s -= l[k * m + i] * b[k];
        }
        b[i] = s / l[i * m + i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_spd_system_and_rejects_an_indefinite_one() {
        for m in [4, 31, 32, 33, 150] {
            solves_spd_of_size(m);
        }
        let mut bad = vec![1.0, 2.0, 2.0, 1.0];
        assert!(cholesky(&mut bad, 2)
            .unwrap_err()
            .0
            .contains("not positive definite"));
    }

    /// Sizes around the panel width exercise the blocked update (one, two and three panels).
    fn solves_spd_of_size(m: usize) {
        // A = BᵀB + I with a fixed B: symmetric positive definite.
        let b: Vec<f64> = (0..m * m).map(|e| ((e as f64) * 0.37).cos()).collect();
        let mut a = vec![0.0; m * m];
        for i in 0..m {
            for j in 0..m {
                a[i * m + j] = (0..m).map(|k| b[k * m + i] * b[k * m + j]).sum::<f64>();
            }
            a[i * m + i] += 1.0;
        }
        let x: Vec<f64> = (0..m).map(|i| i as f64 - 1.5).collect();
        let mut rhs: Vec<f64> = (0..m)
            .map(|i| (0..m).map(|j| a[i * m + j] * x[j]).sum())
            .collect();
        let mut l = a.clone();
        cholesky(&mut l, m).unwrap();
        cholesky_solve(&l, m, &mut rhs);
        // A = BᵀB + I has condition number at most 1 + ‖B‖² ≤ 1 + m² here, so the solve loses
        // at most ~log10(m²) digits of f64: 1e-9 leaves room at m = 150.
        for (got, want) in rhs.iter().zip(&x) {
            assert!(
                (got - want).abs() < 1e-9 * (1.0 + want.abs()),
                "m {m}: {got} vs {want}"
            );
        }
        // The factor reproduces A and is lower triangular.
        for i in 0..m {
            for j in 0..m {
                let llt: f64 = (0..m).map(|k| l[i * m + k] * l[j * m + k]).sum();
                assert!(
                    (llt - a[i * m + j]).abs() < 1e-10 * (1.0 + a[i * m + j].abs()),
                    "m {m}: LLᵀ[{i},{j}]"
                );
                if j > i {
                    assert_eq!(l[i * m + j], 0.0);
                }
            }
        }
    }
}
