//! `cargo xtask gpu-bundle`: everything a GPU machine needs to run the CUDA checks, in one
//! folder small enough to carry there (under 64 MiB): the release test and bench binaries,
//! stripped; the CUDA headers NVRTC needs; and `run.sh`.
//!
//! The GPU machines have no network and maybe no Rust toolchain, so the binaries are built
//! here. libnvrtc (105 MB) is too large to carry; `run.sh` finds it there (ldconfig, a CUDA
//! toolkit, or PyTorch's `site-packages/nvidia/cu13/lib`), together with libcuda and libcublas.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::Args;

use crate::{progress, wheels};

#[derive(Args)]
pub struct GpuBundleArgs {
    /// Output folder (emptied first).
    #[arg(long, default_value = "target/gpu-bundle")]
    out: PathBuf,
    /// Leave out the bench binaries (smaller, quicker).
    #[arg(long)]
    no_bench: bool,
}

/// The test binaries the GPU run needs: the parity suites, the kernels' unit tests and the
/// NVRTC checks (compile for sm_80/sm_90 with ptxas, entry names, launcher parameter kinds: one
/// binary, `kernels/tests/nvrtc.rs`).
const TESTS: [(&str, &str); 4] = [
    ("autograd", "parity"),
    ("nn", "optim_cuda"),
    ("kernels", "nvrtc"),
    ("kernels", "kernels"),
];

/// Most the folder may weigh: what one device call carries.
const LIMIT_BYTES: u64 = 64 << 20;

pub fn run(args: &GpuBundleArgs, root: &Path) -> Result<u8, String> {
    let out = if args.out.is_absolute() {
        args.out.clone()
    } else {
        root.join(&args.out)
    };
    if out.exists() {
        fs::remove_dir_all(&out).map_err(|e| format!("cannot empty {}: {e}", out.display()))?;
    }
    let bin = out.join("bin");
    fs::create_dir_all(&bin).map_err(|e| format!("cannot create {}: {e}", bin.display()))?;

    let mut cmd = cargo(root);
    cmd.args([
        "test",
        "--release",
        "--no-run",
        "--message-format=json",
        "-p",
        "autograd",
        "-p",
        "kernels",
        "-p",
        "nn",
    ]);
    let tests = built_executables(cmd)?;
    for (package, target) in TESTS {
        let Some(exe) = tests.iter().find(|(p, t, _)| p == package && t == target) else {
            return Err(format!("cargo built no test binary {package}/{target}"));
        };
        copy_stripped(&exe.2, &bin.join(target))?;
    }
    if !args.no_bench {
        let mut cmd = cargo(root);
        cmd.args(["bench", "--no-run", "--message-format=json", "-p", "bench"]);
        for (_, target, path) in built_executables(cmd)? {
            copy_stripped(&path, &bin.join(format!("bench-{target}")))?;
        }
        // The roofline report (`cargo xtask bench` there has no cargo): the binary and the
        // PyTorch reference script it runs.
        let mut cmd = cargo(root);
        cmd.args([
            "build",
            "--release",
            "--message-format=json",
            "-p",
            "bench",
            "--bin",
            "bench-report",
        ]);
        let report = built_executables(cmd)?;
        let Some((_, _, exe)) = report.iter().find(|(_, t, _)| t == "bench-report") else {
            return Err("cargo built no bench-report binary".into());
        };
        copy_stripped(exe, &bin.join("roofline-report"))?;
        let script = root.join("bench/reference/reference.py");
        fs::copy(&script, out.join("reference.py"))
            .map_err(|e| format!("cannot copy {}: {e}", script.display()))?;
    }

    // Headers: small, and the GPU machine may lack cuda_bf16.h outside a toolkit.
    let dirs = wheels::ensure(root, true)?;
    copy_dir(&dirs.include, &out.join("include"))?;
    let script = out.join("run.sh");
    fs::write(&script, RUN_SH).map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    make_executable(&script)?;

    let size = dir_size(&out);
    progress(&format!(
        "gpu bundle: {} ({:.1} MiB); on the GPU machine run: bash run.sh",
        out.display(),
        size as f64 / (1 << 20) as f64
    ));
    if size > LIMIT_BYTES {
        return Err(format!(
            "the bundle is {size} bytes, over the {LIMIT_BYTES}-byte carry limit; try --no-bench"
        ));
    }
    Ok(0)
}

fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root);
    cmd
}

/// Runs a `--message-format=json --no-run` build and returns (package, target, executable) of
/// every test or bench binary it produced.
fn built_executables(mut cmd: Command) -> Result<Vec<(String, String, PathBuf)>, String> {
    progress(&format!("running: {cmd:?}"));
    let output = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if !output.status.success() {
        return Err("the build failed (see above)".into());
    }
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        // Each line is one JSON object; pick the fields without a JSON dependency.
        if !line.contains("\"reason\":\"compiler-artifact\"") {
            continue;
        }
        let (Some(exe), Some(target), Some(package)) = (
            json_str(line, "executable"),
            json_str(line, "name"),
            json_str(line, "package_id"),
        ) else {
            continue;
        };
        // package_id looks like "path+file:///work/x/autograd#0.1.0": the folder name.
        let package = package
            .rsplit('/')
            .next()
            .unwrap_or("")
            .split('#')
            .next()
            .unwrap_or("")
            .to_string();
        found.push((package, target, PathBuf::from(exe)));
    }
    Ok(found)
}

/// The string value of the first `"key":"..."` in `line` (no escapes in the values we read).
fn json_str(line: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":\"");
    let start = line.find(&pat)? + pat.len();
    let end = start + line[start..].find('"')?;
    Some(line[start..end].to_string())
}

fn copy_stripped(from: &Path, to: &Path) -> Result<(), String> {
    fs::copy(from, to).map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
    // Debug info is most of a test binary's size; without strip the bundle still works.
    match Command::new("strip").arg(to).status() {
        Ok(s) if s.success() => {}
        _ => progress(&format!(
            "strip failed for {}; keeping it unstripped",
            to.display()
        )),
    }
    make_executable(to)
}

fn make_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let entries = fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &dest)?;
        } else {
            fs::copy(&path, &dest).map_err(|e| format!("cannot copy {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

fn dir_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                dir_size(&p)
            } else {
                e.metadata().map_or(0, |m| m.len())
            }
        })
        .sum()
}

/// Runs on the GPU machine, from the bundle folder. Finds the CUDA libraries, then runs the
/// kernel checks, the parity suites (REQUIRE_CUDA=1: a missing GPU fails), the memory test and
/// the benches, and writes every log under logs/. `bash run.sh STEP...` runs some steps only.
const RUN_SH: &str = r#"#!/usr/bin/env bash
# run.sh: the CUDA checks of this workspace on a GPU machine (written by `cargo xtask gpu-bundle`).
set -u
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
mkdir -p logs

# libcuda, libnvrtc (+ builtins beside it) and libcublas: ldconfig first, then a toolkit, then
# PyTorch's cu13 wheels.
libdirs=""
add() { case ":$libdirs:" in *":$1:"*) ;; *) libdirs="${libdirs:+$libdirs:}$1" ;; esac; }
for lib in libcuda.so libnvrtc.so libcublas.so; do
  p="$(ldconfig -p 2>/dev/null | grep -E "$lib" | head -1 | sed 's/.*=> //')"
  [ -n "$p" ] && add "$(dirname "$p")"
done
# The driver's own folder (a read-only mount on the lent machines) in case ldconfig misses it.
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && add "$d"
done
# python3 there is PyTorch's venv (/opt/torch/.venv); its cu13 wheels hold libnvrtc and libcublas.
for d in /opt/torch/.venv/lib/python3*/site-packages/nvidia/cu13/lib; do [ -d "$d" ] && add "$d"; done
for py in python3 python; do
  site="$($py -c 'import site,sys; print("\n".join(site.getsitepackages()))' 2>/dev/null)" || continue
  for s in $site; do
    for d in "$s"/nvidia/cu13/lib "$s"/nvidia/*/lib; do [ -d "$d" ] && add "$d"; done
  done
done
export LD_LIBRARY_PATH="${libdirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# Headers for NVRTC: a toolkit's, else the copy in this bundle.
if [ -f /usr/local/cuda/include/cuda_bf16.h ]; then export CUDA_INCLUDE_DIR=/usr/local/cuda/include
else export CUDA_INCLUDE_DIR="$here/include"; fi
export REQUIRE_NVRTC=1 REQUIRE_CUDA=1

echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
echo "CUDA_INCLUDE_DIR=$CUDA_INCLUDE_DIR"
ldconfig -p 2>/dev/null | grep -E 'libcuda|libnvrtc|libcublas' | head
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null

status=0
run() {
  name="$1"; shift
  echo "=== $name"
  start=$SECONDS
  if "$@" > "logs/$name.log" 2>&1; then echo "    ok ($((SECONDS - start)) s)"; else echo "    FAILED ($((SECONDS - start)) s, logs/$name.log)"; tail -30 "logs/$name.log"; status=1; fi
  grep -E "test result|SKIPPED" "logs/$name.log" | head -5
}

# Each step fits one device call (10 minutes); `bash run.sh STEP...` runs only those, in order.
step_nvrtc()    { run nvrtc bin/nvrtc --nocapture; }
step_unit()     { run kernel-unit bin/kernels --test-threads=1; }
step_parity()   { run parity bin/parity --test-threads=1 --skip training_steps_reuse_pooled_memory; }
step_memory()   { run memory bin/parity --test-threads=1 --exact memory::training_steps_reuse_pooled_memory; }
step_optim()    { run optim-parity bin/optim_cuda --test-threads=1; }
# The criterion CUDA groups only (attention_cuda, masked_xent_cuda, optim_cuda): the CPU groups
# of the same binaries are timed on the CPU machines.
step_benches()  {
  for b in bin/bench-*; do
    [ -x "$b" ] && run "$(basename "$b")" "$b" --bench --quick _cuda
  done
}
# The roofline report against PyTorch (python3 there holds it); outputs under report/.
step_roofline() {
  export BENCH_REFERENCE_SCRIPT="$here/reference.py"
  run roofline-report bin/roofline-report --device cuda --out "$here/report"
  run roofline-report-cpu bin/roofline-report --device cpu --quick --out "$here/report-cpu"
}
all="nvrtc unit parity memory optim"
[ -x bin/roofline-report ] && all="$all benches roofline"
for s in ${@:-$all}; do
  if declare -F "step_$s" > /dev/null; then "step_$s"; else echo "unknown step $s (steps: $all)"; status=1; fi
done
echo "exit status $status (logs in $here/logs)"
exit $status
"#;
