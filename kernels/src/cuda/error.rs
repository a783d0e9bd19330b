use std::fmt;
use std::path::PathBuf;

use super::compile::Arch;

/// Why a CUDA operation could not be done. Each message says what is missing and how to get it,
/// because the usual cause is a machine set up differently, not a bug.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CudaError {
    /// `libnvrtc` could not be loaded or cannot compile (for example its builtins library is
    /// not beside it). The string is the probe's explanation.
    NvrtcUnavailable(String),
    /// The source includes CUDA headers (`cuda_bf16.h`, ...) and no folder holding them was
    /// found. NVRTC does not ship them; the `nvidia-cuda-runtime` wheel or a toolkit does.
    HeadersNotFound { source: String, searched: Vec<PathBuf> },
    /// NVRTC or ptxas rejected the source; `log` is the full program log.
    Compile {
        source: String,
        arch: Arch,
        options: Vec<String>,
        log: String,
    },
    /// An NVRTC call other than the compile itself failed.
    Nvrtc { call: &'static str, detail: String },
    /// No usable GPU: no driver library, no device, or the driver refused a context.
    Driver(String),
    /// The host emulator (feature `emulator`, docs/emulator.md) refused a launch or found a
    /// kernel error: a barrier that can never complete, a bad launch shape, an argument list
    /// that does not match the kernel's parameters.
    Emulator(String),
}

impl fmt::Display for CudaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CudaError::NvrtcUnavailable(why) => write!(f, "NVRTC is not usable: {why}"),
            CudaError::HeadersNotFound { source, searched } => {
                write!(
                    f,
                    "{source} includes CUDA headers (cuda_bf16.h) but none were found; searched: "
                )?;
                for (i, p) in searched.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{}", p.display())?;
                }
                write!(
                    f,
                    ". Set CUDA_INCLUDE_DIR to a folder holding cuda_bf16.h (the \
                     nvidia-cuda-runtime wheel's nvidia/cu13/include), or run `cargo xtask test`, \
                     which fetches it"
                )
            }
            CudaError::Compile {
                source,
                arch,
                options,
                log,
            } => {
                let hint = if log.contains("libnvrtc-builtins") {
                    "\nhint: libnvrtc-builtins.so must sit in a folder on LD_LIBRARY_PATH"
                } else {
                    ""
                };
                write!(
                    f,
                    "NVRTC failed to compile {source} for {arch} (options: {}):\n{}{hint}",
                    options.join(" "),
                    log.trim_end()
                )
            }
            CudaError::Nvrtc { call, detail } => write!(f, "{call} failed: {detail}"),
            CudaError::Driver(why) => write!(f, "no usable CUDA device: {why}"),
            CudaError::Emulator(why) => write!(f, "host emulator (not a GPU): {why}"),
        }
    }
}

impl std::error::Error for CudaError {}
