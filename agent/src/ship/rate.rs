//! Log lines at a bounded rate: the first of a kind at once, then at most one per period,
//! saying how many were held back. Used wherever an event can repeat per document or per
//! window (dead letters, spool drops, a disk that refuses writes).

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct LogLimit {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    pub fn every(every: Duration) -> Self {
        Self {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(held back since the last line)` when a line may be written now.
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < self.every => {
                self.suppressed = self.suppressed.saturating_add(1);
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// The tail of a line that follows held-back ones.
    pub fn note(suppressed: u64) -> String {
        if suppressed == 0 {
            String::new()
        } else {
            format!(" ({suppressed} more like it since the last line)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_passes_the_rest_are_counted() {
        let mut limit = LogLimit::every(Duration::from_secs(3600));
        assert_eq!(limit.allow(), Some(0));
        assert_eq!(limit.allow(), None);
        assert_eq!(limit.allow(), None);
        assert_eq!(limit.suppressed, 2);
        let mut open = LogLimit::every(Duration::ZERO);
        assert_eq!(open.allow(), Some(0));
        assert_eq!(open.allow(), Some(0));
    }
}
