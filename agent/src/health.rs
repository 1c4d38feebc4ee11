//! Whether the agent is alive: one rule behind the systemd watchdog ping, `/health` and
//! `edge_agent_up`. The run loop feeds [`Liveness`] the stages' progress counters; the
//! verdict goes into a [`HealthCell`] that the metrics server reads, so every observer
//! hears the same judgement. A change to what counts as stalled goes here.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use log::{info, warn};

/// Whether the pipeline and the sampler are moving, as the run loop last judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Before the first judgement.
    Starting,
    Alive,
    /// The pipeline has made no progress for longer than its window could take.
    PipelineStalled,
    /// The sampler has neither read nor failed for too long.
    SamplerStalled,
    /// Shutting down after a signal.
    Stopping,
}

impl Health {
    pub fn name(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Alive => "ok",
            Self::PipelineStalled => "pipeline stalled",
            Self::SamplerStalled => "sampler stalled",
            Self::Stopping => "stopping",
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::Starting => 0,
            Self::Alive => 1,
            Self::PipelineStalled => 2,
            Self::SamplerStalled => 3,
            Self::Stopping => 4,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Alive,
            2 => Self::PipelineStalled,
            3 => Self::SamplerStalled,
            4 => Self::Stopping,
            _ => Self::Starting,
        }
    }
}

/// The latest [`Health`], written by the run loop and read by `/health` and `/metrics`.
#[derive(Debug, Default)]
pub struct HealthCell(AtomicU8);

impl HealthCell {
    pub fn set(&self, health: Health) {
        self.0.store(health.code(), Ordering::Relaxed);
    }

    pub fn get(&self) -> Health {
        Health::from_code(self.0.load(Ordering::Relaxed))
    }
}

/// Progress counters of the two threads that must keep moving.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Turns of the pipeline loop (it does not turn while a window runs).
    pub pipeline: u64,
    /// Samples read plus failed reads: a sensor that keeps failing is not stuck.
    pub sampler: u64,
}

/// How long each thread may go without progress before it counts as stalled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StallThresholds {
    pub pipeline: Duration,
    pub sampler: Duration,
}

/// Deadline-bounded guest runs one turn of the pipeline may make: the window, a new
/// instance after a trap, a candidate's canary, a rollback's instance.
pub const GUEST_RUNS_PER_TURN: u32 = 4;

/// Never call the pipeline stalled sooner than this, whatever the deadline: a slow board
/// doing a window's host-side work (encoding, copying, the sink's fsync) needs some slack.
pub const MIN_PIPELINE_STALL: Duration = Duration::from_secs(5);
/// Never call the sampler stalled sooner than this (as before the thresholds were derived).
pub const MIN_SAMPLER_STALL: Duration = Duration::from_secs(30);

impl StallThresholds {
    /// From the work in hand. The pipeline's longest legitimate pause is one turn of its
    /// loop: a window, a fresh instance after a trap, a candidate's canary and a rollback's
    /// instance, each bounded by the function's `deadline` ([`GUEST_RUNS_PER_TURN`] of
    /// them); twice that is a stall. The sampler's is a sample period (at the clock's
    /// speed) or its slowest retry, whichever is longer.
    pub fn derive(deadline: Duration, sample_period: Duration, slowest_retry: Duration) -> Self {
        let turn = deadline.saturating_mul(GUEST_RUNS_PER_TURN);
        Self {
            pipeline: turn.saturating_mul(2).max(MIN_PIPELINE_STALL),
            sampler: sample_period
                .saturating_mul(10)
                .max(slowest_retry.saturating_mul(2))
                .max(MIN_SAMPLER_STALL),
        }
    }
}

/// Judges liveness from progress counters sampled over time: a thread is stalled when its
/// counter has not moved for longer than its threshold, however often it is looked at.
#[derive(Debug)]
pub struct Liveness {
    thresholds: StallThresholds,
    last: Progress,
    pipeline_moved: Instant,
    sampler_moved: Instant,
    reported: Health,
}

impl Liveness {
    pub fn new(thresholds: StallThresholds, now: Instant) -> Self {
        Self {
            thresholds,
            last: Progress::default(),
            pipeline_moved: now,
            sampler_moved: now,
            reported: Health::Alive,
        }
    }

    pub fn thresholds(&self) -> StallThresholds {
        self.thresholds
    }

    /// The verdict for `progress` observed at `now`. A change of verdict is logged once.
    pub fn check(&mut self, progress: Progress, now: Instant) -> Health {
        if progress.pipeline != self.last.pipeline {
            self.pipeline_moved = now;
        }
        if progress.sampler != self.last.sampler {
            self.sampler_moved = now;
        }
        self.last = progress;
        let still = |since: Instant| now.saturating_duration_since(since);
        let health = if still(self.pipeline_moved) > self.thresholds.pipeline {
            Health::PipelineStalled
        } else if still(self.sampler_moved) > self.thresholds.sampler {
            Health::SamplerStalled
        } else {
            Health::Alive
        };
        if health != self.reported {
            match health {
                Health::Alive => info!("progress again: pinging the watchdog"),
                stalled => warn!("{}: withholding the watchdog ping", stalled.name()),
            }
            self.reported = health;
        }
        health
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_round_trips_through_the_cell() {
        let cell = HealthCell::default();
        assert_eq!(cell.get(), Health::Starting);
        for health in [
            Health::Alive,
            Health::PipelineStalled,
            Health::SamplerStalled,
            Health::Stopping,
        ] {
            cell.set(health);
            assert_eq!(cell.get(), health);
        }
    }

    fn thresholds() -> StallThresholds {
        StallThresholds {
            pipeline: Duration::from_secs(30),
            sampler: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_long_window_is_not_a_stall_until_its_threshold() {
        let start = Instant::now();
        let mut liveness = Liveness::new(thresholds(), start);
        let busy = Progress {
            pipeline: 5,
            sampler: 1,
        };
        assert_eq!(liveness.check(busy, start), Health::Alive);
        // Looked at every second while one window runs for 20 s: still alive.
        for second in 1..=20 {
            let progress = Progress {
                sampler: 1 + second,
                ..busy
            };
            let now = start + Duration::from_secs(second);
            assert_eq!(liveness.check(progress, now), Health::Alive, "{second}");
        }
        let late = start + Duration::from_secs(31);
        let progress = Progress {
            pipeline: 5,
            sampler: 40,
        };
        assert_eq!(liveness.check(progress, late), Health::PipelineStalled);
        let moved = Progress {
            pipeline: 6,
            sampler: 41,
        };
        assert_eq!(liveness.check(moved, late), Health::Alive);
    }

    #[test]
    fn a_sampler_without_reads_or_failures_stalls() {
        let start = Instant::now();
        let mut liveness = Liveness::new(thresholds(), start);
        for second in 0..=61u64 {
            let now = start + Duration::from_secs(second);
            let health = liveness.check(
                Progress {
                    pipeline: second,
                    sampler: 0,
                },
                now,
            );
            let expected = if second > 60 {
                Health::SamplerStalled
            } else {
                Health::Alive
            };
            assert_eq!(health, expected, "{second}");
        }
    }

    #[test]
    fn thresholds_follow_the_deadline_and_the_retries() {
        let t = StallThresholds::derive(
            Duration::from_secs(5),
            Duration::from_secs(3),
            Duration::from_secs(30),
        );
        assert_eq!(t.pipeline, Duration::from_secs(40));
        assert_eq!(t.sampler, Duration::from_secs(60));
        let floor = StallThresholds::derive(
            Duration::from_millis(10),
            Duration::from_millis(10),
            Duration::from_millis(10),
        );
        assert_eq!(floor.pipeline, MIN_PIPELINE_STALL);
        assert_eq!(floor.sampler, MIN_SAMPLER_STALL);
    }
}
