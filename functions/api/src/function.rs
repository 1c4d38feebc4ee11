//! The trait a data function implements.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Params, Verdicts, Window};

/// A data function: built once from its parameters, then run on every window.
///
/// The agent keeps one instance (one wasm instance, one value of your type) from window to
/// window: `execute` takes `&self`, so state that should survive between windows lives in
/// a `Cell` or `RefCell` field. The instance is rebuilt from the parameters (so that state
/// is lost) after a trap, a panic, a spent fuel budget or a missed deadline, when the
/// function is swapped, and when the agent restarts.
///
/// `I` and `O` default to the SDK's [`Window`] and [`Verdicts`], which is what the agent
/// sends and reads. Other serde types run only in the native
/// [`testing`](crate::testing) harness; a wasm build registered with them is refused at
/// `init` (see [`register!`](crate::register)).
pub trait Function<I = Window, O = Verdicts>: Sized
where
    I: DeserializeOwned,
    O: Serialize,
{
    /// Builds the function from its named parameters, refusing bad ones with a message
    /// that names the parameter.
    fn from_params(params: &Params) -> Result<Self, Error>;

    /// The shortest window this configuration can judge.
    fn min_window_len(&self) -> usize {
        1
    }

    /// Judges one window. An `Err` is reported by the agent; it never stops the agent.
    fn execute(&self, input: I) -> Result<O, Error>;
}
