//! Seasonal Hybrid ESD (Twitter's S-H-ESD) anomaly detection as an edge-agent function:
//! `anomaly_detection` 0.4's algorithm, with the same results in a fraction of the time
//! (see [`esd`]).
//!
//! It judges the window's `air_quality` series: STL removes the seasonal component (one
//! season is `period` samples), then a generalised ESD test on the median-centred
//! remainder flags at most `max_anoms` of the samples at significance `alpha`.
//!
//! | parameter | default | meaning |
//! |---|---|---|
//! | `period` | 24 | samples per season (≥ 2); a window needs at least two seasons |
//! | `max_anoms` | 0.1 | most anomalies, as a fraction of the window; clamped to (0, 0.49] |
//! | `alpha` | 0.05 | significance level of the ESD test, in (0, 1); below about 6e-8 × the window length (3e-8 with one tail) `f32` critical values cannot serve it (see `critical`) |
//! | `direction` | `both` | `both`, `pos` (only highs) or `neg` (only lows) |
//! | `longterm_period` | none | judge the window in pieces of this many samples (≥ 2 × `period`), each with its own median: R's `longterm` piecewise median, for trends ([`options::pieces`]) |
//! | `threshold` | `none` | keep only flags at or above the `med_max`, `p95` or `p99` of the per-season maxima |
//! | `critical` | `auto` | critical values in `f32` (the crate's), `f64`, or `auto`: `f32` unless it cannot honour `alpha` on the window, then `f64` |
//!
//! The crate panics on `period < 2` and on infinite values; this function refuses both
//! (and NaN, and too-short windows) with an [`Error`] before any arithmetic, so a wasm
//! build never traps on data.
//!
//! Licence: GPL-3.0-or-later, as `anomaly_detection` is.

pub mod critical;
pub mod esd;
pub mod options;
pub mod stl;

use edge_function::{Error, Function, Params, Verdict, Verdicts, Window, register};
use esd::Tail;

pub const DEFAULT_PERIOD: usize = 24;
pub const DEFAULT_MAX_ANOMS: f32 = 0.1;
pub const DEFAULT_ALPHA: f32 = 0.05;
/// Twitter's R package refuses to flag half the series or more: past that the "normal"
/// majority the test leans on is gone.
pub const MAX_ANOMS_CEILING: f32 = 0.49;
/// Above this magnitude STL's weighted sums can overflow `f32` into NaN, on which the
/// crate panics; no air-quality value comes near it.
const MAX_MAGNITUDE: f32 = 1e30;

const PARAMETERS: &[&str] = &[
    "period",
    "max_anoms",
    "alpha",
    "direction",
    "longterm_period",
    "threshold",
    "critical",
];

/// S-H-ESD with its parameters checked.
#[derive(Clone, Debug)]
pub struct SeasonalHybridEsd {
    period: usize,
    max_anoms: f32,
    alpha: f32,
    /// `alpha` as the operator wrote it, for the message refusing a window it cannot
    /// serve.
    alpha_text: String,
    tail: Tail,
    options: options::Options,
}

impl Function for SeasonalHybridEsd {
    fn from_params(params: &Params) -> Result<Self, Error> {
        params.only(PARAMETERS)?;

        // Messages quote the operator's own text: formatting floats would add ~20 KB of
        // wasm for no gain.
        let got = |name: &str| params.raw(name).unwrap_or_default();
        let period = params.get::<usize>("period")?.unwrap_or(DEFAULT_PERIOD);
        if period < 2 {
            return Err(Error::new(format!(
                "parameter `period` must be at least 2 samples per season, got {}",
                got("period")
            )));
        }

        let max_anoms = params.get::<f32>("max_anoms")?.unwrap_or(DEFAULT_MAX_ANOMS);
        if max_anoms.is_nan() || max_anoms <= 0.0 {
            return Err(Error::new(format!(
                "parameter `max_anoms` must be a fraction above 0 (above 0.49 it is clamped to 0.49), got {}",
                got("max_anoms")
            )));
        }

        let alpha = params.get::<f32>("alpha")?.unwrap_or(DEFAULT_ALPHA);
        if alpha.is_nan() || alpha <= 0.0 || alpha >= 1.0 {
            return Err(Error::new(format!(
                "parameter `alpha` must be strictly between 0 and 1, got {}",
                got("alpha")
            )));
        }

        let tail = match params.raw("direction").map(str::trim) {
            None | Some("both") => Tail::Both,
            Some("pos") => Tail::Upper,
            Some("neg") => Tail::Lower,
            Some(other) => {
                return Err(Error::new(format!(
                    "parameter `direction` must be `both`, `pos` or `neg`, got `{other}`"
                )));
            }
        };

        let function = Self {
            period,
            max_anoms: max_anoms.min(MAX_ANOMS_CEILING),
            alpha,
            alpha_text: params.raw("alpha").unwrap_or("0.05").trim().to_owned(),
            tail,
            options: options::Options::from_params(params, period)?,
        };
        // An alpha too small for even the shortest window it accepts can never flag
        // anything: refuse it now rather than judge every window "no anomaly".
        function.check_alpha(function.min_window_len())?;
        Ok(function)
    }

    fn min_window_len(&self) -> usize {
        self.period.saturating_mul(2)
    }

    fn execute(&self, window: Window) -> Result<Verdicts, Error> {
        let series = &window.air_quality;
        if series.len() != window.timestamps.len() {
            return Err(Error::new(format!(
                "window has {} timestamps but {} air-quality values",
                window.timestamps.len(),
                series.len()
            )));
        }
        if series.len() < self.min_window_len() {
            return Err(Error::new(format!(
                "window of {} samples is shorter than two seasons ({} samples with period {})",
                series.len(),
                self.min_window_len(),
                self.period
            )));
        }
        if let Some((index, value)) = series
            .iter()
            .enumerate()
            .find(|(_, v)| v.is_nan() || v.abs() > MAX_MAGNITUDE)
        {
            let what = if value.is_nan() {
                "NaN"
            } else if value.is_infinite() {
                "infinite"
            } else {
                "beyond ±1e30"
            };
            return Err(Error::new(format!(
                "air_quality[{index}] is {what}: S-H-ESD needs finite values of magnitude at most 1e30"
            )));
        }

        self.check_alpha(series.len())?;
        let anomalies = options::detect(
            series,
            self.period,
            self.max_anoms,
            self.alpha,
            self.tail,
            &self.options,
        )
        .map_err(|e| Error::new(format!("S-H-ESD: {e}")))?;
        let mut verdicts = vec![Verdict::flag(false); series.len()];
        for index in anomalies {
            if let Some(verdict) = verdicts.get_mut(index) {
                verdict.is_anomaly = true;
            }
        }
        Ok(verdicts)
    }
}

impl SeasonalHybridEsd {
    /// Refuses a window of `n` on which `alpha` could flag nothing: the test's critical
    /// values are `f32` (as the crate's are), and with `alpha` below about `n`·6e-8
    /// (`n`·3e-8 for one tail) the first step's probability rounds to 1, so every
    /// critical value is infinite. Silently answering "no anomaly" would look like a
    /// clean series; the message names the usable range instead.
    fn check_alpha(&self, n: usize) -> Result<(), Error> {
        let n = self.options.longest_run(n);
        if self.options.precision != critical::Precision::F32 {
            return self.check_alpha64(n);
        }
        if esd::honours_alpha(self.alpha, n, self.tail) {
            return Ok(());
        }
        let (least, per_sample) = match self.tail {
            Tail::Both => (esd::min_alpha(n, self.tail), "6e-8"),
            Tail::Upper | Tail::Lower => (esd::min_alpha(n, self.tail), "3e-8"),
        };
        Err(Error::new(format!(
            "parameter `alpha` = {} cannot be honoured on a window of {n} samples: the \
             test's f32 critical values round to certainty below about {per_sample} x the \
             window length, so nothing could be flagged; use alpha in [{}, 1) for this \
             window, or shorter windows",
            self.alpha_text,
            scientific_up(least)
        )))
    }
}

impl SeasonalHybridEsd {
    /// [`Self::check_alpha`] for `f64` critical values, whose limit is about 1e-16 x the
    /// window length: only an absurd `alpha` reaches it.
    fn check_alpha64(&self, n: usize) -> Result<(), Error> {
        if critical::honours_alpha64(f64::from(self.alpha), n, self.tail) {
            return Ok(());
        }
        Err(Error::new(format!(
            "parameter `alpha` = {} cannot be honoured on a window of {n} samples even with \
             f64 critical values: nothing could be flagged; use alpha of at least {}",
            self.alpha_text,
            scientific_up(n as f64 * f64::EPSILON)
        )))
    }
}

/// `x` (positive, finite) in two significant digits, rounded up (`1.3e-4`): a bound a
/// reader can copy. Integers only: formatting floats would add ~20 KB of wasm.
fn scientific_up(x: f64) -> String {
    if !(x.is_finite() && x > 0.0) {
        return "?".into();
    }
    let (mut mantissa, mut exponent) = (x, 0i32);
    while mantissa >= 10.0 {
        mantissa /= 10.0;
        exponent += 1;
    }
    while mantissa < 1.0 {
        mantissa *= 10.0;
        exponent -= 1;
    }
    // 10..=100 tenths; 100 carries into the exponent.
    let mut tenths = (mantissa * 10.0).ceil() as u32;
    if tenths >= 100 {
        tenths = 10;
        exponent += 1;
    }
    format!("{}.{}e{}", tenths / 10, tenths % 10, exponent)
}

register!(SeasonalHybridEsd);
