//! Counters of the function stage's swaps, shared by the watcher (which refuses files),
//! the pipeline (which canaries, swaps and rolls back), start-up (which falls back) and
//! the metrics, which read them; and the latest outcomes of swaps ([`SwapOutcome`]), by
//! which the registry learns whether the version it handed over passed or failed. A new
//! counter goes here and in `metrics.rs`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::support::text::escape;

/// Outcomes kept: far more than can happen between two looks of the registry poller
/// (one per window at most, and it looks every quarter second).
pub const RECENT_OUTCOMES: usize = 16;
/// The longest reason kept with an outcome.
const MAX_REASON_CHARS: usize = 256;

/// What became of a candidate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeKind {
    /// Refused before it ran: its canary run failed, or it needs longer windows.
    Refused,
    /// Swapped in, then failed its probation and was replaced.
    RolledBack,
    /// Swapped in and passed its probation.
    Passed,
    /// Swapped in and failed its probation, but there was nothing to return to (no
    /// previous function, no other last good one): it keeps running.
    FailedKept,
}

/// One candidate's outcome, numbered so a reader can ask only for newer ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwapOutcome {
    pub seq: u64,
    pub sha256: String,
    pub kind: OutcomeKind,
    /// Why (escaped, bounded); empty for `Passed`.
    pub reason: String,
}

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
    /// The latest outcomes, oldest first, at most [`RECENT_OUTCOMES`].
    recent: Mutex<VecDeque<SwapOutcome>>,
    /// The number of the latest outcome (0 before any).
    seq: AtomicU64,
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

    /// Records what became of candidate `sha256` (the pipeline calls this).
    pub fn note_outcome(&self, sha256: &str, kind: OutcomeKind, reason: &str) {
        if let Ok(mut recent) = self.recent.lock() {
            let seq = self.seq.fetch_add(1, Ordering::AcqRel).saturating_add(1);
            if recent.len() >= RECENT_OUTCOMES {
                recent.pop_front();
            }
            recent.push_back(SwapOutcome {
                seq,
                sha256: sha256.to_owned(),
                kind,
                reason: escape(reason, MAX_REASON_CHARS),
            });
        }
    }

    /// The number of the latest outcome: outcomes after it are [`newer than`](Self::outcomes_after) it.
    pub fn outcome_seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// The outcomes numbered above `seq` that are still kept, oldest first.
    pub fn outcomes_after(&self, seq: u64) -> Vec<SwapOutcome> {
        self.recent
            .lock()
            .map(|recent| recent.iter().filter(|o| o.seq > seq).cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_numbered_bounded_and_read_after_a_mark() {
        let stats = SwapStats::default();
        let mark = stats.outcome_seq();
        assert!(stats.outcomes_after(mark).is_empty());
        stats.note_outcome("aa", OutcomeKind::Refused, "canary\nfailed");
        stats.note_outcome("bb", OutcomeKind::Passed, "");
        let seen = stats.outcomes_after(mark);
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].sha256, "aa");
        assert_eq!(seen[1].kind, OutcomeKind::Passed);
        assert!(stats.outcomes_after(seen[1].seq).is_empty());
        for n in 0..40 {
            stats.note_outcome(&format!("{n}"), OutcomeKind::RolledBack, &"x".repeat(1000));
        }
        let kept = stats.outcomes_after(0);
        assert_eq!(kept.len(), RECENT_OUTCOMES);
        assert_eq!(kept.last().unwrap().sha256, "39");
        assert!(kept[0].reason.chars().count() < 300);
    }
}
