//! A bound on how often the sampler logs changes of state, so a flaky bus (a NACK every
//! few transfers flips the sensor between faulted and healthy several times a minute) costs
//! a few lines a minute, not one per flip, and the lines say how many were left out.
//!
//! A token bucket on the monotonic clock: [`STATE_LOG_BURST`] lines at once, then one more
//! per [`STATE_LOG_INTERVAL`]. What is left out is counted (the sampler's
//! `state_changes_suppressed`), recorded as events all the same, logged at debug, and the
//! next line that is written says how many it follows. A change of policy goes here.

use std::time::Duration;

/// Lines that may be written back to back.
pub const STATE_LOG_BURST: u32 = 5;
/// One more line is allowed per this much monotonic time.
pub const STATE_LOG_INTERVAL: Duration = Duration::from_secs(60);

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
                format!(" ({suppressed} earlier changes of state not logged, rate limit)")
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

impl Default for LogRate {
    fn default() -> Self {
        Self::new(STATE_LOG_BURST, STATE_LOG_INTERVAL)
    }
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
    }

    #[test]
    fn forty_flips_a_minute_give_a_handful_of_lines() {
        let mut rate = LogRate::default();
        let mut logged = 0;
        // 40 changes a minute for ten minutes.
        for i in 0..400u64 {
            if let Admit::Log { .. } = rate.admit(Duration::from_millis(i * 1500)) {
                logged += 1;
            }
        }
        assert!(logged <= STATE_LOG_BURST as usize + 10, "{logged}");
        assert!(logged >= 10, "{logged}");
    }
}
