//! What the registry poller keeps in the state directory across restarts
//! (`registry.json`): the highest manifest version accepted (so a replayed older signed
//! manifest is refused after a restart too), the versions that failed here (never tried
//! again), and the module this agent took from the registry and its parameters (started
//! again, from the last-good copy, before the network answers). Written atomically; a new
//! field needs `#[serde(default)]` so older files still read.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::bounds::FAILED_REMEMBERED;
use crate::support::file::read_regular_capped;

pub const FILE_NAME: &str = "registry.json";
/// Far above what the bounded fields take (64 sha256 and the parameters).
const MAX_STATE_BYTES: u64 = 1 << 20;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Persisted {
    /// The highest manifest version accepted, and the sha256 of that manifest's bytes.
    pub highest_version: Option<u64>,
    pub manifest_sha256: Option<String>,
    /// Modules (sha256) that failed their canary or probation here, oldest first.
    pub failed: Vec<String>,
    /// The module taken from the registry that passed its probation here.
    pub accepted: Option<Accepted>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    pub sha256: String,
    pub params: BTreeMap<String, String>,
    pub manifest_version: u64,
}

impl Persisted {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE_NAME)
    }

    /// The saved state; a missing file is a fresh start, an unreadable one is an error
    /// the caller reports (and then starts fresh: it cannot do better).
    pub fn load(state_dir: &Path) -> Result<Self, String> {
        let path = Self::path(state_dir);
        if !path.exists() {
            return Ok(Self::default());
        }
        let bytes = read_regular_capped(&path, MAX_STATE_BYTES)?;
        serde_json::from_slice(&bytes).map_err(|e| format!("not the poller's state: {e}"))
    }

    /// Writes the state durably: temporary file, fsync, rename, fsync of the directory.
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(state_dir)?;
        let path = Self::path(state_dir);
        let temporary = state_dir.join(format!("{FILE_NAME}.tmp"));
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, &path)?;
        File::open(state_dir)?.sync_all()
    }

    pub fn has_failed(&self, sha256: &str) -> bool {
        self.failed.iter().any(|s| s == sha256)
    }

    /// Remembers `sha256` as failed here, forgetting the oldest past the bound.
    pub fn mark_failed(&mut self, sha256: &str) {
        if self.has_failed(sha256) {
            return;
        }
        if self.failed.len() >= FAILED_REMEMBERED {
            self.failed.remove(0);
        }
        self.failed.push(sha256.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_state_reads_back_and_failures_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Persisted::load(dir.path()).unwrap(), Persisted::default());
        let mut state = Persisted {
            highest_version: Some(7),
            manifest_sha256: Some("ab".into()),
            accepted: Some(Accepted {
                sha256: "cd".into(),
                params: [("period".into(), "20".into())].into(),
                manifest_version: 6,
            }),
            ..Persisted::default()
        };
        for n in 0..100 {
            state.mark_failed(&format!("{n}"));
        }
        state.mark_failed("99");
        assert_eq!(state.failed.len(), FAILED_REMEMBERED);
        assert!(state.has_failed("99") && !state.has_failed("0"));
        state.save(dir.path()).unwrap();
        assert_eq!(Persisted::load(dir.path()).unwrap(), state);
        std::fs::write(Persisted::path(dir.path()), b"{broken").unwrap();
        assert!(Persisted::load(dir.path()).is_err());
    }
}
