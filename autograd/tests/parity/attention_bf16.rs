//! The bf16 attention kernels (mma.sync, f32 accumulation) against the CPU tiled kernel in f32
//! on the same bf16-rounded inputs. Tensors compute in f32/f64 only, so these call
//! `kernels::attention::cuda` directly, as `bf16.rs` does for the elementwise kernels.
//!
//! Tolerance: 1e-2 relative plus 1e-2 times the compared tensor's largest magnitude. The
//! kernels round P (and in the backward dS) to bf16 as mma inputs, as FlashAttention-2 does:
//! each rounding is up to 2^-9 relative, and a sum of rounded p·v terms is off by at most
//! 2^-9·Σ p|v| <= 2^-9·max|v|; the result is rounded once more on store. Two bf16 ulps of the
//! scale (~8e-3) bound that with room for the f32 summation-order differences; a wrong mask,
//! head or tile is O(1) off.

use super::common::*;
use half::bf16;
use kernels::attention::cuda as attn;
use kernels::attention::launch::{AttnDtype, AttnParams};
use kernels::attention::{tiled, AttnShape, Bias, BoolMask, Mask, Problem};
use kernels::cuda::{CudaDevice, DeviceBuffer};

fn round(v: &[f32]) -> (Vec<bf16>, Vec<f32>) {
    let b: Vec<bf16> = v.iter().map(|&x| bf16::from_f32(x)).collect();
    let f = b.iter().map(|x| x.to_f32()).collect();
    (b, f)
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let t = autograd::Tensor::rand_uniform(
        &[n],
        -1.0,
        1.0,
        autograd::DType::F32,
        autograd::Device::Cpu,
        &mut rng(seed),
    )
    .unwrap();
    t.to_vec::<f32>().unwrap()
}

fn close(what: &str, cpu: &[f32], gpu: &[f64]) {
    let c: Vec<f64> = cpu.iter().map(|&v| v as f64).collect();
    let scale = c
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    assert_close(what, &c, gpu, 1e-2, 1e-2 * scale.max(1e-3));
}

fn download_bf16(dev: &CudaDevice, buf: &DeviceBuffer, n: usize) -> Vec<f64> {
    let mut out = vec![bf16::ZERO; n];
    dev.copy_to_host(buf, 0, &mut out).unwrap();
    out.iter().map(|v| v.to_f64()).collect()
}

fn download_f32(dev: &CudaDevice, buf: &DeviceBuffer, n: usize) -> Vec<f64> {
    let mut out = vec![0f32; n];
    dev.copy_to_host(buf, 0, &mut out).unwrap();
    out.iter().map(|&v| v as f64).collect()
}

struct MaskSpec {
    causal: bool,
    diagonal: bool,
    lengths: Option<Vec<usize>>,
    /// `[B, 1, nq, nk]` bytes, broadcast over heads.
    bool_mask: Option<Vec<u8>>,
    /// `[H, nq, nk]` bias, broadcast over the batch.
    bias: Option<Vec<f32>>,
}

fn check_one(dev: &CudaDevice, name: &str, s: AttnShape, m: &MaskSpec) {
    let seed = (s.q_len * 7 + s.kv_len * 3 + s.head_dim) as u64;
    let (qb, qf) = round(&values(s.q_elems(), seed));
    let (kb, kf) = round(&values(s.kv_elems(), seed + 1));
    let (vb, vf) = round(&values(s.kv_elems(), seed + 2));
    let (gb, gf) = round(&values(s.q_elems(), seed + 3));
    let bias_r = m.bias.as_ref().map(|b| round(b));
    let mask_strides = [s.q_len * s.kv_len, 0, s.kv_len, 1];
    let bias_strides = [0, s.q_len * s.kv_len, s.kv_len, 1];
    let scale = 1.0 / (s.head_dim as f32).sqrt();

    // CPU reference in f32 on the rounded values.
    let p = Problem {
        shape: s,
        q: &qf,
        k: &kf,
        v: &vf,
        mask: Mask {
            causal: m.causal,
            diagonal: m.diagonal,
            key_lengths: m.lengths.as_deref(),
            bool_mask: m.bool_mask.as_ref().map(|data| BoolMask {
                data,
                strides: mask_strides,
                offset: 0,
            }),
        },
        bias: bias_r.as_ref().map(|(_, f)| Bias {
            data: &f[..],
            strides: bias_strides,
            offset: 0,
        }),
        scale,
    };
    let f = tiled::forward(&p).unwrap();
    let g = tiled::backward(&p, &f.out, &f.lse, &gf, false).unwrap();

    // The same on the GPU.
    let up = |b: &[bf16]| dev.upload(b).unwrap();
    let (q, k, v, dout) = (up(&qb), up(&kb), up(&vb), up(&gb));
    let bias = bias_r.as_ref().map(|(b, _)| up(b));
    let mask = m.bool_mask.as_ref().map(|b| dev.upload(b).unwrap());
    let lens: Option<Vec<i32>> = m.lengths.as_ref().map(|l| l.iter().map(|&x| x as i32).collect());
    let lens = lens.map(|l| dev.upload(&l).unwrap());
    let out = dev.alloc(s.q_elems() * 2).unwrap();
    let lse = dev.alloc(s.rows() * 4).unwrap();
    let max_logit = dev.upload(&vec![f32::NEG_INFINITY; s.batch * s.heads]).unwrap();
    let (dq, dk, dv) = (
        dev.alloc(s.q_elems() * 2).unwrap(),
        dev.alloc(s.kv_elems() * 2).unwrap(),
        dev.alloc(s.kv_elems() * 2).unwrap(),
    );
    let delta = dev.alloc(s.rows() * 4).unwrap();
    let st = |h: usize, n: usize| {
        [
            (h * n * s.head_dim) as i64,
            (n * s.head_dim) as i64,
            s.head_dim as i64,
        ]
    };
    let params = AttnParams {
        q: q.ptr(),
        k: k.ptr(),
        v: v.ptr(),
        out: out.ptr(),
        lse: lse.ptr(),
        max_logit: max_logit.ptr(),
        mask: mask.as_ref().map_or(0, |b| b.ptr()),
        bias: bias.as_ref().map_or(0, |b| b.ptr()),
        key_lengths: lens.as_ref().map_or(0, |b| b.ptr()),
        dout: dout.ptr(),
        dq: dq.ptr(),
        dk: dk.ptr(),
        dv: dv.ptr(),
        delta: delta.ptr(),
        dbias: 0, // the bias here is a constant: plain dQ entry
        q_stride: st(s.heads, s.q_len),
        k_stride: st(s.kv_heads, s.kv_len),
        v_stride: st(s.kv_heads, s.kv_len),
        o_stride: st(s.heads, s.q_len),
        mask_stride: mask_strides.map(|x| x as i64),
        bias_stride: bias_strides.map(|x| x as i64),
        batch: s.batch as i32,
        heads: s.heads as i32,
        kv_heads: s.kv_heads as i32,
        q_len: s.q_len as i32,
        kv_len: s.kv_len as i32,
        head_dim: s.head_dim as i32,
        causal: m.causal as i32,
        diagonal: m.diagonal as i32,
        scale,
    };
    // SAFETY: every buffer above holds what `s` and the strides describe.
    unsafe { attn::forward(dev, AttnDtype::Bf16, &s, &params) }.unwrap();
    unsafe { attn::backward(dev, AttnDtype::Bf16, &s, &params) }.unwrap();

    close(
        &format!("{name} out"),
        &f.out,
        &download_bf16(dev, &out, s.q_elems()),
    );
    let lse_gpu = download_f32(dev, &lse, s.rows());
    // lse and max_logit are f32 statistics of bf16 inputs: f32 accuracy, but P·V and the
    // logits came from bf16 operands on both sides, so only summation order differs.
    let lse_cpu: Vec<f64> = f.lse.iter().map(|&v| v as f64).collect();
    assert_close(&format!("{name} lse"), &lse_cpu, &lse_gpu, 1e-4, 1e-4);
    let ml: Vec<f64> = f.max_logit.iter().map(|&v| v as f64).collect();
    assert_close(
        &format!("{name} max_logit"),
        &ml,
        &download_f32(dev, &max_logit, s.batch * s.heads),
        1e-4,
        1e-4,
    );
    close(
        &format!("{name} dq"),
        &g.dq,
        &download_bf16(dev, &dq, s.q_elems()),
    );
    close(
        &format!("{name} dk"),
        &g.dk,
        &download_bf16(dev, &dk, s.kv_elems()),
    );
    close(
        &format!("{name} dv"),
        &g.dv,
        &download_bf16(dev, &dv, s.kv_elems()),
    );
}

#[test]
fn attention_bf16_kernels_against_the_cpu() {
    let Some(_) = cuda_or_skip("attention bf16 parity") else {
        return;
    };
    let dev = CudaDevice::get(0).unwrap();
    let lens = [(1, 1), (17, 17), (63, 65), (65, 63), (300, 300), (17, 300)];
    for (i, &(nq, nk)) in lens.iter().enumerate() {
        let d = [32, 64, 128][i % 3];
        let (h, hkv) = [(2, 2), (4, 2), (3, 1)][i % 3];
        let s = AttnShape {
            batch: 2,
            heads: h,
            kv_heads: hkv,
            q_len: nq,
            kv_len: nk,
            head_dim: d,
        };
        let bm: Vec<u8> = (0..2 * nq * nk).map(|i| (i % 7 != 3) as u8).collect();
        let bias: Vec<f32> = (0..h * nq * nk).map(|i| -0.02 * (i % 11) as f32).collect();
        let specs = [
            (
                "none",
                MaskSpec {
                    causal: false,
                    diagonal: false,
                    lengths: None,
                    bool_mask: None,
                    bias: None,
                },
            ),
            (
                "causal",
                MaskSpec {
                    causal: true,
                    diagonal: false,
                    lengths: None,
                    bool_mask: None,
                    bias: None,
                },
            ),
            (
                "diagonal",
                MaskSpec {
                    causal: false,
                    diagonal: true,
                    lengths: None,
                    bool_mask: None,
                    bias: None,
                },
            ),
            (
                "padding",
                MaskSpec {
                    causal: false,
                    diagonal: false,
                    lengths: Some(vec![nk, nk / 2]),
                    bool_mask: None,
                    bias: None,
                },
            ),
            (
                "bool",
                MaskSpec {
                    causal: false,
                    diagonal: false,
                    lengths: None,
                    bool_mask: Some(bm.clone()),
                    bias: None,
                },
            ),
            (
                "bias",
                MaskSpec {
                    causal: false,
                    diagonal: false,
                    lengths: None,
                    bool_mask: None,
                    bias: Some(bias.clone()),
                },
            ),
            (
                "all",
                MaskSpec {
                    causal: true,
                    diagonal: true,
                    lengths: Some(vec![nk, nk / 2]),
                    bool_mask: Some(bm),
                    bias: Some(bias),
                },
            ),
        ];
        for (mname, spec) in &specs {
            check_one(
                &dev,
                &format!("bf16 {mname} nq={nq} nk={nk} D={d} H={h}/{hkv}"),
                s,
                spec,
            );
        }
    }
}
