//! What the row gathers of `index.cu` must move, for the bench report's roofline. An embedding
//! lookup (index_select along axis 0) reads `ids` i64 indices and `ids` rows of `dim` elements
//! and writes as many: `ids·8 + 2·ids·dim·elem` bytes. It does no arithmetic; the nominal count
//! is one operation per element written, as for a copy, so that the roofline can place it.

pub fn gather_rows_bytes(ids: usize, dim: usize, elem_bytes: usize) -> f64 {
    ids as f64 * 8.0 + 2.0 * (ids * dim) as f64 * elem_bytes as f64
}

pub fn gather_rows_flops(ids: usize, dim: usize) -> f64 {
    (ids * dim) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts() {
        assert_eq!(super::gather_rows_bytes(10, 4, 4), 80.0 + 320.0);
        assert_eq!(super::gather_rows_flops(10, 4), 40.0);
    }
}
