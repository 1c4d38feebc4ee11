//! `edge-agent check F.wasm`: what a function author runs before deploying. Loads the
//! module as the agent would, runs it on a synthetic window, and prints what it found.
//! `edge-agent check --manifest URL --public-key KEY`: what a publisher runs after signing
//! (README, "Fleet: registry"): the manifest and its signature fetched and verified, and
//! each group's module fetched and checked against the signed sha256 and size, exactly as
//! the registry poller does, then checked as above with the manifest's parameters.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use edge_agent::function::{FunctionHost, FunctionModule, Limits};
use edge_agent::registry::source::{Fetched, Location, Source, Validators};
use edge_agent::registry::{TrustedKeys, fetch_module, manifest, verify};
use edge_agent::support::text::untrusted;
use edge_function::{Params, Window};

#[derive(Args)]
pub struct CheckArgs {
    /// The function module (.wasm).
    #[arg(value_name = "F.wasm", required_unless_present = "manifest")]
    function: Option<PathBuf>,
    /// A registry manifest (URL or path) to verify with its `.minisig` and modules.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "function",
        requires = "public_keys"
    )]
    manifest: Option<String>,
    /// A trusted minisign public key: the base64 line, or a `.pub` file; repeat for several.
    #[arg(long = "public-key", value_name = "KEY|FILE")]
    public_keys: Vec<String>,
    /// Only this group of the manifest (default: every group).
    #[arg(long, requires = "manifest")]
    group: Option<String>,
    /// A function parameter, NAME=VALUE; repeat for several.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = crate::parse_param)]
    params: Vec<(String, String)>,
    /// Samples in the synthetic window (at least the function's minimum).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    window: usize,
    /// Fuel budget for the call.
    #[arg(long, value_name = "N", default_value_t = Limits::DEFAULT_FUEL_PER_CALL)]
    fuel: u64,
}

pub fn check(args: CheckArgs) -> Result<ExitCode> {
    if let Some(url) = &args.manifest {
        return check_manifest(&args, url);
    }
    let Some(path) = &args.function else {
        bail!("give a function module or --manifest");
    };
    let module =
        FunctionModule::load(path).with_context(|| format!("refusing {}", path.display()))?;
    let params: Params = args.params.iter().cloned().collect();
    check_module(module, &path.display().to_string(), params, &args)?;
    Ok(ExitCode::SUCCESS)
}

/// The manifest at `url` verified as an agent would, then every module it names (or the
/// one of `--group`) fetched, matched and run.
fn check_manifest(args: &CheckArgs, url: &str) -> Result<ExitCode> {
    let location = Location::parse(url).map_err(|e| anyhow!("--manifest: {e}"))?;
    let keys = args
        .public_keys
        .iter()
        .map(|key| match std::fs::read_to_string(key) {
            Ok(text) => text,
            Err(_) => key.clone(),
        })
        .collect::<Vec<_>>();
    let keys = TrustedKeys::parse(&keys).map_err(|e| anyhow!("--public-key: {e}"))?;
    let source = Source::new(None, std::time::Duration::from_secs(30))?;
    let body = |at: &Location, max: u64| -> Result<Vec<u8>> {
        match source.get(at, &Validators::default(), max)? {
            Fetched::Body { bytes, .. } => Ok(bytes),
            Fetched::NotModified => bail!("{at}: not modified"),
        }
    };
    let bytes = body(&location, manifest::MAX_MANIFEST_BYTES)?;
    let signature = body(&location.signature(), manifest::MAX_SIGNATURE_BYTES)?;
    let manifest = verify(&bytes, &signature, &keys).context("the agents would refuse it")?;
    println!("manifest  {location}");
    println!(
        "signature {} (good, by a trusted key)",
        location.signature()
    );
    println!("version   {}", manifest.version);
    let mut checked = 0;
    for (group, entry) in &manifest.groups {
        if args.group.as_ref().is_some_and(|only| only != group) {
            continue;
        }
        println!();
        println!(
            "group     {} ({:.1} % of its agents)",
            untrusted(group),
            entry.fraction * 100.0
        );
        let bytes = fetch_module(&source, &location, entry)
            .with_context(|| format!("group {}: the agents would refuse it", untrusted(group)))?;
        let module = FunctionModule::from_bytes(&bytes)
            .with_context(|| format!("group {}: refusing its module", untrusted(group)))?;
        let params: Params = entry
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let min = check_module(module, &untrusted(&entry.module.url), params, args)?;
        if min > entry.min_window {
            bail!(
                "group {}: the module needs windows of {min} samples, the manifest says {}: agents with windows in between would fail its canary",
                untrusted(group),
                entry.min_window
            );
        }
        checked += 1;
    }
    if checked == 0 {
        bail!("the manifest names no such group");
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints what `module` is and runs it once; answers its minimum window.
fn check_module(
    module: FunctionModule,
    name: &str,
    params: Params,
    args: &CheckArgs,
) -> Result<usize> {
    println!("module    {name}");
    println!("sha256    {}", module.sha256());
    println!("size      {} bytes", module.size_bytes());
    println!("ABI       {}", module.abi().name());
    println!("exports   {}", module.export_names().join(", "));

    let limits = Limits {
        fuel_per_call: args.fuel,
        ..Limits::default()
    };
    let mut host = FunctionHost::new(module, params, limits)
        .with_context(|| format!("{name} refused its parameters"))?;
    let len = args.window.max(host.min_window_len());
    println!("min window {} samples", host.min_window_len());

    let window = synthetic_window(len);
    let outcome = host
        .run(&window)
        .with_context(|| format!("the function failed on a synthetic window of {len} samples"))?;
    let flagged = outcome.verdicts.iter().filter(|v| v.is_anomaly).count();
    println!(
        "ran       {len} samples in {:.2?} (host {:.2?}), {} fuel of {} ({:.1}%), {flagged} flagged",
        outcome.guest_time + outcome.host_time,
        outcome.host_time,
        outcome.fuel_used,
        limits.fuel_per_call,
        100.0 * outcome.fuel_used as f64 / limits.fuel_per_call as f64
    );
    Ok(host.min_window_len())
}

/// A minute-by-minute day-shaped series with two spikes, so a detector has work to do.
fn synthetic_window(len: usize) -> Window {
    let timestamps = (0..len as i64)
        .map(|i| 1_700_000_000_000 + i * 60_000)
        .collect();
    let values = (0..len)
        .map(|i| {
            let phase = (i % 60) as f32 / 60.0 * std::f32::consts::TAU;
            let ripple = ((i * 7919) % 13) as f32 / 13.0;
            let spike = if i == len / 3 || i == 2 * len / 3 {
                -30.0
            } else {
                0.0
            };
            70.0 + 8.0 * phase.sin() + ripple + spike
        })
        .collect();
    Window::from_air_quality("check", timestamps, values)
}
