//! The ESD half of S-H-ESD, as `anomaly_detection` 0.4 computes it, in O(n) per step.
//!
//! The crate sorts the whole remainder again on every step to find its median absolute
//! deviation: O(k·n log n) for k steps, ~95% of its time. Here the remainder is kept
//! sorted once; the deviations from its median then form two sorted runs (left of the
//! median, read leftwards, and right of it), so their median is a merge walk of n/2
//! steps. Every floating-point operation and every tie-break is the crate's, so the
//! anomalies are the same, index for index: `tests/equivalence.rs` checks that against
//! the crate itself on thousands of series.

use core::cmp::Ordering;

use crate::critical::Critical;
use crate::stl;

/// Which side of the remainder can be anomalous.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    Both,
    Upper,
    Lower,
}

/// Indices of the anomalies in `series`, most extreme first. The caller guarantees a finite
/// series of at least two periods and `period >= 2`; STL's own refusals come back as
/// `Err` with its message.
pub fn detect(
    series: &[f32],
    period: usize,
    max_anoms: f32,
    alpha: f32,
    tail: Tail,
) -> Result<Vec<usize>, &'static str> {
    detect_with(series, period, max_anoms, Critical::F32(alpha), tail)
}

/// [`detect`] with the critical values chosen (see [`crate::critical`]).
pub fn detect_with(
    series: &[f32],
    period: usize,
    max_anoms: f32,
    critical: Critical,
    tail: Tail,
) -> Result<Vec<usize>, &'static str> {
    let n = series.len();
    let seasonal = stl::seasonal(series, period, n * 10 + 1)?;

    let (lower, upper) = stl::middle_pair(&mut series.to_vec());
    let median = (lower + upper) / 2.0;
    let remainder: Vec<f32> = series
        .iter()
        .zip(&seasonal)
        .map(|(value, season)| value - (season + median))
        .collect();
    let mut indexes = sorted_indexes(&remainder);
    let mut sorted = sorted_values(&remainder, &indexes);

    let max_outliers = (n as f32 * max_anoms) as usize;
    let mut anomalies = Vec::with_capacity(max_outliers);
    let mut significant = 0;
    // The samples left are `sorted[low..]` (and `indexes[low..]`): see `take`.
    let mut low = 0;
    for i in 1..=max_outliers {
        let left = &sorted[low..];
        let centre = median_of_sorted(left);
        let sigma = 1.4826 * median_abs_deviation(left, centre);
        if sigma == 0.0 {
            break;
        }
        let (index, deviation) = most_extreme(left, centre, tail);
        let r = deviation / sigma;
        anomalies.push(take(&mut indexes, &mut sorted, &mut low, index));

        if critical.exceeded(r, n, i, tail) {
            significant = i;
        }
    }
    anomalies.truncate(significant);
    Ok(anomalies)
}

/// The probability whose t-quantile is the ESD step's critical value, with `remaining`
/// samples left, in `f32` as the crate computes it. Below about 2^-25 the subtracted term
/// is lost to rounding and `p` is 1: the critical value is infinite and no sample can
/// be flagged, whatever the data.
pub fn critical_p(alpha: f32, remaining: usize, tail: Tail) -> f32 {
    match tail {
        Tail::Both => 1.0 - alpha / (2.0 * remaining as f32),
        Tail::Upper | Tail::Lower => 1.0 - alpha / remaining as f32,
    }
}

/// Whether `alpha` can flag anything in a window of `n`: the first step, with the most
/// samples left, has the smallest term, so if its `p` is below 1 every step's is.
pub fn honours_alpha(alpha: f32, n: usize, tail: Tail) -> bool {
    critical_p(alpha, n, tail) < 1.0
}

/// The smallest `alpha` [`honours_alpha`] for a window of `n`, near enough for a message:
/// `n`·2^-24 for both tails, half that for one (2^-25 is half an `f32` step below 1).
pub fn min_alpha(n: usize, tail: Tail) -> f64 {
    let step = match tail {
        Tail::Both => 2f64.powi(-24),
        Tail::Upper | Tail::Lower => 2f64.powi(-25),
    };
    n as f64 * step
}

/// Positions of `values` in ascending order, equal values in their original order: the
/// crate's stable sort of indices. (Also its unstable sort of the values themselves, as
/// equal values are interchangeable.) One sort serves every use, so the wasm build
/// carries one copy of the sorting code.
pub(crate) fn sorted_indexes(values: &[f32]) -> Vec<usize> {
    let mut indexes: Vec<usize> = (0..values.len()).collect();
    indexes.sort_unstable_by(|&a, &b| ascending(&values[a], &values[b]).then(a.cmp(&b)));
    indexes
}

/// Takes position `index` of the samples left (`indexes[*low..]`, `sorted[*low..]`) out,
/// the rest kept in order, and gives its index. ESD takes from the ends: the last is
/// popped; one at the low end (or a few places in, past equal deviations) by shifting
/// those below it up one place and starting the samples left one later, so the bulk never
/// moves, as it would with `Vec::remove`.
fn take(indexes: &mut Vec<usize>, sorted: &mut Vec<f32>, low: &mut usize, index: usize) -> usize {
    let at = *low + index;
    if at + 1 == sorted.len() {
        sorted.pop();
        return indexes.pop().unwrap_or_default();
    }
    indexes[*low..=at].rotate_right(1);
    sorted[*low..=at].rotate_right(1);
    *low += 1;
    indexes[*low - 1]
}

fn sorted_values(values: &[f32], indexes: &[usize]) -> Vec<f32> {
    indexes.iter().map(|&i| values[i]).collect()
}

/// The series is finite, so partial order is total here.
fn ascending(a: &f32, b: &f32) -> Ordering {
    a.partial_cmp(b).unwrap_or(Ordering::Equal)
}

fn median_of_sorted(sorted: &[f32]) -> f32 {
    (sorted[(sorted.len() - 1) / 2] + sorted[sorted.len() / 2]) / 2.0
}

/// The deviation each tail is judged by, as the crate computes it.
fn deviation(value: f32, centre: f32, tail: Tail) -> f32 {
    match tail {
        Tail::Both => (value - centre).abs(),
        Tail::Upper => value - centre,
        Tail::Lower => centre - value,
    }
}

/// The position of the largest deviation and the deviation; among equals the last
/// position, as `Iterator::max_by` picks. Rounded subtraction is monotonic, so over
/// sorted values the deviation only falls then rises: the maximum sits at an end.
fn most_extreme(sorted: &[f32], centre: f32, tail: Tail) -> (usize, f32) {
    let last = sorted.len() - 1;
    let high = deviation(sorted[last], centre, tail);
    let low = deviation(sorted[0], centre, tail);
    if tail != Tail::Lower && ascending(&high, &low) != Ordering::Less {
        return (last, high);
    }
    // The maximum is at the low end; the last of a run of equal deviations wins.
    let run = sorted[1..]
        .iter()
        .take_while(|&&value| deviation(value, centre, tail) == low)
        .count();
    (run, low)
}

/// The median of `|v - centre|` over sorted values, without sorting the deviations:
/// left of `centre` they grow leftwards, right of it rightwards, so the k-th smallest is
/// the k-th of two sorted runs, found by bisection. `median_of_sorted` of the deviations,
/// value for value (which of equal deviations sits at a rank does not change its value).
fn median_abs_deviation(sorted: &[f32], centre: f32) -> f32 {
    let len = sorted.len();
    let split = sorted.partition_point(|&value| value - centre < 0.0);
    let lower_rank = (len - 1) / 2;
    let lower = kth_deviation(sorted, centre, split, lower_rank + 1);
    let upper = if len / 2 == lower_rank {
        lower
    } else {
        kth_deviation(sorted, centre, split, lower_rank + 2)
    };
    (lower + upper) / 2.0
}

/// The `k`-th smallest (from 1, `k <= sorted.len()`) of `|v - centre|`, where the
/// deviations of `sorted[..split]` grow leftwards and those of `sorted[split..]` rightwards.
fn kth_deviation(sorted: &[f32], centre: f32, split: usize, k: usize) -> f32 {
    let (left_len, right_len) = (split, sorted.len() - split);
    let left = |i: usize| (sorted[split - 1 - i] - centre).abs();
    let right = |i: usize| (sorted[split + i] - centre).abs();
    // The fewest the k smallest take from the left run: the first count whose next left
    // deviation is not below the last right one taken.
    let (mut from, mut to) = (k.saturating_sub(right_len), k.min(left_len));
    while from < to {
        let taken = from + (to - from) / 2;
        if left(taken) < right(k - taken - 1) {
            from = taken + 1;
        } else {
            to = taken;
        }
    }
    match (from, k - from) {
        (0, from_right) => right(from_right - 1),
        (from_left, 0) => left(from_left - 1),
        (from_left, from_right) => left(from_left - 1).max(right(from_right - 1)),
    }
}
