//! What fills the ring: the BME680's sampler, or the lines source (`[source]`), seen the
//! same way by the supervision loop, the status line and the stop.

use crate::sensor::SamplerHandle;
use crate::sensor::lines::{LinesCounts, LinesHandle};

pub enum Input {
    Sampler(SamplerHandle),
    Lines(LinesHandle),
}

impl Input {
    /// The watchdog's sign of life: reads and failures of the sampler, turns of the
    /// lines listener; standard input blocks while its writer is quiet, so the
    /// supervision loop's own `turns` stand in for it.
    pub fn progress(&self, turns: u64) -> u64 {
        match self {
            Input::Sampler(sampler) => {
                let stats = sampler.stats();
                stats.samples.saturating_add(stats.failures)
            }
            Input::Lines(source) => source.progress().unwrap_or(turns),
        }
    }

    /// For the status line.
    pub fn faults(&self) -> String {
        match self {
            Input::Sampler(sampler) => {
                let stats = sampler.stats();
                match stats.failing() {
                    Some(failing) => format!("{} sensor faults, sensor {failing}", stats.failures),
                    None => format!("{} sensor faults", stats.failures),
                }
            }
            Input::Lines(source) => {
                let counts = source.counts();
                format!(
                    "{} lines ({} refused), {} sensors",
                    counts.lines,
                    refused(&counts),
                    counts.sensors_active
                )
            }
        }
    }

    /// A finite input (standard input, a reader) has ended: the agent stops once the
    /// queue is judged.
    pub fn ended(&self) -> bool {
        matches!(self, Input::Lines(source) if source.ended())
    }

    /// Stops it; answers a summary for the last log line.
    pub fn stop(self) -> String {
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
                format!(
                    "{} lines ({} accepted, {} refused, {} waits for a full queue)",
                    counts.lines,
                    counts.accepted,
                    refused(&counts),
                    counts.queue_waits
                )
            }
        }
    }
}

/// Lines refused, for every reason.
pub fn refused(counts: &LinesCounts) -> u64 {
    counts.refused.iter().map(|(_, n)| n).sum()
}
