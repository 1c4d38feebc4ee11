//! The pipeline's counters: what the rest of the agent (the status line, `/metrics`)
//! reads while the pipeline runs. Lock-free where the pipeline writes often, so it never
//! waits on a scrape.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::function::SwapStats;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the fuel-per-window histogram's buckets. The default budget is 1.1 G and
/// S-H-ESD needs 0.04–0.87 G depending on N and the period, so the buckets are densest there.
pub const FUEL_BUCKETS: [u64; 10] = [
    1_000_000,
    10_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    750_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
];

/// A cumulative histogram of fuel per window, lock-free so the pipeline never waits on a
/// scrape.
#[derive(Debug, Default)]
pub struct FuelHistogram {
    /// Observations at or below `FUEL_BUCKETS[i]` (not cumulative; summed when rendered).
    buckets: [AtomicU64; FUEL_BUCKETS.len()],
    sum: AtomicU64,
    count: AtomicU64,
}

impl FuelHistogram {
    pub fn observe(&self, fuel: u64) {
        if let Some(i) = FUEL_BUCKETS.iter().position(|&bound| fuel <= bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum.fetch_add(fuel, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let buckets = FUEL_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(&bound, n)| {
                cumulative += n.load(Ordering::Relaxed);
                (bound, cumulative)
            })
            .collect();
        HistogramSnapshot {
            buckets,
            sum: self.sum.load(Ordering::Relaxed),
            // Read last: a concurrent observation may then show in `count` but not yet in
            // a bucket, never the other way round (+Inf is rendered from `count`).
            count: self.count.load(Ordering::Relaxed).max(cumulative),
        }
    }
}

/// A histogram's state: cumulative counts per upper bound, sum and count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<(u64, u64)>,
    pub sum: u64,
    pub count: u64,
}

/// Counters the rest of the agent reads while the pipeline runs.
#[derive(Debug, Default)]
pub struct PipelineStats {
    pub samples: AtomicU64,
    pub windows: AtomicU64,
    pub failed_windows: AtomicU64,
    pub verdicts: AtomicU64,
    pub anomalies: AtomicU64,
    /// Swaps, refusals, rollbacks, start-up fallbacks, and the function in use (the
    /// function stage's own counters, shared with the watcher).
    pub swap: Arc<SwapStats>,
    /// Failed reads or writes of the window history (the windows go on from memory).
    pub history_errors: AtomicU64,
    /// Moves on every turn of the loop: the watchdog's sign of life.
    pub heartbeat: AtomicU64,
    /// Failed windows by `FunctionError::kind`, for the metrics.
    pub function_errors: Mutex<BTreeMap<&'static str, u64>>,
    /// Fuel burnt by each window the function judged, and by the latest one.
    pub fuel: FuelHistogram,
    pub fuel_last: AtomicU64,
    /// Sensors with windows kept now (a gauge), and series closed to make room for a new
    /// sensor at the bound.
    pub sensors_active: AtomicU64,
    pub sensors_evicted: AtomicU64,
    /// Verdicts the NDJSON output (`[output] path` or standard output) could not write:
    /// the sink's own count, shared so that the metrics say where they went.
    pub output_unwritten: Arc<AtomicU64>,
    /// Times the NDJSON output file reached its bound and was rotated (the sink's count).
    pub output_rotations: Arc<AtomicU64>,
}

impl PipelineStats {
    /// The sha256 of the function in use.
    pub fn function_sha256(&self) -> String {
        self.swap.running()
    }

    /// Failed windows by error kind, so far.
    pub fn function_errors(&self) -> BTreeMap<&'static str, u64> {
        self.function_errors
            .lock()
            .map(|errors| errors.clone())
            .unwrap_or_default()
    }

    pub(super) fn count(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative_and_ends_in_inf() {
        let histogram = FuelHistogram::default();
        for fuel in [500_000, 60_000_000, 60_000_000, 20_000_000_000] {
            histogram.observe(fuel);
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 4);
        assert_eq!(snapshot.sum, 20_120_500_000);
        assert_eq!(snapshot.buckets[0], (1_000_000, 1));
        assert_eq!(snapshot.buckets[2], (50_000_000, 1));
        assert_eq!(snapshot.buckets[3], (100_000_000, 3));
        assert_eq!(snapshot.buckets.last(), Some(&(10_000_000_000, 3)));
    }
}
