//! matmul through cuBLAS (f32, no TF32) against the CPU GEMM, forward and backward, with
//! transposed operands and broadcast batches.

use super::common::*;

#[test]
fn matmul_forward_and_backward() {
    let Some(dev) = cuda_or_skip("matmul_forward_and_backward") else {
        return;
    };
    let mut r = rng(21);
    let cases: [(&[usize], &[usize]); 8] = [
        (&[1, 1], &[1, 1]),
        (&[31, 33], &[33, 17]),
        (&[64, 128], &[128, 96]),
        (&[1, 1000], &[1000, 3]),
        (&[33], &[33, 31]),
        (&[4, 31, 33], &[33, 5]),
        (&[2, 1, 7, 9], &[3, 9, 4]),
        (&[5, 0], &[0, 3]),
    ];
    for (sa, sb) in cases {
        let a = random(sa, Domain::Normal, &mut r);
        let b = random(sb, Domain::Normal, &mut r);
        let k = *sa.last().unwrap_or(&1);
        // Dot products of k terms: rounding grows like sqrt(k)·eps·|a||b|, summed in different
        // orders on the two devices, so the absolute tolerance scales with sqrt(k).
        let atol = 1e-5 * (k.max(1) as f64).sqrt() * 3.0;
        check(
            "matmul",
            dev,
            &[a.clone(), b.clone()],
            |t| t[0].matmul(&t[1]),
            F32_RTOL,
            atol,
        );
    }
    let a = random(&[33, 31], Domain::Normal, &mut r);
    let b = random(&[17, 33], Domain::Normal, &mut r);
    check(
        "matmul transposed",
        dev,
        &[a, b],
        |t| t[0].t()?.matmul(&t[1].t()?),
        F32_RTOL,
        1e-4,
    );
}

#[test]
fn an_mlp_step_matches() {
    let Some(dev) = cuda_or_skip("an_mlp_step_matches") else {
        return;
    };
    let mut r = rng(22);
    let x = random(&[16, 33], Domain::Normal, &mut r);
    let w1 = random(&[33, 64], Domain::Normal, &mut r).mul_scalar(0.2).unwrap();
    let b1 = random(&[64], Domain::Normal, &mut r);
    let w2 = random(&[64, 1], Domain::Normal, &mut r).mul_scalar(0.2).unwrap();
    check(
        "mlp",
        dev,
        &[x, w1, b1, w2],
        |t| {
            t[0].matmul(&t[1])?
                .add(&t[2])?
                .gelu()?
                .matmul(&t[3])?
                .tanh()?
                .sum(&[], false)
        },
        1e-4,
        1e-4,
    );
}
