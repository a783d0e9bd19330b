//! `Dropout` with a counter-based random stream.

use super::Module;
use autograd::{Error, Result, Tensor};
use std::sync::atomic::{AtomicU64, Ordering};

/// Dropout (`torch.nn.Dropout(p)`): in training mode each call draws a fresh mask from Philox
/// at `(seed, offset)` and advances the offset past what it used; in evaluation mode it is the
/// identity. The offset is atomic so a module can be shared by reference across threads.
#[derive(Debug)]
pub struct Dropout {
    pub p: f64,
    seed: u64,
    offset: AtomicU64,
    training: bool,
}

impl Clone for Dropout {
    fn clone(&self) -> Self {
        Dropout {
            p: self.p,
            seed: self.seed,
            offset: AtomicU64::new(self.offset.load(Ordering::Relaxed)),
            training: self.training,
        }
    }
}

impl Dropout {
    /// Starts in training mode, as PyTorch modules do.
    pub fn new(p: f64, seed: u64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::InvalidArgument {
                op: "Dropout",
                reason: format!("drop probability p must lie in [0, 1], got {p}"),
            });
        }
        Ok(Dropout {
            p,
            seed,
            offset: AtomicU64::new(0),
            training: true,
        })
    }

    pub fn is_training(&self) -> bool {
        self.training
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !self.training || self.p == 0.0 {
            return Ok(x.clone());
        }
        // Offsets count 4-element Philox blocks (autograd's dropout docs).
        let blocks = kernels::random::philox::blocks_for(x.numel());
        let offset = self.offset.fetch_add(blocks, Ordering::Relaxed);
        x.dropout(self.p, self.seed, offset, true)
    }
}

impl Module for Dropout {
    fn visit_parameters(&self, _f: &mut dyn FnMut(&str, &Tensor)) {}

    fn visit_parameters_mut(&mut self, _f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>) -> Result<()> {
        Ok(())
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
