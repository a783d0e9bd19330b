//! Tests of the host emulator itself (feature `emulator`), on the kernels of
//! kernels/emu/selftest.cu: warp collectives, barriers, barrier errors reported instead of
//! hangs, bf16 rounding, and the mma/ldmatrix implementation against a plain matmul.
//! The emulator is not a GPU; these check the emulator, not any GPU behaviour.
#![cfg(feature = "emulator")]

use std::sync::Arc;

use kernels::cuda::cudarc::driver::LaunchConfig;
use kernels::cuda::launch::{launch, Arg, ArgKind, KernelRef};
use kernels::cuda::{CudaDevice, CudaError, DeviceBuffer};

const SRC: &str = "emu_selftest.cu";

fn dev() -> Arc<CudaDevice> {
    // Every test sets the same value, so the order in which threads do it does not matter.
    std::env::set_var("KERNELS_EMULATOR", "1");
    let d = CudaDevice::get(0).expect("the emulated device");
    assert!(d.is_emulated());
    assert_eq!(d.name(), "host emulator (not a GPU)");
    assert!(
        d.blas().is_err(),
        "no cuBLAS on the emulator: gemm takes the tiled kernel"
    );
    d
}

fn cfg(grid: u32, block: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (grid, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn kernel(name: &'static str, params: &'static [ArgKind]) -> KernelRef {
    KernelRef {
        source: SRC,
        name,
        params,
    }
}

fn read<T: Copy + Default>(d: &CudaDevice, b: &DeviceBuffer, n: usize) -> Vec<T> {
    let mut out = vec![T::default(); n];
    d.copy_to_host(b, 0, &mut out).unwrap();
    out
}

fn run(d: &CudaDevice, k: &KernelRef, c: LaunchConfig, args: &[Arg]) -> Result<(), CudaError> {
    // SAFETY: every buffer passed below covers what the self-test kernels touch.
    unsafe { launch(d, k, c, args) }
}

#[test]
fn warp_shuffle_block_reduction() {
    let d = dev();
    // Small integers: every partial sum is exact in f32, whatever the order.
    let x: Vec<f32> = (0..3 * 256).map(|i| (i % 17) as f32 - 8.0).collect();
    let (inp, out) = (d.upload(&x).unwrap(), d.alloc(3 * 4).unwrap());
    let k = kernel("emu_block_sum", &[ArgKind::Ptr, ArgKind::Ptr]);
    run(&d, &k, cfg(3, 256), &[Arg::Ptr(inp.ptr()), Arg::Ptr(out.ptr())]).unwrap();
    let want: Vec<f32> = x.chunks(256).map(|c| c.iter().sum()).collect();
    assert_eq!(read::<f32>(&d, &out, 3), want);
}

#[test]
fn shuffle_down_up_and_ballot() {
    let d = dev();
    let x: Vec<f32> = (0..32)
        .map(|i| if i % 3 == 0 { -(i as f32) - 1.0 } else { i as f32 })
        .collect();
    let inp = d.upload(&x).unwrap();
    let (down, up, ballot) = (d.alloc(128).unwrap(), d.alloc(128).unwrap(), d.alloc(4).unwrap());
    let k = kernel(
        "emu_shuffles",
        &[
            ArgKind::Ptr,
            ArgKind::Ptr,
            ArgKind::Ptr,
            ArgKind::Ptr,
            ArgKind::I32,
        ],
    );
    let args = [
        Arg::Ptr(inp.ptr()),
        Arg::Ptr(down.ptr()),
        Arg::Ptr(up.ptr()),
        Arg::Ptr(ballot.ptr()),
        Arg::I32(5),
    ];
    run(&d, &k, cfg(1, 32), &args).unwrap();
    // CUDA: a source lane past the warp's end (down) or before its start (up) gives the
    // caller's own value.
    let want_down: Vec<f32> = (0..32).map(|l| x[if l + 5 < 32 { l + 5 } else { l }]).collect();
    let want_up: Vec<f32> = (0..32).map(|l| x[if l >= 5 { l - 5 } else { l }]).collect();
    assert_eq!(read::<f32>(&d, &down, 32), want_down);
    assert_eq!(read::<f32>(&d, &up, 32), want_up);
    let want_ballot = (0..32).filter(|&l| x[l] > 0.0).fold(0u32, |b, l| b | 1 << l);
    assert_eq!(read::<u32>(&d, &ballot, 1)[0], want_ballot);
}

#[test]
fn barrier_errors_are_reported_not_hung() {
    let d = dev();
    let out = d.alloc(64 * 4).unwrap();
    let k = kernel("emu_early_exit_barrier", &[ArgKind::Ptr, ArgKind::I32]);
    let e = run(&d, &k, cfg(1, 64), &[Arg::Ptr(out.ptr()), Arg::I32(40)]).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, CudaError::Emulator(_)), "{msg}");
    assert!(msg.contains("__syncthreads") && msg.contains("exited"), "{msg}");
    // Every thread reaching the barrier is fine, and the emulator is usable after an error.
    run(&d, &k, cfg(2, 64), &[Arg::Ptr(out.ptr()), Arg::I32(64)]).unwrap();
    assert!(read::<f32>(&d, &out, 64).iter().all(|&v| v == 2.0));

    let k = kernel("emu_divergent_collective", &[ArgKind::Ptr]);
    let msg = run(&d, &k, cfg(1, 32), &[Arg::Ptr(out.ptr())])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("deadlock") || msg.contains("warp collective"),
        "{msg}"
    );
}

#[test]
fn bad_launch_shapes_and_arguments_are_errors() {
    let d = dev();
    let (inp, out) = (d.alloc(4096).unwrap(), d.alloc(4096).unwrap());
    let k = kernel("emu_block_sum", &[ArgKind::Ptr, ArgKind::Ptr]);
    let args = [Arg::Ptr(inp.ptr()), Arg::Ptr(out.ptr())];
    for c in [cfg(1, 2048), cfg(0, 32)] {
        let msg = run(&d, &k, c, &args).unwrap_err().to_string();
        assert!(msg.contains("block") || msg.contains("grid"), "{msg}");
    }
    let mut big = cfg(1, 32);
    big.shared_mem_bytes = 64 * 1024;
    assert!(run(&d, &k, big, &args)
        .unwrap_err()
        .to_string()
        .contains("48 KiB"));
    // An argument list the kernel does not declare (an i32 where it takes a pointer).
    let wrong = kernel("emu_block_sum", &[ArgKind::Ptr, ArgKind::I32]);
    let msg = run(&d, &wrong, cfg(1, 32), &[Arg::Ptr(inp.ptr()), Arg::I32(0)])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("declares"), "{msg}");
    let missing = kernel("no_such_kernel", &[]);
    assert!(run(&d, &missing, cfg(1, 32), &[]).is_err());
}

#[test]
fn bf16_rounds_to_nearest_even_and_keeps_nan() {
    let d = dev();
    let cases: [(f32, u16); 10] = [
        (1.0, 0x3f80),
        // 1 + 2^-8 is halfway between bf16 1.0 (0x3f80) and 1.0078125 (0x3f81): to even.
        (1.0 + 1.0 / 256.0, 0x3f80),
        // 1 + 3·2^-8 is halfway between 0x3f81 and 0x3f82: to even, upward.
        (1.0 + 3.0 / 256.0, 0x3f82),
        // Just above halfway rounds up.
        (f32::from_bits(0x3f80_8001), 0x3f81),
        (-1.0 - 1.0 / 256.0, 0xbf80),
        (-0.0, 0x8000),
        (f32::INFINITY, 0x7f80),
        // The largest f32 is past bf16's largest finite value's halfway point: +inf.
        (f32::MAX, 0x7f80),
        // The smallest subnormal f32 rounds to +0.
        (f32::from_bits(1), 0x0000),
        (f32::from_bits(0x0080_8000), 0x0080),
    ];
    let x: Vec<f32> = cases.iter().map(|c| c.0).chain([f32::NAN, -f32::NAN]).collect();
    let n = x.len();
    let (inp, bits, back) = (
        d.upload(&x).unwrap(),
        d.alloc(2 * n).unwrap(),
        d.alloc(4 * n).unwrap(),
    );
    let k = kernel(
        "emu_bf16_round",
        &[ArgKind::Ptr, ArgKind::Ptr, ArgKind::Ptr, ArgKind::I32],
    );
    let args = [
        Arg::Ptr(inp.ptr()),
        Arg::Ptr(bits.ptr()),
        Arg::Ptr(back.ptr()),
        Arg::I32(n as i32),
    ];
    run(&d, &k, cfg(1, 32), &args).unwrap();
    let (got, back) = (read::<u16>(&d, &bits, n), read::<f32>(&d, &back, n));
    for (i, &(v, want)) in cases.iter().enumerate() {
        assert_eq!(got[i], want, "bf16({v:e}) = {:#06x}, want {want:#06x}", got[i]);
        assert_eq!(
            back[i].to_bits(),
            (want as u32) << 16,
            "bf16 -> f32 of {want:#06x}"
        );
    }
    for i in cases.len()..n {
        assert!(back[i].is_nan(), "NaN stays NaN: {:#06x}", got[i]);
        assert_eq!(
            got[i] & 0x8000,
            (x[i].to_bits() >> 16) as u16 & 0x8000,
            "NaN keeps its sign"
        );
    }
}

#[test]
fn mma_tile_matches_a_plain_matmul() {
    let d = dev();
    // Values k/8 for small integers k: exact in bf16, and every product and partial sum is
    // exact in f32, so the tile must match the plain product bit for bit whatever the order.
    let val = |i: usize, salt: usize| ((i * 7 + salt * 13) % 11) as f32 / 8.0 - 0.625;
    let a: Vec<f32> = (0..256).map(|i| val(i, 1)).collect();
    let b: Vec<f32> = (0..128).map(|i| val(i, 2)).collect();
    let c: Vec<f32> = (0..128).map(|i| val(i, 3)).collect();
    let bf = |v: &[f32]| -> Vec<u16> { v.iter().map(|x| (x.to_bits() >> 16) as u16).collect() };
    let (da, db, dc, dd) = (
        d.upload(&bf(&a)).unwrap(),
        d.upload(&bf(&b)).unwrap(),
        d.upload(&c).unwrap(),
        d.alloc(128 * 4).unwrap(),
    );
    let k = kernel("emu_mma_tile", &[ArgKind::Ptr; 4]);
    let args = [
        Arg::Ptr(da.ptr()),
        Arg::Ptr(db.ptr()),
        Arg::Ptr(dc.ptr()),
        Arg::Ptr(dd.ptr()),
    ];
    run(&d, &k, cfg(1, 32), &args).unwrap();
    let got = read::<f32>(&d, &dd, 128);
    for i in 0..16 {
        for j in 0..8 {
            let want = c[i * 8 + j] + (0..16).map(|k| a[i * 16 + k] * b[k * 8 + j]).sum::<f32>();
            assert_eq!(got[i * 8 + j], want, "D[{i}][{j}]");
        }
    }
}
