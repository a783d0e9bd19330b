//! Every `.cu` file of the crate, embedded at build time so that a test or bench binary carried
//! to a GPU machine needs no source tree there.

/// One `.cu` translation unit. `name` is the file name; NVRTC uses it in its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelSource {
    pub name: &'static str,
    pub src: &'static str,
}

/// Adding a kernel family means adding one line here; the compile check and `cargo xtask ptx`
/// pick it up from this list.
static SOURCES: &[KernelSource] = &[
    KernelSource {
        name: "elementwise.cu",
        src: include_str!("../elementwise/elementwise.cu"),
    },
    KernelSource {
        name: "reduce.cu",
        src: concat!(include_str!("rows.cuh"), include_str!("../reduce/reduce.cu")),
    },
    KernelSource {
        name: "softmax.cu",
        src: concat!(include_str!("rows.cuh"), include_str!("../softmax/softmax.cu")),
    },
    KernelSource {
        name: "norm.cu",
        src: concat!(include_str!("rows.cuh"), include_str!("../norm/norm.cu")),
    },
    KernelSource {
        name: "loss.cu",
        src: concat!(include_str!("rows.cuh"), include_str!("../loss/loss.cu")),
    },
    KernelSource {
        name: "dropout.cu",
        src: include_str!("../random/dropout.cu"),
    },
    KernelSource {
        name: "index.cu",
        src: include_str!("../index/index.cu"),
    },
    KernelSource {
        name: "strided.cu",
        src: include_str!("../elementwise/strided.cu"),
    },
    KernelSource {
        name: "cast.cu",
        src: include_str!("../elementwise/cast.cu"),
    },
    KernelSource {
        name: "matmul.cu",
        src: include_str!("../matmul/matmul.cu"),
    },
    KernelSource {
        name: "masked_xent.cu",
        src: include_str!("../masked_xent/masked_xent.cu"),
    },
    KernelSource {
        name: "cvx.cu",
        src: include_str!("../cvx/cvx.cu"),
    },
    KernelSource {
        name: "optim.cu",
        src: include_str!("../optim/optim.cu"),
    },
    // The attention files share a header; NVRTC gets one string, so it is prepended here.
    KernelSource {
        name: "attention_fwd.cu",
        src: concat!(
            include_str!("../attention/attention_common.cuh"),
            include_str!("../attention/attention_fwd.cu")
        ),
    },
    KernelSource {
        name: "attention_bwd.cu",
        src: concat!(
            include_str!("../attention/attention_common.cuh"),
            include_str!("../attention/attention_bwd.cu")
        ),
    },
];

/// All registered kernel sources, in a stable order.
pub fn all_sources() -> &'static [KernelSource] {
    SOURCES
}

/// The source with this file name, if registered.
pub fn source(name: &str) -> Option<&'static KernelSource> {
    SOURCES.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_sources_non_empty() {
        let mut names: Vec<_> = all_sources().iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all_sources().len(), "duplicate source name");
        for s in all_sources() {
            assert!(s.name.ends_with(".cu"), "{}", s.name);
            assert!(s.src.contains("__global__"), "{} has no kernel", s.name);
        }
        assert!(source("elementwise.cu").is_some());
        assert!(source("cvx.cu").is_some());
    }

    /// NVRTC has no <math.h>; a kernel that writes INFINITY compiles only where some header
    /// happens to define it. Catch it here, without NVRTC.
    #[test]
    fn no_source_uses_math_h_macros() {
        for s in all_sources() {
            for (i, line) in s.src.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                assert!(
                    !code.contains("INFINITY") && !code.contains("#include <math.h>"),
                    "{}:{}: NVRTC has no <math.h>; use __int_as_float(0x7f800000)",
                    s.name,
                    i + 1
                );
            }
        }
    }
}
