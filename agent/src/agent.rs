//! The whole agent as one value: built from an [`AgentConfig`] and a [`Source`] of
//! samples, [`Agent::start`] wires every stage (source → ring → pipeline → sink or spool →
//! shipper; the function watcher and the registry poller beside them; the fleet reporter,
//! `/metrics` and `/health`) and answers a [`RunningAgent`]. Its owner drives it with
//! [`supervise()`] (liveness, watchdog pings, the status line, reloads, stop requests) and
//! ends it with [`RunningAgent::stop`], the one ordered stop. The binary (`cli/run.rs`)
//! adds arguments, signals and exit codes; tests and benches start agents in process.
//!
//! Layout: [`input`] what fills the ring · [`upstream`] the spool and its shipper ·
//! [`observe`] what the metrics server and the fleet reporter read · [`mod@supervise`]
//! the supervision loop · this file the wiring and the ordered stop.

pub mod input;
pub mod observe;
pub mod supervise;
pub mod upstream;

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{info, warn};
use thiserror::Error;

use crate::config::AgentConfig;
use crate::function::last_good::{self, LastGood};
use crate::function::{GuestStop, Limits, SwapStats};
use crate::health::{Health, HealthCell, Progress, StallThresholds};
use crate::metrics::MetricsServer;
use crate::pipeline::{Identity, Pipeline, PipelineError, PipelineStats};
use crate::registry::{Poller, PollerConfig, RolloutCell};
use crate::sensor::lines::{self, SourceKind};
use crate::sensor::source::{SensorSource, start_sampler};
use crate::sensor::{SharedClock, SystemClock, sample_queue};
use crate::sink::{Both, NdjsonCounters, NdjsonSink, Sink, SpoolSink};
use crate::support::text::short_sha;
use crate::support::wake::Wake;
use crate::watch::{WatchConfig, Watcher};
use crate::window::history::HistoryStore;

pub use input::Input;
pub use supervise::{Command, Ended, Notifier, Supervised, Supervisor, SystemdNotifier, supervise};
pub use upstream::Upstream;

/// Samples the ring holds while the pipeline is busy with a window (the BME680; lines
/// configure theirs, `[source] queue`).
const QUEUE_CAPACITY: usize = 4096;
/// The windows' samples across restarts, in the state directory.
const HISTORY_FILE: &str = "window.redb";
/// How long a stop waits for the function to judge what is queued before abandoning it:
/// half the unit's `TimeoutStopSec=20`, leaving the rest for the spool and the shipper.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// The simulated clock's speed-up, bounded so every duration scaled by it stays
/// representable.
const MIN_SPEED: f64 = 0.001;
const MAX_SPEED: f64 = 100_000.0;

/// Why the agent could not start, or did not stop cleanly.
#[derive(Debug, Error)]
pub enum AgentError {
    /// The configuration cannot work as given (a window the function cannot judge, a
    /// source the file does not name): the binary exits 78, the unit does not restart.
    #[error("{0}")]
    Config(String),
    /// A stage did not start; `context` says which.
    #[error("{context}: {source}")]
    Stage {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stage did not start, and its own error says which.
    #[error(transparent)]
    Start(Box<dyn std::error::Error + Send + Sync>),
    #[error("the pipeline thread panicked")]
    PipelinePanicked,
    #[error("the pipeline stopped: {0}")]
    Pipeline(#[from] PipelineError),
    /// A finite input was judged whole, but the output, its only copy, refused some of
    /// the verdicts (a full disk, a closed pipe): the run did not do its job.
    #[error("{0} verdicts could not be written to the output, their only copy (the log says why)")]
    OutputLost(u64),
}

impl AgentError {
    /// `error`, said as the failure to do `context`.
    fn stage<E: std::error::Error + Send + Sync + 'static>(
        context: impl Into<String>,
    ) -> impl FnOnce(E) -> Self {
        let context = context.into();
        move |source| Self::Stage {
            context,
            source: Box::new(source),
        }
    }

    fn start<E: std::error::Error + Send + Sync + 'static>(error: E) -> Self {
        Self::Start(Box::new(error))
    }
}

/// Where the samples come from.
pub enum Source {
    /// The BME680 on I2C, or the simulated chip, on `clock` (`speed` times real time).
    Chip {
        sensor: SensorSource,
        clock: SharedClock,
        speed: f64,
    },
    /// `[source] kind = "lines"` as configured (standard input is the process's).
    Lines,
    /// `[source]` lines read from this reader instead of the configured transport: a
    /// finite input (a recorded file, a test's text), whose end the agent reports.
    Reader(Box<dyn Read + Send>),
}

impl Source {
    /// What the configuration names: the chip on its I2C device, or lines.
    pub fn configured(config: &AgentConfig) -> Self {
        match config.source.kind {
            SourceKind::Lines => Self::Lines,
            _ => Self::Chip {
                sensor: SensorSource::Hardware,
                clock: Arc::new(SystemClock::new()),
                speed: 1.0,
            },
        }
    }

    /// The simulated chip playing `scenario`, its clock `speed` times real time.
    pub fn simulated(config: &AgentConfig, scenario: &str, speed: f64) -> Result<Self, AgentError> {
        if config.source.kind == SourceKind::Lines {
            return Err(AgentError::Config(
                "--simulate samples a simulated BME680, but [source] kind is \"lines\"".into(),
            ));
        }
        if !(MIN_SPEED..=MAX_SPEED).contains(&speed) {
            return Err(AgentError::Config(format!(
                "--speed must be between {MIN_SPEED} and {MAX_SPEED}, got {speed}"
            )));
        }
        simulated_chip(scenario, speed)
    }

    fn speed(&self) -> f64 {
        match self {
            Self::Chip { speed, .. } => *speed,
            _ => 1.0,
        }
    }
}

/// Where `make functions` leaves the S-H-ESD function in a checkout: the demo's default.
const CHECKOUT_FUNCTION: &str = "target/wasm32-unknown-unknown/wasm/edge_anomaly.wasm";

/// `run --simulate` without a configuration, a laptop demo: no /var/lib to write to, so a
/// state directory of this run's own (one shared by every trial brought one trial's last
/// good function and windows back in the next), removed when the answer is dropped; and
/// the function from this checkout if the configured one is not there.
pub fn laptop_defaults(
    config: &mut AgentConfig,
) -> Result<Option<crate::support::file::ScratchDir>, AgentError> {
    if !config.function.path.exists() && Path::new(CHECKOUT_FUNCTION).exists() {
        config.function.path = std::path::PathBuf::from(CHECKOUT_FUNCTION);
    }
    // The Pi's release binaries cannot simulate: nothing to make.
    if !cfg!(feature = "simulator") {
        return Ok(None);
    }
    let state = crate::support::file::ScratchDir::create("edge-agent-simulate").map_err(
        AgentError::stage("cannot create the simulation's state directory"),
    )?;
    config.sensor.state_dir = state.path().to_owned();
    Ok(Some(state))
}

#[cfg(feature = "simulator")]
fn simulated_chip(scenario: &str, speed: f64) -> Result<Source, AgentError> {
    use crate::sensor::simulator::Scenario;
    let scenario: Scenario = scenario.parse().map_err(|e| {
        AgentError::Start(format!("--scenario: {e} (one of {})", Scenario::NAMES.join(", ")).into())
    })?;
    Ok(Source::Chip {
        sensor: SensorSource::Simulated { scenario },
        clock: Arc::new(crate::sensor::ScaledClock::new(speed)),
        speed,
    })
}

/// The Pi's release binaries have no simulated chip (the `simulator` feature).
#[cfg(not(feature = "simulator"))]
fn simulated_chip(scenario: &str, _speed: f64) -> Result<Source, AgentError> {
    Err(AgentError::Start(
        format!(
            "cannot simulate {scenario:?}: this build has no simulated BME680 (the Pi's release \
             binary leaves it out); try --simulate from a checkout (`make demo`)"
        )
        .into(),
    ))
}

/// An agent not yet started: its configuration, checked whole, and its source.
pub struct Agent {
    config: AgentConfig,
    source: Source,
}

impl Agent {
    pub fn new(config: AgentConfig, source: Source) -> Self {
        Self { config, source }
    }

    /// Starts every stage. Nothing listens or writes before the function has loaded and
    /// the window suits it; a metrics address that cannot be bound stops it before any
    /// thread starts.
    pub fn start(self) -> Result<RunningAgent, AgentError> {
        let Self { config, source } = self;
        // Every guest this agent runs (the function, candidates, a rollback) ends at this
        // agent's stop, and at no other's.
        let guest_stop = GuestStop::new();
        let limits = Limits {
            stop: guest_stop,
            ..config.function.limits()
        };
        // The configured function, or the last good one if it fails (logged and counted).
        let last_good = LastGood::in_dir(&config.sensor.state_dir);
        let swap_stats = Arc::new(SwapStats::default());
        let function = last_good::start(
            &config.function.path,
            config.function.params(),
            limits,
            &last_good,
            &swap_stats,
        )
        .map_err(|e| match e.params_refused() {
            // A misspelt or mistyped parameter: exit 78, not a restart loop.
            Some(reason) => AgentError::Config(config.function.params_refused(&reason).to_string()),
            None => AgentError::start(e),
        })?
        .host;
        let spec = config
            .window_spec()
            .and_then(|spec| spec.check_min_len(function.min_window_len()))
            .map_err(|e| AgentError::Config(format!("[window]: {e}")))?;
        let metrics_listener = observe::bind_metrics(&config.metrics)?;

        let speed = source.speed();
        let from_lines = !matches!(source, Source::Chip { .. });
        let capacity = if from_lines {
            config.source.queue
        } else {
            QUEUE_CAPACITY
        };
        let (writer, reader) = sample_queue(capacity).map_err(AgentError::start)?;
        // A read-only or full disk degrades (the spool keeps verdicts in memory, bounded);
        // it must not keep the agent from sampling.
        if let Err(e) = std::fs::create_dir_all(&config.sensor.state_dir) {
            warn!(
                "cannot create the state directory {}: {e}; running without durable state",
                config.sensor.state_dir.display()
            );
        }
        let sensor_id = &config.agent.sensor_id;
        let input = match source {
            Source::Chip { sensor, clock, .. } => Input::Sampler(
                start_sampler(config.sensor.clone(), sensor, clock, writer)
                    .map_err(AgentError::stage("cannot start the sensor"))?,
            ),
            Source::Lines => Input::Lines(
                lines::start(&config.source, sensor_id, writer).map_err(AgentError::start)?,
            ),
            Source::Reader(read) => Input::Lines(
                lines::start_reader(&config.source, sensor_id, writer, read, "input")
                    .map_err(AgentError::start)?,
            ),
        };

        let upstream = match &config.elasticsearch {
            Some(es) => Some(Upstream::start(&config, es)?),
            None => None,
        };
        let (sink, output, output_only_copy) = sink(&config, upstream.as_ref());
        let identity = Identity {
            host_id: config.agent.host_id.clone().unwrap_or_else(host_name),
            sensor_id: config.agent.sensor_id.clone(),
        };
        let stats = Arc::new(PipelineStats {
            swap: swap_stats,
            output_unwritten: output.unwritten,
            output_rotations: output.rotations,
            ..PipelineStats::default()
        });
        let (candidates_tx, candidates_rx) = mpsc::channel();
        let rollout = RolloutCell::default();
        let registry = match &config.registry {
            Some(registry) => Some(
                Poller::spawn(
                    PollerConfig {
                        registry: registry.clone(),
                        identity: format!("{}/{}", identity.host_id, identity.sensor_id),
                        state_dir: config.sensor.state_dir.clone(),
                        window_size: config.window.size,
                        limits,
                    },
                    candidates_tx.clone(),
                    stats.swap.clone(),
                    rollout.clone(),
                )
                .map_err(AgentError::stage("cannot start the registry poller"))?,
            ),
            None => None,
        };
        let watcher = Watcher::spawn(
            WatchConfig {
                path: config.function.path.clone(),
                params: config.function.params(),
                limits,
                interval: Duration::from_millis(config.function.watch_interval_ms),
            },
            candidates_tx,
            stats.swap.clone(),
        )
        .map_err(AgentError::start)?;
        info!(
            "running {} ({}) on windows of {} samples every {}; sensor {}",
            config.function.path.display(),
            short_sha(function.module().sha256()),
            spec.size(),
            spec.hop(),
            config.agent.sensor_id
        );

        let reporter = match &upstream {
            Some(upstream) if config.fleet.enabled => Some(observe::start_reporter(
                &config.fleet,
                &identity,
                &stats,
                &input,
                upstream,
                &rollout,
            )?),
            _ => None,
        };
        let health = Arc::new(HealthCell::default());
        let metrics = match metrics_listener {
            Some(listener) => Some(observe::serve_metrics(
                listener,
                &stats,
                &input,
                upstream.as_ref(),
                &health,
                registry.as_ref().map(|_| rollout.clone()),
            )?),
            None => None,
        };

        let mut pipeline =
            Pipeline::new(identity, spec, function, candidates_rx, sink, stats.clone())
                .with_last_good(last_good);
        if from_lines {
            // Lines' windows are kept in memory only (the history store holds one sensor).
            pipeline = pipeline.with_max_sensors(config.source.max_sensors);
        } else {
            let history_path = config.sensor.state_dir.join(HISTORY_FILE);
            match HistoryStore::open(&history_path, spec, &config.agent.sensor_id) {
                Ok((mut store, mut resumed)) => {
                    // The spool's commit is where samples count as decided: a window whose
                    // verdicts it holds is not judged again, whatever the history says.
                    let mark = upstream.as_ref().and_then(|u| u.spool.decided_through());
                    if let Some(mark) = mark {
                        let marked = resumed.decided_through(mark.run_id, mark.seq);
                        if marked > 0 {
                            store.decided_all_but(resumed.undecided);
                            info!(
                                "{marked} samples of the history were decided before the restart (their verdicts are in the spool)"
                            );
                        }
                    }
                    pipeline = pipeline.with_history(store, resumed)
                }
                Err(e) => warn!("{e}; the windows start empty and are kept in memory only"),
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(PipelineDone::default());
        let (thread_stop, thread_done) = (stop.clone(), done.clone());
        let pipeline_thread = std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || {
                let outcome = pipeline.run(&reader, &thread_stop);
                thread_done.mark();
                outcome
            })
            .map_err(AgentError::start)?;

        let thresholds = StallThresholds::derive(
            limits.deadline,
            config.sensor.sample_period().mul_f64(1.0 / speed),
            config.sensor.retry.backoff(u32::MAX),
        );
        Ok(RunningAgent {
            input,
            stats,
            upstream,
            watcher,
            registry,
            reporter,
            metrics,
            health,
            stop,
            pipeline: pipeline_thread,
            done,
            thresholds,
            guest_stop,
            config,
            output_only_copy,
        })
    }
}

/// Verdicts go to the spool when there is an upstream (with `[output] path` as a local
/// copy besides it), to the NDJSON output otherwise. A file the disk refuses now is opened
/// at a later write (counted, not fatal). The NDJSON output's counters come too (zero
/// without one), and whether that output is the verdicts' only copy.
fn sink(
    config: &AgentConfig,
    upstream: Option<&Upstream>,
) -> (Box<dyn Sink>, NdjsonCounters, bool) {
    let ndjson = |path: Option<&Path>| match path {
        Some(path) => {
            NdjsonSink::append_to_or_degraded(path, config.output.max_mib.saturating_mul(1 << 20))
        }
        None => NdjsonSink::stdout(),
    };
    match (upstream, &config.output.path) {
        (Some(upstream), None) => (Box::new(upstream.sink()), NdjsonCounters::default(), false),
        (Some(upstream), Some(_)) => {
            let copy = ndjson(config.output.file());
            let counters = copy.counters();
            let both = Both {
                spool: upstream.sink(),
                copy,
            };
            (Box::new(both), counters, false)
        }
        (None, _) => {
            let only = ndjson(config.output.file());
            let counters = only.counters();
            (Box::new(only), counters, true)
        }
    }
}

impl Upstream {
    fn sink(&self) -> SpoolSink {
        SpoolSink::new(self.spool.clone(), self.only_anomalies)
    }
}

/// The pipeline thread's end, said before its waiter is woken: the thread may not count
/// as finished yet when the waiter looks, and no second notification would come.
#[derive(Default)]
struct PipelineDone {
    ended: AtomicBool,
    wake: Wake,
}

impl PipelineDone {
    fn mark(&self) {
        self.ended.store(true, Ordering::Release);
        self.wake.notify();
    }

    fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

/// A started agent. Drive it with [`supervise()`]; end it with [`RunningAgent::stop`].
pub struct RunningAgent {
    input: Input,
    stats: Arc<PipelineStats>,
    upstream: Option<Upstream>,
    watcher: Watcher,
    registry: Option<Poller>,
    reporter: Option<crate::fleet::ReporterHandle>,
    metrics: Option<MetricsServer>,
    health: Arc<HealthCell>,
    stop: Arc<AtomicBool>,
    pipeline: JoinHandle<Result<(), PipelineError>>,
    done: Arc<PipelineDone>,
    thresholds: StallThresholds,
    guest_stop: GuestStop,
    config: AgentConfig,
    /// The NDJSON output is the verdicts' only copy (no upstream): verdicts it refused
    /// are lost (`stats.output_unwritten`).
    output_only_copy: bool,
}

impl RunningAgent {
    /// What `/health` says now.
    pub fn health(&self) -> Health {
        self.health.get()
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> &Arc<PipelineStats> {
        &self.stats
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Where `/metrics` and `/health` are served, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsServer::local_addr)
    }

    /// The lines listener's bound address (TCP, UDP), if lines are the source.
    pub fn lines_addr(&self) -> Option<SocketAddr> {
        match &self.input {
            Input::Lines(lines) => lines.local_addr(),
            Input::Sampler(_) => None,
        }
    }

    /// The systemd status line: samples, windows, anomalies, the function, the source's
    /// faults, swaps and, with an upstream, shipping.
    pub fn status_line(&self) -> String {
        let stats = &self.stats;
        let shipping = self
            .upstream
            .as_ref()
            .map(Upstream::status)
            .unwrap_or_default();
        format!(
            "{} samples, {} windows ({} failed), {} anomalies, function {}, {}, {} swaps ({} refused){shipping}",
            stats.samples.load(Ordering::Relaxed),
            stats.windows.load(Ordering::Relaxed),
            stats.failed_windows.load(Ordering::Relaxed),
            stats.anomalies.load(Ordering::Relaxed),
            short_sha(&stats.function_sha256()),
            self.input.faults(),
            stats.swap.swaps.load(Ordering::Relaxed),
            stats.swap.refused.load(Ordering::Relaxed),
        )
    }

    /// Stops in order: sampling first; then the pipeline judges what is queued, within
    /// `grace` (past it, guest calls are abandoned and their windows fail at once, so the
    /// agent stops within the unit's stop timeout); then the watcher and the poller; the
    /// reporter's last document goes in the spool; shipping makes a last pass over the
    /// spool within what is left of its own grace; metrics last. A finite input that
    /// supervision saw judged whole ([`Ended::InputEnded`]) has nothing left to abandon.
    pub fn stop(self, grace: Duration) -> Result<(), AgentError> {
        self.health.set(Health::Stopping);
        let started = Instant::now();
        let finite_input_ended = self.input.ended();
        let input_summary = self.input.stop();
        self.stop.store(true, Ordering::Release);
        let done = &self.done;
        done.wake.wait_until(grace, || done.ended());
        if !done.ended() {
            warn!(
                "the function is still judging queued windows after {grace:?}; abandoning it so the agent stops in time"
            );
            self.guest_stop.abandon();
        }
        let outcome = self
            .pipeline
            .join()
            .map_err(|_| AgentError::PipelinePanicked)?;
        // No guest needs to run any more: a candidate the watcher is still starting ends now.
        self.guest_stop.abandon();
        drop(self.watcher);
        drop(self.registry);
        // Its last document (a clean stop) goes in the spool before shipping stops.
        if let Some(reporter) = self.reporter {
            reporter.stop();
        }
        if let Some(upstream) = self.upstream {
            upstream.stop(started);
        }
        drop(self.metrics);
        outcome?;
        info!(
            "stopped in {:.0?}: {input_summary}, {} windows, {} verdicts, {} anomalies",
            started.elapsed(),
            self.stats.windows.load(Ordering::Relaxed),
            self.stats.verdicts.load(Ordering::Relaxed),
            self.stats.anomalies.load(Ordering::Relaxed),
        );
        let unwritten = self.stats.output_unwritten.load(Ordering::Relaxed);
        if unwritten > 0 && self.output_only_copy {
            // A finite input's run is judged by its output: exiting 0 with verdicts lost
            // would tell a script that `run < recorded.csv` did its job. A live agent's
            // stop is a signal's, and its losses were logged as they happened.
            if finite_input_ended {
                return Err(AgentError::OutputLost(unwritten));
            }
            warn!("{unwritten} verdicts could not be written to the output (the log says why)");
        }
        Ok(())
    }
}

impl Supervised for RunningAgent {
    fn progress(&self, turns: u64) -> Progress {
        Progress {
            pipeline: self.stats.heartbeat.load(Ordering::Relaxed),
            sampler: self.input.progress(turns),
        }
    }

    fn status_line(&self) -> String {
        RunningAgent::status_line(self)
    }

    /// A finite input's end is not a stop request: the pipeline is told to judge what is
    /// queued and the last partial windows (as at a stop, but with no grace to run out),
    /// and supervision goes on (watchdog, status, signals) until it has; a signal
    /// meanwhile is an ordinary stop.
    fn ended(&self) -> Option<Ended> {
        if self.input.ended() {
            self.stop.store(true, Ordering::Release);
            return self.done.ended().then_some(Ended::InputEnded);
        }
        self.pipeline.is_finished().then_some(Ended::PipelineEnded)
    }

    fn reload(&self) {
        self.watcher.reload();
    }

    fn set_health(&self, health: Health) {
        self.health.set(health);
    }

    fn thresholds(&self) -> StallThresholds {
        self.thresholds
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::config::WindowSection;
    use crate::sensor::lines::Transport;

    /// Judges windows of two samples: the first of each flagged, the second not; `init`
    /// asks for windows of `min` samples at the least.
    fn pairs_module(min: u8) -> Vec<u8> {
        slow_pairs_module(min, 1)
    }

    /// [`pairs_module`] with a window that takes `spin` turns of a loop to judge.
    fn slow_pairs_module(min: u8, spin: u32) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(module (memory (export "memory") 1)
              (data (i32.const 4096) "\00\{min:02x}")
              (data (i32.const 8192) "\00\02\01\00\00\00")
              (func (export "edge_abi_version") (result i32) i32.const 1)
              (func (export "alloc") (param i32) (result i32) i32.const 1024)
              (func (export "dealloc") (param i32 i32))
              (func (export "init") (param i32 i32) (result i64) i64.const 0x0000100000000002)
              (func (export "execute") (param i32 i32) (result i64) (local i32)
                (local.set 2 (i32.const {spin}))
                (loop (br_if 0 (local.tee 2 (i32.sub (local.get 2) (i32.const 1)))))
                i64.const 0x0000200000000006))"#
        ))
        .unwrap()
    }

    /// Says READY, pings, STOPPING; looks every few milliseconds.
    #[derive(Default)]
    struct Told(Vec<&'static str>);

    impl Notifier for Told {
        fn tick(&self) -> Duration {
            Duration::from_millis(5)
        }
        fn ready(&mut self) {
            self.0.push("READY");
        }
        fn alive(&mut self, _: &str) {}
        fn stalled(&mut self, _: &str) {}
        fn stopping(&mut self) {
            self.0.push("STOPPING");
        }
    }

    /// An agent of `module` on windows of two samples, reading lines (a `Source::Reader`
    /// stands for standard input), its verdicts in the NDJSON file answered.
    fn reading_lines(dir: &Path, module: &[u8]) -> (AgentConfig, std::path::PathBuf) {
        let function = dir.join("pairs.wasm");
        std::fs::write(&function, module).unwrap();
        let output = dir.join("verdicts.ndjson");
        let mut config = AgentConfig::default();
        config.function.path = function;
        config.sensor.state_dir = dir.join("state");
        config.window = WindowSection { size: 2, hop: 2 };
        config.metrics.enabled = false;
        config.output.path = Some(output.clone());
        config.source.kind = SourceKind::Lines;
        config.source.transport = Transport::Stdin;
        (config, output)
    }

    #[test]
    fn a_finite_input_is_judged_whole_and_the_agent_stops_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (config, output) = reading_lines(dir.path(), &pairs_module(1));
        let lines: String = std::iter::once("timestamp,value\n".to_owned())
            .chain((0..6).map(|i| format!("2026-01-01T00:00:0{i}Z,{i}\n")))
            .collect();
        let source = Source::Reader(Box::new(Cursor::new(lines)));

        let agent = Agent::new(config, source).start().unwrap();
        assert_eq!(agent.metrics_addr(), None);
        let (_commands, received) = mpsc::channel();
        let mut told = Told::default();
        assert_eq!(supervise(&agent, &received, &mut told), Ended::InputEnded);
        assert_eq!(agent.health(), Health::Stopping);
        assert_eq!(told.0, ["READY", "STOPPING"]);
        agent.stop(Duration::MAX).unwrap();

        let written = std::fs::read_to_string(&output).unwrap();
        let flags: Vec<bool> = written
            .lines()
            .map(|line| {
                let record: serde_json::Value = serde_json::from_str(line).unwrap();
                record["is_anomaly"].as_bool().unwrap()
            })
            .collect();
        assert_eq!(flags, [true, false, true, false, true, false]);
    }

    #[test]
    fn the_end_of_a_finite_input_is_not_a_stop_request() {
        let dir = tempfile::tempdir().unwrap();
        let (config, output) = reading_lines(dir.path(), &slow_pairs_module(1, 200_000));
        // Read in an instant, judged in many: the queue outlives the input by far.
        let rows = 400;
        let lines: String = std::iter::once("timestamp,value\n".to_owned())
            .chain((0..rows).map(|i| format!("{},{i}\n", 1_767_225_600_000_i64 + i)))
            .collect();
        let source = Source::Reader(Box::new(Cursor::new(lines)));

        let agent = Agent::new(config, source).start().unwrap();
        let (_commands, received) = mpsc::channel();
        assert_eq!(
            supervise(&agent, &received, &mut Told::default()),
            Ended::InputEnded
        );
        // No grace at all: supervision ended only once everything was judged.
        agent.stop(Duration::ZERO).unwrap();

        let written = std::fs::read_to_string(&output).unwrap();
        let judged = written
            .lines()
            .filter(|line| {
                let record: serde_json::Value = serde_json::from_str(line).unwrap();
                record["is_anomaly"].is_boolean()
            })
            .count();
        assert_eq!(judged, rows as usize, "every sample judged, none abandoned");
    }

    #[test]
    fn a_window_the_function_cannot_judge_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let function = dir.path().join("pairs.wasm");
        std::fs::write(&function, pairs_module(4)).unwrap();
        let mut config = AgentConfig::default();
        config.function.path = function;
        config.sensor.state_dir = dir.path().join("state");
        config.window = WindowSection { size: 2, hop: 2 };
        config.metrics.enabled = false;
        // The address is taken: the window must be refused before the listener binds.
        let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        config.source.kind = SourceKind::Lines;
        config.source.listen = listen.local_addr().unwrap().to_string();
        match Agent::new(config, Source::Lines).start() {
            Err(AgentError::Config(reason)) => {
                assert!(reason.starts_with("[window]: "), "{reason}")
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("started on a window shorter than the function's minimum"),
        }
        drop(listen);
    }
}
