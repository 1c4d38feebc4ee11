//! A compiled `.wasm` function: read within its size cap from a regular file only,
//! its shape checked ([`shape`](super::shape)), validated by wasmi with custom sections
//! dropped, its exports checked, its ABI picked from them, and identified by the sha256
//! of its bytes. How fuel is priced (so it tracks time) is set here too.

use crate::support::digest::sha256_hex;
use std::path::Path;
use std::sync::Arc;

use wasmi::{
    CompilationMode, Config, CustomFuelCosts, EnforcedLimits, Engine, ExternType, FuncType, Module,
    OperatorCost, ValType,
};

use crate::support::file::read_regular_capped;

use super::FunctionError;
use super::error::guest_text;
use super::limits::MAX_MODULE_BYTES;
use super::shape::{self, START_EXPORT};

/// How the host talks to a module, chosen from what the module exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abi {
    /// The `edge-function` SDK: postcard in and out, `edge_abi_version` exported.
    Edge,
    /// Punch's FaaS (`punch_api` 1.0): NUL-terminated JSON in and out through `apply`, no
    /// parameters.
    Punch,
}

impl Abi {
    pub fn name(self) -> &'static str {
        match self {
            Abi::Edge => "edge-function v1",
            Abi::Punch => "punch_api 1.0",
        }
    }
}

/// A module ready to be instantiated. Each module has its own [`Engine`], so dropping
/// the module after a hot swap frees everything the old code held.
#[derive(Clone)]
pub struct FunctionModule {
    module: Module,
    sha256: String,
    abi: Abi,
    /// The file as read, kept for the last-known-good copy (at most [`MAX_MODULE_BYTES`]).
    bytes: Arc<[u8]>,
    /// Whether the module's `start` function was moved to [`START_EXPORT`].
    has_start: bool,
}

impl FunctionModule {
    /// Reads and compiles `path`. Only a regular file of at most [`MAX_MODULE_BYTES`] is
    /// read: it is opened without blocking (a FIFO would otherwise wait for a writer
    /// forever), checked on the opened descriptor, and read through a cap.
    pub fn load(path: &Path) -> Result<Self, FunctionError> {
        let bytes =
            read_regular_capped(path, MAX_MODULE_BYTES).map_err(|reason| FunctionError::Read {
                path: guest_text(&path.display().to_string()),
                reason,
            })?;
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FunctionError> {
        if bytes.len() as u64 > MAX_MODULE_BYTES {
            return Err(FunctionError::Shape(format!(
                "the module is {} bytes; the most the agent loads is {MAX_MODULE_BYTES}",
                bytes.len()
            )));
        }
        let (shape, rewritten) = shape::inspect(bytes)?;
        let engine = Engine::new(&metered_config());
        let module = Module::new(&engine, rewritten.as_deref().unwrap_or(bytes))
            .map_err(|e| FunctionError::NotWasm(guest_text(&e.to_string())))?;

        // `edge.log` with its one signature is the only import there is (see `guest_log`).
        let imports: Vec<String> = module
            .imports()
            .filter(|import| {
                let log = FuncType::new([ValType::I32, ValType::I32, ValType::I32], []);
                !(import.module() == "edge"
                    && import.name() == "log"
                    && matches!(import.ty(), ExternType::Func(ty) if *ty == log))
            })
            .map(|import| format!("`{}.{}`", import.module(), import.name()))
            .collect();
        if !imports.is_empty() {
            return Err(FunctionError::Imports(guest_text(&imports.join(", "))));
        }

        let abi = pick_abi(&module)?;
        check_exports(&module, abi)?;
        Ok(Self {
            module,
            sha256: sha256_hex(bytes),
            abi,
            bytes: Arc::from(bytes),
            has_start: shape.start.is_some(),
        })
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn abi(&self) -> Abi {
        self.abi
    }

    pub fn size_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The file's bytes, as read.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The module's exports by name, as the `check` command lists them: guest text,
    /// escaped and clipped.
    pub fn export_names(&self) -> Vec<String> {
        self.module
            .exports()
            .filter(|export| export.name() != START_EXPORT)
            .map(|export| guest_text(export.name()))
            .collect()
    }

    /// Whether the module has a `start` function (run, bounded, before anything else).
    pub fn has_start(&self) -> bool {
        self.has_start
    }

    pub(super) fn module(&self) -> &Module {
        &self.module
    }
}

/// Fuel is the sandbox's clock, so it should track time. With one unit per operator a
/// tight loop (`loop … br_if`) runs at half the fuel rate of straight-line code, as the
/// interpreter's per-block overhead goes unpaid; charging branches more evens the rates,
/// so the same budget stops a spinning guest as fast as it lets real work finish.
const BRANCH_COST: u8 = 4;

/// wasmi charges one unit per 64 bytes that `memory.fill`/`copy`/`init` (and the table
/// forms) move, while a unit of ordinary code is a nanosecond or more: a fill of 64
/// bytes is far cheaper than that, but not 64 times cheaper on a Pi's memory bus.
/// Measured (`cargo bench -p edge-tests --bench function`, "bulk"), 8 bytes per unit
/// keeps a fill-heavy guest's time per unit within a small factor of ordinary code.
const BYTES_COPIED_PER_FUEL: u32 = 8;

/// A call with `call_indirect` or `call` costs frame set-up the operator count misses.
const CALL_COST: u8 = 8;

/// `memory.grow` and `table.grow` at the most an operator can cost. Besides what growing
/// costs, wasmi 2's tail-call dispatch does not tail-call out of these two handlers: each
/// one executed leaves a host stack frame (176 bytes on x86_64) until the call pauses or
/// ends, so a guest looping on a failing grow overflowed the host's stack (SIGABRT) within
/// one budget. At 255 units, one fuel slice ([`FUEL_SLICE`](super::guest_call)) holds at
/// most ~4,000 of them (~700 KB); [`MAX_GROWS_PER_FUNCTION`] bounds a single block that
/// costs more than a slice.
const GROW_COST: u8 = u8::MAX;

fn metered_config() -> Config {
    let costs = OperatorCost {
        br: BRANCH_COST,
        br_if: BRANCH_COST,
        br_table: BRANCH_COST,
        call: CALL_COST,
        call_indirect: CALL_COST,
        memory_grow: GROW_COST,
        table_grow: GROW_COST,
        ..OperatorCost::default()
    };
    let mut config = Config::default();
    config
        .consume_fuel(true)
        .operator_cost(costs)
        .fuel_cost(CustomFuelCosts {
            bytes_copied_per_fuel: BYTES_COPIED_PER_FUEL,
            fuel_per_bytes_translated: 7,
            fuel_per_bytes_validated: 2,
        })
        // Translated at load, on the watcher's thread, not lazily inside a guest call:
        // there wasmi charges translation to the call's fuel, and running out of a slice
        // while translating is a trap, not a pause (wasmi 2.0), so a big function failed
        // its first call whenever it landed near the end of a slice.
        .compilation_mode(CompilationMode::Eager)
        // Kept sections would be kept in memory for as long as the module runs.
        .ignore_custom_sections(true)
        .wasm_multi_memory(false)
        .enforced_limits(EnforcedLimits::strict());
    config
}

/// `edge_abi_version` is ours alone, so it wins. Otherwise `apply` marks a Punch module:
/// its entry point alone picks the ABI, so a Punch module missing `allocate` or
/// `deallocate` is told which export it lacks rather than that it is unknown.
fn pick_abi(module: &Module) -> Result<Abi, FunctionError> {
    if module.get_export("edge_abi_version").is_some() {
        Ok(Abi::Edge)
    } else if module.get_export("apply").is_some() {
        Ok(Abi::Punch)
    } else {
        Err(FunctionError::UnknownAbi(
            "it exports neither `edge_abi_version` (the edge-function SDK's `register!`) nor `apply` (punch_api's `register!`)".into(),
        ))
    }
}

/// An export the host calls, with the signature it calls it with.
struct Expected {
    name: &'static str,
    params: &'static [ValType],
    results: &'static [ValType],
    signature: &'static str,
}

const EDGE_EXPORTS: &[Expected] = &[
    Expected {
        name: "edge_abi_version",
        params: &[],
        results: &[ValType::I32],
        signature: "func () -> i32",
    },
    Expected {
        name: "alloc",
        params: &[ValType::I32],
        results: &[ValType::I32],
        signature: "func (i32) -> i32",
    },
    Expected {
        name: "dealloc",
        params: &[ValType::I32, ValType::I32],
        results: &[],
        signature: "func (i32, i32)",
    },
    Expected {
        name: "init",
        params: &[ValType::I32, ValType::I32],
        results: &[ValType::I64],
        signature: "func (i32, i32) -> i64",
    },
    Expected {
        name: "execute",
        params: &[ValType::I32, ValType::I32],
        results: &[ValType::I64],
        signature: "func (i32, i32) -> i64",
    },
];

/// punch_api 1.0 on wasm32: `usize` and pointers are `i32`.
const PUNCH_EXPORTS: &[Expected] = &[
    Expected {
        name: "apply",
        params: &[ValType::I32],
        results: &[ValType::I32],
        signature: "func (i32) -> i32",
    },
    Expected {
        name: "allocate",
        params: &[ValType::I32],
        results: &[ValType::I32],
        signature: "func (i32) -> i32",
    },
    Expected {
        name: "deallocate",
        params: &[ValType::I32, ValType::I32],
        results: &[],
        signature: "func (i32, i32)",
    },
];

fn check_exports(module: &Module, abi: Abi) -> Result<(), FunctionError> {
    let expected_funcs = match abi {
        Abi::Edge => EDGE_EXPORTS,
        Abi::Punch => PUNCH_EXPORTS,
    };
    if !matches!(module.get_export("memory"), Some(ExternType::Memory(_))) {
        return Err(FunctionError::MissingExport {
            name: "memory",
            expected: "a linear memory",
        });
    }
    for expected in expected_funcs {
        let matches = match module.get_export(expected.name) {
            Some(ExternType::Func(ty)) => signature_is(&ty, expected),
            _ => false,
        };
        if !matches {
            return Err(FunctionError::MissingExport {
                name: expected.name,
                expected: expected.signature,
            });
        }
    }
    Ok(())
}

fn signature_is(ty: &FuncType, expected: &Expected) -> bool {
    ty.params() == expected.params && ty.results() == expected.results
}
