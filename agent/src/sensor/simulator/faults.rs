//! Faults a simulated chip can be told to show, each for a counted number of occasions
//! (use `u32::MAX` for "until cleared").

/// One kind of misbehaviour and how many times it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next `transactions` bus transactions are not acknowledged (chip absent or
    /// wrong address).
    Nack { transactions: u32 },
    /// The next `transactions` bus transactions fail with a bus error (arbitration loss,
    /// noise on the lines).
    BusError { transactions: u32 },
    /// The next `reads` reads of the chip id register answer `id`.
    WrongChipId { id: u8, reads: u32 },
    /// The next `measurements` conversions never finish: `measuring` stays set and
    /// `new_data_0` never comes (the mode bits do return to sleep).
    DataNeverReady { measurements: u32 },
    /// The next `measurements` conversions end without `new_data_0`: the chip is idle and
    /// the data registers hold the previous results.
    StaleData { measurements: u32 },
    /// The next `reads` reads of `ctrl_meas` (0x74) show the undefined mode bits 0b11.
    GarbageModeBits { reads: u32 },
    /// The next `reads` reads of the variant id register (0xF0) answer `id` (a BME680 reads
    /// 0x00, a BME688 0x01).
    WrongVariant { id: u8, reads: u32 },
    /// The next `reads` reads of `ctrl_meas` show forced mode (0b01) whatever was written:
    /// a chip that never goes back to sleep.
    ModeStuckForced { reads: u32 },
    /// Every `every`-th bus transaction is not acknowledged, until cleared: a flaky
    /// connector or a long cable (`every` 0 never strikes).
    FlakyNack { every: u32 },
}

/// Which fault, without its count: for counters and lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKindSim {
    Nack,
    BusError,
    WrongChipId,
    DataNeverReady,
    StaleData,
    GarbageModeBits,
    WrongVariant,
    ModeStuckForced,
    FlakyNack,
}

impl Fault {
    pub fn kind(&self) -> FaultKindSim {
        match self {
            Fault::Nack { .. } => FaultKindSim::Nack,
            Fault::BusError { .. } => FaultKindSim::BusError,
            Fault::WrongChipId { .. } => FaultKindSim::WrongChipId,
            Fault::DataNeverReady { .. } => FaultKindSim::DataNeverReady,
            Fault::StaleData { .. } => FaultKindSim::StaleData,
            Fault::GarbageModeBits { .. } => FaultKindSim::GarbageModeBits,
            Fault::WrongVariant { .. } => FaultKindSim::WrongVariant,
            Fault::ModeStuckForced { .. } => FaultKindSim::ModeStuckForced,
            Fault::FlakyNack { .. } => FaultKindSim::FlakyNack,
        }
    }

    /// The occasions left; `None` for a periodic fault, which has no count.
    fn remaining_mut(&mut self) -> Option<&mut u32> {
        match self {
            Fault::Nack { transactions } | Fault::BusError { transactions } => Some(transactions),
            Fault::WrongChipId { reads, .. }
            | Fault::GarbageModeBits { reads }
            | Fault::WrongVariant { reads, .. }
            | Fault::ModeStuckForced { reads } => Some(reads),
            Fault::DataNeverReady { measurements } | Fault::StaleData { measurements } => {
                Some(measurements)
            }
            Fault::FlakyNack { .. } => None,
        }
    }
}

/// The active faults of one chip and how often each has struck.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    active: Vec<Fault>,
    struck: Vec<(FaultKindSim, u64)>,
    /// Occasions a periodic fault has seen since it was injected.
    periodic_seen: u64,
}

impl FaultPlan {
    /// Adds a fault; one of the same kind already active is replaced.
    pub fn inject(&mut self, fault: Fault) {
        self.active.retain(|active| active.kind() != fault.kind());
        if let Fault::FlakyNack { .. } = fault {
            self.periodic_seen = 0;
        }
        self.active.push(fault);
    }

    pub fn clear(&mut self) {
        self.active.clear();
    }

    /// If a fault of `kind` is active, uses up one occasion and returns it.
    pub fn strike(&mut self, kind: FaultKindSim) -> Option<Fault> {
        let index = self.active.iter().position(|fault| fault.kind() == kind)?;
        let fault = self.active[index];
        match self.active[index].remaining_mut() {
            Some(remaining) => {
                if *remaining == 0 {
                    self.active.remove(index);
                    return None;
                }
                if *remaining != u32::MAX {
                    *remaining -= 1;
                }
                if *remaining == 0 {
                    self.active.remove(index);
                }
            }
            None => {
                let Fault::FlakyNack { every } = fault else {
                    return None;
                };
                self.periodic_seen = self.periodic_seen.saturating_add(1);
                if every == 0 || !self.periodic_seen.is_multiple_of(u64::from(every)) {
                    return None;
                }
            }
        }
        match self.struck.iter_mut().find(|(struck, _)| *struck == kind) {
            Some((_, count)) => *count += 1,
            None => self.struck.push((kind, 1)),
        }
        Some(fault)
    }

    /// How many times a fault of `kind` has struck since the chip was made.
    pub fn times_struck(&self, kind: FaultKindSim) -> u64 {
        self.struck
            .iter()
            .find(|(struck, _)| *struck == kind)
            .map_or(0, |(_, count)| *count)
    }

    pub fn is_active(&self, kind: FaultKindSim) -> bool {
        self.active.iter().any(|fault| fault.kind() == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_strikes_exactly_its_count() {
        let mut plan = FaultPlan::default();
        plan.inject(Fault::BusError { transactions: 2 });
        assert!(plan.strike(FaultKindSim::BusError).is_some());
        assert!(plan.strike(FaultKindSim::Nack).is_none());
        assert!(plan.strike(FaultKindSim::BusError).is_some());
        assert!(plan.strike(FaultKindSim::BusError).is_none());
        assert_eq!(plan.times_struck(FaultKindSim::BusError), 2);
    }

    #[test]
    fn a_flaky_fault_strikes_every_nth_occasion() {
        let mut plan = FaultPlan::default();
        plan.inject(Fault::FlakyNack { every: 5 });
        let struck: Vec<bool> = (0..10)
            .map(|_| plan.strike(FaultKindSim::FlakyNack).is_some())
            .collect();
        assert_eq!(
            struck,
            [
                false, false, false, false, true, false, false, false, false, true
            ]
        );
        assert_eq!(plan.times_struck(FaultKindSim::FlakyNack), 2);
    }

    #[test]
    fn forever_means_until_cleared() {
        let mut plan = FaultPlan::default();
        plan.inject(Fault::StaleData {
            measurements: u32::MAX,
        });
        for _ in 0..1000 {
            assert!(plan.strike(FaultKindSim::StaleData).is_some());
        }
        plan.clear();
        assert!(plan.strike(FaultKindSim::StaleData).is_none());
    }
}
