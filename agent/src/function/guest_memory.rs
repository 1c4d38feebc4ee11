//! What both ABIs need of a live guest (it imports only the leaf `guest_call`): its memory and typed exports, bound with our
//! errors, and ranges of its memory checked before the host reads or writes them.

use std::ops::Range;

use wasmi::{Instance, Memory, Store, TypedFunc, WasmParams, WasmResults};

use super::FunctionError;
use super::guest_call::HostState;

pub(super) fn memory(
    store: &Store<HostState>,
    instance: &Instance,
) -> Result<Memory, FunctionError> {
    instance
        .get_memory(store, "memory")
        .ok_or(FunctionError::MissingExport {
            name: "memory",
            expected: "a linear memory",
        })
}

pub(super) fn export<P: WasmParams, R: WasmResults>(
    store: &Store<HostState>,
    instance: &Instance,
    name: &str,
) -> Result<TypedFunc<P, R>, FunctionError> {
    instance
        .get_typed_func(store, name)
        .map_err(|e| FunctionError::Instantiate(e.to_string()))
}

/// The guest's `ptr..ptr+len` as a range of its memory, or why it is not one (a null
/// pointer counts as outside unless nothing is asked for).
pub(super) fn checked_range(
    memory: &Memory,
    store: &Store<HostState>,
    ptr: u32,
    len: u32,
    what: &str,
) -> Result<Range<usize>, FunctionError> {
    let size = memory.data_size(store);
    let start = ptr as usize;
    match start.checked_add(len as usize) {
        Some(end) if end <= size && (ptr != 0 || len == 0) => Ok(start..end),
        _ => Err(FunctionError::BadOutput(format!(
            "{what} at {ptr:#x}+{len} lies outside the guest's {size} bytes of memory"
        ))),
    }
}
