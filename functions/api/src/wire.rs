//! The types that cross the host/guest boundary, encoded with postcard.
//!
//! postcard is not self-describing: host and guest must agree on these exact shapes, which
//! is what [`ABI_VERSION`] pins. Change a type here and the version must move.

use serde::{Deserialize, Serialize};

/// The version of the ABI in this crate; exported by every registered function and
/// checked by the host before the first call.
pub const ABI_VERSION: u32 = 1;

/// One window of samples from one sensor, oldest first. Every channel has one value per
/// timestamp, except that a channel the source does not measure is empty (a replayed CSV
/// carries only `air_quality`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub sensor_id: String,
    /// Unix time in milliseconds, UTC.
    pub timestamps: Vec<i64>,
    /// The series functions judge by default (for the BME680: 0 = worst … 100 = best).
    pub air_quality: Vec<f32>,
    /// °C.
    pub temperature: Vec<f32>,
    /// % relative humidity.
    pub humidity: Vec<f32>,
    /// hPa.
    pub pressure: Vec<f32>,
    /// Ω.
    pub gas_resistance: Vec<f32>,
}

impl Window {
    /// A window with only the air-quality channel, as replayed from a CSV.
    pub fn from_air_quality(
        sensor_id: impl Into<String>,
        timestamps: Vec<i64>,
        air_quality: Vec<f32>,
    ) -> Self {
        Self {
            sensor_id: sensor_id.into(),
            timestamps,
            air_quality,
            ..Self::default()
        }
    }

    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }
}

/// A function's judgement of one sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub is_anomaly: bool,
    /// How anomalous, in the function's own units, when it has such a number.
    pub score: Option<f32>,
}

impl Verdict {
    pub fn flag(is_anomaly: bool) -> Self {
        Self {
            is_anomaly,
            score: None,
        }
    }
}

/// One verdict per sample of the window, in the window's order.
pub type Verdicts = Vec<Verdict>;

/// What `init` tells the host about the configured function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitInfo {
    /// The shortest window the function can judge; the host runs no window shorter.
    pub min_window_len: u32,
}
