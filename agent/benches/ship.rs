//! Store-and-forward figures: the spool's cost per sample, fsyncs per minute of a 1 Hz
//! agent, and the time to drain a day of queued verdicts (86,400 documents) into a local
//! ES-API server (osmem-server). Prints them; asserts nothing about time.
//!
//! `cargo bench -p edge-agent --bench ship`

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use edge_agent::config::ElasticsearchSection;
use edge_agent::spool::{Spool, WhenFull};
use edge_tests::agent::Agent;
use edge_tests::anomaly_wasm;
use edge_tests::fault_server::FaultServer;
use edge_tests::osmem::Osmem;
use edge_tests::shipping::{ShipOptions, Shipping};

const DAY: usize = 86_400;

fn main() {
    let dir = tempfile::tempdir().expect("a temp dir");

    // 1. A day of 1 Hz verdicts into the spool, a window (60 samples) per commit.
    let spool = Spool::open(
        &dir.path().join("spool.redb"),
        1 << 30,
        WhenFull::DropOldest,
    )
    .expect("open");
    let documents: Vec<(String, Vec<u8>)> = (0..DAY).map(document).collect();
    let started = Instant::now();
    for window in documents.chunks(60) {
        spool.append(window).expect("append");
    }
    let append = started.elapsed();
    let bytes = spool.stats().snapshot().bytes;
    let file_per_verdict = std::fs::metadata(dir.path().join("spool.redb"))
        .map(|m| m.len())
        .unwrap_or(0)
        / DAY as u64;
    drop(spool);

    // 1b. The file at its bound: a 16 MiB spool given two days (drop_oldest), half of
    // what arrives shipped: the largest file seen against the bound.
    let bound = 16u64 << 20;
    let full =
        Spool::open(&dir.path().join("full.redb"), bound, WhenFull::DropOldest).expect("open");
    let mut largest = 0;
    for (n, window) in documents.chunks(60).chain(documents.chunks(60)).enumerate() {
        full.append(window).expect("append");
        if n % 3 == 0 {
            // Less than arrives: the spool fills up to its bound and drops.
            let batch = full.peek(90, usize::MAX).expect("peek");
            full.remove(&batch.iter().map(|e| e.seq).collect::<Vec<_>>())
                .expect("remove");
        }
        largest = largest.max(
            std::fs::metadata(dir.path().join("full.redb"))
                .map(|m| m.len())
                .unwrap_or(0),
        );
    }
    let at_bound = full.stats().snapshot();

    // 2. Drain it with the default batching: into osmem-server, and into the minimal test
    // server (which bounds the agent's own cost: osmem spends most of the time indexing).
    let osmem = Osmem::start();
    let (drain_time, requests) = drain(&documents, &osmem.url);
    assert_eq!(osmem.count("drain"), DAY as u64);
    let minimal = FaultServer::healthy();
    let (minimal_drain, _) = drain(&documents, &minimal.url);
    assert_eq!(minimal.stored_ids().len(), DAY);

    println!(
        "Spool and shipping (redb spool, osmem-server {} on 127.0.0.1):",
        edge_tests::osmem::OSMEM_VERSION
    );
    println!(
        "- spool: {DAY} verdicts appended in {append:.2?} as {} commits of 60: {:.1} µs per sample, {} bytes per verdict on disk",
        DAY / 60,
        append.as_secs_f64() * 1e6 / DAY as f64,
        bytes / DAY as u64
    );
    println!(
        "- spool file: {file_per_verdict} bytes per verdict on disk; at a bound of {} MiB the largest file seen was {:.2} MiB ({:.2}x the bound), holding {} verdicts, {} compactions, {} dropped",
        bound >> 20,
        largest as f64 / (1 << 20) as f64,
        largest as f64 / bound as f64,
        at_bound.depth,
        at_bound.compactions,
        at_bound.dropped,
    );
    println!(
        "- drain into osmem-server: {DAY} queued documents in {drain_time:.1?} ({:.0} documents/s, {requests} requests)",
        DAY as f64 / drain_time.as_secs_f64(),
    );
    println!(
        "- drain into the minimal test server: {DAY} documents in {minimal_drain:.1?} ({:.0} documents/s): the agent's own side",
        DAY as f64 / minimal_drain.as_secs_f64(),
    );

    // 3. fsyncs of the running agent at 1 Hz with a window every minute, shipping to a
    // local server: counted by strace over ten simulated minutes (20x real time, so
    // every window still ships on its own, as at real time).
    match fsyncs_per_minute(dir.path()) {
        Some((fsyncs, minutes)) => println!(
            "- fsyncs: {fsyncs} in {minutes:.1} simulated minutes at 1 Hz, hop 60 = {:.1} per minute (spool commit + removal after delivery)",
            fsyncs as f64 / minutes
        ),
        None => println!("- fsyncs: not measured (strace is not installed)"),
    }
}

/// Ships `documents` to `url` with the agent's default batching and backoff; answers the
/// time from start to an empty spool, and the number of requests.
fn drain(documents: &[(String, Vec<u8>)], url: &str) -> (Duration, u64) {
    let started = Instant::now();
    let shipping = Shipping::start(
        url,
        documents,
        ShipOptions {
            index: "drain".into(),
            batch_max_docs: ElasticsearchSection::default().batch_max_docs,
            timeout: Duration::from_secs(30),
            fast: false,
            ..ShipOptions::default()
        },
    );
    let spooled = started.elapsed();
    assert!(
        shipping.drained(Duration::from_secs(600)),
        "the spool drains"
    );
    (
        started.elapsed() - spooled,
        shipping.stats.requests.load(Ordering::Relaxed),
    )
}

fn document(i: usize) -> (String, Vec<u8>) {
    let ms = 1_700_000_000_000i64 + i as i64 * 1000;
    let body = serde_json::json!({
        "@timestamp": edge_agent::support::timestamp::format(ms),
        "host_id": "pi-kitchen", "sensor_id": "bme680", "temperature": 21.53, "humidity": 45.1,
        "pressure": 1013.27, "gas_resistance": 120345.6, "air_quality": 81.2, "gas_valid": true,
        "heater_stable": true, "burn_in": false, "is_anomaly": false,
        "function_sha256": "706c0cc21b6fccdce87a4783158b141f429615e12dda8687a1ac22f616139161",
        "window_start": "2023-11-14T22:13:20Z", "window_end": "2023-11-14T22:30:20Z",
    });
    (format!("bme680-{ms}"), body.to_string().into_bytes())
}

fn fsyncs_per_minute(dir: &Path) -> Option<(u64, f64)> {
    Command::new("strace").arg("-V").output().ok()?;
    let server = FaultServer::healthy();
    let config = dir.join("agent.toml");
    std::fs::write(&config, format!(
        "[sensor]\nsample_period_ms = 1000\nstate_dir = \"{}\"\n[function]\npath = \"{}\"\n[function.params]\nperiod = 30\n[window]\nsize = 120\nhop = 60\n[elasticsearch]\nurl = \"{}\"\n",
        dir.join("fsync-state").display(), anomaly_wasm().display(), server.url,
    )).ok()?;
    let trace = dir.join("strace.out");
    let binary = Path::new(env!("CARGO_BIN_EXE_edge-agent"));
    let mut agent = Agent::start(
        binary,
        &[
            "run",
            "--simulate",
            "--speed",
            "20",
            "--config",
            config.to_str()?,
        ],
    );
    // Steady state: from the first window on (after 120 samples, 6 s at 20x).
    agent.until_log(" documents: ");
    let mut strace = Command::new("strace")
        .args([
            "-f",
            "-e",
            "trace=fsync,fdatasync,sync_file_range,msync",
            "-o",
        ])
        .arg(&trace)
        .args(["-p", &agent.pid().to_string()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let started = Instant::now();
    let windows = |logs: &[String]| {
        logs.iter()
            .filter(|l| l.contains("spooled") && l.contains(" documents: "))
            .count()
    };
    let before = windows(&agent.logs);
    agent.until_logs("ten more windows", |logs| windows(logs) >= before + 10);
    let elapsed = started.elapsed();
    // SIGINT detaches strace and leaves the agent running; then the agent is stopped.
    let _ = Command::new("kill")
        .args(["-INT", &strace.id().to_string()])
        .status();
    let _ = strace.wait();
    let _ = agent.stop();
    let text = std::fs::read_to_string(&trace).ok()?;
    let fsyncs = text
        .lines()
        .filter(|l| l.contains("sync") && !l.contains("resumed>"))
        .count() as u64;
    Some((fsyncs, elapsed.as_secs_f64() * 20.0 / 60.0))
}
