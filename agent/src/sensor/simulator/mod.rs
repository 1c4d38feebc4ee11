//! A register-level BME680 simulator on a mock I2C bus, so the real driver can be exercised
//! without hardware: in the tests, and in `edge-agent run --simulate` on a laptop.
//!
//! ```
//! use std::sync::Arc;
//! use edge_agent::sensor::clock::VirtualClock;
//! use edge_agent::sensor::simulator::{Calibration, Scenario, SimulatedBme680};
//!
//! let clock = Arc::new(VirtualClock::default());
//! let chip = SimulatedBme680::new(Calibration::PIMORONI, "cooking".parse().unwrap(), clock);
//! # let _ = chip;
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
