//! The parity harness: build inputs on the CPU, copy them to the GPU, run the same function
//! on both, compare values and gradients with a stated tolerance.

use autograd::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::Once;

/// Tolerances for f32. Relative 1e-5 is ~80 ulp: the GPU's expf/tanhf/erff are within 2 ulp of
/// the correctly rounded value and the CPU's libm within 1, and a fused multiply-add moves a
/// result by at most an ulp or so per operation. The absolute floor covers results that cancel
/// to near zero (gelu around 0, x - y of close values), where relative error means nothing.
pub const F32_RTOL: f64 = 1e-5;
pub const F32_ATOL: f64 = 1e-6;

/// The CUDA device to test on, or `None` after printing why the test skips.
pub fn cuda_or_skip(test: &str) -> Option<Device> {
    static POISON: Once = Once::new();
    // Before the device (and so its pool) is created: every buffer starts as 0xFF bytes, a NaN
    // in f32, bf16 and f64, so unwritten output elements cannot pass a comparison.
    POISON.call_once(|| std::env::set_var("KERNELS_POOL_POISON", "1"));
    match Device::cuda_unavailable_reason() {
        None => Some(Device::Cuda(0)),
        Some(why) => {
            let required = std::env::var("REQUIRE_CUDA").is_ok_and(|v| v == "1");
            assert!(!required, "REQUIRE_CUDA=1 but CUDA is not usable: {why}");
            // Straight to stderr: libtest captures eprintln! of passing tests, and a skip must
            // be seen in every run.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("\n{test}: SKIPPED (no GPU; REQUIRE_CUDA=1 makes this fail): {why}\n").as_bytes(),
            );
            None
        }
    }
}

/// What values an op's inputs may take.
#[derive(Clone, Copy, Debug)]
pub enum Domain {
    /// Uniform in [-3, 3] (covers both sides of every kink and the saturating tails).
    Normal,
    /// Uniform in [0.5, 2]: log, sqrt, rsqrt, pow.
    Positive,
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn random(shape: &[usize], domain: Domain, rng: &mut StdRng) -> Tensor {
    let (lo, hi) = match domain {
        Domain::Normal => (-3.0, 3.0),
        Domain::Positive => (0.5, 2.0),
    };
    Tensor::rand_uniform(shape, lo, hi, DType::F32, Device::Cpu, rng).expect("valid range")
}

/// `|gpu - cpu| <= atol + rtol·|cpu|` elementwise; NaN on the GPU where the CPU has a number
/// fails (that is what poisoning catches).
pub fn assert_close(what: &str, cpu: &[f64], gpu: &[f64], rtol: f64, atol: f64) {
    assert_eq!(cpu.len(), gpu.len(), "{what}: lengths differ");
    for (i, (&c, &g)) in cpu.iter().zip(gpu).enumerate() {
        if c.is_nan() && g.is_nan() || c == g {
            continue;
        }
        let err = (g - c).abs();
        let ok = err <= atol + rtol * c.abs();
        assert!(
            ok,
            "{what}: element {i} of {}: cpu {c} gpu {g} (|diff| {err:e} > {atol:e} + {rtol:e}·|cpu|)",
            cpu.len()
        );
    }
}

/// Run `f` on CPU inputs and on their CUDA copies; compare the outputs, then the gradients of
/// every input for a random seed gradient (the same on both devices).
pub fn check(
    name: &str,
    device: Device,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> autograd::Result<Tensor>,
    rtol: f64,
    atol: f64,
) {
    let cpu: Vec<Tensor> = inputs.iter().map(|t| t.set_requires_grad(true)).collect();
    let gpu: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.to_device(device).expect("upload").set_requires_grad(true))
        .collect();
    let yc = f(&cpu).unwrap_or_else(|e| panic!("{name} on the CPU: {e}"));
    let yg = f(&gpu).unwrap_or_else(|e| panic!("{name} on {device}: {e}"));
    assert_eq!(yg.device(), device, "{name}: output left the device");
    assert_eq!(yc.shape(), yg.shape(), "{name}: shapes differ");
    let (vc, vg) = (yc.to_vec_f64().expect("read"), yg.to_vec_f64().expect("read"));
    assert_close(&format!("{name} forward {:?}", yc.shape()), &vc, &vg, rtol, atol);
    if yc.dtype() != DType::F32 {
        return;
    }
    let seed = random(yc.shape(), Domain::Normal, &mut rng(7));
    let gc = yc
        .backward_with(&seed)
        .unwrap_or_else(|e| panic!("{name} backward on the CPU: {e}"));
    let seed_gpu = seed.to_device(device).expect("upload");
    let gg = yg
        .backward_with(&seed_gpu)
        .unwrap_or_else(|e| panic!("{name} backward on {device}: {e}"));
    for (i, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
        let (Some(dc), Some(dg)) = (gc.get(c), gg.get(g)) else {
            assert!(
                gc.get(c).is_none() && gg.get(g).is_none(),
                "{name}: gradient {i} on one device only"
            );
            continue;
        };
        assert_eq!(dg.device(), device, "{name}: gradient left the device");
        let (vc, vg) = (dc.to_vec_f64().expect("read"), dg.to_vec_f64().expect("read"));
        assert_close(&format!("{name} grad {i} {:?}", c.shape()), &vc, &vg, rtol, atol);
    }
}

/// The awkward sizes every elementwise op runs on: below, at and just past a warp, not a
/// multiple of the vector width, and one past a block boundary.
pub const SIZES: [&[usize]; 6] = [&[1], &[31], &[33], &[1000], &[4097], &[3, 70_001]];
