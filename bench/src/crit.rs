//! Helpers for the criterion benchmarks: which devices to time, and a timing loop that
//! synchronizes the device before reading the clock (criterion's `iter` would time only the
//! asynchronous launches of GPU work).

use std::time::{Duration, Instant};

use autograd::Device;

/// The CPU, and CUDA device 0 when one can be opened (its absence is printed once).
pub fn devices() -> Vec<Device> {
    let mut out = vec![Device::Cpu];
    match Device::cuda_unavailable_reason() {
        None => out.push(Device::Cuda(0)),
        Some(why) => eprintln!("bench: no CUDA rows ({why})"),
    }
    out
}

/// For `Bencher::iter_custom`: runs `f(i)` `iters` times (i counts calls, for rotating inputs)
/// and returns the elapsed time with the device synchronized before the clock is read.
pub fn time_iters(device: Device, iters: u64, mut f: impl FnMut(usize)) -> Duration {
    crate::report::timing::synchronize(device).expect("synchronize before timing");
    let start = Instant::now();
    for i in 0..iters as usize {
        f(i);
    }
    crate::report::timing::synchronize(device).expect("synchronize after timing");
    start.elapsed()
}
