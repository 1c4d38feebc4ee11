//! `edge-agent manifest`: the first of the two publishing commands (README, "Fleet:
//! registry"). Builds the registry manifest for one group from a `.wasm` and its
//! parameters, optionally on top of the manifest already published, and prints it; the
//! operator signs it with `minisign -Sm manifest.json`. The module is loaded and
//! instantiated with its parameters first, so a manifest never names a module that would
//! not start, and the window it needs is the one its `init` says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::fail::{Context, Result};
use edge_agent::function::{FunctionHost, FunctionModule, Limits};
use edge_agent::registry::Manifest;
use edge_agent::registry::manifest::{
    FORMAT, GroupEntry, MAX_MANIFEST_BYTES, ModuleRef, sha256_hex,
};
use edge_agent::support::file::read_regular_capped;
use edge_function::Params;

use super::args::{ArgList, UsageError, params};

pub fn help() -> String {
    "\
Print a registry manifest naming a function module for a group of agents; sign it with
`minisign -Sm manifest.json` (README, \"Fleet: registry\")

Usage: edge-agent manifest --function <F.wasm> --version <N> [OPTIONS]

Options:
      --function <F.wasm>     The function module to publish
      --version <N>           The manifest's version: higher than any published before
      --param <NAME=VALUE>    A function parameter; repeat for several
      --group <GROUP>         The group of agents (their `[registry] group`) [default: default]
      --fraction <F>          The share of the group's agents that take it, 0 to 1 [default: 1]
      --url <URL>             The module's URL as agents fetch it: absolute, or relative
                              to the manifest's [default: the module's file name]
      --base <manifest.json>  The published manifest to start from: its other groups are kept
  -h, --help                  Print help
"
    .to_owned()
}

pub struct ManifestArgs {
    function: PathBuf,
    params: Vec<(String, String)>,
    group: String,
    version: u64,
    fraction: f64,
    url: Option<String>,
    base: Option<PathBuf>,
}

impl ManifestArgs {
    pub fn parse(mut args: ArgList) -> Result<Self, UsageError> {
        let params = params(&mut args)?;
        let function = args
            .value("function")?
            .map(PathBuf::from)
            .ok_or_else(|| UsageError::new("--function <F.wasm> is required"))?;
        let version = args
            .parsed("version")?
            .ok_or_else(|| UsageError::new("--version <N> is required"))?;
        let group = args.value("group")?.unwrap_or_else(|| "default".to_owned());
        let fraction = args.parsed("fraction")?.unwrap_or(1.0);
        let url = args.value("url")?;
        let base = args.value("base")?.map(PathBuf::from);
        args.finish()?;
        Ok(Self {
            function,
            params,
            group,
            version,
            fraction,
            url,
            base,
        })
    }
}

pub fn manifest(args: ManifestArgs) -> Result<ExitCode> {
    let bytes = read_regular_capped(&args.function, edge_agent::function::MAX_MODULE_BYTES)
        .map_err(|e| fail!("cannot read {}: {e}", args.function.display()))?;
    let module = FunctionModule::from_bytes(&bytes)
        .with_context(|| format!("refusing {}", args.function.display()))?;
    let params: BTreeMap<String, String> = args.params.iter().cloned().collect();
    let host = FunctionHost::new(
        module,
        params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Params>(),
        Limits::default(),
    )
    .with_context(|| format!("{} refused its parameters", args.function.display()))?;
    if !(0.0..=1.0).contains(&args.fraction) {
        bail!("--fraction must be between 0 and 1, got {}", args.fraction);
    }
    let mut manifest = match &args.base {
        Some(path) => base(path)?,
        None => Manifest {
            format: FORMAT,
            version: 0,
            groups: BTreeMap::new(),
        },
    };
    if args.base.is_some() && args.version <= manifest.version {
        bail!(
            "--version {} must be higher than the base manifest's {}: agents refuse a version that does not go up",
            args.version,
            manifest.version
        );
    }
    let url = match args.url {
        Some(url) => url,
        None => file_name(&args.function)?,
    };
    manifest.version = args.version;
    manifest.groups.insert(
        args.group,
        GroupEntry {
            module: ModuleRef {
                url,
                sha256: sha256_hex(&bytes),
                size: u64::try_from(bytes.len())?,
            },
            params,
            min_window: host.min_window_len(),
            fraction: args.fraction,
        },
    );
    let text = serde_json::to_string_pretty(&manifest)?;
    // The agent's own rules, before anyone signs it.
    Manifest::parse(text.as_bytes()).context("the manifest would be refused")?;
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn base(path: &Path) -> Result<Manifest> {
    let bytes = read_regular_capped(path, MAX_MANIFEST_BYTES)
        .map_err(|e| fail!("cannot read {}: {e}", path.display()))?;
    Manifest::parse(&bytes).with_context(|| format!("{} is not a manifest", path.display()))
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| fail!("{} has no UTF-8 file name; give --url", path.display()))
}
