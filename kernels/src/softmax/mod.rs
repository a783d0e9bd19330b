//! Softmax and log-softmax along the innermost axis of a contiguous `[rows, n]` buffer, forward
//! and backward. The autograd layer moves the softmax axis innermost first, as it does for
//! reductions, so these row loops serve every axis.
//!
//! Also home of [`cpu::map_rows`], the row driver the other row-wise families (`norm`, `loss`)
//! share: one place decides when rows go to several threads.

pub mod cost;
pub mod cpu;
pub mod cuda;
pub mod launch;
