//! `/metrics` and `/health`: every answer parses as the Prometheus text exposition format
//! under a strict parser written here, and the counters move when the events happen in the
//! running binary: windows run, a function refuses windows, a swap is made and one refused,
//! the sensor fails, documents are shipped, retried and dead-lettered. `/health` says what
//! the watchdog hears. Waits are on the log or on a metric changing, never plain sleeps.

use std::collections::{BTreeMap, HashSet};

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use edge_agent::health::Health;
use edge_agent::metrics::{PipelineCounts, ShippingCounts, Snapshot, render};
use edge_agent::pipeline::HistogramSnapshot;
use edge_agent::sensor::SamplerStats;
use edge_tests::agent::{Agent, PATIENCE, http_get, until_health, write_test_config};
use edge_tests::anomaly_wasm;
use edge_tests::fault_server::{FaultServer, Reply};

// ---------------------------------------------------------------------------------------
// A strict parser for the text exposition format (version 0.0.4), as Prometheus reads it,
// plus the conventions we hold ourselves to.

/// Label names and values.
type Labels = Vec<(String, String)>;
/// A series: metric name and its labels, sorted.
type SeriesKey = (String, Labels);

#[derive(Debug, Default)]
struct Exposition {
    /// Family name → type.
    types: BTreeMap<String, String>,
    samples: BTreeMap<SeriesKey, f64>,
}

impl Exposition {
    /// The value of `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        self.samples.get(&(name.to_owned(), labels)).copied()
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// A value as Go's ParseFloat takes it, or Prometheus' special spellings.
fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" | "Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        "NaN" => return Ok(f64::NAN),
        _ => {}
    }
    let plain = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if !plain || text.is_empty() {
        return Err(format!("not a float: {text:?}"));
    }
    text.parse::<f64>()
        .map_err(|e| format!("not a float: {text:?}: {e}"))
}

/// `{a="x",b="y"}` at the start of `text`; answers the labels and the rest of the line.
fn parse_labels(text: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    let mut rest = text.strip_prefix('{').ok_or("labels must start with {")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = rest.split_once("=\"").ok_or("a label needs =\"")?;
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape in a label value: {other:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) => return Err("newline in a label value".into()),
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name} twice"));
        }
        labels.push((name.to_owned(), value));
        rest = &after[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("expected , or }} after a label, got {rest:?}"));
        }
    }
}

/// The family a sample belongs to, given the declared types.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(kind) = types.get(base)
            && (kind == "histogram" || (kind == "summary" && suffix != "_bucket"))
        {
            return Some(base);
        }
    }
    None
}

/// Parses `text` strictly: HELP and TYPE before a family's samples and at most once each,
/// a TYPE for every sample's family, families not interleaved, no other comments or blank
/// lines, names and labels by the grammar, float values, no series twice, counters named
/// `_total` and never negative, histograms with increasing `le` and cumulative counts
/// ending in `+Inf` = `_count`. The text ends with a newline.
fn parse_exposition(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let mut helped = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    if !text.ends_with('\n') {
        return Err("the exposition must end with a newline".into());
    }
    for (number, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", number + 1);
        if line.is_empty() {
            return Err(at("blank line".into()));
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let (keyword, rest) = comment
                .split_once(' ')
                .ok_or_else(|| at("bare comment".into()))?;
            let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            if !is_metric_name(name) {
                return Err(at(format!("bad metric name {name:?}")));
            }
            if finished.contains(name) || out.types.contains_key(name) && keyword == "TYPE" {
                return Err(at(format!("{name} declared again")));
            }
            if current.as_deref() != Some(name) {
                if let Some(done) = current.take() {
                    finished.insert(done);
                }
                current = Some(name.to_owned());
            }
            match keyword {
                "HELP" => {
                    if !helped.insert(name.to_owned()) || rest.is_empty() {
                        return Err(at("HELP twice or empty".into()));
                    }
                }
                "TYPE" => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&rest) {
                        return Err(at(format!("unknown type {rest:?}")));
                    }
                    if rest == "counter" && !name.ends_with("_total") {
                        return Err(at("counters end in _total".into()));
                    }
                    out.types.insert(name.to_owned(), rest.to_owned());
                }
                _ => return Err(at("only HELP and TYPE comments".into())),
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| at("a sample needs a value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        let (mut labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let mut fields = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("one space before the value".into()))?
            .split(' ');
        let value = parse_value(fields.next().unwrap_or_default()).map_err(at)?;
        if let Some(timestamp) = fields.next() {
            timestamp
                .parse::<i64>()
                .map_err(|e| at(format!("bad timestamp: {e}")))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        let family = family_of(name, &out.types)
            .ok_or_else(|| at(format!("{name} has no TYPE line before it")))?;
        if current.as_deref() != Some(family) {
            return Err(at(format!("{name} outside its family's block")));
        }
        let kind = &out.types[family];
        if kind == "counter" && (value.is_nan() || value < 0.0) {
            return Err(at("a counter below 0".into()));
        }
        if kind == "histogram" && name.ends_with("_bucket") != labels.iter().any(|(n, _)| n == "le")
        {
            return Err(at("le on buckets, and only there".into()));
        }
        labels.sort();
        if out
            .samples
            .insert((name.to_owned(), labels), value)
            .is_some()
        {
            return Err(at("the same series twice".into()));
        }
    }
    check_histograms(&out)?;
    Ok(out)
}

fn check_histograms(out: &Exposition) -> Result<(), String> {
    for (family, _) in out.types.iter().filter(|(_, kind)| *kind == "histogram") {
        let bucket = format!("{family}_bucket");
        let mut buckets: Vec<(f64, f64)> = out
            .samples
            .iter()
            .filter(|((name, _), _)| *name == bucket)
            .map(|((_, labels), value)| {
                let le = labels.iter().find(|(n, _)| n == "le").map(|(_, v)| v);
                parse_value(le.map_or("", String::as_str)).map(|le| (le, *value))
            })
            .collect::<Result<_, _>>()?;
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
            return Err(format!("{family}: no +Inf bucket"));
        }
        if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
            return Err(format!("{family}: bucket counts not cumulative"));
        }
        let count = out.get(&format!("{family}_count"), &[]);
        if count != buckets.last().map(|b| b.1) || out.get(&format!("{family}_sum"), &[]).is_none()
        {
            return Err(format!(
                "{family}: _count must equal +Inf and _sum be there"
            ));
        }
    }
    Ok(())
}

#[test]
fn the_parser_refuses_what_prometheus_would() {
    let good = "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\\\"\"} 1\n";
    assert!(parse_exposition(good).is_ok());
    for bad in [
        "a_total 1\n",                                // no TYPE
        "# TYPE a counter\na 1\n",                    // counter not _total
        "# TYPE a gauge\na{k=\"v} 1\n",               // unterminated
        "# TYPE a gauge\na{1k=\"v\"} 1\n",            // label name
        "# TYPE a gauge\na 1,5\n",                    // value
        "# TYPE a gauge\na 1\na 2\n",                 // twice
        "# TYPE a gauge\n# TYPE b gauge\nb 1\na 1\n", // interleaved
        "# TYPE a gauge\na 1",                        // no final newline
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", // not cumulative
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn a_snapshot_renders_as_valid_exposition() {
    let snapshot = Snapshot {
        health: Health::SamplerStalled,
        sampler: SamplerStats {
            samples: 10,
            failures: 6,
            bus_errors: 1,
            not_found: 1,
            no_data: 1,
            driver_panics: 1,
            runaways: 1,
            open_errors: 1,
            consecutive_failures: 2,
            ..SamplerStats::default()
        },
        pipeline: PipelineCounts {
            samples: 10,
            windows: 3,
            function_errors: [("trap".to_owned(), 1), ("something_new".to_owned(), 2)]
                .into_iter()
                .collect(),
            fuel: HistogramSnapshot {
                buckets: vec![(1_000_000, 1), (10_000_000, 2)],
                sum: 9_000_000,
                count: 3,
            },
            function_sha256: "a\"b\\c\nd".into(),
            ..PipelineCounts::default()
        },
        lines: None,
        shipping: Some(ShippingCounts {
            shipped: 5,
            last_success_ms: 1_764_000_000_001,
            ..ShippingCounts::default()
        }),
        resident_memory_bytes: Some(1 << 22),
        start_time_seconds: 1_764_000_000.25,
        rollout: Some(edge_agent::registry::RolloutStatus {
            state: edge_agent::registry::RolloutState::Current,
            refused: 2,
            ..Default::default()
        }),
    };
    let text = render(&snapshot);
    let parsed = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(parsed.value("edge_agent_up", &[]), 0.0);
    assert_eq!(
        parsed.value(
            "edge_agent_function_errors_total",
            &[("kind", "something_new")]
        ),
        2.0
    );
    assert_eq!(
        parsed.value("edge_agent_function_info", &[("sha256", "a\"b\\c\nd")]),
        1.0
    );
    assert_eq!(
        parsed.value("edge_agent_window_fuel_bucket", &[("le", "+Inf")]),
        3.0
    );
    assert_eq!(
        parsed.value("edge_agent_last_ship_timestamp_seconds", &[]),
        1_764_000_000.001
    );
    for name in parsed.types.keys() {
        assert!(name.starts_with("edge_agent_"), "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// The running agent.

fn scrape(addr: SocketAddr) -> Exposition {
    let (status, head, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    parse_exposition(&body).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

/// Scrapes until `done` holds; the deadline is a failure guard.
fn until_metrics(
    addr: SocketAddr,
    what: &str,
    mut done: impl FnMut(&Exposition) -> bool,
) -> Exposition {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let metrics = scrape(addr);
        if done(&metrics) {
            return metrics;
        }
        assert!(
            Instant::now() < deadline,
            "never: {what}; last scrape: {metrics:#?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn write_config(dir: &Path, function: &Path, extra: &str) -> PathBuf {
    let tail = format!("\n[metrics]\nlisten = \"127.0.0.1:0\"\n{extra}");
    write_test_config(dir, function, "", &tail)
}

/// The edge ABI by hand: `init` answers a minimum window of 2, `execute` does `body`.
fn wat_function(body: &str, data: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
          (memory (export "memory") 1)
          {data}
          (func (export "edge_abi_version") (result i32) i32.const 1)
          (func (export "alloc") (param i32) (result i32) i32.const 1024)
          (func (export "dealloc") (param i32 i32))
          (func (export "init") (param i32 i32) (result i64)
            (i32.store8 (i32.const 4096) (i32.const 0))
            (i32.store8 (i32.const 4097) (i32.const 2))
            i64.const 0x0000100000000002)
          (func (export "execute") (param i32 i32) (result i64) {body}))"#
    ))
    .unwrap()
}

/// Flags every sample of a 64-sample window: postcard `Ok(vec![Verdict { is_anomaly:
/// true, score: None }; 64])` from a data segment.
fn flags_everything() -> Vec<u8> {
    let verdicts = "\\01\\00".repeat(64);
    wat_function(
        "i64.const 0x0000200000000082",
        &format!(r#"(data (i32.const 8192) "\00\40{verdicts}")"#),
    )
}

fn replace(path: &Path, bytes: &[u8]) {
    let temporary = path.with_extension("partial");
    std::fs::write(&temporary, bytes).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

fn start(config: &Path, extra: &[&str]) -> Agent {
    let mut args = vec!["run", "--simulate", "--speed", "2000", "--config"];
    args.push(config.to_str().unwrap());
    args.extend_from_slice(extra);
    Agent::start(Path::new(env!("CARGO_BIN_EXE_edge-agent")), &args)
}

#[test]
fn counters_move_when_windows_run_functions_swap_and_documents_ship() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("function.wasm");
    let traps = wat_function("unreachable", "");
    std::fs::write(&watched, &traps).unwrap();
    let server = FaultServer::healthy();
    let config = write_config(
        dir.path(),
        &watched,
        &format!(
            "\n[elasticsearch]\nurl = \"{}\"\nbatch_max_delay_ms = 20\nretry_initial_ms = 20\nretry_max_ms = 100\n",
            server.url
        ),
    );
    let mut agent = start(&config, &[]);
    let addr = agent.metrics_addr();
    let first = scrape(addr);
    assert!(first.get("edge_agent_spool_depth_documents", &[]).is_some());
    assert!(first.get("edge_agent_resident_memory_bytes", &[]).unwrap() > 1e6);

    // A function that traps on every window: windows run, each an error of kind "trap".
    let metrics = until_metrics(addr, "windows failing with a trap", |m| {
        m.value("edge_agent_function_errors_total", &[("kind", "trap")]) >= 2.0
    });
    assert!(metrics.value("edge_agent_windows_total", &[]) >= 2.0);
    assert!(metrics.value("edge_agent_samples_read_total", &[]) >= 64.0);
    assert_eq!(metrics.value("edge_agent_window_fuel_count", &[]), 0.0);

    // A good module is swapped in; its windows burn fuel and flag every sample.
    replace(&watched, &flags_everything());
    let metrics = until_metrics(addr, "a swap and judged windows", |m| {
        m.value("edge_agent_function_swaps_total", &[]) == 1.0
            && m.value("edge_agent_window_fuel_count", &[]) >= 2.0
    });
    assert!(metrics.value("edge_agent_anomalies_total", &[]) >= 16.0);
    assert!(metrics.value("edge_agent_window_fuel_sum", &[]) > 0.0);
    assert!(metrics.value("edge_agent_window_fuel_last", &[]) > 0.0);
    let sha = edge_tests::sha256_hex(&flags_everything());
    assert_eq!(
        metrics.value("edge_agent_function_info", &[("sha256", &sha)]),
        1.0
    );

    // A trapping module again: refused by its canary run.
    replace(&watched, &traps);
    until_metrics(addr, "a refused swap", |m| {
        m.value("edge_agent_function_swaps_refused_total", &[]) == 1.0
    });

    // Documents reach the server.
    let metrics = until_metrics(addr, "documents shipped", |m| {
        m.value("edge_agent_documents_shipped_total", &[]) >= 64.0
    });
    let shipped_at = metrics.value("edge_agent_last_ship_timestamp_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - 120.0..=now + 1.0).contains(&shipped_at),
        "{shipped_at}"
    );

    // 429 for the next three requests: the documents are sent again.
    let from = server.requests().len();
    server.set_script(move |_, n| {
        if n < from + 3 {
            Reply::Status(429, String::new())
        } else {
            Reply::Bulk
        }
    });
    until_metrics(addr, "documents retried", |m| {
        m.value("edge_agent_documents_retried_total", &[]) > 0.0
    });

    // A mapping error for every document of the next request: dead-lettered.
    let from = server.requests().len();
    server.set_script(move |request, n| {
        if n == from {
            let refused = request
                .bulk_documents()
                .into_iter()
                .map(|(id, _)| (id, 400, "document_parsing_exception"))
                .collect();
            Reply::BulkExcept(refused)
        } else {
            Reply::Bulk
        }
    });
    until_metrics(addr, "documents dead-lettered", |m| {
        m.value("edge_agent_documents_dead_lettered_total", &[]) > 0.0
    });

    // "starting" until the run loop's first look at progress, then what it found.
    let health = until_health(addr, 200);
    assert_eq!(health["status"], "ok");
    assert!(health["windows"].as_u64().unwrap() > 0);
    let (status, _, _) = http_get(addr, "/nowhere");
    assert_eq!(status, 404);

    let (status, _, logs) = agent.stop();
    assert!(status.success(), "{status}; logs:\n{}", logs.join("\n"));
}

#[test]
fn sensor_faults_are_counted_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        anomaly_wasm(),
        "", // the [sensor] section below is the one that counts
    );
    // No chip at all: the I2C device does not exist, as on a Pi with I2C turned off.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[sensor]\n",
        &format!(
            "[sensor]\ni2c_device = \"{}\"\n",
            dir.path().join("i2c-9").display()
        ),
    );
    std::fs::write(&config, text).unwrap();
    let mut agent = Agent::start(
        Path::new(env!("CARGO_BIN_EXE_edge-agent")),
        &["run", "--config", config.to_str().unwrap()],
    );
    let addr = agent.metrics_addr();
    let before = scrape(addr).value("edge_agent_sensor_faults_total", &[("kind", "open_error")]);
    let metrics = until_metrics(addr, "open errors counted", |m| {
        m.value("edge_agent_sensor_faults_total", &[("kind", "open_error")]) > before
    });
    assert_eq!(metrics.value("edge_agent_samples_read_total", &[]), 0.0);
    assert_eq!(
        metrics.value("edge_agent_sensor_faults_total", &[("kind", "bus_error")]),
        0.0
    );
    assert!(metrics.value("edge_agent_sensor_consecutive_failures", &[]) >= 1.0);
    assert!(
        metrics
            .get("edge_agent_spool_depth_documents", &[])
            .is_none()
    );
    // A loose wire is no stall (no restart loop), and /health says why.
    let health = until_health(addr, 200);
    let sensor = health["sensor"].as_str().unwrap_or_default();
    assert!(
        sensor.starts_with("not answering") && sensor.contains("does not open"),
        "{health}"
    );
    let (status, _, logs) = agent.stop();
    assert!(status.success(), "{status}; logs:\n{}", logs.join("\n"));
}

/// A window that takes long (here a guest spinning until its deadline) is work, not a
/// stall: /health stays 200 while windows fail at their deadline.
#[test]
fn a_slow_window_is_not_a_stall() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("function.wasm");
    std::fs::write(&watched, wat_function("(loop br 0) i64.const 0", "")).unwrap();
    let config = write_config(dir.path(), &watched, "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "fuel_per_call = 300000000",
        "fuel_per_call = 1000000000000\ndeadline_ms = 400",
    );
    std::fs::write(&config, text).unwrap();
    let mut agent = start(&config, &[]);
    let addr = agent.metrics_addr();
    // Past start-up ("starting" answers 503 too), every answer must be 200.
    until_health(addr, 200);
    let mut answers = Vec::new();
    until_metrics(addr, "four windows stopped at their deadline", |m| {
        answers.push(http_get(addr, "/health").0);
        m.value("edge_agent_function_errors_total", &[("kind", "deadline")]) >= 4.0
    });
    assert!(answers.iter().all(|&status| status == 200), "{answers:?}");
    assert_eq!(scrape(addr).value("edge_agent_up", &[]), 1.0);
    agent.kill();
}

/// S-H-ESD on N = 4096 windows costs what it costs (0.2 s here, seconds under qemu, as on
/// a Pi): /health stays 200 through several of them, whatever their length.
#[test]
fn long_windows_of_the_real_function_are_not_a_stall() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_test_config(
        dir.path(),
        anomaly_wasm(),
        "[function.params]\nperiod = 64\n\n",
        "\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("fuel_per_call = 300000000", "fuel_per_call = 2000000000")
        .replace("size = 64\nhop = 16", "size = 4096\nhop = 512");
    std::fs::write(&config, text).unwrap();
    let mut agent = start(&config, &[]);
    let addr = agent.metrics_addr();
    until_health(addr, 200);
    let mut answers = Vec::new();
    until_metrics(addr, "three windows of 4096 samples", |m| {
        answers.push(http_get(addr, "/health").0);
        m.value("edge_agent_windows_total", &[]) >= 3.0
    });
    assert!(answers.iter().all(|&status| status == 200), "{answers:?}");
    agent.kill();
}

/// A pipeline that really stops (its NDJSON output is a pipe nobody reads) is reported
/// stalled once it has made no progress for longer than its window could take.
#[test]
fn health_says_what_the_watchdog_hears() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("function.wasm");
    std::fs::write(&watched, flags_everything()).unwrap();
    let config = write_config(dir.path(), &watched, "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "fuel_per_call = 300000000",
        "fuel_per_call = 300000000\ndeadline_ms = 200",
    );
    std::fs::write(&config, text).unwrap();
    let fifo = dir.path().join("verdicts.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // Opened for reading (so the agent's open succeeds) and never read: once the pipe's
    // buffer is full the sink blocks, and the pipeline with it.
    let _reader = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(0o4000) // O_NONBLOCK: the open must not wait for a writer
            .open(&fifo)
            .unwrap()
    };
    let mut agent = start(&config, &["--output", fifo.to_str().unwrap()]);
    let addr = agent.metrics_addr();
    until_health(addr, 200);
    let health = until_health(addr, 503);
    assert_eq!(health["status"], "pipeline stalled");
    assert_eq!(scrape(addr).value("edge_agent_up", &[]), 0.0);
    agent.kill();
}

#[test]
fn an_address_in_use_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = write_config(dir.path(), anomaly_wasm(), "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("127.0.0.1:0", &addr.to_string());
    std::fs::write(&config, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .args(["run", "--simulate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr} for metrics")),
        "{stderr}"
    );

    // A malformed address is a configuration error, with its line.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&addr.to_string(), "localhost");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .args(["run", "--simulate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`metrics.listen`"));
}
