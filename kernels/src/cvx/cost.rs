//! What the `cvx.relu` primitives move and compute, for the bench report's roofline (layouts in
//! the module docs). The four products are GEMV-like passes over X per pattern: `2·n·d·p`
//! FLOPs (every (sample, pattern) pair counted, although the masked products skip inactive
//! pairs), and bytes for X once (it is reused from cache across patterns when it fits), the
//! `p × n` byte mask, the per-pattern vectors and the output. The prox and projection steps
//! are streaming passes.

use super::CvxShape;

/// Which primitive, for the counts below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Primitive {
    MaskedForward,
    MaskedBackward,
    SignForward,
    SignBackward,
}

pub fn bytes_moved(op: Primitive, s: CvxShape, elem_bytes: usize) -> f64 {
    let CvxShape { n, d, p } = s;
    // X, the mask (1 byte per entry), the p × d weights (read or written).
    let common = n * d * elem_bytes + p * n + p * d * elem_bytes;
    let rest = match op {
        // out (n) written / r (n) read.
        Primitive::MaskedForward | Primitive::MaskedBackward => n * elem_bytes,
        // The p × n cone values written / z read.
        Primitive::SignForward | Primitive::SignBackward => p * n * elem_bytes,
    };
    (common + rest) as f64
}

pub fn flops(s: CvxShape) -> f64 {
    2.0 * (s.n * s.d * s.p) as f64
}

/// `group_soft_threshold` over `p × d` weights: read and write each; 3 FLOPs per entry (square,
/// sum, scale).
pub fn group_soft_threshold_bytes(p: usize, d: usize, elem_bytes: usize) -> f64 {
    (2 * p * d * elem_bytes) as f64
}

pub fn group_soft_threshold_flops(p: usize, d: usize) -> f64 {
    3.0 * (p * d) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let s = CvxShape { n: 10, d: 3, p: 4 };
        assert_eq!(
            bytes_moved(Primitive::MaskedForward, s, 8),
            (240 + 40 + 96 + 80) as f64
        );
        assert_eq!(
            bytes_moved(Primitive::SignBackward, s, 4),
            (120 + 40 + 48 + 160) as f64
        );
        assert_eq!(flops(s), 240.0);
        assert_eq!(group_soft_threshold_bytes(4, 3, 4), 96.0);
        assert_eq!(group_soft_threshold_flops(4, 3), 36.0);
    }
}
