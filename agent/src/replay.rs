//! `replay`: a recorded series through a function, window by window, exactly as the live
//! agent would judge it, one NDJSON verdict line per sample in input order.

pub mod labels;

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

use crate::function::FunctionHost;
use crate::judge;
use crate::sensor::Sample;
use crate::sensor::identity::RunId;
use crate::series::Series;
use crate::support::timestamp;
use crate::window::{WindowError, WindowPlan, WindowSpec, Windower};

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error(transparent)]
    Window(#[from] WindowError),
    #[error("the series has {len} samples, fewer than the function's minimum window of {min}")]
    SeriesTooShort { len: usize, min: usize },
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// What a replay did, for the summary line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplaySummary {
    pub samples: usize,
    pub windows: usize,
    pub failed_windows: usize,
    pub anomalies: usize,
    /// Positions (0 = the first row) of the flagged samples, in order.
    pub flagged: Vec<u64>,
    /// For each of `flagged`, the position of the last sample of the window that decided
    /// it: when the live agent would have emitted it.
    pub flagged_decided_at: Vec<u64>,
    /// Wall time of each window that ran, in order.
    pub window_times: Vec<Duration>,
    pub max_fuel: u64,
    /// The first window that failed: the positions of its samples (first, last) and why,
    /// clipped (the function's text), so the summary can say it.
    pub first_failure: Option<FirstFailure>,
}

/// Where and why a replay's first failed window failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirstFailure {
    /// Positions (0 = the first row) of the window's first and last samples.
    pub samples: (u64, u64),
    /// The reason, as each of its samples' records carry it (clipped, not yet escaped).
    pub reason: String,
}

impl ReplaySummary {
    pub fn median_window_time(&self) -> Duration {
        let mut times = self.window_times.clone();
        times.sort_unstable();
        times.get(times.len() / 2).copied().unwrap_or_default()
    }
}

/// One output line.
#[derive(Serialize)]
struct VerdictLine<'a> {
    index: u64,
    timestamp: String,
    value: f32,
    /// `null` when the window failed; `error` then says why.
    is_anomaly: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f32>,
    function_sha256: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// Replays `series` through `host`. `window` of `None` judges the whole series as one
/// window. `on_window` hears how many samples are decided after each window.
pub fn replay(
    host: &mut FunctionHost,
    series: &Series,
    window: Option<WindowSpec>,
    sensor_id: &str,
    out: &mut dyn Write,
    on_window: &mut dyn FnMut(usize),
) -> Result<ReplaySummary, ReplayError> {
    let min = host.min_window_len();
    if series.len() < min {
        return Err(ReplayError::SeriesTooShort {
            len: series.len(),
            min,
        });
    }
    let spec = match window {
        Some(spec) => spec.check_min_len(min)?,
        None => WindowSpec::new(series.len(), series.len())?,
    };

    let samples: Vec<Sample> = series
        .timestamps
        .iter()
        .zip(&series.values)
        .zip(0..)
        .map(|((&timestamp, &value), seq)| {
            Sample::air_quality_only(RunId::from_raw(0), seq, timestamp, value)
        })
        .collect();
    let mut summary = ReplaySummary {
        samples: series.len(),
        ..ReplaySummary::default()
    };
    let mut windower = Windower::new(spec);
    let plans = (0..series.len())
        .filter_map(|_| windower.push())
        .collect::<Vec<_>>()
        .into_iter()
        .chain(windower.finish());
    for plan in plans {
        run_window(host, &samples, sensor_id, plan, out, &mut summary)?;
        on_window(plan.end as usize);
    }
    out.flush()?;
    Ok(summary)
}

fn run_window(
    host: &mut FunctionHost,
    samples: &[Sample],
    sensor_id: &str,
    plan: WindowPlan,
    out: &mut dyn Write,
    summary: &mut ReplaySummary,
) -> Result<(), ReplayError> {
    let in_window = samples
        .get(plan.start as usize..plan.end as usize)
        .unwrap_or_default();
    let judged = judge::judge(host, sensor_id, in_window, plan.decided());
    summary.windows += 1;
    match &judged.outcome {
        Ok(outcome) => {
            summary
                .window_times
                .push(outcome.guest_time + outcome.host_time);
            summary.max_fuel = summary.max_fuel.max(outcome.fuel_used);
        }
        Err(_) => {
            summary.failed_windows += 1;
            if summary.first_failure.is_none() {
                summary.first_failure = Some(FirstFailure {
                    samples: (plan.start, plan.end.saturating_sub(1)),
                    reason: judged.error().unwrap_or("not judged").to_owned(),
                });
            }
        }
    }
    let sha256 = host.module().sha256();
    for (index, (sample, verdict)) in (plan.decide_from..).zip(judged.verdicts()) {
        let judged_ok = verdict.as_ref().ok();
        if judged_ok.is_some_and(|v| v.is_anomaly) {
            summary.anomalies += 1;
            summary.flagged.push(index);
            summary.flagged_decided_at.push(plan.end.saturating_sub(1));
        }
        let line = VerdictLine {
            index,
            timestamp: timestamp::format(sample.timestamp),
            value: sample.air_quality,
            is_anomaly: judged_ok.map(|v| v.is_anomaly),
            score: judged_ok.and_then(|v| v.score),
            function_sha256: sha256,
            error: verdict.as_ref().err().map(|e| &**e),
        };
        serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
