//! The function host: user-supplied WebAssembly data functions run in the `wasmi`
//! interpreter, sandboxed by one resource budget per instance, a fuel budget per call and
//! a wall-clock deadline per window.
//!
//! [`FunctionModule`] is a compiled, checked `.wasm` file with its sha256 (read and
//! shaped in `module` and `shape`); [`FunctionHost`] runs one module with its parameters
//! on window after window, re-instantiating after any trap. It speaks two ABIs, picked
//! from the module's exports: the edge-function SDK's (`native_abi`) and Punch's
//! `punch_api` 1.0 (`punch_abi`). Both enter the guest only through `guest_call` (the
//! store's state and the bounded call), the leaf of this module: imports run host →
//! ABIs → `guest_memory` → `guest_call` → `guest_log`. A module may import one host
//! function, `edge.log` (bounded, see `guest_log`), and nothing else. Everything the guest hands back is untrusted:
//! every pointer and length is bounds-checked, output is bounded before it is decoded,
//! and guest text is escaped. [`last_good`] keeps the module that last ran well and
//! starts from it when the configured one fails; [`SwapStats`] counts swaps; [`config`] is
//! the `[function]` section.

pub mod config;
mod error;
mod guest_call;
mod guest_log;
mod guest_memory;
mod host;
pub mod last_good;
mod limits;
mod module;
mod native_abi;
mod punch_abi;
mod shape;
mod swap_stats;

pub use config::{FunctionSection, ParamValue};
pub use error::{FunctionError, PunchGlueError};
pub use guest_call::{MAX_TABLE_ELEMENTS, MAX_TABLES};
pub use guest_log::{LEVEL_PANIC, MAX_LOG_BYTES, MAX_LOG_LINES};
pub use host::{FunctionHost, Outcome};
pub use limits::{
    GuestStop, Limits, MAX_ANSWER_OVERHEAD_BYTES, MAX_GROWS_PER_FUNCTION, MAX_LOCALS_PER_FUNCTION,
    MAX_MODULE_BYTES, MAX_WINDOW_LEN,
};
pub use module::{Abi, FunctionModule};
pub use swap_stats::{OutcomeKind, RECENT_OUTCOMES, SwapOutcome, SwapStats};
