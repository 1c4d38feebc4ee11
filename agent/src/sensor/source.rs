//! Where samples come from, for the binary: the chip on `/dev/i2c-N`, or the simulated chip
//! running a named scenario (`edge-agent run --simulate --scenario cooking --speed 60`).
//! Either way the same sampler, driver and air-quality code run; only the bus differs.
//! The simulated chip is the `simulator` feature (default on; the Pi's release binaries
//! leave it out).

use crate::sensor::bme680::config::SensorConfig;
use crate::sensor::bme680::error::SensorError;
use crate::sensor::bme680::sampler::{Sampler, SamplerHandle, spawn};
use crate::sensor::clock::SharedClock;
use crate::sensor::queue::SampleWriter;
#[cfg(feature = "simulator")]
use crate::sensor::simulator::{Calibration, Scenario, SimulatedBme680};

/// The sensor to sample.
#[derive(Debug, Clone, PartialEq)]
pub enum SensorSource {
    /// The BME680 on `config.i2c_device` (Linux only).
    Hardware,
    /// A simulated BME680 (Pimoroni's calibration set) playing `scenario` on the given
    /// clock: with a [`crate::sensor::ScaledClock`] the scenario runs `speed` times faster.
    #[cfg(feature = "simulator")]
    Simulated { scenario: Scenario },
}

/// Starts the sampler thread for `source`. The returned handle stops it when dropped.
pub fn start_sampler(
    config: SensorConfig,
    source: SensorSource,
    clock: SharedClock,
    writer: SampleWriter,
) -> Result<SamplerHandle, SensorError> {
    match source {
        #[cfg(feature = "simulator")]
        SensorSource::Simulated { scenario } => {
            let chip = SimulatedBme680::new(Calibration::PIMORONI, scenario, clock.clone());
            spawn(Sampler::new(config, chip, clock, writer)?)
        }
        SensorSource::Hardware => start_hardware(config, clock, writer),
    }
}

#[cfg(target_os = "linux")]
fn start_hardware(
    config: SensorConfig,
    clock: SharedClock,
    writer: SampleWriter,
) -> Result<SamplerHandle, SensorError> {
    let bus = crate::sensor::bme680::linux_bus::LinuxI2c::new(config.i2c_device.clone());
    spawn(Sampler::new(config, bus, clock, writer)?)
}

#[cfg(not(target_os = "linux"))]
fn start_hardware(
    config: SensorConfig,
    _clock: SharedClock,
    _writer: SampleWriter,
) -> Result<SamplerHandle, SensorError> {
    Err(SensorError::Open {
        path: config.i2c_device.display().to_string(),
        detail: "I2C hardware access needs Linux; use --simulate".to_owned(),
    })
}
