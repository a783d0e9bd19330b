//! Every differentiable op against central finite differences in f64, over several random
//! shapes per op, plus the coverage check that no recorded op goes without a case here.

mod attention;
mod common;
mod coverage;
mod elementwise;
mod index;
mod layout;
mod masked_xent;
mod matmul;
mod nn_ops;
mod reduce;

use common::run;

#[test]
fn unary_ops() {
    run(elementwise::unary_cases());
}

#[test]
fn binary_ops() {
    run(elementwise::binary_cases());
}

#[test]
fn scalar_ops() {
    run(elementwise::scalar_cases());
}

#[test]
fn where_and_masked_fill() {
    run(elementwise::select_cases());
}

#[test]
fn reductions() {
    run(reduce::cases());
}

#[test]
fn layout_ops() {
    run(layout::cases());
}

#[test]
fn matmul() {
    run(matmul::cases());
}

#[test]
fn index_ops() {
    run(index::cases());
}

#[test]
fn nn_ops() {
    run(nn_ops::cases());
}

#[test]
fn masked_softmax_and_cross_entropy() {
    run(masked_xent::cases());
}

#[test]
fn attention_ops() {
    run(attention::cases());
}

/// All cases of all families, for the coverage check.
pub fn all_cases() -> Vec<common::Case> {
    let mut all = Vec::new();
    all.extend(elementwise::unary_cases());
    all.extend(elementwise::binary_cases());
    all.extend(elementwise::scalar_cases());
    all.extend(elementwise::select_cases());
    all.extend(reduce::cases());
    all.extend(layout::cases());
    all.extend(matmul::cases());
    all.extend(index::cases());
    all.extend(nn_ops::cases());
    all.extend(masked_xent::cases());
    all.extend(attention::cases());
    all
}
