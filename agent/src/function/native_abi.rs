//! The edge-function ABI (version 1): postcard across linear memory.
//!
//! The host asks the guest for a buffer (`alloc`), writes the encoded input into it, and
//! calls `init` or `execute`, which answer `ptr << 32 | len` of an encoded
//! `Result<_, Error>`. The answer is read back after checking that it lies inside memory.

use edge_function::{ABI_VERSION, InitInfo, Params, Verdicts, Window};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasmi::{Instance, Memory, Store, TypedFunc};

use super::FunctionError;
use super::guest_memory::{checked_range, export, memory};
use super::host::{GuestCall, HostState};

/// The typed exports of one live instance.
pub(super) struct EdgeGuest {
    memory: Memory,
    alloc: TypedFunc<u32, u32>,
    init: TypedFunc<(u32, u32), u64>,
    execute: TypedFunc<(u32, u32), u64>,
}

impl EdgeGuest {
    pub(super) fn bind(
        store: &mut Store<HostState>,
        instance: &Instance,
        call: &GuestCall,
    ) -> Result<Self, FunctionError> {
        let version: TypedFunc<(), u32> = export(store, instance, "edge_abi_version")?;
        let found = call.run(store, |store| version.call(store, ()))?;
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
        self.round_trip(store, call, self.init, params)
    }

    pub(super) fn execute(
        &self,
        store: &mut Store<HostState>,
        call: &GuestCall,
        window: &Window,
    ) -> Result<Verdicts, FunctionError> {
        let verdicts: Verdicts = self.round_trip(store, call, self.execute, window)?;
        if verdicts.len() != window.len() {
            return Err(FunctionError::BadOutput(format!(
                "{} verdicts for a window of {} samples",
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
    ) -> Result<O, FunctionError> {
        let encoded =
            postcard::to_allocvec(input).map_err(|e| FunctionError::Encode(e.to_string()))?;
        let len = u32::try_from(encoded.len()).map_err(|_| FunctionError::MemoryLimit {
            limit_bytes: store.data().max_memory_bytes,
        })?;
        let ptr = call.run(store, |store| self.alloc.call(store, len))?;
        checked_range(&self.memory, store, ptr, len, "alloc")?;
        self.memory
            .write(&mut *store, ptr as usize, &encoded)
            .map_err(|e| {
                FunctionError::BadOutput(format!("alloc returned unusable memory: {e}"))
            })?;

        let packed = call.run(store, |store| entry.call(store, (ptr, len)))?;
        let (out_ptr, out_len) = ((packed >> 32) as u32, packed as u32);
        let range = checked_range(&self.memory, store, out_ptr, out_len, "the answer")?;
        let answer = &self.memory.data(&*store)[range];
        postcard::from_bytes::<Result<O, edge_function::Error>>(answer)
            .map_err(|e| FunctionError::BadOutput(format!("answer does not decode: {e}")))?
            .map_err(|e| FunctionError::Function(e.message))
    }
}
