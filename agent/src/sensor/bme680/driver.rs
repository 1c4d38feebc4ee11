//! `Bme680Sensor`: the `bosch-bme680` driver behind one code path that runs on `/dev/i2c-N`
//! and on the simulated chip alike (anything implementing embedded-hal 1.0 `I2c`).
//!
//! What this layer adds to the driver, and why:
//! - address probing (`auto`), done on the raw bus before the driver takes it;
//! - the configured heater profile (see [`crate::sensor::bme680::bus_guard`]);
//! - `heater_stable` and a real "no new data" check, read from the status bits the guard saw;
//! - driver panics (`SensorMode::from` and `Variant::from` panic on unexpected register
//!   values) turned into [`SensorError::DriverPanic`];
//! - the self-heating offset, with relative humidity recomputed for the corrected temperature.

use std::panic::{AssertUnwindSafe, catch_unwind};

use bosch_bme680::{Bme680, BmeError, Configuration, DeviceAddress, GasConfig};
use embedded_hal::i2c::{Error as _, ErrorKind, I2c, SevenBitAddress};

use crate::sensor::bme680::bus_guard::{BusMonitor, GuardError, GuardedBus, HeaterOverride};
use crate::sensor::bme680::config::{Oversampling, SensorConfig};
use crate::sensor::bme680::datasheet::{
    HeaterCalibration, correct_self_heating, gas_wait_code, heater_resistance_code,
};
use crate::sensor::bme680::error::SensorError;
use crate::sensor::clock::{ClockDelay, SharedClock};

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
    /// %RH at the ambient temperature; NaN when the channel is configured `skip`.
    pub humidity: f32,
    /// hPa; NaN when the channel is configured `skip`.
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
    /// Channels configured `skip`: the chip leaves their registers at the reset value, which
    /// the driver would compensate into a plausible-looking number.
    humidity_skipped: bool,
    pressure_skipped: bool,
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
            conversion_time: config.conversion_time(),
        });
        // Rewrites the profile through the guard, now that the heater codes are known.
        guarded_call(&monitor, || driver.set_configuration(&driver_config))?;

        Ok(Self {
            driver,
            monitor,
            address,
            temperature_offset_c: config.temperature_offset_c,
            humidity_skipped: config.humidity_oversampling == Oversampling::Skip,
            pressure_skipped: config.pressure_oversampling == Oversampling::Skip,
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
        let measured_humidity = if self.humidity_skipped {
            f32::NAN
        } else {
            data.humidity
        };
        let (temperature, humidity) = correct_self_heating(
            data.temperature,
            measured_humidity,
            self.temperature_offset_c,
        );
        Ok(Reading {
            temperature,
            humidity,
            pressure: if self.pressure_skipped {
                f32::NAN
            } else {
                data.pressure / 100.0
            },
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
