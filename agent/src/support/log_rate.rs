//! Rates with a bound, one mechanism: [`TokenBucket`], on monotonic time, `burst` tokens
//! at once, then one more per `interval`.
//!
//! [`LogRate`] is it for log lines: the next line written says how many were left out.
//! Every event that can repeat per sample, document or window uses it: the sensor's changes
//! of state (a flaky bus flips it several times a minute), dead letters, spool drops, a disk
//! that refuses writes. The shipper's drain cap (documents per second after an outage) and
//! the fleet reporter's bound on change-driven status documents take tokens from the same
//! bucket, several at a time.

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

/// The bucket. O(1) memory; exact in the long run (the remainder of a refill is kept).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    burst: u32,
    interval: Duration,
    tokens: u32,
    refilled_at: Option<Duration>,
}

impl TokenBucket {
    /// `burst` at least 1, full at the start; `interval` zero means no limit.
    pub fn new(burst: u32, interval: Duration) -> Self {
        let burst = burst.max(1);
        Self {
            burst,
            interval,
            tokens: burst,
            refilled_at: None,
        }
    }

    /// `per_second` tokens a second (at most 10^9), `burst` of them at once.
    pub fn per_second(per_second: u32, burst: u32) -> Self {
        let interval = Duration::from_secs(1)
            .checked_div(per_second.max(1))
            .unwrap_or(Duration::from_nanos(1));
        Self::new(burst, interval)
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Tokens there are at monotonic time `now`.
    pub fn available(&mut self, now: Duration) -> u32 {
        self.refill(now);
        self.tokens
    }

    /// Takes `n` tokens at `now` if there are that many (`n` above `burst` never is).
    pub fn try_take(&mut self, n: u32, now: Duration) -> bool {
        self.refill(now);
        if self.tokens < n {
            return false;
        }
        self.tokens -= n;
        true
    }

    /// How long from `now` until `n` tokens (at most `burst`) are there.
    pub fn wait_for(&mut self, n: u32, now: Duration) -> Duration {
        self.refill(now);
        let missing = n.min(self.burst).saturating_sub(self.tokens);
        if missing == 0 || self.interval.is_zero() {
            return Duration::ZERO;
        }
        let since = self
            .refilled_at
            .map_or(Duration::ZERO, |at| now.saturating_sub(at));
        self.interval.saturating_mul(missing).saturating_sub(since)
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
        if self.tokens >= self.burst {
            // Full: time spent full earns nothing later.
            self.refilled_at = Some(now);
            return;
        }
        let earned = u32::try_from(earned).unwrap_or(u32::MAX);
        self.tokens = self.tokens.saturating_add(earned).min(self.burst);
        // Keep the remainder, so the long-run rate is exact.
        let spent = self.interval.saturating_mul(earned);
        self.refilled_at = Some(since.saturating_add(spent));
    }
}

/// The process's own monotonic clock, for buckets that do not take time from a test.
pub fn monotonic_now() -> Duration {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed()
}

/// A [`TokenBucket`] of log lines that counts what it leaves out.
#[derive(Debug, Clone)]
pub struct LogRate {
    bucket: TokenBucket,
    suppressed: u64,
}

impl LogRate {
    /// `burst` at least 1; `interval` zero means no limit.
    pub fn new(burst: u32, interval: Duration) -> Self {
        Self {
            bucket: TokenBucket::new(burst, interval),
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
        match self.admit(monotonic_now()) {
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
        if !self.bucket.try_take(1, now) {
            self.suppressed = self.suppressed.saturating_add(1);
            return Admit::Suppress;
        }
        Admit::Log {
            suppressed: std::mem::take(&mut self.suppressed),
        }
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
    fn a_bucket_gives_several_tokens_at_a_time_at_the_rate() {
        let at = Duration::from_millis;
        let mut bucket = TokenBucket::per_second(100, 50);
        assert_eq!(bucket.available(at(0)), 50);
        assert!(bucket.try_take(50, at(0)));
        assert!(!bucket.try_take(1, at(0)));
        assert_eq!(bucket.wait_for(20, at(0)), at(200));
        assert_eq!(bucket.wait_for(20, at(150)), at(50));
        assert!(!bucket.try_take(20, at(150)));
        assert!(bucket.try_take(20, at(200)));
        // More than the burst is never there; waiting is for the burst.
        assert!(!bucket.try_take(51, at(100_000)));
        assert_eq!(bucket.wait_for(1000, at(100_000)), Duration::ZERO);
        // Over ten seconds, 100 a second and the burst, no more.
        let mut bucket = TokenBucket::per_second(100, 50);
        let mut taken = 0u32;
        for ms in 0..10_000 {
            while bucket.try_take(7, at(ms)) {
                taken += 7;
            }
        }
        assert!((1000..=1050).contains(&taken), "{taken}");
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
