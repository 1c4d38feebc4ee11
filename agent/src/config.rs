//! The agent's configuration file, TOML, assembled from the sections that live with the
//! stages that use them (`[function]` in `function/config.rs`, `[window]` in
//! `window/config.rs`, `[sensor]` in `sensor/bme680/config.rs`, `[source]` in
//! `sensor/lines/config.rs`, `[output]` in `sink.rs`, `[spool]` in `spool/config.rs`,
//! `[elasticsearch]` in `ship/config.rs`, `[fleet]` in `fleet/mod.rs`, `[registry]` in
//! `registry/config.rs`, `[metrics]` in `metrics/config.rs`); `[agent]` is here. Every key
//! is documented, with its default, in `deploy/config.example.toml`; every section refuses
//! unknown keys. The whole file is checked before anything is created or started: each
//! section's own `check` (its bounds, its files), then the rules across sections; an error
//! names the key and its line, both taken from the TOML parser's spans. A new key goes in
//! its section's struct, in that section's `check` (with a bound), and in the example.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::fleet::FleetSection;
use crate::registry::RegistrySection;
use crate::sensor::SensorConfig;
use crate::sensor::lines::SourceConfig;
use crate::support::check::Refusal;
use crate::support::file::read_regular_capped;
use crate::window::{WindowError, WindowSpec};

mod de;
mod spans;
use spans::Spans;

pub use crate::function::config::{DEFAULT_FUNCTION_PATH, FunctionSection, ParamValue};
pub use crate::metrics::config::{DEFAULT_METRICS_LISTEN, MetricsListen, MetricsSection};
pub use crate::ship::config::{ElasticsearchSection, ShipWhat, check_index};
pub use crate::sink::OutputSection;
pub use crate::spool::config::SpoolSection;
pub use crate::window::config::WindowSection;

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
    pub fleet: FleetSection,
    /// Where samples come from: the BME680, or lines from other sensors.
    pub source: SourceConfig,
    /// The signed function registry; without it, the function file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistrySection>,
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

/// The ranges of `[agent]` and of the file itself; each section has its own.
pub mod bounds {
    use std::ops::RangeInclusive;

    /// Ids become part of every document `_id` (`<sensor_id>-<unix ms>`).
    pub const ID_BYTES: RangeInclusive<usize> = 1..=128;
    /// The configuration file itself: a few KiB in practice.
    pub const CONFIG_FILE_BYTES: u64 = 1 << 20;
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
        let table = match toml::de::DeTable::parse(text) {
            Ok(table) => table,
            Err(e) => return Err(Spans::new(text, None).parse_error(&e, origin)),
        };
        let spans = Spans::new(text, Some(table.get_ref()));
        let mut config: Self =
            de::from_table(table.get_ref()).map_err(|refused| spans.refused(refused, origin))?;
        config.check(&spans, origin)?;
        // The function's refusals of its parameters come at start, after this: they name
        // the key's line from here (`FunctionSection::params_refused`).
        config.function.param_origin.file = origin.to_owned();
        config.function.param_origin.lines = config
            .function
            .params
            .keys()
            .filter_map(|name| {
                Some((
                    name.clone(),
                    spans.line_of(&format!("function.params.{name}"))?,
                ))
            })
            .collect();
        Ok(config)
    }

    /// Checks the command line's overrides against the same rules, naming their flag.
    pub fn recheck(&self, origin: &str) -> Result<(), ConfigError> {
        self.check(&Spans::default(), origin)
    }

    /// The rules serde cannot express, reported against the key's line as the parser saw
    /// it: each section's own, then those across sections.
    fn check(&self, spans: &Spans, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            path: origin.to_owned(),
            key: key.to_owned(),
            line: spans.line_of(key),
            reason,
        };
        let refused = |(key, reason): Refusal| invalid(key, reason);
        self.window.check().map_err(refused)?;
        self.function.check().map_err(refused)?;
        self.spool.check().map_err(refused)?;
        self.metrics.check().map_err(refused)?;
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
        if let Err((key, reason)) = self.source.check(self.window.size) {
            return Err(invalid(&format!("source.{key}"), reason));
        }
        self.output.check().map_err(refused)?;
        if let Some(es) = &self.elasticsearch {
            es.check().map_err(refused)?;
        }
        self.fleet.check(check_index).map_err(refused)?;
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
            registry.check().map_err(refused)?;
        }
        Ok(())
    }

    pub fn spool_path(&self) -> PathBuf {
        self.spool.path_in(&self.sensor.state_dir)
    }

    pub fn window_spec(&self) -> Result<WindowSpec, WindowError> {
        self.window.spec()
    }
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
}
