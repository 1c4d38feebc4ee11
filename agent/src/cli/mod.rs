//! The binary's subcommands, one file each: wiring and printing only; what they decide
//! lives in the library, where it is tested. `args` reads the command line.

pub mod args;
#[macro_use]
pub mod fail;
pub mod check;
#[cfg(feature = "publish")]
pub mod manifest;
#[cfg(feature = "scaffold")]
pub mod new;
pub mod replay;
pub mod run;
#[cfg(feature = "tune")]
pub mod tune;
