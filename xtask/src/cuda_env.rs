//! The environment that makes the fetched NVRTC usable by a process.
//!
//! libnvrtc is opened with dlopen by name (cudarc's `dynamic-loading`), and libnvrtc opens its
//! builtins library the same way, so the lib folder must be on `LD_LIBRARY_PATH`. The dynamic
//! loader reads that variable once, at process start: setting it in a running process has no
//! effect on later dlopen calls. Hence child processes (`cargo test`) get it in their
//! environment, and `xtask ptx`, which compiles in-process, restarts itself with it.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use crate::wheels::CudaDirs;

/// Set in the restarted xtask, so that a loader path that still does not work is reported
/// instead of restarting forever.
const REEXEC_MARKER: &str = "XTASK_CUDA_ENV_APPLIED";

/// `dir` first, then whatever `LD_LIBRARY_PATH` already held.
fn library_path_with(dir: &Path) -> OsString {
    let mut path = OsString::from(dir.as_os_str());
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH").filter(|p| !p.is_empty()) {
        path.push(":");
        path.push(old);
    }
    path
}

/// Gives `cmd` the variables that the kernels crate reads: `LD_LIBRARY_PATH` for libnvrtc and
/// `CUDA_INCLUDE_DIR` for the headers.
pub fn apply(cmd: &mut Command, dirs: &CudaDirs) {
    cmd.env("LD_LIBRARY_PATH", library_path_with(&dirs.lib));
    cmd.env("CUDA_INCLUDE_DIR", &dirs.include);
}

/// A shell-style line for the user to reproduce a run by hand.
pub fn describe(dirs: &CudaDirs) -> String {
    format!(
        "LD_LIBRARY_PATH={}:$LD_LIBRARY_PATH CUDA_INCLUDE_DIR={}",
        dirs.lib.display(),
        dirs.include.display()
    )
}

/// Was this process started with `dir` on its loader path?
pub fn loader_path_has(dir: &Path) -> bool {
    std::env::var_os("LD_LIBRARY_PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d == dir))
}

/// True in the copy of xtask that [`restart_with`] started.
pub fn restarted() -> bool {
    std::env::var_os(REEXEC_MARKER).is_some()
}

/// Runs this same xtask command again with the CUDA environment, and returns its exit code.
pub fn restart_with(dirs: &CudaDirs) -> Result<u8, String> {
    if restarted() {
        return Err(format!(
            "restarted with LD_LIBRARY_PATH including {}, but it is still not there",
            dirs.lib.display()
        ));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find xtask's own path: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1)).env(REEXEC_MARKER, "1");
    apply(&mut cmd, dirs);
    let status = cmd.status().map_err(|e| format!("cannot restart xtask: {e}"))?;
    Ok(crate::exit_code(status))
}
