//! A verdict on one sample, as it leaves the agent: the sample, what the function said
//! of it, which function said it, and the window it was judged in; and the document's
//! Elasticsearch `_id`, which is the sample's identity (host, sensor, run, sequence), never
//! its time. A field added here needs a mapping in `ship/client.rs`'s template.

use std::sync::Arc;

use serde::Serialize;

use crate::sensor::{RunId, Sample};
use crate::support::timestamp;

/// Who and when: the fields every document the agent ships starts with (verdicts here,
/// fleet status documents in `fleet/status.rs`), and the first three parts of its id.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DocumentHead {
    /// The document's time, Unix ms; not serialised.
    #[serde(skip)]
    pub unix_ms: i64,
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    pub host_id: String,
    pub sensor_id: String,
    /// The sampler run (16 hex digits): one per start of the agent, or per sensor for
    /// lines.
    pub run_id: RunId,
}

impl DocumentHead {
    pub fn new(unix_ms: i64, host_id: &str, sensor_id: &str, run_id: RunId) -> Self {
        Self {
            unix_ms,
            timestamp: timestamp::format(unix_ms),
            host_id: host_id.to_owned(),
            sensor_id: sensor_id.to_owned(),
            run_id,
        }
    }

    /// `<host>.<sensor>.<run id>.<last>`, host and sensor escaped and cut by `id_part`:
    /// the shape of every document id the agent writes (verdicts end in a sequence
    /// number, status reports in `status-N`).
    pub fn document_id(&self, last: impl std::fmt::Display) -> String {
        format!(
            "{}.{}.{}.{last}",
            id_part(&self.host_id),
            id_part(&self.sensor_id),
            self.run_id
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VerdictRecord {
    /// The sample's time, who took it and in which run; with `seq`, the identity.
    #[serde(flatten)]
    pub head: DocumentHead,
    /// The sample's place in the run: with the host, sensor and run, the document's
    /// identity.
    pub seq: u64,
    /// The wall clock was synchronised when the sample was taken (see `sensor::timeline`).
    pub clock_synced: bool,
    pub temperature: f32,
    /// `null` when the channel is configured `skip`.
    pub humidity: f32,
    /// `null` when the channel is configured `skip`.
    pub pressure: f32,
    pub gas_resistance: f32,
    pub air_quality: f32,
    pub gas_valid: bool,
    pub heater_stable: bool,
    pub burn_in: bool,
    /// `None` when the window could not be judged; `error` says why.
    pub is_anomaly: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// One allocation per window, shared by its records: an error is stored once, however
    /// many samples it is the reason for.
    pub error: Option<Arc<str>>,
    /// The sha256 of the module that judged the sample; empty when none did.
    pub function_sha256: String,
    pub window_start: String,
    pub window_end: String,
    /// The address that sent the sample over TCP or UDP (`[source] kind = "lines"`);
    /// absent for the chip and standard input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<std::net::IpAddr>,
    /// The name in the sender's TLS client certificate, when it presented one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_name: Option<Arc<str>>,
}

/// Bytes of the host or sensor id kept in a document id (after escaping): the run id and
/// sequence carry the uniqueness, these only make the id readable.
pub const ID_PART_MAX_BYTES: usize = 96;

impl VerdictRecord {
    /// `<host>.<sensor>.<run id>.<seq>`: the same for every send of this sample (retries,
    /// a replay of the spool after a crash), different for every other sample, whatever
    /// the clock did and whichever host or sensor names are configured. Host and sensor are
    /// escaped to `[A-Za-z0-9_-]` (anything else, `.` included, becomes `~xx` per byte,
    /// so the four parts cannot run into each other) and cut to [`ID_PART_MAX_BYTES`];
    /// at most 96 + 96 + 16 + 20 + 3 = 231 bytes, under Elasticsearch's 512.
    pub fn document_id(&self) -> String {
        self.head.document_id(self.seq)
    }
}

/// `text` escaped to `[A-Za-z0-9_-]` (`~xx` per other byte) and cut to [`ID_PART_MAX_BYTES`]:
/// one part of a document id that cannot run into the next (the fleet status ids use it too).
fn id_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(ID_PART_MAX_BYTES));
    for byte in text.bytes() {
        let escaped_len = if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-') {
            1
        } else {
            3
        };
        if out.len() + escaped_len > ID_PART_MAX_BYTES {
            break;
        }
        if escaped_len == 1 {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("~{byte:02x}"));
        }
    }
    out
}

/// Who made a verdict and over which samples.
#[derive(Clone, Debug)]
pub struct Judgement<'a> {
    pub host_id: &'a str,
    pub sensor_id: &'a str,
    pub function_sha256: &'a str,
    /// Timestamps (Unix ms) of the window's first and last samples.
    pub window: (i64, i64),
}

impl VerdictRecord {
    pub fn new(
        sample: &Sample,
        judgement: &Judgement<'_>,
        verdict: Result<edge_function::Verdict, Arc<str>>,
    ) -> Self {
        let (is_anomaly, score, error) = match verdict {
            Ok(v) => (Some(v.is_anomaly), v.score, None),
            Err(reason) => (None, None, Some(reason)),
        };
        Self {
            head: DocumentHead::new(
                sample.timestamp,
                judgement.host_id,
                judgement.sensor_id,
                sample.run_id,
            ),
            seq: sample.seq,
            clock_synced: sample.clock_synced,
            temperature: sample.temperature,
            humidity: sample.humidity,
            pressure: sample.pressure,
            gas_resistance: sample.gas_resistance,
            air_quality: sample.air_quality,
            gas_valid: sample.gas_valid,
            heater_stable: sample.heater_stable,
            burn_in: sample.burn_in,
            is_anomaly,
            score,
            error,
            function_sha256: judgement.function_sha256.to_owned(),
            window_start: timestamp::format(judgement.window.0),
            window_end: timestamp::format(judgement.window.1),
            peer: sample.peer.as_ref().map(|peer| peer.address),
            peer_name: sample.peer.as_ref().and_then(|peer| peer.name.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(run: u64, seq: u64, timestamp: i64) -> Sample {
        Sample {
            timestamp,
            run_id: RunId::from_raw(run),
            seq,
            clock_synced: true,
            temperature: 21.0,
            humidity: f32::NAN,
            pressure: 1000.0,
            gas_resistance: 1.0,
            air_quality: 50.0,
            gas_valid: true,
            heater_stable: true,
            burn_in: false,
            sensor_id: None,
            peer: None,
        }
    }

    fn record(host: &str, sensor: &str, sample: &Sample) -> VerdictRecord {
        let judgement = Judgement {
            host_id: host,
            sensor_id: sensor,
            function_sha256: "ab",
            window: (0, 1),
        };
        VerdictRecord::new(sample, &judgement, Err("x".into()))
    }

    #[test]
    fn the_id_is_the_identity_not_the_time() {
        let at = 1_767_225_600_000;
        let a = record("pi", "bme680", &sample(1, 0, at));
        assert_eq!(a.document_id(), "pi.bme680.0000000000000001.0");
        // Same time, other run or other place in the run: other document.
        assert_ne!(
            a.document_id(),
            record("pi", "bme680", &sample(2, 0, at)).document_id()
        );
        assert_ne!(
            a.document_id(),
            record("pi", "bme680", &sample(1, 1, at)).document_id()
        );
        // Same sample re-sent later: same document.
        assert_eq!(
            a.document_id(),
            record("pi", "bme680", &sample(1, 0, at)).document_id()
        );
        // One sensor id on two hosts.
        assert_ne!(
            a.document_id(),
            record("pi2", "bme680", &sample(1, 0, at)).document_id()
        );
    }

    #[test]
    fn id_parts_cannot_run_together_and_stay_short() {
        let one = record("a.b", "c", &sample(1, 0, 0)).document_id();
        let other = record("a", "b.c", &sample(1, 0, 0)).document_id();
        assert_ne!(one, other);
        assert_eq!(one, "a~2eb.c.0000000000000001.0");
        let long = "ü".repeat(1000);
        let id = record(&long, &long, &sample(u64::MAX, u64::MAX, 0)).document_id();
        assert!(id.len() <= 231 && id.len() < 512, "{}", id.len());
        assert!(id.bytes().all(|b| b.is_ascii_graphic()));
    }

    #[test]
    fn a_skipped_channel_is_null_in_the_record() {
        let json = serde_json::to_value(record("pi", "s", &sample(1, 0, 0))).unwrap();
        assert!(json["humidity"].is_null());
        assert_eq!(json["pressure"], 1000.0);
        assert_eq!(json["run_id"], "0000000000000001");
        assert_eq!(json["seq"], 0);
        assert_eq!(json["clock_synced"], true);
        assert!(json.get("peer").is_none() && json.get("peer_name").is_none());
    }

    #[test]
    fn a_networked_sample_names_its_sender() {
        let mut networked = sample(1, 0, 0);
        networked.peer = Some(Arc::new(crate::sensor::Peer {
            address: "192.168.1.7".parse().unwrap(),
            name: Some("kitchen".into()),
        }));
        let json = serde_json::to_value(record("pi", "s", &networked)).unwrap();
        assert_eq!(json["peer"], "192.168.1.7");
        assert_eq!(json["peer_name"], "kitchen");
    }
}
