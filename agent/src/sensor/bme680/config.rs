//! `SensorConfig`: what the operator can set about the BME680 stage. Plain serde data with
//! documented defaults; loading it from the TOML file is done elsewhere.
//!
//! Every section rejects unknown keys, so a typo in the config file is an error rather than
//! a silently ignored setting.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sensor::bme680::datasheet;

/// Settings of the sensor stage. Every field has a default (see each field), so an empty
/// `[sensor]` table is a valid configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SensorConfig {
    /// I2C character device. Default `/dev/i2c-1` (the Raspberry Pi's header bus).
    pub i2c_device: PathBuf,
    /// 7-bit address: `0x76` (SDO to GND), `0x77` (SDO to VDDIO) or `"auto"` to probe both,
    /// 0x76 first. Default `auto`.
    pub address: SensorAddress,
    /// Temperature oversampling. Default `x8`.
    pub temperature_oversampling: Oversampling,
    /// Pressure oversampling. Default `x4`.
    pub pressure_oversampling: Oversampling,
    /// Humidity oversampling. Default `x2`.
    pub humidity_oversampling: Oversampling,
    /// IIR filter coefficient for temperature and pressure: 0, 1, 3, 7, 15, 31, 63 or 127.
    /// Default 3.
    pub iir_filter: IirFilter,
    /// Gas heater target temperature in °C, at most 400. Default 320 (Bosch and Pimoroni).
    pub heater_temperature_c: u16,
    /// Gas heater duration in ms, 1..=4032. Default 150. Shorter than ~20 ms and the heater
    /// does not reach its target (the reading is then flagged `heater_stable = false`).
    pub heater_duration_ms: u16,
    /// Time between two samples, in ms. Default 3000 (Bosch's low-power cadence).
    pub sample_period_ms: u64,
    /// Degrees Celsius the chip reads above ambient because of its own heater and the
    /// board; subtracted from the temperature, and relative humidity is recomputed for the
    /// corrected temperature. Default 0.0 (measure your unit: 1.5–5 °C is typical).
    pub temperature_offset_c: f32,
    /// Where the air-quality baseline is persisted. Default `/var/lib/edge-agent`.
    pub state_dir: PathBuf,
    /// Air-quality score settings.
    pub air_quality: AirQualityConfig,
    /// Fault handling.
    pub retry: RetryConfig,
}

impl Default for SensorConfig {
    fn default() -> Self {
        Self {
            i2c_device: PathBuf::from("/dev/i2c-1"),
            address: SensorAddress::Auto,
            temperature_oversampling: Oversampling::X8,
            pressure_oversampling: Oversampling::X4,
            humidity_oversampling: Oversampling::X2,
            iir_filter: IirFilter(3),
            heater_temperature_c: 320,
            heater_duration_ms: 150,
            sample_period_ms: 3000,
            temperature_offset_c: 0.0,
            state_dir: PathBuf::from("/var/lib/edge-agent"),
            air_quality: AirQualityConfig::default(),
            retry: RetryConfig::default(),
        }
    }
}

impl SensorConfig {
    pub fn sample_period(&self) -> Duration {
        Duration::from_millis(self.sample_period_ms)
    }

    /// Bosch's measurement duration for the configured oversampling, plus the programmed
    /// heater time, plus 1 ms of margin: what one forced conversion is waited for.
    pub fn conversion_time(&self) -> Duration {
        datasheet::measurement_duration(
            self.temperature_oversampling.register_code(),
            self.pressure_oversampling.register_code(),
            self.humidity_oversampling.register_code(),
        ) + datasheet::gas_wait_duration(datasheet::gas_wait_code(self.heater_duration_ms))
            + Duration::from_millis(1)
    }

    /// Checks the ranges serde cannot express. Called by the sampler before it starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // The agent makes the state directory and writes its files there: an empty path
        // would scatter them in whatever folder it was started from.
        if self.state_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                "state_dir",
                "must name a folder (it is made if missing), not be empty",
            ));
        }
        if self.state_dir.exists() && !self.state_dir.is_dir() {
            return Err(ConfigError::invalid(
                "state_dir",
                "names a file, not a folder",
            ));
        }
        if self.sample_period_ms == 0 {
            return Err(ConfigError::invalid(
                "sample_period_ms",
                "must be at least 1",
            ));
        }
        if self.temperature_oversampling == Oversampling::Skip {
            // The chip compensates humidity, pressure and gas with the temperature it
            // measured; without it every other channel is made up.
            return Err(ConfigError::invalid(
                "temperature_oversampling",
                "cannot be \"skip\": the chip needs temperature to compensate humidity, pressure and gas",
            ));
        }
        if self.heater_temperature_c > 400 {
            return Err(ConfigError::invalid(
                "heater_temperature_c",
                "must be at most 400",
            ));
        }
        if self.heater_duration_ms == 0 || self.heater_duration_ms > 4032 {
            return Err(ConfigError::invalid(
                "heater_duration_ms",
                "must be 1..=4032",
            ));
        }
        if self.sample_period() < self.conversion_time() {
            return Err(ConfigError::invalid(
                "sample_period_ms",
                "is shorter than one conversion (oversampling plus heater_duration_ms)",
            ));
        }
        if !self.temperature_offset_c.is_finite() || self.temperature_offset_c.abs() > 20.0 {
            return Err(ConfigError::invalid(
                "temperature_offset_c",
                "must be within ±20 °C",
            ));
        }
        self.air_quality.validate()?;
        self.retry.validate()
    }
}

/// A setting outside its documented range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `key` is the setting's path inside `[sensor]` (`retry.max_backoff_ms`); the message
    /// starts with it, so a reader of the text finds it too.
    #[error("invalid sensor configuration: {key} {reason}")]
    Invalid {
        key: &'static str,
        reason: &'static str,
    },
}

impl ConfigError {
    fn invalid(key: &'static str, reason: &'static str) -> Self {
        ConfigError::Invalid { key, reason }
    }

    /// The setting at fault, as a path inside `[sensor]` (`heater_duration_ms`,
    /// `retry.initial_backoff_ms`).
    pub fn key(&self) -> &'static str {
        match self {
            ConfigError::Invalid { key, .. } => key,
        }
    }
}

/// Which I2C address to talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AddressRepr", into = "AddressRepr")]
pub enum SensorAddress {
    /// 0x76, SDO tied to GND.
    Primary,
    /// 0x77, SDO tied to VDDIO.
    Secondary,
    /// Probe 0x76, then 0x77; the first that answers with the BME680 chip id wins.
    Auto,
}

impl SensorAddress {
    /// Addresses to try, in order.
    pub fn candidates(self) -> &'static [u8] {
        match self {
            SensorAddress::Primary => &[0x76],
            SensorAddress::Secondary => &[0x77],
            SensorAddress::Auto => &[0x76, 0x77],
        }
    }
}

/// TOML has no hex literal for "0x76" inside strings and people write both; accept the
/// integers 118/119, and the strings "0x76", "0x77" and "auto".
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum AddressRepr {
    Number(u8),
    Text(String),
}

impl TryFrom<AddressRepr> for SensorAddress {
    type Error = String;
    fn try_from(repr: AddressRepr) -> Result<Self, Self::Error> {
        match repr {
            AddressRepr::Number(0x76) => Ok(SensorAddress::Primary),
            AddressRepr::Number(0x77) => Ok(SensorAddress::Secondary),
            AddressRepr::Number(other) => Err(format!(
                "BME680 address must be 0x76 or 0x77, got {other:#04x}"
            )),
            AddressRepr::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
                "0x76" => Ok(SensorAddress::Primary),
                "0x77" => Ok(SensorAddress::Secondary),
                "auto" => Ok(SensorAddress::Auto),
                other => Err(format!(
                    "BME680 address must be \"0x76\", \"0x77\" or \"auto\", got {other:?}"
                )),
            },
        }
    }
}

impl From<SensorAddress> for AddressRepr {
    fn from(address: SensorAddress) -> Self {
        AddressRepr::Text(
            match address {
                SensorAddress::Primary => "0x76",
                SensorAddress::Secondary => "0x77",
                SensorAddress::Auto => "auto",
            }
            .to_owned(),
        )
    }
}

/// Oversampling of one channel: more samples, less noise, longer conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Oversampling {
    /// The channel is not measured: humidity or pressure is then absent (`null`) in every
    /// record; refused for temperature, which the chip needs to compensate the others.
    Skip,
    X1,
    X2,
    X4,
    X8,
    X16,
}

impl Oversampling {
    /// The `osrs_x` register code (0 = skipped, 1..=5 = ×1..×16).
    pub fn register_code(self) -> u8 {
        match self {
            Oversampling::Skip => 0,
            Oversampling::X1 => 1,
            Oversampling::X2 => 2,
            Oversampling::X4 => 3,
            Oversampling::X8 => 4,
            Oversampling::X16 => 5,
        }
    }

    pub fn is_skipped(self) -> bool {
        self == Oversampling::Skip
    }
}

impl From<Oversampling> for bosch_bme680::Oversampling {
    fn from(value: Oversampling) -> Self {
        match value {
            Oversampling::Skip => bosch_bme680::Oversampling::Skipped,
            Oversampling::X1 => bosch_bme680::Oversampling::By1,
            Oversampling::X2 => bosch_bme680::Oversampling::By2,
            Oversampling::X4 => bosch_bme680::Oversampling::By4,
            Oversampling::X8 => bosch_bme680::Oversampling::By8,
            Oversampling::X16 => bosch_bme680::Oversampling::By16,
        }
    }
}

/// IIR filter coefficient, written as the coefficient itself (0 = off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct IirFilter(u8);

impl IirFilter {
    pub const ALLOWED: [u8; 8] = [0, 1, 3, 7, 15, 31, 63, 127];

    pub fn coefficient(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for IirFilter {
    type Error = String;
    fn try_from(coefficient: u8) -> Result<Self, Self::Error> {
        if Self::ALLOWED.contains(&coefficient) {
            Ok(IirFilter(coefficient))
        } else {
            Err(format!(
                "iir_filter must be one of {:?}, got {coefficient}",
                Self::ALLOWED
            ))
        }
    }
}

impl From<IirFilter> for u8 {
    fn from(filter: IirFilter) -> Self {
        filter.0
    }
}

impl From<IirFilter> for bosch_bme680::IIRFilter {
    fn from(filter: IirFilter) -> Self {
        match filter.0 {
            0 => bosch_bme680::IIRFilter::Coeff0,
            1 => bosch_bme680::IIRFilter::Coeff1,
            3 => bosch_bme680::IIRFilter::Coeff3,
            7 => bosch_bme680::IIRFilter::Coeff7,
            15 => bosch_bme680::IIRFilter::Coeff15,
            31 => bosch_bme680::IIRFilter::Coeff31,
            63 => bosch_bme680::IIRFilter::Coeff63,
            _ => bosch_bme680::IIRFilter::Coeff127,
        }
    }
}

/// How the air-quality score is calibrated. See `air_quality.rs` for what the number means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AirQualityConfig {
    /// Length of the burn-in that sets the first gas baseline, in seconds, counted from the
    /// first valid gas reading. Default 300 (Pimoroni, BSEC); 1800 is kinder to a new sensor.
    pub burn_in_secs: u64,
    /// A persisted baseline older than this (since its last update) is discarded and a new
    /// burn-in starts. Default 72 hours.
    pub baseline_max_age_hours: u64,
    /// Time constant with which cleaner-than-baseline air raises the baseline, in seconds.
    /// Default 3600: a window opened for ten minutes barely moves it, a sensor that has
    /// settled higher is followed within hours.
    pub baseline_rise_secs: u64,
    /// Time constant with which dirtier-than-baseline air lowers the baseline, in seconds.
    /// Default 345600 (4 days, like BSEC's history): a cooking spike does not become the new
    /// normal, a slowly ageing sensor is followed.
    pub baseline_fall_secs: u64,
    /// How often the adapted baseline is written to disk, in seconds. Default 600, so an SD
    /// card sees six small writes an hour.
    pub baseline_save_secs: u64,
}

impl Default for AirQualityConfig {
    fn default() -> Self {
        Self {
            burn_in_secs: 300,
            baseline_max_age_hours: 72,
            baseline_rise_secs: 3600,
            baseline_fall_secs: 4 * 24 * 3600,
            baseline_save_secs: 600,
        }
    }
}

impl AirQualityConfig {
    pub fn burn_in(&self) -> Duration {
        Duration::from_secs(self.burn_in_secs)
    }
    pub fn baseline_max_age(&self) -> Duration {
        Duration::from_secs(self.baseline_max_age_hours.saturating_mul(3600))
    }
    fn validate(&self) -> Result<(), ConfigError> {
        if self.baseline_rise_secs == 0 {
            return Err(ConfigError::invalid(
                "air_quality.baseline_rise_secs",
                "must be at least 1",
            ));
        }
        if self.baseline_fall_secs == 0 {
            return Err(ConfigError::invalid(
                "air_quality.baseline_fall_secs",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Backoff and recovery after sensor faults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// First wait after a failed read, in ms; doubled after each further failure.
    /// Default 100.
    pub initial_backoff_ms: u64,
    /// Longest wait between two tries, in ms. Default 30000.
    pub max_backoff_ms: u64,
    /// Consecutive failures after which the driver is dropped and the chip re-initialised
    /// (soft reset, calibration, configuration). Default 3.
    pub reinit_after_failures: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff_ms: 100,
            max_backoff_ms: 30_000,
            reinit_after_failures: 3,
        }
    }
}

impl RetryConfig {
    /// Wait before try number `failures + 1`, `failures` ≥ 1.
    pub fn backoff(&self, failures: u32) -> Duration {
        crate::support::backoff::Backoff::new(
            Duration::from_millis(self.initial_backoff_ms),
            Duration::from_millis(self.max_backoff_ms),
        )
        .delay(failures)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.initial_backoff_ms == 0 {
            return Err(ConfigError::invalid(
                "retry.initial_backoff_ms",
                "must be at least 1",
            ));
        }
        if self.max_backoff_ms < self.initial_backoff_ms {
            return Err(ConfigError::invalid(
                "retry.max_backoff_ms",
                "must be at least retry.initial_backoff_ms",
            ));
        }
        if self.reinit_after_failures == 0 {
            return Err(ConfigError::invalid(
                "retry.reinit_after_failures",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_json_gives_defaults() {
        let config: SensorConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, SensorConfig::default());
        config.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_json::from_str::<SensorConfig>(r#"{"adress": "auto"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let err = serde_json::from_str::<SensorConfig>(r#"{"retry": {"backof": 1}}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn address_forms() {
        for (text, want) in [
            (r#""auto""#, SensorAddress::Auto),
            (r#""0x77""#, SensorAddress::Secondary),
            ("118", SensorAddress::Primary),
        ] {
            let config: SensorConfig =
                serde_json::from_str(&format!(r#"{{"address": {text}}}"#)).unwrap();
            assert_eq!(config.address, want);
        }
        assert!(serde_json::from_str::<SensorConfig>(r#"{"address": "0x78"}"#).is_err());
        assert!(serde_json::from_str::<SensorConfig>(r#"{"address": 120}"#).is_err());
    }

    #[test]
    fn filter_and_oversampling_forms() {
        let config: SensorConfig =
            serde_json::from_str(r#"{"iir_filter": 7, "pressure_oversampling": "x16"}"#).unwrap();
        assert_eq!(config.iir_filter.coefficient(), 7);
        assert_eq!(config.pressure_oversampling, Oversampling::X16);
        assert!(serde_json::from_str::<SensorConfig>(r#"{"iir_filter": 4}"#).is_err());
    }

    #[test]
    fn validate_catches_ranges() {
        let config = SensorConfig {
            heater_duration_ms: 5000,
            ..SensorConfig::default()
        };
        assert!(config.validate().is_err());
        let config = SensorConfig {
            sample_period_ms: 0,
            ..SensorConfig::default()
        };
        assert!(config.validate().is_err());
        let config = SensorConfig {
            sample_period_ms: 1000,
            heater_duration_ms: 1500,
            ..SensorConfig::default()
        };
        assert!(
            config.validate().is_err(),
            "a 1.5 s heater cannot run every second"
        );
    }

    #[test]
    fn skipped_temperature_is_refused_naming_the_key() {
        let config = SensorConfig {
            temperature_oversampling: Oversampling::Skip,
            ..SensorConfig::default()
        };
        let err = config.validate().unwrap_err();
        assert_eq!(err.key(), "temperature_oversampling");
        assert!(
            err.to_string().starts_with(
                "invalid sensor configuration: temperature_oversampling cannot be \"skip\""
            ),
            "{err}"
        );
        let config = SensorConfig {
            humidity_oversampling: Oversampling::Skip,
            pressure_oversampling: Oversampling::Skip,
            ..SensorConfig::default()
        };
        config.validate().unwrap();
    }

    #[test]
    fn conversion_time_of_the_defaults() {
        // ×8 + ×4 + ×2 = 14 cycles, 148 ms of heating (code 0x65), 1 ms margin.
        let expected =
            Duration::from_micros(14 * 1963 + 477 * 9 + 1000) + Duration::from_millis(148 + 1);
        assert_eq!(SensorConfig::default().conversion_time(), expected);
    }

    #[test]
    fn every_error_names_its_key() {
        type Change = fn(&mut SensorConfig);
        let cases: [(Change, &str); 5] = [
            (|c| c.heater_temperature_c = 500, "heater_temperature_c"),
            (|c| c.temperature_offset_c = 30.0, "temperature_offset_c"),
            (
                |c| c.air_quality.baseline_fall_secs = 0,
                "air_quality.baseline_fall_secs",
            ),
            (|c| c.retry.max_backoff_ms = 1, "retry.max_backoff_ms"),
            (
                |c| c.retry.reinit_after_failures = 0,
                "retry.reinit_after_failures",
            ),
        ];
        for (change, key) in cases {
            let mut config = SensorConfig::default();
            change(&mut config);
            let err = config.validate().unwrap_err();
            assert_eq!(err.key(), key);
            assert!(err.to_string().contains(&format!(": {key} ")), "{err}");
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let retry = RetryConfig::default();
        assert_eq!(retry.backoff(1), Duration::from_millis(100));
        assert_eq!(retry.backoff(2), Duration::from_millis(200));
        assert_eq!(retry.backoff(4), Duration::from_millis(800));
        assert_eq!(retry.backoff(100), Duration::from_millis(30_000));
    }
}
