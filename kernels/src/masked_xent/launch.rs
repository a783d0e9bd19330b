//! Launch shapes and the parameter block of `masked_xent.cu`: pure functions of the problem
//! size, so they are tested here without a GPU. The code that launches the kernels lives with
//! the CUDA runtime and calls these.

use super::mask::ClassMask;
use super::XentOptions;

/// The file name under which `masked_xent.cu` is registered (`cuda::source`).
pub const SOURCE: &str = "masked_xent.cu";

/// Every entry point of `masked_xent.cu`.
pub const ENTRIES: [&str; 9] = [
    "masked_xent_fwd_f32",
    "masked_xent_fwd_bf16",
    "masked_xent_bwd_f32",
    "masked_xent_bwd_bf16",
    "masked_xent_reduce",
    "masked_softmax_fwd_f32",
    "masked_softmax_fwd_bf16",
    "masked_softmax_bwd_f32",
    "masked_softmax_bwd_bf16",
];

/// The row kernels are compiled with `__launch_bounds__(512)`, so ptxas may use up to 128
/// registers; a larger block would fail to launch.
pub const MAX_ROW_BLOCK: u32 = 512;
/// `masked_xent_reduce` runs one block of this many threads (`__launch_bounds__(1024)`).
pub const REDUCE_BLOCK: u32 = 1024;

/// Bits of `status[0]` set by the forward kernel (the `XENT_*` defines of the `.cu`).
pub const STATUS_BAD_TARGET: i32 = 1;
pub const STATUS_MASKED_TARGET: i32 = 2;
pub const STATUS_NONFINITE: i32 = 4;

/// The kernels' `XentParams`, field for field (`#[repr(C)]`, 72 bytes, 8-aligned): passed by
/// value as the last kernel argument.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct XentParams {
    pub rows: i64,
    pub classes: i64,
    pub ignore_index: i64,
    /// 1 for a broadcast mask, else `rows`.
    pub mask_rows: i64,
    /// Bitset words per mask row (0 for other encodings).
    pub mask_words: i64,
    pub mask_value: f32,
    pub label_smoothing: f32,
    pub z_loss: f32,
    pub focal_gamma: f32,
    /// 0 all, 1 dense bytes, 2 ranges, 3 bitset: [`mask_kind`].
    pub mask_kind: i32,
    pub has_ignore: i32,
    pub log_softmax: i32,
    pub reserved: i32,
}

/// The `.cu`'s `MASK_*` code for this mask.
pub fn mask_kind(mask: &ClassMask) -> i32 {
    match mask {
        ClassMask::All => 0,
        ClassMask::Dense { .. } => 1,
        ClassMask::Ranges(_) => 2,
        ClassMask::Bitset { .. } => 3,
    }
}

impl XentParams {
    /// Parameters of the cross-entropy kernels. The options are narrowed to f32, the kernels'
    /// compute type.
    pub fn cross_entropy(rows: usize, classes: usize, mask: &ClassMask, opts: &XentOptions) -> XentParams {
        XentParams {
            rows: rows as i64,
            classes: classes as i64,
            ignore_index: opts.ignore_index.unwrap_or(-1),
            mask_rows: mask.mask_rows() as i64,
            mask_words: match mask {
                ClassMask::Bitset { words, .. } => *words as i64,
                _ => 0,
            },
            mask_value: opts.mask_value as f32,
            label_smoothing: opts.label_smoothing as f32,
            z_loss: opts.z_loss as f32,
            focal_gamma: opts.focal_gamma as f32,
            mask_kind: mask_kind(mask),
            has_ignore: opts.ignore_index.is_some() as i32,
            log_softmax: 0,
            reserved: 0,
        }
    }

    /// Parameters of the softmax kernels.
    pub fn softmax(rows: usize, classes: usize, mask: &ClassMask, mask_value: f64, log: bool) -> XentParams {
        let opts = XentOptions {
            mask_value,
            ..XentOptions::default()
        };
        XentParams {
            log_softmax: log as i32,
            ..XentParams::cross_entropy(rows, classes, mask, &opts)
        }
    }
}

/// A 1-D launch: `grid` blocks of `block` threads, no dynamic shared memory (the kernels use
/// only static shared memory, 32 floats per reduced quantity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    pub grid: u32,
    pub block: u32,
}

/// The launch for a row kernel over `rows` rows of `classes` elements of `elem_bytes` bytes
/// (4 for f32, 2 for bf16). One block per row (the kernels loop over rows if the grid is
/// capped). The block grows with the row so that each thread streams at least ~8 of the
/// 16-byte vectors, which is what amortizes the per-thread online max/sum and the block
/// reduction; rows are many (thousands) in the target shapes, so occupancy comes from the grid.
pub fn row_launch(rows: usize, classes: usize, elem_bytes: usize) -> Launch {
    let vectors = classes.div_ceil(16 / elem_bytes.clamp(1, 16));
    let block = match vectors {
        0..=1024 => 128,
        1025..=2048 => 256,
        _ => MAX_ROW_BLOCK,
    };
    Launch {
        // gridDim.x is at most 2^31 − 1; zero rows still launch one (idle) block, which keeps
        // callers free of a special case.
        grid: rows.clamp(1, i32::MAX as usize) as u32,
        block,
    }
}

/// The launch of `masked_xent_reduce`: one block.
pub fn reduce_launch() -> Launch {
    Launch {
        grid: 1,
        block: REDUCE_BLOCK,
    }
}

/// Bytes the forward must move per row (logits, the mask's share, the per-row outputs and
/// target), for the bench's bandwidth figure.
pub fn forward_bytes_per_row(classes: usize, elem_bytes: usize, mask: &ClassMask) -> usize {
    classes * elem_bytes + mask_bytes_per_row(classes, mask) + 8 + 5 * 4
}

/// Bytes the backward must move per row: read logits and write the gradient, the mask, and the
/// per-row lse, coefficients, g and target.
pub fn backward_bytes_per_row(classes: usize, elem_bytes: usize, mask: &ClassMask) -> usize {
    2 * classes * elem_bytes + mask_bytes_per_row(classes, mask) + 8 + 5 * 4
}

fn mask_bytes_per_row(classes: usize, mask: &ClassMask) -> usize {
    match mask {
        ClassMask::All => 0,
        ClassMask::Dense { rows, .. } if *rows > 1 => classes,
        ClassMask::Ranges(r) if r.len() > 1 => 8,
        ClassMask::Bitset { words, bits } if bits.len() > *words => 8 * words,
        // A broadcast mask is read once per row too, but from cache.
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::{compile, nvrtc_available, source, Arch, CompileOptions};

    #[test]
    fn params_layout_matches_the_cu_struct() {
        assert_eq!(std::mem::size_of::<XentParams>(), 72);
        assert_eq!(std::mem::align_of::<XentParams>(), 8);
        let mask = ClassMask::from_class_lists(130, &[[1usize, 2], [3, 4]]);
        let opts = XentOptions {
            ignore_index: Some(-100),
            z_loss: 1e-4,
            ..XentOptions::default()
        };
        let p = XentParams::cross_entropy(2, 130, &mask, &opts);
        assert_eq!((p.mask_kind, p.mask_rows, p.mask_words), (3, 2, 3));
        assert_eq!((p.has_ignore, p.ignore_index), (1, -100));
        assert_eq!(p.mask_value, f32::NEG_INFINITY);
        let s = XentParams::softmax(4, 8, &ClassMask::ranges(&[(0, 3)]), -1e4, true);
        assert_eq!(
            (s.mask_kind, s.mask_rows, s.log_softmax, s.has_ignore),
            (2, 1, 1, 0)
        );
    }

    #[test]
    fn launch_shapes() {
        for (classes, bytes, block) in [
            (10, 4, 128),
            (4096, 4, 128),
            (8192, 4, 256),
            (32_000, 2, MAX_ROW_BLOCK),
            (262_144, 4, MAX_ROW_BLOCK),
        ] {
            let l = row_launch(4096, classes, bytes);
            assert_eq!(l.block, block, "{classes} x {bytes} B");
            assert!(l.block.is_multiple_of(32) && l.block <= MAX_ROW_BLOCK);
            assert_eq!(l.grid, 4096);
        }
        assert_eq!(row_launch(0, 5, 4).grid, 1);
        assert_eq!(row_launch(usize::MAX, 5, 4).grid, i32::MAX as u32);
        assert_eq!(reduce_launch(), Launch { grid: 1, block: 1024 });
        let dense = ClassMask::dense(&[true; 8], 2, 4);
        assert_eq!(forward_bytes_per_row(4, 2, &dense), 8 + 4 + 28);
        assert_eq!(backward_bytes_per_row(4, 4, &ClassMask::All), 32 + 28);
    }

    /// Every listed name is an `.entry` of the compiled PTX, and the PTX's parameter block has
    /// the Rust struct's size. Needs NVRTC: skips (with a printed reason) where it is missing,
    /// fails under `REQUIRE_NVRTC=1`.
    #[test]
    fn entries_exist_in_the_ptx() {
        if let Err(why) = nvrtc_available() {
            assert!(
                std::env::var("REQUIRE_NVRTC").map_or(true, |v| v != "1"),
                "REQUIRE_NVRTC=1 but NVRTC is not usable: {why}"
            );
            eprintln!("entries_exist_in_the_ptx: SKIPPED (NVRTC not usable: {why})");
            return;
        }
        let src = source(SOURCE).expect("masked_xent.cu is registered");
        let c = compile(src, Arch::Sm90, &CompileOptions::strict()).unwrap_or_else(|e| panic!("{e}"));
        for name in ENTRIES {
            assert!(
                c.ptx.contains(&format!(".entry {name}(")),
                "{name} is not an entry"
            );
            let param = format!(".param .align 8 .b8 {name}_param_");
            let size = c
                .ptx
                .lines()
                .find(|l| l.contains(&param))
                .and_then(|l| l.rsplit('[').next())
                .and_then(|s| {
                    s.trim_end_matches(|c: char| !c.is_ascii_digit())
                        .parse::<usize>()
                        .ok()
                });
            assert_eq!(
                size,
                Some(std::mem::size_of::<XentParams>()),
                "{name}: XentParams size in the PTX"
            );
        }
        assert_eq!(c.kernels.len(), ENTRIES.len());
    }
}
