//! What one optimizer step moves per parameter, for the bench report's roofline: the counts of
//! `optim.cu`'s header written as functions of the storage sizes (`param_bytes` for parameters
//! and gradients, `state_bytes` for each state buffer). AdamW reads θ, g, m, v and writes θ, m,
//! v (28 B in f32, 22 B with bf16 parameters); Lion and SGD with momentum read θ, g, m and write
//! θ, m (20 B in f32). FLOPs are the nominal arithmetic of each update as written in
//! `cpu.rs` (decay, moments, bias-corrected step; `sqrt` and `sign` count as one).

/// Which update, for the counts below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    AdamW,
    Lion,
    /// SGD with a momentum buffer (Nesterov or not).
    SgdMomentum,
}

impl Step {
    fn state_buffers(self) -> usize {
        match self {
            Step::AdamW => 2,
            Step::Lion | Step::SgdMomentum => 1,
        }
    }
}

/// Bytes moved per parameter by one step.
pub fn bytes_per_param(step: Step, param_bytes: usize, state_bytes: usize) -> usize {
    // θ read and written, g read, each state buffer read and written.
    3 * param_bytes + 2 * step.state_buffers() * state_bytes
}

/// Bytes moved by one step over `n` parameters.
pub fn bytes_moved(step: Step, n: usize, param_bytes: usize, state_bytes: usize) -> f64 {
    (n * bytes_per_param(step, param_bytes, state_bytes)) as f64
}

/// Nominal FLOPs of one step over `n` parameters, counted per parameter from the update:
/// AdamW 14 (m: 3, v: 4, decay: 1, `sqrt(v̂)+ε`: 3, divide and scale: 2, subtract: 1), Lion 10
/// (interpolation: 3, sign: 1, decay and step: 3, momentum: 3), SGD with momentum 6 (buffer: 2,
/// Nesterov look-ahead: 2, step: 2).
pub fn flops(step: Step, n: usize) -> f64 {
    let per = match step {
        Step::AdamW => 14.0,
        Step::Lion => 10.0,
        Step::SgdMomentum => 6.0,
    };
    per * n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_counts() {
        assert_eq!(bytes_per_param(Step::AdamW, 4, 4), 28);
        assert_eq!(bytes_per_param(Step::AdamW, 2, 4), 22);
        assert_eq!(bytes_per_param(Step::Lion, 4, 4), 20);
        assert_eq!(bytes_per_param(Step::Lion, 2, 4), 14);
        assert_eq!(bytes_per_param(Step::SgdMomentum, 4, 4), 20);
        assert_eq!(bytes_moved(Step::AdamW, 10, 4, 4), 280.0);
        assert_eq!(flops(Step::Lion, 2), 20.0);
    }
}
