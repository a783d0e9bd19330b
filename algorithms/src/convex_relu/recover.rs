//! From a convex solution back to a ReLU network (Pilanci & Ergen 2020, Theorem 1's
//! construction): each non-zero v_i gives a neuron u = v_i/√‖v_i‖, α = √‖v_i‖, each non-zero w_i
//! one with u = w_i/√‖w_i‖, α = −√‖w_i‖. Then ‖u‖² = α² = ‖v_i‖, so the weight decay
//! (β/2)(‖u‖² + α²) equals β‖v_i‖, and where the cone constraint holds (X u)₊ = D_i X u, so the
//! network's prediction equals the convex model's: the two objectives are equal.

use std::fmt::Write as _;

use super::{Dataset, Loss};

/// A two-layer ReLU network `f(x) = Σ_j α_j (u_jᵀx)₊` (x includes the bias entry when the data
/// had a bias column).
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    /// `m × d`, one neuron's first-layer weights per row.
    pub u: Vec<f64>,
    pub alpha: Vec<f64>,
    pub d: usize,
}

impl Network {
    pub fn width(&self) -> usize {
        self.alpha.len()
    }

    pub fn predict_row(&self, x: &[f64]) -> f64 {
        self.u
            .chunks(self.d)
            .zip(&self.alpha)
            .map(|(u, a)| a * u.iter().zip(x).map(|(p, q)| p * q).sum::<f64>().max(0.0))
            .sum()
    }

    pub fn predict(&self, ds: &Dataset) -> Vec<f64> {
        (0..ds.n).map(|k| self.predict_row(ds.row(k))).collect()
    }

    /// The non-convex regularized objective `ℓ(f(X), y) + (β/2) Σ_j (‖u_j‖² + α_j²)`.
    pub fn objective(&self, ds: &Dataset, loss: Loss, beta: f64) -> f64 {
        let reg: f64 =
            self.u.iter().map(|v| v * v).sum::<f64>() + self.alpha.iter().map(|a| a * a).sum::<f64>();
        loss.value(&self.predict(ds), &ds.y) + 0.5 * beta * reg
    }

    /// JSON for the command's output file: `{"d", "bias", "width", "u": [[..]..], "alpha": [..]}`.
    /// Floats in Rust's shortest round-trip form, so reading them back is exact.
    pub fn to_json(&self, has_bias: bool, extra: &[(&str, String)]) -> String {
        let mut s = String::from("{\n");
        for (k, v) in extra {
            let _ = writeln!(s, "  \"{k}\": {v},");
        }
        let _ = writeln!(
            s,
            "  \"d\": {},\n  \"bias_last\": {has_bias},\n  \"width\": {},",
            self.d,
            self.width()
        );
        let rows: Vec<String> = self
            .u
            .chunks(self.d.max(1))
            .map(|r| {
                format!(
                    "[{}]",
                    r.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        let _ = writeln!(s, "  \"u\": [{}],", rows.join(",\n        "));
        let alphas: Vec<String> = self.alpha.iter().map(|v| format!("{v:?}")).collect();
        let _ = writeln!(s, "  \"alpha\": [{}]\n}}", alphas.join(", "));
        s
    }
}

/// The network of a convex solution (`v`, `w`: `p × d`). Groups with norm at most
/// `tol·max_i‖v_i‖` are dropped (they are zero up to solver accuracy).
pub fn recover_network(v: &[f64], w: &[f64], d: usize, tol: f64) -> Network {
    let norm = |g: &[f64]| g.iter().map(|e| e * e).sum::<f64>().sqrt();
    let biggest = v.chunks(d).chain(w.chunks(d)).map(norm).fold(0.0, f64::max);
    let mut u = Vec::new();
    let mut alpha = Vec::new();
    for (weights, sign) in [(v, 1.0), (w, -1.0)] {
        for g in weights.chunks(d) {
            let nrm = norm(g);
            if nrm > tol * biggest && nrm > 0.0 {
                let root = nrm.sqrt();
                u.extend(g.iter().map(|e| e / root));
                alpha.push(sign * root);
            }
        }
    }
    Network { u, alpha, d }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_balances_the_layers_and_keeps_the_sign() {
        let v = vec![3.0, 4.0, 0.0, 0.0];
        let w = vec![0.0, 0.0, 0.0, 9.0];
        let net = recover_network(&v, &w, 2, 1e-9);
        assert_eq!(net.width(), 2);
        assert!((net.alpha[0] - 5f64.sqrt()).abs() < 1e-15 && (net.alpha[1] + 3.0).abs() < 1e-15);
        let u0: f64 = net.u[..2].iter().map(|e| e * e).sum();
        assert!((u0 - 5.0).abs() < 1e-12, "‖u‖² = α² = ‖v‖");
        assert_eq!(
            net.predict_row(&[1.0, 1.0]),
            5f64.sqrt() * (7.0 / 5f64.sqrt()) - 3.0 * 3.0
        );
        let json = net.to_json(true, &[("objective", "1.5".into())]);
        assert!(
            json.contains("\"width\": 2") && json.contains("\"objective\": 1.5"),
            "{json}"
        );
    }
}
