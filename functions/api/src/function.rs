//! The trait a data function implements.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Params, Verdicts, Window};

/// A data function: built once from its parameters, then run on every window.
///
/// `I` and `O` default to the SDK's [`Window`] and [`Verdicts`], which is what the agent
/// sends and reads; other serde types work with the native [`testing`](crate::testing)
/// harness and `register!(Type, Input, Output)`.
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
