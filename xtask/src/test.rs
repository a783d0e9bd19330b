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

    /// Skip the host-emulator pass. By default the workspace is built once with
    /// `--features kernels/emulator` and, after the ordinary tests, the CUDA parity tests
    /// (autograd `parity`, nn `optim_cuda`, kernels `cvx_cuda`, the convex-ReLU solvers' CPU/CUDA
    /// iterates) and the emulator's own tests run
    /// again with KERNELS_EMULATOR=1 REQUIRE_CUDA=1: every launcher and kernel executes, as C++
    /// on the CPU (docs/emulator.md). It is NOT a GPU check.
    #[arg(long)]
    no_emulator: bool,

    /// Run every emulated test, including the three slowest (the f32 attention grid, the bf16
    /// attention kernels and every cross-entropy option: over a minute each on 2 cores), which
    /// the default pass leaves out to keep CI short.
    #[arg(long)]
    emulator_full: bool,

    /// Passed on to `cargo test --workspace`, e.g. `cargo xtask test -- --release` or
    /// `cargo xtask test -- spill -- --nocapture` (a test-name filter, then libtest flags).
    #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
    cargo_args: Vec<String>,
}

pub fn run(args: &TestArgs, root: &Path) -> Result<u8, String> {
    // One feature set for both passes, so the emulator pass reuses the first pass's build.
    let emulate = !args.no_emulator;
    let features: &[&str] = if emulate {
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
    if code != 0 || !emulate {
        return Ok(code);
    }
    emulator_pass(&cmd, root, args.emulator_full)
}

/// The CUDA tests again, on the host emulator. The memory test runs alone, as on a GPU
/// machine (gpu_bundle.rs): it counts the shared pool's allocations, which other tests running
/// beside it would add to.
fn emulator_pass(first: &Command, root: &Path, full: bool) -> Result<u8, String> {
    progress(
        "HOST EMULATOR pass: the CUDA parity tests with every kernel executed on the CPU \
         (KERNELS_EMULATOR=1 REQUIRE_CUDA=1). This is not a GPU check: timings, memory-model \
         races, tensor-core numerics and ptxas code generation are not tested.",
    );
    let runs: [&[&str]; 3] = [
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
        // The convex-ReLU solvers with their pattern products on the (emulated) device.
        &[
            "--test",
            "convex_relu",
            "--",
            "--exact",
            "solvers_give_the_same_iterates_on_cpu_and_cuda",
        ],
    ];
    // The slowest emulated tests; the default pass leaves them to --emulator-full.
    const SLOW: [&str; 3] = [
        "attention::attention_f32_every_mask_kind_and_awkward_lengths",
        "attention_bf16::attention_bf16_kernels_against_the_cpu",
        "masked_xent::masked_xent_every_option_and_encoding",
    ];
    for (i, extra) in runs.iter().enumerate() {
        let mut extra: Vec<&str> = extra.to_vec();
        if i == 0 && !full {
            for name in SLOW {
                extra.extend(["--skip", name]);
            }
        }
        let mut cmd = Command::new(cargo());
        cmd.current_dir(root)
            .args(["test", "--workspace", "--features", "kernels/emulator"])
            .args(&extra)
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
