//! Retry delays: doubling from a first delay up to a cap, with jitter so that many agents
//! (or many retries of one) do not march in step. The sensor's bus retries and the
//! shipper's upstream retries both use it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `initial · 2^(failures-1)`, capped at `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The delay after `failures` failures in a row (0 and 1 both give `initial`).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.initial.saturating_mul(1u32 << doublings).min(self.max)
    }
}

/// A small xorshift generator for jitter: not for secrets, only to spread retries.
#[derive(Clone, Debug)]
pub struct Jitter(u64);

impl Jitter {
    /// Seeded from the clock and `salt` (e.g. a host name's hash), never zero. The seed is
    /// mixed (splitmix64's finaliser) first: xorshift's first outputs from seeds that differ
    /// in a few low bits (clocks read nanoseconds apart) agree in their high bits, and
    /// [`Jitter::fraction`] reads those, so agents started together would draw one value.
    pub fn seeded(salt: u64) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
            .unwrap_or(0x9e37_79b9);
        let mut z = (nanos ^ salt.rotate_left(17)).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A uniform fraction in [0, 1).
    pub fn fraction(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Half to all of `delay`, uniformly.
    pub fn spread(&mut self, delay: Duration) -> Duration {
        delay.mul_f64(0.5 + self.fraction() / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps_without_overflow() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        assert_eq!(backoff.delay(0), Duration::from_millis(100));
        assert_eq!(backoff.delay(1), Duration::from_millis(100));
        assert_eq!(backoff.delay(2), Duration::from_millis(200));
        assert_eq!(backoff.delay(4), Duration::from_millis(800));
        assert_eq!(backoff.delay(100), Duration::from_secs(30));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn jitters_seeded_together_draw_apart() {
        // Fifty seeded in a row (nanoseconds apart, one salt): their first draws spread
        // over [0, 1) rather than agreeing.
        let firsts: Vec<f64> = (0..50).map(|_| Jitter::seeded(7).fraction()).collect();
        let low = firsts.iter().filter(|f| **f < 0.5).count();
        assert!((10..=40).contains(&low), "{firsts:?}");
    }

    #[test]
    fn jitter_stays_within_half_to_all() {
        let mut jitter = Jitter::seeded(42);
        let delay = Duration::from_secs(10);
        for _ in 0..1000 {
            let spread = jitter.spread(delay);
            assert!(spread >= delay / 2 && spread <= delay, "{spread:?}");
        }
    }
}
