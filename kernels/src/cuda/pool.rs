//! A caching device allocator: freed buffers go to size-binned free lists and are handed out
//! again, so a training loop that allocates the same activations every step stops calling the
//! driver's allocator after its first step.
//!
//! The pool's logic (binning, reuse, counters, trim, retry after out-of-memory) is written
//! against [`RawAllocator`], so it is tested on the CPU with a fake allocator; the device uses
//! one that calls `cuMemAlloc` / `cuMemFree`.
//!
//! Why reuse is safe without events: every kernel, copy and cuBLAS call of a device is issued on
//! that device's one stream, so work that reads a buffer is ordered before work that writes
//! the buffer's next owner (the same argument as PyTorch's caching allocator on one stream).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::error::CudaError;

/// The driver's allocator, or a fake one in tests. Addresses are opaque `u64`s.
pub trait RawAllocator: Send + Sync + 'static {
    fn alloc(&self, bytes: usize) -> Result<u64, CudaError>;
    /// # Safety-relevant contract
    /// Called once per address returned by `alloc`, never while work on it is pending (the pool
    /// synchronizes through [`RawAllocator::synchronize`] before trimming).
    fn free(&self, ptr: u64, bytes: usize) -> Result<(), CudaError>;
    /// Wait for pending work, so freed memory is no longer read by any kernel.
    fn synchronize(&self) -> Result<(), CudaError> {
        Ok(())
    }
}

/// Rounds a request up to its bin: 512-byte granularity below 4 KiB (so small tensors share
/// bins), then four bins per power of two (1, 1.25, 1.5, 1.75 × 2^k), which bounds the waste at
/// 25% while keeping the number of distinct bins small enough that buffers are reused.
pub fn bin_size(bytes: usize) -> usize {
    let bytes = bytes.max(1);
    if bytes <= 4096 {
        return bytes.div_ceil(512) * 512;
    }
    let top = usize::BITS - 1 - bytes.leading_zeros(); // 2^top <= bytes
    let quarter = 1usize << (top - 2);
    bytes.div_ceil(quarter) * quarter
}

/// Counters, for tests and for the memory report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes (bin-rounded) held by live buffers.
    pub live_bytes: usize,
    /// Bytes sitting in the free lists.
    pub cached_bytes: usize,
    /// Calls that reached the raw allocator (misses).
    pub driver_allocs: usize,
    /// Requests served from a free list.
    pub reuses: usize,
    /// Calls to the raw allocator's free.
    pub driver_frees: usize,
    pub peak_live_bytes: usize,
}

#[derive(Default)]
struct State {
    free: BTreeMap<usize, Vec<u64>>,
    stats: PoolStats,
}

/// The pool itself. Shared (`Arc`) by every buffer it handed out, which return to it on drop.
pub struct CachingPool<A: RawAllocator> {
    raw: A,
    state: Mutex<State>,
    /// Byte written over every new buffer (e.g. 0xFF, a NaN in every float format), so kernels
    /// that leave elements unwritten show up in tests. `None` in normal use.
    poison: Option<u8>,
}

impl<A: RawAllocator> CachingPool<A> {
    pub fn new(raw: A) -> Arc<Self> {
        Arc::new(CachingPool {
            raw,
            state: Mutex::new(State::default()),
            poison: poison_from_env(),
        })
    }

    pub fn raw(&self) -> &A {
        &self.raw
    }

    /// The poison byte new buffers must be filled with, if poisoning is on.
    pub fn poison(&self) -> Option<u8> {
        self.poison
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain bookkeeping, valid after a panic elsewhere.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A buffer of at least `bytes` bytes, reused when its bin has one.
    pub fn alloc(self: &Arc<Self>, bytes: usize) -> Result<PoolBuffer<A>, CudaError> {
        let size = bin_size(bytes);
        let reused = {
            let mut st = self.lock();
            let ptr = st.free.get_mut(&size).and_then(Vec::pop);
            if ptr.is_some() {
                st.stats.cached_bytes -= size;
                st.stats.reuses += 1;
                note_live(&mut st.stats, size);
            }
            ptr
        };
        let ptr = match reused {
            Some(p) => p,
            None => {
                let p = match self.raw.alloc(size) {
                    Ok(p) => p,
                    // Out of memory with buffers cached: give them back and try once more.
                    Err(_) if self.lock().stats.cached_bytes > 0 => {
                        self.trim()?;
                        self.raw.alloc(size)?
                    }
                    Err(e) => return Err(e),
                };
                let mut st = self.lock();
                st.stats.driver_allocs += 1;
                note_live(&mut st.stats, size);
                p
            }
        };
        Ok(PoolBuffer {
            ptr,
            len: bytes,
            capacity: size,
            pool: Arc::clone(self),
        })
    }

    /// Free every cached buffer back to the driver (live ones are untouched).
    pub fn trim(&self) -> Result<(), CudaError> {
        self.raw.synchronize()?;
        let free = std::mem::take(&mut self.lock().free);
        let mut first_err = None;
        for (size, ptrs) in free {
            for p in ptrs {
                let r = self.raw.free(p, size);
                let mut st = self.lock();
                st.stats.cached_bytes -= size;
                st.stats.driver_frees += 1;
                if let Err(e) = r {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    pub fn stats(&self) -> PoolStats {
        self.lock().stats
    }

    fn give_back(&self, ptr: u64, size: usize) {
        let mut st = self.lock();
        st.stats.live_bytes -= size;
        st.stats.cached_bytes += size;
        st.free.entry(size).or_default().push(ptr);
    }
}

fn note_live(stats: &mut PoolStats, size: usize) {
    stats.live_bytes += size;
    stats.peak_live_bytes = stats.peak_live_bytes.max(stats.live_bytes);
}

/// `KERNELS_POOL_POISON=1` (or a byte such as `0x7f`) turns poisoning on; the parity tests
/// set it so that unwritten output elements read as NaN.
fn poison_from_env() -> Option<u8> {
    let v = std::env::var("KERNELS_POOL_POISON").ok()?;
    let v = v.trim();
    match v {
        "" | "0" => None,
        "1" => Some(0xFF),
        hex => u8::from_str_radix(hex.trim_start_matches("0x"), 16).ok(),
    }
}

impl<A: RawAllocator> Drop for CachingPool<A> {
    fn drop(&mut self) {
        // Only reached when no buffer is alive (each holds an Arc); errors here have no one
        // to report to, and the context going away frees the memory anyway.
        let _ = self.trim();
    }
}

/// A device byte buffer on loan from the pool; returned to its bin on drop.
pub struct PoolBuffer<A: RawAllocator> {
    ptr: u64,
    len: usize,
    capacity: usize,
    pool: Arc<CachingPool<A>>,
}

impl<A: RawAllocator> PoolBuffer<A> {
    /// Device address of the first byte.
    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    /// Bytes requested (the usable length).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes actually reserved (the bin size).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn pool(&self) -> &Arc<CachingPool<A>> {
        &self.pool
    }
}

impl<A: RawAllocator> std::fmt::Debug for PoolBuffer<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PoolBuffer({:#x}, {} B)", self.ptr, self.len)
    }
}

impl<A: RawAllocator> Drop for PoolBuffer<A> {
    fn drop(&mut self) {
        self.pool.give_back(self.ptr, self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    /// Hands out increasing fake addresses; can be told to fail once it has `limit` bytes out.
    #[derive(Default)]
    struct Fake {
        next: AtomicU64,
        out: AtomicUsize,
        limit: Option<usize>,
        frees: Mutex<Vec<u64>>,
    }

    impl RawAllocator for Fake {
        fn alloc(&self, bytes: usize) -> Result<u64, CudaError> {
            if self
                .limit
                .is_some_and(|l| self.out.load(Ordering::SeqCst) + bytes > l)
            {
                return Err(CudaError::Driver("out of memory".into()));
            }
            self.out.fetch_add(bytes, Ordering::SeqCst);
            Ok(0x1000 + self.next.fetch_add(bytes as u64, Ordering::SeqCst))
        }
        fn free(&self, ptr: u64, bytes: usize) -> Result<(), CudaError> {
            self.out.fetch_sub(bytes, Ordering::SeqCst);
            self.frees.lock().unwrap().push(ptr);
            Ok(())
        }
    }

    #[test]
    fn bins_round_up_and_bound_waste() {
        assert_eq!(bin_size(0), 512);
        assert_eq!(bin_size(1), 512);
        assert_eq!(bin_size(513), 1024);
        assert_eq!(bin_size(4096), 4096);
        assert_eq!(bin_size(4097), 5120);
        assert_eq!(bin_size(1 << 20), 1 << 20);
        for bytes in [4097, 10_000, 123_457, 1 << 30, (1 << 30) + 1] {
            let b = bin_size(bytes);
            assert!(b >= bytes && (b - bytes) * 4 <= bytes, "{bytes} -> {b}");
            assert_eq!(bin_size(b), b, "a bin size is its own bin");
        }
    }

    #[test]
    fn freed_buffers_are_reused_and_counted() {
        let pool = CachingPool::new(Fake::default());
        let a = pool.alloc(1000).unwrap();
        let a_ptr = a.ptr();
        assert_eq!((a.len(), a.capacity()), (1000, 1024));
        assert_eq!(pool.stats().live_bytes, 1024);
        drop(a);
        let s = pool.stats();
        assert_eq!((s.live_bytes, s.cached_bytes), (0, 1024));
        // Same bin: the same address comes back without a driver call.
        let b = pool.alloc(900).unwrap();
        assert_eq!(b.ptr(), a_ptr);
        let s = pool.stats();
        assert_eq!((s.driver_allocs, s.reuses, s.cached_bytes), (1, 1, 0));
        // Another bin: a new allocation.
        let c = pool.alloc(100_000).unwrap();
        assert_ne!(c.ptr(), b.ptr());
        assert_eq!(pool.stats().driver_allocs, 2);
        assert_eq!(pool.stats().peak_live_bytes, 1024 + bin_size(100_000));
    }

    #[test]
    fn a_training_loop_stops_calling_the_driver() {
        let pool = CachingPool::new(Fake::default());
        for _step in 0..10 {
            let bufs: Vec<_> = [4, 4097, 1 << 16, 3 << 20, 4]
                .iter()
                .map(|&n| pool.alloc(n).unwrap())
                .collect();
            drop(bufs);
        }
        let s = pool.stats();
        assert_eq!(s.driver_allocs, 5, "only the first step allocates");
        assert_eq!(s.reuses, 45);
        assert_eq!(s.live_bytes, 0);
    }

    #[test]
    fn trim_frees_only_cached_buffers() {
        let pool = CachingPool::new(Fake::default());
        let keep = pool.alloc(10).unwrap();
        drop(pool.alloc(20_000).unwrap());
        drop(pool.alloc(30_000).unwrap());
        pool.trim().unwrap();
        let s = pool.stats();
        assert_eq!((s.cached_bytes, s.driver_frees), (0, 2));
        assert_eq!(s.live_bytes, keep.capacity());
        assert_eq!(pool.raw().out.load(Ordering::SeqCst), keep.capacity());
        drop(keep);
        assert_eq!(pool.stats().cached_bytes, 512);
    }

    #[test]
    fn out_of_memory_trims_the_cache_and_retries() {
        let pool = CachingPool::new(Fake {
            limit: Some(1 << 20),
            ..Fake::default()
        });
        drop(pool.alloc(600_000).unwrap()); // cached, 655_360 bytes out
        let big = pool.alloc(700_000).unwrap(); // fits only after the cache is freed
        assert_eq!(pool.stats().driver_frees, 1);
        // Nothing cached to free: the error comes back instead of a panic.
        assert!(pool.alloc(900_000).is_err());
        drop(big);
    }
}
