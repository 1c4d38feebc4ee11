//! The binary's subcommands that are more than a few lines.

pub mod check;
pub mod run;
