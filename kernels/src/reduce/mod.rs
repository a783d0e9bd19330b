//! Reductions along the innermost axis of a contiguous `[rows, len]` buffer. The autograd layer
//! moves the reduced axes innermost first, so these few loops serve every `sum`/`max`/... call.

pub mod cost;
pub mod cpu;
pub mod cuda;
pub mod launch;
