//! One function module, configured with its parameters, run window after window. Each
//! window (and each instantiation: `start`, `init`) gets one deadline for all its guest
//! calls; a trap, a spent budget or a missed deadline drops the instance, and the next
//! window starts from a fresh one.

use std::time::{Duration, Instant};

use edge_function::{InitInfo, Params, Verdicts, Window};
use wasmi::{Caller, Linker, Store, TypedFunc};

use super::error::guest_text;
use super::guest_call::{FUEL_SLICE, GuestCall, HostState};
use super::guest_log::{self, MAX_LOG_BYTES};
use super::limits::MAX_WINDOW_LEN;
use super::native_abi::EdgeGuest;
use super::punch_abi::PunchGuest;
use super::shape::START_EXPORT;
use super::{Abi, FunctionError, FunctionModule, Limits};

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
    /// Instantiates the module (running its `start`, if any, under the same fuel and
    /// deadline as any call) and runs `init` with `params`, so a module that is bad in
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
                names: guest_text(
                    &params
                        .iter()
                        .map(|(name, _)| format!("`{name}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            });
        }
        let call = GuestCall {
            limits,
            slice: FUEL_SLICE,
        };
        let (live, info) = instantiate(&module, &params, &call)?;
        let min = info.min_window_len as usize;
        if min > MAX_WINDOW_LEN {
            return Err(FunctionError::BadOutput(format!(
                "init claims a minimum window of {min} samples; the most the agent runs is {MAX_WINDOW_LEN}"
            )));
        }
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

    /// Hands fuel to the guest `slice` units at a time instead of the default few
    /// million: the clock is looked at only between slices. For the benchmark, which
    /// measures what the deadline checks cost against one slice per call (none).
    #[doc(hidden)]
    pub fn with_fuel_slice(mut self, slice: u64) -> Self {
        self.call.slice = slice.max(1);
        self
    }

    /// The shortest window the configured function judges, at most [`MAX_WINDOW_LEN`].
    /// A Punch module cannot say, so it is 1 and the function refuses what is too short
    /// for it.
    pub fn min_window_len(&self) -> usize {
        self.info.min_window_len as usize
    }

    /// Judges one window within the deadline. After a trap the instance is dropped and
    /// the next call starts from a fresh one, so one bad window cannot poison the next.
    pub fn run(&mut self, window: &Window) -> Result<Outcome, FunctionError> {
        let started = Instant::now();
        let mut live = match self.live.take() {
            Some(mut live) => {
                live.store.data_mut().begin(self.call.limits.deadline);
                live
            }
            // A fresh instance's clock started with its instantiation: one deadline
            // covers `start`, `init` and this window together.
            None => {
                let (mut live, _) = instantiate(&self.module, &self.params, &self.call)?;
                live.store.data_mut().reset_figures();
                live
            }
        };
        let result = match &live.guest {
            Guest::Edge(guest) => guest.execute(&mut live.store, &self.call, window),
            Guest::Punch(guest) => guest.execute(&mut live.store, &self.call, window),
        };
        guest_log::print(
            &mut live.store.data_mut().log,
            crate::support::text::short_sha(self.module.sha256()),
        );
        let elapsed = started.elapsed();
        let fuel_used = live.store.data().peak_fuel;
        let guest_time = live.store.data().guest_time;
        let result = result.map_err(|error| at_the_ceiling(error, &live));
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

/// A trap with more than half the ceiling in use is counted as the ceiling's doing: the
/// guest's allocator got -1 from `memory.grow` and gave up (Rust aborts), and a
/// doubling allocator's last refused request is at most what it already holds. wasmi
/// cannot say for sure (see `HostState::store` for why growth does not trap).
fn at_the_ceiling(error: FunctionError, live: &Live) -> FunctionError {
    let memory = match &live.guest {
        Guest::Edge(guest) => guest.memory(),
        Guest::Punch(guest) => guest.memory(),
    };
    let limit_bytes = live.store.data().max_memory_bytes();
    match error {
        FunctionError::Trap(_) if memory.data_size(&live.store) > limit_bytes / 2 => {
            FunctionError::MemoryLimit { limit_bytes }
        }
        other => other,
    }
}

fn instantiate(
    module: &FunctionModule,
    params: &Params,
    call: &GuestCall,
) -> Result<(Live, InitInfo), FunctionError> {
    let engine = module.module().engine();
    let mut store = HostState::store(engine, &call.limits);
    store.data_mut().begin(call.limits.deadline);
    let started = start_and_init(module, params, call, &mut store);
    // What `start` and `init` said, printed whether or not they succeeded.
    guest_log::print(
        &mut store.data_mut().log,
        crate::support::text::short_sha(module.sha256()),
    );
    let (guest, info) = started?;
    Ok((Live { store, guest }, info))
}

/// The one import a module may have (`module.rs` refuses any other): `edge.log(level,
/// ptr, len)`. At most [`MAX_LOG_BYTES`] are copied out of guest memory, and nothing at
/// all once the window's lines are used up; a range outside memory is counted as a
/// dropped line rather than trapping, so logging can never be why a window fails.
fn link(engine: &wasmi::Engine) -> Result<Linker<HostState>, FunctionError> {
    let mut linker = Linker::<HostState>::new(engine);
    linker
        .func_wrap(
            "edge",
            "log",
            |mut caller: Caller<'_, HostState>, level: u32, ptr: u32, len: u32| {
                if !caller.data().log.has_room(level) {
                    caller.data_mut().log.count_dropped();
                    return;
                }
                let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
                    caller.data_mut().log.count_dropped();
                    return;
                };
                let kept = (len as usize).min(MAX_LOG_BYTES);
                let start = ptr as usize;
                let copied = start
                    .checked_add(kept)
                    .and_then(|end| memory.data(&caller).get(start..end))
                    .map(<[u8]>::to_vec);
                match copied {
                    Some(bytes) => caller
                        .data_mut()
                        .log
                        .push(level, &bytes, len as usize - kept),
                    None => caller.data_mut().log.count_dropped(),
                }
            },
        )
        .map_err(|e| FunctionError::Instantiate(e.to_string()))?;
    Ok(linker)
}

fn start_and_init(
    module: &FunctionModule,
    params: &Params,
    call: &GuestCall,
    store: &mut Store<HostState>,
) -> Result<(Guest, InitInfo), FunctionError> {
    let engine = module.module().engine();
    // The start section was moved to an export (see `shape`), so nothing runs here.
    let instance = link(engine)?
        .instantiate_and_start(&mut *store, module.module())
        .map_err(|e| match call.classify(&e) {
            FunctionError::Trap(_) => FunctionError::Instantiate(e.to_string()),
            other => other,
        })?;
    if module.has_start() {
        let start: TypedFunc<(), ()> = instance
            .get_typed_func(&*store, START_EXPORT)
            .map_err(|e| FunctionError::Instantiate(e.to_string()))?;
        call.run(store, &start, ()).map_err(|e| match e {
            FunctionError::Trap(reason) => {
                FunctionError::Instantiate(format!("the start function trapped: {reason}"))
            }
            other => other,
        })?;
    }
    Ok(match module.abi() {
        Abi::Edge => {
            let guest = EdgeGuest::bind(store, &instance, call)?;
            let info = guest.init(store, call, params)?;
            (Guest::Edge(guest), info)
        }
        Abi::Punch => (
            Guest::Punch(PunchGuest::bind(store, &instance)?),
            InitInfo { min_window_len: 1 },
        ),
    })
}
