//! The lines source's end-to-end tests' common steps: an agent reading lines (its
//! configuration, where it says it listens), and its `/metrics` read and waited on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::agent::{Agent, http_get};

/// A failure guard, never a synchronisation.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// `dir/agent.toml`: a lines agent running `function` (S-H-ESD, period 4) on windows of
/// 8 every 4, metrics on a free port, `source` (keys under `[source]`) after `kind` and
/// `listen`.
pub fn write_config(dir: &Path, function: &Path, source: &str) -> PathBuf {
    write_config_windowed(
        dir,
        function,
        Windows {
            size: 8,
            hop: 4,
            period: 4,
        },
        source,
    )
}

/// The windows and the function's `period`.
#[derive(Clone, Copy, Debug)]
pub struct Windows {
    pub size: usize,
    pub hop: usize,
    pub period: usize,
}

/// [`write_config`] with other windows.
pub fn write_config_windowed(
    dir: &Path,
    function: &Path,
    windows: Windows,
    source: &str,
) -> PathBuf {
    let Windows { size, hop, period } = windows;
    let path = dir.join("agent.toml");
    let text = format!(
        r#"[agent]
sensor_id = "fallback"
host_id = "test-host"

[sensor]
state_dir = "{state}"

[function]
path = "{function}"
fuel_per_call = 300000000

[function.params]
period = {period}

[window]
size = {size}
hop = {hop}

[metrics]
listen = "127.0.0.1:0"

[source]
kind = "lines"
listen = "127.0.0.1:0"
{source}
"#,
        state = dir.join("state").display(),
        function = function.display(),
    );
    std::fs::write(&path, text).expect("write the config");
    path
}

/// Where the agent says it reads lines.
pub fn lines_addr(agent: &mut Agent) -> SocketAddr {
    let said = |l: &str| l.contains(" lines over ") && l.contains(" on ");
    agent.until_log_where("where it reads lines", said);
    let line = agent
        .logs
        .iter()
        .find(|l| said(l))
        .expect("the line just seen");
    line.rsplit(" on ")
        .next()
        .and_then(|addr| addr.trim().parse().ok())
        .expect("an address ends the line")
}

pub fn scrape(addr: SocketAddr) -> String {
    let (status, _, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    body
}

/// The value of one series (`name{labels}` exactly as rendered), `None` when absent.
pub fn value(body: &str, series: &str) -> Option<u64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls `/metrics` until every `(series, value)` holds (an absent series is 0).
pub fn until_metrics(addr: SocketAddr, want: &[(&str, u64)]) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let body = scrape(addr);
        let got: Vec<u64> = want
            .iter()
            .map(|(series, _)| value(&body, series).unwrap_or(0))
            .collect();
        if want.iter().zip(&got).all(|((_, want), got)| want == got) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never reached {want:?}; last {got:?}\n{body}"
        );
        // The server cannot notify; the deadline above is the guard.
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `edge_agent_lines_<name>{source="<source>"}`.
pub fn series(name: &str, source: &str) -> String {
    format!("edge_agent_lines_{name}{{source=\"{source}\"}}")
}

/// `edge_agent_lines_<name>{source="<source>",reason="<reason>"}`.
pub fn by_reason(name: &str, source: &str, reason: &str) -> String {
    format!("edge_agent_lines_{name}{{source=\"{source}\",reason=\"{reason}\"}}")
}
