//! Launch configurations (pure), and, with NVRTC, that the `.cu` files agree with this module:
//! every entry name is an `.entry` of the compiled PTX, the tile constants match, and
//! `AttnParams` has the C layout.

use super::*;
use crate::cuda::{all_sources, find_cuda_include, nvrtc_available};
use std::mem::{offset_of, size_of};

fn shape(
    batch: usize,
    heads: usize,
    kv_heads: usize,
    q_len: usize,
    kv_len: usize,
    head_dim: usize,
) -> AttnShape {
    AttnShape {
        batch,
        heads,
        kv_heads,
        q_len,
        kv_len,
        head_dim,
    }
}

#[test]
fn grids_cover_every_row_and_head() {
    let s = shape(3, 8, 2, 1000, 77, 64);
    let f = forward_launches(AttnDtype::Bf16, &s).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].entry.as_str(), f[0].grid, f[0].block),
        ("attention_fwd_bf16_d64", (16, 24, 1), (128, 1, 1))
    );
    let b = backward_launches(AttnDtype::F32, &s, false).unwrap();
    let names: Vec<&str> = b.iter().map(|c| c.entry.as_str()).collect();
    assert_eq!(
        names,
        [
            "attention_bwd_delta_f32",
            "attention_bwd_dkdv_f32_d64",
            "attention_bwd_dq_f32_d64"
        ]
    );
    assert_eq!(b[0].grid, (6000, 1, 1)); // 24000 rows, 4 per block
    assert_eq!(b[1].grid, (5, 6, 1)); // 77 keys in blocks of 16, B * Hkv
    assert_eq!(b[2].grid, (63, 24, 1)); // 1000 queries in blocks of 16, B * H
                                        // Nothing to launch for no queries; no dK/dV launch for no keys (dQ writes its zeros).
    assert!(forward_launches(AttnDtype::F32, &shape(2, 2, 2, 0, 5, 32))
        .unwrap()
        .is_empty());
    let no_keys = backward_launches(AttnDtype::Bf16, &shape(2, 2, 1, 5, 0, 128), false).unwrap();
    assert_eq!(no_keys.len(), 2);
    assert!(no_keys[1].entry.contains("dq"));
    // A bias gradient swaps only the dQ entry; its grid and block are the plain one's.
    let with_bias = backward_launches(AttnDtype::F32, &s, true).unwrap();
    assert_eq!(with_bias[..2], b[..2]);
    assert_eq!(with_bias[2].entry, "attention_bwd_dq_dbias_f32_d64");
    assert_eq!((with_bias[2].grid, with_bias[2].block), (b[2].grid, b[2].block));
}

#[test]
fn bad_shapes_are_errors() {
    assert_eq!(
        forward_launches(AttnDtype::F32, &shape(1, 1, 1, 4, 4, 48)),
        Err(LaunchError::HeadDim(48))
    );
    assert!(matches!(
        forward_launches(AttnDtype::F32, &shape(1, 4, 3, 4, 4, 64)),
        Err(LaunchError::Heads { .. })
    ));
    let e = forward_launches(AttnDtype::Bf16, &shape(1024, 128, 128, 4, 4, 64)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "batch * heads needs 131072 blocks in grid.y (limit 65535)"
    );
}

#[test]
fn every_tile_fits_static_shared_memory() {
    for kernel in Kernel::ALL {
        for dtype in [AttnDtype::F32, AttnDtype::Bf16] {
            for d in HEAD_DIMS {
                let t = tile(kernel, dtype, d);
                assert!(t.smem <= 48 * 1024, "{kernel:?} {dtype:?} d{d}: {} B", t.smem);
                // bf16 warps own 16 rows (the mma M dimension); steps are whole mma tiles.
                if dtype == AttnDtype::Bf16 {
                    assert_eq!(t.block_rows, 16 * t.threads / 32);
                    assert_eq!(t.step_rows % 16, 0);
                }
            }
        }
    }
}

#[test]
fn alignment_rule_and_flops() {
    assert!(rows_aligned(AttnDtype::Bf16, 4096, [8 * 64, 64, 64]));
    assert!(!rows_aligned(AttnDtype::Bf16, 4096, [8 * 36, 36, 36]));
    assert!(!rows_aligned(AttnDtype::F32, 4100, [64, 64, 64]));
    let s = shape(2, 16, 16, 8192, 8192, 128);
    assert_eq!(
        nominal_flops(&s, false, false),
        4.0 * 2.0 * 16.0 * 8192.0 * 8192.0 * 128.0
    );
    assert_eq!(
        nominal_flops(&s, true, true),
        2.5 * 0.5 * nominal_flops(&s, false, false)
    );
}

/// `sizeof` as the C++ compiler sees it (NVRTC has no `offsetof`; field offsets are checked by
/// [`c_layout_matches_rust`] from the header's text instead).
fn layout_asserts() -> String {
    format!(
        "static_assert(sizeof(AttnParams) == {}, \"sizeof AttnParams\");\n",
        size_of::<AttnParams>()
    )
}

/// The C struct's fields in order, with their offsets under the C layout rules (natural
/// alignment; pointers and `long long` 8 bytes, `int` and `float` 4), read from the header.
fn c_fields() -> Vec<(String, usize)> {
    let header = include_str!("../attention_common.cuh");
    let body = header
        .split("struct AttnParams {")
        .nth(1)
        .unwrap()
        .split("};")
        .next()
        .unwrap();
    let mut offset = 0usize;
    let mut fields = Vec::new();
    for line in body.lines() {
        let code = line.split("//").next().unwrap().trim();
        let Some(decl) = code.strip_suffix(';') else {
            continue;
        };
        let (ty, name) = decl.rsplit_once([' ', '*']).unwrap();
        let (name, count) = match name.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().unwrap()),
            None => (name, 1),
        };
        let size = if decl.contains('*') || ty.contains("long long") {
            8
        } else if ty.ends_with("int") || ty.ends_with("float") {
            4
        } else {
            panic!("unknown C type in {decl:?}")
        };
        offset = offset.next_multiple_of(size);
        fields.push((name.to_string(), offset));
        offset += size * count;
    }
    fields
}

#[test]
fn c_layout_matches_rust() {
    let rust = [
        ("q", offset_of!(AttnParams, q)),
        ("k", offset_of!(AttnParams, k)),
        ("v", offset_of!(AttnParams, v)),
        ("out", offset_of!(AttnParams, out)),
        ("lse", offset_of!(AttnParams, lse)),
        ("max_logit", offset_of!(AttnParams, max_logit)),
        ("mask", offset_of!(AttnParams, mask)),
        ("bias", offset_of!(AttnParams, bias)),
        ("key_lengths", offset_of!(AttnParams, key_lengths)),
        ("dout", offset_of!(AttnParams, dout)),
        ("dq", offset_of!(AttnParams, dq)),
        ("dk", offset_of!(AttnParams, dk)),
        ("dv", offset_of!(AttnParams, dv)),
        ("delta", offset_of!(AttnParams, delta)),
        ("dbias", offset_of!(AttnParams, dbias)),
        ("q_stride", offset_of!(AttnParams, q_stride)),
        ("k_stride", offset_of!(AttnParams, k_stride)),
        ("v_stride", offset_of!(AttnParams, v_stride)),
        ("o_stride", offset_of!(AttnParams, o_stride)),
        ("mask_stride", offset_of!(AttnParams, mask_stride)),
        ("bias_stride", offset_of!(AttnParams, bias_stride)),
        ("batch", offset_of!(AttnParams, batch)),
        ("heads", offset_of!(AttnParams, heads)),
        ("kv_heads", offset_of!(AttnParams, kv_heads)),
        ("q_len", offset_of!(AttnParams, q_len)),
        ("kv_len", offset_of!(AttnParams, kv_len)),
        ("head_dim", offset_of!(AttnParams, head_dim)),
        ("causal", offset_of!(AttnParams, causal)),
        ("diagonal", offset_of!(AttnParams, diagonal)),
        ("scale", offset_of!(AttnParams, scale)),
    ];
    let c = c_fields();
    let rust: Vec<(String, usize)> = rust.iter().map(|(n, o)| (n.to_string(), *o)).collect();
    assert_eq!(c, rust);
    assert_eq!(size_of::<AttnParams>(), 320);
}

fn tile_asserts(source: &str) -> String {
    let mut a = String::new();
    for d in HEAD_DIMS {
        let mut assert = |expr: String, value: usize| {
            a += &format!("static_assert({expr} == {value}, \"{expr}\");\n");
        };
        if source == "attention_fwd.cu" {
            let t = tile(Kernel::Forward, AttnDtype::Bf16, d);
            assert(format!("FwdBf16Tile<{d}>::BR"), t.block_rows);
            assert(format!("FwdBf16Tile<{d}>::BC"), t.step_rows);
            assert(format!("FwdBf16Tile<{d}>::THREADS"), t.threads);
            let t = tile(Kernel::Forward, AttnDtype::F32, d);
            assert(format!("FwdF32Tile<{d}>::BR"), t.block_rows);
            assert(format!("FwdF32Tile<{d}>::BC"), t.step_rows);
            assert(format!("FwdF32Tile<{d}>::THREADS"), t.threads);
        } else {
            let (kv, dq) = (
                tile(Kernel::BackwardDkDv, AttnDtype::Bf16, d),
                tile(Kernel::BackwardDq, AttnDtype::Bf16, d),
            );
            assert(format!("BwdBf16Tile<{d}>::KV_BC"), kv.block_rows);
            assert(format!("BwdBf16Tile<{d}>::KV_BR"), kv.step_rows);
            assert(format!("BwdBf16Tile<{d}>::Q_BR"), dq.block_rows);
            assert(format!("BwdBf16Tile<{d}>::Q_BC"), dq.step_rows);
            let t = tile(Kernel::BackwardDq, AttnDtype::F32, d);
            assert(format!("BwdF32Tile<{d}>::ROWS"), t.block_rows);
            assert(format!("BwdF32Tile<{d}>::STEP"), t.step_rows);
            assert(format!("BwdF32Tile<{d}>::THREADS"), t.threads);
        }
    }
    a
}

/// One front-end compile per source (virtual compute_90: PTX only, no ptxas, so it is quicker
/// than the full compile check, which covers registers and spills).
#[test]
fn sources_agree_with_this_module() {
    if let Err(why) = nvrtc_available() {
        assert!(
            std::env::var("REQUIRE_NVRTC").as_deref() != Ok("1"),
            "REQUIRE_NVRTC=1 but NVRTC is not usable: {why}"
        );
        eprintln!("sources_agree_with_this_module: SKIPPED (REQUIRE_NVRTC=1 makes this fail): {why}");
        return;
    }
    let include = find_cuda_include().expect("cuda_bf16.h (set CUDA_INCLUDE_DIR)");
    let entries = entries();
    assert_eq!(entries.len(), 26);
    std::thread::scope(|scope| {
        for name in ["attention_fwd.cu", "attention_bwd.cu"] {
            let (include, entries) = (&include, &entries);
            scope.spawn(move || {
                let src = all_sources().iter().find(|s| s.name == name).expect("registered");
                let text = format!("{}\n{}{}", src.src, layout_asserts(), tile_asserts(name));
                let opts = cudarc::nvrtc::CompileOptions {
                    arch: Some("compute_90"),
                    include_paths: vec![include.display().to_string()],
                    options: vec!["--std=c++17".into()],
                    name: Some(name.into()),
                    ..Default::default()
                };
                let ptx = cudarc::nvrtc::compile_ptx_with_opts(text, opts)
                    .unwrap_or_else(|e| panic!("{name}: {e:?}"))
                    .to_src();
                let declared = ptx.matches(".entry ").count();
                let ours: Vec<_> = entries.iter().filter(|(file, _)| *file == name).collect();
                assert_eq!(declared, ours.len(), "{name}: PTX entries vs launch::entries()");
                for (_, entry) in ours {
                    assert!(
                        ptx.contains(&format!(".entry {entry}(")),
                        "{name}: no .entry {entry}"
                    );
                }
            });
        }
    });
}
