//! The `[spool]` section: where the durable queue lives, how much it may hold, what to
//! give up when full. Checked with the rest of the file (`config.rs` calls
//! [`SpoolSection::check`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::WhenFull;
use crate::support::check::{Refusal, within};

/// The ranges that make sense on a Raspberry Pi.
pub mod bounds {
    use std::ops::RangeInclusive;

    /// SD cards of 16 GiB are common; the spool should never be able to take the card.
    pub const SPOOL_MAX_MIB: RangeInclusive<u64> = 1..=16_384;
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

impl SpoolSection {
    /// The spool's file: `path`, or `spool.redb` in the state directory.
    pub fn path_in(&self, state_dir: &Path) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| state_dir.join("spool.redb"))
    }

    /// The most the spool may hold, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_mib.saturating_mul(1 << 20)
    }

    /// The rules serde cannot express. The spool is a file the agent makes (its folder
    /// too): a path that is empty or names a folder is refused before anything is made.
    pub fn check(&self) -> Result<(), Refusal> {
        within("spool.max_mib", self.max_mib, &bounds::SPOOL_MAX_MIB)?;
        match &self.path {
            Some(path) if path.as_os_str().is_empty() => {
                Err(("spool.path", "must name a file, not be empty".into()))
            }
            Some(path) if path.is_dir() || path.as_os_str().to_string_lossy().ends_with('/') => {
                Err((
                    "spool.path",
                    format!(
                        "{} is a folder; name the spool's file in it",
                        path.display()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}
