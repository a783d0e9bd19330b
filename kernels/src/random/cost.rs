//! What dropout must move, for the bench report's roofline: the input read and the output
//! written once (the keep mask is recomputed from the Philox counter, never stored), so
//! `2·n·elem` bytes. Nominal FLOPs: one per element (the compare-and-scale); the Philox rounds
//! that draw the random bits (one 4×32-bit draw serves four elements) are not counted.

pub fn dropout_bytes(n: usize, elem_bytes: usize) -> f64 {
    2.0 * n as f64 * elem_bytes as f64
}

pub fn dropout_flops(n: usize) -> f64 {
    n as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts() {
        assert_eq!(super::dropout_bytes(1000, 4), 8000.0);
        assert_eq!(super::dropout_flops(1000), 1000.0);
    }
}
