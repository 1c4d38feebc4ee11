//! `edge-agent new NAME`: a function crate to start from, written from templates built
//! into the binary (`agent/templates/function`), so it works offline and matches the SDK
//! this agent speaks: the README's example function, its own `wasm` profile and 64 KiB
//! stack (a crate outside this repository gets neither from us), a native test through the
//! SDK's harness, and a small CSV to replay.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::args::{ArgList, UsageError};
use super::fail::{Context as _, Result};

/// Where the SDK sits in the checkout this binary was built from: the default for
/// `--sdk` when it is still there (a developer's build), never on a Pi.
const CHECKOUT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../functions/api");

/// The crate's files: where each goes, and its template.
const FILES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../templates/function/Cargo.toml"),
    ),
    (
        ".cargo/config.toml",
        include_str!("../../templates/function/.cargo/config.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/function/src/lib.rs"),
    ),
    (
        "tests/native.rs",
        include_str!("../../templates/function/tests/native.rs"),
    ),
    (
        "samples.csv",
        include_str!("../../templates/function/samples.csv"),
    ),
    (
        ".gitignore",
        include_str!("../../templates/function/gitignore"),
    ),
];

pub fn help() -> String {
    "\
Write a new function crate: an example function, a native test, a CSV to replay

Usage: edge-agent new [OPTIONS] <NAME>

Arguments:
  <NAME>  The crate's name, and the directory it is written to (must not exist)

Options:
      --sdk <DIR>  The SDK: functions/api in a clone of edge-agent [default: the
                   checkout this agent was built from, if it is still there]
  -h, --help       Print help
"
    .to_owned()
}

pub struct NewArgs {
    name: String,
    sdk: Option<PathBuf>,
}

impl NewArgs {
    pub fn parse(mut args: ArgList) -> Result<Self, UsageError> {
        let sdk = args.value("sdk")?.map(PathBuf::from);
        let name = args
            .positional()
            .ok_or_else(|| UsageError::new("the function's <NAME> is required"))?;
        args.finish()?;
        check_name(&name)?;
        Ok(Self { name, sdk })
    }
}

/// A name cargo takes as a package name and that is a plain directory name here.
fn check_name(name: &str) -> Result<(), UsageError> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_well
        || name.len() > 64
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(UsageError::new(format!(
            "invalid value {name:?} for <NAME>: a letter, then letters, digits, '-' or '_' (at most 64)"
        )));
    }
    Ok(())
}

pub fn new(args: NewArgs) -> Result<ExitCode> {
    let sdk = sdk_dir(args.sdk.as_deref())?;
    let dir = Path::new(&args.name);
    let crate_name = args.name.replace('-', "_");
    std::fs::create_dir(dir).with_context(|| format!("cannot create {}", args.name))?;
    for (path, template) in FILES {
        let text = template
            .replace("{name}", &args.name)
            .replace("{crate_name}", &crate_name)
            .replace("{sdk}", &toml_escape(&sdk));
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let wasm = format!("target/wasm32-unknown-unknown/wasm/{crate_name}.wasm");
    println!(
        "\
Wrote {name}/, a function crate on the SDK in {sdk}.

  cd {name}
  cargo test   # the native test, through the SDK's harness

Build, check, replay (the wasm target once: rustup target add wasm32-unknown-unknown):

  cargo build --profile wasm --target wasm32-unknown-unknown
  edge-agent check {wasm}
  edge-agent replay --function {wasm} --input samples.csv --param limit=30",
        name = args.name,
    );
    Ok(ExitCode::SUCCESS)
}

/// `--sdk`, or the checkout's, as an absolute path to a directory holding the SDK's
/// Cargo.toml.
fn sdk_dir(given: Option<&Path>) -> Result<String> {
    let candidate = match given {
        Some(dir) => dir.to_path_buf(),
        None if Path::new(CHECKOUT_SDK).is_dir() => PathBuf::from(CHECKOUT_SDK),
        None => bail!(
            "where is the SDK? This agent was not built from a checkout that is still here: pass --sdk with the functions/api directory of a clone of edge-agent"
        ),
    };
    let dir = candidate
        .canonicalize()
        .with_context(|| format!("cannot use --sdk {}", candidate.display()))?;
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
    if !manifest.contains("name = \"edge-function\"") {
        bail!(
            "{} is not the SDK: it has no Cargo.toml for the edge-function crate",
            dir.display()
        );
    }
    let text = dir.to_str().map(str::to_owned);
    match text {
        Some(text) if !text.chars().any(char::is_control) => Ok(text),
        _ => bail!(
            "the SDK's path {} cannot be written in Cargo.toml",
            dir.display()
        ),
    }
}

/// The inside of a TOML basic string.
fn toml_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_crate_names_and_plain_directories() {
        for good in ["my-function", "f", "a_b2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "2fast", "../x", "a/b", "a b", "-a", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(toml_escape(r#"C:\a"b"#), r#"C:\\a\"b"#);
    }
}
