//! `Bme680Sensor`: the `bosch-bme680` driver behind one code path that runs on `/dev/i2c-N`
//! and on the simulated chip alike (anything implementing embedded-hal 1.0 `I2c`).
//!
//! What this layer adds to the driver, and why:
//! - address probing (`auto`), done on the raw bus before the driver takes it;
//! - the configured heater profile (see [`crate::sensor::bus_guard`]);
//! - `heater_stable` and a real "no new data" check, read from the status bits the guard saw;
//! - driver panics (`SensorMode::from` and `Variant::from` panic on unexpected register
//!   values) turned into [`SensorError::DriverPanic`];
//! - the self-heating offset, with relative humidity recomputed for the corrected temperature.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use bosch_bme680::{Bme680, BmeError, Configuration, DeviceAddress, GasConfig};
use embedded_hal::i2c::{Error as _, ErrorKind, I2c, SevenBitAddress};

use crate::sensor::bus_guard::{BusMonitor, GuardError, GuardedBus, HeaterOverride};
use crate::sensor::clock::{ClockDelay, SharedClock};
use crate::sensor::config::{Oversampling, SensorConfig};
use crate::sensor::error::SensorError;

/// Chip id register and the value a BME680 (or BME688) answers.
const CHIP_ID_REGISTER: u8 = 0xD0;
const CHIP_ID: u8 = 0x61;
/// Transfers allowed for one `measure()`: a normal one takes 3 to 8.
const MEASURE_BUDGET: u32 = 64;
/// Transfers allowed for initialisation plus reconfiguration: a normal one takes about 25.
const INIT_BUDGET: u32 = 128;
/// Ambient temperature assumed for the first heater code, before anything was measured.
const ASSUMED_AMBIENT_C: i32 = 25;

/// Opens the bus the driver will own. Called again for every re-initialisation, so a
/// device that disappeared and came back (USB adapter, reloaded module) is found again.
pub trait BusFactory {
    type Bus: I2c<SevenBitAddress>;
    fn open_bus(&mut self) -> Result<Self::Bus, SensorError>;
    /// For logs: "/dev/i2c-1", "simulated BME680".
    fn describe(&self) -> String;
}

/// One compensated reading, before air quality.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Ambient °C (offset applied).
    pub temperature: f32,
    /// %RH at the ambient temperature.
    pub humidity: f32,
    /// hPa.
    pub pressure: f32,
    /// Ω; `None` when the chip returned no gas conversion.
    pub gas_resistance: Option<f32>,
    /// The chip flagged a real gas conversion.
    pub gas_valid: bool,
    /// The heater reached its target.
    pub heater_stable: bool,
}

/// The driver, its bus guard and what the configuration implies.
pub struct Bme680Sensor<I2C: I2c<SevenBitAddress>> {
    driver: Bme680<GuardedBus<I2C>, ClockDelay>,
    monitor: BusMonitor,
    address: u8,
    temperature_offset_c: f32,
}

impl<I2C: I2c<SevenBitAddress>> std::fmt::Debug for Bme680Sensor<I2C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bme680Sensor")
            .field("address", &format_args!("{:#04x}", self.address))
            .finish_non_exhaustive()
    }
}

impl<I2C: I2c<SevenBitAddress>> Bme680Sensor<I2C> {
    /// Opens the bus, finds the chip, initialises and configures it, assuming 25 °C
    /// ambient for the heater code.
    pub fn open<F>(
        factory: &mut F,
        config: &SensorConfig,
        clock: SharedClock,
    ) -> Result<Self, SensorError>
    where
        F: BusFactory<Bus = I2C>,
    {
        Self::open_at_ambient(factory, config, clock, ASSUMED_AMBIENT_C)
    }

    /// As [`Bme680Sensor::open`], with the ambient temperature (°C) the heater target code
    /// is computed for: a re-initialisation passes the last measured temperature.
    pub fn open_at_ambient<F>(
        factory: &mut F,
        config: &SensorConfig,
        clock: SharedClock,
        ambient_c: i32,
    ) -> Result<Self, SensorError>
    where
        F: BusFactory<Bus = I2C>,
    {
        config.validate()?;
        let ambient_c = ambient_c.clamp(-40, 85);
        let mut bus = factory.open_bus()?;
        let address = probe_address(&mut bus, config.address.candidates())?;
        let (guarded, monitor) = GuardedBus::new(bus, clock.clone());
        let driver_config = driver_configuration(config);
        let device_address = if address == 0x77 {
            DeviceAddress::Secondary
        } else {
            DeviceAddress::Primary
        };

        monitor.begin_call(INIT_BUDGET);
        let delay = ClockDelay::new(clock);
        let mut driver = guarded_call(&monitor, || {
            Bme680::new(guarded, device_address, delay, &driver_config, ambient_c)
        })?;

        let calibration = driver.get_calibration_data();
        monitor.set_heater_override(HeaterOverride {
            res_heat_code: heater_resistance_code(
                &HeaterCalibration {
                    par_gh1: calibration.par_gh1,
                    par_gh2: calibration.par_gh2,
                    par_gh3: calibration.par_gh3,
                    res_heat_range: calibration.res_heat_range,
                    res_heat_val: calibration.res_heat_val,
                },
                config.heater_temperature_c,
                ambient_c,
            ),
            gas_wait_code: gas_wait_code(config.heater_duration_ms),
            conversion_time: conversion_time(config),
        });
        // Rewrites the profile through the guard, now that the heater codes are known.
        guarded_call(&monitor, || driver.set_configuration(&driver_config))?;

        Ok(Self {
            driver,
            monitor,
            address,
            temperature_offset_c: config.temperature_offset_c,
        })
    }

    /// The address the chip answered on.
    pub fn address(&self) -> u8 {
        self.address
    }

    /// Triggers a forced measurement, waits for it and returns the compensated values.
    pub fn read(&mut self) -> Result<Reading, SensorError> {
        self.monitor.begin_call(MEASURE_BUDGET);
        let driver = &mut self.driver;
        let data = guarded_call(&self.monitor, || driver.measure())?;
        let status = self.monitor.last_status().ok_or(SensorError::NoNewData)?;
        // The driver hands back the registers' old contents when the chip is idle without
        // new data; only a set new_data_0 bit makes this reading fresh.
        if !status.new_data {
            return Err(SensorError::NoNewData);
        }
        if !(data.temperature.is_finite() && data.humidity.is_finite() && data.pressure.is_finite())
        {
            return Err(SensorError::NotFinite(format!("{data:?}")));
        }
        let gas_resistance = data
            .gas_resistance
            .filter(|ohms| ohms.is_finite() && *ohms > 0.0);
        let (temperature, humidity) =
            correct_self_heating(data.temperature, data.humidity, self.temperature_offset_c);
        Ok(Reading {
            temperature,
            humidity,
            pressure: data.pressure / 100.0,
            gas_valid: status.gas_valid && gas_resistance.is_some(),
            heater_stable: status.heater_stable,
            gas_resistance,
        })
    }
}

/// Runs one driver call, turning its panics and errors into [`SensorError`].
fn guarded_call<T, I2C, F>(monitor: &BusMonitor, call: F) -> Result<T, SensorError>
where
    I2C: I2c<SevenBitAddress>,
    F: FnOnce() -> Result<T, BmeError<GuardedBus<I2C>>>,
{
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(map_driver_error(error, monitor)),
        Err(payload) => Err(SensorError::DriverPanic(crate::support::panic::message(
            payload.as_ref(),
        ))),
    }
}

fn map_driver_error<I2C: I2c<SevenBitAddress>>(
    error: BmeError<GuardedBus<I2C>>,
    monitor: &BusMonitor,
) -> SensorError {
    match error {
        BmeError::WriteError(GuardError::BudgetExhausted)
        | BmeError::WriteReadError(GuardError::BudgetExhausted) => {
            SensorError::Runaway(monitor.transfers())
        }
        BmeError::WriteError(GuardError::Bus(inner))
        | BmeError::WriteReadError(GuardError::Bus(inner)) => {
            SensorError::Bus(format!("{inner:?}"))
        }
        BmeError::UnexpectedChipId(found) => SensorError::WrongChipId { found },
        BmeError::MeasuringTimeOut => SensorError::NoNewData,
    }
}

/// Reads the chip id at each candidate address; the first 0x61 wins.
fn probe_address<I2C: I2c<SevenBitAddress>>(
    bus: &mut I2C,
    candidates: &[u8],
) -> Result<u8, SensorError> {
    let mut failures = Vec::new();
    let mut wrong_id = None;
    let mut bus_fault = false;
    for &address in candidates {
        let mut id = [0u8];
        match bus.write_read(address, &[CHIP_ID_REGISTER], &mut id) {
            Ok(()) if id[0] == CHIP_ID => return Ok(address),
            Ok(()) => {
                wrong_id = Some(id[0]);
                failures.push(format!("{address:#04x}: chip id {:#04x}", id[0]));
            }
            Err(error) => {
                // A NACK means nobody is at that address; anything else is the bus itself.
                bus_fault |= !matches!(error.kind(), ErrorKind::NoAcknowledge(_));
                failures.push(format!("{address:#04x}: {error:?}"));
            }
        }
    }
    if let Some(found) = wrong_id {
        return Err(SensorError::WrongChipId { found });
    }
    if bus_fault {
        return Err(SensorError::Bus(failures.join("; ")));
    }
    let addresses = candidates
        .iter()
        .map(|address| format!("{address:#04x}"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(SensorError::NotFound {
        addresses,
        detail: failures.join("; "),
    })
}

fn driver_configuration(config: &SensorConfig) -> Configuration {
    Configuration::builder()
        .temperature_oversampling(config.temperature_oversampling.into())
        .pressure_oversampling(config.pressure_oversampling.into())
        .humidity_oversampling(config.humidity_oversampling.into())
        .filter(config.iir_filter.into())
        // The default profile; the guard replaces its register codes with ours.
        .gas_config(Some(GasConfig::default()))
        .build()
}

/// The heater calibration parameters (a copy, so the simulator can share the formula).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaterCalibration {
    pub par_gh1: i8,
    pub par_gh2: i16,
    pub par_gh3: i8,
    pub res_heat_range: u8,
    pub res_heat_val: i8,
}

/// Bosch's integer formula for the `res_heat_x` code of a target temperature (capped at
/// 400 °C), at an ambient temperature in °C.
pub fn heater_resistance_code(cal: &HeaterCalibration, target_c: u16, ambient_c: i32) -> u8 {
    let target = i64::from(target_c.min(400));
    let ambient = i64::from(ambient_c.clamp(-40, 85));
    let var1 = (ambient * i64::from(cal.par_gh3) / 1000) * 256;
    let var2 = (i64::from(cal.par_gh1) + 784)
        * (((i64::from(cal.par_gh2) + 154_009) * target * 5 / 100 + 3_276_800) / 10);
    let var3 = var1 + var2 / 2;
    let var4 = var3 / (i64::from(cal.res_heat_range) + 4);
    let var5 = 131 * i64::from(cal.res_heat_val) + 65_536;
    let code_x100 = (var4 / var5 - 250) * 34;
    ((code_x100 + 50) / 100).clamp(0, 255) as u8
}

/// The `gas_wait_x` code for a heater duration: 6-bit value times a power-of-4 multiplier.
pub fn gas_wait_code(duration_ms: u16) -> u8 {
    if duration_ms >= 0xFC0 {
        return 0xFF;
    }
    let mut value = duration_ms;
    let mut multiplier = 0u8;
    while value > 0x3F {
        value /= 4;
        multiplier += 1;
    }
    (value as u8) | (multiplier << 6)
}

/// The heater duration a `gas_wait_x` code stands for.
pub fn gas_wait_duration(code: u8) -> Duration {
    let value = u64::from(code & 0x3F);
    let multiplier = 4u64.pow(u32::from(code >> 6));
    Duration::from_millis(value * multiplier)
}

fn oversampling_cycles(oversampling: Oversampling) -> u32 {
    match oversampling {
        Oversampling::Skip => 0,
        Oversampling::X1 => 1,
        Oversampling::X2 => 2,
        Oversampling::X4 => 4,
        Oversampling::X8 => 8,
        Oversampling::X16 => 16,
    }
}

/// Bosch's measurement duration (1.963 ms per oversampling cycle, switching, gas
/// conversion and wake-up) plus the programmed heater time, plus 1 ms of margin.
pub fn conversion_time(config: &SensorConfig) -> Duration {
    let cycles = oversampling_cycles(config.temperature_oversampling)
        + oversampling_cycles(config.pressure_oversampling)
        + oversampling_cycles(config.humidity_oversampling);
    let tph_us = u64::from(cycles) * 1963 + 477 * 4 + 477 * 5 + 1000;
    Duration::from_micros(tph_us)
        + gas_wait_duration(gas_wait_code(config.heater_duration_ms))
        + Duration::from_millis(1)
}

/// Saturation vapour pressure over water in hPa (Magnus, Sonntag 1990 constants).
pub fn saturation_vapour_pressure_hpa(temperature_c: f32) -> f32 {
    6.112 * ((17.62 * temperature_c) / (243.12 + temperature_c)).exp()
}

/// The chip sits `offset` degrees above ambient: the same water vapour then shows a lower
/// relative humidity at the chip than in the room. Returns ambient (°C, %RH).
pub fn correct_self_heating(sensor_c: f32, sensor_rh: f32, offset_c: f32) -> (f32, f32) {
    if offset_c == 0.0 {
        return (sensor_c, sensor_rh);
    }
    let ambient_c = sensor_c - offset_c;
    let ratio =
        saturation_vapour_pressure_hpa(sensor_c) / saturation_vapour_pressure_hpa(ambient_c);
    let ambient_rh = (sensor_rh * ratio).clamp(0.0, 100.0);
    if ambient_rh.is_finite() {
        (ambient_c, ambient_rh)
    } else {
        (ambient_c, sensor_rh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gas_wait_codes_match_the_datasheet_examples() {
        assert_eq!(gas_wait_code(20), 0x14);
        assert_eq!(gas_wait_code(100), 0x59);
        assert_eq!(gas_wait_code(150), 0x65);
        assert_eq!(gas_wait_code(1500), 0xD7);
        assert_eq!(gas_wait_code(4032), 0xFF);
        assert_eq!(gas_wait_duration(0xD7), Duration::from_millis(1472));
        assert_eq!(gas_wait_duration(0x65), Duration::from_millis(148));
    }

    #[test]
    fn heater_codes_match_the_reference_for_set_a() {
        // Pimoroni calibration set A at 25 °C ambient (reference §5).
        let cal = HeaterCalibration {
            par_gh1: -30,
            par_gh2: -24754,
            par_gh3: 18,
            res_heat_range: 1,
            res_heat_val: 48,
        };
        assert_eq!(heater_resistance_code(&cal, 200, 25), 0x4E);
        assert_eq!(heater_resistance_code(&cal, 320, 25), 0x6A);
        assert_eq!(heater_resistance_code(&cal, 400, 25), 0x7C);
        assert_eq!(
            heater_resistance_code(&cal, 450, 25),
            0x7C,
            "capped at 400 °C"
        );
    }

    #[test]
    fn self_heating_correction_keeps_absolute_humidity() {
        let (t, rh) = correct_self_heating(25.0, 40.0, 3.0);
        assert!((t - 22.0).abs() < 1e-6);
        // Same vapour pressure: 40 % of e_s(25) equals rh % of e_s(22).
        let vapour_at_chip = 0.40 * saturation_vapour_pressure_hpa(25.0);
        let vapour_in_room = rh / 100.0 * saturation_vapour_pressure_hpa(22.0);
        assert!((vapour_at_chip - vapour_in_room).abs() < 1e-3);
        assert!(rh > 46.0 && rh < 48.0, "{rh}");
        assert_eq!(correct_self_heating(25.0, 99.0, 10.0).1, 100.0, "clamped");
    }
}
