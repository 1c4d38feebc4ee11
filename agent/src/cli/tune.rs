//! `edge-agent replay --labels`: a recording replayed at several window sizes, hops and
//! parameter values, each scored against labelled anomaly windows, as one table. The
//! scoring is the library's (`edge_agent::replay::labels`); this file runs the settings
//! and prints the table.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::args::{ArgList, UsageError, parse_as, parse_param};
use super::fail::{Context, Result};
use super::replay::FunctionArgs;
use edge_agent::replay::labels::{Score, read_labels, score};
use edge_agent::series::Series;
use edge_agent::window::WindowSpec;

/// The most settings one command runs: each is a whole replay.
const MAX_SETTINGS: usize = 256;

/// What to score: the labels and the settings.
pub struct TuneArgs {
    labels: PathBuf,
    /// `None`: the whole series as one window.
    windows: Vec<Option<usize>>,
    hops: Vec<usize>,
    /// `--grid NAME=V1,V2`: each parameter at each of its values.
    grid: Vec<(String, Vec<String>)>,
}

impl TuneArgs {
    /// The tuning options, when `--labels` is given; `window`/`hop` are the texts of
    /// `--window`/`--hop`, lists here.
    pub fn parse(
        args: &mut ArgList,
        labels: PathBuf,
        window: Option<&str>,
        hop: Option<&str>,
    ) -> Result<Self, UsageError> {
        let windows = match window {
            None => vec![None],
            Some(text) => list(text)
                .map(|item| match item {
                    "series" => Ok(None),
                    size => parse_as::<usize>("window", size).map(Some),
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let hops = match hop {
            None => Vec::new(),
            Some(text) => list(text)
                .map(|item| parse_as::<usize>("hop", item))
                .collect::<Result<Vec<_>, _>>()?,
        };
        if windows.iter().any(Option::is_some) && hops.is_empty() {
            return Err(UsageError::new(
                "--window with a size needs --hop (or `--window series` alone)",
            ));
        }
        let grid = args
            .values("grid")?
            .iter()
            .map(|text| {
                let (name, values) = parse_param(text)?;
                let values: Vec<String> = list(&values).map(str::to_owned).collect();
                if values.is_empty() {
                    return Err(UsageError::new(format!(
                        "--grid {name}= needs at least one value"
                    )));
                }
                Ok((name, values))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            labels,
            windows,
            hops,
            grid,
        })
    }
}

/// The items of a comma-separated list, trimmed, empty ones left out.
fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// One row of the table.
struct Row {
    window: String,
    hop: String,
    params: String,
    failed_windows: usize,
    score: Score,
}

/// Every combination of the grid's values, as parameter lists over `base`.
fn param_sets(
    base: &[(String, String)],
    grid: &[(String, Vec<String>)],
) -> Result<Vec<Vec<(String, String)>>> {
    if let Some((name, _)) = grid
        .iter()
        .find(|(name, _)| base.iter().any(|(n, _)| n == name))
    {
        bail!("parameter `{name}` is given by both --param and --grid");
    }
    let mut sets = vec![base.to_vec()];
    for (name, values) in grid {
        sets = sets
            .iter()
            .flat_map(|set| {
                values.iter().map(move |value| {
                    let mut set = set.clone();
                    set.push((name.clone(), value.clone()));
                    set
                })
            })
            .collect();
        if sets.len() > MAX_SETTINGS {
            bail!("the grid has more than {MAX_SETTINGS} settings");
        }
    }
    Ok(sets)
}

/// The window specs to run: each size with each hop it can take.
fn specs(tune: &TuneArgs) -> Vec<(Option<WindowSpec>, String, String)> {
    let mut specs = Vec::new();
    for &window in &tune.windows {
        let Some(size) = window else {
            specs.push((None, "series".to_owned(), "-".to_owned()));
            continue;
        };
        for &hop in &tune.hops {
            if let Ok(spec) = WindowSpec::new(size, hop) {
                specs.push((Some(spec), size.to_string(), hop.to_string()));
            }
        }
    }
    specs
}

/// Replays `series` (read from `input`) at every setting, scores each against the
/// labels and prints the table on standard output.
pub fn tune(
    function: &FunctionArgs,
    input: &Path,
    series: &Series,
    tune: &TuneArgs,
    sensor_id: &str,
) -> Result<ExitCode> {
    let input_name = input.file_name().and_then(|name| name.to_str());
    let labels = File::open(&tune.labels)
        .map_err(edge_agent::replay::labels::LabelsError::from)
        .and_then(|file| read_labels(file, input_name))
        .with_context(|| format!("bad labels {}", tune.labels.display()))?;
    let specs = specs(tune);
    if specs.is_empty() {
        bail!("no --window/--hop pair is usable (a hop must be 1..=the window's size)");
    }
    let param_sets = param_sets(&function.params, &tune.grid)?;
    if specs.len().saturating_mul(param_sets.len()) > MAX_SETTINGS {
        bail!("more than {MAX_SETTINGS} settings: narrow --window, --hop or --grid");
    }
    let mut rows = Vec::new();
    for params in &param_sets {
        let mut host = function.host_with(params)?;
        for (spec, window, hop) in &specs {
            let summary = match edge_agent::replay::replay(
                &mut host,
                series,
                *spec,
                sensor_id,
                &mut std::io::sink(),
                &mut |_| {},
            ) {
                Ok(summary) => summary,
                // A window this function cannot take: say so in the row's place.
                Err(e) => {
                    eprintln!("edge-agent: window {window} hop {hop}: {e}");
                    continue;
                }
            };
            rows.push(Row {
                window: window.clone(),
                hop: hop.clone(),
                params: params
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                failed_windows: summary.failed_windows,
                score: score(series, &summary, &labels),
            });
        }
    }
    print!("{}", table(&rows, labels.len(), series.len()));
    Ok(
        if rows.iter().all(|r| r.failed_windows == 0) && !rows.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// The table, columns aligned: one row a setting.
fn table(rows: &[Row], windows: usize, samples: usize) -> String {
    let header = [
        "window",
        "hop",
        "parameters",
        "detected",
        "precision",
        "flags/1k",
        "delay (sample)",
        "delay (emitted)",
        "failed",
    ];
    let mut cells: Vec<[String; 9]> = vec![header.map(str::to_owned)];
    for row in rows {
        let s = &row.score;
        cells.push([
            row.window.clone(),
            row.hop.clone(),
            edge_agent::support::text::escape(&row.params, 120),
            format!("{}/{}", s.detected, s.windows),
            s.precision()
                .map_or_else(|| "-".to_owned(), |p| format!("{p:.2}")),
            format!("{:.1}", s.flags_per_thousand()),
            median(&s.sample_delays).map_or_else(|| "-".to_owned(), duration),
            median(&s.emit_delays).map_or_else(|| "-".to_owned(), duration),
            row.failed_windows.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!(
        "{samples} samples, {windows} labelled windows; delays are medians over the detected windows\n"
    );
    for row in &cells {
        let line = row
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ");
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

fn median(values: &[i64]) -> Option<i64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied()
}

/// Milliseconds as `2d4h`, `3h20m`, `45m`, `12s`: two units at most.
fn duration(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let s = ms.unsigned_abs() / 1000;
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sign}{s}s"),
        (0, 0, m) => format!("{sign}{m}m"),
        (0, h, m) => format!("{sign}{h}h{m:02}m"),
        (d, h, _) => format!("{sign}{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(12_000), "12s");
        assert_eq!(duration(45 * 60_000), "45m");
        assert_eq!(duration(200 * 60_000), "3h20m");
        assert_eq!(duration(52 * 3_600_000), "2d4h");
        assert_eq!(duration(-60_000), "-1m");
    }

    #[test]
    fn the_grid_is_every_combination() {
        let base = vec![("period".to_owned(), "24".to_owned())];
        let grid = vec![
            (
                "alpha".to_owned(),
                vec!["0.05".to_owned(), "0.01".to_owned()],
            ),
            (
                "max_anoms".to_owned(),
                vec!["0.1".to_owned(), "0.2".to_owned()],
            ),
        ];
        let sets = param_sets(&base, &grid).unwrap();
        assert_eq!(sets.len(), 4);
        assert!(sets.iter().all(|s| s[0].0 == "period" && s.len() == 3));
        assert!(param_sets(&base, &[("period".to_owned(), vec!["12".to_owned()])]).is_err());
    }
}
