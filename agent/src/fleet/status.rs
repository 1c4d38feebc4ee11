//! One status document: what an agent runs and how it fares at one instant, as it lands in
//! the status index; its `_id`; the index template that maps it; and the part of it whose
//! change is worth a document of its own ([`ChangeKey`]). A field added here needs a
//! mapping in [`template_body`] (a test checks both agree).

use serde::Serialize;
use serde_json::{Value, json};

use crate::record::DocumentHead;
use crate::registry::{RolloutState, RolloutStatus};
use crate::sensor::RunId;
use crate::support::text;
use crate::support::timestamp;

/// Bytes of outside text (a rollout's reason) kept in a status document.
pub const REASON_MAX_CHARS: usize = 512;

/// Why a document was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// The first of this run.
    Start,
    /// Something in [`ChangeKey`] changed.
    Change,
    /// `[fleet] interval_secs` passed without a change.
    Periodic,
    /// The agent is stopping (a clean stop, not a silence).
    Stop,
}

/// A status document, flat so every field is a column in Kibana.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusDocument {
    /// When the report was made (the system's wall clock), who made it, in which run (as
    /// in every verdict's `run_id`: one per start of the agent).
    #[serde(flatten)]
    pub head: DocumentHead,
    pub agent_version: String,
    /// The report's place in the run, from 0.
    pub report_seq: u64,
    pub report: ReportKind,
    /// What changed since the last report (for `change`), e.g. `function`, `rollout`.
    pub changed: Vec<&'static str>,
    /// The seconds between periodic reports: "silent" is judged against it.
    pub interval_secs: u64,
    pub uptime_secs: u64,
    /// The module judging windows now.
    pub function_sha256: String,
    pub rollout_state: RolloutState,
    pub rollout_group: Option<String>,
    pub manifest_version: Option<u64>,
    pub target_sha256: Option<String>,
    pub rollout_reason: Option<String>,
    pub rollout_refused: u64,
    pub rollout_rolled_back: u64,
    /// As observed; flat in the document, a column each.
    #[serde(flatten)]
    pub counters: Counters,
    /// When a request last delivered documents; absent before the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<String>,
    /// The system clock is synchronised (the report's `@timestamp` can be trusted).
    pub clock_synced: bool,
}

/// Who reports: fixed for a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReporterIdentity {
    pub host_id: String,
    pub sensor_id: String,
    pub run_id: RunId,
}

impl StatusDocument {
    /// `<host>.<sensor>.<run id>.status-<report seq>`: the same for every send of this
    /// report, different for every other one, and never a verdict's id (which ends in a
    /// number), whatever index either is in; at most 96 + 96 + 16 + 27 + 3 bytes.
    pub fn document_id(&self) -> String {
        self.head
            .document_id(format_args!("status-{}", self.report_seq))
    }
}

/// What the agent looks like now, read from the stages' counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub function_sha256: String,
    pub rollout: RolloutStatus,
    pub counters: Counters,
    /// Unix ms of the last delivery; 0 before the first.
    pub last_delivery_ms: u64,
    pub clock_synced: bool,
}

/// The counters a status document carries as they were observed: the pipeline's windows,
/// the swaps, the source's faults, the spool's depth.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub windows: u64,
    pub failed_windows: u64,
    pub swaps: u64,
    pub swaps_rolled_back: u64,
    pub sensor_faults: u64,
    /// The last sensor read failed (and none has succeeded since).
    pub sensor_failing: bool,
    pub spool_depth: u64,
}

/// The part of [`Observed`] whose change is reported at once (bounded, see `reporter`):
/// what runs, where the rollout stands, whether the sensor fails, whether the clock can be
/// trusted. Counters that only grow are not in it: the periodic report carries them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeKey {
    function_sha256: String,
    rollout_state: RolloutState,
    manifest_version: Option<u64>,
    target_sha256: Option<String>,
    rollout_refused: u64,
    rollout_rolled_back: u64,
    sensor_failing: bool,
    clock_synced: bool,
}

impl ChangeKey {
    pub fn of(observed: &Observed) -> Self {
        let rollout = &observed.rollout;
        Self {
            function_sha256: observed.function_sha256.clone(),
            rollout_state: rollout.state,
            manifest_version: rollout.manifest_version,
            target_sha256: rollout.target_sha256.clone(),
            rollout_refused: rollout.refused,
            rollout_rolled_back: rollout.rolled_back,
            sensor_failing: observed.counters.sensor_failing,
            clock_synced: observed.clock_synced,
        }
    }

    /// What differs from `before`, by name.
    pub fn changed_since(&self, before: &Self) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.function_sha256 != before.function_sha256 {
            changed.push("function");
        }
        if (
            self.rollout_state,
            self.manifest_version,
            &self.target_sha256,
            self.rollout_refused,
            self.rollout_rolled_back,
        ) != (
            before.rollout_state,
            before.manifest_version,
            &before.target_sha256,
            before.rollout_refused,
            before.rollout_rolled_back,
        ) {
            changed.push("rollout");
        }
        if self.sensor_failing != before.sensor_failing {
            changed.push("sensor");
        }
        if self.clock_synced != before.clock_synced {
            changed.push("clock");
        }
        changed
    }
}

/// What a report says besides the observation.
pub struct Report<'a> {
    pub identity: &'a ReporterIdentity,
    pub seq: u64,
    pub kind: ReportKind,
    pub changed: Vec<&'static str>,
    pub interval_secs: u64,
    pub uptime_secs: u64,
    pub unix_ms: i64,
}

impl StatusDocument {
    pub fn new(report: Report<'_>, observed: &Observed) -> Self {
        let rollout = &observed.rollout;
        // The registry escapes and bounds its reason already; bounded again here because
        // the document outlives any promise made elsewhere.
        let outside = |t: &Option<String>| t.as_deref().map(|t| text::escape(t, REASON_MAX_CHARS));
        Self {
            head: DocumentHead::new(
                report.unix_ms,
                &report.identity.host_id,
                &report.identity.sensor_id,
                report.identity.run_id,
            ),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            report_seq: report.seq,
            report: report.kind,
            changed: report.changed,
            interval_secs: report.interval_secs,
            uptime_secs: report.uptime_secs,
            function_sha256: observed.function_sha256.clone(),
            rollout_state: rollout.state,
            rollout_group: outside(&rollout.group),
            manifest_version: rollout.manifest_version,
            target_sha256: outside(&rollout.target_sha256),
            rollout_reason: outside(&rollout.reason),
            rollout_refused: rollout.refused,
            rollout_rolled_back: rollout.rolled_back,
            counters: observed.counters.clone(),
            last_delivery: (observed.last_delivery_ms > 0).then(|| {
                timestamp::format(i64::try_from(observed.last_delivery_ms).unwrap_or(i64::MAX))
            }),
            clock_synced: observed.clock_synced,
        }
    }
}

/// The status index's template: ids, versions and states keywords (terms aggregations),
/// counters longs, times dates; a data stream when asked for. Priority above the verdict
/// template's, so a status index named inside the verdicts' pattern still gets it.
pub fn template_body(index: &str, data_stream: bool) -> Value {
    let keyword = json!({ "type": "keyword" });
    let long = json!({ "type": "long" });
    let boolean = json!({ "type": "boolean" });
    let date = json!({ "type": "date" });
    let mut body = json!({
        "index_patterns": [index],
        "priority": 210,
        "template": { "mappings": { "properties": {
            "@timestamp": date,
            "host_id": keyword, "sensor_id": keyword, "agent_version": keyword,
            "run_id": keyword, "report_seq": long, "report": keyword, "changed": keyword,
            "interval_secs": long, "uptime_secs": long,
            "function_sha256": keyword, "rollout_state": keyword, "rollout_group": keyword,
            "manifest_version": long, "target_sha256": keyword,
            "rollout_reason": { "type": "text", "fields": { "keyword": { "type": "keyword", "ignore_above": 512 } } },
            "rollout_refused": long, "rollout_rolled_back": long,
            "windows": long, "failed_windows": long, "swaps": long, "swaps_rolled_back": long,
            "sensor_faults": long, "sensor_failing": boolean,
            "spool_depth": long, "last_delivery": date, "clock_synced": boolean,
        }}},
        "_meta": { "managed_by": "edge-agent", "what": "fleet status" },
    });
    if data_stream && let Some(object) = body.as_object_mut() {
        object.insert("data_stream".into(), json!({}));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> ReporterIdentity {
        ReporterIdentity {
            host_id: "pi.kitchen".into(),
            sensor_id: "bme680".into(),
            run_id: RunId::from_raw(7),
        }
    }

    fn document(observed: &Observed) -> StatusDocument {
        StatusDocument::new(
            Report {
                identity: &identity(),
                seq: 3,
                kind: ReportKind::Change,
                changed: vec!["function"],
                interval_secs: 300,
                uptime_secs: 12,
                unix_ms: 1_764_000_000_000,
            },
            observed,
        )
    }

    #[test]
    fn every_field_is_mapped_and_the_id_is_the_report() {
        let observed = Observed {
            rollout: RolloutStatus {
                group: Some("lab".into()),
                manifest_version: Some(4),
                target_sha256: Some("ab".into()),
                reason: Some("canary failed".into()),
                ..RolloutStatus::default()
            },
            last_delivery_ms: 1_764_000_000_000,
            ..Observed::default()
        };
        let doc = document(&observed);
        assert_eq!(
            doc.document_id(),
            "pi~2ekitchen.bme680.0000000000000007.status-3"
        );
        let value = serde_json::to_value(&doc).unwrap();
        let template = template_body("edge-fleet", false);
        let mapped = template["template"]["mappings"]["properties"]
            .as_object()
            .unwrap();
        for key in value.as_object().unwrap().keys() {
            assert!(mapped.contains_key(key), "{key} is not in the template");
        }
        for key in mapped.keys() {
            assert!(
                value.get(key).is_some(),
                "{key} is mapped but never written"
            );
        }
        assert_eq!(value["rollout_state"], "off");
        assert_eq!(value["report"], "change");
        assert_eq!(value["changed"], json!(["function"]));
        assert!(template_body("f", true).get("data_stream").is_some());
    }

    #[test]
    fn outside_text_is_escaped_and_bounded() {
        let observed = Observed {
            rollout: RolloutStatus {
                reason: Some(format!("bad\n{}", "x".repeat(5000))),
                ..RolloutStatus::default()
            },
            ..Observed::default()
        };
        let reason = document(&observed).rollout_reason.unwrap();
        assert!(!reason.contains('\n'), "{reason}");
        assert!(reason.len() < 600, "{}", reason.len());
    }

    #[test]
    fn changes_are_named() {
        let before = Observed::default();
        let mut after = before.clone();
        assert!(
            ChangeKey::of(&after)
                .changed_since(&ChangeKey::of(&before))
                .is_empty()
        );
        after.counters.windows = 100;
        assert!(
            ChangeKey::of(&after)
                .changed_since(&ChangeKey::of(&before))
                .is_empty(),
            "counters are not changes"
        );
        after.function_sha256 = "cd".into();
        after.rollout.state = RolloutState::RolledBack;
        after.clock_synced = true;
        assert_eq!(
            ChangeKey::of(&after).changed_since(&ChangeKey::of(&before)),
            ["function", "rollout", "clock"]
        );
    }
}
