//! What the agent is doing, for Prometheus: a [`Snapshot`] of every counter the stages
//! keep, [`render`]ed as the Prometheus text exposition format (version 0.0.4), and the
//! liveness verdict the run loop computes for the systemd watchdog, shared as a [`Health`]
//! so `/health` answers with the same judgement instead of computing its own.
//!
//! The rendering is a pure function of the snapshot, so it is tested without a server; the
//! HTTP side is in [`server`]; [`config`] is the `[metrics]` section.

pub mod config;
pub mod server;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::health::Health;
use crate::pipeline::{HistogramSnapshot, PipelineStats};
use crate::registry::{RolloutState, RolloutStatus};
use crate::sensor::SamplerStats;
use crate::ship::{Pause, ShipStats, pause_of_code};
use crate::spool::{SpoolCounts, SpoolStats};
use crate::support::counters::load_counters;

pub use config::{DEFAULT_METRICS_LISTEN, MetricsListen, MetricsSection};
pub use server::{MetricsError, MetricsServer};

/// Function error kinds a window can end in (see `FunctionError::kind`), exported at 0
/// before they first happen so that `rate()` and `increase()` see them from the start.
/// A kind missing here is still exported once it happens.
pub const RUNTIME_ERROR_KINDS: [&str; 9] = [
    "out_of_fuel",
    "deadline",
    "abandoned",
    "memory_limit",
    "trap",
    "bad_output",
    "function",
    "encode",
    "punch_glue",
];

/// The swap counters, as read for [`PipelineCounts`].
struct SwapCounts {
    swaps: u64,
    refused: u64,
    rolled_back: u64,
    startup_fallbacks: u64,
}

/// The pipeline's counters at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PipelineCounts {
    pub samples: u64,
    pub windows: u64,
    pub failed_windows: u64,
    pub verdicts: u64,
    pub anomalies: u64,
    pub swaps: u64,
    pub swaps_refused: u64,
    pub history_errors: u64,
    pub swaps_rolled_back: u64,
    pub startup_fallbacks: u64,
    /// Failed windows by `FunctionError::kind`.
    pub function_errors: BTreeMap<String, u64>,
    pub fuel: HistogramSnapshot,
    /// Fuel of the latest window that ran to the end.
    pub fuel_last: u64,
    pub function_sha256: String,
    /// Sensors with windows now, and windows closed to make room at the bound.
    pub sensors_active: u64,
    pub sensors_evicted: u64,
    pub output_unwritten: u64,
    pub output_rotations: u64,
}

impl PipelineCounts {
    pub fn of(stats: &PipelineStats) -> Self {
        let swap = load_counters!(SwapCounts from stats.swap, [swaps, refused, rolled_back, startup_fallbacks]);
        load_counters!(
            Self from stats,
            [samples, windows, failed_windows, verdicts, anomalies, history_errors, fuel_last, sensors_active, sensors_evicted, output_unwritten, output_rotations],
            swaps: swap.swaps,
            swaps_refused: swap.refused,
            swaps_rolled_back: swap.rolled_back,
            startup_fallbacks: swap.startup_fallbacks,
            function_errors: stats
                .function_errors()
                .into_iter()
                .map(|(kind, n)| (kind.to_owned(), n))
                .collect(),
            fuel: stats.fuel.snapshot(),
            function_sha256: stats.function_sha256(),
        )
    }
}

/// The spool's and the shipper's counters at one instant. The spool's document counters
/// add up: `spool.appended = spool.delivered + spool.dead_lettered + spool.dropped +
/// spool.depth`, read together under the spool's lock.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShippingCounts {
    pub spool: SpoolCounts,
    pub shipped: u64,
    pub duplicates: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub requests: u64,
    /// Unix ms of the last request that delivered anything; 0 before the first.
    pub last_success_ms: u64,
    pub pauses: u64,
    /// Why shipping is paused now, if it is.
    pub paused: Option<Pause>,
    pub template_installs: u64,
    pub template_forbidden: bool,
    pub dead_letter_rotations: u64,
    /// Fleet-safe catch-up and status documents (see [`ShippingCounts::with_fleet`]).
    pub fleet: FleetCounts,
}

/// The fleet status reporter's and the catch-up's counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FleetCounts {
    /// Status documents spooled, delivered, and change reports held back by the bound.
    pub status_written: u64,
    pub status_delivered: u64,
    pub status_deferred: u64,
    /// Times the drain cap held a batch back, and for how long in all.
    pub throttled: u64,
    pub throttled_ms: u64,
    /// Times a first try was spread over `retry_spread_ms`.
    pub spread_waits: u64,
}

impl ShippingCounts {
    pub fn of(ship: &ShipStats, spool: &SpoolStats) -> Self {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        load_counters!(
            Self from ship,
            [shipped, duplicates, retried, dead_lettered, requests, last_success_ms, pauses, template_installs, dead_letter_rotations],
            spool: spool.snapshot(),
            paused: pause_of_code(load(&ship.paused)),
            template_forbidden: load(&ship.template_forbidden) != 0,
            fleet: load_counters!(
                FleetCounts from ship,
                [status_delivered, throttled, throttled_ms, spread_waits],
                ..FleetCounts::default()
            ),
        )
    }

    /// With the status reporter's counters, when it runs.
    pub fn with_fleet(mut self, fleet: Option<&crate::fleet::FleetStats>) -> Self {
        if let Some(fleet) = fleet {
            self.fleet.status_written = fleet.written.load(Ordering::Relaxed);
            self.fleet.status_deferred = fleet.deferred.load(Ordering::Relaxed);
        }
        self
    }

    /// For `/health` and the status line: the disk refuses the spool's writes.
    pub fn disk_degraded(&self) -> bool {
        self.spool.degraded
    }
}

/// Everything `/metrics` shows, read at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub health: Health,
    pub sampler: SamplerStats,
    pub pipeline: PipelineCounts,
    /// `None` without `[elasticsearch]`: no spool, no shipper.
    pub shipping: Option<ShippingCounts>,
    /// `None` unless `[source] kind = "lines"`.
    pub lines: Option<crate::sensor::lines::LinesCounts>,
    /// `None` where `/proc/self/status` cannot be read.
    pub resident_memory_bytes: Option<u64>,
    /// Unix seconds when the agent started.
    pub start_time_seconds: f64,
    /// `None` without `[registry]`.
    pub rollout: Option<RolloutStatus>,
}

/// The resident set size of this process, from `/proc/self/status` (`VmRSS`, in KiB):
/// unlike `/proc/self/statm` it needs no page size, which is 16 KiB on a Pi 5's kernel.
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Names of the sampler's fault counters as labels, in `FaultKind` order.
fn sensor_faults(stats: &SamplerStats) -> [(&'static str, u64); 6] {
    [
        ("bus_error", stats.bus_errors),
        ("not_found", stats.not_found),
        ("no_data", stats.no_data),
        ("driver_panic", stats.driver_panics),
        ("runaway", stats.runaways),
        ("open_error", stats.open_errors),
    ]
}

/// The snapshot in the Prometheus text exposition format, version 0.0.4.
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = Exposition::default();
    let s = &snapshot.sampler;
    let p = &snapshot.pipeline;
    // The wall clock as the sampler saw it, or the lines source stamping on receipt: one
    // clock, so one set of metrics (an agent has one source or the other).
    let (steps_back, steps_forward, unsynced) = match &snapshot.lines {
        Some(lines) => (
            s.clock_steps_back.saturating_add(lines.clock_steps_back),
            s.clock_steps_forward
                .saturating_add(lines.clock_steps_forward),
            s.unsynced_samples.saturating_add(lines.unsynced_samples),
        ),
        None => (
            s.clock_steps_back,
            s.clock_steps_forward,
            s.unsynced_samples,
        ),
    };

    out.family(
        "edge_agent_up",
        "gauge",
        "1 while the pipeline and the sampler make progress (what the systemd watchdog hears), else 0.",
    );
    out.sample(
        "edge_agent_up",
        &[],
        u64::from(snapshot.health == Health::Alive),
    );
    out.family(
        "edge_agent_start_time_seconds",
        "gauge",
        "When the agent started, Unix seconds.",
    );
    out.float(
        "edge_agent_start_time_seconds",
        &[],
        snapshot.start_time_seconds,
    );
    out.family(
        "edge_agent_function_info",
        "gauge",
        "The function module in use, by sha256; always 1.",
    );
    out.sample(
        "edge_agent_function_info",
        &[("sha256", &p.function_sha256)],
        1,
    );

    // The sensor.
    out.counter(
        "edge_agent_samples_read_total",
        "Samples read from the sensor and put in the ring buffer.",
        s.samples,
    );
    out.family(
        "edge_agent_sensor_faults_total",
        "counter",
        "Failed sensor reads and initialisations, by kind.",
    );
    for (kind, n) in sensor_faults(s) {
        out.sample("edge_agent_sensor_faults_total", &[("kind", kind)], n);
    }
    out.counter(
        "edge_agent_sensor_reinits_total",
        "Re-initialisations of the chip after repeated failures.",
        s.reinits,
    );
    out.counter(
        "edge_agent_sensor_skipped_periods_total",
        "Sample periods that passed without a sample.",
        s.skipped_periods,
    );
    out.counter(
        "edge_agent_gas_unusable_total",
        "Samples whose gas reading was invalid or whose heater was not stable.",
        s.gas_unusable,
    );
    out.family(
        "edge_agent_clock_steps_total",
        "counter",
        "Steps of the wall clock seen between two samples, by direction (timestamps stay monotone).",
    );
    out.sample(
        "edge_agent_clock_steps_total",
        &[("direction", "back")],
        steps_back,
    );
    out.sample(
        "edge_agent_clock_steps_total",
        &[("direction", "forward")],
        steps_forward,
    );
    out.counter(
        "edge_agent_samples_unsynced_total",
        "Samples stamped while the system clock was not synchronised (clock_synced false).",
        unsynced,
    );
    out.counter(
        "edge_agent_sensor_log_lines_suppressed_total",
        "Sensor state-change log lines held back by the log rate limit.",
        s.state_changes_suppressed,
    );
    out.counter(
        "edge_agent_ring_overwritten_total",
        "Samples lost in the ring buffer because the pipeline fell behind.",
        s.overwritten.saturating_add(s.dropped),
    );
    out.family(
        "edge_agent_sensor_consecutive_failures",
        "gauge",
        "Failed sensor reads since the last good one.",
    );
    out.sample(
        "edge_agent_sensor_consecutive_failures",
        &[],
        u64::from(s.consecutive_failures),
    );

    // The pipeline and the function.
    out.counter(
        "edge_agent_samples_processed_total",
        "Samples the pipeline took from the ring buffer.",
        p.samples,
    );
    out.counter(
        "edge_agent_windows_total",
        "Windows the function ran on, judged or failed.",
        p.windows,
    );
    out.counter(
        "edge_agent_window_history_errors_total",
        "Failed saves of the windows' samples for a restart (the windows go on from memory).",
        p.history_errors,
    );
    out.counter(
        "edge_agent_verdicts_total",
        "Verdicts emitted, one per sample.",
        p.verdicts,
    );
    out.counter(
        "edge_agent_anomalies_total",
        "Samples the function flagged as anomalies.",
        p.anomalies,
    );
    out.family(
        "edge_agent_function_errors_total",
        "counter",
        "Windows the function did not judge, by error kind.",
    );
    let mut errors: BTreeMap<&str, u64> = RUNTIME_ERROR_KINDS.iter().map(|&k| (k, 0)).collect();
    for (kind, n) in &p.function_errors {
        errors.insert(kind, *n);
    }
    for (kind, n) in errors {
        out.sample("edge_agent_function_errors_total", &[("kind", kind)], n);
    }
    out.family(
        "edge_agent_window_fuel",
        "histogram",
        "Fuel (wasm operators, four per branch) the function burnt per judged window.",
    );
    for (bound, n) in &p.fuel.buckets {
        out.sample(
            "edge_agent_window_fuel_bucket",
            &[("le", &bound.to_string())],
            *n,
        );
    }
    out.sample(
        "edge_agent_window_fuel_bucket",
        &[("le", "+Inf")],
        p.fuel.count,
    );
    out.sample("edge_agent_window_fuel_sum", &[], p.fuel.sum);
    out.sample("edge_agent_window_fuel_count", &[], p.fuel.count);
    out.family(
        "edge_agent_window_fuel_last",
        "gauge",
        "Fuel the latest judged window burnt.",
    );
    out.sample("edge_agent_window_fuel_last", &[], p.fuel_last);
    out.counter(
        "edge_agent_function_swaps_total",
        "Replacement functions swapped in.",
        p.swaps,
    );
    out.counter(
        "edge_agent_function_swaps_refused_total",
        "Replacement modules refused: not valid wasm, refused their parameters, failed the canary run on the latest window, or need longer windows.",
        p.swaps_refused,
    );
    out.counter(
        "edge_agent_function_rollbacks_total",
        "Swapped-in functions that failed 3 of their first 5 windows and were replaced by the last good one.",
        p.swaps_rolled_back,
    );
    out.counter(
        "edge_agent_function_startup_fallbacks_total",
        "Starts where the configured function failed to load or init and the last good one ran instead.",
        p.startup_fallbacks,
    );

    // The spool and the shipper.
    if let Some(ship) = &snapshot.shipping {
        let spool = &ship.spool;
        out.family(
            "edge_agent_spool_depth_documents",
            "gauge",
            "Documents in the spool waiting for the cluster's answer.",
        );
        out.sample("edge_agent_spool_depth_documents", &[], spool.depth);
        out.family(
            "edge_agent_spool_bytes",
            "gauge",
            "Bytes of the documents in the spool.",
        );
        out.sample("edge_agent_spool_bytes", &[], spool.bytes);
        out.family(
            "edge_agent_spool_file_bytes",
            "gauge",
            "Bytes of the spool's database file (bounded by [spool] max_mib).",
        );
        out.sample("edge_agent_spool_file_bytes", &[], spool.file_bytes);
        out.counter(
            "edge_agent_spool_appended_total",
            "Documents committed to the spool (or refused by drop_newest); equals delivered + dead-lettered + dropped + depth.",
            spool.appended,
        );
        out.counter(
            "edge_agent_spool_delivered_total",
            "Documents that left the spool delivered (stored, or already there).",
            spool.delivered,
        );
        out.counter(
            "edge_agent_spool_dead_lettered_total",
            "Documents that left the spool refused for good or quarantined.",
            spool.dead_lettered,
        );
        out.counter(
            "edge_agent_spool_dropped_total",
            "Documents dropped because the spool was full (when_full policy).",
            spool.dropped,
        );
        out.counter(
            "edge_agent_spool_quarantined_total",
            "Spool entries moved aside because they did not read (part of dead-lettered).",
            spool.quarantined,
        );
        out.counter(
            "edge_agent_spool_resets_total",
            "Spool databases moved aside because they did not open, and started anew.",
            spool.resets,
        );
        out.family(
            "edge_agent_spool_pending_documents",
            "gauge",
            "Verdicts kept in memory because the disk refuses the spool's writes.",
        );
        out.sample("edge_agent_spool_pending_documents", &[], spool.pending);
        out.counter(
            "edge_agent_spool_lost_total",
            "Verdicts lost: the disk refused them and the in-memory bound was reached.",
            spool.lost,
        );
        out.counter(
            "edge_agent_spool_write_errors_total",
            "Spool commits the disk refused (full, read-only).",
            spool.write_errors,
        );
        out.family(
            "edge_agent_spool_degraded",
            "gauge",
            "1 while the disk refuses the spool's writes.",
        );
        out.sample("edge_agent_spool_degraded", &[], u64::from(spool.degraded));
        out.family(
            "edge_agent_shipping_paused",
            "gauge",
            "1 for the reason shipping is paused now (the spool is kept), by reason.",
        );
        for why in [
            Pause::Unauthorized,
            Pause::Blocked,
            Pause::MissingIndex,
            Pause::Misrouted,
        ] {
            out.sample(
                "edge_agent_shipping_paused",
                &[("reason", why.label())],
                u64::from(ship.paused == Some(why)),
            );
        }
        out.counter(
            "edge_agent_shipping_pauses_total",
            "Times shipping paused: authorisation, a block, a missing index, misrouting.",
            ship.pauses,
        );
        out.counter(
            "edge_agent_template_installs_total",
            "Times the index template was installed (at start, and when found missing).",
            ship.template_installs,
        );
        out.family(
            "edge_agent_template_forbidden",
            "gauge",
            "1 when the credentials may not install the index template (shipping goes on).",
        );
        out.sample(
            "edge_agent_template_forbidden",
            &[],
            u64::from(ship.template_forbidden),
        );
        out.counter(
            "edge_agent_dead_letter_rotations_total",
            "Times the dead-letter file reached its bound and was rotated.",
            ship.dead_letter_rotations,
        );
        out.counter(
            "edge_agent_documents_shipped_total",
            "Documents the cluster acknowledged.",
            ship.shipped,
        );
        out.counter(
            "edge_agent_documents_duplicate_total",
            "Documents already in the index from an earlier try (409 on create).",
            ship.duplicates,
        );
        out.counter(
            "edge_agent_documents_retried_total",
            "Documents sent again after a retriable failure.",
            ship.retried,
        );
        out.counter(
            "edge_agent_documents_dead_lettered_total",
            "Documents the cluster refused for good, written to the dead-letter file.",
            ship.dead_lettered,
        );
        out.counter(
            "edge_agent_bulk_requests_total",
            "_bulk requests sent.",
            ship.requests,
        );
        out.family(
            "edge_agent_last_ship_timestamp_seconds",
            "gauge",
            "When a request last delivered documents, Unix seconds; 0 before the first.",
        );
        out.float(
            "edge_agent_last_ship_timestamp_seconds",
            &[],
            ship.last_success_ms as f64 / 1000.0,
        );

        // Fleet status documents and fleet-safe catch-up.
        let fleet = &ship.fleet;
        out.counter(
            "edge_agent_status_documents_written_total",
            "Fleet status documents spooled (start, changes, periodic, stop).",
            fleet.status_written,
        );
        out.counter(
            "edge_agent_status_documents_delivered_total",
            "Fleet status documents the cluster acknowledged (part of documents shipped).",
            fleet.status_delivered,
        );
        out.counter(
            "edge_agent_status_changes_deferred_total",
            "Change-driven status documents held back by their bound (sent later).",
            fleet.status_deferred,
        );
        out.counter(
            "edge_agent_drain_throttled_total",
            "Times the drain cap ([elasticsearch] drain_max_docs_per_sec) held a batch back.",
            fleet.throttled,
        );
        out.family(
            "edge_agent_drain_throttled_seconds_total",
            "counter",
            "Time the drain cap held batches back.",
        );
        out.float(
            "edge_agent_drain_throttled_seconds_total",
            &[],
            fleet.throttled_ms as f64 / 1000.0,
        );
        out.counter(
            "edge_agent_retry_spread_waits_total",
            "First tries after a failure (or at a start with a backlog) spread over retry_spread_ms.",
            fleet.spread_waits,
        );
    }

    // --- sensors' windows, and the lines source (`[source] kind = "lines"`) ---
    out.family(
        "edge_agent_window_sensors",
        "gauge",
        "Sensors whose windows the pipeline keeps now.",
    );
    out.sample("edge_agent_window_sensors", &[], p.sensors_active);
    out.counter(
        "edge_agent_window_sensors_evicted_total",
        "Sensors' windows closed (their pending samples judged) to make room for a new sensor.",
        p.sensors_evicted,
    );
    out.counter(
        "edge_agent_output_unwritten_total",
        "Verdicts the NDJSON output ([output] path or standard output) could not write: a full disk, a closed pipe.",
        p.output_unwritten,
    );
    out.counter(
        "edge_agent_output_rotations_total",
        "Times the NDJSON output file reached [output] max_mib and was renamed to <path>.1.",
        p.output_rotations,
    );
    if let Some(lines) = &snapshot.lines {
        let source = [("source", lines.transport)];
        let counters = [
            (
                "edge_agent_lines_read_total",
                "Lines read from the source (blank ones aside): accepted, refused or headers.",
                lines.lines,
            ),
            (
                "edge_agent_lines_accepted_total",
                "Lines that became a sample in the queue.",
                lines.accepted,
            ),
            (
                "edge_agent_lines_headers_total",
                "CSV header lines taken (read = accepted + refused + headers).",
                lines.headers,
            ),
            (
                "edge_agent_lines_connections_total",
                "TCP clients accepted.",
                lines.connections,
            ),
            (
                "edge_agent_lines_connections_refused_total",
                "TCP clients turned away at max_connections.",
                lines.connections_refused,
            ),
            (
                "edge_agent_lines_connections_idle_closed_total",
                "TCP clients closed after idle_timeout_s without a line.",
                lines.connections_idle,
            ),
            (
                "edge_agent_lines_sensors_expired_total",
                "Sensors forgotten after sensor_idle_s of silence.",
                lines.sensors_expired,
            ),
            (
                "edge_agent_lines_queue_waits_total",
                "Times a stream waited for room in the full queue (the client slowed down, nothing lost).",
                lines.queue_waits,
            ),
            (
                "edge_agent_lines_not_allowed_total",
                "TCP clients closed and UDP datagrams dropped from addresses outside [source] allow, before a byte was read.",
                lines.not_allowed,
            ),
        ];
        let kernel = lines.kernel_drops.map(|drops| {
            (
                "edge_agent_lines_kernel_drops_total",
                "UDP datagrams the kernel dropped for want of room in the socket's receive buffer.",
                drops,
            )
        });
        for (name, help, value) in counters.into_iter().chain(kernel) {
            out.family(name, "counter", help);
            out.sample(name, &source, value);
        }
        out.family(
            "edge_agent_lines_refused_total",
            "counter",
            "Lines dropped, by reason.",
        );
        for (reason, n) in &lines.refused {
            out.sample(
                "edge_agent_lines_refused_total",
                &[("source", lines.transport), ("reason", reason)],
                *n,
            );
        }
        if let Some(failures) = &lines.handshake_failures {
            out.family(
                "edge_agent_lines_tls_handshakes_failed_total",
                "counter",
                "TLS handshakes that did not finish (the connection closed, its place freed), by reason.",
            );
            for (reason, n) in failures {
                out.sample(
                    "edge_agent_lines_tls_handshakes_failed_total",
                    &[("source", lines.transport), ("reason", reason)],
                    *n,
                );
            }
        }
        for (name, help, value) in [
            (
                "edge_agent_lines_connections_open",
                "TCP clients connected now.",
                lines.connections_open,
            ),
            (
                "edge_agent_lines_sensors_active",
                "Sensors the source knows now (at most max_sensors).",
                lines.sensors_active,
            ),
        ] {
            out.family(name, "gauge", help);
            out.sample(name, &source, value);
        }
    }

    // The function registry.
    if let Some(rollout) = &snapshot.rollout {
        out.family(
            "edge_agent_registry_state",
            "gauge",
            "Where this agent stands with the function registry: 1 for the current state.",
        );
        for state in RolloutState::ALL {
            let value = u64::from(rollout.state == state);
            out.sample(
                "edge_agent_registry_state",
                &[("state", state.label())],
                value,
            );
        }
        out.family(
            "edge_agent_registry_manifest_version",
            "gauge",
            "The highest signed manifest version accepted; 0 before the first.",
        );
        let version = rollout.manifest_version.unwrap_or(0);
        out.sample("edge_agent_registry_manifest_version", &[], version);
        out.counter(
            "edge_agent_registry_refused_total",
            "Manifests or modules refused: bad signature, older version, sha256 or size mismatch, a window too short.",
            rollout.refused,
        );
        out.counter(
            "edge_agent_registry_rollbacks_total",
            "Registry versions that failed their canary or probation here; never tried again.",
            rollout.rolled_back,
        );
        out.counter(
            "edge_agent_registry_requests_total",
            "Manifest requests.",
            rollout.requests,
        );
        out.counter(
            "edge_agent_registry_not_modified_total",
            "Manifest requests answered 304 Not Modified (or an unchanged file).",
            rollout.not_modified,
        );
        out.counter(
            "edge_agent_registry_errors_total",
            "Registry requests that failed (network, HTTP status).",
            rollout.fetch_errors,
        );
    }

    if let Some(bytes) = snapshot.resident_memory_bytes {
        out.family(
            "edge_agent_resident_memory_bytes",
            "gauge",
            "Resident memory of the agent process.",
        );
        out.sample("edge_agent_resident_memory_bytes", &[], bytes);
    }
    out.text
}

/// The text being written, one family after another.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.name_and_labels(name, labels);
        let _ = writeln!(self.text, " {value}");
    }

    fn float(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.name_and_labels(name, labels);
        let _ = writeln!(self.text, " {}", format_float(value));
    }

    fn name_and_labels(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.text.push_str(name);
        if labels.is_empty() {
            return;
        }
        self.text.push('{');
        for (i, (label, value)) in labels.iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            let _ = write!(self.text, "{label}=\"{}\"", escape_label(value));
        }
        self.text.push('}');
    }
}

/// Values as Prometheus spells them: `+Inf`, `-Inf`, `NaN`, or a Go-parsable float.
fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{value}")
    }
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            health: Health::Alive,
            sampler: SamplerStats {
                samples: 12,
                bus_errors: 3,
                ..SamplerStats::default()
            },
            pipeline: PipelineCounts {
                windows: 4,
                function_errors: [("trap".to_owned(), 2)].into_iter().collect(),
                function_sha256: "ab\"c\\d".into(),
                ..PipelineCounts::default()
            },
            lines: None,
            shipping: Some(ShippingCounts {
                last_success_ms: 1_700_000_000_123,
                ..ShippingCounts::default()
            }),
            resident_memory_bytes: Some(6 << 20),
            start_time_seconds: 1_700_000_000.5,
            rollout: None,
        }
    }

    #[test]
    fn kinds_are_labels_and_known_error_kinds_start_at_zero() {
        let text = render(&snapshot());
        assert!(text.contains("edge_agent_sensor_faults_total{kind=\"bus_error\"} 3\n"));
        assert!(text.contains("edge_agent_sensor_faults_total{kind=\"open_error\"} 0\n"));
        assert!(text.contains("edge_agent_function_errors_total{kind=\"trap\"} 2\n"));
        assert!(text.contains("edge_agent_function_errors_total{kind=\"out_of_fuel\"} 0\n"));
        assert!(text.contains("edge_agent_function_info{sha256=\"ab\\\"c\\\\d\"} 1\n"));
        assert!(text.contains("edge_agent_last_ship_timestamp_seconds 1700000000.123\n"));
        assert!(text.contains("edge_agent_up 1\n"));
    }

    #[test]
    fn shipping_families_only_with_a_spool() {
        let mut snapshot = snapshot();
        assert!(render(&snapshot).contains("edge_agent_spool_depth_documents 0\n"));
        snapshot.shipping = None;
        assert!(!render(&snapshot).contains("edge_agent_spool"));
    }
}
