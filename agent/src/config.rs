//! The agent's configuration file, TOML. Every key is documented, with its default, in
//! `deploy/config.example.toml`; every section refuses unknown keys. A file that does not
//! parse, or a value out of range, is an error naming the key and its line.

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
            max_memory_bytes: self.max_memory_mib.saturating_mul(1 << 20),
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

/// Where verdicts go when no upstream is configured.
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

impl AgentConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            detail: e.to_string().trim_end().to_owned(),
        })?;
        config.check(text, origin)?;
        Ok(config)
    }

    /// The ranges serde cannot express, reported against the key's line in `text`.
    fn check(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let invalid = |table: &str, key: &str, reason: String| ConfigError::Invalid {
            path: origin.to_owned(),
            key: format!("{table}.{key}"),
            line: line_of(text, table, key),
            reason,
        };
        if let Err(e) = WindowSpec::new(self.window.size, self.window.hop) {
            let key = if self.window.size == 0 { "size" } else { "hop" };
            return Err(invalid("window", key, e.to_string()));
        }
        if self.function.fuel_per_call == 0 {
            return Err(invalid(
                "function",
                "fuel_per_call",
                "must be above 0".into(),
            ));
        }
        if self.function.max_memory_mib == 0 || self.function.max_memory_mib > 4096 {
            return Err(invalid(
                "function",
                "max_memory_mib",
                "must be 1..=4096".into(),
            ));
        }
        if self.function.watch_interval_ms == 0 {
            return Err(invalid(
                "function",
                "watch_interval_ms",
                "must be above 0".into(),
            ));
        }
        if self.spool.max_mib == 0 {
            return Err(invalid("spool", "max_mib", "must be above 0".into()));
        }
        if let Some(es) = &self.elasticsearch {
            if !(es.url.starts_with("http://") || es.url.starts_with("https://")) {
                return Err(invalid(
                    "elasticsearch",
                    "url",
                    "must start with http:// or https://".into(),
                ));
            }
            if es.index.is_empty()
                || es.index.starts_with(['_', '-', '+'])
                || es.index != es.index.to_lowercase()
            {
                return Err(invalid(
                    "elasticsearch",
                    "index",
                    "must be a lowercase name not starting with _, - or +".into(),
                ));
            }
            if es.batch_max_docs == 0 || es.batch_max_bytes == 0 {
                return Err(invalid(
                    "elasticsearch",
                    "batch_max_docs",
                    "batches must hold at least one document".into(),
                ));
            }
            if es.timeout_ms == 0
                || es.retry_initial_ms == 0
                || es.retry_max_ms < es.retry_initial_ms
            {
                return Err(invalid(
                    "elasticsearch",
                    "retry_max_ms",
                    "need timeout_ms > 0 and 0 < retry_initial_ms <= retry_max_ms".into(),
                ));
            }
        }
        if let Err(e) = self.metrics.listen() {
            return Err(invalid(
                "metrics",
                "listen",
                format!("{e}: expected IP:port, e.g. \"127.0.0.1:9898\" or \"[::1]:9898\""),
            ));
        }
        if self.agent.sensor_id.trim().is_empty() {
            return Err(invalid("agent", "sensor_id", "must not be empty".into()));
        }
        if let Err(e) = self.sensor.validate() {
            // The sensor's messages start with the key they are about.
            let reason = e.to_string();
            let detail = reason.trim_start_matches("invalid sensor configuration: ");
            let key = detail.split_whitespace().next().unwrap_or("sensor");
            let (table, key) = match key.split_once('.') {
                Some((sub, key)) => (format!("sensor.{sub}"), key.to_owned()),
                None => ("sensor".to_owned(), key.to_owned()),
            };
            return Err(invalid(&table, &key, detail.to_owned()));
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

/// The 1-based line where `key` is set inside `[table]`, for error messages.
fn line_of(text: &str, table: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = header.trim().to_owned();
        } else if current == table
            && let Some((name, _)) = line.split_once('=')
            && name.trim().trim_matches('"') == key
        {
            return Some(number + 1);
        }
    }
    None
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
}
