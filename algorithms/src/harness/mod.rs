//! Seeded synthetic data for the method demos (METHODS.md, "shared synthetic harnesses").
//! Every generator is a pure function of its spec and seed, so reports and snapshots are
//! reproducible bit for bit.
//!
//! * [`blobs`]: H1, Gaussian-blob classification and its class-incremental splits.
//! * [`stream`]: a Si-Blurry-like online class-incremental stream on H1 (random class subsets
//!   per task, blurry off-task samples, class imbalance), for [52].

pub mod blobs;
pub mod stream;
