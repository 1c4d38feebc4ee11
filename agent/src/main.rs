//! `edge-agent`: the command line over the agent library.

use std::process::ExitCode;

mod cli;

use cli::args::{ArgList, UsageError};
#[cfg(feature = "publish")]
use cli::manifest;
#[cfg(feature = "scaffold")]
use cli::new;
use cli::{check, replay, run};

const HELP: &str = "\
Air-quality edge agent with sandboxed WebAssembly data functions

Usage: edge-agent <COMMAND> [OPTIONS]

Commands:
  run       Run the agent: sample, window, judge, emit verdicts, until SIGTERM or SIGINT
  replay    Replay a CSV series (`timestamp,value`) through a function; NDJSON verdicts out
  check     Check a function module before deploying it: load it, run it on a synthetic
            window; or, with --manifest, a registry manifest, its signature and its modules
  manifest  Print a registry manifest naming a function module for a group of agents
            (not in the Pi's release binary)
  new       Write a new function crate (example, native test, CSV) to start from (not
            in the Pi's release binary)

Options:
  -h, --help     Print help (`edge-agent <COMMAND> --help` for a command's options)
  -V, --version  Print version
";

/// sysexits' EX_USAGE is 64, but clap (which this command line replaced) exits 2 on a
/// usage error, and scripts written against it check for 2.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let mut argv = std::env::args_os().skip(1);
    let command = argv.next();
    let command = match command.as_ref().and_then(|c| c.to_str()) {
        Some(command @ ("run" | "replay" | "check")) => command,
        #[cfg(feature = "publish")]
        Some(command @ "manifest") => command,
        #[cfg(feature = "scaffold")]
        Some(command @ "new") => command,
        Some("-V" | "--version") => {
            println!("edge-agent {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some("-h" | "--help" | "help") => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        other => {
            let what = match (other, &command) {
                (Some(name), _) => format!("unknown command {name:?}"),
                (None, Some(raw)) => format!("unknown command {raw:?}"),
                (None, None) => "a command is needed".to_owned(),
            };
            eprint!("edge-agent: error: {what}\n\n{HELP}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let name = command;
    let (help, parsed) = match ArgList::new(argv) {
        Ok(args) if args.wants_help() => {
            print!("{}", usage_of(command));
            return ExitCode::SUCCESS;
        }
        Ok(args) => (usage_of(command), parse(command, args)),
        Err(error) => (usage_of(command), Err(error)),
    };
    let command = match parsed {
        Ok(command) => command,
        Err(error) => {
            let usage = help.lines().find(|l| l.starts_with("Usage:")).unwrap_or("");
            eprintln!(
                "edge-agent: error: {error}\n\n{usage}\n\nFor more, try `edge-agent {name} --help`."
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_log();
    let result = match command {
        Command::Run(args) => run::run(args),
        Command::Replay(args) => replay::replay(args),
        Command::Check(args) => check::check(args),
        #[cfg(feature = "publish")]
        Command::Manifest(args) => manifest::manifest(args),
        #[cfg(feature = "scaffold")]
        Command::New(args) => new::new(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("edge-agent: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// env_logger, filtered by `RUST_LOG` (info without it), to standard error (the journal
/// under systemd), one line a record: `[time LEVEL target] message`.
fn init_log() {
    use std::io::Write as _;
    let env = env_logger::Env::default().default_filter_or("info");
    env_logger::Builder::from_env(env)
        .format(|out, record| {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            writeln!(
                out,
                "[{} {:<5} {}] {}",
                edge_agent::support::timestamp::format(now_ms - now_ms % 1000),
                record.level(),
                record.target(),
                record.args()
            )
        })
        .init();
}

enum Command {
    Run(run::RunArgs),
    Replay(replay::ReplayArgs),
    Check(check::CheckArgs),
    #[cfg(feature = "publish")]
    Manifest(manifest::ManifestArgs),
    #[cfg(feature = "scaffold")]
    New(new::NewArgs),
}

fn usage_of(command: &str) -> String {
    match command {
        "run" => run::help(),
        "replay" => replay::help(),
        #[cfg(feature = "publish")]
        "manifest" => manifest::help(),
        #[cfg(feature = "scaffold")]
        "new" => new::help(),
        _ => check::help(),
    }
}

fn parse(command: &str, args: ArgList) -> Result<Command, UsageError> {
    Ok(match command {
        "run" => Command::Run(run::RunArgs::parse(args)?),
        "replay" => Command::Replay(replay::ReplayArgs::parse(args)?),
        #[cfg(feature = "publish")]
        "manifest" => Command::Manifest(manifest::ManifestArgs::parse(args)?),
        #[cfg(feature = "scaffold")]
        "new" => Command::New(new::NewArgs::parse(args)?),
        _ => Command::Check(check::CheckArgs::parse(args)?),
    })
}
