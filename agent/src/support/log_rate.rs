//! Log volume with a bound: a token bucket on monotonic time, `burst` lines at once, then
//! one more per `interval`, and the next line written says how many were left out. Every
//! event that can repeat per sample, document or window uses it: the sensor's changes of
//! state (a flaky bus flips it several times a minute), dead letters, spool drops, a disk
//! that refuses writes.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether to write a line now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Write it; `suppressed` lines were left out since the last one written.
    Log { suppressed: u64 },
    /// Leave it out (it has been counted).
    Suppress,
}

impl Admit {
    /// Text to append to an admitted line: empty, or how many lines it follows.
    pub fn suffix(self) -> String {
        match self {
            Admit::Log { suppressed: 0 } | Admit::Suppress => String::new(),
            Admit::Log { suppressed } => {
                format!(" ({suppressed} earlier ones not logged, rate limit)")
            }
        }
    }
}

/// The bucket. O(1) memory.
#[derive(Debug, Clone)]
pub struct LogRate {
    burst: u32,
    interval: Duration,
    tokens: u32,
    refilled_at: Option<Duration>,
    suppressed: u64,
}

impl LogRate {
    /// `burst` at least 1; `interval` zero means no limit.
    pub fn new(burst: u32, interval: Duration) -> Self {
        let burst = burst.max(1);
        Self {
            burst,
            interval,
            tokens: burst,
            refilled_at: None,
            suppressed: 0,
        }
    }

    /// One line at once, then one per `interval`.
    pub fn every(interval: Duration) -> Self {
        Self::new(1, interval)
    }

    /// [`Self::admit`] on the process's own monotonic clock: `Some(left out since the
    /// last line)` when a line may be written now.
    pub fn allow(&mut self) -> Option<u64> {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        let now = EPOCH.get_or_init(Instant::now).elapsed();
        match self.admit(now) {
            Admit::Log { suppressed } => Some(suppressed),
            Admit::Suppress => None,
        }
    }

    /// The tail of a line written after `suppressed` were left out.
    pub fn note(suppressed: u64) -> String {
        Admit::Log { suppressed }.suffix()
    }

    /// Asks to write a line at monotonic time `now`.
    pub fn admit(&mut self, now: Duration) -> Admit {
        self.refill(now);
        if self.tokens == 0 {
            self.suppressed = self.suppressed.saturating_add(1);
            return Admit::Suppress;
        }
        self.tokens -= 1;
        Admit::Log {
            suppressed: std::mem::take(&mut self.suppressed),
        }
    }

    fn refill(&mut self, now: Duration) {
        let Some(since) = self.refilled_at else {
            self.refilled_at = Some(now);
            return;
        };
        if self.interval.is_zero() {
            self.tokens = self.burst;
            return;
        }
        let elapsed = now.saturating_sub(since);
        let earned = elapsed.as_nanos() / self.interval.as_nanos();
        if earned == 0 {
            return;
        }
        let earned = u32::try_from(earned).unwrap_or(u32::MAX);
        self.tokens = self.tokens.saturating_add(earned).min(self.burst);
        // Keep the remainder, so the long-run rate is exact.
        let spent = self.interval.saturating_mul(earned);
        self.refilled_at = Some(since.saturating_add(spent));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_interval_with_the_gap_counted() {
        let mut rate = LogRate::new(2, Duration::from_secs(60));
        let at = Duration::from_secs;
        assert_eq!(rate.admit(at(0)), Admit::Log { suppressed: 0 });
        assert_eq!(rate.admit(at(1)), Admit::Log { suppressed: 0 });
        assert_eq!(rate.admit(at(2)), Admit::Suppress);
        assert_eq!(rate.admit(at(30)), Admit::Suppress);
        assert_eq!(rate.admit(at(61)), Admit::Log { suppressed: 2 });
        assert_eq!(rate.admit(at(62)), Admit::Suppress);
        // A long quiet spell refills the burst, no more.
        assert_eq!(rate.admit(at(10_000)), Admit::Log { suppressed: 1 });
        assert_eq!(rate.admit(at(10_000)), Admit::Log { suppressed: 0 });
        assert_eq!(rate.admit(at(10_000)), Admit::Suppress);
        assert!(Admit::Log { suppressed: 3 }.suffix().contains("3 earlier"));
        let mut every = LogRate::every(Duration::from_secs(3600));
        assert_eq!(every.allow(), Some(0));
        assert_eq!(every.allow(), None);
    }

    #[test]
    fn forty_flips_a_minute_give_a_handful_of_lines() {
        let mut rate = LogRate::new(5, Duration::from_secs(60));
        let mut logged = 0;
        // 40 changes a minute for ten minutes.
        for i in 0..400u64 {
            if let Admit::Log { .. } = rate.admit(Duration::from_millis(i * 1500)) {
                logged += 1;
            }
        }
        assert!(logged <= 5 + 10, "{logged}");
        assert!(logged >= 10, "{logged}");
    }
}
