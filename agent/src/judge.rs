//! The one judge, for the live agent and for `replay` alike: a window's samples go to the
//! function as one [`Window`], and its answer (or its error) becomes one verdict for each
//! sample the window decides. Both callers build their output from [`Judged`], so a replay
//! judges exactly as the live agent would; a change to how verdicts are assigned goes here.

use std::sync::Arc;

use edge_function::{Verdict, Window};
use thiserror::Error;

use crate::function::{FunctionError, FunctionHost, Outcome};
use crate::sensor::Sample;
use crate::support::text;

/// The most bytes of a function error's text a window keeps for its verdicts.
pub const MAX_ERROR_BYTES: usize = 1024;

/// Why a window's samples have no verdicts.
#[derive(Debug, Error)]
pub enum NotJudged {
    #[error(transparent)]
    Function(#[from] FunctionError),
    #[error("not judged: the window has {len} samples, fewer than the function's minimum of {min}")]
    TooShort { len: usize, min: usize },
}

impl NotJudged {
    /// A short stable name for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Function(e) => e.kind(),
            Self::TooShort { .. } => "window_too_short",
        }
    }
}

/// The window the function sees: every channel of every sample, in order.
pub fn window_of<'a>(sensor_id: &str, samples: impl IntoIterator<Item = &'a Sample>) -> Window {
    let samples = samples.into_iter();
    let capacity = samples.size_hint().0;
    let mut window = Window {
        sensor_id: sensor_id.to_owned(),
        timestamps: Vec::with_capacity(capacity),
        air_quality: Vec::with_capacity(capacity),
        temperature: Vec::with_capacity(capacity),
        humidity: Vec::with_capacity(capacity),
        pressure: Vec::with_capacity(capacity),
        gas_resistance: Vec::with_capacity(capacity),
    };
    for sample in samples {
        window.timestamps.push(sample.timestamp);
        window.air_quality.push(sample.air_quality);
        window.temperature.push(sample.temperature);
        window.humidity.push(sample.humidity);
        window.pressure.push(sample.pressure);
        window.gas_resistance.push(sample.gas_resistance);
    }
    window
}

/// One window's judgement: the function's outcome and the samples it decides.
#[derive(Debug)]
pub struct Judged<'s> {
    /// Every sample in the window, oldest first; the last `decided` of them are decided.
    samples: &'s [Sample],
    decided: usize,
    /// What the function answered; `Err` when the window was not judged.
    pub outcome: Result<Outcome, NotJudged>,
    /// The error's text, clipped once for the whole window and shared by its records.
    error: Option<Arc<str>>,
    /// What the function was given; `None` when the window was too short to run.
    window: Option<Window>,
}

/// Runs `host` on `samples` (the whole window, oldest first) and maps its answer onto the
/// newest `decided` of them. A window shorter than the function's minimum is not run: its
/// samples are decided as not judged, with the reason.
pub fn judge<'s>(
    host: &mut FunctionHost,
    sensor_id: &str,
    samples: &'s [Sample],
    decided: usize,
) -> Judged<'s> {
    let decided = decided.min(samples.len());
    let min = host.min_window_len();
    let (outcome, window) = if samples.len() < min {
        let too_short = NotJudged::TooShort {
            len: samples.len(),
            min,
        };
        (Err(too_short), None)
    } else {
        let window = window_of(sensor_id, samples);
        (host.run(&window).map_err(NotJudged::from), Some(window))
    };
    let error = outcome
        .as_ref()
        .err()
        .map(|e| Arc::from(text::clip(&e.to_string(), MAX_ERROR_BYTES)));
    Judged {
        samples,
        decided,
        outcome,
        error,
        window,
    }
}

impl<'s> Judged<'s> {
    /// The decided samples with their verdicts, oldest first. A verdict the function did
    /// not give (it answered too few) is an error for that sample, never a guess.
    pub fn verdicts(&self) -> impl Iterator<Item = (&'s Sample, Result<Verdict, Arc<str>>)> + '_ {
        let first = self.samples.len() - self.decided;
        self.samples[first..]
            .iter()
            .enumerate()
            .map(move |(offset, sample)| {
                let verdict = match (&self.outcome, &self.error) {
                    (Ok(outcome), _) => outcome
                        .verdicts
                        .get(first + offset)
                        .copied()
                        .ok_or_else(|| Arc::from("no verdict for this sample")),
                    (Err(_), Some(reason)) => Err(reason.clone()),
                    (Err(_), None) => Err(Arc::from("not judged")),
                };
                (sample, verdict)
            })
    }

    /// How many decided samples were flagged.
    pub fn anomalies(&self) -> usize {
        self.verdicts()
            .filter(|(_, verdict)| verdict.as_ref().is_ok_and(|v| v.is_anomaly))
            .count()
    }

    pub fn decided(&self) -> usize {
        self.decided
    }

    /// Timestamps (Unix ms) of the window's first and last samples.
    pub fn bounds(&self) -> (i64, i64) {
        (
            self.samples.first().map_or(0, |s| s.timestamp),
            self.samples.last().map_or(0, |s| s.timestamp),
        )
    }

    /// The window the function was given, if it ran.
    pub fn into_window(self) -> Option<Window> {
        self.window
    }

    /// The error, clipped, when the window was not judged.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}
