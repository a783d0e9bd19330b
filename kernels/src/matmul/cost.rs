//! What a GEMM `C[b] = A[b]·B[b]` (`m × k` times `k × n`, `batch` times) must move and compute,
//! for the bench report's roofline: each operand read once and C written once (the minimum; a
//! blocked GEMM re-reads panels from cache, not from memory), and `2·m·n·k` FLOPs per entry
//! ([`super::launch::flops`]).

pub fn bytes_moved(m: usize, n: usize, k: usize, batch: usize, elem_bytes: usize) -> f64 {
    ((m * k + k * n + m * n) * batch * elem_bytes) as f64
}

pub use super::launch::flops;

#[cfg(test)]
mod tests {
    #[test]
    fn counts() {
        assert_eq!(super::bytes_moved(2, 3, 4, 1, 4), ((8 + 12 + 6) * 4) as f64);
        assert_eq!(super::flops(2, 3, 4, 5), 240.0);
    }
}
