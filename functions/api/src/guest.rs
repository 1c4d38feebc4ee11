//! The glue [`register!`](crate::register) expands to; not for function authors.
//!
//! The byte-level halves ([`init_bytes`], [`execute_bytes`]) are shared with the native
//! [`testing`](crate::testing) harness, so a native test exercises the same decode, call
//! and encode path as the wasm exports. Only the pointer handling is wasm-specific.

use core::cell::RefCell;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Function, InitInfo, Params};

/// Where a registered function lives between calls: one instance per guest.
pub type Slot<F> = RefCell<Option<F>>;

/// Builds the function from postcard [`Params`]; answers a postcard
/// `Result<InitInfo, Error>`.
pub fn init_bytes<F, I, O>(slot: &Slot<F>, params: &[u8]) -> Vec<u8>
where
    F: Function<I, O>,
    I: DeserializeOwned,
    O: Serialize,
{
    let result = postcard::from_bytes::<Params>(params)
        .map_err(|e| Error::new(format!("parameters do not decode: {e}")))
        .and_then(|params| F::from_params(&params))
        .map(|function| {
            let info = InitInfo {
                min_window_len: u32::try_from(function.min_window_len()).unwrap_or(u32::MAX),
            };
            *slot.borrow_mut() = Some(function);
            info
        });
    encode(&result)
}

/// Runs the function on one postcard-encoded input; answers a postcard
/// `Result<O, Error>`. A guest that was never `init`ed runs with default parameters.
pub fn execute_bytes<F, I, O>(slot: &Slot<F>, input: &[u8]) -> Vec<u8>
where
    F: Function<I, O>,
    I: DeserializeOwned,
    O: Serialize,
{
    let result = postcard::from_bytes::<I>(input)
        .map_err(|e| Error::new(format!("input does not decode: {e}")))
        .and_then(|input| {
            let mut slot = slot.borrow_mut();
            let function = match slot.take() {
                Some(function) => function,
                None => F::from_params(&Params::default())?,
            };
            let output = function.execute(input);
            *slot = Some(function);
            output
        });
    encode(&result)
}

fn encode<T: Serialize>(result: &Result<T, Error>) -> Vec<u8> {
    postcard::to_allocvec(result).unwrap_or_else(|e| {
        // `Err` has the same encoding whatever the `Ok` type, so the host still decodes it.
        let fallback: Result<(), Error> = Err(Error::new(format!("output does not encode: {e}")));
        postcard::to_allocvec(&fallback).unwrap_or_default()
    })
}

std::thread_local! {
    /// The last answer, kept alive until the next call so the host can copy it out.
    static ANSWER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Refuses, at `init`, a function registered with an input or output other than what the
/// agent sends and reads: the agent always sends a [`Window`](crate::Window) and decodes
/// [`Verdicts`](crate::Verdicts), and postcard is not self-describing, so another type
/// would otherwise decode garbage or fail on every window with a count that means
/// nothing. The names are the compiler's, compared within one build.
pub fn agent_io<I, O>() -> Result<(), Error> {
    let (input, output) = (core::any::type_name::<I>(), core::any::type_name::<O>());
    let (window, verdicts) = (
        core::any::type_name::<crate::Window>(),
        core::any::type_name::<crate::Verdicts>(),
    );
    if input == window && output == verdicts {
        return Ok(());
    }
    Err(Error::new(format!(
        "this function is registered for `{input}` in and `{output}` out; the agent sends a `Window` and reads `Verdicts` (one per sample): register it with `register!(Type)`; other types run only natively, through `testing::Harness`"
    )))
}

/// The `init` export's answer: [`init_bytes`] for a function the agent can run.
pub fn init_export<F, I, O>(slot: &Slot<F>, params: &[u8]) -> Vec<u8>
where
    F: Function<I, O>,
    I: DeserializeOwned,
    O: Serialize,
{
    crate::log::install_panic_hook();
    match agent_io::<I, O>() {
        Ok(()) => init_bytes::<F, I, O>(slot, params),
        Err(refused) => encode::<InitInfo>(&Err(refused)),
    }
}

/// `alloc` export: a buffer of `len` bytes for the host to write input into.
pub fn alloc(len: usize) -> *mut u8 {
    let mut buffer = core::mem::ManuallyDrop::new(Vec::<u8>::with_capacity(len));
    buffer.as_mut_ptr()
}

/// `dealloc` export: frees a buffer from [`alloc`] that was not passed to a call.
#[allow(clippy::not_unsafe_ptr_arg_deref)] // The host is the only caller, through the ABI.
pub fn dealloc(ptr: *mut u8, len: usize) {
    // SAFETY: the ABI says `ptr` came from `alloc(len)` and was not passed on.
    drop(unsafe { Vec::from_raw_parts(ptr, 0, len) });
}

/// `init` and `execute` exports: take the input buffer, answer `ptr << 32 | len`.
#[allow(clippy::not_unsafe_ptr_arg_deref)] // The host is the only caller, through the ABI.
pub fn call(ptr: *mut u8, len: usize, handler: impl FnOnce(&[u8]) -> Vec<u8>) -> u64 {
    // SAFETY: the ABI says `ptr` came from `alloc(len)` and the host filled all `len` bytes.
    let input = unsafe { Vec::from_raw_parts(ptr, len, len) };
    let answer = handler(&input);
    drop(input);
    ANSWER.with(|slot| {
        let mut slot = slot.borrow_mut();
        *slot = answer;
        ((slot.as_ptr() as u64) << 32) | slot.len() as u64
    })
}

/// Generates the wasm exports for a [`Function`](crate::Function) type.
///
/// `register!(MyFunction)`: the SDK's `Window` in and `Verdicts` out, which is what the
/// agent sends and reads. `register!(MyFunction, MyInput, MyOutput)` builds, but a module
/// registered with other types is refused at `init` with a message saying so (see
/// [`agent_io`]); other types are for the native [`testing`](crate::testing) harness. The
/// exports install a panic hook that sends the panic's message to the agent
/// ([`log()`](crate::log())). On targets other than wasm it expands to nothing, so the
/// same crate builds as an rlib for native tests.
#[macro_export]
macro_rules! register {
    ($function:ty) => {
        $crate::register!($function, $crate::Window, $crate::Verdicts);
    };
    ($function:ty, $input:ty, $output:ty) => {
        #[cfg(target_family = "wasm")]
        const _: () = {
            ::std::thread_local! {
                static FUNCTION: $crate::guest::Slot<$function> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn edge_abi_version() -> u32 {
                $crate::ABI_VERSION
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn alloc(len: usize) -> *mut u8 {
                $crate::guest::alloc(len)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn dealloc(ptr: *mut u8, len: usize) {
                $crate::guest::dealloc(ptr, len)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn init(ptr: *mut u8, len: usize) -> u64 {
                $crate::guest::call(ptr, len, |params| {
                    FUNCTION.with(|slot| {
                        $crate::guest::init_export::<$function, $input, $output>(slot, params)
                    })
                })
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn execute(ptr: *mut u8, len: usize) -> u64 {
                $crate::guest::call(ptr, len, |input| {
                    FUNCTION.with(|slot| {
                        $crate::guest::execute_bytes::<$function, $input, $output>(slot, input)
                    })
                })
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Verdict, Verdicts, Window};

    struct Echo;

    impl Function<Vec<f32>, Vec<f32>> for Echo {
        fn from_params(_: &Params) -> Result<Self, Error> {
            Ok(Self)
        }

        fn execute(&self, input: Vec<f32>) -> Result<Vec<f32>, Error> {
            Ok(input)
        }
    }

    struct Calm;

    impl Function for Calm {
        fn from_params(_: &Params) -> Result<Self, Error> {
            Ok(Self)
        }

        fn execute(&self, window: Window) -> Result<Verdicts, Error> {
            Ok(vec![Verdict::flag(false); window.len()])
        }
    }

    #[test]
    fn init_refuses_types_the_agent_does_not_send_and_names_them() {
        let params = postcard::to_allocvec(&Params::new()).unwrap();
        let answer = init_export::<Echo, Vec<f32>, Vec<f32>>(&Slot::new(None), &params);
        let refused = postcard::from_bytes::<Result<InitInfo, Error>>(&answer)
            .unwrap()
            .unwrap_err();
        assert!(
            refused.message.contains("`alloc::vec::Vec<f32>` in"),
            "{refused}"
        );
        assert!(
            refused.message.contains("the agent sends a `Window`"),
            "{refused}"
        );

        let answer = init_export::<Calm, Window, Verdicts>(&Slot::new(None), &params);
        let info = postcard::from_bytes::<Result<InitInfo, Error>>(&answer).unwrap();
        assert_eq!(info, Ok(InitInfo { min_window_len: 1 }));
    }
}
