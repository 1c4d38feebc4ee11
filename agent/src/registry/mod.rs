//! The function registry: a signed manifest on any static HTTP(S) location (or a file
//! path) names, per group of agents, the module to run; this agent polls it, takes a new
//! version when its cohort is in the rollout, and hands the module to the pipeline as a
//! swap candidate, like the file watcher does. [`RolloutStatus`] is what it reports:
//! the fleet status document (`fleet`) and the metrics read it.
//!
//! `manifest` is what a manifest says and how its signature and cohort are checked,
//! `source` reads a location (HTTP(S) or file, conditional, bounded), `state` is what
//! survives a restart, `poller` the thread deciding what to take, `config` the
//! `[registry]` section. The README's "Fleet: registry" section is the user's view.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use thiserror::Error;

pub mod config;
pub mod manifest;
mod minisign;
mod poller;
pub mod source;
mod state;

pub use config::RegistrySection;
pub use manifest::{Manifest, TrustedKeys, cohort_point, in_cohort, verify};
pub use poller::{Poller, PollerConfig};
pub use state::FILE_NAME as STATE_FILE;

/// Why a manifest or module is not used.
#[derive(Debug, Error)]
pub enum RegistryError {
    /// The registry could not be read (network, HTTP status, missing file): try again.
    #[error("registry unreachable: {0}")]
    Unreachable(String),
    #[error("{what} is larger than {max_bytes} bytes")]
    TooLarge { what: String, max_bytes: u64 },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The signature does not verify with a trusted key.
    #[error("bad signature: {0}")]
    Signature(String),
    /// Signed, but not a manifest this agent can use.
    #[error("bad manifest: {0}")]
    Manifest(String),
    /// The module served is not the one the signed manifest names.
    #[error("{0}")]
    Mismatch(String),
}

/// The module `entry` names, fetched relative to the manifest at `manifest` and checked
/// against the signed size and sha256 (read no further than the signed size): what the
/// poller and `edge-agent check --manifest` both do before a module is used.
pub fn fetch_module(
    source: &source::Source,
    manifest: &source::Location,
    entry: &manifest::GroupEntry,
) -> Result<Vec<u8>, RegistryError> {
    let location = manifest
        .join(&entry.module.url)
        .map_err(RegistryError::Manifest)?;
    let cap = entry.module.size.min(crate::function::MAX_MODULE_BYTES);
    let bytes = match source.get(&location, &source::Validators::default(), cap)? {
        source::Fetched::Body { bytes, .. } => bytes,
        source::Fetched::NotModified => {
            return Err(RegistryError::Unreachable(format!(
                "{location}: not modified, without having been read"
            )));
        }
    };
    let got = manifest::sha256_hex(&bytes);
    if u64::try_from(bytes.len()).ok() != Some(entry.module.size) || got != entry.module.sha256 {
        return Err(RegistryError::Mismatch(format!(
            "the module at {location} is {} bytes with sha256 {}; the signed manifest says {} bytes, {}",
            bytes.len(),
            crate::support::text::short_sha(&got),
            entry.module.size,
            crate::support::text::short_sha(&entry.module.sha256)
        )));
    }
    Ok(bytes)
}

impl RegistryError {
    /// Worth asking again at the next poll, as opposed to a refusal of what was served.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Client(_))
    }
}

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

impl RolloutState {
    pub const ALL: [RolloutState; 7] = [
        Self::Off,
        Self::Waiting,
        Self::NotInCohort,
        Self::Trying,
        Self::Current,
        Self::RolledBack,
        Self::Refused,
    ];

    /// The name in metrics and status documents (as serialised).
    pub fn label(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Waiting => "waiting",
            Self::NotInCohort => "not_in_cohort",
            Self::Trying => "trying",
            Self::Current => "current",
            Self::RolledBack => "rolled_back",
            Self::Refused => "refused",
        }
    }
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
    /// Requests for the manifest since start, those answered "not modified" (304, or an
    /// unchanged file), and those that failed (network, HTTP status).
    pub requests: u64,
    pub not_modified: u64,
    pub fetch_errors: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_serialised_names() {
        for state in RolloutState::ALL {
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::Value::String(state.label().into())
            );
        }
    }
}
