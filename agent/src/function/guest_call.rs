//! The leaf both ABIs and the host build on: what a store carries for the sandbox
//! ([`HostState`]: the resource limits, the deadline, the window's figures) and the one
//! way guest code is entered ([`GuestCall`]: fuel in slices, the clock checked between
//! them, wasmi's errors turned into ours). It imports nothing else of `function/`'s
//! internals; a change to how a call is bounded goes here and nowhere else.

use std::time::{Duration, Instant};

use wasmi::{
    Store, StoreLimits, StoreLimitsBuilder, TrapCode, TypedFunc, TypedResumableCall, WasmParams,
    WasmResults,
};

use super::guest_log::GuestLog;
use super::{FunctionError, Limits};

/// Fuel handed to the guest at a time. Between two slices the host looks at the clock,
/// so this bounds how far past its deadline a call can run: 1 M units are well under a
/// millisecond of interpretation on x86_64 (see the README's figures), and resuming costs
/// nothing measurable. Small also because a slice bounds the host stack wasmi's
/// non-tail-called grow handlers pile up (see `GROW_COST` in `module.rs`).
pub(super) const FUEL_SLICE: u64 = 1_000_000;

/// Tables a module may declare. Rust toolchains emit one (for `call_indirect`).
pub const MAX_TABLES: usize = 4;

/// Elements one table may hold. A Rust function's table holds one entry per function
/// called through a pointer: hundreds, not tens of thousands.
pub const MAX_TABLE_ELEMENTS: usize = 65_536;

/// What a store carries for the sandbox.
pub(super) struct HostState {
    limiter: StoreLimits,
    max_memory_bytes: usize,
    /// When the current window (or instantiation) must be over; every call in it stops
    /// here, so several calls per window share one deadline rather than each getting one.
    deadline: Instant,
    /// Wall time spent inside guest code since the last reset.
    pub(super) guest_time: Duration,
    /// The most fuel one guest call burnt since the last reset. The budget is per call,
    /// and an ABI may make several calls per window (Punch frees its buffers after
    /// `apply`), so this, not the fuel left after the last call, is the window's figure.
    pub(super) peak_fuel: u64,
    /// What the guest said through `edge.log` since the host last printed it.
    pub(super) log: GuestLog,
}

impl HostState {
    /// The store for one instance: one linear memory of at most
    /// `limits.max_memory_bytes`, at most [`MAX_TABLES`] tables of
    /// [`MAX_TABLE_ELEMENTS`], one instance. Growth past them fails as the spec says
    /// (`memory.grow` answers -1) rather than trapping: wasmi 2 reports a grow that
    /// merely ran out of its fuel slice to the limiter as a failed grow, and with
    /// `trap_on_grow_failure` that becomes a trap instead of a resumable pause.
    pub(super) fn store(engine: &wasmi::Engine, limits: &Limits) -> Store<HostState> {
        let mut store = Store::new(
            engine,
            HostState {
                limiter: StoreLimitsBuilder::new()
                    .memory_size(limits.max_memory_bytes)
                    .memories(1)
                    .tables(MAX_TABLES)
                    .table_elements(MAX_TABLE_ELEMENTS)
                    .instances(1)
                    .trap_on_grow_failure(false)
                    .build(),
                max_memory_bytes: limits.max_memory_bytes,
                deadline: Instant::now(),
                guest_time: Duration::ZERO,
                peak_fuel: 0,
                log: GuestLog::default(),
            },
        );
        store.limiter(|state| &mut state.limiter);
        store
    }

    pub(super) fn max_memory_bytes(&self) -> usize {
        self.max_memory_bytes
    }

    /// Starts the clock for one window (or one instantiation): every call until the next
    /// `begin` must end within `limit` from now.
    pub(super) fn begin(&mut self, limit: Duration) {
        let now = Instant::now();
        // A deadline too far to represent is spent at once: refuse rather than run unbounded.
        self.deadline = now.checked_add(limit).unwrap_or(now);
        self.reset_figures();
    }

    /// Forgets the figures of the calls so far, keeping the deadline.
    pub(super) fn reset_figures(&mut self) {
        self.guest_time = Duration::ZERO;
        self.peak_fuel = 0;
    }
}

/// Runs guest code under the fuel budget and the deadline, and turns wasmi's errors
/// into ours.
#[derive(Clone, Copy, Debug)]
pub(super) struct GuestCall {
    pub(super) limits: Limits,
    /// [`FUEL_SLICE`], but for the benchmark's baseline.
    pub(super) slice: u64,
}

impl GuestCall {
    /// Calls `func` with `params`: fuel in [`FUEL_SLICE`]s up to the per-call budget, and
    /// between slices the clock against the deadline set by [`HostState::begin`].
    pub(super) fn run<P: WasmParams, R: WasmResults>(
        &self,
        store: &mut Store<HostState>,
        func: &TypedFunc<P, R>,
        params: P,
    ) -> Result<R, FunctionError> {
        let started = Instant::now();
        let deadline = store.data().deadline;
        let budget = self.limits.fuel_per_call;
        let mut left = budget;
        let mut slice = left.min(self.slice);
        let mut burnt_total: u64 = 0;
        self.set_fuel(store, slice)?;
        let mut state = func.call_resumable(&mut *store, params);
        let result = loop {
            match state {
                Ok(TypedResumableCall::Finished(results)) => {
                    burnt_total =
                        burnt_total.saturating_add(slice.saturating_sub(fuel_left(store)));
                    break Ok(results);
                }
                Ok(TypedResumableCall::OutOfFuel(paused)) => {
                    let burnt = slice.saturating_sub(fuel_left(store));
                    burnt_total = burnt_total.saturating_add(burnt);
                    left = left.saturating_sub(burnt);
                    let required = paused.required_fuel();
                    if required > left {
                        break Err(FunctionError::OutOfFuel { budget });
                    }
                    if self.limits.stop.is_abandoned() {
                        break Err(FunctionError::Abandoned);
                    }
                    if Instant::now() >= deadline {
                        break Err(FunctionError::Deadline {
                            limit_ms: duration_ms(self.limits.deadline),
                        });
                    }
                    slice = self.slice.max(required).min(left);
                    if let Err(e) = self.set_fuel(store, slice) {
                        break Err(e);
                    }
                    state = paused.resume(&mut *store);
                }
                // The one import, `edge.log`, never fails; should it ever, it is a trap.
                Ok(TypedResumableCall::HostTrap(paused)) => {
                    break Err(FunctionError::Trap(format!(
                        "a host function failed: {}",
                        paused.host_error()
                    )));
                }
                Err(e) => {
                    burnt_total =
                        burnt_total.saturating_add(slice.saturating_sub(fuel_left(store)));
                    break Err(self.classify(&e));
                }
            }
        };
        let state = store.data_mut();
        state.guest_time = state.guest_time.saturating_add(started.elapsed());
        state.peak_fuel = state.peak_fuel.max(burnt_total);
        // The SDK's panic hook says why just before the abort's `unreachable`: the trap
        // is reported with the guest's reason instead of the instruction's.
        match (result, state.log.take_panic()) {
            (Err(FunctionError::Trap(_)), Some(message)) => Err(FunctionError::Trap(format!(
                "the function panicked: {message}"
            ))),
            (result, _) => result,
        }
    }

    fn set_fuel(&self, store: &mut Store<HostState>, fuel: u64) -> Result<(), FunctionError> {
        store
            .set_fuel(fuel)
            .map_err(|e| FunctionError::Instantiate(e.to_string()))
    }

    pub(super) fn classify(&self, error: &wasmi::Error) -> FunctionError {
        match error.as_trap_code() {
            Some(TrapCode::OutOfFuel) => FunctionError::OutOfFuel {
                budget: self.limits.fuel_per_call,
            },
            Some(TrapCode::GrowthOperationLimited) => FunctionError::MemoryLimit {
                limit_bytes: self.limits.max_memory_bytes,
            },
            _ => FunctionError::Trap(error.to_string()),
        }
    }
}

fn fuel_left(store: &Store<HostState>) -> u64 {
    store.get_fuel().unwrap_or(0)
}

pub(super) fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
