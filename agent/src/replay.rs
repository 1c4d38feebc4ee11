//! `replay`: a recorded series through a function, window by window, exactly as the live
//! agent would judge it, one NDJSON verdict line per sample in input order.

use std::io::Write;
use std::time::Duration;

use edge_function::Window;
use serde::Serialize;
use thiserror::Error;

use crate::function::FunctionHost;
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
    /// Wall time of each window that ran, in order.
    pub window_times: Vec<Duration>,
    pub max_fuel: u64,
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
        run_window(host, series, sensor_id, plan, out, &mut summary)?;
        on_window(plan.end as usize);
    }
    out.flush()?;
    Ok(summary)
}

fn run_window(
    host: &mut FunctionHost,
    series: &Series,
    sensor_id: &str,
    plan: WindowPlan,
    out: &mut dyn Write,
    summary: &mut ReplaySummary,
) -> Result<(), ReplayError> {
    let range = plan.start as usize..plan.end as usize;
    let window = Window::from_air_quality(
        sensor_id,
        series.timestamps[range.clone()].to_vec(),
        series.values[range].to_vec(),
    );
    let result = host.run(&window);
    summary.windows += 1;
    let error = match &result {
        Ok(outcome) => {
            summary
                .window_times
                .push(outcome.guest_time + outcome.host_time);
            summary.max_fuel = summary.max_fuel.max(outcome.fuel_used);
            None
        }
        Err(error) => {
            summary.failed_windows += 1;
            Some(error.to_string())
        }
    };
    let sha256 = host.module().sha256();
    for index in plan.decide_from..plan.end {
        let verdict = result
            .as_ref()
            .ok()
            .and_then(|outcome| outcome.verdicts.get((index - plan.start) as usize).copied());
        if verdict.is_some_and(|v| v.is_anomaly) {
            summary.anomalies += 1;
        }
        let line = VerdictLine {
            index,
            timestamp: timestamp::format(series.timestamps[index as usize]),
            value: series.values[index as usize],
            is_anomaly: verdict.map(|v| v.is_anomaly),
            score: verdict.and_then(|v| v.score),
            function_sha256: sha256,
            error: error.as_deref(),
        };
        serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
