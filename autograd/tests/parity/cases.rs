//! Parity cases as data, for the row-wise families (reductions, softmax, norms, losses,
//! indexing, dropout): each case is run on both devices by [`run`], and on the CPU alone by the
//! coverage test, which collects the op names it records.
//!
//! The tolerance is `|gpu − cpu| <= rtol·|cpu| + floor·max|cpu|` per compared tensor (the
//! output, then each gradient): a relative bound, plus an absolute floor scaled to the tensor's
//! own magnitude, because these outputs span scales (a softmax over 70 001 entries is ~1e-5
//! everywhere, its gradient smaller still) and a fixed absolute floor would be either loose for
//! the small ones or meaningless for the large.

use super::common::*;
use autograd::{DType, Device, Result, Tensor};

pub type CaseFn = Box<dyn Fn(&[Tensor]) -> Result<Tensor>>;

pub struct Case {
    pub name: String,
    pub inputs: Vec<Tensor>,
    /// Which inputs are differentiable (float); index tensors are not.
    pub grad: Vec<bool>,
    pub f: CaseFn,
    pub rtol: f64,
    pub floor: f64,
}

impl Case {
    pub fn new(
        name: impl Into<String>,
        inputs: Vec<Tensor>,
        f: impl Fn(&[Tensor]) -> Result<Tensor> + 'static,
        rtol: f64,
        floor: f64,
    ) -> Case {
        let grad = inputs.iter().map(|t| t.dtype() == DType::F32).collect();
        Case {
            name: name.into(),
            inputs,
            grad,
            f: Box::new(f),
            rtol,
            floor,
        }
    }
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter()
        .filter(|x| x.is_finite())
        .fold(0.0, |m, x| m.max(x.abs()))
}

fn compare(what: &str, cpu: &Tensor, gpu: &Tensor, rtol: f64, floor: f64) {
    let (vc, vg) = (cpu.to_vec_f64().expect("read"), gpu.to_vec_f64().expect("read"));
    let atol = floor * max_abs(&vc);
    assert_close(what, &vc, &vg, rtol, atol);
}

/// The CPU output of a case, tracked (for the coverage scan).
pub fn cpu_output(case: &Case) -> Tensor {
    let cpu: Vec<Tensor> = case
        .inputs
        .iter()
        .zip(&case.grad)
        .map(|(t, &g)| if g { t.set_requires_grad(true) } else { t.clone() })
        .collect();
    (case.f)(&cpu).unwrap_or_else(|e| panic!("{} on the CPU: {e}", case.name))
}

/// Run the case on the CPU and on `device`; compare the outputs, then every gradient for one
/// random seed gradient (the same on both devices).
pub fn run(case: &Case, device: Device) {
    let name = &case.name;
    let track = |t: Tensor, g: bool| if g { t.set_requires_grad(true) } else { t };
    let cpu: Vec<Tensor> = case
        .inputs
        .iter()
        .zip(&case.grad)
        .map(|(t, &g)| track(t.clone(), g))
        .collect();
    let gpu: Vec<Tensor> = case
        .inputs
        .iter()
        .zip(&case.grad)
        .map(|(t, &g)| track(t.to_device(device).expect("upload"), g))
        .collect();
    let yc = (case.f)(&cpu).unwrap_or_else(|e| panic!("{name} on the CPU: {e}"));
    let yg = (case.f)(&gpu).unwrap_or_else(|e| panic!("{name} on {device}: {e}"));
    assert_eq!(yg.device(), device, "{name}: output left the device");
    assert_eq!(yc.shape(), yg.shape(), "{name}: shapes differ");
    compare(
        &format!("{name} forward {:?}", yc.shape()),
        &yc,
        &yg,
        case.rtol,
        case.floor,
    );
    if !case.grad.iter().any(|&g| g) || yc.dtype() != DType::F32 {
        return;
    }
    let seed = random(yc.shape(), Domain::Normal, &mut rng(7));
    let gc = yc
        .backward_with(&seed)
        .unwrap_or_else(|e| panic!("{name} backward on the CPU: {e}"));
    let gg = yg
        .backward_with(&seed.to_device(device).expect("upload"))
        .unwrap_or_else(|e| panic!("{name} backward on {device}: {e}"));
    for (i, ((c, g), &tracked)) in cpu.iter().zip(&gpu).zip(&case.grad).enumerate() {
        if !tracked {
            continue;
        }
        let (Some(dc), Some(dg)) = (gc.get(c), gg.get(g)) else {
            assert!(
                gc.get(c).is_none() && gg.get(g).is_none(),
                "{name}: gradient {i} on one device only"
            );
            continue;
        };
        assert_eq!(dg.device(), device, "{name}: gradient {i} left the device");
        compare(
            &format!("{name} grad {i} {:?}", c.shape()),
            dc,
            dg,
            case.rtol,
            case.floor,
        );
    }
}

/// Run every case, or print why not.
pub fn run_all(test: &str, cases: Vec<Case>) {
    let Some(dev) = cuda_or_skip(test) else {
        return;
    };
    let n = cases.len();
    for case in &cases {
        run(case, dev);
    }
    eprintln!("{test}: {n} cases passed on {dev}");
}
