//! The real bus: `linux-embedded-hal`'s `I2cdev` on `/dev/i2c-N` (Linux only).

use std::path::PathBuf;

use linux_embedded_hal::I2cdev;

use crate::sensor::bme680::driver::BusFactory;
use crate::sensor::bme680::error::SensorError;

/// Opens the I2C character device; reopened on every re-initialisation.
#[derive(Debug, Clone)]
pub struct LinuxI2c {
    path: PathBuf,
}

impl LinuxI2c {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl BusFactory for LinuxI2c {
    type Bus = I2cdev;

    fn open_bus(&mut self) -> Result<I2cdev, SensorError> {
        I2cdev::new(&self.path).map_err(|error| SensorError::Open {
            path: self.path.display().to_string(),
            detail: error.to_string(),
        })
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}
