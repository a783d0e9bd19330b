//! `to_dtype` on CUDA against the CPU: all 30 ordered pairs of distinct dtypes, bit for bit,
//! from contiguous tensors and from strided views at an offset, on inputs full of edge cases
//! (every bf16 and f16 bit pattern, NaNs with payloads, infinities, subnormals, halfway values,
//! integers past 2^53, bools), and the differentiable f32 <-> f64 conversion with its backward.
//!
//! Tolerance 0 throughout: a conversion is a function of the source bits, written once as a
//! contract (`kernels::elementwise::cast`) that the CPU runs and cast.cu ports in integer
//! arithmetic only, so no rounding mode, flush-to-zero or fused operation can tell the devices
//! apart; any difference is a bug. The outputs are poisoned (0xFF bytes: NaN in the floats, -1
//! in i64, 255 in bool), and the comparison is of raw bits, so an unwritten element shows.

use super::cases::{run_all, Case};
use super::common::*;
use autograd::{DType, Device, Tensor};
use half::{bf16, f16};
use kernels::elementwise::cast::{cast_bits, CastType};

const DTYPES: [DType; 6] = [
    DType::F32,
    DType::F64,
    DType::BF16,
    DType::F16,
    DType::I64,
    DType::Bool,
];

/// The elements' raw bits, whatever the dtype (a NaN compares by its bits, not as "unequal").
fn raw_bits(t: &Tensor) -> Vec<u64> {
    match t.dtype() {
        DType::F32 => t
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits() as u64)
            .collect(),
        DType::F64 => t.to_vec::<f64>().unwrap().iter().map(|x| x.to_bits()).collect(),
        DType::BF16 => t
            .to_vec::<bf16>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits() as u64)
            .collect(),
        DType::F16 => t
            .to_vec::<f16>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits() as u64)
            .collect(),
        DType::I64 => t.to_vec::<i64>().unwrap().iter().map(|&x| x as u64).collect(),
        DType::Bool => t.to_vec::<u8>().unwrap().iter().map(|&x| x as u64).collect(),
    }
}

struct Bits(u64);
impl Bits {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A CPU source of `dtype` with 65 536 elements, shape [256, 256]: every 16-bit pattern for
/// bf16 and f16; edge cases then random bits for the others.
fn source(dtype: DType) -> Tensor {
    const N: usize = 65_536;
    let mut r = Bits(0x51ed_270b_2724_6bf3 ^ dtype.size_in_bytes() as u64);
    let shape = [256, 256];
    let t = match dtype {
        DType::BF16 => Tensor::from_vec((0..=u16::MAX).map(bf16::from_bits).collect(), &shape, Device::Cpu),
        DType::F16 => Tensor::from_vec((0..=u16::MAX).map(f16::from_bits).collect(), &shape, Device::Cpu),
        DType::F32 => {
            let mut v: Vec<f32> = vec![
                0.0,
                -0.0,
                1.0 + 2f32.powi(-8),
                65520.0,
                f32::MAX,
                f32::MIN_POSITIVE,
            ];
            v.extend([
                f32::INFINITY,
                f32::NAN,
                f32::from_bits(0xff80_0001),
                f32::from_bits(1),
            ]);
            // Near 1 (bf16 and f16 ties), then anything.
            while v.len() < N / 2 {
                v.push(f32::from_bits(0x3f80_0000 | (r.next() as u32 & 0x7f_ffff)));
            }
            while v.len() < N {
                v.push(f32::from_bits(r.next() as u32));
            }
            Tensor::from_vec(v, &shape, Device::Cpu)
        }
        DType::F64 => {
            let mut v: Vec<f64> = vec![0.0, -0.0, 1.0 + 2f64.powi(-8) + 2f64.powi(-40), 1e300, -1e-300];
            v.extend([
                f64::NEG_INFINITY,
                f64::NAN,
                f64::from_bits(0x7ff4_0000_0000_0001),
                9.3e18,
            ]);
            while v.len() < N / 2 {
                v.push(f64::from_bits(0x3ff0_0000_0000_0000 | (r.next() >> 12)));
            }
            while v.len() < N {
                v.push(f64::from_bits(r.next()));
            }
            Tensor::from_vec(v, &shape, Device::Cpu)
        }
        DType::I64 => {
            let mut v: Vec<i64> = vec![0, 1, -1, 257, i64::MAX, i64::MIN, (1 << 62) + (1 << 38) + 1];
            while v.len() < N {
                let w = r.next();
                v.push((w as i64) >> (w % 64));
            }
            Tensor::from_vec(v, &shape, Device::Cpu)
        }
        DType::Bool => Tensor::from_vec((0..N).map(|i| (i % 3 == 0) as u8).collect(), &shape, Device::Cpu),
    };
    t.expect("valid source")
}

/// The views converted: the whole tensor, and a transposed window at an offset (strided.cu's
/// Layout path of cast.cu) with sizes that are not multiples of a block.
fn views(t: &Tensor) -> Vec<(&'static str, Tensor)> {
    vec![
        ("contiguous", t.clone()),
        ("1 element", t.narrow(0, 5, 1).unwrap().narrow(1, 7, 1).unwrap()),
        (
            "transposed window",
            t.t()
                .unwrap()
                .narrow(0, 3, 253)
                .unwrap()
                .narrow(1, 1, 211)
                .unwrap(),
        ),
    ]
}

#[test]
fn to_dtype_every_pair_bit_for_bit() {
    let Some(dev) = cuda_or_skip("to_dtype_every_pair_bit_for_bit") else {
        return;
    };
    let mut checked = 0;
    for from in DTYPES {
        let cpu_src = source(from);
        let gpu_src = cpu_src.to_device(dev).expect("upload");
        for ((what, c), (_, g)) in views(&cpu_src).into_iter().zip(views(&gpu_src)) {
            for to in DTYPES.into_iter().filter(|&d| d != from) {
                let yc = c
                    .to_dtype(to)
                    .unwrap_or_else(|e| panic!("{from} -> {to} on the CPU: {e}"));
                let yg = g
                    .to_dtype(to)
                    .unwrap_or_else(|e| panic!("{from} -> {to} on {dev}: {e}"));
                assert_eq!((yg.device(), yg.dtype()), (dev, to), "{from} -> {to}");
                assert_eq!(yc.shape(), yg.shape(), "{from} -> {to} {what}");
                let (bc, bg) = (raw_bits(&yc), raw_bits(&yg));
                let src_bits = raw_bits(&c);
                for (i, (x, y)) in bc.iter().zip(&bg).enumerate() {
                    assert_eq!(
                        x, y,
                        "{from} -> {to} ({what}), element {i} of {:?}: source bits {:#x}, cpu {x:#x}, gpu {y:#x}",
                        yc.shape(),
                        src_bits[i]
                    );
                }
                checked += 1;
            }
        }
    }
    eprintln!("to_dtype: {checked} (pair, view) conversions equal bit for bit on {dev}");
}

/// The differentiable conversions, as parity cases: f32 -> f64 -> f32 (forward exact, and the
/// gradient converted back through both), over the awkward sizes and from a strided view.
pub fn cast_cases() -> Vec<Case> {
    let mut r = rng(31);
    let mut cases = Vec::new();
    for shape in SIZES {
        let x = random(shape, Domain::Normal, &mut r);
        cases.push(Case::new(
            format!("to_dtype f32 -> f64 -> f32 {shape:?}"),
            vec![x],
            |t| t[0].to_dtype(DType::F64)?.to_dtype(DType::F32),
            0.0,
            0.0,
        ));
    }
    let x = random(&[33, 70], Domain::Normal, &mut r);
    cases.push(Case::new(
        "to_dtype of a transposed view [70, 33]",
        vec![x],
        |t| t[0].t()?.to_dtype(DType::F64)?.to_dtype(DType::F32),
        0.0,
        0.0,
    ));
    cases
}

#[test]
fn to_dtype_differentiable_cases() {
    run_all("to_dtype_differentiable_cases", cast_cases());
}

fn cast_type(d: DType) -> CastType {
    match d {
        DType::F32 => CastType::F32,
        DType::F64 => CastType::F64,
        DType::BF16 => CastType::BF16,
        DType::F16 => CastType::F16,
        DType::I64 => CastType::I64,
        DType::Bool => CastType::Bool,
    }
}

/// Runs without a GPU: the CPU `to_dtype` is the written contract, element for element, on the
/// same inputs and views the GPU comparison uses (so the GPU is compared with the contract too).
#[test]
fn cpu_to_dtype_is_the_contract() {
    for from in DTYPES {
        let src = source(from);
        for (what, view) in views(&src) {
            let src_bits = raw_bits(&view);
            for to in DTYPES.into_iter().filter(|&d| d != from) {
                let got = raw_bits(&view.to_dtype(to).unwrap());
                for (i, (&s, &g)) in src_bits.iter().zip(&got).enumerate() {
                    let want = cast_bits(cast_type(from), cast_type(to), s);
                    assert_eq!(g, want, "{from} -> {to} ({what}) element {i}: source {s:#x}");
                }
            }
        }
    }
}
