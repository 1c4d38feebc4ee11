//! The lines source's figures: lines per second parsed (CSV, NDJSON) and accepted over
//! TCP into the ring (parsing, the sensor table, the queue; the function aside), each
//! against a baseline measured in the same run (splitting the same bytes into lines;
//! the same bytes through a TCP socket to a reader that only counts newlines); and the
//! agent's resident memory with 100 sensors of 1024-sample windows, against the same
//! agent before any line; lines accepted over TLS (rustls, TLS 1.3, ECDSA P-256) against
//! plain TCP, both measured here; and the gateway's figure: the agent's CPU per
//! sensor-hour at 1 Hz (N=1024, H=60, S-H-ESD period 60) for 1 and 100 sensors over TCP,
//! and so how many such sensors one core judges in real time (and, with
//! `EDGE_BENCH_FUNCTION_BASELINE` naming another build of the function's `.wasm`, the same
//! with it, for a ratio in one run). Prints them; asserts nothing about time.
//!
//! `cargo bench -p edge-agent --bench lines`

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edge_agent::sensor::lines::{self, Format, LineParser, SourceConfig, SourceKind, TimeFormat};
use edge_agent::sensor::{Sample, sample_queue};
use edge_tests::agent::{Agent, PATIENCE, cpu_seconds, http_get};
use edge_tests::anomaly_wasm;
use edge_tests::pki::{Pki, connect};

const PARSE_LINES: usize = 1_000_000;
const TCP_LINES: usize = 1_000_000;
const SENSORS: usize = 100;
const WINDOW: usize = 1024;
const HOP: usize = 60;
const T0: i64 = 1_767_225_600_000;

fn main() {
    let csv = csv_lines(PARSE_LINES, SENSORS);
    let ndjson = ndjson_lines(PARSE_LINES / 4, SENSORS);
    println!("lines source benchmark ({} cores)", cores());

    let split = rate(PARSE_LINES, || split_only(&csv));
    for (name, format, text, n) in [
        ("csv", Format::Csv, &csv, PARSE_LINES),
        ("ndjson", Format::Ndjson, &ndjson, PARSE_LINES / 4),
    ] {
        let parsed = rate(n, || parse_all(format, text));
        println!(
            "parse {name:6}: {:>12.0} lines/s ({:.2}x of splitting the same bytes into lines, {:.0} lines/s)",
            parsed,
            parsed / split,
            split
        );
    }

    let raw = tcp_baseline(&csv);
    let pki = Pki::new("bench CA");
    let files = tempfile::tempdir().expect("a temp dir");
    let (cert, key) = pki
        .issue(&["127.0.0.1"], false)
        .write(files.path(), "server");
    // Plain and TLS in turn, the best of three each: a loaded machine's noise falls on both.
    let (mut accepted, mut over_tls) = (0.0f64, 0.0f64);
    for _ in 0..3 {
        accepted = accepted.max(tcp_accepted(&csv, None));
        over_tls = over_tls.max(tcp_accepted(&csv, Some((&pki, &cert, &key))));
    }
    println!(
        "tcp accept: {accepted:>12.0} lines/s parsed and queued ({:.2}x of the same bytes through a socket, counting newlines only, {raw:.0} lines/s)",
        accepted / raw
    );
    println!(
        "tls accept: {over_tls:>12.0} lines/s parsed and queued ({:.2}x of plain TCP's {accepted:.0} lines/s, this run)",
        over_tls / accepted
    );

    let (idle, full, windowed) = rss_with_sensors();
    println!(
        "rss: {idle} KiB before any line, {full} KiB with {SENSORS} sensors of {WINDOW}-sample windows ({:.2}x; {} KiB more, {:.1} KiB a sensor; the samples alone {} KiB)",
        full as f64 / idle as f64,
        full.saturating_sub(idle),
        full.saturating_sub(idle) as f64 / SENSORS as f64,
        windowed / 1024
    );

    println!(
        "gateway (1 Hz lines over TCP, N={WINDOW}, H={HOP}, S-H-ESD period 60; the agent's user + system CPU once every first window is judged):"
    );
    let baseline = std::env::var_os("EDGE_BENCH_FUNCTION_BASELINE").map(PathBuf::from);
    for (sensors, windows) in [(1, 60), (SENSORS, 5)] {
        let per_hour = gateway_cpu_per_sensor_hour(anomaly_wasm(), sensors, windows);
        print!(
            "- {sensors:3} sensor(s), {windows} windows each: {per_hour:.2} s CPU per sensor-hour ({:.3}% of a core per sensor): {:.0} such sensors per core in real time",
            100.0 * per_hour / 3600.0,
            3600.0 / per_hour
        );
        match &baseline {
            Some(function) => {
                let before = gateway_cpu_per_sensor_hour(function, sensors, windows);
                println!(
                    "; {before:.2} s with {} ({:.2}x)",
                    function.display(),
                    before / per_hour
                );
            }
            None => println!(),
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Lines per second of `work` over `lines` lines: the best of three runs.
fn rate(lines: usize, mut work: impl FnMut() -> usize) -> f64 {
    (0..3)
        .map(|_| {
            let started = Instant::now();
            let n = black_box(work());
            assert_eq!(n, lines);
            lines as f64 / started.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

fn csv_lines(n: usize, sensors: usize) -> String {
    let mut text = String::from("timestamp,sensor_id,value,temperature\n");
    text.push_str(&csv_rows(0..n, sensors));
    text
}

/// Rows `range` of [`csv_lines`] (without its header): sensor `i % sensors` at second
/// `i / sensors`.
fn csv_rows(range: std::ops::Range<usize>, sensors: usize) -> String {
    let mut text = String::with_capacity(range.len() * 40);
    for i in range {
        let ms = T0 + (i / sensors) as i64 * 1000;
        text.push_str(&format!(
            "{ms},sensor-{:03},{}.{},21.5\n",
            i % sensors,
            i % 97,
            i % 10
        ));
    }
    text
}

fn ndjson_lines(n: usize, sensors: usize) -> String {
    let mut text = String::with_capacity(n * 80);
    for i in 0..n {
        let ms = T0 + (i / sensors) as i64 * 1000;
        text.push_str(&format!(
            "{{\"timestamp\":{ms},\"sensor_id\":\"sensor-{:03}\",\"value\":{}.{},\"temperature\":21.5}}\n",
            i % sensors,
            i % 97,
            i % 10
        ));
    }
    text
}

fn config(format: Format) -> SourceConfig {
    SourceConfig {
        kind: SourceKind::Lines,
        format,
        time_format: TimeFormat::UnixMs,
        ..SourceConfig::default()
    }
}

fn split_only(text: &str) -> usize {
    let mut lines = 0;
    for line in text.lines().skip(1) {
        black_box(line.len());
        lines += 1;
    }
    lines
}

fn parse_all(format: Format, text: &str) -> usize {
    let mut parser = LineParser::new(&config(format));
    let mut readings = 0;
    for line in text.lines() {
        if let Ok(lines::Parsed::Reading(reading)) = parser.parse(line) {
            black_box(&reading);
            readings += 1;
        }
    }
    readings
}

/// The same bytes through a loopback socket into a reader that counts newlines.
fn tcp_baseline(text: &str) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let bytes = text.as_bytes().to_vec();
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.write_all(&bytes).expect("write");
    });
    let (stream, _) = listener.accept().expect("accept");
    let mut reader = BufReader::new(stream);
    let mut lines = 0usize;
    loop {
        let buf = reader.fill_buf().expect("read");
        if buf.is_empty() {
            break;
        }
        lines += buf.iter().filter(|&&b| b == b'\n').count();
        let n = buf.len();
        reader.consume(n);
    }
    writer.join().expect("writer");
    assert_eq!(lines, TCP_LINES + 1);
    TCP_LINES as f64 / started.elapsed().as_secs_f64()
}

/// The lines source on TCP (with TLS: the CA and the server's certificate and key), a
/// thread draining the ring as the pipeline would.
fn tcp_accepted(text: &str, tls: Option<(&Pki, &Path, &Path)>) -> f64 {
    let (writer, reader) = sample_queue(4096).expect("queue");
    let config = SourceConfig {
        listen: "127.0.0.1:0".into(),
        max_sensors: SENSORS,
        tls_cert: tls.map(|(_, cert, _)| cert.to_path_buf()),
        tls_key: tls.map(|(_, _, key)| key.to_path_buf()),
        ..config(Format::Csv)
    };
    let source = lines::start(&config, "bench", writer).expect("the source starts");
    let addr = source.local_addr().expect("an address");
    let bytes = text.as_bytes().to_vec();
    let drain = std::thread::spawn(move || {
        let mut batch: Vec<Sample> = Vec::with_capacity(4096);
        let mut taken = 0usize;
        while taken < TCP_LINES {
            reader.wait(Duration::from_millis(200));
            taken += reader.drain_into(&mut batch);
            batch.clear();
        }
        taken
    });
    let started = Instant::now();
    // The handshake is inside the time: one per connection, as a sensor's.
    match tls {
        Some((pki, _, _)) => {
            let mut stream = connect(addr, pki.client(None));
            stream.write_all(&bytes).expect("write");
            stream.flush().expect("flush");
        }
        None => {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream.write_all(&bytes).expect("write");
        }
    }
    let taken = drain.join().expect("drain");
    let elapsed = started.elapsed();
    let counts = source.stop();
    assert_eq!((taken, counts.accepted as usize), (TCP_LINES, TCP_LINES));
    TCP_LINES as f64 / elapsed.as_secs_f64()
}

/// The agent with 100 sensors' windows full: (RSS before any line, RSS after, bytes the
/// windows' samples take), RSS from the agent's own gauge.
/// An agent with the lines source over TCP for `sensors` sensors (windows of [`WINDOW`],
/// hop [`HOP`], `function`, S-H-ESD, at period 60), its metrics address and its lines
/// address. The directory holds its state; drop it after the agent.
fn lines_agent(
    function: &Path,
    sensors: usize,
) -> (Agent, SocketAddr, SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[sensor]\nstate_dir = \"{}\"\n\n[function]\npath = \"{}\"\n\n[function.params]\nperiod = 60\n\n[window]\nsize = {WINDOW}\nhop = {HOP}\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n[source]\nkind = \"lines\"\nlisten = \"127.0.0.1:0\"\nmax_sensors = {sensors}\ntime_format = \"unix_ms\"\n",
            dir.path().join("state").display(),
            function.display()
        ),
    )
    .expect("write the config");
    let args = ["run", "--config", config.to_str().expect("UTF-8")];
    let mut agent = Agent::start(Path::new(env!("CARGO_BIN_EXE_edge-agent")), &args);
    let metrics = agent.metrics_addr();
    agent.until_log(" lines over ");
    let addr = agent
        .logs
        .iter()
        .find(|l| l.contains(" lines over "))
        .and_then(|l| l.rsplit(" on ").next())
        .and_then(|a| a.trim().parse::<SocketAddr>().ok())
        .expect("the lines address");
    (agent, metrics, addr, dir)
}

/// Polls the agent's verdict count until it reaches `total` (samples judged).
fn until_verdicts(metrics: SocketAddr, total: usize) {
    let deadline = Instant::now() + PATIENCE * 10;
    while metric(metrics, "edge_agent_verdicts_total") < total as u64 {
        assert!(Instant::now() < deadline, "the windows never filled");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn rss_with_sensors() -> (u64, u64, usize) {
    let (agent, metrics, addr, _dir) = lines_agent(anomaly_wasm(), SENSORS);
    let idle = rss_kib(agent.pid());
    let total = SENSORS * WINDOW;
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(csv_lines(total, SENSORS).as_bytes())
        .expect("write");
    // Every sensor's first window judged: the windows are full and the queue empty.
    until_verdicts(metrics, total);
    let full = rss_kib(agent.pid());
    drop(stream);
    let _ = agent.stop();
    (idle, full, total * std::mem::size_of::<Sample>())
}

/// The agent's CPU seconds per sensor-hour of 1 Hz lines: every sensor's first window is
/// filled and judged first (a start, not the steady state), then `windows` hops' worth
/// of lines more per sensor are sent as fast as the agent takes them, and the CPU it
/// spent from there until their last verdict is divided by the sensor-hours they hold.
/// Reading, parsing, the windows, the function and the spool all count.
fn gateway_cpu_per_sensor_hour(function: &Path, sensors: usize, windows: usize) -> f64 {
    let (agent, metrics, addr, _dir) = lines_agent(function, sensors);
    let first = sensors * WINDOW;
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(csv_lines(first, sensors).as_bytes())
        .expect("write");
    until_verdicts(metrics, first);
    let cpu_before = cpu_seconds(agent.pid());
    let more = sensors * windows * HOP;
    stream
        .write_all(csv_rows(first..first + more, sensors).as_bytes())
        .expect("write");
    until_verdicts(metrics, first + more);
    let cpu = cpu_seconds(agent.pid()) - cpu_before;
    drop(stream);
    let _ = agent.stop();
    let sensor_hours = more as f64 / 3600.0;
    cpu / sensor_hours
}

fn metric(addr: std::net::SocketAddr, name: &str) -> u64 {
    let (_, _, body) = http_get(addr, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc is there");
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
