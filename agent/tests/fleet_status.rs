//! Fleet status end to end: agents (the binary, simulated sensors at speed) shipping to an
//! ES-API server (osmem-server on 127.0.0.1); their status documents are read back from the
//! server, which is the truth: one per agent at start, one when a function is swapped,
//! mapped by their own template in their own index, apart from the verdicts; and a status
//! document spooled at a stop reaches the server at the next start.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edge_tests::agent::{Agent, PATIENCE, write_test_config};
use edge_tests::osmem::Osmem;
use edge_tests::{anomaly_wasm, misbehave_wasm, sha256_hex};
use serde_json::Value;

const FLEET_INDEX: &str = "fleet-test";

fn config(dir: &Path, host: &str, function: &Path, url: &str) -> PathBuf {
    let path = write_test_config(
        dir,
        function,
        "[function.params]\nperiod = 8\n\n",
        &format!(
            "[metrics]\nenabled = false\n[elasticsearch]\nurl = \"{url}\"\nindex = \"verdicts\"\nbatch_max_delay_ms = 50\nretry_initial_ms = 20\nretry_max_ms = 200\n[fleet]\nindex = \"{FLEET_INDEX}\"\ninterval_secs = 10\n"
        ),
    );
    // One host id per agent: the helper writes `test-host`.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("test-host", host)).unwrap();
    path
}

fn start(config: &Path) -> Agent {
    Agent::simulated(
        Path::new(env!("CARGO_BIN_EXE_edge-agent")),
        config,
        "200",
        &[],
    )
}

/// Every status document in the server.
fn status_documents(server: &Osmem) -> Vec<Value> {
    let hits = server.get(&format!("/{FLEET_INDEX}/_search?size=10000"));
    hits["hits"]["hits"]
        .as_array()
        .map(|hits| hits.iter().map(|h| h["_source"].clone()).collect())
        .unwrap_or_default()
}

/// Asks the server until a status document satisfies `done`. The server cannot notify:
/// it is asked every 100 ms, and the deadline is a failure guard.
fn until_status(server: &Osmem, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE * 2;
    loop {
        if let Some(found) = status_documents(server).into_iter().find(|d| done(d)) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no status document {what}; the server has {:#?}",
            status_documents(server)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes `bytes` where the agent watches, as `mv` would.
fn replace(path: &Path, bytes: &[u8]) {
    let temporary = path.with_extension("partial");
    std::fs::write(&temporary, bytes).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

#[test]
fn every_agent_reports_its_state_and_a_swap_reaches_the_server() {
    let server = Osmem::start();
    let good = std::fs::read(anomaly_wasm()).unwrap();
    let other = std::fs::read(misbehave_wasm()).unwrap();
    let (sha_good, sha_other) = (sha256_hex(&good), sha256_hex(&other));
    let hosts = ["pi-a", "pi-b", "pi-c"];
    let dirs: Vec<tempfile::TempDir> = hosts.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let mut agents: Vec<Agent> = hosts
        .iter()
        .zip(&dirs)
        .map(|(host, dir)| {
            let watched = dir.path().join("function.wasm");
            std::fs::write(&watched, &good).unwrap();
            start(&config(dir.path(), host, &watched, &server.url))
        })
        .collect();

    // Each agent's start document, as the server stores it.
    for host in hosts {
        let start = until_status(&server, &format!("at the start of {host}"), |d| {
            d["host_id"] == host && d["report"] == "start"
        });
        assert_eq!(start["sensor_id"], "kitchen");
        assert_eq!(start["function_sha256"], sha_good.as_str());
        assert_eq!(
            start["rollout_state"], "off",
            "no registry: the cell says off"
        );
        assert_eq!(start["agent_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(start["report_seq"], 0);
        assert_eq!(start["interval_secs"], 10);
        assert!(start["run_id"].as_str().is_some_and(|r| r.len() == 16));
    }

    // A swap on one agent: a change document with the new module, from that agent only.
    replace(&dirs[0].path().join("function.wasm"), &other);
    let change = until_status(&server, "after the swap", |d| {
        d["host_id"] == "pi-a" && d["function_sha256"] == sha_other.as_str()
    });
    assert_eq!(change["report"], "change");
    assert!(
        change["changed"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c == "function")),
        "{change}"
    );
    assert!(change["swaps"].as_u64().is_some_and(|n| n >= 1), "{change}");
    assert!(
        status_documents(&server)
            .iter()
            .filter(|d| d["host_id"] != "pi-a")
            .all(|d| d["function_sha256"] == sha_good.as_str()),
        "the others still run the first module"
    );

    // Their own index, their own mapping; the verdicts' index holds verdicts only.
    let mapping = server.get(&format!("/{FLEET_INDEX}/_mapping"));
    let properties = &mapping[FLEET_INDEX]["mappings"]["properties"];
    assert_eq!(properties["rollout_state"]["type"], "keyword");
    assert_eq!(properties["manifest_version"]["type"], "long");
    assert_eq!(properties["@timestamp"]["type"], "date");
    let verdict_ids: BTreeSet<String> = server.ids("verdicts").into_iter().collect();
    assert!(!verdict_ids.is_empty(), "verdicts are shipped too");
    let status_ids: BTreeSet<String> = server.ids(FLEET_INDEX).into_iter().collect();
    assert!(verdict_ids.is_disjoint(&status_ids));

    // A clean stop spools a last document; the next start ships it (a new run beside it).
    let agent = agents.remove(1);
    let (status, _, logs) = agent.stop();
    assert!(status.success(), "{}", logs.join("\n"));
    let again = start(&config(
        dirs[1].path(),
        "pi-b",
        &dirs[1].path().join("function.wasm"),
        &server.url,
    ));
    let stopped = until_status(&server, "of pi-b's stop", |d| {
        d["host_id"] == "pi-b" && d["report"] == "stop"
    });
    let restarted = until_status(&server, "of pi-b's second start", |d| {
        d["host_id"] == "pi-b" && d["report"] == "start" && d["run_id"] != stopped["run_id"]
    });
    assert_eq!(restarted["report_seq"], 0);
    for agent in agents.into_iter().chain([again]) {
        let (status, _, logs) = agent.stop();
        assert!(status.success(), "{}", logs.join("\n"));
    }
}
