//! The sandbox's budget: fuel per call, the linear-memory ceiling and the wall-clock
//! deadline per window, plus the fixed bounds every module lives under whatever the
//! configuration says (file size, locals, output). A new bound goes here, with its
//! figure in the README's "Bounds" section.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Ends guest calls at a stop: every call whose [`Limits`] carry this token ends at its
/// next fuel slice with `FunctionError::Abandoned` once [`GuestStop::abandon`] is called,
/// so no guest can hold the agent past the unit's stop timeout. One per agent (the running
/// function, a candidate in its canary and the watcher's `init` share it), so agents
/// started in one process (tests, the fleet bench) stop their own guests only.
#[derive(Clone, Copy)]
pub struct GuestStop(&'static AtomicBool);

/// Guests started without an agent of their own (`check`, `replay`, tests).
static UNOWNED: AtomicBool = AtomicBool::new(false);

impl GuestStop {
    /// A token of its own. It lives as long as the process (one byte, once per agent
    /// started), so that [`Limits`] stays a plain `Copy` value.
    pub fn new() -> Self {
        Self(Box::leak(Box::new(AtomicBool::new(false))))
    }

    /// Every call under this token, now and later, ends at its next slice; there is no
    /// way back (the agent is stopping).
    pub fn abandon(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_abandoned(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Default for GuestStop {
    /// The token of guests no agent owns: never abandoned.
    fn default() -> Self {
        Self(&UNOWNED)
    }
}

impl PartialEq for GuestStop {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for GuestStop {}

impl std::fmt::Debug for GuestStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GuestStop(abandoned: {})", self.is_abandoned())
    }
}

/// Limits applied to every call into a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Fuel (roughly one unit per wasm instruction) for one `init` or `execute` call.
    pub fuel_per_call: u64,
    /// The most linear memory the guest may grow to, in bytes.
    pub max_memory_bytes: usize,
    /// Wall time one window may take in guest code, all its calls together (and the
    /// same for instantiation: `start`, `init`); checked between fuel slices, so a call
    /// ends at most one slice (a few milliseconds) after it.
    pub deadline: Duration,
    /// What ends every call at a stop (the agent's own).
    pub stop: GuestStop,
}

impl Limits {
    /// Enough for S-H-ESD on a 4096-sample window with `max_anoms = 0.1` (measured: see
    /// the README's figures), while an infinite loop still stops in a fraction of a second.
    pub const DEFAULT_FUEL_PER_CALL: u64 = 1_100_000_000;
    pub const DEFAULT_MAX_MEMORY_BYTES: usize = 32 << 20;
    /// Well inside the unit's 30 s watchdog and 20 s stop timeout, even for the two
    /// windows a stop can take (the current one and the last, partial one).
    pub const DEFAULT_DEADLINE_MS: u64 = 5_000;
    pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(Self::DEFAULT_DEADLINE_MS);
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel_per_call: Self::DEFAULT_FUEL_PER_CALL,
            max_memory_bytes: Self::DEFAULT_MAX_MEMORY_BYTES,
            deadline: Self::DEFAULT_DEADLINE,
            stop: GuestStop::default(),
        }
    }
}

/// The largest module file read; anything longer is refused before a byte of it is
/// parsed. The S-H-ESD function is about 200 KB.
pub const MAX_MODULE_BYTES: u64 = 8 << 20;

/// Locals one function may declare (its parameters, at most 32 under wasmi's strict
/// limits, come on top). A call zeroes every local, a cost fuel does not see; Rust
/// functions stay in the hundreds.
pub const MAX_LOCALS_PER_FUNCTION: u32 = 2_048;

/// `memory.grow` and `table.grow` instructions one function body may hold, counted from
/// their encodings (`40 00`, `FC 0F`) and so possibly over-counted: each one run leaves a
/// host stack frame until the call pauses (see `GROW_COST` in `module.rs`), and a single
/// block is not paused inside. Rust functions hold a handful.
pub const MAX_GROWS_PER_FUNCTION: usize = 1_024;

/// The longest window a function may ask for as its minimum (`init`'s `min_window_len`).
pub const MAX_WINDOW_LEN: usize = 1 << 16;

/// The longest answer read back from the guest beyond the verdicts themselves: an
/// error's message, `init`'s answer. Anything longer is refused without being decoded.
pub const MAX_ANSWER_OVERHEAD_BYTES: usize = 64 << 10;
