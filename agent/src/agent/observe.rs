//! What watches the agent run: `/metrics` and `/health` served from the stages' own
//! counters, and the fleet status reporter, which reads the same counters and the rollout
//! cell (nothing of its own).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{info, warn};

use super::input::refused;
use super::{AgentError, Input, Upstream};
use crate::config::{MetricsListen, MetricsSection};
use crate::fleet::status::Counters;
use crate::fleet::{self, FleetSection, Observed, Reporter, ReporterHandle};
use crate::health::HealthCell;
use crate::metrics::server::MetricsListener;
use crate::metrics::{
    MetricsServer, PipelineCounts, ShippingCounts, Snapshot, resident_memory_bytes,
};
use crate::pipeline::{Identity, PipelineStats};
use crate::registry::RolloutCell;

/// Binds the metrics address, if any. A configured address that cannot be bound is an
/// error; the default one, when taken (a second agent on the machine, tests running side by
/// side), leaves the agent running without metrics, said once in the log.
pub fn bind_metrics(section: &MetricsSection) -> Result<Option<MetricsListener>, AgentError> {
    let (addr, configured) = match section.listen() {
        Ok(MetricsListen::Disabled) => return Ok(None),
        Ok(MetricsListen::Configured(addr)) => (addr, true),
        Ok(MetricsListen::Default(addr)) => (addr, false),
        // AgentConfig::parse has refused a bad address already.
        Err(e) => return Err(AgentError::Config(format!("[metrics] listen: {e}"))),
    };
    match MetricsListener::bind(addr) {
        Ok(listener) => Ok(Some(listener)),
        Err(error) if !configured && error.is_addr_in_use() => {
            warn!(
                "{error}; running without /metrics and /health (set [metrics] listen to serve them elsewhere)"
            );
            Ok(None)
        }
        Err(error) => Err(AgentError::stage(
            "set [metrics] listen to another address, or enabled = false",
        )(error)),
    }
}

/// Serves `/metrics` and `/health` from the stages' counters.
pub fn serve_metrics(
    listener: MetricsListener,
    stats: &Arc<PipelineStats>,
    input: &Input,
    upstream: Option<&Upstream>,
    health: &Arc<HealthCell>,
    rollout: Option<RolloutCell>,
) -> Result<MetricsServer, AgentError> {
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
    })
    .map_err(AgentError::start)?;
    info!(
        "metrics on http://{addr}/metrics, health on http://{addr}/health",
        addr = server.local_addr()
    );
    Ok(server)
}

/// What the source says of itself for a status document: its faults so far, and whether
/// it is failing now.
type SourceFaults = Box<dyn Fn() -> (u64, bool) + Send>;

/// Starts the fleet status reporter.
pub fn start_reporter(
    section: &FleetSection,
    identity: &Identity,
    stats: &Arc<PipelineStats>,
    input: &Input,
    upstream: &Upstream,
    rollout: &RolloutCell,
) -> Result<ReporterHandle, AgentError> {
    // The sampler's faults, or the lines it refused (a lines source has a run per sensor;
    // the agent's own run names its reports).
    let (run_id, source_faults): (_, SourceFaults) = match input {
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
            let faults = move || (refused(&counts()), false);
            (
                crate::sensor::RunId::generate().map_err(AgentError::start)?,
                Box::new(faults),
            )
        }
    };
    let reporter = Reporter::new(
        fleet::status::ReporterIdentity {
            host_id: identity.host_id.clone(),
            sensor_id: identity.sensor_id.clone(),
            run_id,
        },
        section.interval(),
        crate::support::log_rate::monotonic_now(),
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
            counters: Counters {
                windows: stats.windows.load(Ordering::Relaxed),
                failed_windows: stats.failed_windows.load(Ordering::Relaxed),
                swaps: stats.swap.swaps.load(Ordering::Relaxed),
                swaps_rolled_back: stats.swap.rolled_back.load(Ordering::Relaxed),
                sensor_faults,
                sensor_failing,
                spool_depth: spool.depth(),
            },
            last_delivery_ms: ship.last_success_ms.load(Ordering::Relaxed),
            clock_synced: crate::sensor::clock::system_clock_sync().is_synced(),
        }
    };
    info!(
        "fleet status into {} every {:?} and on every change",
        section.index,
        section.interval()
    );
    fleet::reporter::spawn(
        reporter,
        observe,
        upstream.spool.clone(),
        upstream.fleet.clone(),
    )
    .map_err(AgentError::start)
}
