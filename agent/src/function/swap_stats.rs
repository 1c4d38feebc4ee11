//! Counters of the function stage's swaps, shared by the watcher (which refuses files),
//! the pipeline (which canaries, swaps and rolls back), start-up (which falls back) and
//! the metrics, which read them. A new counter goes here and in `metrics.rs`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct SwapStats {
    /// Replacement functions swapped in.
    pub swaps: AtomicU64,
    /// Replacements refused: by the watcher (not loadable, refused its parameters) or by
    /// the pipeline (canary failed, window too short).
    pub refused: AtomicU64,
    /// Swapped-in functions that failed their probation and were replaced by the last
    /// good one.
    pub rolled_back: AtomicU64,
    /// Starts where the configured function failed and the last good one ran instead.
    pub startup_fallbacks: AtomicU64,
    /// The sha256 of the function running now.
    running: Mutex<String>,
}

impl SwapStats {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The sha256 of the function running now.
    pub fn running(&self) -> String {
        self.running
            .lock()
            .map(|sha| sha.clone())
            .unwrap_or_default()
    }

    pub fn set_running(&self, sha256: &str) {
        if let Ok(mut running) = self.running.lock() {
            sha256.clone_into(&mut running);
        }
    }
}
