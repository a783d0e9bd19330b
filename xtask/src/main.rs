//! `cargo xtask <command>`: the project's tasks, in Rust so that a fresh machine needs nothing
//! but a Rust toolchain and python3 (for pip, which fetches the pinned NVRTC wheels).
//!
//! `.cargo/config.toml` aliases `cargo xtask` to `cargo run --quiet --package xtask --`.

mod bench;
mod convex_relu;
mod cuda_env;
mod gpu_bundle;
mod ptx;
mod repro;
mod test;
mod wheels;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Project tasks for the kernel research workspace.",
    after_help = "Examples:\n  \
        cargo xtask test                     fetch NVRTC (cached in .cache/) and run every test\n  \
        cargo xtask test --no-fetch          the same without NVRTC; its checks skip\n  \
        cargo xtask test -- --release        extra arguments go to `cargo test --workspace`\n  \
        cargo xtask test -- spill -- --nocapture   (a test-name filter, then libtest flags)\n  \
        cargo xtask ptx --arch sm_90 --out target/ptx\n  \
        cargo xtask bench --quick            the roofline report in about a minute (target/bench/)\n  \
        cargo xtask bench --criterion --filter matmul\n  \
        cargo xtask gpu-bundle               binaries + run.sh for a GPU machine, in target/gpu-bundle\n  \
        cargo xtask repro all --quick        every method's experiment; reports in target/repro/",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The project's test command: fetch the pinned NVRTC wheels, then `cargo test --workspace`
    /// with NVRTC on LD_LIBRARY_PATH and REQUIRE_NVRTC=1.
    Test(test::TestArgs),
    /// Compile every kernel with NVRTC and print registers, shared memory, spills and PTX size
    /// per kernel and architecture.
    Ptx(ptx::PtxArgs),
    /// The roofline report: every kernel family against the machine's ceilings and numpy /
    /// PyTorch, written to target/bench/ (`--criterion` for the criterion benchmarks).
    Bench(bench::BenchArgs),
    /// Build the release test and bench binaries, strip them, and write them with the CUDA
    /// headers and a run script into one folder to carry to a GPU machine (under 64 MiB).
    GpuBundle(gpu_bundle::GpuBundleArgs),
    /// Train a two-layer ReLU network globally through its convex reformulation ([161]) on a CSV
    /// file (last column the target) and write the recovered network as JSON.
    ConvexRelu(convex_relu::ConvexReluArgs),
    /// Run a surveyed method's experiment (or `all`, or `list` them) and write its report with
    /// figures to target/repro/<method>/.
    Repro(repro::ReproArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    let result = match &cli.command {
        Command::Test(args) => test::run(args, &root),
        Command::Ptx(args) => ptx::run(args, &root),
        Command::Bench(args) => bench::run(args, &root),
        Command::GpuBundle(args) => gpu_bundle::run(args, &root),
        Command::ConvexRelu(args) => convex_relu::run(args),
        Command::Repro(args) => repro::run(args, &root),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// xtask lives one level below the workspace root; every path it writes (`.cache/`) hangs off
/// the root, so the commands behave the same from any working directory.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Progress goes to stderr so that stdout stays the command's result (the `ptx` table).
fn progress(message: &str) {
    eprintln!("xtask: {message}");
}

/// A child's exit status as our own: its code, or 128 + signal like a shell.
fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => 1,
    }
}
