//! Live-storage accounting. Every [`crate::storage::Storage`] adds its bytes here when created
//! and removes them when dropped, so a test can check that a training step leaves nothing
//! behind. The counters are process-wide; read them from a test binary that runs one test.

use std::sync::atomic::{AtomicUsize, Ordering};

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_STORAGES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn on_alloc(bytes: usize) {
    let now = LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
    LIVE_STORAGES.fetch_add(1, Ordering::Relaxed);
    PEAK_BYTES.fetch_max(now, Ordering::Relaxed);
}

pub(crate) fn on_free(bytes: usize) {
    LIVE_BYTES.fetch_sub(bytes, Ordering::Relaxed);
    LIVE_STORAGES.fetch_sub(1, Ordering::Relaxed);
}

/// Bytes held by live tensor storages.
pub fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Number of live tensor storages (a tensor and its views share one).
pub fn live_storages() -> usize {
    LIVE_STORAGES.load(Ordering::Relaxed)
}

/// The largest `live_bytes` seen since the last [`reset_peak`].
pub fn peak_bytes() -> usize {
    PEAK_BYTES.load(Ordering::Relaxed)
}

pub fn reset_peak() {
    PEAK_BYTES.store(live_bytes(), Ordering::Relaxed);
}
