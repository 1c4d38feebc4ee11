//! `Sample`: one BME680 reading as the rest of the pipeline sees it. Plain data.

use serde::{Deserialize, Serialize};

/// One reading of the sensor, with its air-quality score.
///
/// Every float is finite (a non-finite reading is an error, never a sample); `air_quality`
/// is within 0..=100. When the gas reading is unusable, `gas_valid`
/// or `heater_stable` is false and `air_quality` keeps the gas part of the last usable
/// reading, with the current humidity part (see [`crate::sensor::air_quality`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When the measurement was triggered: Unix time in milliseconds, UTC.
    pub timestamp: i64,
    /// Ambient temperature in °C (self-heating offset already subtracted).
    pub temperature: f32,
    /// Relative humidity in %RH (0–100), recomputed for the corrected temperature.
    pub humidity: f32,
    /// Barometric pressure in hPa.
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
}

impl Sample {
    /// Whether the gas reading may be used as air quality.
    pub fn gas_usable(&self) -> bool {
        self.gas_valid && self.heater_stable
    }
}
