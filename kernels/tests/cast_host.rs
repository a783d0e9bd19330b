//! cast.cu's conversion functions, compiled as plain C++ with the host's compiler and run
//! against the Rust contract (`kernels::elementwise::cast::cast_bits`) on every 16-bit and
//! bool source value and on random and edge-case f32, f64 and i64 values, for all 30 pairs.
//! No GPU runs the kernels here; this is how the port of the contract is checked by running it.
//!
//! Skips with a printed reason where no C++ compiler (`c++`, or `$CXX`) is found.

use std::io::Write;
use std::process::{Command, Stdio};

use kernels::elementwise::cast::{cast_bits, CastType};

/// Reads (from, to, bits) triples of u64 from stdin, writes one u64 result per triple.
const HARNESS: &str = r#"
#include <cstdio>
#include <vector>
int main() {
    std::vector<u64> in;
    u64 buf[3];
    while (fread(buf, sizeof(u64), 3, stdin) == 3) {
        in.insert(in.end(), buf, buf + 3);
    }
    std::vector<u64> out(in.size() / 3);
    for (size_t i = 0; i < out.size(); ++i) {
        out[i] = cast_bits((int)in[3 * i], (int)in[3 * i + 1], in[3 * i + 2]);
    }
    fwrite(out.data(), sizeof(u64), out.size(), stdout);
    return 0;
}
"#;

/// cast.cu's type codes (`enum { T_F32, T_F64, T_BF16, T_F16, T_I64, T_BOOL }`).
fn code(t: CastType) -> u64 {
    match t {
        CastType::F32 => 0,
        CastType::F64 => 1,
        CastType::BF16 => 2,
        CastType::F16 => 3,
        CastType::I64 => 4,
        CastType::Bool => 5,
    }
}

/// Source values for one type: exhaustive where it is small, edge cases plus random bits else.
fn inputs(t: CastType, rng: &mut u64) -> Vec<u64> {
    let mut next = || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    match t {
        CastType::Bool => vec![0, 1, 2, 255],
        CastType::BF16 | CastType::F16 => (0..=u16::MAX as u64).collect(),
        CastType::F32 => {
            let mut v: Vec<u64> = [
                0.0f32,
                -0.0,
                1.0,
                -1.5,
                65504.0,
                65520.0,
                1e-45,
                f32::MAX,
                f32::MIN,
            ]
            .iter()
            .map(|x| x.to_bits() as u64)
            .chain([
                0x7f80_0000,
                0xff80_0001,
                0x7fc0_0000,
                0x3f80_8000,
                0x3f81_8000,
                0x0001_8000,
            ])
            .collect();
            // Near 1 (the ties of bf16 and f16) and anywhere.
            v.extend((0..20_000).map(|_| 0x3f80_0000 | (next() & 0x7f_ffff)));
            v.extend((0..40_000).map(|_| next() & 0xffff_ffff));
            v
        }
        CastType::F64 => {
            let mut v: Vec<u64> = [0.0f64, -0.0, 1e300, -1e-300, 2f64.powi(-150), 9.3e18, -9.3e18]
                .iter()
                .map(|x| x.to_bits())
                .chain([
                    1,
                    0x7ff0_0000_0000_0000,
                    0xfff4_0000_0000_0001,
                    0x7ff0_0000_0000_0001,
                ])
                .collect();
            v.extend((0..20_000).map(|_| 0x3ff0_0000_0000_0000 | (next() >> 12)));
            // Exponents around the f32/bf16/f16 subnormal and overflow edges.
            v.extend((0..20_000).map(|_| {
                let w = next();
                ((1023 - 160 + (w >> 56)) << 52) | (w & ((1 << 52) - 1)) | (w & (1 << 63))
            }));
            v.extend((0..40_000).map(|_| next()));
            v
        }
        CastType::I64 => {
            let mut v: Vec<u64> = [0i64, 1, -1, 257, i64::MAX, i64::MIN, (1 << 62) + (1 << 38) + 1]
                .iter()
                .map(|&i| i as u64)
                .collect();
            v.extend((0..40_000).map(|_| {
                let w = next();
                ((w as i64) >> (w % 64)) as u64
            }));
            v
        }
    }
}

fn compiler() -> String {
    std::env::var("CXX").unwrap_or_else(|_| "c++".to_string())
}

#[test]
fn cast_cu_conversions_equal_the_rust_contract() {
    let cxx = compiler();
    if Command::new(&cxx).arg("--version").output().is_err() {
        eprintln!("cast_cu_conversions_equal_the_rust_contract: SKIPPED: no C++ compiler `{cxx}`");
        return;
    }
    let src = kernels::cuda::source("cast.cu")
        .expect("cast.cu is registered")
        .src;
    let dir = std::env::temp_dir().join(format!("cast_host_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cpp, exe) = (dir.join("cast_host.cpp"), dir.join("cast_host"));
    std::fs::write(&cpp, format!("{src}\n{HARNESS}")).unwrap();
    let built = Command::new(&cxx)
        .args(["-std=c++17", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(&cpp)
        .output()
        .expect("running the C++ compiler");
    assert!(
        built.status.success(),
        "cast.cu does not compile as C++:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );

    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut triples = Vec::new();
    for from in CastType::ALL {
        let values = inputs(from, &mut rng);
        for to in CastType::ALL.into_iter().filter(|&t| t != from) {
            for &bits in &values {
                triples.push((from, to, bits));
            }
        }
    }
    let mut stdin_bytes = Vec::with_capacity(triples.len() * 24);
    for &(from, to, bits) in &triples {
        for w in [code(from), code(to), bits] {
            stdin_bytes.extend_from_slice(&w.to_le_bytes());
        }
    }
    let mut child = Command::new(&exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running the harness");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&stdin_bytes));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), triples.len() * 8);

    let mut failures = Vec::new();
    for (i, &(from, to, bits)) in triples.iter().enumerate() {
        let got = u64::from_le_bytes(out.stdout[i * 8..i * 8 + 8].try_into().unwrap());
        let want = cast_bits(from, to, bits);
        if got != want && failures.len() < 20 {
            failures.push(format!(
                "{from:?} -> {to:?} of {bits:#x}: cast.cu {got:#x}, cast.rs {want:#x}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{} conversions: cast.cu (as C++) equals cast.rs", triples.len());
}
