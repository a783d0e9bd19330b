//! `cargo xtask test`: the one test command, the same on a laptop, in CI and on a fresh clone.

use std::path::Path;
use std::process::Command;

use clap::Args;

use crate::{cuda_env, exit_code, progress, wheels};

#[derive(Args)]
pub struct TestArgs {
    /// Do not fetch the NVRTC wheels. REQUIRE_NVRTC is then not set, so the NVRTC compile
    /// checks skip with a printed reason unless NVRTC is already on LD_LIBRARY_PATH.
    #[arg(long)]
    no_fetch: bool,

    /// Also run the CUDA parity tests (autograd `parity`, nn `optim_cuda`) and the emulator's
    /// own tests on the host emulator (docs/emulator.md): the workspace is built once with
    /// `--features kernels/emulator`, then those tests run again with KERNELS_EMULATOR=1
    /// REQUIRE_CUDA=1. The emulator executes the CUDA sources on the CPU; it is NOT a GPU check.
    /// Off by default: on a 2-core machine it adds several minutes.
    #[arg(long)]
    emulator: bool,

    /// Passed on to `cargo test --workspace`, e.g. `cargo xtask test -- --release` or
    /// `cargo xtask test -- spill -- --nocapture` (a test-name filter, then libtest flags).
    #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
    cargo_args: Vec<String>,
}

pub fn run(args: &TestArgs, root: &Path) -> Result<u8, String> {
    // One feature set for both passes, so the emulator pass reuses the first pass's build.
    let features: &[&str] = if args.emulator {
        &["--features", "kernels/emulator"]
    } else {
        &[]
    };
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root)
        .args(["test", "--workspace"])
        .args(features)
        .args(&args.cargo_args);
    if args.no_fetch {
        progress(
            "--no-fetch: using no fetched NVRTC; the NVRTC compile checks skip unless NVRTC is \
             already on LD_LIBRARY_PATH",
        );
    } else {
        let dirs = wheels::ensure(root, false)?;
        cuda_env::apply(&mut cmd, &dirs);
        // With NVRTC provided, a compile check that cannot find it is a failure, not a skip.
        cmd.env("REQUIRE_NVRTC", "1");
        progress(&format!(
            "environment: {} REQUIRE_NVRTC=1",
            cuda_env::describe(&dirs)
        ));
    }
    let shown: Vec<&str> = ["cargo", "test", "--workspace"]
        .into_iter()
        .chain(features.iter().copied())
        .chain(args.cargo_args.iter().map(String::as_str))
        .collect();
    progress(&format!("running: {}", shown.join(" ")));
    let status = cmd.status().map_err(|e| format!("could not run cargo: {e}"))?;
    let code = exit_code(status);
    if code != 0 || !args.emulator {
        return Ok(code);
    }
    emulator_pass(&cmd, root)
}

/// The CUDA tests again, on the host emulator. The memory test runs alone, as on a GPU
/// machine (gpu_bundle.rs): it counts the shared pool's allocations, which other tests running
/// beside it would add to.
fn emulator_pass(first: &Command, root: &Path) -> Result<u8, String> {
    progress(
        "HOST EMULATOR pass: the CUDA parity tests with every kernel executed on the CPU \
         (KERNELS_EMULATOR=1 REQUIRE_CUDA=1). This is not a GPU check: timings, memory-model \
         races, tensor-core numerics and ptxas code generation are not tested.",
    );
    let runs: [&[&str]; 2] = [
        &[
            "--test",
            "parity",
            "--test",
            "optim_cuda",
            "--test",
            "emulator",
            "--test",
            "cvx_cuda",
            "--",
            "--skip",
            "training_steps_reuse_pooled_memory",
        ],
        &[
            "--test",
            "parity",
            "--",
            "--exact",
            "memory::training_steps_reuse_pooled_memory",
        ],
    ];
    for extra in runs {
        let mut cmd = Command::new(cargo());
        cmd.current_dir(root)
            .args(["test", "--workspace", "--features", "kernels/emulator"])
            .args(extra)
            .env("KERNELS_EMULATOR", "1")
            .env("REQUIRE_CUDA", "1");
        for (k, v) in first.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        progress(&format!(
            "running (host emulator): KERNELS_EMULATOR=1 REQUIRE_CUDA=1 cargo test --workspace --features \
             kernels/emulator {}",
            extra.join(" ")
        ));
        let code = exit_code(cmd.status().map_err(|e| format!("could not run cargo: {e}"))?);
        if code != 0 {
            return Ok(code);
        }
    }
    Ok(0)
}

/// The cargo that runs us (cargo sets `CARGO` for `cargo run`), so that a toolchain chosen with
/// `cargo +nightly xtask` is the one that tests.
fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}
