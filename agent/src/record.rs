//! A verdict on one sample, as it leaves the agent: the sample, what the function said
//! of it, which function said it, and the window it was judged in.

use serde::Serialize;

use crate::sensor::Sample;
use crate::support::timestamp;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VerdictRecord {
    /// The sample's time, Unix ms: with the sensor id, the document's identity.
    #[serde(skip)]
    pub unix_ms: i64,
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    pub host_id: String,
    pub sensor_id: String,
    pub temperature: f32,
    pub humidity: f32,
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
    pub error: Option<String>,
    /// The sha256 of the module that judged the sample; empty when none did.
    pub function_sha256: String,
    pub window_start: String,
    pub window_end: String,
}

impl VerdictRecord {
    /// Deterministic, so sending the same verdict twice stores it once.
    pub fn document_id(&self) -> String {
        format!("{}-{}", self.sensor_id, self.unix_ms)
    }
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
        verdict: Result<edge_function::Verdict, &str>,
    ) -> Self {
        let (is_anomaly, score, error) = match verdict {
            Ok(v) => (Some(v.is_anomaly), v.score, None),
            Err(reason) => (None, None, Some(reason.to_owned())),
        };
        Self {
            unix_ms: sample.timestamp,
            timestamp: timestamp::format(sample.timestamp),
            host_id: judgement.host_id.to_owned(),
            sensor_id: judgement.sensor_id.to_owned(),
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
        }
    }
}
