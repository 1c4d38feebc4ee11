//! The `[registry]` section: where the manifest is, which group this agent belongs to,
//! whom it trusts, how often it asks. Checked with the rest of the file (`config.rs` calls
//! [`RegistrySection::check`]); a new key goes here, in `check` with a bound, and in
//! `deploy/config.example.toml`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::manifest::{MAX_GROUP_BYTES, TrustedKeys};
use crate::support::check::{Refusal, within};
use crate::support::file::read_regular_capped;

/// The ranges a value must lie in.
pub mod bounds {
    use std::ops::RangeInclusive;

    /// From a test's fraction of a second to a day.
    pub const POLL_INTERVAL_MS: RangeInclusive<u64> = 100..=86_400_000;
    /// Errors back off from the poll interval up to this.
    pub const RETRY_MAX_MS: RangeInclusive<u64> = 100..=86_400_000;
    pub const TIMEOUT_MS: RangeInclusive<u64> = 100..=300_000;
    /// Enough for a rotation (old and new) and a spare.
    pub const PUBLIC_KEYS: RangeInclusive<usize> = 1..=8;
    /// Versions remembered as failed on this agent (never retried); the oldest is
    /// forgotten past this.
    pub const FAILED_REMEMBERED: usize = 64;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrySection {
    /// The manifest: `https://…/manifest.json`, `http://…`, `file:///…` or a path. Its
    /// signature is at the same place with `.minisig` appended.
    pub url: String,
    /// This agent's group label in the manifest.
    pub group: String,
    /// minisign public keys (the base64 line of a `.pub` file) trusted to sign manifests.
    pub public_keys: Vec<String>,
    /// The longest wait between two polls; each wait is drawn between half and all of it.
    pub poll_interval_ms: u64,
    /// Failed polls back off, doubling from the poll interval, up to this.
    pub retry_max_ms: u64,
    /// One request, body included.
    pub timeout_ms: u64,
    /// PEM CA to trust instead of the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for RegistrySection {
    fn default() -> Self {
        Self {
            url: String::new(),
            group: "default".into(),
            public_keys: Vec::new(),
            poll_interval_ms: 300_000,
            retry_max_ms: 3_600_000,
            timeout_ms: 30_000,
            ca_file: None,
        }
    }
}

impl RegistrySection {
    /// Every rule, as `(key, reason)` of the first broken one.
    pub fn check(&self) -> Result<(), Refusal> {
        within(
            "registry.poll_interval_ms",
            self.poll_interval_ms,
            &bounds::POLL_INTERVAL_MS,
        )?;
        within(
            "registry.retry_max_ms",
            self.retry_max_ms,
            &bounds::RETRY_MAX_MS,
        )?;
        within("registry.timeout_ms", self.timeout_ms, &bounds::TIMEOUT_MS)?;
        super::source::Location::parse(&self.url).map_err(|e| ("registry.url", e))?;
        if self.group.is_empty()
            || self.group.len() > MAX_GROUP_BYTES
            || self.group.chars().any(char::is_control)
        {
            return Err((
                "registry.group",
                format!("must be 1 to {MAX_GROUP_BYTES} bytes, no control characters"),
            ));
        }
        if !bounds::PUBLIC_KEYS.contains(&self.public_keys.len()) {
            return Err((
                "registry.public_keys",
                format!(
                    "{} keys; between {} and {} are needed",
                    self.public_keys.len(),
                    bounds::PUBLIC_KEYS.start(),
                    bounds::PUBLIC_KEYS.end()
                ),
            ));
        }
        TrustedKeys::parse(&self.public_keys).map_err(|e| ("registry.public_keys", e))?;
        self.ca_pem().map_err(|e| ("registry.ca_file", e))?;
        Ok(())
    }

    pub fn keys(&self) -> Result<TrustedKeys, String> {
        TrustedKeys::parse(&self.public_keys)
    }

    /// The CA file's bytes, if one is configured.
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>, String> {
        match &self.ca_file {
            Some(path) => read_regular_capped(path, crate::support::file::SECRET_FILE_MAX_BYTES)
                .map(Some)
                .map_err(|e| format!("cannot read {}: {e}", path.display())),
            None => Ok(None),
        }
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub fn retry_max(&self) -> Duration {
        Duration::from_millis(self.retry_max_ms)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        minisign::KeyPair::generate_unencrypted_keypair()
            .unwrap()
            .pk
            .to_base64()
    }

    #[test]
    fn every_rule_names_its_key() {
        let good = RegistrySection {
            url: "https://registry.example/fleet/manifest.json".into(),
            public_keys: vec![key()],
            ..RegistrySection::default()
        };
        assert_eq!(good.check(), Ok(()));
        let broken = |change: &dyn Fn(&mut RegistrySection)| {
            let mut section = good.clone();
            change(&mut section);
            section.check().unwrap_err().0
        };
        assert_eq!(broken(&|s| s.url = String::new()), "registry.url");
        assert_eq!(broken(&|s| s.url = "ftp://x/m.json".into()), "registry.url");
        assert_eq!(broken(&|s| s.group = String::new()), "registry.group");
        assert_eq!(broken(&|s| s.group = "a\nb".into()), "registry.group");
        assert_eq!(broken(&|s| s.public_keys.clear()), "registry.public_keys");
        assert_eq!(
            broken(&|s| s.public_keys = vec!["nope".into()]),
            "registry.public_keys"
        );
        assert_eq!(
            broken(&|s| s.poll_interval_ms = 1),
            "registry.poll_interval_ms"
        );
        assert_eq!(broken(&|s| s.timeout_ms = 0), "registry.timeout_ms");
        assert_eq!(
            broken(&|s| s.ca_file = Some("/nonexistent/ca.pem".into())),
            "registry.ca_file"
        );
    }
}
