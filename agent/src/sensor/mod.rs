//! Where samples come from, under one roof with a room per source:
//!
//! - [`bme680`]: the Bosch BME680 on I2C: datasheet arithmetic, driver, bus guard, air
//!   quality and its baseline, the `[sensor]` section, the sampler thread.
//! - [`simulator`]: the register-level simulated BME680 (the `simulator` feature), which
//!   the same driver and sampler read.
//! - [`lines`]: sensors that are not on the bus: samples as lines over TCP, UDP or standard
//!   input (`[source]`; its own module doc says more).
//!
//! The hall they share: [`sample`] what comes out · [`identity`] the run id and sequence
//! every sample carries · [`clock`] real, accelerated and virtual time, and whether the
//! wall clock is synchronised · [`timeline`] timestamps that never go back, and clock
//! steps · [`queue`] the ring buffer every source fills · [`source`] the chip on the bus
//! or the simulated one, for the agent.
//!
//! Imports run one way: the hall's modules use none of the rooms (`clock`, `identity`
//! are leaves; `timeline` → `clock`; `sample` → `identity`; `queue` → `sample`); `bme680`
//! uses the hall; `simulator` uses `bme680` (the chip's datasheet, the driver's
//! `BusFactory`, its errors); `lines` uses only `identity`, `clock`, `sample` and
//! `queue`; `source` sits on top.

pub mod bme680;
pub mod clock;
pub mod identity;
pub mod lines;
pub mod queue;
pub mod sample;
#[cfg(feature = "simulator")]
pub mod simulator;
pub mod source;
pub mod timeline;

#[cfg(target_os = "linux")]
pub use bme680::LinuxI2c;
pub use bme680::{
    Bme680Sensor, BusFactory, FaultKind, Reading, Sampler, SamplerHandle, SamplerMonitor,
    SamplerStats, SensorConfig, SensorError, spawn,
};
pub use clock::{Clock, ClockSync, ScaledClock, SharedClock, SystemClock, VirtualClock};
pub use identity::RunId;
pub use queue::{SampleReader, SampleWriter, sample_queue};
pub use sample::{Peer, Sample};
pub use source::{SensorSource, start_sampler};
