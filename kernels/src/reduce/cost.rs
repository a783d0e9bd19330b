//! What a reduction of a contiguous `[rows, len]` buffer along `len` must move and compute, for
//! the bench report's roofline: the input read once and one value written per row; one
//! operation (add, max) per input element.

pub fn bytes_moved(rows: usize, len: usize, elem_bytes: usize) -> f64 {
    (rows * len + rows) as f64 * elem_bytes as f64
}

pub fn flops(rows: usize, len: usize) -> f64 {
    (rows * len) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts() {
        assert_eq!(super::bytes_moved(4, 1000, 4), 4.0 * 4004.0);
        assert_eq!(super::flops(4, 1000), 4000.0);
    }
}
