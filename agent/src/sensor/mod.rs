//! Where samples come from: the BME680 (the real driver on Linux I2C or a simulated chip,
//! air quality, the sampler), or lines from sensors that are not on the bus.
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
//! [`config`] what can be set · [`sample`] what comes out · [`identity`] the run id and
//! sequence every sample carries · [`datasheet`] the chip's timing, register codes and
//! humidity physics (a leaf: config, driver, simulator and air quality import it, it imports
//! none of them) · [`driver`] the driver wrapper, generic over the bus · [`bus_guard`] the
//! pass-through that watches it · [`clock`] real, accelerated and virtual time, and whether
//! the wall clock is synchronised · [`timeline`] timestamps that never go back, and clock
//! steps · [`simulator`] the register-level chip · [`air_quality`] the score · [`baseline`]
//! its persistence · [`queue`] the ring buffer · [`sampler`] the thread · [`source`] hardware
//! or simulator, for the binary · [`lines`] sensors that are not on the bus: samples as
//! lines over TCP, UDP or standard input, into the same ring (its own module doc says more).
//!
//! Imports inside `sensor/` run one way. Leaves (nothing of the stage): `datasheet`,
//! `clock`, `identity`, `baseline`. Then `timeline` → `clock`; `sample` →
//! `identity`; `bus_guard` → `clock`; `config` → `datasheet`; `error` → `config`, `identity`;
//! `driver` → `bus_guard`, `clock`, `config`, `datasheet`, `error`; `air_quality` →
//! `baseline`, `config`, `datasheet`, `driver` (its `Reading`); `simulator` → `clock`,
//! `datasheet`, `driver` (its `BusFactory`), `error`; `sampler` and `source` sit on top;
//! `lines` uses only `identity`, `clock`, `sample` and `queue`.

pub mod air_quality;
pub mod baseline;
pub mod bus_guard;
pub mod clock;
pub mod config;
pub mod datasheet;
pub mod driver;
pub mod error;
pub mod identity;
pub mod lines;
#[cfg(target_os = "linux")]
pub mod linux_bus;
pub mod queue;
pub mod sample;
pub mod sampler;
#[cfg(feature = "simulator")]
pub mod simulator;
pub mod source;
pub mod timeline;

pub use clock::{Clock, ClockSync, ScaledClock, SharedClock, SystemClock, VirtualClock};
pub use config::SensorConfig;
pub use driver::{Bme680Sensor, BusFactory, Reading};
pub use error::{FaultKind, SensorError};
pub use identity::RunId;
#[cfg(target_os = "linux")]
pub use linux_bus::LinuxI2c;
pub use queue::{SampleReader, SampleWriter, sample_queue};
pub use sample::Sample;
pub use sampler::{Sampler, SamplerHandle, SamplerMonitor, SamplerStats, spawn};
pub use source::{SensorSource, start_sampler};
