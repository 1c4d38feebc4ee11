//! `edge-agent`: the command line over the agent library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

use cli::{check, manifest, replay, run};
// `check` names it from the crate root.
pub(crate) use cli::parse_param;

#[derive(Parser)]
#[command(
    name = "edge-agent",
    version,
    about = "Air-quality edge agent with sandboxed WebAssembly data functions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: sample, window, judge, emit verdicts, until SIGTERM or SIGINT.
    Run(run::RunArgs),
    /// Replay a CSV series (`timestamp,value`) through a function; NDJSON verdicts out.
    Replay(replay::ReplayArgs),
    /// Check a function module before deploying it: load it, run it on a synthetic window;
    /// or, with --manifest, a registry manifest, its signature and its modules.
    Check(check::CheckArgs),
    /// Print a registry manifest naming a function module for a group (sign it with
    /// `minisign -Sm manifest.json`).
    Manifest(manifest::ManifestArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Replay(args) => replay::replay(args),
        Command::Check(args) => check::check(args),
        Command::Manifest(args) => manifest::manifest(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("edge-agent: {error:#}");
            ExitCode::FAILURE
        }
    }
}
