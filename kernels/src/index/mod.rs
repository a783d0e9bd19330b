//! Indexing kernels: `index_select` and its backward `index_add`, and PyTorch's `gather` and
//! `scatter_add`, on contiguous row-major buffers with i64 indices.
//!
//! Indices come from user data, so they are validated rather than trusted: every kernel checks
//! every index against the axis size *before* reading or writing, and returns an
//! [`IndexError`] naming the first bad one (an accumulating kernel thus leaves its destination
//! untouched on error). Shape agreement, by contrast, is the caller's job (the autograd ops
//! check it and report shapes), and a violated shape precondition panics as a bug.

pub mod cost;
pub mod cpu;
pub mod launch;

use std::fmt;

/// An index outside `0..size` along the indexed axis (negative indices are not wrapped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexError {
    /// The offending index value.
    pub index: i64,
    /// The size of the axis it indexes.
    pub size: usize,
    /// Its position in the (flattened) index buffer, to find it in a large batch.
    pub position: usize,
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "index {} (at position {}) is out of range for an axis of size {}",
            self.index, self.position, self.size
        )
    }
}

impl std::error::Error for IndexError {}

/// Check that every index lies in `0..size`.
pub fn check_indices(indices: &[i64], size: usize) -> Result<(), IndexError> {
    match indices.iter().position(|&i| i < 0 || i as u64 >= size as u64) {
        None => Ok(()),
        Some(position) => Err(IndexError {
            index: indices[position],
            size,
            position,
        }),
    }
}
pub mod cuda;
