//! Persistence of the air-quality gas baseline in the state directory, so a restart does not
//! cost a new burn-in (the common complaint about BSEC losing its calibration state).
//!
//! One small JSON file, replaced atomically (write a temporary file, fsync, rename), so a
//! power cut leaves either the old or the new baseline and never half of one. Whether a
//! saved baseline may be reused (its age, the clock it was stamped with) is decided in
//! `air_quality.rs`, not here.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name inside the state directory.
pub const BASELINE_FILE: &str = "bme680-baseline.json";

/// What is kept between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistedBaseline {
    /// Format version; a file of another version is ignored.
    pub version: u32,
    /// Humidity-compensated clean-air gas resistance, Ω.
    pub gas_baseline_ohm: f64,
    /// Heater profile the baseline was learnt with.
    pub heater_temperature_c: u16,
    pub heater_duration_ms: u16,
    /// When the burn-in that started this baseline finished, Unix ms.
    pub burn_in_completed_at_ms: i64,
    /// Last adaptation saved, Unix ms: the baseline's age is counted from here.
    pub updated_at_ms: i64,
    /// The wall clock was synchronised when `updated_at_ms` was read. A file without it
    /// (written before the agent knew) counts as unsynchronised: its age cannot be told.
    #[serde(default)]
    pub clock_synced: bool,
    /// The boot it was saved in and the boot clock then: within the same boot the age is
    /// told by the boot clock, whatever the wall clock did. Absent in older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<SavedBoot>,
}

/// A boot mark (`sensor::clock::BootMark`) as the file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedBoot {
    /// The boot id, 32 hex digits.
    pub boot_id: String,
    /// Milliseconds since that boot began.
    pub since_boot_ms: u64,
}

impl PersistedBaseline {
    pub const VERSION: u32 = 1;
}

/// Why the baseline could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("baseline file {path} is not valid: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

/// The baseline file in one state directory.
#[derive(Debug, Clone)]
pub struct BaselineStore {
    path: PathBuf,
}

impl BaselineStore {
    pub fn in_dir(state_dir: impl AsRef<Path>) -> Self {
        Self {
            path: state_dir.as_ref().join(BASELINE_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved baseline; `Ok(None)` if there is none yet.
    pub fn load(&self) -> Result<Option<PersistedBaseline>, BaselineError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(BaselineError::Io {
                    action: "read",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let baseline: PersistedBaseline =
            serde_json::from_str(&text).map_err(|error| BaselineError::Corrupt {
                path: self.path.clone(),
                detail: error.to_string(),
            })?;
        if baseline.version != PersistedBaseline::VERSION {
            return Err(BaselineError::Corrupt {
                path: self.path.clone(),
                detail: format!(
                    "version {} (expected {})",
                    baseline.version,
                    PersistedBaseline::VERSION
                ),
            });
        }
        Ok(Some(baseline))
    }

    /// Replaces the saved baseline atomically.
    pub fn save(&self, baseline: &PersistedBaseline) -> Result<(), BaselineError> {
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| BaselineError::Io {
                action,
                path,
                source,
            }
        };
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(io("create", dir))?;
        }
        let text =
            serde_json::to_string_pretty(baseline).map_err(|error| BaselineError::Corrupt {
                path: self.path.clone(),
                detail: error.to_string(),
            })?;
        let temporary = self.path.with_extension("json.tmp");
        let mut file = fs::File::create(&temporary).map_err(io("create", &temporary))?;
        file.write_all(text.as_bytes())
            .map_err(io("write", &temporary))?;
        file.sync_all().map_err(io("sync", &temporary))?;
        drop(file);
        fs::rename(&temporary, &self.path).map_err(io("rename into", &self.path))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn baseline() -> PersistedBaseline {
        PersistedBaseline {
            version: PersistedBaseline::VERSION,
            gas_baseline_ohm: 212_345.5,
            heater_temperature_c: 320,
            heater_duration_ms: 150,
            burn_in_completed_at_ms: 1_000,
            updated_at_ms: 2_000,
            clock_synced: true,
            boot: Some(SavedBoot {
                boot_id: format!("{:032x}", 7u128),
                since_boot_ms: 60_000,
            }),
        }
    }

    #[test]
    fn save_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = BaselineStore::in_dir(dir.path().join("nested"));
        assert_eq!(store.load().unwrap(), None);
        store.save(&baseline()).unwrap();
        assert_eq!(store.load().unwrap(), Some(baseline()));
        assert!(!store.path().with_extension("json.tmp").exists());
    }

    #[test]
    fn a_file_from_before_clock_awareness_reads_as_unsynchronised() {
        let dir = tempfile::tempdir().unwrap();
        let store = BaselineStore::in_dir(dir.path());
        fs::write(
            store.path(),
            r#"{"version":1,"gas_baseline_ohm":1.0,"heater_temperature_c":320,
               "heater_duration_ms":150,"burn_in_completed_at_ms":1,"updated_at_ms":2}"#,
        )
        .unwrap();
        assert!(!store.load().unwrap().unwrap().clock_synced);
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = BaselineStore::in_dir(dir.path());
        fs::write(store.path(), "{ half a baseline").unwrap();
        assert!(matches!(store.load(), Err(BaselineError::Corrupt { .. })));
    }
}
