//! `edge-agent run`: the command line over [`edge_agent::agent::Agent`]. Arguments and
//! their overrides of the file, signals (SIGTERM or SIGINT stop, SIGHUP re-reads the
//! function), exit codes (78 for a configuration error: the unit does not restart on it)
//! and printing; the agent's life cycle itself lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;

use super::args::{ArgList, UsageError};
use super::fail::Result;
use edge_agent::agent::{Agent, AgentError, Command, STOP_GRACE, Source, SystemdNotifier};
use edge_agent::config::{AgentConfig, ConfigError};
use edge_agent::support::file::ScratchDir;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// sysexits' EX_CONFIG: the unit file does not restart on it.
pub const EXIT_CONFIG: u8 = 78;

pub fn help() -> String {
    "\
Run the agent: sample, window, judge, emit verdicts, until SIGTERM or SIGINT

Usage: edge-agent run [OPTIONS]

Options:
      --config <FILE>      The configuration file (TOML); every key has a default
      --simulate           Sample a simulated BME680 instead of the chip on I2C; without
                           --config, with a fresh state directory of its own
                           ($TMPDIR/edge-agent-simulate-<pid>, removed at exit)
      --scenario <NAME>    The simulated scenario: clean, cooking, window, drift, cold-start,
                           heater-fault [default: clean] (with --simulate)
      --speed <X>          Run the simulated clock this many times faster than real time
                           [default: 1] (with --simulate)
      --function <F.wasm>  The function module, instead of the configured one
      --output <FILE>      Append verdicts (NDJSON) to this file instead of the configured
                           output
  -h, --help               Print help
"
    .to_owned()
}

pub struct RunArgs {
    config: Option<PathBuf>,
    /// `--simulate`: the scenario and the speed.
    simulate: Option<(String, f64)>,
    function: Option<PathBuf>,
    output: Option<PathBuf>,
}

impl RunArgs {
    pub fn parse(mut args: ArgList) -> Result<Self, UsageError> {
        let simulate = args.flag("simulate")?;
        let scenario = args.value("scenario")?;
        let speed = args.parsed("speed")?;
        if !simulate && (scenario.is_some() || speed.is_some()) {
            return Err(UsageError::new("--scenario and --speed need --simulate"));
        }
        let parsed = Self {
            config: args.value("config")?.map(PathBuf::from),
            simulate: simulate.then(|| {
                (
                    scenario.unwrap_or_else(|| "clean".into()),
                    speed.unwrap_or(1.0),
                )
            }),
            function: args.value("function")?.map(PathBuf::from),
            output: args.value("output")?.map(PathBuf::from),
        };
        args.finish()?;
        Ok(parsed)
    }
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    // First thing: a SIGHUP during start-up must not kill the agent (its default action).
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let signal_handle = signals.handle();
    // `_scratch` (a simulation's own state directory) is removed when this returns, after
    // the agent has stopped.
    let (started, _scratch) = match configure(&args) {
        Ok((config, source, scratch)) => (Agent::new(config, source).start(), scratch),
        Err(e) => (Err(e), None),
    };
    let agent = match started {
        Ok(agent) => agent,
        Err(AgentError::Config(error)) => {
            eprintln!("edge-agent: configuration error: {error}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
        Err(error) => return Err(error.into()),
    };
    let (commands, received) = mpsc::channel();
    let signal_thread = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let command = match signal {
                    SIGHUP => Command::Reload,
                    signal => Command::Stop(format!("signal {signal}")),
                };
                if commands.send(command).is_err() {
                    break;
                }
            }
        })?;
    edge_agent::agent::supervise(&agent, &received, &mut SystemdNotifier);
    let stopped = agent.stop(STOP_GRACE);
    signal_handle.close();
    let _ = signal_thread.join();
    stopped?;
    Ok(ExitCode::SUCCESS)
}

/// The configuration with the command line's overrides, the source it names, and the
/// state directory of a simulation without a configuration.
fn configure(args: &RunArgs) -> Result<(AgentConfig, Source, Option<ScratchDir>), AgentError> {
    let mut scratch = None;
    let config_error = |e: ConfigError| AgentError::Config(e.to_string());
    let mut config = match &args.config {
        Some(path) => AgentConfig::load(path).map_err(config_error)?,
        None => AgentConfig::default(),
    };
    if args.simulate.is_some() && args.config.is_none() {
        scratch = edge_agent::agent::laptop_defaults(&mut config)?;
    }
    if let Some(function) = &args.function {
        config.function.path = function.clone();
    }
    if let Some(output) = &args.output {
        config.output.path = Some(output.clone());
    }
    let source = match &args.simulate {
        Some((scenario, speed)) => Source::simulated(&config, scenario, *speed)?,
        None => Source::configured(&config),
    };
    if args.output.is_some() || args.function.is_some() {
        // The overrides meet the same rules as the file (an --output whose folder is
        // missing), before anything is created.
        config.recheck("the command line").map_err(config_error)?;
    }
    Ok((config, source, scratch))
}
