//! What (log-)softmax over the rows of a `[rows, n]` buffer must move and compute, for the bench
//! report's roofline. Bytes are the minimum traffic of a fused kernel (the forward reads x and
//! writes y once; the backward reads y and dy and writes dx), not what a multi-pass loop moves.
//! FLOPs are nominal: forward 5 per element (max, subtract, exp, sum, scale), backward 4
//! (product, sum, subtract, scale); `exp` counts as one.

pub fn forward_bytes(rows: usize, n: usize, elem_bytes: usize) -> f64 {
    2.0 * (rows * n) as f64 * elem_bytes as f64
}

pub fn backward_bytes(rows: usize, n: usize, elem_bytes: usize) -> f64 {
    3.0 * (rows * n) as f64 * elem_bytes as f64
}

pub fn forward_flops(rows: usize, n: usize) -> f64 {
    5.0 * (rows * n) as f64
}

pub fn backward_flops(rows: usize, n: usize) -> f64 {
    4.0 * (rows * n) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(forward_bytes(2, 8, 4), 128.0);
        assert_eq!(backward_bytes(2, 8, 4), 192.0);
        assert_eq!(forward_flops(2, 8), 80.0);
        assert_eq!(backward_flops(2, 8), 64.0);
    }
}
