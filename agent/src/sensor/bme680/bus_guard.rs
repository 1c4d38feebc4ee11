//! `GuardedBus`: an I2C pass-through placed between the driver and the real (or simulated)
//! bus, for two things `bosch-bme680` does not give us.
//!
//! - It keeps a copy of the last status/data block the driver read (0x1D..=0x2B), because the
//!   driver does not report `heat_stab_r` nor whether `new_data_0` was set (it returns the
//!   registers' old contents as a fresh reading when the chip is idle without new data).
//! - It caps the number of transfers per driver call: the driver's "wait for sleep mode"
//!   loop has no bound, so a chip stuck in forced mode would hang the sampler thread forever.
//!   Past the cap every transfer fails and the driver returns an error instead.
//! - It programs the heater profile we configured. The driver's `GasConfig` has private
//!   fields and only a default (300 °C, 150 ms), so its writes to `res_heat_0` (0x5A) and
//!   `gas_wait_0` (0x64) are replaced here by the codes for the configured profile, and the
//!   first status read after a forced-mode trigger is held back until the conversion of *that*
//!   profile has had time to finish (the driver's own wait is computed for 150 ms).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::sensor::clock::SharedClock;

use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, Operation, SevenBitAddress};

/// First register of the block the driver reads for a measurement.
pub const FIELD_BLOCK_START: u8 = 0x1D;
/// Length of that block (0x1D..=0x2B).
pub const FIELD_BLOCK_LEN: usize = 15;

/// The status bits of the last measurement block seen on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldStatus {
    pub new_data: bool,
    pub gas_valid: bool,
    pub heater_stable: bool,
}

impl FieldStatus {
    fn from_block(block: &[u8; FIELD_BLOCK_LEN]) -> Self {
        let meas_status = block[0];
        let gas_r_lsb = block[14];
        FieldStatus {
            new_data: meas_status & 0x80 != 0,
            gas_valid: gas_r_lsb & 0x20 != 0,
            heater_stable: gas_r_lsb & 0x10 != 0,
        }
    }
}

/// Register of the heater target code of profile 0.
pub const RES_HEAT_0: u8 = 0x5A;
/// Register of the heater duration code of profile 0.
pub const GAS_WAIT_0: u8 = 0x64;
/// Register holding the mode bits.
pub const CTRL_MEAS: u8 = 0x74;

/// The heater profile the guard writes in place of the driver's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaterOverride {
    pub res_heat_code: u8,
    pub gas_wait_code: u8,
    /// Full conversion time (T, P, H and heating) of the programmed configuration.
    pub conversion_time: Duration,
}

#[derive(Debug, Default)]
struct GuardState {
    last_block: Option<[u8; FIELD_BLOCK_LEN]>,
    transfers: u32,
    budget: u32,
    heater: Option<HeaterOverride>,
    triggered_at: Option<Duration>,
}

/// The observer's side of a [`GuardedBus`]: reset the budget, read what was seen.
#[derive(Debug, Clone, Default)]
pub struct BusMonitor {
    state: Arc<Mutex<GuardState>>,
}

impl BusMonitor {
    fn lock(&self) -> MutexGuard<'_, GuardState> {
        // The guard's own code cannot panic while holding the lock; a poisoned lock can only
        // come from elsewhere and the plain data inside is still consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a driver call: allows `budget` more transfers and forgets the last block.
    pub fn begin_call(&self, budget: u32) {
        let mut state = self.lock();
        state.transfers = 0;
        state.budget = budget;
        state.last_block = None;
    }

    /// Status bits of the last measurement block read since `begin_call`.
    pub fn last_status(&self) -> Option<FieldStatus> {
        self.lock().last_block.as_ref().map(FieldStatus::from_block)
    }

    /// Transfers made since `begin_call`.
    pub fn transfers(&self) -> u32 {
        self.lock().transfers
    }

    /// From now on, replace the driver's heater writes and wait for this conversion time.
    pub fn set_heater_override(&self, heater: HeaterOverride) {
        self.lock().heater = Some(heater);
    }
}

/// Error of a [`GuardedBus`]: the inner bus's error, or the transfer cap.
#[derive(Debug, Clone, PartialEq)]
pub enum GuardError<E> {
    Bus(E),
    BudgetExhausted,
}

impl<E: embedded_hal::i2c::Error> embedded_hal::i2c::Error for GuardError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            GuardError::Bus(inner) => inner.kind(),
            GuardError::BudgetExhausted => ErrorKind::Other,
        }
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct GuardedBus<I2C> {
    inner: I2C,
    monitor: BusMonitor,
    clock: SharedClock,
}

impl<I2C> GuardedBus<I2C> {
    /// Wraps `inner`; the monitor starts with an unlimited budget until `begin_call`.
    pub fn new(inner: I2C, clock: SharedClock) -> (Self, BusMonitor) {
        let monitor = BusMonitor::default();
        monitor.begin_call(u32::MAX - 1);
        (
            Self {
                inner,
                monitor: monitor.clone(),
                clock,
            },
            monitor,
        )
    }

    /// Substitutes heater codes and notes forced-mode triggers.
    fn rewrite_write(&self, write: &[u8]) -> Option<[u8; 2]> {
        let &[register, value] = write else {
            return None;
        };
        let mut state = self.monitor.lock();
        if register == CTRL_MEAS && value & 0b11 == 0b01 {
            state.triggered_at = Some(self.clock.monotonic());
        }
        let heater = state.heater?;
        match register {
            RES_HEAT_0 => Some([RES_HEAT_0, heater.res_heat_code]),
            GAS_WAIT_0 => Some([GAS_WAIT_0, heater.gas_wait_code]),
            _ => None,
        }
    }

    /// Holds the first read of the data block after a trigger until the conversion is done.
    fn wait_for_conversion(&self, write: &[u8]) {
        if write != [FIELD_BLOCK_START] {
            return;
        }
        let deadline = {
            let mut state = self.monitor.lock();
            match (state.triggered_at.take(), state.heater) {
                (Some(triggered), Some(heater)) => triggered + heater.conversion_time,
                _ => return,
            }
        };
        self.clock.sleep_until(deadline);
    }

    fn admit<E>(&self) -> Result<(), GuardError<E>> {
        let mut state = self.monitor.lock();
        state.transfers = state.transfers.saturating_add(1);
        if state.transfers > state.budget {
            Err(GuardError::BudgetExhausted)
        } else {
            Ok(())
        }
    }

    fn record_block(&self, write: &[u8], read: &[u8]) {
        if let ([FIELD_BLOCK_START], Ok(block)) = (write, <[u8; FIELD_BLOCK_LEN]>::try_from(read)) {
            self.monitor.lock().last_block = Some(block);
        }
    }
}

impl<I2C: ErrorType> ErrorType for GuardedBus<I2C> {
    type Error = GuardError<I2C::Error>;
}

impl<I2C: I2c<SevenBitAddress>> I2c<SevenBitAddress> for GuardedBus<I2C> {
    fn read(&mut self, address: u8, read: &mut [u8]) -> Result<(), Self::Error> {
        self.admit()?;
        self.inner.read(address, read).map_err(GuardError::Bus)
    }

    fn write(&mut self, address: u8, write: &[u8]) -> Result<(), Self::Error> {
        self.admit()?;
        match self.rewrite_write(write) {
            Some(replaced) => self.inner.write(address, &replaced),
            None => self.inner.write(address, write),
        }
        .map_err(GuardError::Bus)
    }

    fn write_read(
        &mut self,
        address: u8,
        write: &[u8],
        read: &mut [u8],
    ) -> Result<(), Self::Error> {
        self.admit()?;
        self.wait_for_conversion(write);
        self.inner
            .write_read(address, write, read)
            .map_err(GuardError::Bus)?;
        self.record_block(write, read);
        Ok(())
    }

    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        self.admit()?;
        // The driver only uses write, write_read and read; a transaction is passed on as is.
        self.inner
            .transaction(address, operations)
            .map_err(GuardError::Bus)?;
        if let [Operation::Write(write), Operation::Read(read)] = operations {
            self.record_block(write, read);
        }
        Ok(())
    }
}
