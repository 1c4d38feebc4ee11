//! The function host: user-supplied WebAssembly data functions run in the `wasmi`
//! interpreter, sandboxed by a fuel budget per call and a linear-memory ceiling.
//!
//! [`FunctionModule`] is a compiled, checked `.wasm` file with its sha256;
//! [`FunctionHost`] runs one module with its parameters on window after window,
//! re-instantiating after any trap. It speaks two ABIs, picked from the module's exports:
//! the edge-function SDK's (`native_abi`) and Punch's `punch_api` 1.0 (`punch_abi`).
//! Everything the guest hands back is untrusted: every pointer and length is
//! bounds-checked, and output that does not decode is an error.

mod error;
mod guest_memory;
mod host;
mod limits;
mod module;
mod native_abi;
mod punch_abi;

pub use error::{FunctionError, PunchGlueError};
pub use host::{FunctionHost, Outcome};
pub use limits::Limits;
pub use module::{Abi, FunctionModule};
