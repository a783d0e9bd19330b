//! What the fused masked cross-entropy moves and computes over `rows × classes` logits, for the
//! bench report's roofline. Bytes are [`super::launch::forward_bytes_per_row`] and
//! [`super::launch::backward_bytes_per_row`] times the rows. FLOPs are nominal per logit:
//! forward 4 (max, subtract, exp, sum), backward 3 (exp, scale, subtract the target's share);
//! `exp` counts as one.

use super::launch::{backward_bytes_per_row, forward_bytes_per_row};
use super::ClassMask;

pub fn forward_bytes(rows: usize, classes: usize, elem_bytes: usize, mask: &ClassMask) -> f64 {
    (rows * forward_bytes_per_row(classes, elem_bytes, mask)) as f64
}

pub fn backward_bytes(rows: usize, classes: usize, elem_bytes: usize, mask: &ClassMask) -> f64 {
    (rows * backward_bytes_per_row(classes, elem_bytes, mask)) as f64
}

pub fn forward_flops(rows: usize, classes: usize) -> f64 {
    4.0 * (rows * classes) as f64
}

pub fn backward_flops(rows: usize, classes: usize) -> f64 {
    3.0 * (rows * classes) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        // No mask: logits plus 28 bytes of per-row values.
        assert_eq!(forward_bytes(2, 100, 4, &ClassMask::All), 2.0 * 428.0);
        assert_eq!(backward_bytes(2, 100, 2, &ClassMask::All), 2.0 * 428.0);
        assert_eq!(forward_flops(2, 100), 800.0);
        assert_eq!(backward_flops(2, 100), 600.0);
    }
}
