//! Elementwise and broadcast maps, reductions, softmax, layer and RMS norm: memory-bound ops
//! through the tensor API, so each row includes what a training step pays per call (dispatch,
//! the output's allocation, the loop). Shapes: 4M-element vectors and 4096 × 1024 activations
//! (16 MiB each in f32), plus long softmax rows as in a vocabulary projection.

use autograd::{DType, Tensor};
use kernels::{elementwise::cost as ew, norm::cost as nc, reduce::cost as rc, softmax::cost as sc};
use serde_json::{json, Value};

use super::{dims, dtype_name, err, np_dtype, randn, sets, Case, Reference, Scale};

type Op = fn(&[Tensor]) -> autograd::Result<Tensor>;

/// A case that applies `op` to freshly drawn inputs of `shapes` (the first shape names the row).
/// `py` is the reference case without its dtype and shapes, which are filled in here.
#[allow(clippy::too_many_arguments)]
pub(super) fn op_case(
    family: &'static str,
    kernel: &str,
    shapes: Vec<Vec<usize>>,
    dtype: DType,
    bytes: f64,
    flops: f64,
    mut py: Value,
    op: Op,
) -> Case {
    py["dtype"] = json!(np_dtype(dtype));
    py["shapes"] = json!(shapes);
    let shape = shapes.iter().map(|s| dims(s)).collect::<Vec<_>>().join(", ");
    Case {
        family,
        kernel: kernel.into(),
        shape,
        dtype: dtype_name(dtype),
        bytes,
        flops,
        build: Box::new(move |env| {
            let device = env.device;
            let inputs = sets(env.copies, |seed| {
                (0..shapes.len())
                    .map(|k| randn(&shapes[k], dtype, device, seed + k as u64))
                    .collect::<Result<Vec<_>, _>>()
            })?;
            Ok(Box::new(move |i| {
                op(&inputs[i % inputs.len()]).map(drop).map_err(err)
            }))
        }),
        reference: Reference::Python(py),
    }
}

pub(super) fn cases(scale: Scale) -> Vec<Case> {
    let n = scale.pick(1 << 22, 1 << 22, 1 << 10);
    let (r, c) = scale.pick((4096, 1024), (4096, 1024), (16, 64));
    let (lr, lc) = scale.pick((64, 65_536), (64, 65_536), (4, 256));
    let f = DType::F32;
    let e = 4;
    let mut out = vec![
        op_case(
            "elementwise",
            "add",
            vec![vec![n], vec![n]],
            f,
            ew::binary_bytes(n, n, n, e),
            ew::flops(n),
            json!({"op": "add"}),
            |x| x[0].add(&x[1]),
        ),
        op_case(
            "elementwise",
            "mul",
            vec![vec![n], vec![n]],
            f,
            ew::binary_bytes(n, n, n, e),
            ew::flops(n),
            json!({"op": "mul"}),
            |x| x[0].mul(&x[1]),
        ),
        op_case(
            "elementwise",
            "add (row broadcast)",
            vec![vec![r, c], vec![c]],
            f,
            ew::binary_bytes(r * c, c, r * c, e),
            ew::flops(r * c),
            json!({"op": "add"}),
            |x| x[0].add(&x[1]),
        ),
        op_case(
            "elementwise",
            "mul_scalar",
            vec![vec![n]],
            f,
            ew::unary_bytes(n, e),
            ew::flops(n),
            json!({"op": "mul_scalar"}),
            |x| x[0].mul_scalar(1.5),
        ),
        op_case(
            "elementwise",
            "exp",
            vec![vec![n]],
            f,
            ew::unary_bytes(n, e),
            ew::flops(n),
            json!({"op": "exp"}),
            |x| x[0].exp(),
        ),
        op_case(
            "elementwise",
            "gelu (erf)",
            vec![vec![n]],
            f,
            ew::unary_bytes(n, e),
            ew::flops(n),
            json!({"op": "gelu"}),
            |x| x[0].gelu(),
        ),
        op_case(
            "reduce",
            "sum (last axis)",
            vec![vec![r, c]],
            f,
            rc::bytes_moved(r, c, e),
            rc::flops(r, c),
            json!({"op": "sum", "axis": -1}),
            |x| x[0].sum(&[-1], false),
        ),
        op_case(
            "reduce",
            "sum (first axis)",
            vec![vec![r, c]],
            f,
            rc::bytes_moved(c, r, e),
            rc::flops(c, r),
            json!({"op": "sum", "axis": 0}),
            |x| x[0].sum(&[0], false),
        ),
        op_case(
            "reduce",
            "max (last axis)",
            vec![vec![r, c]],
            f,
            rc::bytes_moved(r, c, e),
            rc::flops(r, c),
            json!({"op": "max", "axis": -1}),
            |x| x[0].max(&[-1], false),
        ),
    ];
    for (rows, cols) in [(r, c), (lr, lc)] {
        out.push(op_case(
            "softmax",
            "softmax",
            vec![vec![rows, cols]],
            f,
            sc::forward_bytes(rows, cols, e),
            sc::forward_flops(rows, cols),
            json!({"op": "softmax"}),
            |x| x[0].softmax(-1),
        ));
    }
    out.push(op_case(
        "softmax",
        "log_softmax",
        vec![vec![r, c]],
        f,
        sc::forward_bytes(r, c, e),
        sc::forward_flops(r, c),
        json!({"op": "log_softmax"}),
        |x| x[0].log_softmax(-1),
    ));
    out.push(op_case(
        "norm",
        "layer_norm (affine)",
        vec![vec![r, c], vec![c], vec![c]],
        f,
        nc::layer_norm_bytes(r, c, e, true),
        nc::layer_norm_flops(r, c),
        json!({"op": "layer_norm"}),
        |x| x[0].layer_norm(x[1].shape(), Some(&x[1]), Some(&x[2]), 1e-5),
    ));
    out.push(op_case(
        "norm",
        "rms_norm (weight)",
        vec![vec![r, c], vec![c]],
        f,
        nc::rms_norm_bytes(r, c, e, true),
        nc::rms_norm_flops(r, c),
        json!({"op": "rms_norm"}),
        |x| x[0].rms_norm(x[1].shape(), Some(&x[1]), 1e-6),
    ));
    out.push(embedding_case(scale));
    out.push(op_case(
        "random",
        "dropout (p = 0.1, train)",
        vec![vec![n]],
        f,
        kernels::random::cost::dropout_bytes(n, e),
        kernels::random::cost::dropout_flops(n),
        json!({"op": "dropout", "p": 0.1}),
        |x| x[0].dropout(0.1, 7, 0, true),
    ));
    out
}

/// An embedding lookup: `ids` token ids (spread over the vocabulary) into a `[vocab, dim]` table.
fn embedding_case(scale: Scale) -> Case {
    let (ids, vocab, dim) = scale.pick((16_384, 32_768, 512), (8192, 32_768, 512), (64, 100, 16));
    let f = DType::F32;
    Case {
        family: "index",
        kernel: "embedding".into(),
        shape: format!("{ids} ids, {vocab}x{dim}"),
        dtype: "f32",
        bytes: kernels::index::cost::gather_rows_bytes(ids, dim, 4),
        flops: kernels::index::cost::gather_rows_flops(ids, dim),
        build: Box::new(move |env| {
            let device = env.device;
            let inputs = sets(env.copies, |seed| {
                // A multiplicative hash spreads consecutive positions over the table.
                let id: Vec<i64> = (0..ids as u64)
                    .map(|k| ((k * 7919 + seed) % vocab as u64) as i64)
                    .collect();
                let id =
                    Tensor::from_vec(id, &[ids], autograd::Device::Cpu).and_then(|t| t.to_device(device));
                Ok((id.map_err(err)?, randn(&[vocab, dim], f, device, seed)?))
            })?;
            Ok(Box::new(move |i| {
                let (id, w) = &inputs[i % inputs.len()];
                autograd::embedding(id, w).map(drop).map_err(err)
            }))
        }),
        reference: Reference::Python(json!({"op": "embedding", "ids": ids, "vocab": vocab, "dim": dim})),
    }
}
