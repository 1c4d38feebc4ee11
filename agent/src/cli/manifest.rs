//! `edge-agent manifest`: the first of the two publishing commands (README, "Fleet:
//! registry"). Builds the registry manifest for one group from a `.wasm` and its
//! parameters, optionally on top of the manifest already published, and prints it; the
//! operator signs it with `minisign -Sm manifest.json`. The module is loaded and
//! instantiated with its parameters first, so a manifest never names a module that would
//! not start, and the window it needs is the one its `init` says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use edge_agent::function::{FunctionHost, FunctionModule, Limits};
use edge_agent::registry::Manifest;
use edge_agent::registry::manifest::{
    FORMAT, GroupEntry, MAX_MANIFEST_BYTES, ModuleRef, sha256_hex,
};
use edge_agent::support::file::read_regular_capped;
use edge_function::Params;

#[derive(Args)]
pub struct ManifestArgs {
    /// The function module to publish.
    #[arg(long, value_name = "F.wasm")]
    function: PathBuf,
    /// A function parameter, NAME=VALUE; repeat for several.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = crate::parse_param)]
    params: Vec<(String, String)>,
    /// The group of agents (their `[registry] group`).
    #[arg(long, default_value = "default")]
    group: String,
    /// The manifest's version: higher than any published before.
    #[arg(long)]
    version: u64,
    /// The share of the group's agents that take the module, 0 to 1.
    #[arg(long, default_value_t = 1.0)]
    fraction: f64,
    /// The module's URL as agents fetch it: absolute, or relative to the manifest's.
    /// Default: the module's file name, next to the manifest.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// The published manifest to start from: its other groups are kept.
    #[arg(long, value_name = "manifest.json")]
    base: Option<PathBuf>,
}

pub fn manifest(args: ManifestArgs) -> Result<ExitCode> {
    let bytes = read_regular_capped(&args.function, edge_agent::function::MAX_MODULE_BYTES)
        .map_err(|e| anyhow!("cannot read {}: {e}", args.function.display()))?;
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
        .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    Manifest::parse(&bytes).with_context(|| format!("{} is not a manifest", path.display()))
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{} has no UTF-8 file name; give --url", path.display()))
}
