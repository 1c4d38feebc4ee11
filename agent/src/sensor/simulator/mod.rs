//! A register-level BME680 simulator on a mock I2C bus, so the real driver can be exercised
//! without hardware: in the tests, and in `edge-agent run --simulate` on a laptop.
//!
//! ```
//! use std::sync::Arc;
//! use edge_agent::sensor::simulator::{Calibration, SimulatedBme680};
//! use edge_agent::sensor::{Bme680Sensor, SensorConfig, SharedClock, VirtualClock};
//!
//! let clock: SharedClock = Arc::new(VirtualClock::default());
//! let mut chip = SimulatedBme680::new(Calibration::PIMORONI, "cooking".parse()?, clock.clone());
//! let mut sensor = Bme680Sensor::open(&mut chip, &SensorConfig::default(), clock)?;
//! let reading = sensor.read()?;
//! assert!((reading.temperature - 23.0).abs() < 0.5, "clean air before the cooking starts");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod calibration;
pub mod chip;
pub mod compensation;
pub mod faults;
pub mod scenario;

pub use calibration::Calibration;
pub use chip::{SimBusError, SimulatedBme680, SimulatedBus};
pub use compensation::Realized;
pub use faults::{Fault, FaultKindSim};
pub use scenario::{Environment, Scenario, UnknownScenario};
