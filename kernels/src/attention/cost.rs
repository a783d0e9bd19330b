//! What fused attention must move, for the bench report's roofline (the FLOPs are
//! [`super::launch::nominal_flops`], FlashAttention's convention). Bytes are a fused kernel's
//! minimum: the forward reads q, k, v and writes the output and the f32 log-sum-exp per row;
//! the backward reads q, k, v, the output, its gradient and the lse, and writes dq, dk, dv. A
//! materialized implementation also moves the `nq × nk` score matrix, which is why the same
//! count gives it a lower arithmetic intensity in practice than on paper.

use super::AttnShape;

pub fn forward_bytes(shape: &AttnShape, elem_bytes: usize) -> f64 {
    ((2 * shape.q_elems() + 2 * shape.kv_elems()) * elem_bytes + shape.rows() * 4) as f64
}

pub fn backward_bytes(shape: &AttnShape, elem_bytes: usize) -> f64 {
    ((4 * shape.q_elems() + 4 * shape.kv_elems()) * elem_bytes + shape.rows() * 4) as f64
}

pub use super::launch::nominal_flops as flops;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let s = AttnShape {
            batch: 1,
            heads: 2,
            kv_heads: 1,
            q_len: 8,
            kv_len: 16,
            head_dim: 4,
        };
        // q: 64 elements, k/v: 64 each, 16 rows.
        assert_eq!(forward_bytes(&s, 4), ((128 + 128) * 4 + 64) as f64);
        assert_eq!(backward_bytes(&s, 2), ((256 + 256) * 2 + 64) as f64);
        assert_eq!(flops(&s, false, false), 4.0 * 2.0 * 8.0 * 16.0 * 4.0);
    }
}
