//! GEMM micro-kernels and the blocking sizes that go with each.
//!
//! A micro-kernel computes one `MR x NR` tile of `C` from a packed `MR x kc` panel of `A`
//! (stored as `kc` groups of `MR` values: column `p` of the panel is `a[p*MR .. p*MR + MR]`) and
//! a packed `kc x NR` panel of `B` (`kc` groups of `NR` values: row `p` is `b[p*NR .. p*NR + NR]`).
//! The tile is kept in vector registers for the whole `kc` loop; each step is a rank-1 update
//! `acc[i][:] += a[p*MR + i] * b[p*NR ..][:NR]`, i.e. one broadcast of `A` and `NR / lanes` FMAs
//! per row. At the end the tile is stored to (or added into) `C` at `c`, row stride `ldc`,
//! column stride 1.
//!
//! Register budget decides the tile shape: the accumulators take `MR * NR / lanes` registers and
//! each step needs `NR / lanes` more for the `B` vectors plus one for the broadcast.
//!
//! | kernel            | ISA        | tile  | accumulators | registers used / available |
//! |-------------------|------------|-------|--------------|----------------------------|
//! | `f32_avx512_12x32`| AVX-512F   | 12x32 | 24 zmm       | 27 / 32                    |
//! | `f64_avx512_12x16`| AVX-512F   | 12x16 | 24 zmm       | 27 / 32                    |
//! | `f32_avx2_6x16`   | AVX2 + FMA | 6x16  | 12 ymm       | 15 / 16                    |
//! | `f64_avx2_6x8`    | AVX2 + FMA | 6x8   | 12 ymm       | 15 / 16                    |
//! | `portable` f32/f64| any        | 4x16 / 4x8 | arrays     | left to the autovectorizer |
//!
//! With 2 FMA ports, `MR * NR / lanes` independent accumulators must cover the FMA latency
//! (4 cycles) times 2 ports = 8 in flight; 12 and 24 both do.
//!
//! # Blocking sizes
//!
//! Chosen from the cache sizes of the x86 cores this runs on (L1d 32-48 KiB, L2 1-2 MiB per core
//! on the AVX-512 parts, >= 256 KiB on AVX2 ones, a shared L3 of several MiB):
//!
//! * `KC` (depth of one rank-`KC` update): the `KC x NR` panel of `B` is reused by every `MR`
//!   panel of `A` in the inner loop, so it must stay in L1 together with the streamed `A` panel:
//!   `KC * NR * size_of::<T>()` is kept at half to two thirds of a 32-48 KiB L1d (16-32 KiB).
//! * `MC` (rows of the packed `A` block): the `MC x KC` block is re-read once for every `NR`
//!   panel of `B`, so it lives in L2: kept at 100-200 KiB, well under the per-core L2.
//! * `NC` (columns of the packed `B` block): the `KC x NC` block is shared by all threads and
//!   re-read for every `MC` block, so it lives in L3: a few MiB.
//!
//! `MC` is a multiple of `MR`, and `NC` of `NR`.

#![allow(clippy::needless_range_loop)] // the fixed-size index loops are what gets fully unrolled

use super::GemmScalar;
use std::cell::Cell;
use std::sync::OnceLock;
use std::thread::LocalKey;

/// `c[tile] (=|+=) A_panel @ B_panel` for one full `MR x NR` tile. `overwrite` stores the product
/// without reading `C` (first rank-KC update of a non-accumulating call).
///
/// # Safety
/// `a` must point to `kc * MR` readable values, `b` to `kc * NR`, `b` must be 64-byte aligned for
/// the SIMD kernels' benefit (not required for correctness), and `c` to an `MR x NR` tile with row
/// stride `ldc` that is valid for reads and writes. The CPU must support the kernel's features
/// (guaranteed by construction: a kernel is only listed after its features were detected).
pub type KernelFn<T> = unsafe fn(kc: usize, a: *const T, b: *const T, c: *mut T, ldc: usize, overwrite: bool);

/// A micro-kernel with its tile shape and cache blocking sizes.
pub struct Kernel<T> {
    pub name: &'static str,
    pub mr: usize,
    pub nr: usize,
    pub kc: usize,
    pub mc: usize,
    pub nc: usize,
    pub func: KernelFn<T>,
}

/// Largest `MR * NR` of any kernel: the size of the stack tile used for edge tiles.
pub const MAX_TILE: usize = 12 * 32;

/// The portable micro-kernel: plain Rust on fixed-size arrays. With `MR`, `NR` constant the loops
/// are fully unrolled and the `NR`-wide row updates become SIMD adds and multiplies for whatever
/// vector ISA the crate is compiled for (SSE2 on baseline x86-64, NEON on aarch64). It uses a
/// separate multiply and add (not `mul_add`, which without hardware FMA is a slow libm call).
///
/// # Safety
/// See [`KernelFn`].
unsafe fn portable<T: GemmScalar, const MR: usize, const NR: usize>(
    kc: usize,
    a: *const T,
    b: *const T,
    c: *mut T,
    ldc: usize,
    overwrite: bool,
) {
    let a = std::slice::from_raw_parts(a, kc * MR);
    let b = std::slice::from_raw_parts(b, kc * NR);
    let mut acc = [[T::ZERO; NR]; MR];
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for i in 0..MR {
            let ai = ap[i];
            for j in 0..NR {
                acc[i][j] = acc[i][j] + ai * bp[j];
            }
        }
    }
    for i in 0..MR {
        let row = std::slice::from_raw_parts_mut(c.add(i * ldc), NR);
        for j in 0..NR {
            row[j] = if overwrite { acc[i][j] } else { row[j] + acc[i][j] };
        }
    }
}

/// Defines one x86 SIMD micro-kernel. `nv` is the number of vectors per tile row, so
/// `NR = nv * lanes`. The accumulator array is indexed only by constants after unrolling, so it
/// lives entirely in registers.
#[cfg(target_arch = "x86_64")]
macro_rules! simd_kernel {
    ($(#[$doc:meta])* $name:ident: $t:ty, $feat:literal, mr = $mr:literal, nv = $nv:literal,
     lanes = $lanes:literal, $vt:ty, zero = $zero:ident, load = $load:ident,
     store = $store:ident, splat = $splat:ident, fma = $fma:ident, add = $add:ident) => {
        $(#[$doc])*
        /// # Safety
        /// See [`KernelFn`]; the CPU must support the target features.
        #[target_feature(enable = $feat)]
        unsafe fn $name(
            kc: usize,
            a: *const $t,
            b: *const $t,
            c: *mut $t,
            ldc: usize,
            overwrite: bool,
        ) {
            use std::arch::x86_64::*;
            const NR: usize = $nv * $lanes;
            // Start pulling the C tile towards L1 now: it is needed only after the kc loop,
            // which is long enough to hide even a miss to DRAM. (C rows are `ldc` apart, so
            // without this the final loads of the tile stall on up to 2*MR cache misses.)
            for i in 0..$mr {
                let row = c.add(i * ldc) as *const i8;
                _mm_prefetch::<_MM_HINT_T0>(row);
                _mm_prefetch::<_MM_HINT_T0>(row.add(NR * size_of::<$t>() - 1));
            }
            let mut acc: [[$vt; $nv]; $mr] = [[$zero(); $nv]; $mr];
            let (mut a, mut b) = (a, b);
            for _ in 0..kc {
                let mut bv: [$vt; $nv] = [$zero(); $nv];
                for v in 0..$nv {
                    bv[v] = $load(b.add(v * $lanes));
                }
                for i in 0..$mr {
                    let ai = $splat(*a.add(i));
                    for v in 0..$nv {
                        acc[i][v] = $fma(ai, bv[v], acc[i][v]);
                    }
                }
                a = a.add($mr);
                b = b.add(NR);
            }
            for i in 0..$mr {
                for v in 0..$nv {
                    let p = c.add(i * ldc + v * $lanes);
                    let r = if overwrite {
                        acc[i][v]
                    } else {
                        $add(acc[i][v], $load(p))
                    };
                    $store(p, r);
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::KernelFn;

    simd_kernel!(f32_avx512_12x32: f32, "avx512f", mr = 12, nv = 2, lanes = 16, __m512,
        zero = _mm512_setzero_ps, load = _mm512_loadu_ps, store = _mm512_storeu_ps,
        splat = _mm512_set1_ps, fma = _mm512_fmadd_ps, add = _mm512_add_ps);
    simd_kernel!(f64_avx512_12x16: f64, "avx512f", mr = 12, nv = 2, lanes = 8, __m512d,
        zero = _mm512_setzero_pd, load = _mm512_loadu_pd, store = _mm512_storeu_pd,
        splat = _mm512_set1_pd, fma = _mm512_fmadd_pd, add = _mm512_add_pd);
    simd_kernel!(f32_avx2_6x16: f32, "avx2,fma", mr = 6, nv = 2, lanes = 8, __m256,
        zero = _mm256_setzero_ps, load = _mm256_loadu_ps, store = _mm256_storeu_ps,
        splat = _mm256_set1_ps, fma = _mm256_fmadd_ps, add = _mm256_add_ps);
    simd_kernel!(f64_avx2_6x8: f64, "avx2,fma", mr = 6, nv = 2, lanes = 4, __m256d,
        zero = _mm256_setzero_pd, load = _mm256_loadu_pd, store = _mm256_storeu_pd,
        splat = _mm256_set1_pd, fma = _mm256_fmadd_pd, add = _mm256_add_pd);

    pub(super) const F32_AVX512: KernelFn<f32> = f32_avx512_12x32;
    pub(super) const F64_AVX512: KernelFn<f64> = f64_avx512_12x16;
    pub(super) const F32_AVX2: KernelFn<f32> = f32_avx2_6x16;
    pub(super) const F64_AVX2: KernelFn<f64> = f64_avx2_6x8;

    pub(super) fn has_avx512() -> bool {
        is_x86_feature_detected!("avx512f")
    }
    pub(super) fn has_avx2_fma() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
}

// Blocking sizes per kernel (see the module docs for the reasoning), with the footprints:
//   B micro-panel in L1, KC * NR * size: 12x32 f32 and 12x16 f64: 256 * 128 B = 32 KiB (two
//     thirds of a 48 KiB L1d; the streamed A panel adds 12-24 KiB); 6x16 f32 and 6x8 f64:
//     256 * 64 B = 16 KiB (half of a 32 KiB L1d).
//   A block in L2, MC * KC * size: 12x32 f32: 96 * 256 * 4 = 96 KiB; 12x16 f64: 192 KiB;
//     6x16 f32: 144 KiB and 6x8 f64: 144 KiB (both fit the 256 KiB L2 of older AVX2 cores).
//   B block in L3, KC * NC * size: 256 * 4096 * 4 = 4 MiB (f32), 256 * 2048 * 8 = 4 MiB (f64).
// The AVX-512 sizes were then adjusted by measurement on a Sapphire Rapids core (48 KiB L1d,
// 2 MiB L2; see docs/cpu-matmul.md): KC = 256, MC = 96 ran about 10% faster than KC = 192,
// MC = 288, and smaller or larger KC (128, 384, 512) were no better.

static F32_KERNELS: OnceLock<Vec<Kernel<f32>>> = OnceLock::new();
static F64_KERNELS: OnceLock<Vec<Kernel<f64>>> = OnceLock::new();

fn f32_kernels() -> &'static [Kernel<f32>] {
    F32_KERNELS.get_or_init(|| {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if x86::has_avx512() {
                v.push(Kernel {
                    name: "f32 avx512 12x32",
                    mr: 12,
                    nr: 32,
                    kc: 256,
                    mc: 96,
                    nc: 4096,
                    func: x86::F32_AVX512,
                });
            }
            if x86::has_avx2_fma() {
                v.push(Kernel {
                    name: "f32 avx2+fma 6x16",
                    mr: 6,
                    nr: 16,
                    kc: 256,
                    mc: 144,
                    nc: 4096,
                    func: x86::F32_AVX2,
                });
            }
        }
        v.push(Kernel {
            name: "f32 portable 4x16",
            mr: 4,
            nr: 16,
            kc: 256,
            mc: 128,
            nc: 4096,
            func: portable::<f32, 4, 16>,
        });
        v
    })
}

fn f64_kernels() -> &'static [Kernel<f64>] {
    F64_KERNELS.get_or_init(|| {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if x86::has_avx512() {
                v.push(Kernel {
                    name: "f64 avx512 12x16",
                    mr: 12,
                    nr: 16,
                    kc: 256,
                    mc: 96,
                    nc: 2048,
                    func: x86::F64_AVX512,
                });
            }
            if x86::has_avx2_fma() {
                v.push(Kernel {
                    name: "f64 avx2+fma 6x8",
                    mr: 6,
                    nr: 8,
                    kc: 256,
                    mc: 72,
                    nc: 2048,
                    func: x86::F64_AVX2,
                });
            }
        }
        v.push(Kernel {
            name: "f64 portable 4x8",
            mr: 4,
            nr: 8,
            kc: 256,
            mc: 64,
            nc: 2048,
            func: portable::<f64, 4, 8>,
        });
        v
    })
}

/// The kernel `gemm` uses: the first (best) one this CPU supports, unless the environment
/// variable `KERNELS_GEMM_KERNEL` names another (`avx512`, `avx2` or `portable`; matched against
/// the kernel names), which is for benchmarking the fallbacks on a machine that has better. Read
/// once per scalar type; a name that matches no available kernel is ignored.
fn choose<T>(kernels: &'static [Kernel<T>]) -> &'static Kernel<T> {
    std::env::var("KERNELS_GEMM_KERNEL")
        .ok()
        .and_then(|want| kernels.iter().find(|k| k.name.contains(want.as_str())))
        .unwrap_or(&kernels[0])
}

static F32_CHOSEN: OnceLock<&'static Kernel<f32>> = OnceLock::new();
static F64_CHOSEN: OnceLock<&'static Kernel<f64>> = OnceLock::new();

impl super::sealed::Sealed for f32 {
    fn kernel() -> &'static Kernel<f32> {
        F32_CHOSEN.get_or_init(|| choose(f32_kernels()))
    }
    #[cfg(test)]
    fn all_kernels() -> Vec<&'static Kernel<f32>> {
        f32_kernels().iter().collect()
    }
    fn scratch(slot: usize) -> &'static LocalKey<Cell<Vec<f32>>> {
        thread_local! {
            static A: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
            static B: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
        }
        if slot == 0 {
            &A
        } else {
            &B
        }
    }
}

impl super::sealed::Sealed for f64 {
    fn kernel() -> &'static Kernel<f64> {
        F64_CHOSEN.get_or_init(|| choose(f64_kernels()))
    }
    #[cfg(test)]
    fn all_kernels() -> Vec<&'static Kernel<f64>> {
        f64_kernels().iter().collect()
    }
    fn scratch(slot: usize) -> &'static LocalKey<Cell<Vec<f64>>> {
        thread_local! {
            static A: Cell<Vec<f64>> = const { Cell::new(Vec::new()) };
            static B: Cell<Vec<f64>> = const { Cell::new(Vec::new()) };
        }
        if slot == 0 {
            &A
        } else {
            &B
        }
    }
}

/// Name of the micro-kernel `gemm` uses for `T` on this CPU (for benchmarks and reports).
pub fn kernel_name<T: GemmScalar>() -> &'static str {
    T::kernel().name
}
