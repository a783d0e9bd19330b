//! What layer norm and RMS norm over the rows of a `[rows, n]` buffer must move and compute in
//! the forward, for the bench report's roofline. Bytes: x read and y written once, the weight
//! (and bias) read once (they stay in cache across rows), and the saved per-row statistics
//! written as f32 (mean and rstd for layer norm, rstd for RMS norm). FLOPs are nominal per
//! element: layer norm 8 (mean 1, variance 3, normalize 2, affine 2), RMS norm 4 (square-sum 2,
//! scale 1, weight 1).

/// `affine`: whether a weight (and for layer norm a bias) is applied.
pub fn layer_norm_bytes(rows: usize, n: usize, elem_bytes: usize, affine: bool) -> f64 {
    let params = if affine { 2 * n } else { 0 };
    ((2 * rows * n + params) * elem_bytes + 2 * rows * 4) as f64
}

pub fn rms_norm_bytes(rows: usize, n: usize, elem_bytes: usize, affine: bool) -> f64 {
    let params = if affine { n } else { 0 };
    ((2 * rows * n + params) * elem_bytes + rows * 4) as f64
}

pub fn layer_norm_flops(rows: usize, n: usize) -> f64 {
    8.0 * (rows * n) as f64
}

pub fn rms_norm_flops(rows: usize, n: usize) -> f64 {
    4.0 * (rows * n) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(layer_norm_bytes(3, 10, 4, true), ((60 + 20) * 4 + 24) as f64);
        assert_eq!(layer_norm_bytes(3, 10, 4, false), (60 * 4 + 24) as f64);
        assert_eq!(rms_norm_bytes(3, 10, 4, true), ((60 + 10) * 4 + 12) as f64);
        assert_eq!(layer_norm_flops(3, 10), 240.0);
        assert_eq!(rms_norm_flops(3, 10), 120.0);
    }
}
