//! Store and forward under stress: an upstream away for a simulated hour, and an agent
//! killed with SIGKILL again and again while it samples and ships. Every sample the spool
//! accepted arrives exactly once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use edge_tests::agent::{Agent, PATIENCE};
use edge_tests::anomaly_wasm;
use edge_tests::crash::{Key, Rng, key};
use edge_tests::fault_server::{FaultServer, Reply};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_edge-agent"))
}

/// A window's worth of documents the spool committed: count, first and last id.
#[derive(Debug, Clone)]
struct Spooled {
    count: usize,
    first: Key,
    last: Key,
}

/// Every "spooled N documents: a .. b" line, in order.
fn spooled(logs: &[String]) -> Vec<Spooled> {
    logs.iter()
        .filter_map(|line| {
            let rest = line.split("spooled ").nth(1)?;
            let (count, ids) = rest.split_once(" documents: ")?;
            let (first, last) = ids.split_once(" .. ")?;
            Some(Spooled {
                count: count.parse().ok()?,
                first: key(first.trim())?,
                last: key(last.trim())?,
            })
        })
        .collect()
}

/// Checks that each committed window's samples are all in `stored` (the keys of the
/// stored documents), exactly as many as were committed.
fn assert_all_arrived(windows: &[Spooled], stored: &BTreeSet<Key>) {
    for window in windows {
        let arrived = stored
            .range(window.first.clone()..=window.last.clone())
            .count();

        assert_eq!(
            arrived, window.count,
            "window {window:?}: {arrived} of {} arrived",
            window.count
        );
    }
}

fn key_of(id: &str) -> Key {
    key(id).expect("ids end with <run>.<seq>")
}

/// `window`: (size, hop); the function's period is a quarter of the size. Verdicts only:
/// the ids and log lines counted here are theirs; status documents travel the same spool
/// (`ship_catchup.rs`, `fleet_status.rs`).
fn write_config(dir: &Path, sensor: &str, window: (usize, usize), elasticsearch: &str) -> PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(&path, format!(
        "[sensor]\nstate_dir = \"{state}\"\n{sensor}\n[function]\npath = \"{function}\"\n[function.params]\nperiod = {period}\n[window]\nsize = {size}\nhop = {hop}\n[elasticsearch]\n{elasticsearch}\nbatch_max_delay_ms = 50\nretry_initial_ms = 20\nretry_max_ms = 200\n[fleet]\nenabled = false\n",
        state = dir.join("state").display(),
        function = anomaly_wasm().display(),
        period = window.0 / 4,
        size = window.0,
        hop = window.1,
    )).unwrap();
    path
}

#[test]
fn an_hour_without_upstream_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = FaultServer::unused_port();
    let config = write_config(
        dir.path(),
        "sample_period_ms = 1000",
        (64, 32),
        &format!("url = \"http://127.0.0.1:{port}\""),
    );
    let mut agent = Agent::simulated(binary(), &config, "1200", &[]);
    agent.until_log("Elasticsearch unavailable");
    agent.until_log("spooled");
    let start = spooled(&agent.logs)[0].first.1;
    // An hour of samples (3600 at one a second; at 1200x, three seconds) with nowhere to go.
    agent.until_log_where("an hour spooled", |line| {
        spooled(&[line.to_owned()])
            .first()
            .is_some_and(|w| w.last.1 >= start + 3600)
    });
    let server = FaultServer::start_at(port, |_, _| Reply::Bulk);
    agent.until_log("taking documents again");
    let backlog = spooled(&agent.logs);
    let accepted: usize = backlog.iter().map(|w| w.count).sum();
    assert!(
        server.wait_until(PATIENCE, |_, stored| stored >= accepted),
        "the backlog arrives"
    );
    let (status, _, logs) = agent.stop();
    assert!(status.success());

    let stored: BTreeSet<Key> = server.stored_ids().iter().map(|id| key_of(id)).collect();
    assert_all_arrived(&backlog, &stored);
    let span = backlog.last().map_or(0, |w| w.last.1) - backlog[0].first.1;
    assert!(span >= 3600, "an hour of samples, got {span}");
    // What came after is stored or still spooled; nothing is stored twice or invented.
    let committed: usize = spooled(&logs).iter().map(|w| w.count).sum();
    let left = number_before(&logs, "shipping stopped", " left in the spool");
    if logs.iter().any(|l| l.contains("abandoned")) {
        // A request still in flight at the stop's grace was abandoned: its documents may be
        // stored and still spooled (a 409 at the next start), never missing.
        assert!(stored.len() <= committed && stored.len() + left >= committed);
    } else {
        assert_eq!(stored.len() + left, committed);
    }
    let samples = number_before(&logs, "stopped in", " samples");
    assert_eq!(
        committed, samples,
        "every sample was committed to the spool"
    );
}

/// The number just before `suffix` in the log line containing `marker`.
fn number_before(logs: &[String], marker: &str, suffix: &str) -> usize {
    let line = logs
        .iter()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} line"));
    let head = &line[..line.find(suffix).expect("the suffix follows")];
    head.rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number")
}

#[test]
fn sigkill_at_random_points_never_loses_or_duplicates_a_spooled_sample() {
    // The fault server stores whatever it is sent and records every request, so the test
    // judges what the agent sent, not what a server that refuses a second `_id` kept.
    let server = FaultServer::healthy();
    let dir = tempfile::tempdir().unwrap();
    // A sample every 25 ms and small windows keep each run short; each run has its own
    // run id, so ids never collide whatever the times.
    let sensor = "sample_period_ms = 25\nheater_duration_ms = 10\ntemperature_oversampling = \"x1\"\npressure_oversampling = \"x1\"\nhumidity_oversampling = \"x1\"";
    let config = write_config(
        dir.path(),
        sensor,
        (16, 4),
        &format!("url = \"{}\"\nindex = \"crash\"", server.url),
    );
    let args = ["run", "--simulate", "--config", config.to_str().unwrap()];
    let seed = 0x5eed_u64 ^ std::process::id() as u64;
    eprintln!("seed {seed:#x}");
    let mut rng = Rng::seeded(seed);
    let mut accepted = Vec::new();
    // Requests seen by the end of each run: the runs' shares of the request log.
    let mut run_ends = Vec::new();
    for _ in 0..20 {
        let mut agent = Agent::start(binary(), &args);
        // Kill after a random number of committed windows (0: during start-up or the
        // first ingest), and a random moment after that, mid-ingest or mid-shipping.
        let windows = rng.below(4) as usize;
        agent.until_logs("windows spooled", |logs| spooled(logs).len() >= windows);
        // Not a wait for anything: a random moment to pull the plug.
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        accepted.extend(spooled(&agent.kill()));
        run_ends.push(server.requests().len());
    }
    // A last run drains what the killed ones left behind.
    let mut agent = Agent::start(binary(), &args);
    agent.until_log("caught up");
    let caught_up = agent
        .logs
        .iter()
        .position(|l| l.contains("caught up"))
        .unwrap();
    accepted.extend(spooled(&agent.logs[..caught_up]));
    let (status, _, last_logs) = agent.stop();
    assert!(status.success());

    let ids = server.stored_ids();
    let stored: BTreeSet<Key> = ids.iter().map(|id| key_of(id)).collect();
    assert_eq!(stored.len(), ids.len(), "no sample under two ids");
    // What the agent sent: within one run no id twice (the server answered every request,
    // so there was nothing to retry); an id sent again was one a killed run had in flight,
    // and the cluster's 409 told the next run so (its duplicate counter).
    let mut first_run: std::collections::BTreeMap<String, usize> = Default::default();
    let mut resent_by_last_run = 0;
    for (n, request) in server.requests().iter().enumerate() {
        let run = run_ends
            .iter()
            .position(|end| n < *end)
            .unwrap_or(run_ends.len());
        for (id, _) in request.bulk_documents() {
            match first_run.get(&id) {
                None => {
                    first_run.insert(id, run);
                }
                Some(first) => {
                    assert!(*first < run, "{id} sent twice by run {run}");
                    if run == run_ends.len() {
                        resent_by_last_run += 1;
                    }
                }
            }
        }
    }
    let duplicates = number_before(&last_logs, "shipping stopped", " already there");
    assert_eq!(
        duplicates, resent_by_last_run,
        "every id the last run sent again was counted a duplicate (409), no other"
    );
    assert!(
        accepted.len() >= 20,
        "only {} windows were committed",
        accepted.len()
    );
    assert_all_arrived(&accepted, &stored);
}
