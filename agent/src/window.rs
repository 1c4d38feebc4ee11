//! Windows over a stream of samples: size N, hop H, every sample judged exactly once.
//!
//! The first window runs when N samples have arrived and decides all of them; after that a
//! window runs every H new samples and decides only those H, the newest in it, so each of
//! them was judged with N-H samples of history behind it. At the end of a finite series
//! [`Windower::finish`] decides whatever is left. The windower tracks positions only; the
//! caller keeps the samples (a slice for replay, a ring for the live agent), and
//! [`history`] keeps the live agent's across restarts; [`config`] is the `[window]` section.

pub mod config;
pub mod history;

use thiserror::Error;

pub use config::WindowSection;

/// Size and hop of a sliding window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowSpec {
    size: usize,
    hop: usize,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WindowError {
    #[error("window size must be at least 1")]
    EmptyWindow,
    #[error("hop {hop} must be between 1 and the window size {size}")]
    BadHop { size: usize, hop: usize },
    #[error("window of {size} samples is shorter than the function's minimum of {min}")]
    TooShort { size: usize, min: usize },
}

impl WindowSpec {
    pub fn new(size: usize, hop: usize) -> Result<Self, WindowError> {
        if size == 0 {
            return Err(WindowError::EmptyWindow);
        }
        if hop == 0 || hop > size {
            return Err(WindowError::BadHop { size, hop });
        }
        Ok(Self { size, hop })
    }

    /// Refuses a window the function cannot judge.
    pub fn check_min_len(self, min: usize) -> Result<Self, WindowError> {
        if self.size < min {
            return Err(WindowError::TooShort {
                size: self.size,
                min,
            });
        }
        Ok(self)
    }

    pub fn size(self) -> usize {
        self.size
    }

    pub fn hop(self) -> usize {
        self.hop
    }
}

/// One window to run, in positions of the sample stream (0 = the first sample ever).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowPlan {
    /// First sample in the window.
    pub start: u64,
    /// One past the last sample in the window.
    pub end: u64,
    /// The verdicts of samples `decide_from..end` come from this window.
    pub decide_from: u64,
}

impl WindowPlan {
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// How many of the window's samples it decides.
    pub fn decided(&self) -> usize {
        (self.end - self.decide_from) as usize
    }
}

/// Decides when a window runs and which samples it judges.
#[derive(Clone, Debug)]
pub struct Windower {
    spec: WindowSpec,
    seen: u64,
    decided: u64,
}

impl Windower {
    pub fn new(spec: WindowSpec) -> Self {
        Self {
            spec,
            seen: 0,
            decided: 0,
        }
    }

    /// Carries on after a restart: `seen` samples are in the history, the newest
    /// `undecided` of them not yet decided by any window.
    pub fn resume(spec: WindowSpec, seen: usize, undecided: usize) -> Self {
        let seen = seen as u64;
        Self {
            spec,
            seen,
            decided: seen.saturating_sub(undecided as u64),
        }
    }

    /// Counts one more sample; answers the window to run now, if any.
    pub fn push(&mut self) -> Option<WindowPlan> {
        self.seen += 1;
        self.due()
    }

    /// The window to run now, if one is due without a new sample (after [`Self::resume`]).
    pub fn due(&mut self) -> Option<WindowPlan> {
        let size = self.spec.size as u64;
        let due = if self.decided == 0 {
            self.seen >= size
        } else {
            self.seen - self.decided >= self.spec.hop as u64
        };
        due.then(|| self.plan())
    }

    /// At the end of a finite series: the window deciding the samples still undecided.
    pub fn finish(&mut self) -> Option<WindowPlan> {
        (self.seen > self.decided).then(|| self.plan())
    }

    fn plan(&mut self) -> WindowPlan {
        let plan = WindowPlan {
            start: self.seen.saturating_sub(self.spec.size as u64),
            end: self.seen,
            decide_from: self.decided,
        };
        self.decided = self.seen;
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plans(size: usize, hop: usize, samples: u64) -> Vec<WindowPlan> {
        let mut windower = Windower::new(WindowSpec::new(size, hop).unwrap());
        let mut plans: Vec<_> = (0..samples).filter_map(|_| windower.push()).collect();
        plans.extend(windower.finish());
        plans
    }

    #[test]
    fn every_sample_is_decided_exactly_once_and_in_order() {
        for (size, hop, samples) in [(10, 3, 100), (10, 10, 35), (7, 1, 20), (5, 2, 3), (4, 4, 4)] {
            let plans = plans(size, hop, samples);
            let mut next = 0;
            for plan in &plans {
                assert_eq!(plan.decide_from, next, "{size}/{hop}/{samples}: {plans:?}");
                assert!(plan.len() <= size);
                assert!(plan.start <= plan.decide_from && plan.decide_from < plan.end);
                next = plan.end;
            }
            assert_eq!(next, samples, "{size}/{hop}/{samples}");
        }
    }

    #[test]
    fn later_windows_decide_only_their_newest_hop_with_full_history() {
        let plans = plans(10, 3, 16);
        assert_eq!(
            plans,
            [
                WindowPlan {
                    start: 0,
                    end: 10,
                    decide_from: 0
                },
                WindowPlan {
                    start: 3,
                    end: 13,
                    decide_from: 10
                },
                WindowPlan {
                    start: 6,
                    end: 16,
                    decide_from: 13
                },
            ]
        );
    }

    #[test]
    fn a_short_tail_is_decided_by_a_full_size_window() {
        let plans = plans(10, 4, 12);
        assert_eq!(
            plans.last(),
            Some(&WindowPlan {
                start: 2,
                end: 12,
                decide_from: 10
            })
        );
    }

    #[test]
    fn a_resumed_windower_waits_for_a_hop_not_a_whole_window() {
        let spec = WindowSpec::new(10, 4).unwrap();
        // 10 in the history, 1 of them undecided: the next window after 3 more.
        let mut windower = Windower::resume(spec, 10, 1);
        assert_eq!(windower.due(), None);
        assert_eq!(windower.push(), None);
        assert_eq!(windower.push(), None);
        assert_eq!(
            windower.push(),
            Some(WindowPlan {
                start: 3,
                end: 13,
                decide_from: 9
            })
        );
        // Stopped just before a window was due: it runs at once on resume.
        let mut windower = Windower::resume(spec, 10, 10);
        assert_eq!(
            windower.due(),
            Some(WindowPlan {
                start: 0,
                end: 10,
                decide_from: 0
            })
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        assert_eq!(WindowSpec::new(0, 0), Err(WindowError::EmptyWindow));
        assert_eq!(
            WindowSpec::new(5, 0),
            Err(WindowError::BadHop { size: 5, hop: 0 })
        );
        assert_eq!(
            WindowSpec::new(5, 6),
            Err(WindowError::BadHop { size: 5, hop: 6 })
        );
        assert_eq!(
            WindowSpec::new(5, 5).unwrap().check_min_len(6),
            Err(WindowError::TooShort { size: 5, min: 6 })
        );
    }
}
