//! `edge-agent run`: the agent's life cycle. Sampler → ring buffer → pipeline → sink, the
//! function watcher beside them; SIGTERM or SIGINT stops sampling, finishes the pending
//! window, flushes the sink and exits 0; SIGHUP re-reads the function. Under systemd it
//! reports READY, a one-line STATUS, and pings the watchdog only while the pipeline and
//! the sampler both make progress, so a stuck thread gets the service restarted.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::fail::{Context, Result};

use super::args::{ArgList, UsageError};
use edge_agent::config::AgentConfig;
use edge_agent::config::{ElasticsearchSection, MetricsListen, ShipWhat};
use edge_agent::fleet::{self, FleetStats, Observed, Reporter, ReporterHandle};
use edge_agent::function::SwapStats;
use edge_agent::function::last_good::{self, LastGood};
use edge_agent::health::{Health, HealthCell, Liveness, Progress, StallThresholds};
use edge_agent::metrics::server::MetricsListener;
use edge_agent::metrics::{
    MetricsServer, PipelineCounts, ShippingCounts, Snapshot, resident_memory_bytes,
};
use edge_agent::pipeline::{Identity, Pipeline, PipelineStats};
use edge_agent::registry::{Poller, PollerConfig, RolloutCell};
use edge_agent::sensor::lines::{self, LinesHandle, SourceKind};
use edge_agent::sensor::source::{SensorSource, start_sampler};
use edge_agent::sensor::{SharedClock, SystemClock, sample_queue};
use edge_agent::ship::{Auth, Client, ShipStats, Shipper, ShipperHandle, Stopper};
use edge_agent::sink::{Both, NdjsonSink, Sink, SpoolSink};
use edge_agent::spool::Spool;
use edge_agent::support::text::short_sha;
use edge_agent::support::wake::Wake;
use edge_agent::watch::{WatchConfig, Watcher};
use edge_agent::window::history::HistoryStore;
use log::{info, warn};
use sd_notify::NotifyState;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// sysexits' EX_CONFIG: the unit file does not restart on it.
pub const EXIT_CONFIG: u8 = 78;
/// Samples the ring holds while the pipeline is busy with a window.
const QUEUE_CAPACITY: usize = 4096;
/// Where `make functions` leaves the S-H-ESD function in a checkout: the demo's default.
const CHECKOUT_FUNCTION: &str = "target/wasm32-unknown-unknown/wasm/edge_anomaly.wasm";
/// The windows' samples across restarts, in the state directory.
const HISTORY_FILE: &str = "window.redb";
/// How long shipping may take to stop before an in-flight request is abandoned (its
/// documents stay spooled): well within the unit's TimeoutStopSec (20 s).
const SHIPPER_GRACE: Duration = Duration::from_secs(5);
/// What the shipper is given at the least, however long the pipeline took to drain: time
/// to finish a request that is just being answered.
const SHIPPER_LAST_WAIT: Duration = Duration::from_millis(500);
/// The simulated clock's speed-up, bounded (see `configure`).
const MIN_SPEED: f64 = 0.001;
const MAX_SPEED: f64 = 100_000.0;
/// How often the main thread looks at progress when there is no watchdog.
const TICK: Duration = Duration::from_secs(1);
/// How long a stop waits for the function to judge what is queued before abandoning it:
/// half the unit's `TimeoutStopSec=20`, leaving the rest for the spool and the shipper.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub fn help() -> String {
    "\
Run the agent: sample, window, judge, emit verdicts, until SIGTERM or SIGINT

Usage: edge-agent run [OPTIONS]

Options:
      --config <FILE>      The configuration file (TOML); every key has a default
      --simulate           Sample a simulated BME680 instead of the chip on I2C
      --scenario <NAME>    The simulated scenario: clean, cooking, window, drift, cold-start,
                           heater-fault [default: clean] (with --simulate)
      --speed <X>          Run the simulated clock this many times faster than real time
                           [default: 1] (with --simulate)
      --function <F.wasm>  The function module, instead of the configured one
      --output <FILE>      Append verdicts (NDJSON) to this file instead of the configured
                           output
  -h, --help               Print help
"
    .to_owned()
}

pub struct RunArgs {
    config: Option<PathBuf>,
    simulate: bool,
    scenario: String,
    speed: f64,
    function: Option<PathBuf>,
    output: Option<PathBuf>,
}

impl RunArgs {
    pub fn parse(mut args: ArgList) -> Result<Self, UsageError> {
        let simulate = args.flag("simulate")?;
        let scenario = args.value("scenario")?;
        let speed = args.parsed("speed")?;
        if !simulate && (scenario.is_some() || speed.is_some()) {
            return Err(UsageError::new("--scenario and --speed need --simulate"));
        }
        let parsed = Self {
            config: args.value("config")?.map(PathBuf::from),
            simulate,
            scenario: scenario.unwrap_or_else(|| "clean".to_owned()),
            speed: speed.unwrap_or(1.0),
            function: args.value("function")?.map(PathBuf::from),
            output: args.value("output")?.map(PathBuf::from),
        };
        args.finish()?;
        Ok(parsed)
    }
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    // First thing: a SIGHUP during start-up must not kill the agent (its default action).
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let signal_handle = signals.handle();
    let config = match configure(&args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("edge-agent: configuration error: {error:#}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    // The configured function, or the last good one if it fails (logged and counted).
    let last_good = LastGood::in_dir(&config.sensor.state_dir);
    let swap_stats = Arc::new(SwapStats::default());
    let function = last_good::start(
        &config.function.path,
        config.function.params(),
        config.function.limits(),
        &last_good,
        &swap_stats,
    )?
    .host;
    let spec = match config
        .window_spec()
        .and_then(|spec| spec.check_min_len(function.min_window_len()))
    {
        Ok(spec) => spec,
        Err(error) => {
            eprintln!("edge-agent: configuration error: [window]: {error}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };

    // Before any thread starts: an address that cannot be bound stops the agent here.
    let metrics_listener = bind_metrics(&config)?;

    let (source, clock, speed) = source(&args)?;
    let from_lines = config.source.kind == SourceKind::Lines;
    let (writer, reader) = sample_queue(if from_lines {
        config.source.queue
    } else {
        QUEUE_CAPACITY
    })?;
    // A read-only or full disk degrades (the spool keeps verdicts in memory, bounded); it
    // must not keep the agent from sampling.
    if let Err(e) = std::fs::create_dir_all(&config.sensor.state_dir) {
        warn!(
            "cannot create the state directory {}: {e}; running without durable state",
            config.sensor.state_dir.display()
        );
    }
    let input = if from_lines {
        Input::Lines(lines::start(
            &config.source,
            &config.agent.sensor_id,
            writer,
        )?)
    } else {
        Input::Sampler(
            start_sampler(config.sensor.clone(), source, clock, writer)
                .context("cannot start the sensor")?,
        )
    };

    let upstream = match &config.elasticsearch {
        Some(es) => Some(start_shipping(&config, es)?),
        None => None,
    };
    // A file the disk refuses now is opened at a later write (counted, not fatal).
    let ndjson = |path: Option<&Path>| -> Result<NdjsonSink> {
        match path {
            Some(path) if path != Path::new("-") => Ok(NdjsonSink::append_to_or_degraded(path)),
            _ => Ok(NdjsonSink::stdout()),
        }
    };
    // With an upstream, `--output` / `[output] path` is a local copy besides the spool.
    let sink: Box<dyn Sink> = match (&upstream, config.output.path.as_deref()) {
        (Some(upstream), None) => Box::new(SpoolSink::new(
            upstream.spool.clone(),
            upstream.only_anomalies,
        )),
        (Some(upstream), Some(path)) => Box::new(Both {
            spool: SpoolSink::new(upstream.spool.clone(), upstream.only_anomalies),
            copy: ndjson(Some(path))?,
        }),
        (None, path) => Box::new(ndjson(path)?),
    };
    let identity = Identity {
        host_id: config.agent.host_id.clone().unwrap_or_else(host_name),
        sensor_id: config.agent.sensor_id.clone(),
    };
    let stats = Arc::new(PipelineStats {
        swap: swap_stats,
        ..PipelineStats::default()
    });
    let (candidates_tx, candidates_rx) = mpsc::channel();
    let rollout = RolloutCell::default();
    let registry = start_registry(&config, &identity, &candidates_tx, &stats, &rollout)?;
    let watcher = Watcher::spawn(
        WatchConfig {
            path: config.function.path.clone(),
            params: config.function.params(),
            limits: config.function.limits(),
            interval: Duration::from_millis(config.function.watch_interval_ms),
        },
        candidates_tx,
        stats.swap.clone(),
    )?;
    info!(
        "running {} ({}) on windows of {} samples every {}; sensor {}",
        config.function.path.display(),
        short_sha(function.module().sha256()),
        spec.size(),
        spec.hop(),
        config.agent.sensor_id
    );

    let reporter = match &upstream {
        Some(upstream) if config.fleet.enabled => Some(start_reporter(
            &config, &identity, &stats, &input, upstream, &rollout,
        )?),
        _ => None,
    };
    let health = Arc::new(HealthCell::default());
    let metrics = match metrics_listener {
        Some(listener) => Some(serve_metrics(
            listener,
            &stats,
            &input,
            upstream.as_ref(),
            &health,
            registry.as_ref().map(|_| rollout.clone()),
        )?),
        None => None,
    };

    let stop = Arc::new(AtomicBool::new(false));
    let mut pipeline = Pipeline::new(
        identity.clone(),
        spec,
        function,
        candidates_rx,
        sink,
        stats.clone(),
    )
    .with_last_good(last_good);
    if from_lines {
        // Lines' windows are kept in memory only (the history store holds one sensor).
        pipeline = pipeline.with_max_sensors(config.source.max_sensors);
    } else {
        let history_path = config.sensor.state_dir.join(HISTORY_FILE);
        match HistoryStore::open(&history_path, spec, &config.agent.sensor_id) {
            Ok((store, resumed)) => pipeline = pipeline.with_history(store, resumed),
            Err(e) => warn!("{e}; the windows start empty and are kept in memory only"),
        }
    }
    let pipeline_stop = stop.clone();
    let pipeline_reader = reader.clone();
    let pipeline_done = Arc::new(Wake::new());
    let pipeline_finished = pipeline_done.clone();
    // Set before the notification: the thread may not count as finished yet when its
    // waiter wakes, and then no second notification would come (a 10 s stop).
    let pipeline_ended = Arc::new(AtomicBool::new(false));
    let pipeline_ending = pipeline_ended.clone();
    let pipeline_thread = std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || {
            let outcome = pipeline.run(&pipeline_reader, &pipeline_stop);
            pipeline_ending.store(true, Ordering::Release);
            pipeline_finished.notify();
            outcome
        })?;

    let (signal_tx, signal_rx) = mpsc::channel();
    let signal_thread = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal_tx.send(signal).is_err() {
                    break;
                }
            }
        })?;

    let _ = sd_notify::notify(&[NotifyState::Ready]);
    let watchdog = sd_notify::watchdog_enabled();
    let tick = watchdog.map_or(TICK, |period| (period / 2).min(TICK));
    let thresholds = StallThresholds::derive(
        config.function.limits().deadline,
        config.sensor.sample_period().mul_f64(1.0 / speed),
        config.sensor.retry.backoff(u32::MAX),
    );
    let mut liveness = Liveness::new(thresholds, Instant::now());
    let mut turns: u64 = 0;
    loop {
        turns = turns.wrapping_add(1);
        match signal_rx.recv_timeout(tick) {
            Ok(SIGHUP) => watcher.reload(),
            Ok(signal) => {
                info!("signal {signal}: stopping");
                break;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if pipeline_thread.is_finished() {
            break;
        }
        if input.ended() {
            info!("the input has ended: stopping");
            break;
        }
        let verdict = liveness.check(
            Progress {
                pipeline: stats.heartbeat.load(Ordering::Relaxed),
                sampler: input.progress(turns),
            },
            Instant::now(),
        );
        // The same verdict for /health as for the watchdog.
        health.set(verdict);
        let alive = verdict == Health::Alive;
        let shipping = upstream.as_ref().map(Upstream::status).unwrap_or_default();
        let status = format!(
            "{} samples, {} windows ({} failed), {} anomalies, function {}, {}, {} swaps ({} refused){shipping}",
            stats.samples.load(Ordering::Relaxed),
            stats.windows.load(Ordering::Relaxed),
            stats.failed_windows.load(Ordering::Relaxed),
            stats.anomalies.load(Ordering::Relaxed),
            short_sha(&stats.function_sha256()),
            input.faults(),
            stats.swap.swaps.load(Ordering::Relaxed),
            stats.swap.refused.load(Ordering::Relaxed),
        );
        if alive {
            let _ = sd_notify::notify(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
        } else {
            let _ = sd_notify::notify(&[NotifyState::Status(&format!("stalled: {status}"))]);
        }
    }

    let _ = sd_notify::notify(&[NotifyState::Stopping]);
    health.set(Health::Stopping);
    let started = Instant::now();
    let input_summary = input.stop();
    stop.store(true, Ordering::Release);
    // The pipeline judges what is still queued; a slow or spinning function could make
    // that take a deadline per window. Past the grace, guest calls are abandoned (their
    // windows fail at once) so the agent exits within the unit's stop timeout.
    pipeline_done.wait_until(STOP_GRACE, || pipeline_ended.load(Ordering::Acquire));
    if !pipeline_ended.load(Ordering::Acquire) {
        warn!(
            "the function is still judging queued windows after {STOP_GRACE:?}; abandoning it so the agent stops in time"
        );
        edge_agent::function::abandon_guests();
    }
    let outcome = pipeline_thread
        .join()
        .map_err(|_| fail!("the pipeline thread panicked"))?;
    // No guest needs to run any more: a candidate the watcher is still starting ends now.
    edge_agent::function::abandon_guests();
    drop(watcher);
    drop(registry);
    // Its last document (a clean stop) goes in the spool before shipping stops.
    if let Some(reporter) = reporter {
        reporter.stop();
    }
    if let Some(upstream) = upstream {
        // The shipper kept shipping while the pipeline drained; a request hanging since
        // the signal has had that time already, so the graces overlap rather than add up.
        upstream.stop(
            SHIPPER_GRACE
                .saturating_sub(started.elapsed())
                .max(SHIPPER_LAST_WAIT),
        );
    }
    signal_handle.close();
    let _ = signal_thread.join();
    drop(metrics);
    outcome.context("the pipeline stopped")?;
    info!(
        "stopped in {:.0?}: {input_summary}, {} windows, {} verdicts, {} anomalies",
        started.elapsed(),
        stats.windows.load(Ordering::Relaxed),
        stats.verdicts.load(Ordering::Relaxed),
        stats.anomalies.load(Ordering::Relaxed),
    );
    Ok(ExitCode::SUCCESS)
}

/// Binds the metrics address, if any. A configured address that cannot be bound is an
/// error; the default one, when taken (a second agent on the machine, tests running side by
/// side), leaves the agent running without metrics, said once in the log.
fn bind_metrics(config: &AgentConfig) -> Result<Option<MetricsListener>> {
    let (addr, configured) = match config.metrics.listen() {
        Ok(MetricsListen::Disabled) => return Ok(None),
        Ok(MetricsListen::Configured(addr)) => (addr, true),
        Ok(MetricsListen::Default(addr)) => (addr, false),
        // AgentConfig::parse has refused a bad address already.
        Err(e) => return Err(fail!("[metrics] listen: {e}")),
    };
    match MetricsListener::bind(addr) {
        Ok(listener) => Ok(Some(listener)),
        Err(error) if !configured && error.is_addr_in_use() => {
            warn!(
                "{error}; running without /metrics and /health (set [metrics] listen to serve them elsewhere)"
            );
            Ok(None)
        }
        Err(error) => Err(super::fail::Fail::from(error)
            .context("set [metrics] listen to another address, or enabled = false")),
    }
}

/// Serves `/metrics` and `/health` from the stages' counters.
fn serve_metrics(
    listener: MetricsListener,
    stats: &Arc<PipelineStats>,
    input: &Input,
    upstream: Option<&Upstream>,
    health: &Arc<HealthCell>,
    rollout: Option<RolloutCell>,
) -> Result<MetricsServer> {
    let start_time_seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let (stats, health) = (stats.clone(), health.clone());
    let (sampler, lines) = match input {
        Input::Sampler(sampler) => (Some(sampler.monitor().clone()), None),
        Input::Lines(source) => (None, Some(source.counter())),
    };
    let shipping = upstream.map(|u| (u.stats.clone(), u.spool.clone(), u.fleet.clone()));
    let server = MetricsServer::start(listener, move || Snapshot {
        health: health.get(),
        sampler: sampler.as_ref().map(|s| s.stats()).unwrap_or_default(),
        lines: lines.as_ref().map(|count| count()),
        pipeline: PipelineCounts::of(&stats),
        shipping: shipping.as_ref().map(|(ship, spool, fleet)| {
            ShippingCounts::of(ship, spool.stats()).with_fleet(Some(fleet))
        }),
        resident_memory_bytes: resident_memory_bytes(),
        start_time_seconds,
        rollout: rollout.as_ref().map(RolloutCell::snapshot),
    })?;
    info!(
        "metrics on http://{addr}/metrics, health on http://{addr}/health",
        addr = server.local_addr()
    );
    Ok(server)
}

/// What fills the ring: the BME680's sampler, or the lines source (`[source]`).
enum Input {
    Sampler(edge_agent::sensor::SamplerHandle),
    Lines(LinesHandle),
}

impl Input {
    /// The watchdog's sign of life: reads and failures of the sampler, turns of the
    /// lines listener; standard input blocks while its writer is quiet, so the run
    /// loop's own `turns` stand in for it.
    fn progress(&self, turns: u64) -> u64 {
        match self {
            Input::Sampler(sampler) => {
                let stats = sampler.stats();
                stats.samples.saturating_add(stats.failures)
            }
            Input::Lines(source) => source.progress().unwrap_or(turns),
        }
    }

    /// For the status line.
    fn faults(&self) -> String {
        match self {
            Input::Sampler(sampler) => format!("{} sensor faults", sampler.stats().failures),
            Input::Lines(source) => {
                let counts = source.counts();
                let refused: u64 = counts.refused.iter().map(|(_, n)| n).sum();
                format!(
                    "{} lines ({} refused), {} sensors",
                    counts.lines, refused, counts.sensors_active
                )
            }
        }
    }

    /// Standard input has ended: the agent stops once the queue is judged.
    fn ended(&self) -> bool {
        matches!(self, Input::Lines(source) if source.ended())
    }

    /// Stops it; answers a summary for the last log line.
    fn stop(self) -> String {
        match self {
            Input::Sampler(sampler) => {
                let stats = sampler.stop();
                format!(
                    "{} samples ({} sensor faults, {} overwritten in the ring)",
                    stats.samples,
                    stats.failures,
                    stats.overwritten.saturating_add(stats.dropped)
                )
            }
            Input::Lines(source) => {
                let counts = source.stop();
                let refused: u64 = counts.refused.iter().map(|(_, n)| n).sum();
                format!(
                    "{} lines ({} accepted, {} refused, {} waits for a full queue)",
                    counts.lines, counts.accepted, refused, counts.queue_waits
                )
            }
        }
    }
}

/// Starts the registry poller when `[registry]` is configured. Its candidates go to the
/// pipeline on the watcher's channel; its state is `rollout`.
fn start_registry(
    config: &AgentConfig,
    identity: &Identity,
    candidates: &mpsc::Sender<edge_agent::function::FunctionHost>,
    stats: &Arc<PipelineStats>,
    rollout: &RolloutCell,
) -> Result<Option<Poller>> {
    let Some(registry) = &config.registry else {
        return Ok(None);
    };
    let poller = Poller::spawn(
        PollerConfig {
            registry: registry.clone(),
            identity: format!("{}/{}", identity.host_id, identity.sensor_id),
            state_dir: config.sensor.state_dir.clone(),
            window_size: config.window.size,
            limits: config.function.limits(),
        },
        candidates.clone(),
        stats.swap.clone(),
        rollout.clone(),
    )
    .context("cannot start the registry poller")?;
    Ok(Some(poller))
}

/// The spool and the thread draining it.
struct Upstream {
    spool: Arc<Spool>,
    only_anomalies: bool,
    stats: Arc<ShipStats>,
    shipper: ShipperHandle,
    /// The status reporter's counters (zero while it does not run).
    fleet: Arc<FleetStats>,
}

impl Upstream {
    fn status(&self) -> String {
        let spool = self.spool.stats().snapshot();
        let disk = if spool.degraded {
            format!(
                ", DISK REFUSES WRITES ({} verdicts in memory)",
                spool.pending
            )
        } else {
            String::new()
        };
        format!(
            ", {} shipped, {} queued, {} dead-lettered, {} dropped{disk}",
            self.stats.shipped.load(Ordering::Relaxed),
            spool.depth,
            spool.dead_lettered,
            spool.dropped,
        )
    }

    /// Stops shipping within `grace` whatever upstream does; whatever is not
    /// acknowledged stays in the spool.
    fn stop(self, grace: Duration) {
        self.spool.wake();
        if !self.shipper.stop(grace) {
            warn!(
                "a request to Elasticsearch is still in flight at the stop: abandoned, its documents stay in the spool"
            );
        }
        let spool = self.spool.stats().snapshot();
        info!(
            "shipping stopped: {} shipped, {} already there, {} left in the spool",
            self.stats.shipped.load(Ordering::Relaxed),
            self.stats.duplicates.load(Ordering::Relaxed),
            spool.depth.saturating_add(spool.pending)
        );
    }
}

/// Opens the spool (degraded, never failing, when the disk refuses) and starts the
/// shipper. The configuration was checked whole before: its files are there.
fn start_shipping(config: &AgentConfig, es: &ElasticsearchSection) -> Result<Upstream> {
    let spool_path = config.spool_path();
    let spool = Arc::new(Spool::open_or_degraded(
        &spool_path,
        config.spool.max_mib.saturating_mul(1 << 20),
        config.spool.when_full,
    ));
    let auth = Auth::resolve(
        es.username.as_deref(),
        es.password.as_deref(),
        es.password_file.as_deref(),
        es.api_key.as_deref(),
        es.api_key_file.as_deref(),
        |name| std::env::var(name).ok(),
    )
    .context("Elasticsearch credentials")?;
    let ca = match &es.ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read the CA file {}", path.display()))?,
        ),
        None => None,
    };
    let client = Client::new(
        &es.url,
        auth,
        ca.as_deref(),
        es.gzip,
        Duration::from_millis(es.timeout_ms),
    )?;
    let mut settings = es.shipper_settings(&config.sensor.state_dir);
    config.fleet.apply(&mut settings);
    let stats = Arc::new(ShipStats::default());
    let stopper = Arc::new(Stopper::default());
    let shipper = Shipper::new(client, spool.clone(), settings, stats.clone(), stopper).spawn()?;
    info!(
        "shipping to {} index {} ({} queued in {})",
        es.display_url(),
        es.index,
        spool.depth(),
        spool_path.display()
    );
    Ok(Upstream {
        spool,
        only_anomalies: es.ship == ShipWhat::Anomalies,
        stats,
        shipper,
        fleet: Arc::new(FleetStats::default()),
    })
}

/// Starts the fleet status reporter: what it observes is read from the stages' own
/// counters and the rollout cell, nothing of its own.
fn start_reporter(
    config: &AgentConfig,
    identity: &Identity,
    stats: &Arc<PipelineStats>,
    input: &Input,
    upstream: &Upstream,
    rollout: &RolloutCell,
) -> Result<ReporterHandle> {
    // What the source says of itself: the sampler's faults, or the lines it refused (a
    // lines source has a run per sensor; the agent's own run names its reports).
    let (run_id, source_faults): (_, Box<dyn Fn() -> (u64, bool) + Send>) = match input {
        Input::Sampler(sampler) => {
            let monitor = sampler.monitor().clone();
            let run_id = monitor.run_id();
            let faults = move || {
                let stats = monitor.stats();
                (stats.failures, stats.consecutive_failures > 0)
            };
            (run_id, Box::new(faults))
        }
        Input::Lines(source) => {
            let counts = source.counter();
            let faults = move || {
                let refused = counts().refused.iter().map(|(_, n)| *n).sum::<u64>();
                (refused, false)
            };
            (edge_agent::sensor::RunId::generate()?, Box::new(faults))
        }
    };
    let reporter = Reporter::new(
        fleet::status::ReporterIdentity {
            host_id: identity.host_id.clone(),
            sensor_id: identity.sensor_id.clone(),
            run_id,
        },
        config.fleet.interval(),
        edge_agent::support::log_rate::monotonic_now(),
    );
    let (stats, rollout, ship, spool) = (
        stats.clone(),
        rollout.clone(),
        upstream.stats.clone(),
        upstream.spool.clone(),
    );
    let observe = move || {
        let (sensor_faults, sensor_failing) = source_faults();
        Observed {
            function_sha256: stats.function_sha256(),
            rollout: rollout.snapshot(),
            windows: stats.windows.load(Ordering::Relaxed),
            failed_windows: stats.failed_windows.load(Ordering::Relaxed),
            swaps: stats.swap.swaps.load(Ordering::Relaxed),
            swaps_rolled_back: stats.swap.rolled_back.load(Ordering::Relaxed),
            sensor_faults,
            sensor_failing,
            spool_depth: spool.depth(),
            last_delivery_ms: ship.last_success_ms.load(Ordering::Relaxed),
            clock_synced: edge_agent::sensor::clock::system_clock_sync().is_synced(),
        }
    };
    info!(
        "fleet status into {} every {:?} and on every change",
        config.fleet.index,
        config.fleet.interval()
    );
    Ok(fleet::reporter::spawn(
        reporter,
        observe,
        upstream.spool.clone(),
        upstream.fleet.clone(),
    )?)
}

/// The configuration with the command line's overrides; errors are configuration errors.
fn configure(args: &RunArgs) -> Result<AgentConfig> {
    let mut config = match &args.config {
        Some(path) => AgentConfig::load(path)?,
        None => AgentConfig::default(),
    };
    if args.simulate && args.config.is_none() {
        // A laptop demo: no /var/lib to write to, and the function from this checkout.
        config.sensor.state_dir = std::env::temp_dir().join("edge-agent-simulate");
        if !config.function.path.exists() && Path::new(CHECKOUT_FUNCTION).exists() {
            config.function.path = PathBuf::from(CHECKOUT_FUNCTION);
        }
    }
    if args.simulate && config.source.kind == SourceKind::Lines {
        return Err(fail!(
            "--simulate samples a simulated BME680, but [source] kind is \"lines\""
        ));
    }
    if let Some(function) = &args.function {
        config.function.path = function.clone();
    }
    if let Some(output) = &args.output {
        config.output.path = Some(output.clone());
    }
    // Bounded so every duration scaled by it stays representable.
    if !(MIN_SPEED..=MAX_SPEED).contains(&args.speed) {
        return Err(fail!(
            "--speed must be between {MIN_SPEED} and {MAX_SPEED}, got {}",
            args.speed
        ));
    }
    if args.output.is_some() || args.function.is_some() {
        // The overrides meet the same rules as the file (an --output whose folder is
        // missing), before anything is created.
        config.recheck("the command line")?;
    }
    Ok(config)
}

fn source(args: &RunArgs) -> Result<(SensorSource, SharedClock, f64)> {
    if !args.simulate {
        return Ok((SensorSource::Hardware, Arc::new(SystemClock::new()), 1.0));
    }
    simulated(args)
}

#[cfg(feature = "simulator")]
fn simulated(args: &RunArgs) -> Result<(SensorSource, SharedClock, f64)> {
    use edge_agent::sensor::simulator::Scenario;
    let scenario: Scenario = args
        .scenario
        .parse()
        .map_err(|e| fail!("--scenario: {e} (one of {})", Scenario::NAMES.join(", ")))?;
    Ok((
        SensorSource::Simulated { scenario },
        Arc::new(edge_agent::sensor::ScaledClock::new(args.speed)),
        args.speed,
    ))
}

/// The Pi's release binaries have no simulated chip (the `simulator` feature).
#[cfg(not(feature = "simulator"))]
fn simulated(args: &RunArgs) -> Result<(SensorSource, SharedClock, f64)> {
    Err(fail!(
        "cannot simulate {:?}: this build has no simulated BME680 (the Pi's release binary \
         leaves it out); try --simulate from a checkout (`make demo`)",
        args.scenario
    ))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
