//! The surveyed training methods, one module per paper. Empty until issue 9.
