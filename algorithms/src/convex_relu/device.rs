//! Where the solvers' pattern products run: [`Products`] is `kernels::cvx::PatternOps` on
//! `Device::Cpu` and `kernels::cvx::CudaPatternOps` on `Device::Cuda(i)`, behind one interface.
//!
//! What runs on the GPU, and what does not: the four products `Σ_i D_i X v_i`, `Xᵀ D_i r`,
//! `(2D_i − I)X v_i` and `Xᵀ(2D_i − I)z_i` (the O(n·d·P) work of every iteration, the cvx.cu
//! kernels), with X and the patterns uploaded once per solve. The vectors they act on stay in
//! host memory and are copied to and from the device on every product, and the O(P·d + P·n)
//! steps between products (group prox, slack projection, dual updates, residual norms) and the
//! small dense factorizations (once per ρ, before the loop) run on the host. So the CUDA path
//! moves the products' arithmetic to the GPU but pays two PCIe copies per product: it can only
//! win where n·d·P is large against P·(n + d). The fused kernels for the prox and projection
//! steps (`admm_group_step`, `admm_slack_step`, `group_soft_threshold`, `project_nonneg`) have
//! launchers and parity tests in `kernels`, but a device-resident solver loop does not use them
//! yet.

pub use autograd::Device;
use kernels::cuda::CudaDevice;
use kernels::cvx::{CudaPatternOps, CvxShape, PatternOps};

/// The pattern products on one device.
pub enum Products {
    Cpu(PatternOps),
    Cuda(CudaPatternOps),
}

fn err(e: kernels::cvx::CvxError) -> String {
    e.to_string()
}

impl Products {
    /// `x` is `n × d` row-major, `mask` `p × n` bytes. `Device::Cuda(i)` without a usable GPU is
    /// an error saying why (never a silent fall-back to the CPU).
    pub fn new(x: &[f64], mask: &[u8], shape: CvxShape, device: Device) -> Result<Products, String> {
        match device {
            Device::Cpu => PatternOps::new(x, mask, shape).map(Products::Cpu).map_err(err),
            Device::Cuda(i) => {
                let dev = CudaDevice::get(i)
                    .map_err(|e| format!("convex ReLU solver on cuda:{i}: no usable GPU: {e}"))?;
                CudaPatternOps::new(dev, x, mask, shape)
                    .map(Products::Cuda)
                    .map_err(err)
            }
        }
    }

    pub fn shape(&self) -> CvxShape {
        match self {
            Products::Cpu(o) => o.shape(),
            Products::Cuda(o) => o.shape(),
        }
    }

    /// `out_i = (2D_i − I)X v_i` over `groups` stacked copies of the patterns.
    pub fn sign_forward(&self, v: &[f64], out: &mut [f64], groups: usize) -> Result<(), String> {
        match self {
            Products::Cpu(o) => o.sign_forward(v, out, groups),
            Products::Cuda(o) => o.sign_forward(v, out, groups),
        }
        .map_err(err)
    }

    /// `out_i = Xᵀ(2D_i − I)z_i` over `groups` stacked copies.
    pub fn sign_backward(&self, z: &[f64], out: &mut [f64], groups: usize) -> Result<(), String> {
        match self {
            Products::Cpu(o) => o.sign_backward(z, out, groups),
            Products::Cuda(o) => o.sign_backward(z, out, groups),
        }
        .map_err(err)
    }

    /// `out = Σ_i D_i X v_i`.
    pub fn masked_forward(&self, v: &[f64], out: &mut [f64]) -> Result<(), String> {
        match self {
            Products::Cpu(o) => o.masked_forward(v, out),
            Products::Cuda(o) => o.masked_forward(v, out),
        }
        .map_err(err)
    }

    /// `out_i = Xᵀ D_i r` for every pattern.
    pub fn masked_backward(&self, r: &[f64], out: &mut [f64]) -> Result<(), String> {
        match self {
            Products::Cpu(o) => o.masked_backward(r, out),
            Products::Cuda(o) => o.masked_backward(r, out),
        }
        .map_err(err)
    }
}
