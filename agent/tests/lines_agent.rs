//! `[source] kind = "lines"` end to end: the binary fed over TCP, UDP and standard input,
//! bad lines mixed in, a flood, too many sensors. The truth is the NDJSON the agent
//! writes (every accepted sample exactly once, in its own sensor's windows) and its
//! `/metrics` (what was refused, and why). Waits poll the metrics or the output until a
//! condition holds, with a generous bound, so the tests hold under qemu too.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_tests::agent::{Agent, http_get, time_ms};
use edge_tests::anomaly_wasm;
use edge_tests::lines::{Windows, write_config_windowed};
use serde_json::Value;

/// Unix ms of the first sample each test sends.
const T0: i64 = 1_767_225_600_000;
/// A failure guard, never a synchronisation: long, because under qemu a debug agent
/// judges a window per sample (the floods) tens of times slower than natively.
const LINES_PATIENCE: Duration = Duration::from_secs(300);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_edge-agent"))
}

/// A lines agent on `source` (keys under `[source]`), windows of `size` every `hop`.
fn write_config(dir: &Path, size: usize, hop: usize, source: &str) -> PathBuf {
    let windows = Windows {
        size,
        hop,
        period: 8,
    };
    write_config_windowed(dir, anomaly_wasm(), windows, source)
}

fn start(config: &Path) -> Agent {
    Agent::start(binary(), &["run", "--config", config.to_str().unwrap()])
}

/// Where the agent says it reads lines.
fn lines_addr(agent: &mut Agent) -> SocketAddr {
    agent.until_log(" lines over ");
    let line = agent
        .logs
        .iter()
        .find(|l| l.contains(" lines over "))
        .unwrap();
    line.rsplit(" on ").next().unwrap().trim().parse().unwrap()
}

/// The value of one series (`name{labels}` exactly as rendered), 0 when absent.
fn metric(addr: SocketAddr, series: &str) -> u64 {
    let (status, _, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |value| value.trim().parse().unwrap())
}

/// Polls `/metrics` until every `(series, value)` holds.
fn until_metrics(addr: SocketAddr, want: &[(&str, u64)]) {
    let deadline = Instant::now() + LINES_PATIENCE;
    loop {
        let got: Vec<u64> = want
            .iter()
            .map(|(series, _)| metric(addr, series))
            .collect();
        if want.iter().zip(&got).all(|((_, want), got)| want == got) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never reached {want:?}; last {got:?}"
        );
        // The server cannot notify; the deadline above is the guard.
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn refused(source: &str, reason: &str) -> String {
    format!("edge_agent_lines_refused_total{{source=\"{source}\",reason=\"{reason}\"}}")
}

fn accepted(source: &str) -> String {
    format!("edge_agent_lines_accepted_total{{source=\"{source}\"}}")
}

/// What a sensor was sent and accepted, in order: (Unix ms, value).
type Sent = BTreeMap<String, Vec<(i64, f64)>>;

/// Every accepted sample has exactly one verdict, in its own sensor's windows: per sensor
/// and run, the sequence is 0, 1, 2… with nothing missing or repeated; the times and
/// values are the ones sent, in order; every window's bounds are that sensor's own times.
fn assert_each_sample_once_in_its_sensor(verdicts: &[Value], sent: &Sent) {
    let mut ids = BTreeSet::new();
    let mut by_run: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
    for verdict in verdicts {
        let sensor = verdict["sensor_id"].as_str().unwrap().to_owned();
        let run = verdict["run_id"].as_str().unwrap().to_owned();
        let seq = verdict["seq"].as_u64().unwrap();
        assert!(
            ids.insert((sensor.clone(), run.clone(), seq)),
            "judged twice: {verdict}"
        );
        assert_eq!(verdict["host_id"], "test-host");
        by_run.entry((sensor, run)).or_default().push(verdict);
    }
    let mut got: Sent = BTreeMap::new();
    for ((sensor, _), mut run) in by_run {
        run.sort_by_key(|v| v["seq"].as_u64());
        let seqs: Vec<u64> = run.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (0..run.len() as u64).collect::<Vec<_>>(), "{sensor}");
        let own: BTreeSet<i64> = sent[&sensor].iter().map(|(t, _)| *t).collect();
        for v in &run {
            let (start, at, end) = (
                time_ms(v, "window_start"),
                time_ms(v, "@timestamp"),
                time_ms(v, "window_end"),
            );
            assert!(start <= at && at <= end, "{v}");
            assert!(
                own.contains(&start) && own.contains(&end),
                "a window of {sensor} reaches another sensor's samples: {v}"
            );
            got.entry(sensor.clone())
                .or_default()
                .push((at, v["air_quality"].as_f64().unwrap()));
        }
    }
    for series in got.values_mut() {
        series.sort_by_key(|(t, _)| *t);
    }
    assert_eq!(&got, sent, "what reached the sink is not what was accepted");
}

/// A good CSV line `timestamp,sensor_id,value` and what it should become.
fn csv(sent: &mut Sent, sensor: &str, ms: i64, value: f64) -> String {
    sent.entry(sensor.to_owned()).or_default().push((ms, value));
    format!("{ms},{sensor},{value}\n")
}

#[test]
fn tcp_clients_send_csv_and_ndjson_from_several_sensors_with_bad_lines_mixed_in() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        64,
        16,
        "format = \"auto\"\ntime_format = \"unix_ms\"",
    );
    let mut agent = start(&config);
    let addr = lines_addr(&mut agent);
    let metrics = agent.metrics_addr();
    let mut sent = Sent::new();

    // Client A: CSV with a header, two sensors interleaved, bad lines between good ones.
    let mut a = String::from("timestamp,sensor_id,value\n");
    for i in 0..150i64 {
        a += &csv(&mut sent, "a1", T0 + i * 1000, (i % 9) as f64);
        a += &csv(&mut sent, "a2", T0 + i * 1000 + 1, (i % 5) as f64 + 0.5);
        match i {
            10 => a += "1,2,3,4\n",                           // malformed: four columns
            20 => a += &format!("{}\n", "9".repeat(3000)),    // too long
            30 => a += &format!("{T0},a1,5\n"),               // time went back (a1)
            40 => a += &format!("{},a2,1e12\n", T0 + 40_001), // out of range
            50 => a += &format!("{},\u{7}bell,1\n", T0),      // bad sensor
            60 => a += "{\"value\": \n",                      // broken JSON
            70 => a += "\n\r\n",                              // blank: skipped, not counted
            _ => {}
        }
    }
    // Client B: NDJSON, one sensor, with its own kinds of bad line.
    let mut b = String::new();
    for i in 0..130i64 {
        let ms = T0 + i * 1000 + 2;
        sent.entry("b1".into()).or_default().push((ms, i as f64));
        b += &format!("{{\"sensor_id\":\"b1\",\"timestamp\":{ms},\"value\":{i}}}\n");
        match i {
            5 => b += "{\"sensor_id\":\"b1\"}\n", // missing value
            6 => b += "{\"sensor_id\":\"b1\",\"value\":\"abc\"}\n", // malformed value
            7 => b += "{\"sensor_id\":\"b1\",\"value\":1,\"timestamp\":\"noon\"}\n", // bad time
            _ => {}
        }
    }
    let clients: Vec<_> = [a, b]
        .into_iter()
        .map(|text| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.write_all(text.as_bytes()).unwrap();
                stream
            })
        })
        .collect();
    let streams: Vec<TcpStream> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    // Every good line accepted: the connections stayed open past the bad ones.
    until_metrics(
        metrics,
        &[
            (&accepted("tcp"), 430),
            (&refused("tcp", "malformed"), 3),
            (&refused("tcp", "too_long"), 1),
            (&refused("tcp", "time_went_back"), 1),
            (&refused("tcp", "out_of_range"), 1),
            (&refused("tcp", "bad_sensor"), 1),
            (&refused("tcp", "missing_value"), 1),
            (&refused("tcp", "bad_time"), 1),
            ("edge_agent_lines_read_total{source=\"tcp\"}", 1 + 430 + 9),
            ("edge_agent_lines_connections_open{source=\"tcp\"}", 2),
            ("edge_agent_lines_sensors_active{source=\"tcp\"}", 3),
        ],
    );
    drop(streams);
    let (status, verdicts, logs) = agent.stop();
    assert!(status.success(), "{status}; logs:\n{}", logs.join("\n"));
    assert_each_sample_once_in_its_sensor(&verdicts, &sent);
    // Refused lines are logged with where they came from and their line number, escaped.
    let bell = logs
        .iter()
        .find(|l| l.contains("refused (bad_sensor)"))
        .expect("the bad sensor is logged");
    assert!(
        bell.contains("tcp 127.0.0.1:") && bell.contains(" line "),
        "{bell}"
    );
    assert!(
        bell.contains("\\u{7}bell") && !bell.contains('\u{7}'),
        "{bell}"
    );
}

#[test]
fn udp_datagrams_of_several_lines_from_several_sensors() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        64,
        16,
        "transport = \"udp\"\ncolumns = [\"sensor_id\", \"timestamp\", \"value\"]\nmax_line_bytes = 64",
    );
    let mut agent = start(&config);
    let addr = lines_addr(&mut agent);
    let metrics = agent.metrics_addr();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent = Sent::new();
    for d in 0..20i64 {
        let mut datagram = String::new();
        for k in 0..5i64 {
            let i = d * 5 + k;
            let sensor = if i % 2 == 0 { "u1" } else { "u2" };
            let ms = T0 + i * 1000;
            sent.entry(sensor.into()).or_default().push((ms, i as f64));
            datagram += &format!("{sensor},{ms},{i}\n");
        }
        datagram += "u1,soon,1\n";
        if d == 7 {
            datagram += &format!("u1,{T0},{}\n", "1".repeat(80));
        }
        socket.send_to(datagram.as_bytes(), addr).unwrap();
        // A few datagrams at a time: loopback does not drop what it has room for.
        if d % 5 == 4 {
            until_metrics(metrics, &[(&accepted("udp"), (d as u64 + 1) * 5)]);
        }
    }
    until_metrics(
        metrics,
        &[
            (&accepted("udp"), 100),
            (&refused("udp", "bad_time"), 20),
            (&refused("udp", "too_long"), 1),
        ],
    );
    let (status, verdicts, logs) = agent.stop();
    assert!(status.success(), "{status}; logs:\n{}", logs.join("\n"));
    assert_each_sample_once_in_its_sensor(&verdicts, &sent);
}

#[test]
fn stdin_from_a_file_is_judged_whole_and_the_agent_stops_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 64, 16, "transport = \"stdin\"");
    let mut sent = Sent::new();
    let mut text = String::from("timestamp,sensor_id,value\n");
    for i in 0..200i64 {
        let sensor = ["s1", "s2", "s3"][(i % 3) as usize];
        // Seconds, as many loggers write them.
        let seconds = T0 / 1000 + i;
        sent.entry(sensor.into())
            .or_default()
            .push((seconds * 1000, (i % 11) as f64));
        text += &format!("{seconds},{sensor},{}\n", i % 11);
        if i == 100 {
            text += "\u{1b}[31mred,s1,1\n";
        }
    }
    // The last line has no newline: it is refused as incomplete (counted, not judged).
    text += "garbage";
    let input = dir.path().join("input.csv");
    std::fs::write(&input, &text).unwrap();
    let out = Command::new(binary())
        .args(["run", "--config", config.to_str().unwrap()])
        .stdin(std::fs::File::open(&input).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}; logs:\n{logs}", out.status);
    let verdicts: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_each_sample_once_in_its_sensor(&verdicts, &sent);
    assert!(
        logs.contains("203 lines (200 accepted, 2 refused"),
        "the summary counts every line:\n{logs}"
    );
    assert!(
        logs.contains("\\u{1b}[31mred") && !logs.contains('\u{1b}'),
        "{logs}"
    );
}

#[test]
fn a_tcp_flood_waits_for_the_function_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A window per sample and a queue of 8: the function is far slower than the parser.
    let config = write_config(dir.path(), 32, 1, "queue = 8\nformat = \"ndjson\"");
    let mut agent = start(&config);
    let addr = lines_addr(&mut agent);
    let metrics = agent.metrics_addr();
    let mut sent = Sent::new();
    let mut flood = String::new();
    for i in 0..200i64 {
        let ms = T0 + i * 1000;
        sent.entry("fast".into())
            .or_default()
            .push((ms, (i % 13) as f64));
        flood += &format!(
            "{{\"sensor_id\":\"fast\",\"timestamp\":{ms},\"value\":{}}}\n",
            i % 13
        );
    }
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(flood.as_bytes()).unwrap();
    until_metrics(metrics, &[(&accepted("tcp"), 200)]);
    assert!(
        metric(
            metrics,
            "edge_agent_lines_queue_waits_total{source=\"tcp\"}"
        ) > 0
    );
    assert_eq!(metric(metrics, &refused("tcp", "queue_full")), 0);
    drop(stream);
    let (status, verdicts, logs) = agent.stop();
    assert!(status.success(), "{status}; logs:\n{}", logs.join("\n"));
    assert_each_sample_once_in_its_sensor(&verdicts, &sent);
}

#[test]
fn a_udp_flood_is_dropped_at_the_full_queue_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        32,
        1,
        "transport = \"udp\"\nqueue = 8\nformat = \"ndjson\"",
    );
    let mut agent = start(&config);
    let addr = lines_addr(&mut agent);
    let metrics = agent.metrics_addr();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut i = 0i64;
    let deadline = Instant::now() + LINES_PATIENCE;
    // Datagrams until the queue has overflowed at least once.
    while metric(metrics, &refused("udp", "queue_full")) == 0 {
        assert!(Instant::now() < deadline, "the queue never filled");
        let mut datagram = String::new();
        for _ in 0..20 {
            datagram += &format!(
                "{{\"sensor_id\":\"u\",\"timestamp\":{},\"value\":1}}\n",
                T0 + i
            );
            i += 1;
        }
        socket.send_to(datagram.as_bytes(), addr).unwrap();
    }
    let (status, verdicts, logs) = agent.stop();
    assert!(status.success(), "{status}; logs:\n{}", logs.join("\n"));
    let summary = logs.iter().find(|l| l.contains("stopped in")).unwrap();
    let accepted: usize = summary
        .split(" lines (")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    // Whatever was accepted was judged, once; the rest was counted, never held.
    assert_eq!(verdicts.len(), accepted, "{summary}");
    let seqs: BTreeSet<u64> = verdicts
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs.len(), accepted);
    assert!((accepted as i64) < i, "{summary}");
}

#[test]
fn too_many_sensors_are_refused_until_one_goes_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        64,
        16,
        "max_sensors = 2\nsensor_idle_s = 1\ncolumns = [\"sensor_id\", \"value\"]",
    );
    let mut agent = start(&config);
    let addr = lines_addr(&mut agent);
    let metrics = agent.metrics_addr();
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut batch = String::new();
    for i in 0..10 {
        batch += &format!("s1,{i}\ns2,{i}\n");
        if i < 5 {
            batch += &format!("s3,{i}\n");
        }
    }
    stream.write_all(batch.as_bytes()).unwrap();
    until_metrics(
        metrics,
        &[
            (&accepted("tcp"), 20),
            (&refused("tcp", "too_many_sensors"), 5),
            ("edge_agent_lines_sensors_active{source=\"tcp\"}", 2),
        ],
    );
    // Idleness is what is under test: the sensors must be silent for sensor_idle_s.
    std::thread::sleep(Duration::from_millis(1100));
    let mut batch = String::new();
    for i in 0..10 {
        batch += &format!("s3,{i}\n");
    }
    stream.write_all(batch.as_bytes()).unwrap();
    until_metrics(
        metrics,
        &[
            (&accepted("tcp"), 30),
            ("edge_agent_lines_sensors_expired_total{source=\"tcp\"}", 2),
            ("edge_agent_window_sensors_evicted_total", 1),
        ],
    );
    // s1 comes back: a new run of s1, its windows made again.
    stream.write_all(b"s1,100\ns1,101\n").unwrap();
    until_metrics(metrics, &[(&accepted("tcp"), 32)]);
    drop(stream);
    let (status, verdicts, logs) = agent.stop();
    assert!(status.success(), "{status}; logs:\n{}", logs.join("\n"));
    assert_eq!(verdicts.len(), 32);
    let runs: BTreeMap<(String, String), usize> =
        verdicts.iter().fold(BTreeMap::new(), |mut runs, v| {
            let key = (
                v["sensor_id"].as_str().unwrap().to_owned(),
                v["run_id"].as_str().unwrap().to_owned(),
            );
            *runs.entry(key).or_default() += 1;
            runs
        });
    let mut sizes: Vec<(String, usize)> = runs.into_iter().map(|((s, _), n)| (s, n)).collect();
    sizes.sort();
    assert_eq!(
        sizes,
        [
            ("s1".to_owned(), 2),
            ("s1".to_owned(), 10),
            ("s2".to_owned(), 10),
            ("s3".to_owned(), 10)
        ]
    );
    let ids: BTreeSet<String> = verdicts
        .iter()
        .map(|v| format!("{}.{}.{}", v["sensor_id"], v["run_id"], v["seq"]))
        .collect();
    assert_eq!(ids.len(), 32, "document ids collide");
}
