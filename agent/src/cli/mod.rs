//! The binary's subcommands, one file each: wiring and printing only; what they decide
//! lives in the library, where it is tested.

pub mod check;
pub mod manifest;
pub mod replay;
pub mod run;

/// `--param NAME=VALUE`.
pub(crate) fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}
