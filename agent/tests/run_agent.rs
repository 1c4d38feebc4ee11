//! `edge-agent run` as systemd or a person runs it: the binary on the simulated chip,
//! verdicts on stdout, logs on stderr, signals to stop and reload.

use std::path::{Path, PathBuf};
use std::process::Command;

use edge_tests::agent::{Agent, PATIENCE, time_ms, write_test_config};
use edge_tests::{anomaly_wasm, misbehave_wasm};
use serde_json::Value;

fn start(config: &Path, extra: &[&str]) -> Agent {
    let mut args = vec!["run", "--simulate", "--speed", "2000", "--config"];
    let config = config.to_str().expect("a UTF-8 temp path");
    args.push(config);
    args.extend_from_slice(extra);
    Agent::start(Path::new(env!("CARGO_BIN_EXE_edge-agent")), &args)
}

fn write_config(dir: &Path, function: &Path, extra: &str) -> PathBuf {
    write_test_config(dir, function, "[function.params]\nperiod = 8\n\n", extra)
}

/// Writes `bytes` where the agent watches, as `mv` would: readers see old or new, whole.
fn replace(path: &Path, bytes: &[u8]) {
    let temporary = path.with_extension("partial");
    std::fs::write(&temporary, bytes).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// The samples the pipeline received, from the stop summary ("N samples (… M overwritten
/// in the ring)"): those the sampler produced, less those a sampler running ahead of the
/// pipeline overwrote in the ring (counted drops, by design: a loaded machine under
/// qemu at 2000x).
fn samples_logged(logs: &[String]) -> u64 {
    let line = logs
        .iter()
        .find(|l| l.contains("stopped in"))
        .expect("a stop summary");
    let after = line.split(": ").nth(1).expect("counts follow");
    let produced: u64 = after.split_whitespace().next().unwrap().parse().unwrap();
    let overwritten: u64 = after
        .split(" overwritten in the ring")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    produced - overwritten
}

/// Every sample the pipeline received has exactly one verdict, in time order.
fn assert_exactly_once(verdicts: &[Value], logs: &[String]) {
    let times: Vec<i64> = verdicts.iter().map(|v| time_ms(v, "@timestamp")).collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "verdicts out of order or repeated"
    );
    assert_eq!(
        verdicts.len() as u64,
        samples_logged(logs),
        "a sample was lost or invented; the agent's last lines:\n{}",
        logs[logs.len().saturating_sub(8)..].join("\n")
    );
}

#[test]
fn sigterm_finishes_the_pending_window_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), anomaly_wasm(), "");
    let mut agent = start(&config, &["--scenario", "cooking"]);
    agent.until_log("running");
    while agent.verdicts.len() < 200 {
        agent.until_verdict("any", |_| true);
    }
    let (status, verdicts, logs) = agent.stop();
    assert!(status.success(), "{status}; logs:\n{}", logs.join("\n"));
    assert_exactly_once(&verdicts, &logs);
    let sha = edge_tests::sha256_hex(&std::fs::read(anomaly_wasm()).unwrap());
    for verdict in &verdicts {
        assert_eq!(verdict["sensor_id"], "kitchen");
        assert_eq!(verdict["host_id"], "test-host");
        assert_eq!(verdict["function_sha256"], sha.as_str());
        assert!(time_ms(verdict, "window_start") <= time_ms(verdict, "@timestamp"));
        assert!(time_ms(verdict, "@timestamp") <= time_ms(verdict, "window_end"));
    }
}

/// A restart resumes the windows where they were: the first window after it decides one hop
/// of new samples, with the history from before the restart, and nothing is judged twice.
#[test]
fn a_restart_resumes_the_windows_after_one_hop() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), anomaly_wasm(), "");
    let mut agent = start(&config, &[]);
    while agent.verdicts.len() < 100 {
        agent.until_verdict("any", |_| true);
    }
    let (status, before, logs) = agent.stop();
    assert!(status.success(), "{status}; logs:\n{}", logs.join("\n"));
    let before_times: std::collections::BTreeSet<i64> =
        before.iter().map(|v| time_ms(v, "@timestamp")).collect();

    let mut agent = start(&config, &[]);
    agent.until_log("resuming the windows: 64 samples of history, 0 not yet decided");
    while agent.verdicts.len() < 40 {
        agent.until_verdict("any", |_| true);
    }
    let (status, after, logs) = agent.stop();
    assert!(status.success(), "{status}; logs:\n{}", logs.join("\n"));
    let first_end = time_ms(&after[0], "window_end");
    let first_window: Vec<&Value> = after
        .iter()
        .take_while(|v| time_ms(v, "window_end") == first_end)
        .collect();
    assert_eq!(
        first_window.len(),
        16,
        "the first window decides one hop (H = 16)"
    );
    // Its window reaches back into the samples taken before the restart.
    assert!(
        before_times.contains(&time_ms(first_window[0], "window_start")),
        "the first window after the restart starts with a sample from before it"
    );
    // One verdict for each sample of the second run: nothing from before is judged again.
    assert_exactly_once(&after, &logs);
}

#[test]
fn a_config_error_names_key_and_line_and_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), anomaly_wasm(), "colour = \"blue\"\n");
    let out = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .args(["run", "--simulate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 19") && stderr.contains("colour"),
        "{stderr}"
    );

    // A window the function cannot judge is a configuration error too.
    let config = write_config(dir.path(), anomaly_wasm(), "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("period = 8", "period = 40");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .args(["run", "--simulate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("minimum of 80"));
}

/// The edge ABI by hand: `init` accepts anything, `execute` does `body`.
fn wat_function(body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
          (memory (export "memory") 1)
          (func (export "edge_abi_version") (result i32) i32.const 1)
          (func (export "alloc") (param i32) (result i32) i32.const 1024)
          (func (export "dealloc") (param i32 i32))
          (func (export "init") (param i32 i32) (result i64)
            (i32.store8 (i32.const 4096) (i32.const 0))
            (i32.store8 (i32.const 4097) (i32.const 1))
            i64.const 0x0000100000000002)
          (func (export "execute") (param i32 i32) (result i64) {body}))"#
    ))
    .unwrap()
}

#[test]
fn hot_swap_keeps_every_window_and_refuses_bad_modules() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("function.wasm");
    let good = std::fs::read(anomaly_wasm()).unwrap();
    let other = std::fs::read(misbehave_wasm()).unwrap();
    let traps = wat_function("unreachable");
    let spins = wat_function("(loop br 0) i64.const 0");
    let (sha_good, sha_other) = (
        edge_tests::sha256_hex(&good),
        edge_tests::sha256_hex(&other),
    );
    let bad_shas = [
        edge_tests::sha256_hex(&traps),
        edge_tests::sha256_hex(&spins),
    ];
    std::fs::write(&watched, &good).unwrap();
    let config = write_config(dir.path(), &watched, "");
    let mut agent = start(&config, &[]);
    agent.until_verdict("by the first module", |v| {
        v["function_sha256"] == sha_good.as_str()
    });

    // (a) a good new module
    replace(&watched, &other);
    agent.until_verdict("by the new module", |v| {
        v["function_sha256"] == sha_other.as_str()
    });
    // (b) a truncated file
    replace(&watched, &good[..good.len() / 3]);
    agent.until_log("refusing new function");
    // (c) a module that traps: refused by its canary run
    replace(&watched, &traps);
    agent.until_log("canary run on the latest window failed: trapped");
    // (d) a module that never returns: out of fuel in its canary run
    replace(&watched, &spins);
    agent.until_log("canary run on the latest window failed: out of fuel");
    // (e) the first module again
    replace(&watched, &good);
    agent.until_verdict("by the first module again", |v| {
        v["function_sha256"] == sha_good.as_str()
    });
    // Windows keep coming after the last swap.
    let before = agent.verdicts.len();
    agent.until_verdict("after the swaps", |_| true);
    assert!(agent.verdicts.len() > before);

    let (status, verdicts, logs) = agent.stop();
    assert!(status.success(), "{status}; logs:\n{}", logs.join("\n"));
    assert_exactly_once(&verdicts, &logs);
    let mut runs: Vec<&str> = Vec::new();
    for verdict in &verdicts {
        let sha = verdict["function_sha256"].as_str().unwrap();
        assert!(
            !bad_shas.iter().any(|bad| bad == sha),
            "a refused module judged a sample"
        );
        // Only a stop may leave windows unjudged: under qemu the 2000x sampler runs ahead,
        // and the backlog past the stop grace is emitted as abandoned, not judged.
        let abandoned_at_stop = verdict["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("abandoned: the agent is stopping"));
        assert!(
            verdict["is_anomaly"].is_boolean() || abandoned_at_stop,
            "a window failed: {verdict}"
        );
        if runs.last() != Some(&sha) {
            runs.push(sha);
        }
    }
    assert_eq!(
        runs,
        [sha_good.as_str(), sha_other.as_str(), sha_good.as_str()]
    );
}

#[test]
fn systemd_hears_ready_status_and_watchdog_pings() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let config = write_config(dir.path(), anomaly_wasm(), "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .args(["run", "--simulate", "--speed", "2000", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        // Half of this is the ping interval: a ping every 100 ms.
        .env("WATCHDOG_USEC", "200000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut messages = Vec::new();
    let mut buffer = [0u8; 4096];
    while messages
        .iter()
        .filter(|m: &&String| m.contains("WATCHDOG=1"))
        .count()
        < 3
    {
        let Ok(len) = socket.recv(&mut buffer) else {
            break;
        };
        messages.push(String::from_utf8_lossy(&buffer[..len]).into_owned());
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(
        messages.first().map(|m| m.trim_end()),
        Some("READY=1"),
        "{messages:?}"
    );
    let ping = messages
        .iter()
        .find(|m| m.contains("WATCHDOG=1"))
        .expect("watchdog pings");
    assert!(
        ping.contains("STATUS=") && ping.contains("samples"),
        "{ping}"
    );
}

#[test]
fn sighup_rereads_the_function() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("function.wasm");
    std::fs::copy(anomaly_wasm(), &watched).unwrap();
    // A slow watch interval: only the signal can make it look now.
    let config = write_config(dir.path(), &watched, "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("watch_interval_ms = 20", "watch_interval_ms = 3600000");
    std::fs::write(&config, text).unwrap();
    let mut agent = start(&config, &[]);
    agent.until_log("running");
    replace(&watched, &std::fs::read(misbehave_wasm()).unwrap());
    agent.signal("HUP");
    agent.until_log("reload requested");
    let sha = edge_tests::sha256_hex(&std::fs::read(misbehave_wasm()).unwrap());
    agent.until_verdict("by the reloaded module", |v| {
        v["function_sha256"] == sha.as_str()
    });
    let (status, _, _) = agent.stop();
    assert!(status.success());
}

#[test]
fn check_reports_what_an_author_needs_and_refuses_a_broken_module() {
    let out = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .arg("check")
        .arg(anomaly_wasm())
        .args(["--param", "period=60"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let sha = edge_tests::sha256_hex(&std::fs::read(anomaly_wasm()).unwrap());
    assert!(text.contains(&format!("sha256    {sha}")), "{text}");
    assert!(text.contains("ABI       edge-function v1"), "{text}");
    assert!(
        text.contains("execute") && text.contains("edge_abi_version"),
        "{text}"
    );
    assert!(text.contains("min window 120 samples"), "{text}");
    assert!(
        text.contains("ran       1024 samples") && text.contains("fuel of"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.wasm");
    std::fs::write(&broken, b"\0asm\x01\0\0\0garbage").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .arg("check")
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid WebAssembly module"));

    let out = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .arg("check")
        .arg(anomaly_wasm())
        .args(["--param", "period=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`period` must be at least 2"));
}
