//! The shape of a configuration check, shared by every section that lives with its stage
//! (`function/config.rs`, `ship/config.rs`, `registry/config.rs`, …): a refused key is
//! `(dotted key, reason)`, and `config.rs` adds the file and the line.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::path::Path;

/// Why a key is refused: the key (`window.hop`) and the reason.
pub type Refusal = (&'static str, String);

/// `value` must lie in `range`.
pub fn within<T: PartialOrd + Display>(
    key: &'static str,
    value: T,
    range: &RangeInclusive<T>,
) -> Result<(), Refusal> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err((
            key,
            format!("{value} is outside {}..={}", range.start(), range.end()),
        ))
    }
}

/// A file the agent will create: not an empty path (no file at all: every write to it
/// would fail while the agent ran on), its folder must be there (the state directory
/// excepted, which the agent makes), and the path must not be a folder.
pub fn creatable(key: &'static str, path: &Path) -> Result<(), Refusal> {
    if path.as_os_str().is_empty() {
        return Err((key, format!("{key}: is empty; name a file")));
    }
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => Err((
            key,
            format!("{key}: the folder {} does not exist", parent.display()),
        )),
        _ if path.is_dir() => Err((key, format!("{key}: {} is a folder", path.display()))),
        _ => Ok(()),
    }
}
