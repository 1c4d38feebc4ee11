//! One function module, configured with its parameters, run window after window.

use std::time::{Duration, Instant};

use edge_function::{InitInfo, Params, Verdicts, Window};
use wasmi::{Linker, Store, StoreLimits, StoreLimitsBuilder, TrapCode};

use super::native_abi::EdgeGuest;
use super::punch_abi::PunchGuest;
use super::{Abi, FunctionError, FunctionModule, Limits};

/// What the store carries for the sandbox.
pub(super) struct HostState {
    limiter: StoreLimits,
    pub(super) max_memory_bytes: usize,
    /// Wall time spent inside guest code since the last reset.
    guest_time: Duration,
    /// The most fuel one guest call burnt since the last reset. The budget is per call,
    /// and an ABI may make several calls per window (Punch frees its buffers after
    /// `apply`), so this, not the fuel left after the last call, is the window's figure.
    peak_fuel: u64,
}

/// Runs guest code under the fuel budget and turns wasmi's errors into ours.
pub(super) struct GuestCall {
    limits: Limits,
}

impl GuestCall {
    pub(super) fn run<R>(
        &self,
        store: &mut Store<HostState>,
        call: impl FnOnce(&mut Store<HostState>) -> Result<R, wasmi::Error>,
    ) -> Result<R, FunctionError> {
        store
            .set_fuel(self.limits.fuel_per_call)
            .map_err(|e| FunctionError::Instantiate(e.to_string()))?;
        let started = Instant::now();
        let result = call(store);
        let burnt = self
            .limits
            .fuel_per_call
            .saturating_sub(store.get_fuel().unwrap_or(0));
        let state = store.data_mut();
        state.guest_time += started.elapsed();
        state.peak_fuel = state.peak_fuel.max(burnt);
        result.map_err(|e| self.classify(&e))
    }

    fn classify(&self, error: &wasmi::Error) -> FunctionError {
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

/// The result of one window.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub verdicts: Verdicts,
    /// Fuel the window's costliest guest call burnt: `execute`, or Punch's `apply`.
    pub fuel_used: u64,
    /// Wall time inside the guest.
    pub guest_time: Duration,
    /// Wall time on the host's side of the call: encoding, copying and decoding.
    pub host_time: Duration,
}

/// The bound exports of an instance, in the ABI its module speaks.
enum Guest {
    Edge(EdgeGuest),
    Punch(PunchGuest),
}

impl Guest {
    fn execute(
        &self,
        store: &mut Store<HostState>,
        call: &GuestCall,
        window: &Window,
    ) -> Result<Verdicts, FunctionError> {
        match self {
            Guest::Edge(guest) => guest.execute(store, call, window),
            Guest::Punch(guest) => guest.execute(store, call, window),
        }
    }
}

/// A live instance: its store and its bound exports.
struct Live {
    store: Store<HostState>,
    guest: Guest,
}

/// A function module with its parameters, ready to judge windows.
pub struct FunctionHost {
    module: FunctionModule,
    params: Params,
    call: GuestCall,
    info: InitInfo,
    live: Option<Live>,
}

impl FunctionHost {
    /// Instantiates the module and runs `init` with `params`, so a module that is bad in
    /// any way is refused here rather than on its first window. A Punch module has no
    /// `init`: it is instantiated, and refused if given any parameter at all, since it
    /// could only ignore it.
    pub fn new(
        module: FunctionModule,
        params: Params,
        limits: Limits,
    ) -> Result<Self, FunctionError> {
        if module.abi() == Abi::Punch && !params.is_empty() {
            return Err(FunctionError::ParamsNotAccepted {
                abi: module.abi().name(),
                names: params
                    .iter()
                    .map(|(name, _)| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let call = GuestCall { limits };
        let (live, info) = instantiate(&module, &params, &call)?;
        Ok(Self {
            module,
            params,
            call,
            info,
            live: Some(live),
        })
    }

    pub fn module(&self) -> &FunctionModule {
        &self.module
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn limits(&self) -> Limits {
        self.call.limits
    }

    /// The shortest window the configured function judges. A Punch module cannot say,
    /// so it is 1 and the function refuses what is too short for it.
    pub fn min_window_len(&self) -> usize {
        self.info.min_window_len as usize
    }

    /// Judges one window. After a trap the instance is dropped and the next call starts
    /// from a fresh one, so one bad window cannot poison the next.
    pub fn run(&mut self, window: &Window) -> Result<Outcome, FunctionError> {
        let mut live = match self.live.take() {
            Some(live) => live,
            None => instantiate(&self.module, &self.params, &self.call)?.0,
        };
        let state = live.store.data_mut();
        state.guest_time = Duration::ZERO;
        state.peak_fuel = 0;
        let started = Instant::now();
        let result = live.guest.execute(&mut live.store, &self.call, window);
        let elapsed = started.elapsed();
        let fuel_used = live.store.data().peak_fuel;
        let guest_time = live.store.data().guest_time;
        match result {
            Ok(verdicts) => {
                self.live = Some(live);
                Ok(Outcome {
                    verdicts,
                    fuel_used,
                    guest_time,
                    host_time: elapsed.saturating_sub(guest_time),
                })
            }
            Err(error) => {
                if !error.poisons_instance() {
                    self.live = Some(live);
                }
                Err(error)
            }
        }
    }
}

fn instantiate(
    module: &FunctionModule,
    params: &Params,
    call: &GuestCall,
) -> Result<(Live, InitInfo), FunctionError> {
    let limits = call.limits;
    let engine = module.module().engine();
    let mut store = Store::new(
        engine,
        HostState {
            limiter: StoreLimitsBuilder::new()
                .memory_size(limits.max_memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            max_memory_bytes: limits.max_memory_bytes,
            guest_time: Duration::ZERO,
            peak_fuel: 0,
        },
    );
    store.limiter(|state| &mut state.limiter);
    let instance = Linker::<HostState>::new(engine)
        .instantiate_and_start(&mut store, module.module())
        .map_err(|e| match call.classify(&e) {
            FunctionError::Trap(_) => FunctionError::Instantiate(e.to_string()),
            other => other,
        })?;
    let (guest, info) = match module.abi() {
        Abi::Edge => {
            let guest = EdgeGuest::bind(&mut store, &instance, call)?;
            let info = guest.init(&mut store, call, params)?;
            (Guest::Edge(guest), info)
        }
        Abi::Punch => (
            Guest::Punch(PunchGuest::bind(&mut store, &instance)?),
            InitInfo { min_window_len: 1 },
        ),
    };
    Ok((Live { store, guest }, info))
}
