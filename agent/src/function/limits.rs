//! The sandbox's budget: fuel per call and the linear-memory ceiling.

use serde::Deserialize;

/// Limits applied to every call into a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Fuel (roughly one unit per wasm instruction) for one `init` or `execute` call.
    pub fuel_per_call: u64,
    /// The most linear memory the guest may grow to, in bytes.
    pub max_memory_bytes: usize,
}

impl Limits {
    /// Enough for S-H-ESD on a 4096-sample window with `max_anoms = 0.1` (measured: see
    /// the README's figures), while an infinite loop still stops in a fraction of a second.
    pub const DEFAULT_FUEL_PER_CALL: u64 = 1_100_000_000;
    pub const DEFAULT_MAX_MEMORY_BYTES: usize = 32 << 20;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel_per_call: Self::DEFAULT_FUEL_PER_CALL,
            max_memory_bytes: Self::DEFAULT_MAX_MEMORY_BYTES,
        }
    }
}
