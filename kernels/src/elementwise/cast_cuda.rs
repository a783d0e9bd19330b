//! Launchers for cast.cu: dtype conversion of a contiguous or strided source into a contiguous
//! output, for every ordered pair of distinct storage dtypes. Every kernel is in
//! [`all_kernels`], checked against the compiled PTX by the NVRTC tests.
//!
//! The functions are `unsafe` for the reasons of `elementwise::cuda`: the addresses must be live
//! device memory of `dev` holding what the sizes and the layout reach.

use super::cast::CastType;
use crate::cuda::launch::{grid_1d, launch, Arg, ArgKind, KernelRef, Layout};
use crate::cuda::{CudaDevice, CudaError};

use ArgKind::{Layout as L, Ptr as P, I64 as I};

const CONTIGUOUS: &[ArgKind] = &[P, P, I];
const STRIDED: &[ArgKind] = &[L, P, P, I];

/// (from, to, contiguous entry, strided entry) for one pair.
macro_rules! pairs {
    ($(($a:ident, $an:literal, $b:ident, $bn:literal)),* $(,)?) => {
        [$((
            CastType::$a,
            CastType::$b,
            KernelRef {
                source: "cast.cu",
                name: concat!("cast_", $an, "_to_", $bn),
                params: CONTIGUOUS,
            },
            KernelRef {
                source: "cast.cu",
                name: concat!("cast_strided_", $an, "_to_", $bn),
                params: STRIDED,
            },
        )),*]
    };
}

type Entry = (CastType, CastType, KernelRef, KernelRef);

const PAIRS: [Entry; 30] = pairs![
    (F32, "f32", F64, "f64"),
    (F32, "f32", BF16, "bf16"),
    (F32, "f32", F16, "f16"),
    (F32, "f32", I64, "i64"),
    (F32, "f32", Bool, "bool"),
    (F64, "f64", F32, "f32"),
    (F64, "f64", BF16, "bf16"),
    (F64, "f64", F16, "f16"),
    (F64, "f64", I64, "i64"),
    (F64, "f64", Bool, "bool"),
    (BF16, "bf16", F32, "f32"),
    (BF16, "bf16", F64, "f64"),
    (BF16, "bf16", F16, "f16"),
    (BF16, "bf16", I64, "i64"),
    (BF16, "bf16", Bool, "bool"),
    (F16, "f16", F32, "f32"),
    (F16, "f16", F64, "f64"),
    (F16, "f16", BF16, "bf16"),
    (F16, "f16", I64, "i64"),
    (F16, "f16", Bool, "bool"),
    (I64, "i64", F32, "f32"),
    (I64, "i64", F64, "f64"),
    (I64, "i64", BF16, "bf16"),
    (I64, "i64", F16, "f16"),
    (I64, "i64", Bool, "bool"),
    (Bool, "bool", F32, "f32"),
    (Bool, "bool", F64, "f64"),
    (Bool, "bool", BF16, "bf16"),
    (Bool, "bool", F16, "f16"),
    (Bool, "bool", I64, "i64"),
];

fn entry(from: CastType, to: CastType) -> Result<&'static Entry, CudaError> {
    PAIRS
        .iter()
        .find(|e| e.0 == from && e.1 == to)
        .ok_or_else(|| CudaError::Driver(format!("cast: no kernel from {} to {}", from.name(), to.name())))
}

/// Every kernel these launchers can launch.
pub fn all_kernels() -> Vec<KernelRef> {
    PAIRS.iter().flat_map(|e| [e.2, e.3]).collect()
}

/// `dst[i] = convert(src[i])` for `n` contiguous elements (the contract of
/// `elementwise::cast`). `from != to`.
///
/// # Safety
/// See the module documentation.
pub unsafe fn cast(
    dev: &CudaDevice,
    from: CastType,
    to: CastType,
    src: u64,
    dst: u64,
    n: usize,
) -> Result<(), CudaError> {
    let e = entry(from, to)?;
    if n == 0 {
        return Ok(());
    }
    let args = [Arg::Ptr(src), Arg::Ptr(dst), Arg::I64(n as i64)];
    launch(dev, &e.2, grid_1d(dev, n), &args)
}

/// `dst[i] = convert(src[view 0 of layout at i])` into a contiguous `dst` of `n` elements.
/// `from != to`.
///
/// # Safety
/// See the module documentation.
pub unsafe fn cast_strided(
    dev: &CudaDevice,
    from: CastType,
    to: CastType,
    layout: &Layout,
    src: u64,
    dst: u64,
    n: usize,
) -> Result<(), CudaError> {
    let e = entry(from, to)?;
    if n == 0 {
        return Ok(());
    }
    let args = [
        Arg::Layout(*layout),
        Arg::Ptr(src),
        Arg::Ptr(dst),
        Arg::I64(n as i64),
    ];
    launch(dev, &e.3, grid_1d(dev, n), &args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ordered_pair_once() {
        for from in CastType::ALL {
            for to in CastType::ALL {
                assert_eq!(entry(from, to).is_ok(), from != to, "{from:?} -> {to:?}");
            }
        }
        let names: std::collections::BTreeSet<_> = all_kernels().iter().map(|k| k.name).collect();
        assert_eq!(names.len(), 60);
        assert!(names.contains("cast_strided_bf16_to_i64"));
    }
}
