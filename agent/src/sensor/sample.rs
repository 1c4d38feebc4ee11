//! `Sample`: one reading (of the BME680, or a line from another sensor) as the rest of the
//! pipeline sees it, with the identity and the clock state fixed when it was taken. Plain
//! data; a change to its fields is a change to the records (`record.rs`) and to the
//! Elasticsearch template (`ship/client.rs`).

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};

use crate::sensor::identity::RunId;

/// One reading of the sensor, with its air-quality score.
///
/// Every float is finite except `humidity` and `pressure` of a channel configured `skip`,
/// which are NaN (serialised as `null`, read back from `null`). `air_quality` is within
/// 0..=100. When the gas reading is unusable, `gas_valid` or `heater_stable` is false and
/// `air_quality` keeps the gas part of the last usable reading, with the current humidity
/// part (see [`crate::sensor::bme680::air_quality`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When the measurement was triggered: Unix time in milliseconds, UTC. Never less than
    /// the previous sample's of the same run (see [`crate::sensor::timeline`]).
    pub timestamp: i64,
    /// The run that took it: random per start of the sampler.
    pub run_id: RunId,
    /// Its place in the run, from 0; with `run_id`, the sample's identity.
    pub seq: u64,
    /// The wall clock was synchronised and `timestamp` is its reading (not held ahead of a
    /// clock that stepped back).
    pub clock_synced: bool,
    /// Ambient temperature in °C (self-heating offset already subtracted).
    pub temperature: f32,
    /// Relative humidity in %RH (0–100), recomputed for the corrected temperature; NaN
    /// when humidity oversampling is `skip`.
    #[serde(deserialize_with = "nan_if_null")]
    pub humidity: f32,
    /// Barometric pressure in hPa; NaN when pressure oversampling is `skip`.
    #[serde(deserialize_with = "nan_if_null")]
    pub pressure: f32,
    /// Raw gas-sensor resistance in Ω (not humidity-compensated); 0 when `gas_valid` is
    /// false because the chip returned no gas conversion.
    pub gas_resistance: f32,
    /// Air-quality score, 0 (worst) to 100 (best); see the air-quality module.
    pub air_quality: f32,
    /// The chip reported a real gas conversion (not a dummy cycle).
    pub gas_valid: bool,
    /// The gas heater reached its target temperature during this conversion.
    pub heater_stable: bool,
    /// The gas baseline is still being learnt: `air_quality` is provisional.
    pub burn_in: bool,
    /// The sensor that took it, when a source feeds several (`[source] kind = "lines"`);
    /// `None` is the configured `[agent] sensor_id`. Not serialised: the records name the
    /// sensor themselves, and the window history is kept per sensor.
    #[serde(skip)]
    pub sensor_id: Option<Arc<str>>,
    /// Who sent it, when it came over a network (`[source] kind = "lines"`): one
    /// allocation per connection (or UDP sender), shared by its samples. Not serialised,
    /// like `sensor_id`: the records carry it.
    #[serde(skip)]
    pub peer: Option<Arc<Peer>>,
}

/// The sender of a line over TCP or UDP, as the records name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its address (an IPv4 client of an IPv6 socket as IPv4).
    pub address: IpAddr,
    /// The name in its TLS client certificate (its first DNS subject alternative name),
    /// when it presented one.
    pub name: Option<Arc<str>>,
}

impl Sample {
    /// A sample of the air-quality channel alone (a recorded series): the channels it
    /// does not have are NaN, as an unmeasured channel is in a live sample.
    pub fn air_quality_only(run_id: RunId, seq: u64, timestamp: i64, air_quality: f32) -> Self {
        Self {
            timestamp,
            run_id,
            seq,
            clock_synced: true,
            temperature: f32::NAN,
            humidity: f32::NAN,
            pressure: f32::NAN,
            gas_resistance: f32::NAN,
            air_quality,
            gas_valid: true,
            heater_stable: true,
            burn_in: false,
            sensor_id: None,
            peer: None,
        }
    }

    /// Whether the gas reading may be used as air quality.
    pub fn gas_usable(&self) -> bool {
        self.gas_valid && self.heater_stable
    }
}

/// A plain sample at `timestamp` (also its sequence number), for the library's unit tests.
#[cfg(test)]
pub(crate) fn test_sample(timestamp: i64) -> Sample {
    Sample::air_quality_only(
        RunId::from_raw(1),
        timestamp.unsigned_abs(),
        timestamp,
        50.0,
    )
}

/// serde_json writes NaN as `null`; this reads it back. Binary formats (postcard, as the
/// window history stores samples) keep NaN as a float and are read as one.
fn nan_if_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f32, D::Error> {
    if deserializer.is_human_readable() {
        Ok(Option::<f32>::deserialize(deserializer)?.unwrap_or(f32::NAN))
    } else {
        f32::deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The windows' memory bound (`[source]`'s `WINDOWED_SAMPLES`) counts on this size.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_sample_is_72_bytes() {
        assert_eq!(std::mem::size_of::<Sample>(), 72);
    }

    #[test]
    fn a_skipped_channel_round_trips_through_json_as_null() {
        let sample = Sample {
            timestamp: 1,
            run_id: RunId::from_raw(7),
            seq: 3,
            clock_synced: true,
            temperature: 21.0,
            humidity: f32::NAN,
            pressure: f32::NAN,
            gas_resistance: 1.0,
            air_quality: 50.0,
            gas_valid: true,
            heater_stable: true,
            burn_in: false,
            sensor_id: None,
            peer: None,
        };
        let json = serde_json::to_value(&sample).unwrap();
        assert!(json["humidity"].is_null() && json["pressure"].is_null());
        assert_eq!(json["run_id"], "0000000000000007");
        let back: Sample = serde_json::from_value(json).unwrap();
        assert!(back.humidity.is_nan() && back.pressure.is_nan());
        assert_eq!((back.run_id, back.seq), (sample.run_id, 3));
    }
}
