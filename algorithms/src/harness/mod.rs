//! Seeded synthetic data shared by the methods (METHODS.md, "shared synthetic harnesses"
//! H1-H7). Every generator is a pure function of its spec and seed, so reports and snapshots
//! are reproducible bit for bit.
//!
//! * [`blobs`]: H1, Gaussian-blob classification and its class-incremental splits.
//! * [`stream`]: a Si-Blurry-like online class-incremental stream on H1 (random class subsets
//!   per task, blurry off-task samples, class imbalance), for [52].
//! * [`tokens`]: H2, token streams from Markov and Zipfian sources, for the tiny LM ([28]).
//! * [`timeseries`]: correlated multichannel series with missing values, for SAITS ([427]).

pub mod blobs;
pub mod stream;
pub mod timeseries;
pub mod tokens;
