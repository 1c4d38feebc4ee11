//! Lines from real senders, end to end through the binary: a UTF-8 byte order mark at
//! the start of a stream, a file or a datagram; a header that lacks the time column; a
//! sender that dies mid-line; the counters adding up at every scrape; the UDP socket's
//! kernel drops; a time far in the future; times without an offset; a last line cut off
//! by a clean close. The truth is the NDJSON the agent writes and its `/metrics`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_tests::agent::{Agent, time_ms};
use edge_tests::anomaly_wasm;
use edge_tests::lines::{PATIENCE, lines_addr, scrape, until_metrics, value};
use serde_json::Value;

/// Unix ms of the first sample each test sends: 2026-01-01T00:00:00Z, in the past.
const T0: i64 = 1_767_225_600_000;
const BOM: &str = "\u{feff}";

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_edge-agent"))
}

/// A lines agent on `source` (keys under `[source]`), windows of 8 every 4.
fn write_config(dir: &Path, source: &str) -> PathBuf {
    edge_tests::lines::write_config(dir, anomaly_wasm(), source)
}

fn start(config: &Path) -> Agent {
    Agent::start(binary(), &["run", "--config", config.to_str().unwrap()])
}

fn refused(source: &str, reason: &str) -> String {
    format!("edge_agent_lines_refused_total{{source=\"{source}\",reason=\"{reason}\"}}")
}

fn accepted(source: &str) -> String {
    format!("edge_agent_lines_accepted_total{{source=\"{source}\"}}")
}

/// Lines read, accepted, refused (all reasons), headers, from one scrape.
fn books(body: &str, source: &str) -> (u64, u64, u64, u64) {
    let read = value(
        body,
        &format!("edge_agent_lines_read_total{{source=\"{source}\"}}"),
    );
    let refused: u64 = body
        .lines()
        .filter(|l| {
            l.starts_with(&format!(
                "edge_agent_lines_refused_total{{source=\"{source}\""
            ))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    (
        read.unwrap_or(0),
        value(body, &accepted(source)).unwrap_or(0),
        refused,
        value(
            body,
            &format!("edge_agent_lines_headers_total{{source=\"{source}\"}}"),
        )
        .unwrap_or(0),
    )
}

/// `(sensor, Unix ms, value)` of every verdict, sorted by sensor and time.
fn judged(verdicts: &[Value]) -> Vec<(String, i64, f64)> {
    let mut out: Vec<(String, i64, f64)> = verdicts
        .iter()
        .map(|v| {
            (
                v["sensor_id"].as_str().unwrap().to_owned(),
                time_ms(v, "@timestamp"),
                v["air_quality"].as_f64().unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    out
}

/// Runs the agent on `input` as its standard input; answers its verdicts and its log.
fn run_stdin(dir: &Path, source: &str, input: &[u8]) -> (Vec<Value>, String) {
    let config = write_config(dir, &format!("transport = \"stdin\"\n{source}"));
    let file = dir.join("input.csv");
    std::fs::write(&file, input).unwrap();
    let out = Command::new(binary())
        .args(["run", "--config", config.to_str().unwrap()])
        .stdin(std::fs::File::open(&file).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{}; logs:\n{logs}", out.status);
    let verdicts = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (verdicts, logs)
}

fn send(addr: SocketAddr, text: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(text.as_bytes()).unwrap();
    stream
}

/// `n` rows `timestamp,sensor_id,value` of `sensor`, a second apart from `T0`.
fn rows(sensor: &str, n: i64) -> (String, Vec<(String, i64, f64)>) {
    let mut text = String::new();
    let mut want = Vec::new();
    for i in 0..n {
        let ms = T0 + i * 1000;
        text += &format!("{ms},{sensor},{}\n", 10 + i % 3);
        want.push((sensor.to_owned(), ms, (10 + i % 3) as f64));
    }
    (text, want)
}

#[test]
fn a_byte_order_mark_is_not_part_of_the_first_line_on_any_transport() {
    // TCP: CSV with a header, and NDJSON, each stream starting with a BOM.
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "format = \"auto\"\ntime_format = \"unix_ms\"");
    let mut agent = start(&config);
    let addr = lines_addr(&mut agent);
    let metrics = agent.metrics_addr();
    let (csv, mut want) = rows("excel", 12);
    let a = send(addr, &format!("{BOM}timestamp,sensor_id,value\r\n{csv}"));
    let json = format!("{BOM}{{\"sensor_id\":\"esp\",\"timestamp\":{T0},\"value\":5}}\n");
    let b = send(addr, &json);
    want.push(("esp".into(), T0, 5.0));
    until_metrics(
        metrics,
        &[
            (&accepted("tcp"), 13),
            ("edge_agent_lines_headers_total{source=\"tcp\"}", 1),
        ],
    );
    drop((a, b));
    let (status, verdicts, logs) = agent.stop();
    assert!(status.success(), "{}", logs.join("\n"));
    want.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.cmp(&y.1)));
    assert_eq!(judged(&verdicts), want, "the sender's times, not receipt");

    // Standard input: a file as Excel's "CSV UTF-8" writes it.
    let dir = tempfile::tempdir().unwrap();
    let (csv, want) = rows("file", 10);
    let (verdicts, logs) = run_stdin(
        dir.path(),
        "time_format = \"unix_ms\"",
        format!("{BOM}timestamp,sensor_id,value\r\n{csv}").as_bytes(),
    );
    assert_eq!(judged(&verdicts), want, "{logs}");

    // UDP: a datagram starting with a BOM.
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "transport = \"udp\"\ntime_format = \"unix_ms\"\ncolumns = [\"timestamp\", \"sensor_id\", \"value\"]",
    );
    let mut agent = start(&config);
    let addr = lines_addr(&mut agent);
    let metrics = agent.metrics_addr();
    let (csv, want) = rows("udp", 8);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .send_to(format!("{BOM}{csv}").as_bytes(), addr)
        .unwrap();
    until_metrics(metrics, &[(&accepted("udp"), 8)]);
    let (status, verdicts, logs) = agent.stop();
    assert!(status.success(), "{}", logs.join("\n"));
    assert_eq!(judged(&verdicts), want);
}

#[test]
fn a_header_without_the_time_column_is_refused_loudly_not_stamped_on_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "time_format = \"unix_ms\"");
    let mut agent = start(&config);
    let addr = lines_addr(&mut agent);
    let metrics = agent.metrics_addr();
    // A header spelt otherwise than the configuration, then three rows.
    let (csv, _) = rows("hall", 3);
    let stream = send(addr, &format!("Timestamp,sensor_id,value\n{csv}"));
    // Every line refused as a bad header (each is tried as the header in turn); none
    // accepted with the time of receipt.
    until_metrics(
        metrics,
        &[
            (&refused("tcp", "bad_header"), 4),
            (&accepted("tcp"), 0),
            ("edge_agent_lines_read_total{source=\"tcp\"}", 4),
        ],
    );
    drop(stream);
    let (status, verdicts, logs) = agent.stop();
    assert!(status.success(), "{}", logs.join("\n"));
    assert!(verdicts.is_empty(), "{verdicts:?}");
    let warning = logs
        .iter()
        .find(|l| l.contains("refused (bad_header)"))
        .expect("the header is logged");
    assert!(
        warning.contains("\"timestamp\" (time_field"),
        "the log says what a header needs: {warning}"
    );

    // `time_field = ""` says the lines carry no time: then such a header is fine.
    let dir = tempfile::tempdir().unwrap();
    let (verdicts, logs) = run_stdin(
        dir.path(),
        "time_field = \"\"",
        b"sensor_id,value\nhall,1\nhall,2\nhall,3\nhall,4\n",
    );
    assert_eq!(verdicts.len(), 4, "{logs}");
}

#[test]
fn a_sender_that_dies_mid_line_is_closed_when_idle_and_frees_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "time_format = \"unix_ms\"\nmax_connections = 2\nidle_timeout_s = 1\ncolumns = [\"sensor_id\", \"value\"]",
    );
    let mut agent = start(&config);
    let addr = lines_addr(&mut agent);
    let metrics = agent.metrics_addr();
    // Two senders lose power after half a line: no FIN, no more bytes.
    let dead: Vec<TcpStream> = (1..=2).map(|n| send(addr, &format!("p{n},1"))).collect();
    until_metrics(
        metrics,
        &[("edge_agent_lines_connections_open{source=\"tcp\"}", 2)],
    );
    // TCP keepalive is on for each of them: the kernel runs its keepalive timer (timer
    // 2 in /proc/net/tcp) on the agent's end of both connections.
    for stream in &dead {
        let timer = tcp_timer(addr.port(), stream.local_addr().unwrap().port());
        assert_eq!(timer, Some(2), "the agent's socket has no keepalive timer");
    }
    let since = Instant::now();
    // Idle is "no byte received": both are closed after about idle_timeout_s, their half
    // lines counted as incomplete.
    until_metrics(
        metrics,
        &[
            (
                "edge_agent_lines_connections_idle_closed_total{source=\"tcp\"}",
                2,
            ),
            ("edge_agent_lines_connections_open{source=\"tcp\"}", 0),
            (&refused("tcp", "incomplete"), 2),
        ],
    );
    assert!(
        since.elapsed() < Duration::from_secs(10),
        "closed only after {:?}",
        since.elapsed()
    );
    // The agent closed them: a read on each sees the end of the stream.
    for mut stream in dead {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).unwrap(), 0);
    }
    // And another sensor gets in.
    let alive = send(addr, "p3,1\np3,2\n");
    until_metrics(metrics, &[(&accepted("tcp"), 2)]);
    drop(alive);
    let (status, verdicts, logs) = agent.stop();
    assert!(status.success(), "{}", logs.join("\n"));
    assert!(
        verdicts.iter().all(|v| v["sensor_id"] == "p3"),
        "{verdicts:?}"
    );
}

/// The `tr` (active timer) of the established loopback TCP socket from `local` to
/// `remote` in /proc/net/tcp: 0 none, 1 retransmit, 2 keepalive, 4 zero-window probe.
fn tcp_timer(local: u16, remote: u16) -> Option<u32> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let port = |field: &str| u16::from_str_radix(field.rsplit(':').next()?, 16).ok();
        let (from, to) = (port(fields.get(1)?)?, port(fields.get(2)?)?);
        // 01: established.
        if from != local || to != remote || *fields.get(3)? != "01" {
            return None;
        }
        fields.get(5)?.split(':').next()?.parse().ok()
    })
}

#[test]
fn lines_read_are_accepted_refused_or_headers_at_every_scrape() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "time_format = \"unix_ms\"");
    let mut agent = start(&config);
    let addr = lines_addr(&mut agent);
    let metrics = agent.metrics_addr();
    let clients: Vec<_> = (0..4)
        .map(|c| {
            std::thread::spawn(move || {
                let mut text = String::from("timestamp,sensor_id,value\n");
                for i in 0..300i64 {
                    text += &format!("{},c{c},{}\n", T0 + i * 1000, i % 7);
                    if i % 10 == 0 {
                        text += "not,a,number,row\n";
                    }
                }
                let mut stream = TcpStream::connect(addr).unwrap();
                for chunk in text.as_bytes().chunks(512) {
                    stream.write_all(chunk).unwrap();
                }
                stream
            })
        })
        .collect();
    let mut scrapes = 0;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let body = scrape(metrics);
        let (read, accepted, refused, headers) = books(&body, "tcp");
        assert_eq!(
            read,
            accepted + refused + headers,
            "read = accepted + refused + headers, at scrape {scrapes}:\n{body}"
        );
        scrapes += 1;
        if accepted == 1200 && refused == 120 && headers == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        // Scraping as the lines arrive; the deadline above is the guard.
        std::thread::sleep(Duration::from_millis(5));
    }
    let streams: Vec<TcpStream> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    drop(streams);
    let (status, _, logs) = agent.stop();
    assert!(status.success(), "{}", logs.join("\n"));
}

#[test]
fn udp_drops_in_the_kernel_are_counted_and_its_buffer_configured() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "transport = \"udp\"\ntime_format = \"unix_ms\"\ncolumns = [\"timestamp\", \"sensor_id\", \"value\"]\nudp_receive_buffer_bytes = 4096\nqueue = 64",
    );
    let mut agent = start(&config);
    let addr = lines_addr(&mut agent);
    let metrics = agent.metrics_addr();
    let drops = "edge_agent_lines_kernel_drops_total{source=\"udp\"}";
    assert_eq!(
        value(&scrape(metrics), drops),
        Some(0),
        "the kernel's count is exposed from the start"
    );
    assert!(
        agent
            .logs
            .iter()
            .any(|l| l.contains("UDP receive buffer: ")),
        "{:?}",
        agent.logs
    );
    // A flood far beyond an 8 KiB buffer: one line per datagram.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sent: u64 = 20_000;
    for i in 0..sent {
        let line = format!("{},flood,{}\n", T0 + i as i64, i % 5);
        socket.send_to(line.as_bytes(), addr).unwrap();
    }
    // Every datagram is somewhere: accepted, refused (a full queue), or dropped by the
    // kernel before the agent could read it.
    let deadline = Instant::now() + PATIENCE;
    let (accepted_n, refused_n, dropped) = loop {
        let body = scrape(metrics);
        let (_, accepted, refused, _) = books(&body, "udp");
        let dropped = value(&body, drops).unwrap_or(0);
        if accepted + refused + dropped == sent {
            break (accepted, refused, dropped);
        }
        assert!(
            Instant::now() < deadline,
            "{accepted} + {refused} + {dropped} != {sent}\n{body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        dropped > 0,
        "a flood into 8 KiB drops some: {accepted_n} accepted, {refused_n} refused"
    );
    let (status, _, logs) = agent.stop();
    assert!(status.success(), "{}", logs.join("\n"));
}

#[test]
fn a_time_far_ahead_is_refused_and_does_not_poison_its_sensor() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "time_format = \"unix_ms\"");
    let mut agent = start(&config);
    let addr = lines_addr(&mut agent);
    let metrics = agent.metrics_addr();
    let (csv, want) = rows("clock", 12);
    let year_2099 = 4_070_908_800_000i64;
    let stream = send(
        addr,
        &format!("timestamp,sensor_id,value\n{year_2099},clock,1\n{csv}"),
    );
    until_metrics(
        metrics,
        &[
            (&refused("tcp", "future_time"), 1),
            (&accepted("tcp"), 12),
            (&refused("tcp", "time_went_back"), 0),
        ],
    );
    drop(stream);
    let (status, verdicts, logs) = agent.stop();
    assert!(status.success(), "{}", logs.join("\n"));
    assert_eq!(judged(&verdicts), want);

    // The bound is configurable: a sender's clock ten minutes fast is refused at 300 s
    // (the default) and taken at 3600 s.
    let ahead = format!(
        "timestamp,sensor_id,value\n{},fast,1\n",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            + 600_000
    );
    for (bound, judged_n) in [("", 0), ("max_future_s = 3600", 1)] {
        let dir = tempfile::tempdir().unwrap();
        let (verdicts, logs) = run_stdin(
            dir.path(),
            &format!("time_format = \"unix_ms\"\n{bound}"),
            ahead.as_bytes(),
        );
        assert_eq!(verdicts.len(), judged_n, "{bound}: {logs}");
    }
}

#[test]
fn times_without_an_offset_follow_one_rule_whatever_the_separator() {
    let input = "timestamp,sensor_id,value\n\
                 2026-01-01 00:00:05,z,1\n\
                 2026-01-01T00:00:06,z,2\n\
                 2026-01-01t00:00:07.5,z,3\n\
                 2026-01-01T00:00:08Z,z,4\n\
                 2026-01-01T01:00:09+01:00,z,5\n";
    let utc = |s: i64| T0 + s * 1000;
    for (rule, want) in [
        ("", vec![utc(5), utc(6), utc(7) + 500, utc(8), utc(9)]),
        (
            "time_without_offset = \"-02:00\"",
            vec![
                utc(5) + 7_200_000,
                utc(6) + 7_200_000,
                utc(7) + 7_200_500,
                utc(8),
                utc(9),
            ],
        ),
        ("time_without_offset = \"refuse\"", vec![utc(8), utc(9)]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (verdicts, logs) = run_stdin(dir.path(), rule, input.as_bytes());
        let times: Vec<i64> = judged(&verdicts).into_iter().map(|(_, t, _)| t).collect();
        // With -02:00, 00:00:05 is 02:00:05Z: after the two lines with an offset, which
        // then go back in time and are refused.
        let want = if rule.contains("-02:00") {
            want[..3].to_vec()
        } else {
            want
        };
        assert_eq!(times, want, "{rule}: {logs}");
    }
}

#[test]
fn a_last_line_cut_off_by_a_clean_close_is_refused_on_tcp_and_stdin_alike() {
    // TCP: `…,12` then FIN (the sender meant 123).
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "time_format = \"unix_ms\"");
    let mut agent = start(&config);
    let addr = lines_addr(&mut agent);
    let metrics = agent.metrics_addr();
    let (csv, want) = rows("cut", 8);
    let stream = send(
        addr,
        &format!("timestamp,sensor_id,value\n{csv}{},cut,12", T0 + 60_000),
    );
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    until_metrics(
        metrics,
        &[
            (&accepted("tcp"), 8),
            (&refused("tcp", "incomplete"), 1),
            ("edge_agent_lines_connections_open{source=\"tcp\"}", 0),
        ],
    );
    drop(stream);
    let (status, verdicts, logs) = agent.stop();
    assert!(status.success(), "{}", logs.join("\n"));
    assert_eq!(judged(&verdicts), want);

    // Standard input: a file without its last newline, the same rule.
    let dir = tempfile::tempdir().unwrap();
    let (verdicts, logs) = run_stdin(
        dir.path(),
        "time_format = \"unix_ms\"",
        format!("timestamp,sensor_id,value\n{csv}{},cut,12", T0 + 60_000).as_bytes(),
    );
    assert_eq!(judged(&verdicts), want, "{logs}");
    assert!(logs.contains("refused (incomplete)"), "{logs}");
    assert!(logs.contains("1 refused"), "{logs}");
}

/// A finite input judged whole, whose output (the only copy, no upstream) refused its
/// verdicts: a full disk (`/dev/full`). The run did not do its job, and its exit status
/// says so with the count, instead of 0.
#[test]
fn a_finite_input_whose_output_refused_its_verdicts_does_not_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "transport = \"stdin\"");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += "\n[output]\npath = \"/dev/full\"\n";
    std::fs::write(&config, text).unwrap();
    let (rows, want) = rows("s", 20);
    let file = dir.path().join("input.csv");
    std::fs::write(&file, format!("timestamp,sensor_id,value\n{rows}")).unwrap();
    let out = Command::new(binary())
        .args(["run", "--config", config.to_str().unwrap()])
        .stdin(std::fs::File::open(&file).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "logs:\n{logs}");
    assert!(
        logs.contains(&format!(
            "{} verdicts could not be written to the output",
            want.len()
        )),
        "{logs}"
    );

    // The same input with an output that takes it: exit 0, every verdict written.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "/dev/full",
        &dir.path().join("out.ndjson").display().to_string(),
    );
    std::fs::write(&config, text).unwrap();
    let out = Command::new(binary())
        .args(["run", "--config", config.to_str().unwrap()])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(dir.path().join("out.ndjson")).unwrap();
    assert_eq!(written.lines().count(), want.len());
}

/// A live agent whose output refuses its verdicts (`/dev/full`): every verdict it could
/// not write is in a metric, so the counters say where each one went.
#[test]
fn verdicts_the_output_refused_are_counted_in_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "time_format = \"unix_ms\"");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += "\n[output]\npath = \"/dev/full\"\n";
    std::fs::write(&config, text).unwrap();
    let mut agent = start(&config);
    let addr = lines_addr(&mut agent);
    let metrics = agent.metrics_addr();
    let (rows, _) = rows("s", 16);
    let _client = send(addr, &format!("timestamp,sensor_id,value\n{rows}"));
    // Windows of 8 every 4 over 16 samples: the first window decides 8, then 4 and 4.
    until_metrics(
        metrics,
        &[
            ("edge_agent_verdicts_total", 16),
            ("edge_agent_output_unwritten_total", 16),
        ],
    );
    let (status, _, logs) = agent.stop();
    assert!(status.success(), "{}", logs.join("\n"));
}
