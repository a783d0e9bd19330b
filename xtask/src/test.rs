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

    /// Passed on to `cargo test --workspace`, e.g. `cargo xtask test -- --release` or
    /// `cargo xtask test -- spill -- --nocapture` (a test-name filter, then libtest flags).
    #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
    cargo_args: Vec<String>,
}

pub fn run(args: &TestArgs, root: &Path) -> Result<u8, String> {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root)
        .args(["test", "--workspace"])
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
        .chain(args.cargo_args.iter().map(String::as_str))
        .collect();
    progress(&format!("running: {}", shown.join(" ")));
    let status = cmd.status().map_err(|e| format!("could not run cargo: {e}"))?;
    Ok(exit_code(status))
}

/// The cargo that runs us (cargo sets `CARGO` for `cargo run`), so that a toolchain chosen with
/// `cargo +nightly xtask` is the one that tests.
fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}
