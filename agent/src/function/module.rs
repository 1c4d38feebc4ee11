//! A compiled `.wasm` function: validated, its exports checked, its ABI picked from them,
//! and identified by the sha256 of its bytes.

use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};
use wasmi::{Config, Engine, ExternType, FuncType, Module, OperatorCost, ValType};

use super::FunctionError;

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
    size_bytes: usize,
}

impl FunctionModule {
    pub fn load(path: &Path) -> Result<Self, FunctionError> {
        let bytes = std::fs::read(path).map_err(|e| FunctionError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FunctionError> {
        let engine = Engine::new(&metered_config());
        let module =
            Module::new(&engine, bytes).map_err(|e| FunctionError::NotWasm(e.to_string()))?;

        let imports: Vec<String> = module
            .imports()
            .map(|import| format!("`{}.{}`", import.module(), import.name()))
            .collect();
        if !imports.is_empty() {
            return Err(FunctionError::Imports(imports.join(", ")));
        }

        let abi = pick_abi(&module)?;
        check_exports(&module, abi)?;
        Ok(Self {
            module,
            sha256: sha256_hex(bytes),
            abi,
            size_bytes: bytes.len(),
        })
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn abi(&self) -> Abi {
        self.abi
    }

    pub fn size_bytes(&self) -> usize {
        self.size_bytes
    }

    /// The module's exports by name, as the `check` command lists them.
    pub fn export_names(&self) -> Vec<String> {
        self.module
            .exports()
            .map(|export| export.name().to_owned())
            .collect()
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

fn metered_config() -> Config {
    let costs = OperatorCost {
        br: BRANCH_COST,
        br_if: BRANCH_COST,
        br_table: BRANCH_COST,
        ..OperatorCost::default()
    };
    let mut config = Config::default();
    config.consume_fuel(true).operator_cost(costs);
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

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}
