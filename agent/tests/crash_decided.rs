//! The spool's commit is where a sample counts as decided. An agent killed with SIGKILL
//! again and again, with a local NDJSON copy beside the spool: every sample it judged is
//! upstream at the end (stored, or judged again after the restart and stored then), and
//! the copy holds nothing that did not reach the spool.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use edge_tests::agent::Agent;
use edge_tests::anomaly_wasm;
use edge_tests::crash::{Key, Rng, key};
use edge_tests::fault_server::FaultServer;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_edge-agent"))
}

/// A window the pipeline judged: how many samples it decided, the first and the last.
#[derive(Debug)]
struct Judged {
    count: usize,
    first: Key,
    last: Key,
}

/// Every "judged N samples of sensor S: a .. b" line (a line cut by the kill is skipped).
fn judged(logs: &[String]) -> Vec<Judged> {
    logs.iter()
        .filter_map(|line| {
            let rest = line.split("judged ").nth(1)?;
            let (count, rest) = rest.split_once(" samples of sensor ")?;
            let (_, ids) = rest.split_once(": ")?;
            let (first, last) = ids.split_once(" .. ")?;
            Some(Judged {
                count: count.parse().ok()?,
                first: key(first.trim())?,
                last: key(last.trim())?,
            })
        })
        .collect()
}

#[test]
fn sigkill_while_judging_leaves_every_judged_sample_upstream_or_judged_again() {
    let server = FaultServer::healthy();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.ndjson");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[sensor]\nstate_dir = \"{state}\"\nsample_period_ms = 25\nheater_duration_ms = 10\n\
             temperature_oversampling = \"x1\"\npressure_oversampling = \"x1\"\n\
             humidity_oversampling = \"x1\"\n[function]\npath = \"{function}\"\n\
             [function.params]\nperiod = 4\n[window]\nsize = 16\nhop = 4\n[output]\npath = \"{copy}\"\n\
             [elasticsearch]\nurl = \"{url}\"\nindex = \"crash\"\nbatch_max_delay_ms = 50\n\
             retry_initial_ms = 20\nretry_max_ms = 200\n[fleet]\nenabled = false\n",
            state = dir.path().join("state").display(),
            function = anomaly_wasm().display(),
            copy = copy.display(),
            url = server.url,
        ),
    )
    .unwrap();
    let args = ["run", "--simulate", "--config", config.to_str().unwrap()];
    let seed = 0x0dec_1ded_u64 ^ std::process::id() as u64;
    eprintln!("seed {seed:#x}");
    let mut rng = Rng::seeded(seed);
    let mut windows = Vec::new();
    for _ in 0..12 {
        let mut agent = Agent::start(binary(), &args);
        let wanted = 1 + rng.below(4) as usize;
        agent.until_logs("windows judged", |logs| judged(logs).len() >= wanted);
        // Not a wait for anything: a random moment to pull the plug, mostly inside the
        // few milliseconds between judging a window and the spool's commit.
        std::thread::sleep(Duration::from_millis(rng.below(60)));
        windows.extend(judged(&agent.kill()));
    }
    // A last run judges again what the killed ones left undecided, and ships everything.
    let mut agent = Agent::start(binary(), &args);
    agent.until_log("caught up");
    let (status, _, logs) = agent.stop();
    assert!(status.success());
    windows.extend(judged(&logs));

    let stored: BTreeSet<Key> = server
        .stored_ids()
        .iter()
        .filter_map(|id| key(id))
        .collect();
    assert!(windows.len() >= 12, "only {} windows judged", windows.len());
    for window in &windows {
        assert!(
            stored.contains(&window.first) && stored.contains(&window.last),
            "judged but neither upstream nor judged again: {window:?}"
        );
        if window.first.0 == window.last.0 {
            let arrived = stored
                .range(window.first.clone()..=window.last.clone())
                .count();
            assert_eq!(arrived, window.count, "window {window:?}");
        }
    }
    let copied = std::fs::read_to_string(&copy).unwrap();
    let mut lines = 0;
    for line in copied.lines() {
        let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let copied_key = (
            record["run_id"].as_str().unwrap().to_owned(),
            record["seq"].as_u64().unwrap(),
        );
        lines += 1;
        assert!(
            stored.contains(&copied_key),
            "in the copy, not upstream: {line}"
        );
    }
    assert!(lines > 0, "the copy holds verdicts");
}
