//! `edge-agent check F.wasm`: what a function author runs before deploying. Loads the
//! module as the agent would, runs it on a synthetic window, and prints what it found.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use edge_agent::function::{FunctionHost, FunctionModule, Limits};
use edge_function::{Params, Window};

use super::args::{ArgList, UsageError, params};

pub fn help() -> String {
    format!(
        "\
Check a function module before deploying it: load it, run it on a synthetic window

Usage: edge-agent check [OPTIONS] <F.wasm>

Arguments:
  <F.wasm>  The function module (.wasm)

Options:
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
    function: PathBuf,
    params: Vec<(String, String)>,
    window: usize,
    fuel: u64,
    deadline: Duration,
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
        let function = args
            .positional()
            .map(PathBuf::from)
            .ok_or_else(|| UsageError::new("the function module <F.wasm> is required"))?;
        args.finish()?;
        Ok(Self {
            function,
            params,
            window,
            fuel,
            deadline,
        })
    }
}

pub fn check(args: CheckArgs) -> Result<ExitCode> {
    let module = FunctionModule::load(&args.function)
        .with_context(|| format!("refusing {}", args.function.display()))?;
    println!("module    {}", args.function.display());
    println!("sha256    {}", module.sha256());
    println!("size      {} bytes", module.size_bytes());
    println!("ABI       {}", module.abi().name());
    println!("exports   {}", module.export_names().join(", "));

    let limits = Limits {
        fuel_per_call: args.fuel,
        deadline: args.deadline,
        ..Limits::default()
    };
    let params: Params = args.params.iter().cloned().collect();
    let mut host = FunctionHost::new(module, params, limits)
        .with_context(|| format!("{} refused its parameters", args.function.display()))?;
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
    Ok(ExitCode::SUCCESS)
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
