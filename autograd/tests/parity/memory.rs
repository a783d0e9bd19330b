//! The caching pool under a training loop: after the first step, steps are served from the
//! pool's free lists (no driver allocations), and every step returns to the same live bytes.

use super::common::*;
use kernels::cuda::CudaDevice;

#[test]
fn training_steps_reuse_pooled_memory() {
    let Some(dev) = cuda_or_skip("training_steps_reuse_pooled_memory") else {
        return;
    };
    let mut r = rng(31);
    let w = random(&[64, 64], Domain::Normal, &mut r)
        .to_device(dev)
        .unwrap()
        .set_requires_grad(true);
    let x = random(&[32, 64], Domain::Normal, &mut r).to_device(dev).unwrap();
    let step = || {
        let loss = x.matmul(&w)?.gelu()?.mul(&x)?.sum(&[], false)?;
        let grads = loss.backward()?;
        let g = grads.get(&w).expect("w has a gradient").clone();
        w.detach().to_device(autograd::Device::Cpu)?; // a host read, as a logger would
        g.sum(&[], false)?.item()
    };
    let cuda = CudaDevice::get(0).unwrap();
    step().unwrap();
    step().unwrap();
    let (before, live) = (cuda.pool_stats(), autograd::memory::live_bytes());
    for _ in 0..5 {
        step().unwrap();
    }
    let after = cuda.pool_stats();
    assert_eq!(
        after.driver_allocs, before.driver_allocs,
        "steps after warm-up must not call cuMemAlloc: {after:?}"
    );
    assert_eq!(
        after.live_bytes, before.live_bytes,
        "a step must leave no device buffer behind"
    );
    assert_eq!(
        autograd::memory::live_bytes(),
        live,
        "a step must leave no storage behind"
    );
    cuda.trim_pool().unwrap();
    assert_eq!(cuda.pool_stats().cached_bytes, 0);
}
