//! Timestamps for samples that never go backwards within a run, whatever the wall clock
//! does, and the record of what it did.
//!
//! Each stamp compares how far the wall clock moved since the last stamp with how far the
//! monotonic clock moved. A difference beyond [`STEP_TOLERANCE`] (plus 0.1 % of the
//! interval, more than NTP's 500 ppm slew) is a step:
//!
//! - **Forward** (NTP syncing a Pi that booted on an old time): counted, and stamps follow
//!   the wall clock from there. The gap is real time as far as anyone can tell.
//! - **Backward**: counted, and stamps are *held*: they continue from the last stamp on the
//!   monotonic clock (last stamp + monotonic time since) until the wall clock catches up with
//!   them, then follow the wall clock again. So a run's stamps never go back and the spacing
//!   between them stays true; the price is that, for at most the size of the step, stamps
//!   run ahead of the (now corrected) wall clock. Those samples are marked
//!   `clock_synced = false`, because their time is not a synchronised clock's reading.
//!
//! `clock_synced` on a sample is the clock's state when it was taken ([`ClockSync`]) and
//! `false` while stamps are held. Samples taken before the first synchronisation keep the
//! wall clock's time as it was and are marked, not held back or rewritten: they are already
//! on their way to the spool, and a Pi that never reaches NTP would otherwise keep nothing.
//! A change here is a change to what `@timestamp` means: update the README's "Time" section.

use std::time::Duration;

use crate::sensor::clock::ClockSync;

/// Wall-clock movement that differs from monotonic movement by more than this (plus
/// [`STEP_TOLERANCE_PPM`] of the interval) is a step, not drift.
pub const STEP_TOLERANCE: Duration = Duration::from_secs(1);
/// Drift allowed per unit of elapsed time, in parts per million (NTP slews at most 500).
pub const STEP_TOLERANCE_PPM: u64 = 1000;

/// What a stamp noticed about the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockEvent {
    /// The wall clock jumped back by `by_ms`: stamps are held until it catches up.
    SteppedBack { by_ms: i64 },
    /// The wall clock jumped forward by `by_ms`.
    SteppedForward { by_ms: i64 },
    /// The wall clock caught up with held stamps: they follow it again.
    CaughtUp,
    /// The clock is synchronised for the first time in this run.
    FirstSync,
}

/// A sample's time and whether to believe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Unix ms; never less than the previous stamp of this timeline.
    pub unix_ms: i64,
    pub clock_synced: bool,
    /// Anything that happened to the clock since the previous stamp (a step wins over the
    /// rest when several happen at once).
    pub event: Option<ClockEvent>,
}

#[derive(Debug, Clone, Copy)]
struct Mark {
    monotonic: Duration,
    wall_ms: i64,
    stamped_ms: i64,
}

/// Counters of what the wall clock did during the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimelineStats {
    pub steps_back: u64,
    pub steps_forward: u64,
    /// Stamps taken while held ahead of the wall clock.
    pub held_stamps: u64,
    /// Stamps taken while the clock was not synchronised (held ones included).
    pub unsynced_stamps: u64,
}

/// The stamping state of one run. O(1) memory: the last stamp only.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    last: Option<Mark>,
    held: bool,
    ever_synced: bool,
    stats: TimelineStats,
}

impl Timeline {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stats(&self) -> TimelineStats {
        self.stats
    }

    /// Whether stamps are currently held ahead of a wall clock that stepped back.
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// The stamp for a sample triggered at `monotonic` when the wall clock read `wall_ms`
    /// and was in state `sync`.
    pub fn stamp(&mut self, monotonic: Duration, wall_ms: i64, sync: ClockSync) -> Stamp {
        let mut event = None;
        if sync.is_synced() && !self.ever_synced {
            self.ever_synced = true;
            // Not on the very first stamp: a run that starts synchronised has no news.
            if self.last.is_some() {
                event = Some(ClockEvent::FirstSync);
            }
        }
        let unix_ms = match self.last {
            None => wall_ms,
            Some(last) => {
                let mono_ms = millis(monotonic.saturating_sub(last.monotonic));
                let drift = wall_ms.saturating_sub(last.wall_ms).saturating_sub(mono_ms);
                let tolerance = millis(STEP_TOLERANCE).saturating_add(
                    mono_ms.saturating_mul(i64::try_from(STEP_TOLERANCE_PPM).unwrap_or(0))
                        / 1_000_000,
                );
                let stepped_back = drift < tolerance.saturating_neg();
                if stepped_back {
                    self.stats.steps_back += 1;
                    event = Some(ClockEvent::SteppedBack {
                        by_ms: drift.saturating_neg(),
                    });
                } else if drift > tolerance {
                    self.stats.steps_forward += 1;
                    event = Some(ClockEvent::SteppedForward { by_ms: drift });
                }
                // Held stamps run on the monotonic clock. Otherwise a stamp only never goes
                // below the last one: jitter smaller than the tolerance is absorbed without
                // a hold, so it cannot leave every later sample marked.
                let holding = self.held || stepped_back;
                let floor = if holding {
                    last.stamped_ms.saturating_add(mono_ms)
                } else {
                    last.stamped_ms
                };
                let stamped = wall_ms.max(floor);
                let held = holding && stamped > wall_ms;
                if self.held && !held && event.is_none() {
                    event = Some(ClockEvent::CaughtUp);
                }
                self.held = held;
                stamped
            }
        };
        self.last = Some(Mark {
            monotonic,
            wall_ms,
            stamped_ms: unix_ms,
        });
        if self.held {
            self.stats.held_stamps += 1;
        }
        let clock_synced = sync.is_synced() && !self.held;
        if !clock_synced {
            self.stats.unsynced_stamps += 1;
        }
        Stamp {
            unix_ms,
            clock_synced,
            event,
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_767_225_600_000;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_steady_clock_is_followed_exactly() {
        let mut timeline = Timeline::new();
        for i in 0..5u64 {
            let stamp = timeline.stamp(secs(3 * i), T0 + 3000 * i as i64, ClockSync::Synced);
            assert_eq!(stamp.unix_ms, T0 + 3000 * i as i64);
            assert!(stamp.clock_synced);
            assert_eq!(stamp.event, None);
        }
        assert_eq!(timeline.stats(), TimelineStats::default());
    }

    #[test]
    fn a_step_back_is_held_on_monotonic_time_until_the_wall_catches_up() {
        let mut timeline = Timeline::new();
        timeline.stamp(secs(0), T0, ClockSync::Synced);
        timeline.stamp(secs(3), T0 + 3000, ClockSync::Synced);
        // The wall clock goes back 10 s between the second and third sample.
        let stamp = timeline.stamp(secs(6), T0 + 6000 - 10_000, ClockSync::Synced);
        assert_eq!(stamp.event, Some(ClockEvent::SteppedBack { by_ms: 10_000 }));
        assert_eq!(
            stamp.unix_ms,
            T0 + 6000,
            "last stamp + 3 s of monotonic time"
        );
        assert!(
            !stamp.clock_synced,
            "held stamps are not the clock's reading"
        );
        let stamp = timeline.stamp(secs(9), T0 + 9000 - 10_000, ClockSync::Synced);
        assert_eq!((stamp.unix_ms, stamp.event), (T0 + 9000, None));
        // Still 10 s behind: the hold goes on, on monotonic time.
        let stamp = timeline.stamp(secs(12), T0 + 12_000 - 10_000, ClockSync::Synced);
        assert_eq!(stamp.unix_ms, T0 + 12_000);
        assert_eq!(timeline.stats().steps_back, 1);
        // A forward correction of the same size brings wall time back to the held line.
        let stamp = timeline.stamp(secs(15), T0 + 15_000 + 500, ClockSync::Synced);
        assert_eq!(
            stamp.event,
            Some(ClockEvent::SteppedForward { by_ms: 10_500 })
        );
        assert_eq!(stamp.unix_ms, T0 + 15_500);
        assert!(stamp.clock_synced);
        assert!(!timeline.is_held());
    }

    #[test]
    fn a_hold_ends_when_the_wall_clock_passes_the_held_time() {
        let mut timeline = Timeline::new();
        timeline.stamp(secs(0), T0, ClockSync::Synced);
        // Back 2 s, then the wall runs 1 s fast per sample (drift within tolerance each
        // time) and overtakes the held line.
        let held = timeline.stamp(secs(1), T0 - 1000, ClockSync::Synced);
        assert_eq!(held.unix_ms, T0 + 1000);
        let mut last = held.unix_ms;
        let mut caught_up = false;
        for i in 2..10u64 {
            let wall = T0 - 1000 + (i as i64 - 1) * 1900;
            let stamp = timeline.stamp(secs(i), wall, ClockSync::Synced);
            assert!(stamp.unix_ms >= last, "never backwards");
            last = stamp.unix_ms;
            if stamp.event == Some(ClockEvent::CaughtUp) {
                caught_up = true;
                assert_eq!(stamp.unix_ms, wall);
                assert!(stamp.clock_synced);
            }
        }
        assert!(caught_up);
    }

    #[test]
    fn small_backward_jitter_never_shows() {
        let mut timeline = Timeline::new();
        let first = timeline.stamp(secs(0), T0, ClockSync::Synced);
        let second = timeline.stamp(Duration::from_millis(10), T0 - 400, ClockSync::Synced);
        assert_eq!(second.event, None, "within tolerance: not a step");
        assert!(second.unix_ms >= first.unix_ms);
    }

    #[test]
    fn unsynchronised_stamps_are_marked_and_the_first_sync_reported() {
        let mut timeline = Timeline::new();
        let stamp = timeline.stamp(secs(0), T0, ClockSync::Unsynced);
        assert!(!stamp.clock_synced);
        let stamp = timeline.stamp(secs(3), T0 + 3000, ClockSync::Unknown);
        assert!(!stamp.clock_synced);
        let stamp = timeline.stamp(secs(6), T0 + 6000, ClockSync::Synced);
        assert!(stamp.clock_synced);
        assert_eq!(stamp.event, Some(ClockEvent::FirstSync));
        assert_eq!(timeline.stats().unsynced_stamps, 2);
    }
}
