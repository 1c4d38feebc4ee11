//! Labelled anomaly windows and a replay's score against them (`replay --labels`).
//!
//! Labels are a JSON list of `[start, end]` times, as the public anomaly benchmarks
//! publish them (NAB's `combined_windows.json` maps each file name to such a list; that
//! form is read too, taking the input file's entry). Times are any form a series' CSV
//! takes ([`crate::series::parse_timestamp`]); both ends are inclusive.
//!
//! The score is NAB's notion of a hit, without its weighting: a window is detected when at
//! least one flag falls inside it; precision is the share of flags inside some window. The
//! delay of a detected window is from its start to its first flag, both as that sample's
//! time and as the live agent would emit it: when the window of samples that decided it
//! closes, the time of that window's last sample.

use std::io::Read;

use serde_json::Value;
use thiserror::Error;

use super::ReplaySummary;
use crate::series::{Series, parse_timestamp};

/// The largest labels file read: NAB's file for all 58 series is 19 KB.
pub const MAX_LABELS_BYTES: u64 = 4 << 20;

/// One labelled window, in Unix milliseconds, both ends inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Labelled {
    pub start: i64,
    pub end: i64,
}

#[derive(Debug, Error)]
pub enum LabelsError {
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    #[error("it is larger than {MAX_LABELS_BYTES} bytes")]
    TooLarge,
    #[error("it is not JSON: {0}")]
    Json(String),
    #[error(
        "it must be a JSON list of [start, end] times, or an object mapping the input's file \
         name to one{0}"
    )]
    Shape(String),
    #[error("entry {index} ({shown}): {reason}")]
    Entry {
        /// 0-based position in the list.
        index: usize,
        /// The entry as written, escaped and clipped.
        shown: String,
        reason: String,
    },
}

/// Reads labels, at most [`MAX_LABELS_BYTES`]. `input_name` is the series' file name, to
/// pick its entry from an object of several.
pub fn read_labels(
    input: impl Read,
    input_name: Option<&str>,
) -> Result<Vec<Labelled>, LabelsError> {
    let mut text = Vec::new();
    input
        .take(MAX_LABELS_BYTES.saturating_add(1))
        .read_to_end(&mut text)?;
    if text.len() as u64 > MAX_LABELS_BYTES {
        return Err(LabelsError::TooLarge);
    }
    let json: Value =
        serde_json::from_slice(&text).map_err(|e| LabelsError::Json(e.to_string()))?;
    let list = match &json {
        Value::Array(list) => list,
        Value::Object(files) => {
            let wanted = input_name.unwrap_or_default();
            let found = files.iter().find(|(key, _)| {
                !wanted.is_empty()
                    && std::path::Path::new(key.as_str())
                        .file_name()
                        .is_some_and(|name| name == wanted)
            });
            match found.map(|(_, value)| value) {
                Some(Value::Array(list)) => list,
                _ => {
                    return Err(LabelsError::Shape(format!(
                        "; it is an object of {} entries, none a list named {:?}",
                        files.len(),
                        crate::support::text::escape(wanted, 80)
                    )));
                }
            }
        }
        _ => return Err(LabelsError::Shape(String::new())),
    };
    list.iter()
        .enumerate()
        .map(|(index, entry)| {
            let fail = |reason: String| LabelsError::Entry {
                index,
                shown: crate::support::text::escape(&entry.to_string(), 80),
                reason,
            };
            let pair = match entry.as_array().map(Vec::as_slice) {
                Some([start, end]) => [start, end],
                _ => return Err(fail("not a [start, end] pair".into())),
            };
            let [start, end] = pair.map(|time| match time {
                Value::String(text) => parse_timestamp(text.trim()),
                Value::Number(number) => parse_timestamp(&number.to_string()),
                _ => Err("a time must be a string or a number".into()),
            });
            let (start, end) = (start.map_err(&fail)?, end.map_err(&fail)?);
            if end < start {
                return Err(fail("its end is before its start".into()));
            }
            Ok(Labelled { start, end })
        })
        .collect()
}

/// A replay scored against labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Score {
    pub samples: usize,
    pub windows: usize,
    pub detected: usize,
    pub flags: usize,
    /// Flags inside some labelled window.
    pub flags_inside: usize,
    /// Per detected window, milliseconds from its start to its first flag's time.
    pub sample_delays: Vec<i64>,
    /// Per detected window, milliseconds from its start to when the live agent would
    /// emit that flag (the last sample of the window that decided it).
    pub emit_delays: Vec<i64>,
}

impl Score {
    /// Flags inside windows over all flags; `None` without flags.
    pub fn precision(&self) -> Option<f64> {
        (self.flags > 0).then(|| self.flags_inside as f64 / self.flags as f64)
    }

    pub fn flags_per_thousand(&self) -> f64 {
        if self.samples == 0 {
            return 0.0;
        }
        self.flags as f64 * 1000.0 / self.samples as f64
    }
}

/// Scores `summary`, a replay of `series`, against `labels`.
pub fn score(series: &Series, summary: &ReplaySummary, labels: &[Labelled]) -> Score {
    let time = |position: u64| {
        usize::try_from(position)
            .ok()
            .and_then(|i| series.timestamps.get(i))
            .copied()
    };
    let flags: Vec<(i64, i64)> = summary
        .flagged
        .iter()
        .zip(&summary.flagged_decided_at)
        .filter_map(|(&flag, &decided)| Some((time(flag)?, time(decided)?)))
        .collect();
    let inside = |at: i64| labels.iter().any(|w| (w.start..=w.end).contains(&at));
    let mut score = Score {
        samples: series.len(),
        windows: labels.len(),
        flags: flags.len(),
        flags_inside: flags.iter().filter(|(at, _)| inside(*at)).count(),
        ..Score::default()
    };
    for window in labels {
        // The first flag by sample time; the series may be out of order.
        let first = flags
            .iter()
            .filter(|(at, _)| (window.start..=window.end).contains(at))
            .min_by_key(|(at, _)| *at);
        if let Some(&(at, emitted)) = first {
            score.detected += 1;
            score.sample_delays.push(at.saturating_sub(window.start));
            score.emit_delays.push(emitted.saturating_sub(window.start));
        }
    }
    score
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<Labelled>, LabelsError> {
        read_labels(text.as_bytes(), Some("a.csv"))
    }

    #[test]
    fn reads_lists_and_nab_objects() {
        let list = r#"[["2014-02-19 10:50:00.000000", "2014-02-20 03:30:00.000000"], [1714564800, 1714564860]]"#;
        let labels = read(list).unwrap();
        assert_eq!(labels.len(), 2);
        assert_eq!(
            labels[1],
            Labelled {
                start: 1_714_564_800_000,
                end: 1_714_564_860_000
            }
        );
        let nab = format!(r#"{{"realKnownCause/a.csv": {list}, "other/b.csv": []}}"#);
        assert_eq!(read(&nab).unwrap(), labels);
    }

    #[test]
    fn bad_entries_name_the_entry() {
        let cases = [
            (
                r#"[[1, 2], [5, 3]]"#,
                "entry 1 ([5,3]): its end is before its start",
            ),
            (r#"[["2024-13-01 00:00:00", 2]]"#, "entry 0"),
            (
                r#"[[1, 2, 3]]"#,
                "entry 0 ([1,2,3]): not a [start, end] pair",
            ),
            (r#"[[true, 2]]"#, "a time must be a string or a number"),
            (r#"{"b.csv": []}"#, "none a list named \"a.csv\""),
            (r#"[[1, 2]"#, "not JSON"),
            (r#""x""#, "must be a JSON list"),
        ];
        for (text, expected) in cases {
            let err = read(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn scores_hits_precision_and_both_delays() {
        let series = Series {
            timestamps: (0..100).map(|i| i * 1000).collect(),
            values: vec![0.0; 100],
            ..Series::default()
        };
        let summary = ReplaySummary {
            flagged: vec![5, 12, 15, 60],
            flagged_decided_at: vec![19, 19, 19, 79],
            ..ReplaySummary::default()
        };
        let labels = [
            Labelled {
                start: 10_000,
                end: 20_000,
            },
            Labelled {
                start: 40_000,
                end: 50_000,
            },
        ];
        let score = score(&series, &summary, &labels);
        assert_eq!((score.windows, score.detected), (2, 1));
        assert_eq!((score.flags, score.flags_inside), (4, 2));
        assert_eq!(score.precision(), Some(0.5));
        assert_eq!(score.flags_per_thousand(), 40.0);
        assert_eq!(score.sample_delays, [2_000]);
        assert_eq!(score.emit_delays, [9_000]);
    }
}
