//! The `[function]` section: which module, its parameters and its sandbox's limits.
//! Checked with the rest of the file (`config.rs` calls [`FunctionSection::check`]); a
//! new key goes here, in `check` with a bound, and in `deploy/config.example.toml`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use edge_function::Params;
use serde::{Deserialize, Serialize};

use super::{GuestStop, Limits};
use crate::support::check::{Refusal, within};

/// Where the packaged function lives (the .deb installs it here).
pub const DEFAULT_FUNCTION_PATH: &str = "/usr/lib/edge-agent/functions/anomaly.wasm";

/// The ranges that make sense on a Raspberry Pi.
pub mod bounds {
    use std::ops::RangeInclusive;

    /// Up to minutes of a Pi's time per window: beyond that a runaway is never stopped.
    pub const FUEL_PER_CALL: RangeInclusive<u64> = 1..=1_000_000_000_000;
    /// A Pi Zero has 512 MiB in all; wasm32 cannot address 4 GiB anyway.
    pub const MAX_MEMORY_MIB: RangeInclusive<usize> = 1..=1024;
    pub const WATCH_INTERVAL_MS: RangeInclusive<u64> = 10..=3_600_000;
    /// A window's wall time in the function: long enough for a slow Pi, short enough that
    /// a stop (two windows) fits the unit's 20 s stop timeout... at the default; at most a
    /// minute, beyond which the watchdog would call the pipeline stalled anyway.
    pub const DEADLINE_MS: RangeInclusive<u64> = 10..=60_000;
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
    /// Where the file and each `[function.params]` key came from, so that a function's
    /// refusal of a parameter (known only once its `init` has run) names its line too.
    #[serde(skip)]
    pub param_origin: ParamOrigin,
}

/// The configuration file and the line of each `[function.params]` key, as the parser saw
/// them. Not part of the configuration's value: two configurations that say the same
/// thing are equal wherever their keys sit.
#[derive(Debug, Clone, Default)]
pub struct ParamOrigin {
    pub file: String,
    pub lines: BTreeMap<String, usize>,
}

impl PartialEq for ParamOrigin {
    fn eq(&self, _: &Self) -> bool {
        true
    }
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
            param_origin: ParamOrigin::default(),
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
            // Checked by `check`; saturating only for a hand-made section.
            max_memory_bytes: self.max_memory_bytes().unwrap_or(usize::MAX),
            deadline: Duration::from_millis(self.deadline_ms),
            stop: GuestStop::default(),
        }
    }

    /// `max_memory_mib` in bytes, `None` where it does not fit a `usize` (32-bit targets).
    pub fn max_memory_bytes(&self) -> Option<usize> {
        self.max_memory_mib.checked_mul(1 << 20)
    }

    /// The function's refusal of its parameters (`reason`, guest text already escaped and
    /// clipped), said as the configuration error it is: the first configured parameter
    /// the message names in backquotes (as the SDK's `Params::get` and `Params::only`
    /// do) with its line, else the whole `[function.params]` table.
    pub fn params_refused(&self, reason: &str) -> ParamsRefused {
        let named = self
            .params
            .keys()
            .find(|name| reason.contains(&format!("`{name}`")));
        let (key, line) = match named {
            Some(name) => (
                format!("function.params.{name}"),
                self.param_origin.lines.get(name).copied(),
            ),
            None => ("function.params".to_owned(), None),
        };
        ParamsRefused {
            file: self.param_origin.file.clone(),
            key,
            line,
            reason: reason.to_owned(),
        }
    }

    /// The rules serde cannot express.
    pub fn check(&self) -> Result<(), Refusal> {
        within(
            "function.fuel_per_call",
            self.fuel_per_call,
            &bounds::FUEL_PER_CALL,
        )?;
        within(
            "function.max_memory_mib",
            self.max_memory_mib,
            &bounds::MAX_MEMORY_MIB,
        )?;
        if self.max_memory_bytes().is_none() {
            return Err((
                "function.max_memory_mib",
                "does not fit this machine's address space".into(),
            ));
        }
        within(
            "function.watch_interval_ms",
            self.watch_interval_ms,
            &bounds::WATCH_INTERVAL_MS,
        )?;
        within(
            "function.deadline_ms",
            self.deadline_ms,
            &bounds::DEADLINE_MS,
        )
    }
}

/// The function refused a parameter the file gives it: the configuration cannot work, so
/// the agent exits 78 (the unit does not restart) with this, before anything starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: `{key}`: the function refuses it: {reason}", origin(file), line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct ParamsRefused {
    pub file: String,
    pub key: String,
    pub line: Option<usize>,
    pub reason: String,
}

fn origin(file: &str) -> &str {
    if file.is_empty() {
        "[function.params]"
    } else {
        file
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

#[cfg(test)]
mod tests {
    use crate::config::AgentConfig;

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
    fn a_refusal_names_the_key_the_function_named_and_its_line() {
        let config = AgentConfig::parse(
            "[agent]\nsensor_id = \"s\"\n[function.params]\nperiod = 24\nperod = 12\n",
            "agent.toml",
        )
        .unwrap();
        let refused = config
            .function
            .params_refused("unknown parameter `perod` (known: period)");
        assert_eq!(refused.key, "function.params.perod");
        assert_eq!(refused.line, Some(5));
        assert_eq!(
            refused.to_string(),
            "agent.toml, line 5: `function.params.perod`: the function refuses it: unknown parameter `perod` (known: period)"
        );
        // A message naming none of them blames the table.
        let vague = config.function.params_refused("no");
        assert_eq!((vague.key.as_str(), vague.line), ("function.params", None));
        // Where a key sits is not part of the configuration's value.
        let moved = AgentConfig::parse(
            "[function.params]\nperiod = 24\nperod = 12\n[agent]\nsensor_id = \"s\"\n",
            "agent.toml",
        )
        .unwrap();
        assert_eq!(moved, config);
    }
}
