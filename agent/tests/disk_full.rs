//! A full disk degrades, it does not kill: on a tmpfs of 4 MiB filled to the brim before
//! the agent starts, sampling and judging go on (verdicts keep coming on the local copy),
//! the spool keeps verdicts in memory and says so, and once space returns the spool opens
//! and shipping delivers by itself. Needs root for `mount`; skips (passing, saying so) when
//! the tmpfs cannot be mounted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use edge_tests::agent::{Agent, PATIENCE, until_health_where};
use edge_tests::anomaly_wasm;
use edge_tests::fault_server::FaultServer;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_edge-agent"))
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(path).ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .ok()?;
        status.success().then(|| Self {
            path: path.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes into `path` until the disk refuses; answers the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("the filler file");
    let block = vec![0x55u8; 64 << 10];
    let mut written = 0;
    while file.write_all(&block).is_ok() {
        written += block.len() as u64;
    }
    let _ = file.sync_all();
    written
}

/// How the disk is made to refuse writes, and given back.
#[derive(Clone, Copy)]
enum Refusal {
    Full,
    ReadOnly,
}

fn remount(path: &Path, mode: &str) {
    let status = Command::new("mount")
        .args(["-o", &format!("remount,{mode}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "remount {mode}");
}

#[test]
fn a_full_disk_at_start_degrades_and_recovers_when_space_returns() {
    refused_at_start(Refusal::Full);
}

#[test]
fn a_read_only_state_directory_at_start_degrades_and_recovers() {
    refused_at_start(Refusal::ReadOnly);
}

fn refused_at_start(refusal: Refusal) {
    let dir = tempfile::tempdir().unwrap();
    let Some(tmpfs) = Tmpfs::mount(&dir.path().join("mnt"), "4m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        return;
    };
    let state = tmpfs.path.join("state");
    std::fs::create_dir(&state).unwrap();
    let filler = tmpfs.path.join("filler");
    match refusal {
        Refusal::Full => assert!(fill(&filler) > 0),
        Refusal::ReadOnly => remount(&tmpfs.path, "ro"),
    }

    let server = FaultServer::healthy();
    let config = write_config(dir.path(), &state, &server.url);
    // The local copy goes to stdout: it shows that judging goes on.
    let mut agent = Agent::simulated(binary(), &config, "200", &["--output", "-"]);
    agent.until_log("running without a durable spool");
    let metrics = agent.metrics_addr();
    // Degraded, not dead: /health says so and still answers 200.
    until_health_where(
        metrics,
        "200 with the disk refusing writes",
        |status, health| status == 200 && health["disk"] == "refuses writes",
    );
    // Judging goes on while nothing can be stored: several windows of verdicts.
    let seen = std::cell::Cell::new(0);
    agent.until_verdict("four windows on a full disk", |_| {
        seen.set(seen.get() + 1);
        seen.get() >= 64
    });
    let judged_on_full_disk: Vec<String> = agent
        .verdicts
        .iter()
        .filter_map(|v| v["@timestamp"].as_str().map(str::to_owned))
        .collect();
    assert!(
        server.stored_ids().is_empty(),
        "nothing was stored, so nothing could be shipped yet"
    );

    match refusal {
        Refusal::Full => std::fs::remove_file(&filler).unwrap(),
        Refusal::ReadOnly => remount(&tmpfs.path, "rw"),
    }
    agent.until_log("writable again");
    until_health_where(metrics, "200 with the disk ok again", |status, health| {
        status == 200 && health["disk"] == "ok"
    });
    let wanted = judged_on_full_disk.len();
    assert!(
        server.wait_until(PATIENCE, |_, stored| stored >= wanted),
        "shipping resumed by itself"
    );
    let (status, _, logs) = agent.stop();
    assert!(status.success(), "{}", logs.join("\n"));
    // What was judged while the disk was full was kept in memory and went upstream too.
    let stored: std::collections::BTreeSet<String> = server
        .stored()
        .values()
        .filter_map(|d| d["@timestamp"].as_str().map(str::to_owned))
        .collect();
    for timestamp in &judged_on_full_disk {
        assert!(stored.contains(timestamp), "{timestamp} was not shipped");
    }
    drop(tmpfs);
}

#[test]
fn a_disk_that_fills_while_running_degrades_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(tmpfs) = Tmpfs::mount(&dir.path().join("mnt"), "4m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        return;
    };
    let state = tmpfs.path.join("state");
    std::fs::create_dir(&state).unwrap();
    let server = FaultServer::healthy();
    let config = write_config(dir.path(), &state, &server.url);
    let mut agent = Agent::simulated(binary(), &config, "200", &["--output", "-"]);
    let metrics = agent.metrics_addr();
    assert!(
        server.wait_until(PATIENCE, |_, stored| stored >= 16),
        "ships while there is space"
    );
    let filler = tmpfs.path.join("filler");
    assert!(fill(&filler) > 0);
    agent.until_log("verdicts kept in memory");
    until_health_where(
        metrics,
        "200 with the disk refusing writes",
        |status, health| status == 200 && health["disk"] == "refuses writes",
    );
    let before = agent.verdicts.len();
    let seen = std::cell::Cell::new(0);
    agent.until_verdict("judging goes on on a full disk", |_| {
        seen.set(seen.get() + 1);
        seen.get() >= 32
    });
    assert!(agent.verdicts.len() >= before + 32);
    let judged: Vec<String> = agent
        .verdicts
        .iter()
        .filter_map(|v| v["@timestamp"].as_str().map(str::to_owned))
        .collect();
    std::fs::remove_file(&filler).unwrap();
    agent.until_log("writable again");
    until_health_where(metrics, "200 with the disk ok again", |status, health| {
        status == 200 && health["disk"] == "ok"
    });
    let stored_ts = || -> std::collections::BTreeSet<String> {
        server
            .stored()
            .values()
            .filter_map(|d| d["@timestamp"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(
        server.wait_until(PATIENCE, |_, stored| stored >= judged.len()),
        "everything judged so far arrives"
    );
    let (status, _, logs) = agent.stop();
    assert!(status.success(), "{}", logs.join("\n"));
    let stored = stored_ts();
    for timestamp in &judged {
        assert!(stored.contains(timestamp), "{timestamp} was not shipped");
    }
    drop(tmpfs);
}

fn write_config(dir: &Path, state: &Path, url: &str) -> PathBuf {
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nsensor_id = \"kitchen\"\n[sensor]\nstate_dir = \"{state}\"\n[function]\npath = \"{function}\"\nfuel_per_call = 300000000\n[function.params]\nperiod = 16\n[window]\nsize = 64\nhop = 16\n[metrics]\nlisten = \"127.0.0.1:0\"\n[elasticsearch]\nurl = \"{url}\"\nbatch_max_delay_ms = 50\nretry_initial_ms = 20\nretry_max_ms = 200\n",
            state = state.display(),
            function = anomaly_wasm().display(),
        ),
    )
    .unwrap();
    config
}
