//! The register-level chip: a 256-byte register file behind an embedded-hal 1.0 `I2c`
//! implementation, with the BME680's protocol (a one-byte write sets the register pointer,
//! longer writes are register/value pairs, reads auto-increment), soft reset, the forced-mode
//! conversion on a clock, status bits, and data registers filled by inverting the
//! compensation so the real driver reads back the scenario's values.
//!
//! Behaviour modelled after the datasheet (reference §2, §7): while a conversion runs the
//! mode bits read 01, `measuring` is set and writes to the control registers are ignored;
//! skipped channels read 0x80000 / 0x8000; `gas_valid_r` follows `run_gas`; `heat_stab_r`
//! needs a working heater, a non-zero target code, the heater on, and ≥ 20 ms of heating.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use embedded_hal::i2c::{
    ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation, SevenBitAddress,
};

use super::calibration::Calibration;
use super::compensation::{self, RawCodes, Realized};
use super::faults::{Fault, FaultKindSim, FaultPlan};
use super::scenario::{Environment, Scenario};
use crate::sensor::bme680::datasheet::{gas_wait_duration, measurement_duration};
use crate::sensor::bme680::driver::BusFactory;
use crate::sensor::bme680::error::SensorError;
use crate::sensor::clock::SharedClock;

const REG_STATUS: usize = 0x1D;
const REG_MEAS_INDEX: usize = 0x1E;
const REG_PRESS_MSB: usize = 0x1F;
const REG_TEMP_MSB: usize = 0x22;
const REG_HUM_MSB: usize = 0x25;
const REG_GAS_MSB: usize = 0x2A;
const REG_GAS_LSB: usize = 0x2B;
const REG_RES_HEAT_0: usize = 0x5A;
const REG_GAS_WAIT_0: usize = 0x64;
const REG_CTRL_GAS_0: usize = 0x70;
const REG_CTRL_GAS_1: usize = 0x71;
const REG_CTRL_HUM: usize = 0x72;
const REG_CTRL_MEAS: usize = 0x74;
const REG_CONFIG: usize = 0x75;
const REG_CHIP_ID: usize = 0xD0;
const REG_RESET: usize = 0xE0;
const REG_VARIANT: usize = 0xF0;

const STATUS_NEW_DATA: u8 = 0x80;
const STATUS_GAS_MEASURING: u8 = 0x40;
const STATUS_MEASURING: u8 = 0x20;
const GAS_VALID: u8 = 0x20;
const HEAT_STABLE: u8 = 0x10;
/// Shortest heating the datasheet expects to reach the target ("20–30 ms").
const MIN_STABLE_HEATING: Duration = Duration::from_millis(20);

/// An I2C error of the simulated bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SimBusError {
    #[error("address {0:#04x} not acknowledged")]
    Nack(u8),
    #[error("bus error")]
    Bus,
}

impl embedded_hal::i2c::Error for SimBusError {
    fn kind(&self) -> ErrorKind {
        match self {
            SimBusError::Nack(_) => ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address),
            SimBusError::Bus => ErrorKind::Bus,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Conversion {
    started_at: Duration,
    ends_at: Duration,
}

#[derive(Debug)]
struct Chip {
    registers: [u8; 256],
    pointer: u8,
    address: u8,
    calibration: Calibration,
    clock: SharedClock,
    scenario: Scenario,
    scenario_origin: Duration,
    noise_seed: u64,
    conversion: Option<Conversion>,
    faults: FaultPlan,
    last_realized: Option<Realized>,
    last_environment: Option<Environment>,
    conversions_started: u64,
    transactions: u64,
}

impl Chip {
    fn power_on(&mut self) {
        self.registers = [0; 256];
        self.calibration.write_registers(&mut self.registers);
        self.registers[REG_CHIP_ID] = 0x61;
        self.registers[REG_VARIANT] = 0x00;
        self.reset_data_registers();
        self.conversion = None;
        self.pointer = 0;
    }

    fn reset_data_registers(&mut self) {
        self.registers[REG_STATUS] = 0;
        self.registers[REG_MEAS_INDEX] = 0;
        self.registers[REG_PRESS_MSB..REG_PRESS_MSB + 3].copy_from_slice(&[0x80, 0, 0]);
        self.registers[REG_TEMP_MSB..REG_TEMP_MSB + 3].copy_from_slice(&[0x80, 0, 0]);
        self.registers[REG_HUM_MSB..REG_HUM_MSB + 2].copy_from_slice(&[0x80, 0]);
        self.registers[REG_GAS_MSB] = 0;
        self.registers[REG_GAS_LSB] = 0;
    }

    fn soft_reset(&mut self) {
        for register in 0x50..=0x75 {
            self.registers[register] = 0;
        }
        self.reset_data_registers();
        self.conversion = None;
    }

    /// Finishes a conversion whose time is up.
    fn tick(&mut self) {
        let Some(conversion) = self.conversion else {
            return;
        };
        if self.clock.monotonic() < conversion.ends_at {
            return;
        }
        self.conversion = None;
        self.registers[REG_CTRL_MEAS] &= !0b11;
        if self.faults.strike(FaultKindSim::DataNeverReady).is_some() {
            self.registers[REG_STATUS] = STATUS_MEASURING;
            return;
        }
        if self.faults.strike(FaultKindSim::StaleData).is_some() {
            self.registers[REG_STATUS] &=
                !(STATUS_NEW_DATA | STATUS_MEASURING | STATUS_GAS_MEASURING);
            return;
        }
        self.store_results(conversion.started_at);
    }

    fn store_results(&mut self, started_at: Duration) {
        let elapsed = started_at.saturating_sub(self.scenario_origin);
        let environment = self.scenario.environment_at(elapsed, self.noise_seed);
        let (codes, _) = compensation::encode(
            &self.calibration,
            environment.temperature_c,
            environment.pressure_hpa,
            environment.humidity_pct,
            environment.gas_ohm,
        );
        let osrs_t = (self.registers[REG_CTRL_MEAS] >> 5) & 0b111;
        let osrs_p = (self.registers[REG_CTRL_MEAS] >> 2) & 0b111;
        let osrs_h = self.registers[REG_CTRL_HUM] & 0b111;
        let stored = RawCodes {
            temperature: if osrs_t == 0 {
                0x80000
            } else {
                codes.temperature
            },
            pressure: if osrs_p == 0 { 0x80000 } else { codes.pressure },
            humidity: if osrs_h == 0 { 0x8000 } else { codes.humidity },
            ..codes
        };
        write_20_bit(
            &mut self.registers[REG_TEMP_MSB..REG_TEMP_MSB + 3],
            stored.temperature,
        );
        write_20_bit(
            &mut self.registers[REG_PRESS_MSB..REG_PRESS_MSB + 3],
            stored.pressure,
        );
        self.registers[REG_HUM_MSB..REG_HUM_MSB + 2]
            .copy_from_slice(&stored.humidity.to_be_bytes());

        let run_gas = self.registers[REG_CTRL_GAS_1] & 0x10 != 0;
        if run_gas {
            let heater_on = self.registers[REG_CTRL_GAS_0] & 0x08 == 0;
            let heated_long_enough =
                gas_wait_duration(self.registers[REG_GAS_WAIT_0]) >= MIN_STABLE_HEATING;
            let stable = environment.heater_works
                && heater_on
                && heated_long_enough
                && self.registers[REG_RES_HEAT_0] != 0;
            self.registers[REG_GAS_MSB] = (stored.gas >> 2) as u8;
            self.registers[REG_GAS_LSB] = (((stored.gas & 0b11) as u8) << 6)
                | GAS_VALID
                | if stable { HEAT_STABLE } else { 0 }
                | (stored.gas_range & 0x0F);
        } else {
            self.registers[REG_GAS_MSB] = 0;
            self.registers[REG_GAS_LSB] = 0;
        }
        let profile = self.registers[REG_CTRL_GAS_1] & 0x0F;
        self.registers[REG_STATUS] = STATUS_NEW_DATA | profile;
        self.registers[REG_MEAS_INDEX] = self.registers[REG_MEAS_INDEX].wrapping_add(1);

        let mut realized = compensation::realize(&self.calibration, &stored);
        if !run_gas {
            realized.gas_ohm = 0.0;
        }
        self.last_realized = Some(realized);
        self.last_environment = Some(environment);
    }

    fn conversion_time(&self) -> Duration {
        let ctrl_meas = self.registers[REG_CTRL_MEAS];
        let mut time = measurement_duration(
            (ctrl_meas >> 5) & 0b111,
            (ctrl_meas >> 2) & 0b111,
            self.registers[REG_CTRL_HUM] & 0b111,
        );
        if self.registers[REG_CTRL_GAS_1] & 0x10 != 0 {
            time += gas_wait_duration(self.registers[REG_GAS_WAIT_0]);
        }
        time
    }

    fn read_register(&mut self, register: u8) -> u8 {
        let register = usize::from(register);
        let mut value = self.registers[register];
        if register == REG_CHIP_ID
            && let Some(Fault::WrongChipId { id, .. }) =
                self.faults.strike(FaultKindSim::WrongChipId)
        {
            value = id;
        }
        if register == REG_VARIANT
            && let Some(Fault::WrongVariant { id, .. }) =
                self.faults.strike(FaultKindSim::WrongVariant)
        {
            value = id;
        }
        if register == REG_CTRL_MEAS {
            if self.conversion.is_some() {
                value = (value & !0b11) | 0b01;
            }
            if self.faults.strike(FaultKindSim::GarbageModeBits).is_some() {
                value |= 0b11;
            } else if self.faults.strike(FaultKindSim::ModeStuckForced).is_some() {
                value = (value & !0b11) | 0b01;
            }
        }
        if register == REG_STATUS && self.conversion.is_some() {
            value = (value & !STATUS_NEW_DATA) | STATUS_MEASURING;
        }
        value
    }

    fn write_register(&mut self, register: u8, value: u8) {
        let register = usize::from(register);
        if register == REG_RESET {
            if value == 0xB6 {
                self.soft_reset();
            }
            return;
        }
        let control = (0x50..=REG_CONFIG).contains(&register);
        if !control {
            // Data, calibration and id registers are read-only.
            return;
        }
        if self.conversion.is_some() {
            // The datasheet: control writes are ignored until the running conversion ends.
            return;
        }
        self.registers[register] = value;
        if register == REG_CTRL_MEAS && value & 0b11 != 0 {
            // 01 is forced mode; 10 and 11 are forced mode too on the real chip.
            let now = self.clock.monotonic();
            self.conversion = Some(Conversion {
                started_at: now,
                ends_at: now + self.conversion_time(),
            });
            self.conversions_started += 1;
            let gas = if self.registers[REG_CTRL_GAS_1] & 0x10 != 0 {
                STATUS_GAS_MEASURING
            } else {
                0
            };
            self.registers[REG_STATUS] = STATUS_MEASURING | gas;
        }
    }

    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), SimBusError> {
        self.transactions += 1;
        self.tick();
        if self.faults.strike(FaultKindSim::Nack).is_some()
            || self.faults.strike(FaultKindSim::FlakyNack).is_some()
            || address != self.address
        {
            return Err(SimBusError::Nack(address));
        }
        if self.faults.strike(FaultKindSim::BusError).is_some() {
            return Err(SimBusError::Bus);
        }
        for operation in operations.iter_mut() {
            match operation {
                Operation::Write(bytes) => self.write_bytes(bytes),
                Operation::Read(buffer) => {
                    for byte in buffer.iter_mut() {
                        *byte = self.read_register(self.pointer);
                        self.pointer = self.pointer.wrapping_add(1);
                    }
                }
            }
        }
        Ok(())
    }

    fn write_bytes(&mut self, bytes: &[u8]) {
        match bytes {
            [] => {}
            [register] => self.pointer = *register,
            pairs => {
                for pair in pairs.chunks(2) {
                    match pair {
                        [register, value] => self.write_register(*register, *value),
                        [register] => self.pointer = *register,
                        _ => {}
                    }
                }
            }
        }
    }
}

fn write_20_bit(target: &mut [u8], code: u32) {
    target[0] = (code >> 12) as u8;
    target[1] = (code >> 4) as u8;
    target[2] = ((code & 0x0F) << 4) as u8;
}

/// A simulated BME680: the handle tests and the demo steer it through, and the factory of
/// the [`SimulatedBus`] the driver owns. Clones share one chip.
#[derive(Debug, Clone)]
pub struct SimulatedBme680 {
    chip: Arc<Mutex<Chip>>,
}

impl SimulatedBme680 {
    /// A chip at address 0x76 with `calibration`, running `scenario` from now on `clock`.
    pub fn new(calibration: Calibration, scenario: Scenario, clock: SharedClock) -> Self {
        let origin = clock.monotonic();
        let mut chip = Chip {
            registers: [0; 256],
            pointer: 0,
            address: 0x76,
            calibration,
            clock,
            scenario,
            scenario_origin: origin,
            noise_seed: 0x5EED,
            conversion: None,
            faults: FaultPlan::default(),
            last_realized: None,
            last_environment: None,
            conversions_started: 0,
            transactions: 0,
        };
        chip.power_on();
        Self {
            chip: Arc::new(Mutex::new(chip)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Chip> {
        // Nothing panics while the chip is locked; a poisoned lock holds consistent data.
        self.chip
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Answers at `address` instead (SDO strapped the other way).
    pub fn with_address(self, address: u8) -> Self {
        self.lock().address = address;
        self
    }

    /// Seeds the scenario's noise.
    pub fn with_noise_seed(self, seed: u64) -> Self {
        self.lock().noise_seed = seed;
        self
    }

    /// Switches to `scenario`, whose time starts now.
    pub fn set_scenario(&self, scenario: Scenario) {
        let mut chip = self.lock();
        chip.scenario_origin = chip.clock.monotonic();
        chip.scenario = scenario;
    }

    /// Shorthand for a fixed environment without noise.
    pub fn set_environment(&self, environment: Environment) {
        self.set_scenario(Scenario::Fixed(environment));
    }

    pub fn inject(&self, fault: Fault) {
        self.lock().faults.inject(fault);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// How many times faults of `kind` have struck.
    pub fn times_struck(&self, kind: FaultKindSim) -> u64 {
        self.lock().faults.times_struck(kind)
    }

    /// What the driver computes from the last conversion's registers.
    pub fn last_realized(&self) -> Option<Realized> {
        self.lock().last_realized
    }

    /// The scenario's air at the last conversion.
    pub fn last_environment(&self) -> Option<Environment> {
        self.lock().last_environment
    }

    pub fn conversions_started(&self) -> u64 {
        self.lock().conversions_started
    }

    pub fn transactions(&self) -> u64 {
        self.lock().transactions
    }

    /// A register's raw stored value (no fault overlay), for tests.
    pub fn peek(&self, register: u8) -> u8 {
        self.lock().registers[usize::from(register)]
    }

    /// A new bus connected to this chip.
    pub fn bus(&self) -> SimulatedBus {
        SimulatedBus {
            chip: self.chip.clone(),
        }
    }
}

impl BusFactory for SimulatedBme680 {
    type Bus = SimulatedBus;
    fn open_bus(&mut self) -> Result<SimulatedBus, SensorError> {
        Ok(self.bus())
    }
    fn describe(&self) -> String {
        format!("simulated BME680 ({})", self.lock().scenario)
    }
}

/// The I2C bus the driver owns, wired to one [`SimulatedBme680`].
#[derive(Debug, Clone)]
pub struct SimulatedBus {
    chip: Arc<Mutex<Chip>>,
}

impl ErrorType for SimulatedBus {
    type Error = SimBusError;
}

impl I2c<SevenBitAddress> for SimulatedBus {
    fn transaction(
        &mut self,
        address: SevenBitAddress,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        self.chip
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .transaction(address, operations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensor::clock::VirtualClock;

    fn chip() -> (SimulatedBme680, SimulatedBus, VirtualClock) {
        let clock = VirtualClock::default();
        let sim = SimulatedBme680::new(
            Calibration::PIMORONI,
            Scenario::Fixed(Environment::CLEAN_INDOOR),
            Arc::new(clock.clone()),
        );
        let bus = sim.bus();
        (sim, bus, clock)
    }

    #[test]
    fn answers_chip_id_and_calibration_with_auto_increment() {
        let (_, mut bus, _) = chip();
        let mut id = [0];
        bus.write_read(0x76, &[0xD0], &mut id).unwrap();
        assert_eq!(id, [0x61]);
        let mut block = [0; 3];
        bus.write_read(0x76, &[0x8A], &mut block).unwrap();
        assert_eq!(block, [0x65, 0x67, 0x03]);
        assert_eq!(
            bus.write_read(0x77, &[0xD0], &mut id),
            Err(SimBusError::Nack(0x77))
        );
    }

    #[test]
    fn forced_conversion_takes_time_and_sets_status() {
        let (sim, mut bus, clock) = chip();
        bus.write(0x76, &[0x72, 0x01]).unwrap();
        bus.write(0x76, &[0x71, 0x10]).unwrap();
        bus.write(0x76, &[0x64, 0x59]).unwrap(); // 100 ms
        bus.write(0x76, &[0x5A, 0x6A]).unwrap();
        bus.write(0x76, &[0x74, (1 << 5) | (1 << 2) | 0b01])
            .unwrap();
        let mut status = [0];
        bus.write_read(0x76, &[0x1D], &mut status).unwrap();
        assert_eq!(
            status[0] & 0xA0,
            STATUS_MEASURING,
            "busy right after the trigger"
        );
        let mut mode = [0];
        bus.write_read(0x76, &[0x74], &mut mode).unwrap();
        assert_eq!(mode[0] & 0b11, 0b01);
        clock.advance(Duration::from_millis(120));
        bus.write_read(0x76, &[0x1D], &mut status).unwrap();
        assert_eq!(status[0] & 0xA0, STATUS_NEW_DATA);
        bus.write_read(0x76, &[0x74], &mut mode).unwrap();
        assert_eq!(mode[0] & 0b11, 0, "back to sleep");
        let mut gas_lsb = [0];
        bus.write_read(0x76, &[0x2B], &mut gas_lsb).unwrap();
        assert_eq!(
            gas_lsb[0] & (GAS_VALID | HEAT_STABLE),
            GAS_VALID | HEAT_STABLE
        );
        assert_eq!(sim.conversions_started(), 1);
    }

    #[test]
    fn soft_reset_clears_control_but_keeps_calibration() {
        let (sim, mut bus, _) = chip();
        bus.write(0x76, &[0x72, 0x05]).unwrap();
        bus.write(0x76, &[0xE0, 0xB6]).unwrap();
        assert_eq!(sim.peek(0x72), 0);
        assert_eq!(sim.peek(0x8A), 0x65);
        assert_eq!(sim.peek(0x22), 0x80);
    }
}
