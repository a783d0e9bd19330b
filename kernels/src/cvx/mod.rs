//! `cvx.relu`: the primitives of convex two-layer ReLU training (Pilanci & Ergen 2020; the ADMM
//! of Bai, Gautam & Sojoudi 2022). The solvers themselves live in
//! `algorithms::convex_relu`; this module holds the inner loops they spend their time in, each
//! as a plain CPU reference here and as a CUDA kernel in `cvx.cu` with the same layout.
//!
//! Layouts (all row-major, contiguous):
//! * `x`: the data, `n × d` (`x[k*d + j]`), one sample per row, bias column included by the
//!   caller if wanted.
//! * `mask`: the activation patterns, `p × n` bytes, pattern-major: `mask[i*n + k]` is the
//!   diagonal entry k of D_i, 1 when `x_kᵀh_i ≥ 0`, else 0. Pattern-major because every kernel
//!   walks one pattern's n entries with consecutive threads (coalesced on the GPU).
//! * `v`: one weight vector per pattern, `p × d` (`v[i*d + j]`), so a group is a contiguous row.
//! * per-(pattern, sample) values such as the cone slacks `s_i = (2D_i − I)Xv_i`: `p × n`, the
//!   same layout as `mask`.
//!
//! The products (a GEMM `X Vᵀ` with an epilogue or prologue that applies the patterns):
//! * [`masked_forward`]:  `out = Σ_i D_i X v_i` (the network's prediction), `n`.
//! * [`masked_backward`]: `out_i = Xᵀ D_i r` for every i (its adjoint), `p × d`.
//! * [`sign_forward`]:    `out_i = (2D_i − I) X v_i` (the cone-constraint values), `p × n`.
//! * [`sign_backward`]:   `out_i = Xᵀ (2D_i − I) z_i` (its adjoint), `p × d`.
//!
//! The proximal and projection steps:
//! * [`group_soft_threshold`]: `v_i ← max(0, 1 − t/‖v_i‖₂)·v_i`, the prox of `t·Σ_i‖v_i‖₂`.
//! * [`project_nonneg`]: `s ← max(0, s)`, the projection onto the cone-constraint slacks.
//! * [`admm_group_step`] and [`admm_slack_step`]: the same two, fused with ADMM's dual update.
//!
//! [`PatternOps`] computes the four products again, blocked, vectorizable and threaded for large
//! problems (tested against the references): the solvers' CPU hot path.
//!
//! [`cuda`] launches every kernel of `cvx.cu`, and [`CudaPatternOps`] puts the four products
//! behind `PatternOps`' interface for the solvers' `Device::Cuda` path.
//!
//! [`cholesky`] and [`cholesky_solve`] are the small dense factorization ADMM's linear system
//! needs (the `d × d` Gram blocks and the `n × n` Woodbury core); they stay on the CPU: the
//! solvers factor once per ρ, before the loop.

mod blocked;
mod chol;
pub mod cost;
mod cpu;
pub mod cuda;

pub use blocked::PatternOps;
pub use cuda::{CudaPatternOps, CvxType};

pub use chol::{cholesky, cholesky_solve};
pub use cpu::{
    admm_group_step, admm_slack_step, group_soft_threshold, masked_backward, masked_forward, project_nonneg,
    sign_backward, sign_forward, CvxError, CvxShape,
};
