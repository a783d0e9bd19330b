//! What an elementwise op must move and compute, for the bench report's roofline. Counts are
//! the minimum traffic (each operand read once, the output written once); a broadcast operand
//! is counted at its own size because it is reused from cache. FLOPs count one operation per
//! output element, whatever the op (a transcendental such as `exp` or `gelu` counts as one), so
//! the figure compares ops with each other, not with a FLOP-counting profiler.

/// Bytes of `out = f(a)`: read `n`, write `n`.
pub fn unary_bytes(n: usize, elem_bytes: usize) -> f64 {
    2.0 * n as f64 * elem_bytes as f64
}

/// Bytes of `out = f(a, b)` with numpy broadcasting: both operands at their own sizes, plus
/// the output.
pub fn binary_bytes(a_elems: usize, b_elems: usize, out_elems: usize, elem_bytes: usize) -> f64 {
    (a_elems + b_elems + out_elems) as f64 * elem_bytes as f64
}

/// One operation per output element.
pub fn flops(out_elems: usize) -> f64 {
    out_elems as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(unary_bytes(1 << 20, 4), 8.0 * (1 << 20) as f64);
        // A row broadcast over 1024 rows: the row is read once.
        assert_eq!(
            binary_bytes(1024 * 256, 256, 1024 * 256, 4),
            (2 * 1024 * 256 + 256) as f64 * 4.0
        );
        assert_eq!(flops(10), 10.0);
    }
}
