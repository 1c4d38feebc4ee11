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
}
