//! The log: `log` records to standard error, one line each (`[time LEVEL target]
//! message`), filtered by `RUST_LOG` directives as env_logger reads them: a level
//! (`info`), `target=level` pairs (`edge_agent::ship=debug`), comma-separated, the longest
//! matching target prefix winning. Under systemd the lines go to the journal. Written here
//! because env_logger (with its filter and time crates) was 15 KB of the armv7 binary for
//! this much.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{LevelFilter, Log, Metadata, Record};

use crate::support::timestamp;

/// Which records pass: a default level and per-target levels.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    default: LevelFilter,
    /// Longest target first, so the first prefix that matches is the most specific.
    targets: Vec<(String, LevelFilter)>,
}

impl Filter {
    /// Reads `spec`; directives that do not parse are returned as such, and skipped.
    pub fn parse(spec: &str, default: LevelFilter) -> (Self, Vec<String>) {
        let mut filter = Self {
            default,
            targets: Vec::new(),
        };
        let mut refused = Vec::new();
        for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            match directive.split_once('=') {
                None => match directive.parse::<LevelFilter>() {
                    Ok(level) => filter.default = level,
                    // A bare target means "everything from it".
                    Err(_) => filter
                        .targets
                        .push((directive.to_owned(), LevelFilter::Trace)),
                },
                Some((target, level)) => match level.trim().parse::<LevelFilter>() {
                    Ok(level) => filter.targets.push((target.trim().to_owned(), level)),
                    Err(_) => refused.push(directive.to_owned()),
                },
            }
        }
        filter
            .targets
            .sort_by_key(|(target, _)| std::cmp::Reverse(target.len()));
        (filter, refused)
    }

    pub fn level_for(&self, target: &str) -> LevelFilter {
        self.targets
            .iter()
            .find(|(prefix, _)| target.starts_with(prefix.as_str()))
            .map_or(self.default, |(_, level)| *level)
    }

    /// The most verbose level any target gets: what `log` needs not ask about.
    pub fn max(&self) -> LevelFilter {
        self.targets
            .iter()
            .map(|(_, level)| *level)
            .fold(self.default, |a, b| a.max(b))
    }
}

struct StderrLog {
    filter: Filter,
}

impl Log for StderrLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.filter.level_for(metadata.target())
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 1000) * 1000
        });
        // One write per line, so lines from several threads do not interleave.
        let line = format!(
            "[{} {:<5} {}] {}\n",
            timestamp::format(now_ms),
            record.level(),
            record.target(),
            record.args()
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Installs the logger with `RUST_LOG` (or `default` without it); once per process.
pub fn init(default: LevelFilter) {
    let spec = std::env::var("RUST_LOG").unwrap_or_default();
    let (filter, refused) = Filter::parse(&spec, default);
    let max = filter.max();
    // Lives as long as the process, as a logger must.
    let logger: &'static StderrLog = Box::leak(Box::new(StderrLog { filter }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(max);
    }
    for directive in refused {
        log::warn!(
            "RUST_LOG: ignoring {:?}: not `level` or `target=level`",
            crate::support::text::untrusted(&directive)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_as_env_logger_reads_them() {
        let (filter, refused) = Filter::parse(
            "info, edge_agent::sink=debug,edge_agent::ship=trace,edge_agent::ship::client=warn,x=loud",
            LevelFilter::Error,
        );
        assert_eq!(refused, ["x=loud"]);
        assert_eq!(filter.level_for("edge_agent::pipeline"), LevelFilter::Info);
        assert_eq!(filter.level_for("edge_agent::sink"), LevelFilter::Debug);
        assert_eq!(
            filter.level_for("edge_agent::ship::shipper"),
            LevelFilter::Trace
        );
        assert_eq!(
            filter.level_for("edge_agent::ship::client"),
            LevelFilter::Warn
        );
        assert_eq!(filter.max(), LevelFilter::Trace);

        let (filter, _) = Filter::parse("", LevelFilter::Info);
        assert_eq!(filter.level_for("anything"), LevelFilter::Info);
        let (filter, _) = Filter::parse("off", LevelFilter::Info);
        assert_eq!(filter.max(), LevelFilter::Off);
        let (filter, _) = Filter::parse("warn,edge_agent", LevelFilter::Info);
        assert_eq!(filter.level_for("edge_agent::x"), LevelFilter::Trace);
        assert_eq!(filter.level_for("reqwest"), LevelFilter::Warn);
    }
}
