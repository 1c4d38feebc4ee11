//! `edge-agent check F.wasm`: what a function author runs before deploying. Loads the
//! module as the agent would, runs it on a synthetic window, and prints what it found.
//! `edge-agent check --manifest URL --public-key KEY`: what a publisher runs after signing
//! (README, "Fleet: registry"): the manifest and its signature fetched and verified, and
//! each group's module fetched and checked against the signed sha256 and size, exactly as
//! the registry poller does, then checked as above with the manifest's parameters.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::fail::{Context, Result};
use edge_agent::function::{FunctionHost, FunctionModule, Limits};
use edge_agent::registry::source::{Fetched, Location, Source, Validators};
use edge_agent::registry::{TrustedKeys, fetch_module, manifest, verify};
use edge_agent::support::text::untrusted;
use edge_function::{Params, Window};

use super::args::{ArgList, UsageError, params};

pub fn help() -> String {
    format!(
        "\
Check a function module before deploying it: load it, run it on a synthetic window

Usage: edge-agent check [OPTIONS] <F.wasm>
       edge-agent check [OPTIONS] --manifest <URL> --public-key <KEY|FILE>...

Arguments:
  <F.wasm>  The function module (.wasm)

Options:
      --manifest <URL>      A registry manifest (URL or path) to verify with its
                            `.minisig` and the modules it names, as an agent would
      --public-key <KEY|FILE>  A trusted minisign public key: the base64 line, or a
                            `.pub` file; repeat for several (with --manifest)
      --group <GROUP>       Only this group of the manifest [default: every group]
      --param <NAME=VALUE>  A function parameter; repeat for several
      --window <N>          Samples in the synthetic window (at least the function's
                            minimum) [default: 1024]
      --fuel <N>            Fuel budget for the call [default: {fuel}]
      --deadline-ms <MS>    Wall-clock budget for the call, as `[function] deadline_ms`
                            [default: {deadline}]
  -h, --help                Print help
",
        fuel = Limits::DEFAULT_FUEL_PER_CALL,
        deadline = Limits::default().deadline.as_millis()
    )
}

pub struct CheckArgs {
    /// The module, or the manifest to verify (`--manifest`).
    what: Checked,
    params: Vec<(String, String)>,
    window: usize,
    fuel: u64,
    deadline: Duration,
}

enum Checked {
    Function(PathBuf),
    Manifest {
        url: String,
        public_keys: Vec<String>,
        group: Option<String>,
    },
}

impl CheckArgs {
    pub fn parse(mut args: ArgList) -> Result<Self, UsageError> {
        let params = params(&mut args)?;
        let window = args.parsed("window")?.unwrap_or(1024);
        let fuel = args
            .parsed("fuel")?
            .unwrap_or(Limits::DEFAULT_FUEL_PER_CALL);
        let deadline = args
            .parsed("deadline-ms")?
            .map_or(Limits::default().deadline, Duration::from_millis);
        let public_keys = args.values("public-key")?;
        let group = args.value("group")?;
        let what = match args.value("manifest")? {
            Some(url) => {
                if public_keys.is_empty() {
                    return Err(UsageError::new(
                        "--manifest needs at least one --public-key",
                    ));
                }
                Checked::Manifest {
                    url,
                    public_keys,
                    group,
                }
            }
            None => {
                if !public_keys.is_empty() || group.is_some() {
                    return Err(UsageError::new(
                        "--public-key and --group go with --manifest",
                    ));
                }
                let function = args.positional().map(PathBuf::from).ok_or_else(|| {
                    UsageError::new("the function module <F.wasm> (or --manifest) is required")
                })?;
                Checked::Function(function)
            }
        };
        args.finish()?;
        Ok(Self {
            what,
            params,
            window,
            fuel,
            deadline,
        })
    }
}

pub fn check(args: CheckArgs) -> Result<ExitCode> {
    let path = match &args.what {
        Checked::Manifest {
            url,
            public_keys,
            group,
        } => return check_manifest(&args, url, public_keys, group.as_deref()),
        Checked::Function(path) => path,
    };
    let module =
        FunctionModule::load(path).with_context(|| format!("refusing {}", path.display()))?;
    let params: Params = args.params.iter().cloned().collect();
    check_module(module, &path.display().to_string(), params, &args)?;
    Ok(ExitCode::SUCCESS)
}

/// The manifest at `url` verified as an agent would, then every module it names (or the
/// one of `--group`) fetched, matched and run.
fn check_manifest(
    args: &CheckArgs,
    url: &str,
    public_keys: &[String],
    only: Option<&str>,
) -> Result<ExitCode> {
    // A publisher checks the file just signed by its relative path (the README's command);
    // an agent's configuration, read with no meaningful working directory, may not.
    let location = match Location::parse(url) {
        Ok(location) => location,
        Err(_) if !url.is_empty() && !url.contains(':') => Location::File(
            std::env::current_dir()
                .map_err(|e| fail!("--manifest {url}: the working directory: {e}"))?
                .join(url),
        ),
        Err(e) => return Err(fail!("--manifest: {e}")),
    };
    let keys = public_keys
        .iter()
        .map(|key| match std::fs::read_to_string(key) {
            Ok(text) => text,
            Err(_) => key.clone(),
        })
        .collect::<Vec<_>>();
    let keys = TrustedKeys::parse(&keys).map_err(|e| fail!("--public-key: {e}"))?;
    let source = Source::new(None, Duration::from_secs(30))?;
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
        if only.is_some_and(|only| only != group) {
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
        deadline: args.deadline,
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
