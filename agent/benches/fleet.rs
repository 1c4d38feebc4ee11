//! Fleet figures: what the cluster sees when 50 agents come back from an outage with a
//! backlog, with and without fleet-safe catch-up (the first request spread, the drain
//! capped), and how many status documents an agent writes per hour. Prints them; asserts
//! only that every document arrived once.
//!
//! Two ways back, each run both ways (the previous behaviour, then spread + cap):
//! - power restored: 50 agents start at once, each with an hour of verdicts queued, the
//!   cluster up;
//! - cluster restored: 50 running agents with the same backlog have been failing to reach
//!   the cluster, which comes back on its port.
//!
//! Each agent is the library's whole `Agent`, started in this process from its
//! configuration (50 processes would measure the machine, not the protocol), its spool
//! holding the backlog and its source an input that has ended; the cluster is the test
//! suite's minimal `_bulk` server on 127.0.0.1, which timestamps every request it answers.
//! Status reports of their own are off (`[fleet] enabled = false`), so that the count of
//! documents is the backlog's.
//! Time is scaled down: `retry_max` 10 s and a 10 s spread stand for minutes in production.
//!
//! `cargo bench -p edge-agent --bench fleet`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edge_agent::agent::{Agent, RunningAgent, Source};
use edge_agent::config::{AgentConfig, ElasticsearchSection, WindowSection};
use edge_agent::fleet::status::ReporterIdentity;
use edge_agent::fleet::{FleetSection, FleetStats, Observed, Reporter};
use edge_agent::sensor::lines::{SourceKind, Transport};
use edge_agent::spool::{Destination, Spool, WhenFull};
use edge_tests::fault_server::{FaultServer, Reply};

const AGENTS: usize = 50;
/// An hour of 1 Hz verdicts.
const VERDICTS: usize = 3600;
/// An hour of status documents at the default interval.
const STATUS: usize = 12;
const BATCH: usize = 1000;
const CAP: u32 = 200;
const SPREAD: Duration = Duration::from_secs(10);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// When each `_bulk` request arrived and how many documents it carried.
type Arrivals = Arc<Mutex<Vec<(Instant, usize)>>>;

struct Figures {
    requests: usize,
    documents: usize,
    drained: Duration,
    first_second: usize,
    peak_requests: usize,
    peak_documents: usize,
}

fn main() {
    println!(
        "Fleet catch-up: {AGENTS} agents, each {VERDICTS} verdicts + {STATUS} status documents queued (an hour at 1 Hz), batch_max_docs {BATCH}, retry_max {RETRY_MAX:?}:"
    );
    for (what, late) in [("power restored", None), ("cluster restored", Some(()))] {
        let before = run(late.is_some(), 0, Duration::ZERO);
        let after = run(late.is_some(), CAP, SPREAD);
        print(what, "no spread, no cap (previous behaviour)", &before);
        print(
            what,
            &format!("retry_spread {SPREAD:?}, drain_max_docs_per_sec {CAP}"),
            &after,
        );
        println!(
            "  -> peak requests/s {:.1}x lower, peak documents/s {:.1}x lower, drained {:.1}x later",
            before.peak_requests as f64 / after.peak_requests.max(1) as f64,
            before.peak_documents as f64 / after.peak_documents.max(1) as f64,
            after.drained.as_secs_f64() / before.drained.as_secs_f64().max(1e-9),
        );
    }
    status_per_hour();
}

fn print(what: &str, how: &str, f: &Figures) {
    println!(
        "- {what}, {how}: {} requests for {} documents, drained in {:.1?}; first second after the return: {} requests; peak in any 1 s: {} requests, {} documents; mean {:.1} requests/s",
        f.requests,
        f.documents,
        f.drained,
        f.first_second,
        f.peak_requests,
        f.peak_documents,
        f.requests as f64 / f.drained.as_secs_f64().max(1e-9),
    );
}

/// One return of the fleet; `late`: the cluster comes back after the agents failed.
fn run(late: bool, cap: u32, spread: Duration) -> Figures {
    let arrivals: Arrivals = Arc::default();
    let script = |arrivals: Arrivals| {
        move |request: &edge_tests::fault_server::Request, _: usize| {
            if request.path.ends_with("/_bulk") {
                let documents = request.body.iter().filter(|b| **b == b'\n').count() / 2;
                if let Ok(mut seen) = arrivals.lock() {
                    seen.push((Instant::now(), documents));
                }
            }
            Reply::Bulk
        }
    };
    let port = FaultServer::unused_port();
    let url = format!("http://127.0.0.1:{port}");
    let dirs: Vec<tempfile::TempDir> = (0..AGENTS).map(|_| tempfile::tempdir().unwrap()).collect();
    for (agent, dir) in dirs.iter().enumerate() {
        backlog(agent, dir.path());
    }
    let total = AGENTS * (VERDICTS + STATUS);
    let mut server = (!late).then(|| FaultServer::start_at(port, script(arrivals.clone())));
    let returned = Instant::now();
    let agents: Vec<RunningAgent> = dirs
        .iter()
        .map(|dir| start(&url, dir.path(), cap, spread))
        .collect();
    let returned = if late {
        // Refused connections fail at once: after twice the longest backoff every agent has
        // failed several times and waits out a backoff of its own; then the cluster is back.
        std::thread::sleep(RETRY_MAX * 2);
        server = Some(FaultServer::start_at(port, script(arrivals.clone())));
        Instant::now()
    } else {
        returned
    };
    let server = server.expect("the server runs");
    assert!(
        server.wait_until(Duration::from_secs(600), |_, stored| stored >= total),
        "every document arrives"
    );
    let drained = returned.elapsed();
    for agent in agents {
        agent.stop(Duration::from_secs(10)).unwrap();
    }
    assert_eq!(server.stored_ids().len(), total, "each document once");
    let seen = arrivals.lock().map(|s| s.clone()).unwrap_or_default();
    figures(&seen, returned, drained)
}

/// An agent's spool after an hour away: verdicts, and the status documents of that hour
/// (closed again: the agent opens it).
fn backlog(agent: usize, dir: &std::path::Path) {
    let spool = Spool::open(&dir.join("spool.redb"), 1 << 30, WhenFull::DropOldest).unwrap();
    let verdicts: Vec<(String, Vec<u8>)> = (0..VERDICTS)
        .map(|i| {
            let body = serde_json::json!({
                "@timestamp": edge_agent::support::timestamp::format(1_764_000_000_000 + i as i64 * 1000),
                "host_id": format!("pi-{agent}"), "sensor_id": "bme680", "temperature": 21.5,
                "humidity": 45.1, "pressure": 1013.2, "gas_resistance": 120345.6, "air_quality": 81.2,
                "gas_valid": true, "heater_stable": true, "burn_in": false, "is_anomaly": false,
                "function_sha256": "706c0cc21b6fccdce87a4783158b141f429615e12dda8687a1ac22f616139161",
            });
            (format!("pi-{agent}.bme680.1.{i}"), body.to_string().into_bytes())
        })
        .collect();
    for window in verdicts.chunks(60) {
        spool.append(window).unwrap();
    }
    let status: Vec<(String, Vec<u8>)> = (0..STATUS)
        .map(|i| {
            let body = serde_json::json!({ "@timestamp": "2026-01-01T00:00:00Z", "host_id": format!("pi-{agent}") });
            (format!("pi-{agent}.bme680.1.status-{i}"), body.to_string().into_bytes())
        })
        .collect();
    spool.append_to(Destination::Status, &status).unwrap();
}

/// A module that judges nothing here (the input has ended): the agent needs one to start.
const FUNCTION: &str = r#"(module (memory (export "memory") 1)
  (data (i32.const 4096) "\00\01")
  (func (export "edge_abi_version") (result i32) i32.const 1)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "dealloc") (param i32 i32))
  (func (export "init") (param i32 i32) (result i64) i64.const 0x0000100000000002)
  (func (export "execute") (param i32 i32) (result i64) unreachable))"#;

/// One agent, started from its configuration: the spool in `dir`, shipping to `url`.
fn start(url: &str, dir: &std::path::Path, cap: u32, spread: Duration) -> RunningAgent {
    let function = dir.join("function.wasm");
    std::fs::write(&function, wat::parse_str(FUNCTION).unwrap()).unwrap();
    let mut config = AgentConfig::default();
    config.function.path = function;
    config.sensor.state_dir = dir.to_owned();
    config.window = WindowSection { size: 1, hop: 1 };
    config.metrics.enabled = false;
    config.fleet.enabled = false;
    config.source.kind = SourceKind::Lines;
    config.source.transport = Transport::Stdin;
    config.elasticsearch = Some(ElasticsearchSection {
        url: url.to_owned(),
        batch_max_docs: BATCH,
        retry_initial_ms: 500,
        retry_max_ms: RETRY_MAX.as_millis() as u64,
        drain_max_docs_per_sec: cap,
        retry_spread_ms: spread.as_millis() as u64,
        timeout_ms: 30_000,
        ..ElasticsearchSection::default()
    });
    let ended = Source::Reader(Box::new(std::io::empty()));
    Agent::new(config, ended).start().unwrap()
}

fn figures(seen: &[(Instant, usize)], returned: Instant, drained: Duration) -> Figures {
    let at = |i: Instant| i.saturating_duration_since(returned);
    let mut peak_requests = 0;
    let mut peak_documents = 0;
    for (start, _) in seen {
        let window: Vec<&(Instant, usize)> = seen
            .iter()
            .filter(|(t, _)| *t >= *start && at(*t) < at(*start) + Duration::from_secs(1))
            .collect();
        peak_requests = peak_requests.max(window.len());
        peak_documents = peak_documents.max(window.iter().map(|(_, n)| n).sum());
    }
    Figures {
        requests: seen.len(),
        documents: seen.iter().map(|(_, n)| n).sum(),
        drained,
        first_second: seen
            .iter()
            .filter(|(t, _)| at(*t) < Duration::from_secs(1))
            .count(),
        peak_requests,
        peak_documents,
    }
}

/// Status documents per agent per hour, by the reporter's own rule over a simulated day.
fn status_per_hour() {
    let stats = FleetStats::default();
    let identity = ReporterIdentity {
        host_id: "pi".into(),
        sensor_id: "bme680".into(),
        run_id: edge_agent::sensor::RunId::from_raw(1),
    };
    let interval = FleetSection::default().interval();
    let day = 24 * 3600u64;
    let count = |change: &dyn Fn(u64, &mut Observed)| {
        let mut reporter = Reporter::new(identity.clone(), interval, Duration::ZERO);
        let mut observed = Observed::default();
        let mut written = 0u64;
        for second in 0..day {
            change(second, &mut observed);
            if reporter
                .tick(Duration::from_secs(second), 0, &observed, &stats)
                .is_some()
            {
                written += 1;
            }
        }
        written as f64 / 24.0
    };
    let quiet = count(&|_, _| {});
    let swaps = count(&|s, o| {
        if s % 3600 == 1800 {
            o.function_sha256 = format!("{s}");
        }
    });
    let flapping = count(&|s, o| o.counters.sensor_failing = s % 2 == 1);
    println!(
        "Status documents per agent per hour (interval {interval:?}, reporter's rule over a simulated day): {quiet:.1} when nothing changes, {swaps:.1} with a swap an hour, {flapping:.1} at most (a sensor failing and recovering every second: changes bounded to 10 at once, then 1 a minute)"
    );
}
