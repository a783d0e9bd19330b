//! Launch configurations of the attention CUDA kernels (filled in below).
