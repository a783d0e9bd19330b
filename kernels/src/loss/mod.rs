//! Loss kernels: softmax cross-entropy over `[rows, classes]` logits with integer class targets
//! (forward and fused backward), and the elementwise squared error under `mse_loss`.

pub mod cpu;
pub mod cuda;
pub mod launch;
