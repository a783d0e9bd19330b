//! Dense Cholesky factorization and solve for the small symmetric positive-definite systems of
//! convex ReLU training: the `d × d` blocks `I + XᵀX` and the `n × n` Woodbury core of ADMM's
//! linear system. Both are factored once per solve, so a plain right-looking loop is enough.

use super::CvxError;
use crate::Float;

/// In place, `a` (`m × m`, row-major, symmetric; only the lower triangle is read) becomes its
/// lower Cholesky factor L with `a = L Lᵀ`; the strict upper triangle is zeroed. Errors when a
/// pivot is not positive (the matrix is not positive definite, or is singular in floating point).
pub fn cholesky<T: Float>(a: &mut [T], m: usize) -> Result<(), CvxError> {
    if a.len() != m * m {
        return Err(CvxError(format!(
            "cholesky: {} elements for a {m}×{m} matrix",
            a.len()
        )));
    }
    for j in 0..m {
        let mut diag = a[j * m + j];
        for k in 0..j {
            diag -= a[j * m + k] * a[j * m + k];
        }
        // Written to also reject a NaN pivot (every comparison with NaN is false).
        if diag.partial_cmp(&T::ZERO) != Some(std::cmp::Ordering::Greater) {
            return Err(CvxError(format!(
                "cholesky: pivot {j} of {m} is {:e}; the matrix is not positive definite",
                diag.to_f64()
            )));
        }
        let ljj = diag.sqrt();
        a[j * m + j] = ljj;
        for i in j + 1..m {
            let mut s = a[i * m + j];
            for k in 0..j {
                s -= a[i * m + k] * a[j * m + k];
            }
            a[i * m + j] = s / ljj;
        }
        for i in 0..j {
            a[i * m + j] = T::ZERO;
        }
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
        let m = 4;
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
        for (got, want) in rhs.iter().zip(&x) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        let mut bad = vec![1.0, 2.0, 2.0, 1.0];
        assert!(cholesky(&mut bad, 2)
            .unwrap_err()
            .0
            .contains("not positive definite"));
    }
}
