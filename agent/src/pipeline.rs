//! The live stage after the sensor: samples from the ring buffer, windows over them, the
//! function on each window, verdict records into the sink. A replacement function comes
//! in from the [`watch`](crate::watch)er and is swapped in between two windows, only after
//! it has judged the latest window without error (the canary run).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use edge_function::Window;
use log::{error, info, warn};
use thiserror::Error;

use crate::function::FunctionHost;
use crate::judge::{self, NotJudged};
use crate::record::{Judgement, VerdictRecord};
use crate::sensor::{Sample, SampleReader};
use crate::sink::Sink;
use crate::support::text::short_sha;
use crate::window::history::{HistoryError, HistoryStore, Resumed};
use crate::window::{WindowPlan, WindowSpec, Windower};

/// Longest wait for a sample, so a stop request and the watchdog are served promptly.
const IDLE_WAIT: Duration = Duration::from_millis(200);

mod stats;

pub use stats::{FUEL_BUCKETS, FuelHistogram, HistogramSnapshot, PipelineStats};

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error("cannot write verdicts: {0}")]
    Sink(#[from] std::io::Error),
}

/// Names for the records.
#[derive(Clone, Debug)]
pub struct Identity {
    pub host_id: String,
    pub sensor_id: String,
}

pub struct Pipeline {
    identity: Identity,
    spec: WindowSpec,
    windower: Windower,
    history: VecDeque<Sample>,
    function: FunctionHost,
    candidates: Receiver<FunctionHost>,
    sink: Box<dyn Sink>,
    stats: Arc<PipelineStats>,
    latest_window: Option<Window>,
    /// Where the windows' samples survive a restart, when there is a state directory.
    store: Option<HistoryStore>,
    /// Store failures are logged once until the store works again.
    store_failing: bool,
}

impl Pipeline {
    /// `spec` must already fit `function`'s minimum window.
    pub fn new(
        identity: Identity,
        spec: WindowSpec,
        function: FunctionHost,
        candidates: Receiver<FunctionHost>,
        sink: Box<dyn Sink>,
        stats: Arc<PipelineStats>,
    ) -> Self {
        if let Ok(mut sha) = stats.function_sha256.lock() {
            *sha = function.module().sha256().to_owned();
        }
        Self {
            identity,
            spec,
            windower: Windower::new(spec),
            history: VecDeque::with_capacity(spec.size()),
            function,
            candidates,
            sink,
            stats,
            latest_window: None,
            store: None,
            store_failing: false,
        }
    }

    /// Resumes the windows from `resumed` and keeps them in `store` from now on.
    pub fn with_history(mut self, store: HistoryStore, resumed: Resumed) -> Self {
        let keep = resumed.samples.len().min(self.spec.size());
        let skip = resumed.samples.len() - keep;
        self.history = resumed.samples.into_iter().skip(skip).collect();
        self.windower = Windower::resume(self.spec, self.history.len(), resumed.undecided);
        if !self.history.is_empty() {
            info!(
                "resuming the windows: {} samples of history, {} not yet decided",
                self.history.len(),
                resumed.undecided.min(self.history.len())
            );
        }
        self.store = Some(store);
        self
    }

    /// Runs until `stop` is set and the buffer is empty, then decides the samples still
    /// waiting for a window and flushes the sink.
    pub fn run(mut self, reader: &SampleReader, stop: &AtomicBool) -> Result<(), PipelineError> {
        let mut batch = Vec::new();
        // A window that was due when the agent last stopped runs before anything new.
        if let Some(plan) = self.windower.due() {
            self.judge(plan)?;
        }
        loop {
            PipelineStats::count(&self.stats.heartbeat, 1);
            self.take_candidates();
            reader.drain_into(&mut batch);
            for sample in batch.drain(..) {
                self.accept(sample)?;
            }
            if stop.load(Ordering::Acquire) && reader.is_empty() {
                break;
            }
            reader.wait(IDLE_WAIT);
        }
        self.finish()
    }

    fn accept(&mut self, sample: Sample) -> Result<(), PipelineError> {
        PipelineStats::count(&self.stats.samples, 1);
        if self.history.len() == self.spec.size() {
            self.history.pop_front();
        }
        if let Some(store) = &mut self.store {
            let stored = store.push(&sample);
            self.note_store(stored);
        }
        self.history.push_back(sample);
        match self.windower.push() {
            Some(plan) => self.judge(plan),
            None => Ok(()),
        }
    }

    /// Runs the function on the window `plan` describes and emits the samples it decides.
    /// A failed window's samples are emitted all the same, marked with the error.
    fn judge(&mut self, plan: WindowPlan) -> Result<(), PipelineError> {
        let samples = self.history.make_contiguous();
        let in_window = samples.len().saturating_sub(plan.len());
        let judged = judge::judge(
            &mut self.function,
            &self.identity.sensor_id,
            &samples[in_window..],
            plan.decided(),
        );
        match &judged.outcome {
            Ok(outcome) => {
                PipelineStats::count(&self.stats.windows, 1);
                self.stats.fuel.observe(outcome.fuel_used);
                self.stats
                    .fuel_last
                    .store(outcome.fuel_used, Ordering::Relaxed);
            }
            Err(e @ NotJudged::Function(_)) => {
                PipelineStats::count(&self.stats.windows, 1);
                PipelineStats::count(&self.stats.failed_windows, 1);
                if let Ok(mut errors) = self.stats.function_errors.lock() {
                    *errors.entry(e.kind()).or_default() += 1;
                }
                warn!("window of {} samples not judged: {e}", plan.len());
            }
            Err(NotJudged::TooShort { .. }) => {}
        }
        let sha = self.function.module().sha256().to_owned();
        let judgement = Judgement {
            host_id: &self.identity.host_id,
            sensor_id: &self.identity.sensor_id,
            function_sha256: &sha,
            window: judged.bounds(),
        };
        let records: Vec<VerdictRecord> = judged
            .verdicts()
            .map(|(sample, verdict)| VerdictRecord::new(sample, &judgement, verdict))
            .collect();
        PipelineStats::count(&self.stats.anomalies, judged.anomalies() as u64);
        PipelineStats::count(&self.stats.verdicts, records.len() as u64);
        if let Some(window) = judged.into_window() {
            self.latest_window = Some(window);
        }
        self.sink.emit(&records)?;
        if let Some(store) = &mut self.store {
            store.decided_all();
        }
        Ok(())
    }

    /// Swaps in the newest candidate that survives its canary run on the latest window.
    fn take_candidates(&mut self) {
        while let Ok(candidate) = self.candidates.try_recv() {
            let new_sha = candidate.module().sha256().to_owned();
            match self.canary(candidate) {
                Ok(candidate) => {
                    info!(
                        "function swapped in: {} (was {})",
                        short_sha(&new_sha),
                        short_sha(self.function.module().sha256())
                    );
                    self.function = candidate;
                    PipelineStats::count(&self.stats.swaps, 1);
                    if let Ok(mut sha) = self.stats.function_sha256.lock() {
                        *sha = new_sha;
                    }
                }
                Err(reason) => {
                    PipelineStats::count(&self.stats.swaps_refused, 1);
                    error!(
                        "refusing function {}: {reason}; keeping {}",
                        short_sha(&new_sha),
                        short_sha(self.function.module().sha256())
                    );
                }
            }
        }
    }

    fn canary(&self, mut candidate: FunctionHost) -> Result<FunctionHost, String> {
        let min = candidate.min_window_len();
        if min > self.spec.size() {
            return Err(format!(
                "it needs windows of at least {min} samples; the window is {}",
                self.spec.size()
            ));
        }
        if let Some(window) = &self.latest_window {
            candidate
                .run(window)
                .map_err(|e| format!("canary run on the latest window failed: {e}"))?;
        }
        Ok(candidate)
    }

    /// Decides the samples still waiting for a window (judged if there are enough for
    /// the function, marked not judged if not) and flushes the sink.
    fn finish(mut self) -> Result<(), PipelineError> {
        if let Some(plan) = self.windower.finish() {
            self.judge(plan)?;
        }
        self.sink.flush()?;
        if let Some(store) = &mut self.store {
            let stored = store.commit();
            self.note_store(stored);
        }
        Ok(())
    }

    /// Counts and logs (once until it recovers) a failure of the history store; the
    /// windows go on from memory either way.
    fn note_store(&mut self, result: Result<(), HistoryError>) {
        match result {
            Ok(()) => {
                if self.store_failing {
                    info!("the window history is being saved again");
                    self.store_failing = false;
                }
            }
            Err(e) => {
                PipelineStats::count(&self.stats.history_errors, 1);
                if let Some(store) = &mut self.store {
                    store.bound_pending();
                }
                if !self.store_failing {
                    warn!("{e}; the windows go on from memory, a restart may lose them");
                    self.store_failing = true;
                }
            }
        }
    }
}
