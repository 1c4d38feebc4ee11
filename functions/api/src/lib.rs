//! The SDK for edge-agent data functions.
//!
//! A function is a type that implements [`Function`] and one [`register!`] line. The SDK
//! generates every WebAssembly export the agent needs; the author never writes `unsafe`
//! or touches a pointer. `edge-agent new NAME` writes a crate like this one, with its
//! wasm profile, a native test and a CSV to replay; its `Cargo.toml` names this crate by
//! path (`edge-function = { path = "/…/edge-agent/functions/api" }`).
//!
//! ```
//! use edge_function::{log, register, Error, Function, Params, Verdict, Verdicts, Window};
//!
//! /// Flags every sample above a fixed threshold.
//! pub struct Threshold {
//!     limit: f32,
//! }
//!
//! impl Function for Threshold {
//!     fn from_params(params: &Params) -> Result<Self, Error> {
//!         params.only(&["limit"])?;
//!         Ok(Self { limit: params.get("limit")?.unwrap_or(80.0) })
//!     }
//!
//!     fn execute(&self, window: Window) -> Result<Verdicts, Error> {
//!         log!("{} samples from {}", window.len(), window.sensor_id); // in the agent's log
//!         Ok(window.air_quality.iter().map(|&v| Verdict::flag(v > self.limit)).collect())
//!     }
//! }
//!
//! register!(Threshold);
//!
//! // Natively, through the same encode/decode path the wasm exports use:
//! let function = edge_function::testing::Harness::<Threshold>::new(&Params::from([("limit", "50")]))?;
//! let window = Window::from_air_quality("demo", vec![0, 1000], vec![20.0, 90.0]);
//! let verdicts = function.execute(&window)?;
//! assert_eq!(verdicts.iter().map(|v| v.is_anomaly).collect::<Vec<_>>(), [false, true]);
//! # Ok::<(), Error>(())
//! ```
//!
//! # The ABI (version [`ABI_VERSION`])
//!
//! | export | signature | meaning |
//! |---|---|---|
//! | `memory` | | the guest's linear memory |
//! | `edge_abi_version` | `() -> i32` | [`ABI_VERSION`]; the host refuses any other |
//! | `alloc` | `(len: i32) -> i32` | a buffer of `len` bytes the host writes input into |
//! | `dealloc` | `(ptr: i32, len: i32)` | frees a buffer from `alloc` that was not passed on |
//! | `init` | `(ptr: i32, len: i32) -> i64` | postcard [`Params`] in; [`InitInfo`] out |
//! | `execute` | `(ptr: i32, len: i32) -> i64` | postcard input in; the output out |
//!
//! `init` and `execute` take ownership of their input buffer and return `ptr << 32 | len`
//! of a postcard `Result<_, Error>` that stays valid until the next call into the guest.
//!
//! One import is allowed, `edge.log(level: i32, ptr: i32, len: i32)`, behind [`log()`],
//! [`log!`] and the panic hook (SDK 1.1 on; the agent copies at most 512 bytes of a
//! message and keeps 16 messages a window). A module importing anything else is refused.

mod error;
mod function;
#[doc(hidden)]
pub mod guest;
mod log;
mod params;
pub mod testing;
mod wire;

pub use error::Error;
pub use function::Function;
pub use log::{Level, log};
pub use params::Params;
pub use wire::{ABI_VERSION, InitInfo, Verdict, Verdicts, Window};

/// Re-exported so generated code and authors name the same serde.
pub use serde;
