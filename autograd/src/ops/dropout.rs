//! Dropout with a counter-based mask: element `i` is kept when Philox's uniform for
//! `(seed, offset, i)` is `>= p`, and kept elements are scaled by `1/(1-p)`. The exact mapping
//! (key, counter, bits, threshold, scale) is the contract in `kernels::random`, which a CUDA
//! dropout must reproduce bit for bit.
//!
//! Why counter-based: the mask is a pure function of `(seed, offset, p, numel)`, so the backward
//! closure owns just `(seed, offset, p)` (the shape it needs is the incoming gradient's) and
//! regenerates the mask, rather than saving one byte per element for the life of the graph. It
//! also makes gradcheck meaningful: the perturbed forwards see the same mask as the backward.
//!
//! Offsets count 4-element Philox blocks: two dropouts that must be independent under one seed
//! need offsets at least `kernels::random::philox::blocks_for(numel)` apart.

use super::{check_float, with_float};
use crate::graph::record;
use crate::shape::numel;
use crate::storage::StorageElement;
use crate::{Error, Result, Tensor};
use kernels::random::dropout as k;

/// `p` must be a probability. `p = 1` is allowed and drops everything (zeros, zero gradient),
/// as PyTorch; anything outside `[0, 1]`, or NaN, is an error.
fn check_p(op: &'static str, p: f64) -> Result<()> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            op,
            reason: format!("drop probability p must lie in [0, 1], got {p}"),
        })
    }
}

/// The masked and scaled copy of `x` (row-major element order of its logical shape).
fn apply_mask(x: &Tensor, p: f64, seed: u64, offset: u64) -> Result<Tensor> {
    if x.cuda_data().is_some() {
        return super::index_cuda::dropout_apply_cuda(x, p, seed, offset);
    }
    with_float!("dropout", x.dtype(), T => {
        let y = x.with_slice(|v: &[T]| k::apply(v, seed, offset, p))?;
        Ok(Tensor::from_cpu_data(T::wrap(y), x.shape()))
    })
}

impl Tensor {
    /// Dropout (`torch.nn.functional.dropout(x, p, training)` with an explicit random stream):
    /// element `i` (row-major) is kept iff `philox_uniform(seed, offset, i) >= p` and then
    /// scaled by `1/(1-p)`; dropped elements are exactly 0. `p` lies in `[0, 1]`; `p = 1` gives
    /// zeros (as PyTorch) and any other `p` outside `[0, 1)` is `InvalidArgument`. With
    /// `training = false` it is the identity (the same tensor, still tracked). `p` and the dtype
    /// (f32/f64) are validated in both modes, so a bad configuration fails in evaluation too.
    pub fn dropout(&self, p: f64, seed: u64, offset: u64, training: bool) -> Result<Tensor> {
        check_p("dropout", p)?;
        check_float("dropout", self)?;
        if !training {
            return Ok(self.clone());
        }
        let out = apply_mask(self, p, seed, offset)?;
        // d(mask·scale·x)/dx applied to g is mask·scale·g: the same function of the same
        // (seed, offset, p), recomputed here rather than saved.
        Ok(record("dropout", &[self], out, move |g, _| {
            Ok(vec![Some(apply_mask(g, p, seed, offset)?)])
        }))
    }

    /// The bool mask `dropout(p, seed, offset, true)` applies to a tensor of `shape`: true where
    /// an element is kept. For tests, and for checking a CUDA dropout against this reference.
    pub fn dropout_mask(shape: &[usize], p: f64, seed: u64, offset: u64) -> Result<Tensor> {
        check_p("dropout_mask", p)?;
        let mask = k::keep_mask(seed, offset, p, numel(shape));
        Ok(Tensor::from_cpu_data(u8::wrap(mask), shape))
    }
}

/// See [`Tensor::dropout_mask`].
pub fn dropout_mask(shape: &[usize], p: f64, seed: u64, offset: u64) -> Result<Tensor> {
    Tensor::dropout_mask(shape, p, seed, offset)
}
