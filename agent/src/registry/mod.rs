//! The function registry: a signed manifest on any static HTTP(S) location (or a file
//! path) names, per group of agents, the module to run; this agent polls it, takes a new
//! version when its cohort is in the rollout, and hands the module to the pipeline as a
//! swap candidate, like the file watcher does. [`RolloutStatus`] is what it reports:
//! the fleet status document (`fleet`) and the metrics read it.

use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Where this agent stands with the registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// No registry configured: the function file is all there is.
    #[default]
    Off,
    /// Polling; nothing fetched yet (no network, or the registry has not answered).
    Waiting,
    /// The manifest's version for this group is not rolled out to this agent yet.
    NotInCohort,
    /// A new version is fetched and verified, handed to the pipeline, on probation.
    Trying,
    /// Running the manifest's version for this group.
    Current,
    /// The manifest's version failed here (canary or probation) and was rolled back; it is
    /// not tried again on this agent.
    RolledBack,
    /// The registry offered something this agent refuses (bad signature, sha256 or size
    /// mismatch, an older version, a window it cannot give): it keeps what it runs.
    Refused,
}

/// A snapshot of the rollout, as reported.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RolloutStatus {
    pub state: RolloutState,
    /// The agent's group (its `[registry] group` label), if a registry is configured.
    pub group: Option<String>,
    /// The highest signed manifest version this agent has accepted.
    pub manifest_version: Option<u64>,
    /// The sha256 the manifest names for this group, if any.
    pub target_sha256: Option<String>,
    /// Why the state is what it is (escaped, bounded), e.g. a refusal or rollback reason.
    pub reason: Option<String>,
    /// Manifests or modules refused since start.
    pub refused: u64,
    /// Versions rolled back on this agent since start.
    pub rolled_back: u64,
}

/// The rollout status shared between the registry poller (writes) and the reporters
/// (read snapshots).
#[derive(Clone, Debug, Default)]
pub struct RolloutCell(Arc<Mutex<RolloutStatus>>);

impl RolloutCell {
    pub fn snapshot(&self) -> RolloutStatus {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn update(&self, change: impl FnOnce(&mut RolloutStatus)) {
        if let Ok(mut status) = self.0.lock() {
            change(&mut status);
        }
    }
}
