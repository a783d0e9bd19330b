//! The registry behind `cargo xtask repro <method>|all`: every method's experiment, runnable
//! by name, handing back a [`Report`].
//!
//! A method module adds itself by exposing `pub fn repro(opts: &ReproOptions) -> Result<Report,
//! String>` and one [`Method`] line in [`METHODS`]. The function must be deterministic for fixed
//! `opts` (seeds derive from `opts.seed(k)`), show progress through `opts.progress`, and keep to
//! about a minute on 2 cores when `opts.quick` is set.

use autograd::Device;

use crate::report::Report;

/// What a run may vary.
pub struct ReproOptions<'a> {
    /// Small sizes and few steps: the whole suite in minutes on 2 cores, for CI and a first look.
    pub quick: bool,
    /// Independent repetitions (different seeds) to average over where the method reports
    /// means; at least 1.
    pub seeds: usize,
    /// Where tensors live. Methods that have no CUDA path say so in an error.
    pub device: Device,
    /// Progress messages (a step counter, the current setting); the caller shows them.
    pub progress: &'a (dyn Fn(&str) + Sync),
}

impl ReproOptions<'_> {
    /// The k-th run's seed: fixed, distinct, and the same for every method.
    pub fn seed(&self, k: usize) -> u64 {
        0x5EED_0000 + k as u64
    }

    /// Options for tests: quick, one seed, CPU, silent.
    pub fn quick_cpu() -> ReproOptions<'static> {
        ReproOptions {
            quick: true,
            seeds: 1,
            device: Device::Cpu,
            progress: &|_| {},
        }
    }
}

/// One runnable method.
#[derive(Debug)]
pub struct Method {
    /// Command-line name and report folder, e.g. `lion_box`.
    pub name: &'static str,
    /// Catalog number and short title, e.g. `[157] Lion as box-constrained optimization`.
    pub paper: &'static str,
    pub run: fn(&ReproOptions) -> Result<Report, String>,
}

/// Every method `cargo xtask repro` knows, in the order `all` runs them.
pub const METHODS: &[Method] = &[
    Method {
        name: "stability_proxies",
        paper: "[28] Small-scale proxies for large-scale Transformer training instabilities",
        run: crate::stability_proxies::repro,
    },
    Method {
        name: "saits",
        paper: "[427] SAITS: self-attention-based imputation for time series",
        run: crate::saits::repro,
    },
];

/// The method called `name`, or an error listing the known names.
pub fn find(name: &str) -> Result<&'static Method, String> {
    METHODS.iter().find(|m| m.name == name).ok_or_else(|| {
        let known: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
        format!("unknown method `{name}`; known: {} (or `all`)", known.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_usable_as_folder_names() {
        let mut names: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
        for n in &names {
            assert!(
                !n.is_empty()
                    && n.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{n}"
            );
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), METHODS.len());
        assert!(find("no_such_method").unwrap_err().contains("unknown method"));
    }
}
