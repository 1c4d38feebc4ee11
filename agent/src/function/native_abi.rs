//! The edge-function ABI (version 1): postcard across linear memory.
//!
//! The host asks the guest for a buffer (`alloc`), writes the encoded input into it, and
//! calls `init` or `execute`, which answer `ptr << 32 | len` of an encoded
//! `Result<_, Error>`. The answer is read back after checking that it lies inside memory
//! and is no longer than the window's verdicts can be plus [`MAX_ANSWER_OVERHEAD_BYTES`];
//! a verdict list whose length prefix does not match the window is refused before any
//! of it is decoded, and an error's message is escaped and clipped.

use edge_function::{ABI_VERSION, InitInfo, Params, Verdicts, Window};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasmi::{Instance, Memory, Store, TypedFunc};

use super::FunctionError;
use super::error::guest_text;
use super::guest_call::{GuestCall, HostState};
use super::guest_memory::{checked_range, export, memory};
use super::limits::MAX_ANSWER_OVERHEAD_BYTES;

/// The most bytes one verdict takes in postcard: the flag, the option's tag, an `f32`.
const MAX_VERDICT_BYTES: usize = 6;

/// Said with a count that does not match: the usual cause is a function answering per
/// window rather than per sample (or, with an SDK before 1.1, registered for other
/// types, which the SDK now refuses at `init`).
const VERDICTS_HINT: &str = " (one `Verdict` per sample of the `Window`, in order)";

/// The typed exports of one live instance.
pub(super) struct EdgeGuest {
    memory: Memory,
    alloc: TypedFunc<u32, u32>,
    init: TypedFunc<(u32, u32), u64>,
    execute: TypedFunc<(u32, u32), u64>,
}

impl EdgeGuest {
    pub(super) fn memory(&self) -> Memory {
        self.memory
    }

    pub(super) fn bind(
        store: &mut Store<HostState>,
        instance: &Instance,
        call: &GuestCall,
    ) -> Result<Self, FunctionError> {
        let version: TypedFunc<(), u32> = export(store, instance, "edge_abi_version")?;
        let found = call.run(store, &version, ())?;
        if found != ABI_VERSION {
            return Err(FunctionError::AbiVersion {
                found,
                supported: ABI_VERSION,
            });
        }
        Ok(Self {
            memory: memory(store, instance)?,
            alloc: export(store, instance, "alloc")?,
            init: export(store, instance, "init")?,
            execute: export(store, instance, "execute")?,
        })
    }

    pub(super) fn init(
        &self,
        store: &mut Store<HostState>,
        call: &GuestCall,
        params: &Params,
    ) -> Result<InitInfo, FunctionError> {
        self.round_trip(store, call, self.init, params, None)
    }

    pub(super) fn execute(
        &self,
        store: &mut Store<HostState>,
        call: &GuestCall,
        window: &Window,
    ) -> Result<Verdicts, FunctionError> {
        let verdicts: Verdicts =
            self.round_trip(store, call, self.execute, window, Some(window.len()))?;
        if verdicts.len() != window.len() {
            return Err(FunctionError::BadOutput(format!(
                "{} verdicts for a window of {} samples{VERDICTS_HINT}",
                verdicts.len(),
                window.len()
            )));
        }
        Ok(verdicts)
    }

    fn round_trip<I: Serialize, O: DeserializeOwned>(
        &self,
        store: &mut Store<HostState>,
        call: &GuestCall,
        entry: TypedFunc<(u32, u32), u64>,
        input: &I,
        list_len: Option<usize>,
    ) -> Result<O, FunctionError> {
        let encoded =
            postcard::to_allocvec(input).map_err(|e| FunctionError::Encode(e.to_string()))?;
        let len = u32::try_from(encoded.len()).map_err(|_| FunctionError::MemoryLimit {
            limit_bytes: store.data().max_memory_bytes(),
        })?;
        let ptr = call.run(store, &self.alloc, len)?;
        checked_range(&self.memory, store, ptr, len, "alloc")?;
        self.memory
            .write(&mut *store, ptr as usize, &encoded)
            .map_err(|e| {
                FunctionError::BadOutput(format!("alloc returned unusable memory: {e}"))
            })?;

        let packed = call.run(store, &entry, (ptr, len))?;
        let (out_ptr, out_len) = ((packed >> 32) as u32, packed as u32);
        let max_len = list_len
            .unwrap_or(0)
            .saturating_mul(MAX_VERDICT_BYTES)
            .saturating_add(MAX_ANSWER_OVERHEAD_BYTES);
        if out_len as usize > max_len {
            return Err(FunctionError::BadOutput(format!(
                "the answer is {out_len} bytes; the most read for this call is {max_len}"
            )));
        }
        let range = checked_range(&self.memory, store, out_ptr, out_len, "the answer")?;
        let answer = self.memory.data(&*store).get(range).unwrap_or_default();
        if let (Some(expected), Some(found)) = (list_len, ok_list_len(answer))
            && found != expected as u64
        {
            return Err(FunctionError::BadOutput(format!(
                "{found} verdicts for a window of {expected} samples{VERDICTS_HINT}"
            )));
        }
        postcard::from_bytes::<Result<O, edge_function::Error>>(answer)
            .map_err(|e| FunctionError::BadOutput(format!("answer does not decode: {e}")))?
            .map_err(|e| FunctionError::Function(guest_text(&e.message)))
    }
}

/// The length prefix of the list in a postcard `Ok(list)`, read without decoding the
/// list: the variant index 0, then the length as a varint.
fn ok_list_len(answer: &[u8]) -> Option<u64> {
    let (&variant, rest) = answer.split_first()?;
    if variant != 0 {
        return None;
    }
    let mut value: u64 = 0;
    for (index, &byte) in rest.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f).checked_shl(7 * index as u32)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_length_is_read_from_the_prefix() {
        let answer = postcard::to_allocvec(&Ok::<Verdicts, edge_function::Error>(vec![
                Default::default(
                );
                300
            ]))
        .unwrap();
        assert_eq!(ok_list_len(&answer), Some(300));
        assert_eq!(
            ok_list_len(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            Some(u64::from(u32::MAX))
        );
        assert_eq!(ok_list_len(&[1, 5]), None);
        assert_eq!(ok_list_len(&[0, 0x80]), None);
    }
}
