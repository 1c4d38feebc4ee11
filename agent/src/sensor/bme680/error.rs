//! `SensorError`: why a reading or an initialisation failed, typed so the sampler can tell
//! a bus fault from a missing chip from a chip that never finished converting. It imports
//! the error types of `config` and `identity`; neither imports it.

use std::fmt;

/// Kinds of failure, coarse enough that "the same fault again" is recognisable for
/// once-per-change logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// The I2C transfer failed (NACK, arbitration, device file gone).
    Bus,
    /// No BME680 answered (wrong chip id, nothing at the address).
    NotFound,
    /// The chip never reported new data.
    NoData,
    /// The driver panicked (garbage register values).
    DriverPanic,
    /// The driver kept talking to the bus without finishing (a chip stuck in a mode).
    Runaway,
    /// The I2C device could not be opened.
    Open,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultKind::Bus => "I2C bus error",
            FaultKind::NotFound => "sensor not found",
            FaultKind::NoData => "no new data",
            FaultKind::DriverPanic => "driver panic",
            FaultKind::Runaway => "driver runaway",
            FaultKind::Open => "cannot open I2C device",
        })
    }
}

/// A failed sensor operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SensorError {
    #[error("I2C transfer failed: {0}")]
    Bus(String),
    #[error("no BME680 found at {addresses}: {detail}")]
    NotFound { addresses: String, detail: String },
    #[error("unexpected chip id {found:#04x} (a BME680 reads 0x61)")]
    WrongChipId { found: u8 },
    #[error("the chip reported no new data")]
    NoNewData,
    #[error("the reading is not a number: {0}")]
    NotFinite(String),
    #[error("the driver panicked: {0}")]
    DriverPanic(String),
    #[error("the driver made {0} bus transfers without finishing; chip stuck?")]
    Runaway(u32),
    #[error("cannot open I2C device {path}: {detail}")]
    Open { path: String, detail: String },
    #[error(transparent)]
    Config(#[from] crate::sensor::bme680::config::ConfigError),
    #[error(transparent)]
    Randomness(#[from] crate::sensor::identity::RandomnessError),
}

impl SensorError {
    pub fn kind(&self) -> FaultKind {
        match self {
            SensorError::Bus(_) => FaultKind::Bus,
            SensorError::NotFound { .. } | SensorError::WrongChipId { .. } => FaultKind::NotFound,
            SensorError::NoNewData | SensorError::NotFinite(_) => FaultKind::NoData,
            SensorError::DriverPanic(_) => FaultKind::DriverPanic,
            SensorError::Runaway(_) => FaultKind::Runaway,
            SensorError::Open { .. } | SensorError::Config(_) | SensorError::Randomness(_) => {
                FaultKind::Open
            }
        }
    }
}
