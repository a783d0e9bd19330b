//! Reductions over single axes, several axes, negative axes, all axes, with and without keepdim.

use super::common::*;
use autograd::Tensor;

type Reduce = fn(&Tensor, &[isize], bool) -> autograd::Result<Tensor>;

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut r = rng(5);
    let configs: [(&[usize], &[isize], bool); 6] = [
        (&[5], &[0], false),
        (&[3, 4], &[1], true),
        (&[3, 4], &[-2], false),
        (&[2, 3, 4], &[0, 2], true),
        (&[2, 1, 4], &[], false),
        (&[4, 1, 3], &[1], false),
    ];
    let ops: [(&str, Reduce); 6] = [
        ("sum", |x, a, k| x.sum(a, k)),
        ("mean", |x, a, k| x.mean(a, k)),
        ("var", |x, a, k| x.var(a, k, 0)),
        ("max", |x, a, k| x.max(a, k)),
        ("min", |x, a, k| x.min(a, k)),
        ("logsumexp", |x, a, k| x.logsumexp(a, k)),
    ];
    for (shape, axes, keepdim) in configs {
        for (name, op) in ops {
            let x = randn(shape, &mut r);
            let axes = axes.to_vec();
            cases.push(Case::new(
                format!("{name} {shape:?} axes {axes:?} keepdim {keepdim}"),
                vec![x],
                move |x| op(&x[0], &axes, keepdim),
            ));
        }
        let x = randn(shape, &mut r);
        let axes = axes.to_vec();
        // Bessel-corrected variance where the reduced count allows it.
        let count: usize = if axes.is_empty() {
            shape.iter().product()
        } else {
            axes.iter()
                .map(|&a| shape[a.rem_euclid(shape.len() as isize) as usize])
                .product()
        };
        if count > 1 {
            cases.push(Case::new(format!("var unbiased {shape:?}"), vec![x], move |x| {
                x[0].var(&axes, keepdim, 1)
            }));
        }
    }
    let x = randn(&[3, 4], &mut r);
    cases.push(Case::new("sum_all", vec![x.clone()], |x| x[0].sum_all()));
    cases.push(Case::new("mean_all", vec![x], |x| x[0].mean_all()));
    cases
}
