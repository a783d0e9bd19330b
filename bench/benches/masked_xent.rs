//! The fused masked cross-entropy on the CPU (`kernels::masked_xent::cpu`), forward and
//! backward, f32 and bf16 logits, no mask / a range mask / a dense mask, against the machine's
//! copy bandwidth measured in the same run (a 512 MiB `copy_from_slice`).
//!
//! Throughput is the bytes the op must move (`launch::forward_bytes_per_row` /
//! `backward_bytes_per_row` × rows: logits read, gradient written, the mask's share and the
//! per-row values), so criterion's GB/s compares directly with the copy's (read + write).
//! On a CPU this op is bound by `exp`, not memory: see docs/masked-xent.md for the figures.
//!
//! With a GPU, `masked_xent_cuda` times `masked_xent.cu` on 4k x 32k to 16k x 256k rows (f32
//! and bf16 logits, no mask and a range mask) against a device-to-device copy in the same run,
//! with the same byte counts: forward `C·s + mask share + 28` bytes per row, backward
//! `2·C·s + mask share + 28` (s = 4 for f32, 2 for bf16; 28 = target, lse, three coefficients,
//! loss). Without a GPU that group prints why and is skipped.
//!
//! `cargo bench -p bench --bench masked_xent`; a subset with e.g. `-- 4096x32768`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kernels::masked_xent::cpu::{cross_entropy_backward, cross_entropy_forward, Bf16};
use kernels::masked_xent::launch::{backward_bytes_per_row, forward_bytes_per_row};
use kernels::masked_xent::{ClassMask, XentOptions, XentRows};
use std::hint::black_box;

/// Deterministic logits in about [-4, 4), not zeros (exp of zeros is not a fair timing).
fn logits(n: usize) -> Vec<f32> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 8.0 - 4.0
        })
        .collect()
}

fn bench_copy(c: &mut Criterion) {
    let n = 128 << 20; // 512 MiB of f32, far beyond the last-level cache
    let src = logits(n);
    let mut dst = vec![0.0f32; n];
    let mut g = c.benchmark_group("copy");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(2 * 4 * n as u64));
    g.bench_function("512MiB", |b| b.iter(|| dst.copy_from_slice(black_box(&src))));
    g.finish();
}

fn bench_xent(c: &mut Criterion) {
    for (rows, classes) in [(4096usize, 32_768usize), (64, 262_144)] {
        let x = logits(rows * classes);
        let xb: Vec<Bf16> = x.iter().map(|&v| Bf16::from_f32(v)).collect();
        let targets: Vec<i64> = (0..rows as i64)
            .map(|r| (r * 7919) % (classes as i64 / 2))
            .collect();
        let opts = XentOptions::default();
        let dense: Vec<bool> = (0..classes).map(|c| c % 3 != 0 || c < classes / 2).collect();
        let masks = [
            ("none", ClassMask::All),
            ("range", ClassMask::ranges(&[(0, classes / 2 + classes / 4)])),
            (
                "dense-per-row",
                ClassMask::dense(&dense.repeat(rows), rows, classes),
            ),
        ];
        let mut g = c.benchmark_group(format!("masked_xent_{rows}x{classes}"));
        g.sample_size(10);
        for (name, mask) in &masks {
            let fwd = (rows * forward_bytes_per_row(classes, 4, mask)) as u64;
            g.throughput(Throughput::Bytes(fwd));
            g.bench_function(format!("fwd_f32_{name}"), |b| {
                b.iter(|| cross_entropy_forward::<f32, f32>(black_box(&x), &targets, classes, mask, &opts))
            });
        }
        let mask = &masks[1].1;
        g.throughput(Throughput::Bytes(
            (rows * forward_bytes_per_row(classes, 2, mask)) as u64,
        ));
        g.bench_function("fwd_bf16_range", |b| {
            b.iter(|| cross_entropy_forward::<Bf16, f32>(black_box(&xb), &targets, classes, mask, &opts))
        });
        let f: XentRows<f32> = cross_entropy_forward(&x, &targets, classes, mask, &opts);
        g.throughput(Throughput::Bytes(
            (rows * backward_bytes_per_row(classes, 4, mask)) as u64,
        ));
        g.bench_function("bwd_f32_range", |b| {
            b.iter(|| cross_entropy_backward(black_box(&x), &targets, classes, mask, &f.lse, &f.coef, &[1.0]))
        });
        g.finish();
    }
}

fn bench_cuda(c: &mut Criterion) {
    use kernels::cuda::FloatType;
    use kernels::masked_xent::cuda as xent;
    use kernels::masked_xent::launch::XentParams;
    let Some(dev) = bench::gpu::device("masked_xent") else {
        return;
    };
    let mut g = c.benchmark_group("masked_xent_cuda");
    g.sample_size(10);
    // The ceiling: a 1 GiB device copy (reads and writes 1 GiB).
    let bytes = 1usize << 30;
    let (src, dst) = (dev.alloc(bytes).unwrap(), dev.alloc(bytes).unwrap());
    g.throughput(Throughput::Bytes(2 * bytes as u64));
    g.bench_function("device_copy_1GiB", |b| {
        b.iter(|| bench::gpu::copy(&dev, &src, &dst, bytes))
    });
    drop((src, dst));
    for (rows, classes) in [
        (4096usize, 32_768usize),
        (16_384, 32_768),
        (4096, 262_144),
        (16_384, 262_144),
    ] {
        let x = logits(rows * classes);
        let targets: Vec<i64> = (0..rows as i64)
            .map(|r| (r * 7919) % (classes as i64 / 2))
            .collect();
        let td = dev.upload(&targets).unwrap();
        let opts = XentOptions::default();
        for (dt, dname) in [(FloatType::F32, "f32"), (FloatType::BF16, "bf16")] {
            // 16k x 256k f32 is 16 GiB of logits plus as much gradient: bf16 only there.
            if dt == FloatType::F32 && rows * classes > 1 << 31 {
                continue;
            }
            let xd = bench::gpu::upload(&dev, &x, dt);
            let dx = bench::gpu::alloc(&dev, rows * classes, dt);
            let (loss, lse) = (dev.alloc(rows * 4).unwrap(), dev.alloc(rows * 4).unwrap());
            let coef = dev.alloc(rows * 12).unwrap();
            let status = dev.upload(&xent::STATUS_INIT).unwrap();
            let gone = dev.upload(&[1.0f32]).unwrap();
            let range = ClassMask::ranges(&[(0, classes / 2 + classes / 4)]);
            for (mname, mask) in [("none", ClassMask::All), ("range", range)] {
                let mbytes = xent::mask_bytes(&mask);
                let mbuf = dev
                    .upload(if mbytes.is_empty() { &[0u8][..] } else { &mbytes })
                    .unwrap();
                let p = XentParams::cross_entropy(rows, classes, &mask, &opts);
                let fb = xent::ForwardBuffers {
                    x: xd.ptr(),
                    targets: td.ptr(),
                    mask: if mbytes.is_empty() { 0 } else { mbuf.ptr() },
                    loss: loss.ptr(),
                    lse: lse.ptr(),
                    coef: coef.ptr(),
                    status: status.ptr(),
                };
                let s = dt.size_in_bytes();
                let id = format!("{rows}x{classes}_{dname}_{mname}");
                g.throughput(Throughput::Bytes(
                    (rows * forward_bytes_per_row(classes, s, &mask)) as u64,
                ));
                g.bench_function(format!("fwd_{id}"), |b| {
                    b.iter(|| {
                        // SAFETY: buffers sized for rows x classes of dt.
                        unsafe { xent::forward(&dev, dt, &p, &fb) }.unwrap();
                        dev.synchronize().unwrap();
                    })
                });
                let bb = xent::BackwardBuffers {
                    x: xd.ptr(),
                    targets: td.ptr(),
                    mask: fb.mask,
                    lse: lse.ptr(),
                    coef: coef.ptr(),
                    g: gone.ptr(),
                    g_stride: 0,
                    g_scale: 1.0,
                    dx: dx.ptr(),
                };
                g.throughput(Throughput::Bytes(
                    (rows * backward_bytes_per_row(classes, s, &mask)) as u64,
                ));
                g.bench_function(format!("bwd_{id}"), |b| {
                    b.iter(|| {
                        // SAFETY: as above; lse and coef hold the forward's results.
                        unsafe { xent::backward(&dev, dt, &p, &bb) }.unwrap();
                        dev.synchronize().unwrap();
                    })
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, bench_copy, bench_xent, bench_cuda);
criterion_main!(benches);
