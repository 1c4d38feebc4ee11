//! Everything that can go wrong between the agent and a function, one variant per cause.
//! Text the guest chose (its messages, its import names) is escaped and clipped by
//! [`guest_text`] before it is put in a variant, so every `Display` of these is safe to
//! print and bounded.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum FunctionError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },

    #[error("not a valid WebAssembly module: {0}")]
    NotWasm(String),

    #[error("refused before running: {0}")]
    Shape(String),

    #[error("not an edge-agent function: {0}")]
    UnknownAbi(String),

    #[error("export `{name}` is missing or has the wrong type (expected {expected})")]
    MissingExport {
        name: &'static str,
        expected: &'static str,
    },

    #[error(
        "module imports {0}, but a function may import only `edge.log` (func (i32, i32, i32)), the SDK's log"
    )]
    Imports(String),

    #[error("ABI version {found} is not supported (this agent speaks version {supported})")]
    AbiVersion { found: u32, supported: u32 },

    #[error("cannot instantiate: {0}")]
    Instantiate(String),

    #[error("input does not encode: {0}")]
    Encode(String),

    #[error("out of fuel: the call used its whole budget of {budget} units")]
    OutOfFuel { budget: u64 },

    #[error("past the deadline: the window's guest calls took longer than {limit_ms} ms")]
    Deadline { limit_ms: u64 },

    #[error("abandoned: the agent is stopping")]
    Abandoned,

    #[error("memory limit of {limit_bytes} bytes reached")]
    MemoryLimit { limit_bytes: usize },

    #[error("trapped: {0}")]
    Trap(String),

    #[error("bad output: {0}")]
    BadOutput(String),

    #[error("the function refused: {0}")]
    Function(String),

    #[error("{abi} functions take no parameters, but got {names}")]
    ParamsNotAccepted { abi: &'static str, names: String },

    #[error("the function's punch_api glue gave up: {0}")]
    PunchGlue(PunchGlueError),
}

/// The three failures punch_api 1.0 reports with a small integer in place of the result
/// pointer. Each happens before or after the function's own code, never inside it: the
/// function did not judge the window.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum PunchGlueError {
    /// Pointer 1.
    #[error("the input was not valid UTF-8 (result pointer 1)")]
    InputNotUtf8,
    /// Pointer 2: the function's input type does not match what the agent sends.
    #[error(
        "the input JSON does not deserialise into the function's input type (result pointer 2); the agent sends {{\"air_quality\": [number, ...], \"timestamp\": [\"RFC 3339 UTC\", ...]}}"
    )]
    InputNotDeserialisable,
    /// Pointer 3.
    #[error("the function's output does not serialise to JSON (result pointer 3)")]
    OutputNotSerialisable,
}

impl FunctionError {
    /// A short stable name for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::NotWasm(_) => "not_wasm",
            Self::Shape(_) => "shape",
            Self::UnknownAbi(_) => "unknown_abi",
            Self::MissingExport { .. } => "missing_export",
            Self::Imports(_) => "imports",
            Self::AbiVersion { .. } => "abi_version",
            Self::Instantiate(_) => "instantiate",
            Self::Encode(_) => "encode",
            Self::OutOfFuel { .. } => "out_of_fuel",
            Self::Deadline { .. } => "deadline",
            Self::Abandoned => "abandoned",
            Self::MemoryLimit { .. } => "memory_limit",
            Self::Trap(_) => "trap",
            Self::BadOutput(_) => "bad_output",
            Self::Function(_) => "function",
            Self::ParamsNotAccepted { .. } => "params_not_accepted",
            Self::PunchGlue(_) => "punch_glue",
        }
    }

    /// Whether the guest instance is unusable afterwards and must be rebuilt: after a
    /// trap its memory and globals may be half-updated.
    pub fn poisons_instance(&self) -> bool {
        matches!(
            self,
            Self::OutOfFuel { .. }
                | Self::Deadline { .. }
                | Self::Abandoned
                | Self::MemoryLimit { .. }
                | Self::Trap(_)
                | Self::BadOutput(_)
        )
    }
}

/// Text the guest chose, made safe to keep and print: control characters escaped, at
/// most [`MAX_UNTRUSTED_CHARS`](crate::support::text::MAX_UNTRUSTED_CHARS) characters
/// kept. One limit for both ABIs.
pub(super) fn guest_text(text: &str) -> String {
    crate::support::text::untrusted(text)
}
