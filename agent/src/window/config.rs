//! The `[window]` section: size N and hop H, in samples. Checked with the rest of the
//! file (`config.rs` calls [`WindowSection::check`]).

use serde::{Deserialize, Serialize};

use super::{WindowError, WindowSpec};
use crate::support::check::{Refusal, within};

/// The ranges that make sense on a Raspberry Pi.
pub mod bounds {
    use std::ops::RangeInclusive;

    /// S-H-ESD on 4096 samples takes 0.3 s in wasmi on a laptop; four times that on a Pi is
    /// still seconds per window, and the ring and the window stay within a few MiB.
    pub const WINDOW_SIZE: RangeInclusive<usize> = 1..=16_384;
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

impl WindowSection {
    pub fn spec(&self) -> Result<WindowSpec, WindowError> {
        WindowSpec::new(self.size, self.hop)
    }

    /// The rules serde cannot express.
    pub fn check(&self) -> Result<(), Refusal> {
        within("window.size", self.size, &bounds::WINDOW_SIZE)?;
        self.spec().map_err(|e| ("window.hop", e.to_string()))?;
        Ok(())
    }
}
