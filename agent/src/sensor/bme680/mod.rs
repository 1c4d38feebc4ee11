//! The BME680 room: the chip's datasheet arithmetic, the driver and the guard on its bus,
//! the air-quality score and its baseline, the `[sensor]` section and the sampler thread
//! that reads the chip into the ring. The chip is real (on Linux I2C, [`linux_bus`]) or
//! simulated (`sensor::simulator`, the next room); either way the same code runs above the
//! bus.
//!
//! # Driver choice: `bosch-bme680` 1.0.4 on `linux-embedded-hal` 0.5
//!
//! The design named the `bme680` crate. Its release 0.6.0 is on embedded-hal 0.2 (so only
//! `linux-embedded-hal` 0.3.2 fits) and has confirmed bugs (reference §8): pressure
//! oversampling taken from temperature, gas range 12 read as 0 Ω, a hidden forced
//! measurement before the configuration is written, "no new data" returned as `Ok`, panics on
//! unexpected mode bits, and an i32 overflow panic above ~1064 hPa in debug builds. Its
//! master branch (0.7, embedded-hal 1.0) is unreleased and keeps Q1 and Q4.
//!
//! `bosch-bme680` 1.0.4 is on embedded-hal 1.0 (as is `linux-embedded-hal` 0.5, the current
//! release; 0.4 was the first on embedded-hal 1.0), follows Bosch's BME68x Sensor API with
//! the floating-point compensation (no overflow, gas range 12 correct, pressure oversampling
//! written from the pressure setting), and its `measure()` triggers the conversion and waits
//! for it. It is the better-kept choice, and these are the gaps this module closes (each
//! verified against the simulated chip in `tests/sensor_driver.rs`):
//!
//! - **Heater profile not configurable**: `GasConfig` has private fields and only a default
//!   (300 °C, 150 ms). [`bus_guard`] rewrites the driver's `res_heat_0`/`gas_wait_0` writes
//!   with the configured profile and waits for that profile's conversion time.
//! - **`heat_stab_r` not reported** and a chip idle without new data returned as a fresh
//!   reading: [`bus_guard`] keeps the status block the driver read, and [`driver`] rejects
//!   it without `new_data_0` and reports `heater_stable`.
//! - **Panics** on mode bits 0b10/0b11 (`SensorMode::from`) and on a variant id other than
//!   0/1 (`Variant::from`): every driver call runs under `catch_unwind`.
//! - **Unbounded loop** while the chip reports forced mode: [`bus_guard`] caps the transfers
//!   per call, turning a hang into [`SensorError::Runaway`].
//! - **No temperature offset**: [`driver`] subtracts the self-heating offset and recomputes
//!   relative humidity for the corrected temperature.
//!
//! # Layout
//!
//! [`config`] what can be set · [`datasheet`] the chip's timing, register codes and
//! humidity physics (a leaf: config, driver, simulator and air quality import it, it imports
//! none of them) · [`driver`] the driver wrapper, generic over the bus · [`bus_guard`] the
//! pass-through that watches it · [`air_quality`] the score · [`baseline`] its persistence ·
//! [`error`] what goes wrong · [`sampler`] the thread.
//!
//! Imports run one way. Leaves: `datasheet`, `baseline`. Then `bus_guard` → `clock`;
//! `config` → `datasheet`; `error` → `config`, `identity`; `driver` → `bus_guard`,
//! `clock`, `config`, `datasheet`, `error`; `air_quality` → `baseline`, `config`,
//! `datasheet`, `driver` (its `Reading`); `sampler` sits on top. From the hall
//! (`sensor/`) it uses `clock`, `identity`, `sample`, `timeline` and `queue`.

pub mod air_quality;
pub mod baseline;
pub mod bus_guard;
pub mod config;
pub mod datasheet;
pub mod driver;
pub mod error;
#[cfg(target_os = "linux")]
pub mod linux_bus;
pub mod sampler;

pub use config::SensorConfig;
pub use driver::{Bme680Sensor, BusFactory, Reading};
pub use error::{FaultKind, SensorError};
#[cfg(target_os = "linux")]
pub use linux_bus::LinuxI2c;
pub use sampler::{Sampler, SamplerHandle, SamplerMonitor, SamplerStats, spawn};
