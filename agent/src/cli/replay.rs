//! `edge-agent replay`: a recorded series through a function, NDJSON verdicts out, with an
//! optional SVG plot. The judging itself is the library's (`edge_agent::replay`, which uses
//! the live agent's judge); this file is the command line around it.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::fail::{Context, Result};
use edge_agent::function::{FunctionHost, FunctionModule, Limits};
use edge_agent::replay::ReplaySummary;
use edge_agent::series::{ReadOptions, Series};
use edge_agent::window::WindowSpec;
use edge_function::Params;

use super::args::{ArgList, UsageError, params};

pub struct FunctionArgs {
    function: PathBuf,
    pub params: Vec<(String, String)>,
    fuel: u64,
    max_memory_mib: usize,
    /// `--deadline-ms`: none unless asked.
    deadline_ms: Option<u64>,
}

/// The longest `--deadline-ms`: a week of one window is beyond any replay.
const MAX_DEADLINE_MS: u64 = 7 * 86_400_000;

/// The deadline of a replay that asked for none. Offline is the user's own command: a
/// long series on a busy machine must not fail or pass by the machine's load, as the
/// live agent's 5 s per window would make it. Fuel (`--fuel`) still bounds every call,
/// so a function that never ends still ends. Ten years rather than `Duration::MAX`:
/// the sandbox adds it to the clock, and a sum it cannot represent counts as spent.
const NO_DEADLINE: Duration = Duration::from_secs(10 * 365 * 86_400);

impl FunctionArgs {
    fn parse(args: &mut ArgList) -> Result<Self, UsageError> {
        Ok(Self {
            function: args
                .value("function")?
                .map(PathBuf::from)
                .ok_or_else(|| UsageError::new("--function <F.wasm> is required"))?,
            params: params(args)?,
            fuel: args
                .parsed("fuel")?
                .unwrap_or(Limits::DEFAULT_FUEL_PER_CALL),
            max_memory_mib: args
                .parsed("max-memory-mib")?
                .unwrap_or(Limits::DEFAULT_MAX_MEMORY_BYTES >> 20),
            deadline_ms: match args.parsed::<u64>("deadline-ms")? {
                Some(ms) if !(1..=MAX_DEADLINE_MS).contains(&ms) => {
                    return Err(UsageError::new(format!(
                        "--deadline-ms must be 1..={MAX_DEADLINE_MS}, got {ms}"
                    )));
                }
                other => other,
            },
        })
    }

    fn host(&self) -> Result<FunctionHost> {
        self.host_with(&self.params)
    }

    /// The host with these parameters instead of `--param`'s.
    pub fn host_with(&self, params: &[(String, String)]) -> Result<FunctionHost> {
        let module = FunctionModule::load(&self.function)
            .with_context(|| format!("refusing {}", self.function.display()))?;
        let max_memory_bytes = self.max_memory_mib.checked_mul(1 << 20).with_context(|| {
            format!(
                "--max-memory-mib {} does not fit this machine's address space",
                self.max_memory_mib
            )
        })?;
        let limits = Limits {
            fuel_per_call: self.fuel,
            max_memory_bytes,
            deadline: self.deadline_ms.map_or(NO_DEADLINE, Duration::from_millis),
            ..Limits::default()
        };
        FunctionHost::new(module, params.iter().cloned().collect::<Params>(), limits)
            .with_context(|| format!("cannot start {}", self.function.display()))
    }
}

pub fn help() -> String {
    format!(
        "\
Replay a CSV series (`timestamp,value`) through a function; NDJSON verdicts out

Usage: edge-agent replay --function <F.wasm> --input <data.csv> [OPTIONS]

Options:
      --function <F.wasm>      The function module (.wasm)
      --param <NAME=VALUE>     A function parameter; repeat for several
      --fuel <N>               Fuel budget per window (about one unit per wasm instruction)
                               [default: {fuel}]
      --max-memory-mib <MIB>   Most linear memory the function may use, in MiB [default: {mib}]
      --deadline-ms <MS>       Wall time one window may take; without it there is none (the
                               fuel still bounds every call), so a replay does not pass or
                               fail by the machine's load
      --input <data.csv>       The series: CSV with a `timestamp,value` header (`-`:
                               standard input)
      --window <N>             Window size N; without it the whole series is one window
                               (with --hop). With --labels a list (`256,512`), where
                               `series` is the whole series as one window
      --hop <H>                Hop H: a window runs every H samples and decides those H
                               (with --window). With --labels a list (`32,64`)
      --labels <FILE>          Score the replay against labelled anomaly windows (a JSON list
                               of [start, end] times, or NAB's combined_windows.json) at
                               every --window x --hop x --grid setting: a table out, no
                               verdicts
      --grid <NAME=V1,V2,...>  With --labels: a function parameter at each of these values;
                               repeat for several (every combination is run)
      --output <out.ndjson>    Write the verdicts here instead of standard output
      --sensor-id <ID>         The sensor id the function sees [default: replay]
      --strict-order           Refuse a series whose timestamps ever step back or repeat,
                               instead of replaying it in file order with a warning
      --plot <out.svg>         Also draw the series, the flagged samples and the windows,
                               as SVG, into this file
  -h, --help                   Print help
",
        fuel = Limits::DEFAULT_FUEL_PER_CALL,
        mib = Limits::DEFAULT_MAX_MEMORY_BYTES >> 20
    )
}

pub struct ReplayArgs {
    function: FunctionArgs,
    input: PathBuf,
    window: Option<usize>,
    hop: Option<usize>,
    output: Option<PathBuf>,
    sensor_id: String,
    strict_order: bool,
    plot: Option<PathBuf>,
    tune: Option<Tune>,
}

#[cfg(feature = "tune")]
type Tune = super::tune::TuneArgs;
/// This build has no tuning table; `--labels` is refused when parsed.
#[cfg(not(feature = "tune"))]
type Tune = std::convert::Infallible;

impl ReplayArgs {
    pub fn parse(mut args: ArgList) -> Result<Self, UsageError> {
        let function = FunctionArgs::parse(&mut args)?;
        let input = args
            .value("input")?
            .map(PathBuf::from)
            .ok_or_else(|| UsageError::new("--input <data.csv> is required"))?;
        let (window, hop) = (args.value("window")?, args.value("hop")?);
        // With --labels, --window and --hop are lists, for the table.
        let tune = match args.value("labels")? {
            Some(labels) => Some(tune_args(
                &mut args,
                PathBuf::from(labels),
                window.as_deref(),
                hop.as_deref(),
            )?),
            None => None,
        };
        let single = |name: &str, text: Option<String>| match (&tune, text) {
            (None, Some(text)) => super::args::parse_as(name, &text).map(Some),
            _ => Ok(None),
        };
        let parsed = Self {
            function,
            input,
            window: single("window", window)?,
            hop: single("hop", hop)?,
            output: args.value("output")?.map(PathBuf::from),
            sensor_id: args
                .value("sensor-id")?
                .unwrap_or_else(|| "replay".to_owned()),
            strict_order: args.flag("strict-order")?,
            plot: args.value("plot")?.map(PathBuf::from),
            tune,
        };
        if parsed.tune.is_some() && (parsed.output.is_some() || parsed.plot.is_some()) {
            return Err(UsageError::new(
                "--labels prints a table: replay without it for --output or --plot",
            ));
        }
        if parsed.window.is_some() != parsed.hop.is_some() {
            return Err(UsageError::new("--window and --hop go together"));
        }
        args.finish()?;
        Ok(parsed)
    }
}

#[cfg(feature = "tune")]
fn tune_args(
    args: &mut ArgList,
    labels: PathBuf,
    window: Option<&str>,
    hop: Option<&str>,
) -> Result<Tune, UsageError> {
    super::tune::TuneArgs::parse(args, labels, window, hop)
}

#[cfg(not(feature = "tune"))]
fn tune_args(
    _: &mut ArgList,
    _: PathBuf,
    _: Option<&str>,
    _: Option<&str>,
) -> Result<Tune, UsageError> {
    Err(UsageError::new(
        "this build has no --labels (the Pi's release binary leaves it out): score on a \
         laptop (`cargo run --release -p edge-agent -- replay ...`)",
    ))
}

/// The replay as SVG (`--plot`).
#[cfg(feature = "plot")]
fn write_plot(
    args: &ReplayArgs,
    series: &Series,
    spec: Option<WindowSpec>,
    summary: &ReplaySummary,
    sha256: &str,
    path: &std::path::Path,
    mut file: File,
) -> Result<()> {
    use edge_agent::plot::{PlotInput, decided_ranges, render_svg};
    use edge_agent::support::text::short_sha;

    let decided = decided_ranges(series.len(), spec)?;
    let title = format!(
        "{}: {} samples, {} window{} ({}), {} anomalies; function {}",
        args.input.file_name().map_or_else(
            || args.input.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        ),
        series.len(),
        decided.len(),
        if decided.len() == 1 { "" } else { "s" },
        spec.map_or_else(
            || "the whole series".to_owned(),
            |s| format!("N={} H={}", s.size(), s.hop())
        ),
        summary.anomalies,
        short_sha(sha256),
    );
    let input = PlotInput {
        title,
        timestamps: series.timestamps.clone(),
        values: series.values.clone(),
        anomalies: summary.flagged.iter().map(|&i| i as usize).collect(),
        decided,
    };
    let svg = render_svg(&input)?;
    file.write_all(svg.as_bytes())
        .and_then(|()| file.flush())
        .with_context(|| format!("cannot write the plot {}", path.display()))?;
    eprintln!("plot: {}", path.display());
    Ok(())
}

/// This build has no plotting (the Pi's release binaries leave it out, `make cross`).
#[cfg(not(feature = "plot"))]
fn write_plot(
    _: &ReplayArgs,
    _: &Series,
    _: Option<WindowSpec>,
    _: &ReplaySummary,
    _: &str,
    path: &std::path::Path,
    _: File,
) -> Result<()> {
    let _ = std::fs::remove_file(path);
    bail!(
        "this build has no plotting (the Pi's release binary leaves it out): replay with \
         --plot on a laptop (`cargo run --release -p edge-agent -- replay ...`)"
    )
}

pub fn replay(args: ReplayArgs) -> Result<ExitCode> {
    // `-` is standard input, as for `--output`'s absence: a series from a pipe
    // (`zcat year.csv.gz | edge-agent replay --input - ...`) ends where its writer ends.
    let input: Box<dyn std::io::Read> = if args.input == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            File::open(&args.input)
                .with_context(|| format!("cannot open {}", args.input.display()))?,
        )
    };
    let options = ReadOptions {
        strict_order: args.strict_order,
    };
    let series = Series::from_csv_with(std::io::BufReader::new(input), options)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    if let Some(warning) = series.order.warning() {
        eprintln!("edge-agent: warning: {}: {warning}", args.input.display());
    }
    if let Some(tune) = &args.tune {
        #[cfg(feature = "tune")]
        return super::tune::tune(&args.function, &args.input, &series, tune, &args.sensor_id);
        #[cfg(not(feature = "tune"))]
        match *tune {}
    }
    let spec = match (args.window, args.hop) {
        (Some(size), Some(hop)) => Some(WindowSpec::new(size, hop)?),
        _ => None,
    };
    let mut host = args.function.host()?;

    // Opened before the replay, so a bad path fails at once rather than after the work.
    let plot_file = match &args.plot {
        Some(path) => Some(
            File::create(path)
                .with_context(|| format!("cannot create the plot {}", path.display()))?,
        ),
        None => None,
    };
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let mut out = out;
    let mut progress = Progress::new(series.len());
    let summary = edge_agent::replay::replay(
        &mut host,
        &series,
        spec,
        &args.sensor_id,
        &mut out,
        &mut |done| progress.show(done),
    )?;
    progress.clear();
    report(&summary, host.module().sha256());
    if let (Some(path), Some(file)) = (&args.plot, plot_file) {
        write_plot(
            &args,
            &series,
            spec,
            &summary,
            host.module().sha256(),
            path,
            file,
        )?;
    }
    Ok(if summary.failed_windows == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn report(summary: &ReplaySummary, sha256: &str) {
    eprintln!(
        "{} samples, {} windows ({} failed), {} anomalies; median {:.2?} per window, peak fuel {}; function sha256 {}",
        summary.samples,
        summary.windows,
        summary.failed_windows,
        summary.anomalies,
        summary.median_window_time(),
        summary.max_fuel,
        sha256
    );
    if let Some(first) = &summary.first_failure {
        // The function's own text: escaped before it reaches a terminal.
        eprintln!(
            "edge-agent: the first failed window (samples {} to {}): {}",
            first.samples.0,
            first.samples.1,
            edge_agent::support::text::untrusted(&first.reason)
        );
    }
}

/// A one-line progress bar on stderr, only when a person is watching it.
struct Progress {
    total: usize,
    visible: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        Self {
            total,
            visible: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, done: usize) {
        if !self.visible || self.total == 0 {
            return;
        }
        const WIDTH: usize = 40;
        let filled = done * WIDTH / self.total;
        eprint!(
            "\r[{}{}] {done}/{} samples",
            "#".repeat(filled),
            ".".repeat(WIDTH - filled),
            self.total
        );
    }

    fn clear(&mut self) {
        if self.visible {
            eprint!("\r{}\r", " ".repeat(70));
        }
    }
}
