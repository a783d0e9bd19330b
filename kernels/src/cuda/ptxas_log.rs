//! Reading ptxas's `-v` report and the PTX text.
//!
//! What the report looks like (CUDA 13.0, through NVRTC):
//!
//! ```text
//! ptxas info    : Compiling entry function 'big' for 'sm_90'
//! ptxas info    : Function properties for big
//! ptxas         .     160 bytes stack frame, 160 bytes spill stores, 160 bytes spill loads
//! ptxas info    : Used 32 registers, used 1 barriers, 160 bytes cumulative stack size, 1024 bytes smem, 372 bytes cmem[0]
//! ```
//!
//! "Function properties" also appears for non-inlined device functions, which have no "Used"
//! line; their stack and spills are reported separately and are not attributed to any entry.
//! Anything unrecognized is ignored, so a newer ptxas with extra fields still parses.

/// ptxas's figures for one kernel (`extern "C" __global__` entry) on one architecture.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    pub name: String,
    pub registers: u32,
    /// Static shared memory (`__shared__` arrays); dynamic shared memory is chosen at launch.
    pub shared_bytes: u64,
    /// Local memory per thread: spills plus arrays the compiler could not keep in registers.
    pub stack_bytes: u64,
    pub spill_store_bytes: u64,
    pub spill_load_bytes: u64,
    /// Constant memory over all banks (`cmem[0]` holds the kernel parameters).
    pub const_bytes: u64,
    pub barriers: u32,
    /// Size of the kernel's `.entry` block in the PTX text, a rough measure of code size.
    pub ptx_bytes: usize,
}

impl KernelStats {
    pub fn spills(&self) -> bool {
        self.spill_store_bytes > 0 || self.spill_load_bytes > 0
    }
}

/// Per-entry statistics from an NVRTC program log, in the order ptxas reports them.
pub fn parse_ptxas_log(log: &str) -> Vec<KernelStats> {
    let mut kernels: Vec<KernelStats> = Vec::new();
    // The function whose "Function properties" block we are in, and whether it is an entry.
    let mut props_for: Option<String> = None;
    for line in log.lines() {
        let body = line
            .trim_start_matches("ptxas")
            .trim_start()
            .trim_start_matches(|c: char| c.is_ascii_alphabetic())
            .trim_start()
            .trim_start_matches([':', '.'])
            .trim();
        if let Some(rest) = body.strip_prefix("Compiling entry function '") {
            let name = rest.split('\'').next().unwrap_or_default().to_string();
            kernels.push(KernelStats {
                name,
                ..KernelStats::default()
            });
            props_for = None;
        } else if let Some(rest) = body.strip_prefix("Function properties for ") {
            props_for = Some(rest.trim().to_string());
        } else if body.contains("bytes stack frame") {
            let current = kernels.last_mut();
            if let (Some(k), Some(f)) = (current, &props_for) {
                if *f == k.name {
                    k.stack_bytes = bytes_before(body, "bytes stack frame").unwrap_or(0);
                    k.spill_store_bytes = bytes_before(body, "bytes spill stores").unwrap_or(0);
                    k.spill_load_bytes = bytes_before(body, "bytes spill loads").unwrap_or(0);
                }
            }
        } else if body.starts_with("Used ") {
            if let Some(k) = kernels.last_mut() {
                fill_usage(k, body);
            }
            props_for = None;
        }
    }
    kernels
}

/// "Used 32 registers, used 1 barriers, 1024 bytes smem, 372 bytes cmem[0]"
fn fill_usage(k: &mut KernelStats, body: &str) {
    for field in body.split(',') {
        let words: Vec<&str> = field.split_whitespace().collect();
        match words.as_slice() {
            ["Used", n, "registers"] => k.registers = n.parse().unwrap_or(0),
            ["used", n, "barriers"] => k.barriers = n.parse().unwrap_or(0),
            [n, "bytes", "smem"] => k.shared_bytes = n.parse().unwrap_or(0),
            [n, "bytes", bank] if bank.starts_with("cmem[") => k.const_bytes += n.parse::<u64>().unwrap_or(0),
            _ => {}
        }
    }
}

/// The number just before `unit` in "..., 160 bytes spill stores, ...".
fn bytes_before(text: &str, unit: &str) -> Option<u64> {
    let head = &text[..text.find(unit)?];
    head.split(|c: char| c == ',' || c.is_whitespace())
        .rfind(|w| !w.is_empty())?
        .parse()
        .ok()
}

/// Bytes of PTX text per `.entry`, from its `.entry name(` line to the closing `}` line, in the
/// order of the PTX (which is source order; ptxas reports them in reverse).
pub fn ptx_entry_sizes(ptx: &str) -> Vec<(String, usize)> {
    let mut sizes = Vec::new();
    let mut current: Option<(String, usize)> = None;
    for line in ptx.split_inclusive('\n') {
        if let Some((_, size)) = current.as_mut() {
            *size += line.len();
            if line.trim_end() == "}" {
                let (name, size) = current.take().unwrap_or_default();
                sizes.push((name, size));
            }
            continue;
        }
        if let Some(pos) = line.find(".entry ") {
            let name = line[pos + ".entry ".len()..]
                .split(|c: char| c == '(' || c.is_whitespace())
                .next()
                .unwrap_or_default()
                .to_string();
            current = Some((name, line.len()));
        }
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from NVRTC 13.0 with `--ptxas-options=-v` (a kernel forced to spill with
    /// `--maxrregcount=32`).
    const LOG_SM90: &str = "\
ptxas info    : Overriding maximum register limit 256 for 'big' with  32 of maxrregcount option
ptxas warning : Registers are spilled to local memory in function 'big', 160 bytes spill stores, 160 bytes spill loads
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'big' for 'sm_90'
ptxas info    : Function properties for big
ptxas         .     160 bytes stack frame, 160 bytes spill stores, 160 bytes spill loads
ptxas info    : Used 32 registers, used 1 barriers, 160 bytes cumulative stack size, 1024 bytes smem
ptxas info    : Compile time = 19.381 ms
ptxas info    : Compiling entry function 'k' for 'sm_90'
ptxas info    : Function properties for k
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 14 registers, used 0 barriers
ptxas info    : Compile time = 2.947 ms
";

    const LOG_SM80: &str = "\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'k' for 'sm_80'
ptxas info    : Function properties for _Z6helperPf
ptxas         .     8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
ptxas info    : Function properties for k
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 12 registers, used 0 barriers, 372 bytes cmem[0], 8 bytes cmem[2]
";

    #[test]
    fn parses_spilling_and_clean_kernels() {
        let ks = parse_ptxas_log(LOG_SM90);
        assert_eq!(ks.len(), 2);
        let big = &ks[0];
        assert_eq!(big.name, "big");
        assert_eq!(big.registers, 32);
        assert_eq!(big.shared_bytes, 1024);
        assert_eq!(big.stack_bytes, 160);
        assert_eq!((big.spill_store_bytes, big.spill_load_bytes), (160, 160));
        assert_eq!(big.barriers, 1);
        assert!(big.spills());
        assert_eq!(ks[1].name, "k");
        assert_eq!(ks[1].registers, 14);
        assert!(!ks[1].spills());
    }

    #[test]
    fn device_function_spills_are_not_charged_to_the_entry_and_cmem_banks_add_up() {
        let ks = parse_ptxas_log(LOG_SM80);
        assert_eq!(ks.len(), 1);
        assert_eq!(ks[0].registers, 12);
        assert_eq!(ks[0].const_bytes, 380);
        assert!(!ks[0].spills());
    }

    #[test]
    fn entry_sizes_cover_each_entry_block() {
        let ptx = ".version 9.0\n.target sm_90\n\n\t// .globl\tk\n.visible .entry k(\n\t.param .u64 k_param_0\n)\n{\n\tret;\n\n}\n.visible .entry j()\n{\n}\n";
        let k_block = ".visible .entry k(\n\t.param .u64 k_param_0\n)\n{\n\tret;\n\n}\n";
        let j_block = ".visible .entry j()\n{\n}\n";
        assert_eq!(
            ptx_entry_sizes(ptx),
            [("k".to_string(), k_block.len()), ("j".to_string(), j_block.len())]
        );
    }
}
