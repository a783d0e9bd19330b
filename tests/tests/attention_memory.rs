//! Fused attention's extra memory is O(B·H·N), never O(N²): forward and backward at N = 8192.
//!
//! Two counters are read: `autograd::memory` (bytes held by tensor storages: what the graph keeps
//! between forward and backward) and a counting global allocator installed in this binary (every
//! heap byte, including the kernels' own scratch buffers, which are not tensors). At N = 8192 one
//! N × N f32 matrix is 256 MiB; the bound asserted is 1/16 of that, while everything the fused path
//! needs is a few N × D buffers (512 KiB each at D = 16) plus per-thread tiles.
//!
//! To show the allocator counter can see an N² buffer at all, the same loss is first computed
//! the unfused way (matmul, softmax, matmul) at N = 1024, whose peak must exceed one N × N matrix.
//!
//! One test in this file on purpose: the counters are process-wide.

use autograd::memory::{live_bytes, peak_bytes, reset_peak};
use autograd::{attention, AttentionMask, DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

struct Counting;

static HEAP: AtomicUsize = AtomicUsize::new(0);
static HEAP_PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = HEAP.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        HEAP_PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap and tensor-storage peaks above the current level while `f` runs.
fn peaks_during<R>(f: impl FnOnce() -> R) -> (R, usize, usize) {
    let (heap0, live0) = (HEAP.load(Ordering::Relaxed), live_bytes());
    HEAP_PEAK.store(heap0, Ordering::Relaxed);
    reset_peak();
    let r = f();
    (r, HEAP_PEAK.load(Ordering::Relaxed) - heap0, peak_bytes() - live0)
}

fn inputs(n: usize, d: usize) -> [Tensor; 4] {
    let mut rng = StdRng::seed_from_u64(7);
    let mut t = || Tensor::randn(&[1, 1, n, d], DType::F32, Device::Cpu, &mut rng).unwrap();
    [
        t().set_requires_grad(true),
        t().set_requires_grad(true),
        t().set_requires_grad(true),
        t(),
    ]
}

#[test]
fn fused_attention_memory_is_linear_in_sequence_length() {
    // Unfused at N = 1024: the counter sees the N x N logits (4 MiB each, several of them).
    let n = 1024;
    let [q, k, v, w] = inputs(n, 16);
    let (_, heap, _) = peaks_during(|| {
        let p = q
            .matmul(&k.transpose(-2, -1).unwrap())
            .unwrap()
            .mul_scalar(0.25)
            .unwrap()
            .softmax(-1)
            .unwrap();
        let loss = p.matmul(&v).unwrap().mul(&w).unwrap().sum_all().unwrap();
        loss.backward().unwrap()
    });
    assert!(
        heap >= n * n * 4,
        "unfused peak {heap} B should exceed one N x N f32 matrix"
    );
    println!(
        "unfused, N = {n}: peak heap +{:.1} MiB (N x N f32 = {:.1} MiB)",
        heap as f64 / 1048576.0,
        (n * n * 4) as f64 / 1048576.0
    );

    // Fused at N = 8192, causal, forward and backward.
    let (n, d) = (8192, 16);
    let [q, k, v, w] = inputs(n, d);
    let n2_bytes = n * n * 4;
    let start = Instant::now();
    let ((t_fwd, grads), heap, tensors) = peaks_during(|| {
        let a = attention(&q, &k, &v, &AttentionMask::causal(), None).unwrap();
        let t_fwd = start.elapsed();
        let loss = a.out.mul(&w).unwrap().sum_all().unwrap();
        (t_fwd, loss.backward().unwrap())
    });
    let total = start.elapsed();
    assert_eq!(grads.get(&q).unwrap().shape(), &[1, 1, n, d]);
    println!(
        "fused, N = {n}, D = {d}, causal: forward {:.2} s, forward + backward {:.2} s; peak heap +{:.2} MiB, \
         peak tensor storage +{:.2} MiB (N x N f32 would be {} MiB; one N x D f32 tensor is {:.2} MiB)",
        t_fwd.as_secs_f64(),
        total.as_secs_f64(),
        heap as f64 / 1048576.0,
        tensors as f64 / 1048576.0,
        n2_bytes / 1048576,
        (n * d * 4) as f64 / 1048576.0
    );
    assert!(heap < n2_bytes / 16, "fused peak heap {heap} B is not O(N)");
    assert!(
        tensors < n2_bytes / 16,
        "fused peak tensor storage {tensors} B is not O(N)"
    );
    // Tighter: everything is a small multiple of the N x D inputs.
    assert!(heap < 24 * n * d * 4 + (8 << 20), "fused peak heap {heap} B");
}
