//! The live stage after the sensor: samples from the ring buffer, windows over them, the
//! function on each window, verdict records into the sink. A replacement function comes
//! in from the [`watch`](crate::watch)er and is swapped in between two windows, only after
//! it has judged the latest window without error (the canary run). It is then on
//! probation for its first [`PROBATION_WINDOWS`] windows: if [`PROBATION_FAILURES`] of
//! them fail it is rolled back to the function it replaced (or the last good copy); if
//! not, it becomes the last good one (`function::last_good`). The swap policy is
//! `take_candidates`, `canary` and `review_probation`.
//!
//! Windows are kept per sensor ([`Sample::sensor_id`], the configured one when a sample
//! names none): each sensor has its own [`Windower`] and history, so a sample is judged
//! once, in its own sensor's series, and its records name that sensor. The number of
//! series is bounded ([`Pipeline::with_max_sensors`]); at the bound the series seen least
//! recently is finished (its undecided samples decided by a last window) and dropped,
//! counted in `PipelineStats::sensors_evicted`. The function, its swaps and probation are
//! shared by every series. A change to how series are kept goes in `accept` / `series_for`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use edge_function::Window;
use log::{error, info, warn};
use thiserror::Error;

use crate::function::FunctionHost;
use crate::function::last_good::LastGood;
use crate::function::{FunctionError, OutcomeKind, SwapStats};
use crate::judge::{self, NotJudged};
use crate::record::{Judgement, VerdictRecord};
use crate::sensor::{Sample, SampleReader};
use crate::sink::Sink;
use crate::support::text::short_sha;
use crate::window::history::{HistoryError, HistoryStore, Resumed};
use crate::window::{WindowPlan, WindowSpec, Windower};

/// Longest wait for a sample, so a stop request and the watchdog are served promptly.
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// Series kept at once unless [`Pipeline::with_max_sensors`] says otherwise: the BME680
/// alone needs one.
pub const DEFAULT_MAX_SENSORS: usize = 1;

mod stats;

pub use stats::{FUEL_BUCKETS, FuelHistogram, HistogramSnapshot, PipelineStats};

/// A function swapped in (or started) is on probation for this many windows...
pub const PROBATION_WINDOWS: u64 = 5;
/// ...and is rolled back as soon as this many of them have failed. A single failure can
/// be the data's (a window of NaN); three of five is the function's.
pub const PROBATION_FAILURES: u64 = 3;

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

/// One sensor's windows: which of its samples each window holds and decides, and the
/// newest N of them.
struct Series {
    windower: Windower,
    history: VecDeque<Sample>,
    /// The pipeline's sample count when this series last had a sample: the least recent
    /// one goes first at the bound.
    last_seen: u64,
}

impl Series {
    fn new(spec: WindowSpec) -> Self {
        Self {
            windower: Windower::new(spec),
            // Grows to N as samples come: a hundred sensors do not reserve a hundred
            // full windows up front.
            history: VecDeque::new(),
            last_seen: 0,
        }
    }
}

pub struct Pipeline {
    identity: Identity,
    spec: WindowSpec,
    /// The configured sensor's key: samples that name no sensor are its.
    default_sensor: Arc<str>,
    series: HashMap<Arc<str>, Series>,
    max_sensors: usize,
    /// Samples accepted so far, the clock of `Series::last_seen`.
    accepted: u64,
    function: FunctionHost,
    candidates: Receiver<FunctionHost>,
    sink: Box<dyn Sink>,
    stats: Arc<PipelineStats>,
    latest_window: Option<Window>,
    /// Where the windows' samples survive a restart, when there is a state directory.
    store: Option<HistoryStore>,
    /// Store failures are logged once until the store works again.
    store_failing: bool,
    last_good: Option<LastGood>,
    probation: Option<Probation>,
}

/// A function in its first windows, and what to go back to if it fails them.
struct Probation {
    windows_before: u64,
    failed_before: u64,
    /// The function it replaced, if that one had passed its own probation.
    previous: Option<FunctionHost>,
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
        stats.swap.set_running(function.module().sha256());
        let default_sensor: Arc<str> = Arc::from(identity.sensor_id.as_str());
        Self {
            identity,
            spec,
            default_sensor,
            series: HashMap::new(),
            max_sensors: DEFAULT_MAX_SENSORS,
            accepted: 0,
            function,
            candidates,
            sink,
            stats,
            latest_window: None,
            store: None,
            store_failing: false,
            last_good: None,
            probation: None,
        }
    }

    /// Keeps windows for up to `max_sensors` sensors at once (at least 1).
    pub fn with_max_sensors(mut self, max_sensors: usize) -> Self {
        self.max_sensors = max_sensors.max(1);
        self
    }

    /// Resumes the configured sensor's windows from `resumed` and keeps them in `store`
    /// from now on. Other sensors' windows are kept in memory only.
    pub fn with_history(mut self, store: HistoryStore, resumed: Resumed) -> Self {
        let keep = resumed.samples.len().min(self.spec.size());
        let skip = resumed.samples.len().saturating_sub(keep);
        let history: VecDeque<Sample> = resumed.samples.into_iter().skip(skip).collect();
        let windower = Windower::resume(self.spec, history.len(), resumed.undecided);
        if !history.is_empty() {
            info!(
                "resuming the windows: {} samples of history, {} not yet decided",
                history.len(),
                resumed.undecided.min(history.len())
            );
        }
        self.series.insert(
            self.default_sensor.clone(),
            Series {
                windower,
                history,
                last_seen: 0,
            },
        );
        self.stats
            .sensors_active
            .store(self.series.len() as u64, Ordering::Relaxed);
        self.store = Some(store);
        self
    }

    /// Keeps the last good function in `last_good`: the running one once it has passed
    /// probation (at once if it is the saved one), and any swapped-in one after it.
    pub fn with_last_good(mut self, last_good: LastGood) -> Self {
        if last_good.sha256() != Some(self.function.module().sha256()) {
            self.probation = Some(self.start_probation(None));
        }
        self.last_good = Some(last_good);
        self
    }

    /// Runs until `stop` is set and the buffer is empty, then decides the samples still
    /// waiting for a window and flushes the sink.
    pub fn run(mut self, reader: &SampleReader, stop: &AtomicBool) -> Result<(), PipelineError> {
        let mut batch = Vec::new();
        // A window that was due when the agent last stopped runs before anything new.
        let default_sensor = self.default_sensor.clone();
        let due = self
            .series
            .get_mut(&default_sensor)
            .and_then(|series| series.windower.due());
        if let Some(plan) = due {
            self.judge(&default_sensor, plan)?;
        }
        loop {
            PipelineStats::count(&self.stats.heartbeat, 1);
            // While stopping, the queue is drained with the function in place: no
            // verdict on a probation, no swap.
            if !stop.load(Ordering::Acquire) {
                self.review_probation();
                self.take_candidates();
            }
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

    fn accept(&mut self, mut sample: Sample) -> Result<(), PipelineError> {
        PipelineStats::count(&self.stats.samples, 1);
        self.accepted = self.accepted.saturating_add(1);
        let key = match sample.sensor_id.take() {
            Some(key) => key,
            None => self.default_sensor.clone(),
        };
        let configured = key == self.default_sensor;
        if configured && let Some(store) = &mut self.store {
            let stored = store.push(&sample);
            self.note_store(stored);
        }
        let plan = {
            let (size, now) = (self.spec.size(), self.accepted);
            let series = self.series_for(&key)?;
            if series.history.len() >= size {
                series.history.pop_front();
            }
            // Kept without its key: the series is the key, and one Arc per sample is
            // memory a hundred full windows would feel.
            series.history.push_back(sample);
            series.last_seen = now;
            series.windower.push()
        };
        match plan {
            Some(plan) => self.judge(&key, plan),
            None => Ok(()),
        }
    }

    /// The series of sensor `key`, made if it is new; at the bound, the series seen least
    /// recently is finished and dropped first.
    fn series_for(&mut self, key: &Arc<str>) -> Result<&mut Series, PipelineError> {
        if !self.series.contains_key(key) {
            while self.series.len() >= self.max_sensors {
                let Some(oldest) = self
                    .series
                    .iter()
                    .min_by_key(|(_, series)| series.last_seen)
                    .map(|(key, _)| key.clone())
                else {
                    break;
                };
                self.finish_series(&oldest)?;
                self.series.remove(&oldest);
                PipelineStats::count(&self.stats.sensors_evicted, 1);
                info!(
                    "windows of sensor {} closed to make room for sensor {} ({} sensors at most)",
                    crate::support::text::untrusted(&oldest),
                    crate::support::text::untrusted(key),
                    self.max_sensors
                );
            }
            self.series.insert(key.clone(), Series::new(self.spec));
            self.stats
                .sensors_active
                .store(self.series.len() as u64, Ordering::Relaxed);
        }
        // Just inserted when it was missing.
        self.series
            .get_mut(key)
            .ok_or_else(|| PipelineError::Sink(std::io::Error::other("series vanished")))
    }

    /// Decides the samples of sensor `key` still waiting for a window.
    fn finish_series(&mut self, key: &Arc<str>) -> Result<(), PipelineError> {
        let plan = self
            .series
            .get_mut(key)
            .and_then(|series| series.windower.finish());
        match plan {
            Some(plan) => self.judge(key, plan),
            None => Ok(()),
        }
    }

    /// Runs the function on the window `plan` describes and emits the samples it decides.
    /// A failed window's samples are emitted all the same, marked with the error.
    fn judge(&mut self, key: &Arc<str>, plan: WindowPlan) -> Result<(), PipelineError> {
        let Some(series) = self.series.get_mut(key) else {
            return Ok(());
        };
        let samples = series.history.make_contiguous();
        let in_window = samples.len().saturating_sub(plan.len());
        let judged = judge::judge(
            &mut self.function,
            key,
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
            Err(e @ NotJudged::Function(error)) => {
                PipelineStats::count(&self.stats.windows, 1);
                // A window abandoned because the agent is stopping is not the function's
                // failure: it must not count towards a probation's rollback.
                if !matches!(error, FunctionError::Abandoned) {
                    PipelineStats::count(&self.stats.failed_windows, 1);
                }
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
            sensor_id: key,
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
        // The spool's commit is where samples count as decided. Until then a crash must
        // find them in the history, undecided, to be judged again: so the history holds
        // every sample of this window before its verdicts leave, and marks them decided
        // only after (the spool's own mark, committed with the verdicts, keeps a restart
        // from judging them twice). An NDJSON sink is no commit a restart reads back:
        // the history keeps its batched commits there.
        let configured = **key == *self.default_sensor;
        if configured
            && self.sink.commits_decisions()
            && let Some(store) = &mut self.store
        {
            let stored = store.commit_pending();
            self.note_store(stored);
        }
        if let (Some(first), Some(last)) = (records.first(), records.last()) {
            log::debug!(
                "judged {} samples of sensor {}: {} .. {}",
                records.len(),
                crate::support::text::untrusted(key),
                first.document_id(),
                last.document_id()
            );
        }
        self.sink.emit(&records)?;
        if configured && let Some(store) = &mut self.store {
            store.decided_all();
        }
        Ok(())
    }

    /// Swaps in the newest candidate that survives its canary run on the latest window.
    fn take_candidates(&mut self) {
        while let Ok(candidate) = self.candidates.try_recv() {
            let new_sha = candidate.module().sha256().to_owned();
            if new_sha == self.function.module().sha256() {
                continue;
            }
            match self.canary(candidate) {
                Ok(candidate) => {
                    info!(
                        "function swapped in: {} (was {}); on probation for {PROBATION_WINDOWS} windows",
                        short_sha(&new_sha),
                        short_sha(self.function.module().sha256())
                    );
                    let previous = std::mem::replace(&mut self.function, candidate);
                    // Only a function that passed its probation is worth going back to.
                    let previous = match self.probation.take() {
                        None => Some(previous),
                        Some(earlier) => earlier.previous,
                    };
                    self.probation = Some(self.start_probation(previous));
                    SwapStats::count(&self.stats.swap.swaps);
                    self.stats.swap.set_running(&new_sha);
                }
                Err(reason) => {
                    SwapStats::count(&self.stats.swap.refused);
                    (self.stats.swap).note_outcome(&new_sha, OutcomeKind::Refused, &reason);
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

    fn start_probation(&self, previous: Option<FunctionHost>) -> Probation {
        Probation {
            windows_before: self.stats.windows.load(Ordering::Relaxed),
            failed_before: self.stats.failed_windows.load(Ordering::Relaxed),
            previous,
        }
    }

    /// Ends the running function's probation: rolled back after [`PROBATION_FAILURES`]
    /// failed windows, kept as the last good one after [`PROBATION_WINDOWS`] windows.
    fn review_probation(&mut self) {
        let Some(probation) = &self.probation else {
            return;
        };
        let windows = self
            .stats
            .windows
            .load(Ordering::Relaxed)
            .saturating_sub(probation.windows_before);
        let failed = self
            .stats
            .failed_windows
            .load(Ordering::Relaxed)
            .saturating_sub(probation.failed_before);
        let sha = self.function.module().sha256().to_owned();
        if failed >= PROBATION_FAILURES {
            let previous = self.probation.take().and_then(|p| p.previous);
            self.roll_back(previous, &sha, failed, windows);
        } else if windows >= PROBATION_WINDOWS {
            self.probation = None;
            (self.stats.swap).note_outcome(&sha, OutcomeKind::Passed, "");
            if let Some(last_good) = &mut self.last_good {
                match last_good.save(self.function.module()) {
                    Ok(()) => info!(
                        "function {} passed its probation ({failed} of {windows} windows failed); kept as the last good one",
                        short_sha(&sha)
                    ),
                    Err(e) => warn!(
                        "function {} passed its probation, but cannot be kept in {}: {e}",
                        short_sha(&sha),
                        last_good.path().display()
                    ),
                }
            }
        }
    }

    fn roll_back(&mut self, previous: Option<FunctionHost>, sha: &str, failed: u64, windows: u64) {
        let fallback = match previous {
            Some(previous) => Ok(previous),
            None => match &self.last_good {
                Some(last_good) if last_good.sha256().is_some_and(|good| good != sha) => last_good
                    .host(self.function.params().clone(), self.function.limits())
                    .map_err(|e| e.to_string())
                    .and_then(|host| {
                        let min = host.min_window_len();
                        if min > self.spec.size() {
                            Err(format!(
                                "the last good function needs windows of {min} samples; the window is {}",
                                self.spec.size()
                            ))
                        } else {
                            Ok(host)
                        }
                    }),
                _ => Err("there is no other last good function".to_owned()),
            },
        };
        match fallback {
            Ok(fallback) => {
                let good = fallback.module().sha256().to_owned();
                error!(
                    "function {} failed {failed} of its first {windows} windows; rolled back to {}",
                    short_sha(sha),
                    short_sha(&good)
                );
                self.function = fallback;
                SwapStats::count(&self.stats.swap.rolled_back);
                let why = format!("failed {failed} of its first {windows} windows");
                (self.stats.swap).note_outcome(sha, OutcomeKind::RolledBack, &why);
                self.stats.swap.set_running(&good);
            }
            Err(reason) => {
                error!(
                    "function {} failed {failed} of its first {windows} windows, but cannot be rolled back ({reason}); keeping it",
                    short_sha(sha)
                );
                let why =
                    format!("failed {failed} of its first {windows} windows; kept, as {reason}");
                (self.stats.swap).note_outcome(sha, OutcomeKind::FailedKept, &why);
            }
        }
    }

    /// Decides the samples still waiting for a window (judged if there are enough for
    /// the function, marked not judged if not) and flushes the sink.
    fn finish(mut self) -> Result<(), PipelineError> {
        let mut keys: Vec<Arc<str>> = self.series.keys().cloned().collect();
        keys.sort();
        for key in &keys {
            self.finish_series(key)?;
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
