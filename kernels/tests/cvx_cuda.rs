//! CPU/CUDA parity of every `cvx.cu` kernel (through the launchers of `kernels::cvx::cuda`)
//! against the plain references of `kernels::cvx`, in f32 and f64, on awkward sizes (n = 1,
//! d over one 32-wide feature tile, p over one 16-pattern tile, n over one 128-row block), with
//! every device buffer poisoned (NaN bytes) so an element a kernel forgets to write shows.
//! Also [`CudaPatternOps`] (two stacked copies, as ADMM passes them) against `PatternOps`.
//!
//! Tolerances: both sides accumulate in the element type but in different orders (shared-memory
//! tiles and warp trees on the GPU), so each output may differ by at most the classic bound for
//! two sums of m terms, 2·m·ε·Σ|terms|, where Σ|terms| is the same product on |x|, |v| with
//! every mask entry 1 and m the terms per output (d + p forward, n adjoint).
//!
//! Skips with a printed reason where there is no GPU; `REQUIRE_CUDA=1` makes that a failure.

use std::sync::{Arc, Once};

use kernels::cuda::{CudaDevice, DeviceBuffer};
use kernels::cvx::cuda as k;
use kernels::cvx::{self as cpu, CudaPatternOps, CvxShape, CvxType, PatternOps};
use kernels::Float;

/// A small deterministic generator (the kernels crate has no rand dependency).
struct StdRng(u64);

impl StdRng {
    fn seed_from_u64(seed: u64) -> StdRng {
        StdRng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn random_range(&mut self, r: std::ops::Range<f64>) -> f64 {
        r.start + (r.end - r.start) * self.unit()
    }
    fn random_bool(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

fn cuda_or_skip(test: &str) -> Option<Arc<CudaDevice>> {
    static POISON: Once = Once::new();
    // Before the device (and its pool) exists: new buffers are 0xFF bytes, NaN in f32 and f64.
    POISON.call_once(|| std::env::set_var("KERNELS_POOL_POISON", "1"));
    match CudaDevice::get(0) {
        Ok(dev) => Some(dev),
        Err(why) => {
            assert!(
                std::env::var("REQUIRE_CUDA").as_deref() != Ok("1"),
                "REQUIRE_CUDA=1 but CUDA is not usable: {why}"
            );
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("\n{test}: SKIPPED (no GPU; REQUIRE_CUDA=1 makes this fail): {why}\n").as_bytes(),
            );
            None
        }
    }
}

/// (n, d, p): one sample; d over a feature tile; p over a pattern tile; n over a row block.
const SHAPES: [(usize, usize, usize); 4] = [(1, 1, 1), (33, 37, 17), (300, 5, 40), (129, 3, 1)];

trait Elem: Float + Copy + Default + 'static {
    const TY: CvxType;
    const EPS: f64;
    fn from(v: f64) -> Self;
    fn to(self) -> f64;
}
impl Elem for f32 {
    const TY: CvxType = CvxType::F32;
    const EPS: f64 = f32::EPSILON as f64;
    fn from(v: f64) -> f32 {
        v as f32
    }
    fn to(self) -> f64 {
        self as f64
    }
}
impl Elem for f64 {
    const TY: CvxType = CvxType::F64;
    const EPS: f64 = f64::EPSILON;
    fn from(v: f64) -> f64 {
        v
    }
    fn to(self) -> f64 {
        self
    }
}

fn rand_vec<T: Elem>(rng: &mut StdRng, len: usize) -> Vec<T> {
    (0..len).map(|_| T::from(rng.random_range(-2.0..2.0))).collect()
}

fn up<T: Copy>(dev: &CudaDevice, v: &[T]) -> DeviceBuffer {
    dev.upload(v).unwrap()
}

fn down<T: Elem>(dev: &CudaDevice, b: &DeviceBuffer, len: usize) -> Vec<T> {
    let mut out = vec![T::default(); len];
    dev.copy_to_host(b, 0, &mut out).unwrap();
    out
}

fn abs<T: Elem>(v: &[T]) -> Vec<T> {
    v.iter().map(|e| T::from(e.to().abs())).collect()
}

fn close<T: Elem>(what: &str, got: &[T], want: &[T], scale: &[T], terms: usize) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (e, ((g, w), s)) in got.iter().zip(want).zip(scale).enumerate() {
        let tol = 2.0 * terms as f64 * T::EPS * s.to() + f64::MIN_POSITIVE;
        let (g, w) = (g.to(), w.to());
        assert!(
            (g - w).abs() <= tol,
            "{what}: element {e}: CUDA {g} vs CPU {w} (tolerance {tol:.2e})"
        );
    }
}

fn products<T: Elem>(dev: &CudaDevice, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for (n, d, p) in SHAPES {
        let s = CvxShape { n, d, p };
        let x: Vec<T> = rand_vec(&mut rng, n * d);
        let mask: Vec<u8> = (0..p * n).map(|_| u8::from(rng.random_bool(0.5))).collect();
        let ones = vec![1u8; p * n];
        let v: Vec<T> = rand_vec(&mut rng, p * d);
        let r: Vec<T> = rand_vec(&mut rng, n);
        let z: Vec<T> = rand_vec(&mut rng, p * n);
        let (xa, va, ra, za) = (abs(&x), abs(&v), abs(&r), abs(&z));
        let (bx, bm) = (up(dev, &x), up(dev, &mask));
        let tag = |op: &str| format!("{op} {:?} n={n} d={d} p={p}", T::TY);

        let bv = up(dev, &v);
        let out = dev.alloc(n * 8).unwrap();
        unsafe { k::masked_forward(dev, T::TY, bx.ptr(), bm.ptr(), bv.ptr(), out.ptr(), s) }.unwrap();
        let (mut want, mut scale) = (vec![T::default(); n], vec![T::default(); n]);
        cpu::masked_forward(&x, &mask, &v, s, &mut want).unwrap();
        cpu::masked_forward(&xa, &ones, &va, s, &mut scale).unwrap();
        close(
            &tag("masked_forward"),
            &down::<T>(dev, &out, n),
            &want,
            &scale,
            d + p,
        );

        let out = dev.alloc(p * n * 8).unwrap();
        unsafe { k::sign_forward(dev, T::TY, bx.ptr(), bm.ptr(), bv.ptr(), out.ptr(), s) }.unwrap();
        let (mut want, mut scale) = (vec![T::default(); p * n], vec![T::default(); p * n]);
        cpu::sign_forward(&x, &mask, &v, s, &mut want).unwrap();
        cpu::sign_forward(&xa, &ones, &va, s, &mut scale).unwrap();
        let sign_scale = scale.clone();
        close(
            &tag("sign_forward"),
            &down::<T>(dev, &out, p * n),
            &want,
            &scale,
            d,
        );

        let br = up(dev, &r);
        let out = dev.alloc(p * d * 8).unwrap();
        unsafe { k::masked_backward(dev, T::TY, bx.ptr(), bm.ptr(), br.ptr(), out.ptr(), s) }.unwrap();
        let (mut want, mut scale) = (vec![T::default(); p * d], vec![T::default(); p * d]);
        cpu::masked_backward(&x, &mask, &r, s, &mut want).unwrap();
        cpu::masked_backward(&xa, &ones, &ra, s, &mut scale).unwrap();
        close(
            &tag("masked_backward"),
            &down::<T>(dev, &out, p * d),
            &want,
            &scale,
            n,
        );

        let bz = up(dev, &z);
        let out = dev.alloc(p * d * 8).unwrap();
        unsafe { k::sign_backward(dev, T::TY, bx.ptr(), bm.ptr(), bz.ptr(), out.ptr(), s) }.unwrap();
        cpu::sign_backward(&x, &mask, &z, s, &mut want).unwrap();
        cpu::sign_backward(&xa, &ones, &za, s, &mut scale).unwrap();
        close(
            &tag("sign_backward"),
            &down::<T>(dev, &out, p * d),
            &want,
            &scale,
            n,
        );

        // The fused slack step: s, ν random (ν ≥ 0 or not does not matter to the algebra).
        let (s0, nu0): (Vec<T>, Vec<T>) = (rand_vec(&mut rng, p * n), rand_vec(&mut rng, p * n));
        let (bs, bnu) = (up(dev, &s0), up(dev, &nu0));
        let (bds, brr) = (dev.alloc(p * n * 8).unwrap(), dev.alloc(p * n * 8).unwrap());
        unsafe {
            k::admm_slack_step(
                dev,
                T::TY,
                bx.ptr(),
                bm.ptr(),
                bv.ptr(),
                [bs.ptr(), bnu.ptr(), bds.ptr(), brr.ptr()],
                s,
            )
        }
        .unwrap();
        let (mut cs, mut cnu) = (s0.clone(), nu0.clone());
        let (mut cds, mut crr) = (vec![T::default(); p * n], vec![T::default(); p * n]);
        cpu::admm_slack_step(&x, &mask, &v, s, &mut cs, &mut cnu, &mut cds, &mut crr).unwrap();
        // g's error propagates into every output; |s|, |ν| add their own rounding.
        let sc: Vec<T> = (0..p * n)
            .map(|e| T::from(sign_scale[e].to() + s0[e].to().abs() + nu0[e].to().abs()))
            .collect();
        for (name, b, want) in [
            ("s", &bs, &cs),
            ("nu", &bnu, &cnu),
            ("ds", &bds, &cds),
            ("r", &brr, &crr),
        ] {
            close(
                &tag(&format!("admm_slack_step {name}")),
                &down::<T>(dev, b, p * n),
                want,
                &sc,
                d + 2,
            );
        }
    }
}

fn group_steps<T: Elem>(dev: &CudaDevice, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    // One group, a group over a warp, many groups over one grid wave's worth of warps.
    for (groups, d) in [(1usize, 1usize), (3, 33), (2000, 7)] {
        let len = groups * d;
        let tag = |op: &str| format!("{op} {:?} groups={groups} d={d}", T::TY);
        let v: Vec<T> = rand_vec(&mut rng, len);
        // A threshold that zeroes some groups and shrinks others.
        let t = 1.0 * (d as f64).sqrt();
        let bv = up(dev, &v);
        unsafe { k::group_soft_threshold(dev, T::TY, bv.ptr(), groups, d, t) }.unwrap();
        let mut want = v.clone();
        cpu::group_soft_threshold(&mut want, d, T::from(t)).unwrap();
        // The norm (d terms) then a scale: relative error ~ (d + 3)ε of |v| per element.
        close(
            &tag("group_soft_threshold"),
            &down::<T>(dev, &bv, len),
            &want,
            &abs(&v),
            d + 3,
        );

        let (u, lam, v0): (Vec<T>, Vec<T>, Vec<T>) = (
            rand_vec(&mut rng, len),
            rand_vec(&mut rng, len),
            rand_vec(&mut rng, len),
        );
        let bufs = [
            up(dev, &u),
            up(dev, &lam),
            up(dev, &v0),
            dev.alloc(len * 8).unwrap(),
            dev.alloc(len * 8).unwrap(),
        ];
        let ptrs = [
            bufs[0].ptr(),
            bufs[1].ptr(),
            bufs[2].ptr(),
            bufs[3].ptr(),
            bufs[4].ptr(),
        ];
        unsafe { k::admm_group_step(dev, T::TY, ptrs, groups, d, t) }.unwrap();
        let (mut cl, mut cv) = (lam.clone(), v0.clone());
        let (mut cdv, mut cr) = (vec![T::default(); len], vec![T::default(); len]);
        cpu::admm_group_step(&u, &mut cl, &mut cv, &mut cdv, &mut cr, d, T::from(t)).unwrap();
        let sc: Vec<T> = (0..len)
            .map(|e| T::from(u[e].to().abs() + lam[e].to().abs() + v0[e].to().abs()))
            .collect();
        for (name, b, want) in [("lambda", 1, &cl), ("v", 2, &cv), ("dv", 3, &cdv), ("r", 4, &cr)] {
            close(
                &tag(&format!("admm_group_step {name}")),
                &down::<T>(dev, &bufs[b], len),
                want,
                &sc,
                d + 4,
            );
        }

        // The projection is exact: max(0, s) rounds nothing.
        let bs = up(dev, &v);
        unsafe { k::project_nonneg(dev, T::TY, bs.ptr(), len) }.unwrap();
        let mut want = v.clone();
        cpu::project_nonneg(&mut want);
        assert_eq!(down::<T>(dev, &bs, len), want, "{}", tag("project_nonneg"));
    }
}

#[test]
fn products_and_slack_step_match_the_cpu_references() {
    let Some(dev) = cuda_or_skip("products_and_slack_step_match_the_cpu_references") else {
        return;
    };
    products::<f64>(&dev, 1);
    products::<f32>(&dev, 2);
}

#[test]
fn group_steps_and_projection_match_the_cpu_references() {
    let Some(dev) = cuda_or_skip("group_steps_and_projection_match_the_cpu_references") else {
        return;
    };
    group_steps::<f64>(&dev, 3);
    group_steps::<f32>(&dev, 4);
}

/// The solvers' interface: two stacked copies for the sign products, one for the masked ones.
#[test]
fn cuda_pattern_ops_match_pattern_ops() {
    let Some(dev) = cuda_or_skip("cuda_pattern_ops_match_pattern_ops") else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(5);
    for (n, d, p) in SHAPES {
        let s = CvxShape { n, d, p };
        let x: Vec<f64> = rand_vec(&mut rng, n * d);
        let mask: Vec<u8> = (0..p * n).map(|_| u8::from(rng.random_bool(0.5))).collect();
        let (cpu_ops, gpu) = (
            PatternOps::new(&x, &mask, s).unwrap(),
            CudaPatternOps::new(dev.clone(), &x, &mask, s).unwrap(),
        );
        // f64 sums of at most max(n, d + p) terms of size ≤ 4: 1e-10 absolute is > 2mε·4 here.
        let check = |what: &str, a: &[f64], b: &[f64]| {
            for (e, (g, w)) in a.iter().zip(b).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-10 * (1.0 + w.abs()),
                    "{what} n={n} d={d} p={p} [{e}]: {g} vs {w}"
                );
            }
        };
        let v: Vec<f64> = rand_vec(&mut rng, 2 * p * d);
        let (mut a, mut b) = (vec![0.0; 2 * p * n], vec![0.0; 2 * p * n]);
        gpu.sign_forward(&v, &mut a, 2).unwrap();
        cpu_ops.sign_forward(&v, &mut b, 2).unwrap();
        check("sign_forward x2", &a, &b);
        let z: Vec<f64> = rand_vec(&mut rng, 2 * p * n);
        let (mut a, mut b) = (vec![0.0; 2 * p * d], vec![0.0; 2 * p * d]);
        gpu.sign_backward(&z, &mut a, 2).unwrap();
        cpu_ops.sign_backward(&z, &mut b, 2).unwrap();
        check("sign_backward x2", &a, &b);
        let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
        gpu.masked_forward(&v[..p * d], &mut a).unwrap();
        cpu_ops.masked_forward(&v[..p * d], &mut b).unwrap();
        check("masked_forward", &a, &b);
        let r: Vec<f64> = rand_vec(&mut rng, n);
        let (mut a, mut b) = (vec![0.0; p * d], vec![0.0; p * d]);
        gpu.masked_backward(&r, &mut a).unwrap();
        cpu_ops.masked_backward(&r, &mut b).unwrap();
        check("masked_backward", &a, &b);
        // Wrong lengths are errors naming the op, not launches out of bounds.
        let err = gpu.masked_forward(&v, &mut a).unwrap_err().to_string();
        assert!(err.contains("masked_forward"), "{err}");
    }
}
