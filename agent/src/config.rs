//! The agent's configuration file, TOML. Every key is documented, with its default, in
//! `deploy/config.example.toml`; every section refuses unknown keys. The whole file is
//! checked before anything is created or started: a file that does not parse, a value out
//! of its range ([`bounds`]), a URL reqwest would refuse, an index name Elasticsearch would
//! refuse, a CA or secret file that is missing or wrong, is an error naming the key and its
//! line, both taken from the TOML parser's spans. A new key goes in its section's struct,
//! in `check` (with a bound), and in the example.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edge_function::Params;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use std::time::Duration;

use crate::function::Limits;
use crate::sensor::SensorConfig;
use crate::ship::ShipperSettings;
use crate::spool::WhenFull;
use crate::support::file::read_regular_capped;
use crate::window::WindowSpec;

/// Where the packaged function lives (the .deb installs it here).
pub const DEFAULT_FUNCTION_PATH: &str = "/usr/lib/edge-agent/functions/anomaly.wasm";

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    pub agent: AgentSection,
    pub sensor: SensorConfig,
    pub function: FunctionSection,
    pub window: WindowSection,
    pub output: OutputSection,
    /// Where verdicts go when Elasticsearch is configured: the durable spool.
    pub spool: SpoolSection,
    /// The upstream; without it, verdicts go to `[output]`.
    pub elasticsearch: Option<ElasticsearchSection>,
    /// `/metrics` and `/health` over HTTP.
    pub metrics: MetricsSection,
    /// Fleet status documents (with `[elasticsearch]`); see `crate::fleet`.
    pub fleet: crate::fleet::FleetSection,
    /// Where samples come from: the BME680, or lines from other sensors.
    pub source: crate::sensor::lines::SourceConfig,
    /// The signed function registry (`registry/config.rs`); without it, the function file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<crate::registry::RegistrySection>,
}

/// Who is measuring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSection {
    /// Names this sensor in every verdict. Default `bme680`.
    pub sensor_id: String,
    /// Names this machine in every verdict. Default: the host name.
    pub host_id: Option<String>,
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            sensor_id: "bme680".into(),
            host_id: None,
        }
    }
}

/// The data function and its sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FunctionSection {
    pub path: PathBuf,
    /// Named parameters passed to the function's `init`.
    pub params: BTreeMap<String, ParamValue>,
    pub fuel_per_call: u64,
    pub max_memory_mib: usize,
    /// Wall time one window may spend in the function, all its calls together.
    pub deadline_ms: u64,
    /// How often the function file is checked for a replacement.
    pub watch_interval_ms: u64,
}

impl Default for FunctionSection {
    fn default() -> Self {
        Self {
            path: PathBuf::from(DEFAULT_FUNCTION_PATH),
            params: BTreeMap::new(),
            fuel_per_call: Limits::DEFAULT_FUEL_PER_CALL,
            max_memory_mib: Limits::DEFAULT_MAX_MEMORY_BYTES >> 20,
            deadline_ms: Limits::DEFAULT_DEADLINE_MS,
            watch_interval_ms: 250,
        }
    }
}

impl FunctionSection {
    pub fn params(&self) -> Params {
        self.params
            .iter()
            .map(|(name, value)| (name.clone(), value.to_string()))
            .collect()
    }

    pub fn limits(&self) -> Limits {
        Limits {
            fuel_per_call: self.fuel_per_call,
            // Checked by `AgentConfig::parse`; saturating only for a hand-made section.
            max_memory_bytes: self.max_memory_bytes().unwrap_or(usize::MAX),
            deadline: std::time::Duration::from_millis(self.deadline_ms),
        }
    }
}

/// A parameter as TOML spells it; the function receives its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Integer(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Integer(v) => write!(f, "{v}"),
            Self::Float(v) => write!(f, "{v}"),
            Self::Bool(v) => write!(f, "{v}"),
            Self::Text(v) => f.write_str(v),
        }
    }
}

/// Window size N and hop H, in samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowSection {
    pub size: usize,
    pub hop: usize,
}

impl Default for WindowSection {
    fn default() -> Self {
        Self {
            size: 1024,
            hop: 60,
        }
    }
}

/// Where verdicts go: without an upstream, the only copy; with one, a local copy besides
/// the spool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct OutputSection {
    /// An NDJSON file to append to; standard output when absent or `-`.
    pub path: Option<PathBuf>,
}

/// The durable queue between the pipeline and the shipper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolSection {
    /// Default `spool.redb` in `[sensor] state_dir`.
    pub path: Option<PathBuf>,
    /// The most the spool may hold, in MiB (about 300 bytes a verdict: 64 MiB is two
    /// days of 1 Hz samples).
    pub max_mib: u64,
    /// `drop_oldest` or `drop_newest`, when full.
    pub when_full: WhenFull,
}

impl Default for SpoolSection {
    fn default() -> Self {
        Self {
            path: None,
            max_mib: 64,
            when_full: WhenFull::DropOldest,
        }
    }
}

/// Where `/metrics` (Prometheus) and `/health` are served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    pub enabled: bool,
    /// `IP:port`; port 0 takes any free port (the log names it); empty disables. Unset:
    /// [`DEFAULT_METRICS_LISTEN`], where a port already taken is a warning, not an error.
    pub listen: Option<String>,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
        }
    }
}

/// Loopback only: the numbers say nothing secret, but nobody should have to firewall them.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9898";

/// Where to serve metrics, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListen {
    Disabled,
    /// The address was set: failing to bind it is an error.
    Configured(std::net::SocketAddr),
    /// The default address: when taken (a second agent, a test), the agent runs without.
    Default(std::net::SocketAddr),
}

impl MetricsSection {
    /// Checked by [`AgentConfig::parse`]; a bad address there is a configuration error.
    pub fn listen(&self) -> Result<MetricsListen, std::net::AddrParseError> {
        match self.listen.as_deref().map(str::trim) {
            _ if !self.enabled => Ok(MetricsListen::Disabled),
            Some("") => Ok(MetricsListen::Disabled),
            Some(addr) => addr.parse().map(MetricsListen::Configured),
            None => DEFAULT_METRICS_LISTEN.parse().map(MetricsListen::Default),
        }
    }
}

/// What to send upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipWhat {
    /// Every sample with its verdict, so a dashboard can draw the series.
    #[default]
    All,
    /// Only the flagged samples, for thin links.
    Anomalies,
}

/// The Elasticsearch (or OpenSearch) cluster verdicts are shipped to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticsearchSection {
    pub url: String,
    /// Index (or data stream) name.
    pub index: String,
    /// Write to a data stream (the template says so; only `create` is used either way).
    pub data_stream: bool,
    pub ship: ShipWhat,
    pub install_template: bool,
    pub username: Option<String>,
    /// Prefer the environment (`EDGE_AGENT_ES_PASSWORD`) or `password_file`.
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    /// The `encoded` API key; prefer `EDGE_AGENT_ES_API_KEY` or `api_key_file`.
    pub api_key: Option<String>,
    pub api_key_file: Option<PathBuf>,
    /// PEM file of the CA to trust instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Compress request bodies.
    pub gzip: bool,
    pub batch_max_docs: usize,
    pub batch_max_bytes: usize,
    pub batch_max_delay_ms: u64,
    pub timeout_ms: u64,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// Wait after 401/403 before trying again.
    pub auth_retry_ms: u64,
    /// Default `dead-letter.ndjson` in `[sensor] state_dir`.
    pub dead_letter_path: Option<PathBuf>,
    /// The dead-letter file is rotated (one older file kept, `.1`) past this size.
    pub dead_letter_max_mib: u64,
    /// Fleet-safe catch-up: documents per second at most (0: no cap).
    pub drain_max_docs_per_sec: u32,
    /// Fleet-safe catch-up: the first try after a failure waits a random share of this.
    pub retry_spread_ms: u64,
}

impl Default for ElasticsearchSection {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:9200".into(),
            index: "edge-agent".into(),
            data_stream: false,
            ship: ShipWhat::All,
            install_template: true,
            username: None,
            password: None,
            password_file: None,
            api_key: None,
            api_key_file: None,
            ca_file: None,
            gzip: false,
            batch_max_docs: 1000,
            batch_max_bytes: 5 << 20,
            batch_max_delay_ms: 2000,
            timeout_ms: 30_000,
            retry_initial_ms: 500,
            retry_max_ms: 60_000,
            auth_retry_ms: 300_000,
            dead_letter_path: None,
            dead_letter_max_mib: 16,
            drain_max_docs_per_sec: 0,
            retry_spread_ms: 30_000,
        }
    }
}

impl ElasticsearchSection {
    /// The shipper's settings; the dead-letter file defaults into `state_dir`.
    pub fn shipper_settings(&self, state_dir: &Path) -> ShipperSettings {
        ShipperSettings {
            index: self.index.clone(),
            data_stream: self.data_stream,
            install_template: self.install_template,
            batch_max_docs: self.batch_max_docs,
            batch_max_bytes: self.batch_max_bytes,
            batch_max_delay: Duration::from_millis(self.batch_max_delay_ms),
            retry_initial: Duration::from_millis(self.retry_initial_ms),
            retry_max: Duration::from_millis(self.retry_max_ms),
            auth_retry: Duration::from_millis(self.auth_retry_ms),
            dead_letter: self
                .dead_letter_path
                .clone()
                .unwrap_or_else(|| state_dir.join("dead-letter.ndjson")),
            dead_letter_max_bytes: self.dead_letter_max_mib.saturating_mul(1 << 20),
            status_index: crate::fleet::DEFAULT_STATUS_INDEX.into(),
            status_template: None,
            drain_max_docs_per_sec: self.drain_max_docs_per_sec,
            retry_spread: Duration::from_millis(self.retry_spread_ms),
        }
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: {detail}")]
    Parse { path: String, detail: String },
    #[error("{path}{}: `{key}`: {reason}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Invalid {
        path: String,
        key: String,
        line: Option<usize>,
        reason: String,
    },
}

/// The ranges that make sense on a Raspberry Pi; a value outside is a configuration error.
pub mod bounds {
    use std::ops::RangeInclusive;

    /// S-H-ESD on 4096 samples takes 0.3 s in wasmi on a laptop; four times that on a Pi is
    /// still seconds per window, and the ring and the window stay within a few MiB.
    pub const WINDOW_SIZE: RangeInclusive<usize> = 1..=16_384;
    /// Up to minutes of a Pi's time per window: beyond that a runaway is never stopped.
    pub const FUEL_PER_CALL: RangeInclusive<u64> = 1..=1_000_000_000_000;
    /// A Pi Zero has 512 MiB in all; wasm32 cannot address 4 GiB anyway.
    pub const MAX_MEMORY_MIB: RangeInclusive<usize> = 1..=1024;
    pub const WATCH_INTERVAL_MS: RangeInclusive<u64> = 10..=3_600_000;
    /// A window's wall time in the function: long enough for a slow Pi, short enough that
    /// a stop (two windows) fits the unit's 20 s stop timeout... at the default; at most a
    /// minute, beyond which the watchdog would call the pipeline stalled anyway.
    pub const DEADLINE_MS: RangeInclusive<u64> = 10..=60_000;
    /// SD cards of 16 GiB are common; the spool should never be able to take the card.
    pub const SPOOL_MAX_MIB: RangeInclusive<u64> = 1..=16_384;
    pub const DEAD_LETTER_MAX_MIB: RangeInclusive<u64> = 1..=1024;
    /// Bounds the `_bulk` response the agent reads as well as the request.
    pub const BATCH_MAX_DOCS: RangeInclusive<usize> = 1..=10_000;
    /// Elasticsearch refuses requests above `http.max_content_length` (100 MB) anyway.
    pub const BATCH_MAX_BYTES: RangeInclusive<usize> = 1024..=(64 << 20);
    pub const BATCH_MAX_DELAY_MS: RangeInclusive<u64> = 0..=600_000;
    pub const TIMEOUT_MS: RangeInclusive<u64> = 100..=300_000;
    pub const RETRY_MS: RangeInclusive<u64> = 1..=86_400_000;
    pub const AUTH_RETRY_MS: RangeInclusive<u64> = 1_000..=86_400_000;
    /// Ids become part of every document `_id` (`<sensor_id>-<unix ms>`).
    pub const ID_BYTES: RangeInclusive<usize> = 1..=128;
    /// Elasticsearch's own limit on an index name.
    pub const INDEX_BYTES: RangeInclusive<usize> = 1..=255;
    /// A secret or CA file larger than this is not one.
    pub const SECRET_FILE_BYTES: u64 = crate::ship::SECRET_FILE_MAX_BYTES;
    /// The configuration file itself: a few KiB in practice.
    pub const CONFIG_FILE_BYTES: u64 = 1 << 20;
    /// 0 is no cap; a Pi makes about 1 document a second, a catch-up at 100 000 a second
    /// would be no cap at all.
    pub const DRAIN_MAX_DOCS_PER_SEC: RangeInclusive<u64> = 0..=100_000;
    /// Up to an hour: a fleet of tens of thousands may want its returns spread that wide.
    pub const RETRY_SPREAD_MS: RangeInclusive<u64> = 0..=3_600_000;
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let read_error = |reason: String| ConfigError::Read {
            path: path.display().to_string(),
            reason,
        };
        let bytes = read_regular_capped(path, bounds::CONFIG_FILE_BYTES).map_err(read_error)?;
        let text = String::from_utf8(bytes).map_err(|e| read_error(format!("not UTF-8: {e}")))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks `text` whole (files it names included); `origin` names it in
    /// errors. Nothing is created: a caller may rely on an `Err` having left no trace.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let spans = Spans::parse(text);
        let config: Self = toml::from_str(text).map_err(|e| spans.parse_error(&e, origin))?;
        config.check(&spans, origin)?;
        Ok(config)
    }

    /// Checks the command line's overrides against the same rules, naming their flag.
    pub fn recheck(&self, origin: &str) -> Result<(), ConfigError> {
        self.check(&Spans::default(), origin)
    }

    /// The rules serde cannot express, reported against the key's line as the parser saw it.
    fn check(&self, spans: &Spans, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            path: origin.to_owned(),
            key: key.to_owned(),
            line: spans.line_of(key),
            reason,
        };
        let range = |key: &str, value: u64, range: (u64, u64)| {
            if value < range.0 || value > range.1 {
                Err(invalid(
                    key,
                    format!("{value} is outside {}..={}", range.0, range.1),
                ))
            } else {
                Ok(())
            }
        };
        let wide = |r: &std::ops::RangeInclusive<usize>| (*r.start() as u64, *r.end() as u64);
        let long = |r: &std::ops::RangeInclusive<u64>| (*r.start(), *r.end());

        range(
            "window.size",
            self.window.size as u64,
            wide(&bounds::WINDOW_SIZE),
        )?;
        if let Err(e) = WindowSpec::new(self.window.size, self.window.hop) {
            return Err(invalid("window.hop", e.to_string()));
        }
        range(
            "function.fuel_per_call",
            self.function.fuel_per_call,
            long(&bounds::FUEL_PER_CALL),
        )?;
        range(
            "function.max_memory_mib",
            self.function.max_memory_mib as u64,
            wide(&bounds::MAX_MEMORY_MIB),
        )?;
        if self.function.max_memory_bytes().is_none() {
            return Err(invalid(
                "function.max_memory_mib",
                "does not fit this machine's address space".into(),
            ));
        }
        range(
            "function.watch_interval_ms",
            self.function.watch_interval_ms,
            long(&bounds::WATCH_INTERVAL_MS),
        )?;
        range(
            "function.deadline_ms",
            self.function.deadline_ms,
            long(&bounds::DEADLINE_MS),
        )?;
        range(
            "spool.max_mib",
            self.spool.max_mib,
            long(&bounds::SPOOL_MAX_MIB),
        )?;
        if let Err(e) = self.metrics.listen() {
            return Err(invalid(
                "metrics.listen",
                format!("{e}: expected IP:port, e.g. \"127.0.0.1:9898\" or \"[::1]:9898\""),
            ));
        }
        // Paths are printed in log lines as they are: one that holds what a terminal acts
        // on is refused here, once, rather than escaped in every line that names it.
        let mut paths = vec![
            ("function.path", Some(self.function.path.as_path())),
            ("sensor.state_dir", Some(self.sensor.state_dir.as_path())),
            ("output.path", self.output.path.as_deref()),
            ("spool.path", self.spool.path.as_deref()),
        ];
        if let Some(es) = &self.elasticsearch {
            paths.extend([
                (
                    "elasticsearch.dead_letter_path",
                    es.dead_letter_path.as_deref(),
                ),
                ("elasticsearch.password_file", es.password_file.as_deref()),
                ("elasticsearch.api_key_file", es.api_key_file.as_deref()),
                ("elasticsearch.ca_file", es.ca_file.as_deref()),
            ]);
        }
        for (key, path) in paths {
            if let Some(path) = path
                && path
                    .to_string_lossy()
                    .chars()
                    .any(crate::support::text::is_unsafe_char)
            {
                return Err(invalid(
                    key,
                    "must not contain control or bidirectional-override characters".into(),
                ));
            }
        }
        check_id("agent.sensor_id", &self.agent.sensor_id)
            .map_err(|r| invalid("agent.sensor_id", r))?;
        if let Some(host) = &self.agent.host_id {
            check_id("agent.host_id", host).map_err(|r| invalid("agent.host_id", r))?;
        }
        if let Err(e) = self.sensor.validate() {
            // The sensor's messages start with the key they are about (its own contract).
            let reason = e.to_string();
            let detail = reason.trim_start_matches("invalid sensor configuration: ");
            let first = detail.split_whitespace().next().unwrap_or_default();
            let key = [
                format!("sensor.{first}"),
                format!("sensor.air_quality.{first}"),
            ]
            .into_iter()
            .find(|k| spans.line_of(k).is_some())
            .unwrap_or_else(|| format!("sensor.{first}"));
            return Err(invalid(&key, detail.to_owned()));
        }
        if let Err((key, reason)) = self.source.check(self.window.size) {
            return Err(invalid(&format!("source.{key}"), reason));
        }
        if let Some(path) = self.output.path.as_deref().filter(|p| *p != Path::new("-")) {
            check_parent("output.path", path).map_err(|r| invalid("output.path", r))?;
        }
        if let Some(es) = &self.elasticsearch {
            es.check(&invalid, &range)?;
        }
        self.fleet
            .check(check_index)
            .map_err(|(key, reason)| invalid(key, reason))?;
        if let Some(es) = self
            .elasticsearch
            .as_ref()
            .filter(|es| es.index == self.fleet.index)
        {
            return Err(invalid(
                "fleet.index",
                format!(
                    "must differ from elasticsearch.index ({}): status documents have a template of their own",
                    es.index
                ),
            ));
        }
        if let Some(registry) = &self.registry {
            registry
                .check()
                .map_err(|(key, reason)| invalid(key, reason))?;
        }
        Ok(())
    }

    pub fn spool_path(&self) -> PathBuf {
        self.spool
            .path
            .clone()
            .unwrap_or_else(|| self.sensor.state_dir.join("spool.redb"))
    }

    pub fn window_spec(&self) -> Result<WindowSpec, crate::window::WindowError> {
        WindowSpec::new(self.window.size, self.window.hop)
    }
}

impl FunctionSection {
    /// `max_memory_mib` in bytes, `None` where it does not fit a `usize` (32-bit targets).
    pub fn max_memory_bytes(&self) -> Option<usize> {
        self.max_memory_mib.checked_mul(1 << 20)
    }
}

/// Checks that a key's value lies in `(low, high)`, naming the key otherwise.
type RangeCheck<'a> = dyn Fn(&str, u64, (u64, u64)) -> Result<(), ConfigError> + 'a;

impl ElasticsearchSection {
    /// Everything about the upstream that can be known without talking to it: the URL as
    /// reqwest will parse it, the index name as Elasticsearch will judge it, the ranges,
    /// and the files it names (read now, so a missing one stops nothing half-started).
    fn check(
        &self,
        invalid: &dyn Fn(&str, String) -> ConfigError,
        range: &RangeCheck<'_>,
    ) -> Result<(), ConfigError> {
        check_url(&self.url).map_err(|r| invalid("elasticsearch.url", r))?;
        check_index(&self.index).map_err(|r| invalid("elasticsearch.index", r))?;
        let wide = |r: &std::ops::RangeInclusive<usize>| (*r.start() as u64, *r.end() as u64);
        let long = |r: &std::ops::RangeInclusive<u64>| (*r.start(), *r.end());
        range(
            "elasticsearch.batch_max_docs",
            self.batch_max_docs as u64,
            wide(&bounds::BATCH_MAX_DOCS),
        )?;
        range(
            "elasticsearch.batch_max_bytes",
            self.batch_max_bytes as u64,
            wide(&bounds::BATCH_MAX_BYTES),
        )?;
        range(
            "elasticsearch.batch_max_delay_ms",
            self.batch_max_delay_ms,
            long(&bounds::BATCH_MAX_DELAY_MS),
        )?;
        range(
            "elasticsearch.timeout_ms",
            self.timeout_ms,
            long(&bounds::TIMEOUT_MS),
        )?;
        range(
            "elasticsearch.retry_initial_ms",
            self.retry_initial_ms,
            long(&bounds::RETRY_MS),
        )?;
        range(
            "elasticsearch.retry_max_ms",
            self.retry_max_ms,
            (self.retry_initial_ms, *bounds::RETRY_MS.end()),
        )?;
        range(
            "elasticsearch.auth_retry_ms",
            self.auth_retry_ms,
            long(&bounds::AUTH_RETRY_MS),
        )?;
        range(
            "elasticsearch.drain_max_docs_per_sec",
            u64::from(self.drain_max_docs_per_sec),
            long(&bounds::DRAIN_MAX_DOCS_PER_SEC),
        )?;
        range(
            "elasticsearch.retry_spread_ms",
            self.retry_spread_ms,
            long(&bounds::RETRY_SPREAD_MS),
        )?;
        range(
            "elasticsearch.dead_letter_max_mib",
            self.dead_letter_max_mib,
            long(&bounds::DEAD_LETTER_MAX_MIB),
        )?;
        if let Some(path) = &self.dead_letter_path {
            check_parent("elasticsearch.dead_letter_path", path)
                .map_err(|r| invalid("elasticsearch.dead_letter_path", r))?;
        }
        if let Some(path) = &self.password_file {
            read_small("elasticsearch.password_file", path)
                .map_err(|r| invalid("elasticsearch.password_file", r))?;
        }
        if let Some(path) = &self.api_key_file {
            read_small("elasticsearch.api_key_file", path)
                .map_err(|r| invalid("elasticsearch.api_key_file", r))?;
        }
        if let Some(path) = &self.ca_file {
            let pem = read_small("elasticsearch.ca_file", path)
                .map_err(|r| invalid("elasticsearch.ca_file", r))?;
            check_pem(&pem).map_err(|r| invalid("elasticsearch.ca_file", r))?;
        }
        let auth = crate::ship::Auth::resolve(
            self.username.as_deref(),
            self.password.as_deref(),
            self.password_file.as_deref(),
            self.api_key.as_deref(),
            self.api_key_file.as_deref(),
            |name| std::env::var(name).ok(),
        );
        let api_key_key = if self.api_key_file.is_some() {
            "elasticsearch.api_key_file"
        } else {
            "elasticsearch.api_key"
        };
        match auth {
            // Sent as `Authorization: ApiKey <key>`: a byte a header cannot carry (a stray
            // NUL, DEL or space from a copied file) would fail every request, not the start.
            Ok(crate::ship::Auth::ApiKey(key)) if !key.bytes().all(|b| b.is_ascii_graphic()) => {
                Err(invalid(
                    api_key_key,
                    "the API key must be printable ASCII without spaces (the base64 `encoded` \
                     form Elasticsearch returns)"
                        .into(),
                ))
            }
            Ok(_) => Ok(()),
            Err(crate::ship::AuthError::NoUsername) => Err(invalid(
                if self.password_file.is_some() {
                    "elasticsearch.password_file"
                } else {
                    "elasticsearch.password"
                },
                "a password is configured but no username".into(),
            )),
            Err(e @ crate::ship::AuthError::Both) => {
                Err(invalid("elasticsearch.api_key", e.to_string()))
            }
            Err(e @ crate::ship::AuthError::Read { .. }) => {
                Err(invalid("elasticsearch.password_file", e.to_string()))
            }
        }
    }

    /// The URL for a log line: user name and password removed.
    pub fn display_url(&self) -> String {
        crate::ship::redact_url(&self.url)
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme must be http or https, not {}",
            parsed.scheme()
        ));
    }
    match parsed.host_str() {
        None | Some("") => return Err("the URL names no host".into()),
        Some(_) => {}
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("the URL must not carry a query or a fragment".into());
    }
    Ok(())
}

/// Elasticsearch's rules for index names (and data streams), so a bad one is refused here
/// rather than by every request.
pub fn check_index(index: &str) -> Result<(), String> {
    if !bounds::INDEX_BYTES.contains(&index.len()) {
        return Err(format!(
            "must be 1 to {} bytes long",
            bounds::INDEX_BYTES.end()
        ));
    }
    if index == "." || index == ".." {
        return Err("must not be . or ..".into());
    }
    if index.starts_with(['_', '-', '+']) {
        return Err("must not start with _, - or +".into());
    }
    if index.chars().any(|c| c.is_uppercase()) {
        return Err("must be lowercase".into());
    }
    if let Some(c) = index.chars().find(|c| {
        matches!(
            c,
            ' ' | '"' | '*' | '\\' | '<' | '>' | '|' | ',' | '/' | '?' | '#' | ':'
        ) || c.is_control()
    }) {
        return Err(format!("must not contain {c:?}"));
    }
    Ok(())
}

fn check_id(key: &str, id: &str) -> Result<(), String> {
    if !bounds::ID_BYTES.contains(&id.len()) || id.trim().is_empty() {
        return Err(format!(
            "{key} must be 1 to {} bytes, not blank",
            bounds::ID_BYTES.end()
        ));
    }
    if id.chars().any(crate::support::text::is_unsafe_char) {
        return Err(format!(
            "{key} must not contain control or bidirectional-override characters"
        ));
    }
    Ok(())
}

/// A file the agent will create: its folder must be there (the state directory excepted,
/// which the agent makes).
fn check_parent(key: &str, path: &Path) -> Result<(), String> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => Err(format!(
            "{key}: the folder {} does not exist",
            parent.display()
        )),
        _ if path.is_dir() => Err(format!("{key}: {} is a folder", path.display())),
        _ => Ok(()),
    }
}

fn read_small(key: &str, path: &Path) -> Result<Vec<u8>, String> {
    let bytes = read_regular_capped(path, bounds::SECRET_FILE_BYTES)
        .map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(format!("{key}: {} is empty", path.display()));
    }
    Ok(bytes)
}

fn check_pem(pem: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(pem);
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err("not a PEM certificate (no BEGIN CERTIFICATE block)".into());
    }
    match reqwest::Certificate::from_pem_bundle(pem) {
        Ok(certificates) if !certificates.is_empty() => Ok(()),
        Ok(_) => Err("holds no certificate".into()),
        Err(e) => Err(format!("not a PEM certificate: {e}")),
    }
}

/// Where each key of the file is, as the TOML parser itself saw it: dotted keys, inline
/// tables and `[table]` headers alike, so every error names the right key and line.
#[derive(Default)]
struct Spans {
    /// Dotted path, the key's span, the value's span.
    keys: Vec<(String, std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// Byte offsets where each line starts.
    line_starts: Vec<usize>,
}

impl Spans {
    fn parse(text: &str) -> Self {
        let mut spans = Self {
            keys: Vec::new(),
            line_starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(at, _)| at + 1))
                .collect(),
        };
        if let Ok(table) = toml::de::DeTable::parse(text) {
            spans.walk("", table.get_ref());
        }
        spans
    }

    fn walk(&mut self, prefix: &str, table: &toml::de::DeTable<'_>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            self.keys.push((path.clone(), key.span(), value.span()));
            if let toml::de::DeValue::Table(inner) = value.get_ref() {
                self.walk(&path, inner);
            }
        }
    }

    /// The 1-based line of the byte at `offset`.
    fn line_at(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|start| *start <= offset)
    }

    fn line_of(&self, key: &str) -> Option<usize> {
        self.keys
            .iter()
            .find(|(path, _, _)| path == key)
            .map(|(_, span, _)| self.line_at(span.start))
    }

    /// The innermost key whose name or value holds `offset`.
    fn key_at(&self, offset: usize) -> Option<&str> {
        self.keys
            .iter()
            .filter(|(_, key, value)| key.contains(&offset) || value.contains(&offset))
            .max_by_key(|(path, _, _)| path.len())
            .map(|(path, _, _)| path.as_str())
    }

    fn parse_error(&self, error: &toml::de::Error, origin: &str) -> ConfigError {
        let Some(span) = error.span() else {
            return ConfigError::Parse {
                path: origin.to_owned(),
                detail: error.message().trim_end().to_owned(),
            };
        };
        let line = Some(self.line_at(span.start));
        match self.key_at(span.start) {
            Some(key) => ConfigError::Invalid {
                path: origin.to_owned(),
                key: crate::support::text::untrusted(key),
                line,
                reason: crate::support::text::untrusted(error.message().trim_end()),
            },
            // A syntax error: toml's own text shows the line and a caret. The line is the
            // file's, so each is escaped: a terminal must not run what the file holds.
            None => ConfigError::Parse {
                path: origin.to_owned(),
                detail: error
                    .to_string()
                    .trim_end()
                    .lines()
                    .map(crate::support::text::untrusted)
                    .collect::<Vec<_>>()
                    .join("\n"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_defaults() {
        let config = AgentConfig::parse("", "test").unwrap();
        assert_eq!(config, AgentConfig::default());
        assert_eq!(config.window_spec().unwrap().size(), 1024);
    }

    /// The shipped example sets every key to its default (but the function's parameters)
    /// and so documents every key there is.
    #[test]
    fn the_example_documents_every_key() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let mut example = AgentConfig::parse(&text, path).unwrap();
        assert_eq!(example.function.params().raw("period"), Some("20"));
        example.function.params.clear();
        assert_eq!(example, AgentConfig::default());

        // Every key, set or commented out: `key =` at the start of a line, after any `#`.
        let documented = |key: &str| {
            text.lines().any(|line| {
                let line = line.trim_start_matches('#').trim_start();
                line.strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
        };
        fn leaves(value: &serde_json::Value, into: &mut Vec<String>) {
            for (key, value) in value.as_object().into_iter().flatten() {
                match value {
                    serde_json::Value::Object(_) => leaves(value, into),
                    _ => into.push(key.clone()),
                }
            }
        }
        let mut known = Vec::new();
        leaves(
            &serde_json::to_value(AgentConfig::default()).unwrap(),
            &mut known,
        );
        leaves(
            &serde_json::to_value(ElasticsearchSection::default()).unwrap(),
            &mut known,
        );
        leaves(
            &serde_json::to_value(crate::registry::RegistrySection::default()).unwrap(),
            &mut known,
        );
        for key in known.iter().filter(|k| *k != "elasticsearch") {
            assert!(documented(key), "`{key}` is not in the example");
        }
    }

    #[test]
    fn metrics_listen_default_set_disabled_and_bad() {
        let listen = |text: &str| AgentConfig::parse(text, "t").map(|c| c.metrics.listen());
        assert_eq!(
            listen(""),
            Ok(Ok(MetricsListen::Default(
                "127.0.0.1:9898".parse().unwrap()
            )))
        );
        assert_eq!(
            listen("[metrics]\nlisten = \"0.0.0.0:0\"\n"),
            Ok(Ok(MetricsListen::Configured("0.0.0.0:0".parse().unwrap())))
        );
        assert_eq!(
            listen("[metrics]\nlisten = \"\"\n"),
            Ok(Ok(MetricsListen::Disabled))
        );
        assert_eq!(
            listen("[metrics]\nenabled = false\nlisten = \"127.0.0.1:1\"\n"),
            Ok(Ok(MetricsListen::Disabled))
        );
        let err = AgentConfig::parse("[metrics]\nlisten = \"localhost\"\n", "agent.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("agent.toml, line 2: `metrics.listen`: "),
            "{err}"
        );
    }

    #[test]
    fn params_become_text() {
        let config = AgentConfig::parse(
            "[function.params]\nperiod = 60\nalpha = 0.01\ndirection = \"pos\"\n",
            "test",
        )
        .unwrap();
        let params = config.function.params();
        assert_eq!(params.raw("period"), Some("60"));
        assert_eq!(params.raw("alpha"), Some("0.01"));
        assert_eq!(params.raw("direction"), Some("pos"));
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let err = AgentConfig::parse("[window]\nsize = 10\nhopp = 2\n", "agent.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("hopp"), "{err}");
    }

    #[test]
    fn a_bad_value_is_named_with_its_line() {
        let err = AgentConfig::parse("[window]\nsize = \"big\"\n", "agent.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("size"), "{err}");

        let err =
            AgentConfig::parse("[window]\nsize = 10\n\nhop = 20\n", "agent.toml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "agent.toml, line 4: `window.hop`: hop 20 must be between 1 and the window size 10"
        );

        let err = AgentConfig::parse("[sensor]\nsample_period_ms = 0\n", "agent.toml").unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key, line: Some(2), .. } if key == "sensor.sample_period_ms"),
            "{err}"
        );
    }

    #[test]
    fn what_the_file_says_is_escaped_and_what_a_header_cannot_carry_is_refused() {
        let (key, line, reason) = invalid("[agent]\nsensor_id = \"kitchen\\u202e1\"\n");
        assert_eq!((key.as_str(), line), ("agent.sensor_id", Some(2)));
        assert!(reason.contains("bidirectional"), "{reason}");

        let err = AgentConfig::parse("[window]\nsize = 1 \u{1b}[2J\n", "agent.toml")
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\u{1b}') && err.contains("\\u{1b}"), "{err}");
        let err = AgentConfig::parse("[window]\n\"\\u001b[2J\" = 1\n", "agent.toml")
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\u{1b}'), "{err}");

        let (key, _, reason) =
            invalid("[elasticsearch]\nurl = \"http://127.0.0.1:9200\"\napi_key = \"abc def\"\n");
        assert_eq!(key, "elasticsearch.api_key");
        assert!(reason.contains("printable ASCII"), "{reason}");

        let (key, _, _) = invalid("[function]\npath = \"/tmp/f\\u001b[2J.wasm\"\n");
        assert_eq!(key, "function.path");
    }

    fn invalid(text: &str) -> (String, Option<usize>, String) {
        match AgentConfig::parse(text, "agent.toml") {
            Err(ConfigError::Invalid {
                key, line, reason, ..
            }) => (key, line, reason),
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn keys_and_lines_come_from_the_parser_dotted_and_inline_too() {
        assert_eq!(
            invalid("[agent]\nsensor_id = \"k\"\nwindow.size = 0\n").0,
            "agent.window",
            "a dotted key inside [agent] is an unknown key there"
        );
        let (key, line, _) = invalid("\n\nwindow.size = 0\n");
        assert_eq!((key.as_str(), line), ("window.size", Some(3)));
        let (key, line, _) = invalid("window = { size = 10, hop = 20 }\n");
        assert_eq!((key.as_str(), line), ("window.hop", Some(1)));
        let (key, line, _) =
            invalid("[elasticsearch]\nurl = \"http://h:9200\"\n\nbatch_max_bytes = 0\n");
        assert_eq!(
            (key.as_str(), line),
            ("elasticsearch.batch_max_bytes", Some(4))
        );
        let (key, line, _) = invalid("[sensor.retry]\ninitial_backoff_ms = \"x\"\n");
        assert_eq!(
            (key.as_str(), line),
            ("sensor.retry.initial_backoff_ms", Some(2))
        );
        let (key, line, _) = invalid("[function]\nmax_memory_mib = 4096\n");
        assert_eq!((key.as_str(), line), ("function.max_memory_mib", Some(2)));
        let (key, line, _) = invalid("[window]\nsize = 1000000000000\n");
        assert_eq!((key.as_str(), line), ("window.size", Some(2)));
    }

    #[test]
    fn index_names_follow_elasticsearch() {
        for bad in [
            "", ".", "..", "_x", "-x", "+x", "A", "a b", "a#b", "a/b", "a,b", "a?b", "a\\b", "a*b",
            "a<b", "a>b", "a|b", "a\"b", "a:b",
        ] {
            assert!(check_index(bad).is_err(), "{bad:?}");
        }
        assert!(check_index(&"a".repeat(256)).is_err());
        assert!(check_index(&"a".repeat(255)).is_ok());
        for good in ["edge-agent", "air.quality", "logs-edge_1"] {
            assert!(check_index(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn urls_are_judged_by_the_url_parser_and_printed_without_secrets() {
        for bad in [
            "http://",
            "http://a b:9200",
            "http://h:99999",
            "ftp://h",
            "h:9200",
            "http://h/?q",
        ] {
            assert!(check_url(bad).is_err(), "{bad:?}");
        }
        assert!(check_url("https://es.example.net:9200/prefix").is_ok());
        let shown = crate::ship::redact_url("https://edge:s3cret@es.example.net:9200");
        assert_eq!(shown, "https://es.example.net:9200");
    }
}
