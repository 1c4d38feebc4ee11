//! Fleet visibility: every agent writes a status document into Elasticsearch (its own index,
//! its own template) when something an operator cares about changes and periodically, so a
//! Kibana dashboard can show which versions run where, which agents are in which rollout
//! state, and which have gone silent.
//!
//! The documents go through the same spool and shipper as verdicts
//! ([`crate::spool::Destination::Status`]): durable across restarts and outages, at least
//! once, never duplicated (deterministic `_id`, `create`). One document per report, never
//! one overwritten per agent: `create` is what the shipper's no-duplicate rule and data
//! streams need, a late retry can never put an older state over a newer one, and the
//! history is there for "when did this agent change version". "Last seen" is the newest
//! `@timestamp` per `host_id` (a terms aggregation with a max, or Lens' "last value").
//!
//! - [`FleetSection`]: the `[fleet]` configuration section.
//! - [`status`]: what a status document holds, its `_id` and its template.
//! - [`reporter`]: when to write one (the rule, testable without threads), and the thread.
//!
//! A new field goes in [`status::StatusDocument`], [`status::template_body`], and, if a
//! change of it should trigger a report, `status::ChangeKey`.

pub mod reporter;
pub mod status;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use reporter::{FleetStats, Observed, Reporter, ReporterHandle};
pub use status::{StatusDocument, template_body};

/// The default status index (the shipper's route for status documents until `[fleet]`
/// says otherwise).
pub use crate::ship::DEFAULT_STATUS_INDEX;

/// Bounds of the `[fleet]` keys.
pub mod bounds {
    use std::ops::RangeInclusive;

    /// From ten seconds (tests, a lab) to a day; the dashboard calls an agent silent after
    /// three intervals without a document.
    pub const INTERVAL_SECS: RangeInclusive<u64> = 10..=86_400;
}

/// `[fleet]`: the status documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetSection {
    /// Write status documents (with `[elasticsearch]` only: they travel the same way).
    pub enabled: bool,
    /// The index (or data stream) of the status documents.
    pub index: String,
    /// Write the status index as a data stream.
    pub data_stream: bool,
    /// A status document at least this often, changes or not.
    pub interval_secs: u64,
}

impl Default for FleetSection {
    fn default() -> Self {
        Self {
            enabled: true,
            index: DEFAULT_STATUS_INDEX.into(),
            data_stream: false,
            interval_secs: 300,
        }
    }
}

/// Why a `[fleet]` key is refused: the key and the reason.
pub use crate::support::check::Refusal;
use crate::support::check::within;

impl FleetSection {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    /// The rules serde cannot express; `check_index` is the configuration's own rule for
    /// index names.
    pub fn check(&self, check_index: impl Fn(&str) -> Result<(), String>) -> Result<(), Refusal> {
        within(
            "fleet.interval_secs",
            self.interval_secs,
            &bounds::INTERVAL_SECS,
        )?;
        check_index(&self.index).map_err(|reason| ("fleet.index", reason))
    }

    /// Points the shipper's status destination at this section's index, with its template
    /// when status documents are written.
    pub fn apply(&self, settings: &mut crate::ship::ShipperSettings) {
        settings.status_index = self.index.clone();
        settings.status_template = self
            .enabled
            .then(|| template_body(&self.index, self.data_stream));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_and_the_index_are_checked() {
        let ok = |_: &str| Ok(());
        assert_eq!(FleetSection::default().check(ok), Ok(()));
        let short = FleetSection {
            interval_secs: 9,
            ..FleetSection::default()
        };
        assert_eq!(short.check(ok).unwrap_err().0, "fleet.interval_secs");
        let refused = FleetSection::default().check(|_| Err("no".into()));
        assert_eq!(refused, Err(("fleet.index", "no".into())));
    }

    #[test]
    fn the_status_index_cannot_be_the_verdicts() {
        let text = "[elasticsearch]\nindex = \"air\"\n[fleet]\nindex = \"air\"\n";
        let err = crate::config::AgentConfig::parse(text, "agent.toml").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("agent.toml, line 4: `fleet.index`: must differ"),
            "{err}"
        );
        let text = "[fleet]\nindex = \"Big\"\ninterval_secs = 60\n";
        let err = crate::config::AgentConfig::parse(text, "agent.toml").unwrap_err();
        assert!(
            err.to_string().contains("`fleet.index`: must be lowercase"),
            "{err}"
        );
        let text = "[elasticsearch]\n[fleet]\ninterval_secs = 5\n";
        let err = crate::config::AgentConfig::parse(text, "agent.toml").unwrap_err();
        assert!(
            err.to_string().contains("line 3: `fleet.interval_secs`"),
            "{err}"
        );
    }

    #[test]
    fn the_default_index_is_outside_the_verdicts_data_view() {
        assert!(!DEFAULT_STATUS_INDEX.starts_with("edge-agent"));
    }
}
