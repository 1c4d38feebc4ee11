//! Run a function natively, without wasm, through the same encode → call → decode path
//! the wasm exports use: what passes here differs from the wasm build only in the compiler.

use core::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::guest::{Slot, execute_bytes, init_bytes};
use crate::{Error, Function, InitInfo, Params, Verdicts, Window};

/// A function instance driven natively, as the agent drives the wasm build.
pub struct Harness<F, I = Window, O = Verdicts> {
    slot: Slot<F>,
    info: InitInfo,
    io: PhantomData<fn(I) -> O>,
}

impl<F, I, O> Harness<F, I, O>
where
    F: Function<I, O>,
    I: Serialize + DeserializeOwned,
    O: Serialize + DeserializeOwned,
{
    /// Builds the function from `params`, as the agent's `init` call does.
    pub fn new(params: &Params) -> Result<Self, Error> {
        let slot = Slot::new(None);
        let encoded = postcard::to_allocvec(params)
            .map_err(|e| Error::new(format!("parameters do not encode: {e}")))?;
        let info = decode::<InitInfo>(&init_bytes::<F, I, O>(&slot, &encoded))?;
        Ok(Self {
            slot,
            info,
            io: PhantomData,
        })
    }

    pub fn min_window_len(&self) -> usize {
        self.info.min_window_len as usize
    }

    /// Runs the function on one input, as the agent's `execute` call does.
    pub fn execute(&self, input: &I) -> Result<O, Error> {
        let encoded = postcard::to_allocvec(input)
            .map_err(|e| Error::new(format!("input does not encode: {e}")))?;
        decode::<O>(&execute_bytes::<F, I, O>(&self.slot, &encoded))
    }
}

fn decode<T: DeserializeOwned>(answer: &[u8]) -> Result<T, Error> {
    postcard::from_bytes::<Result<T, Error>>(answer)
        .map_err(|e| Error::new(format!("answer does not decode: {e}")))?
}
