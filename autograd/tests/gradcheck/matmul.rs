//! Matrix products: plain, batched, broadcast batch dims, 1-D operands, transposed views.

use super::common::*;

pub fn cases() -> Vec<Case> {
    let mut r = rng(7);
    let shapes: [(&[usize], &[usize]); 7] = [
        (&[3, 4], &[4, 5]),
        (&[1, 4], &[4, 1]),
        (&[2, 3, 4], &[2, 4, 5]),
        (&[2, 3, 4], &[4, 2]),
        (&[2, 1, 3, 4], &[3, 4, 2]),
        (&[4], &[4, 3]),
        (&[3, 4], &[4]),
    ];
    let mut cases: Vec<Case> = shapes
        .iter()
        .map(|(sa, sb)| {
            let a = randn(sa, &mut r);
            let b = randn(sb, &mut r);
            Case::new(format!("matmul {sa:?} @ {sb:?}"), vec![a, b], |x| {
                x[0].matmul(&x[1])
            })
        })
        .collect();
    let a = randn(&[4, 3], &mut r);
    let b = randn(&[5, 4], &mut r);
    cases.push(Case::new("matmul of transposed views", vec![a, b], |x| {
        x[0].t()?.matmul(&x[1].t()?)
    }));
    cases
}
