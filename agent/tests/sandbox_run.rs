//! The sandbox seen from `edge-agent run`: a refused swap does not brick the next start
//! (last known good), a swapped-in function that fails its probation is rolled back, and
//! SIGTERM ends the agent within the unit's stop timeout while a guest spins.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edge_tests::agent::{Agent, write_test_config};
use edge_tests::anomaly_wasm;

/// The unit's `TimeoutStopSec`.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The shared test configuration (period 8), with `fuel_per_call` set to `fuel`.
fn config(dir: &Path, function: &Path, fuel: u64) -> PathBuf {
    let path = write_test_config(dir, function, "[function.params]\nperiod = 8\n\n", "");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "fuel_per_call = 300000000",
        &format!("fuel_per_call = {fuel}"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn start(config: &Path) -> Agent {
    Agent::start(
        Path::new(env!("CARGO_BIN_EXE_edge-agent")),
        &[
            "run",
            "--simulate",
            "--speed",
            "2000",
            "--config",
            config.to_str().unwrap(),
        ],
    )
}

/// An edge-ABI module that accepts any parameters, asks for windows of 1, and runs
/// `execute_body`.
fn wat_function(execute_body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
          (memory (export "memory") 1)
          (data (i32.const 4096) "\00\01")
          (func (export "edge_abi_version") (result i32) i32.const 1)
          (func (export "alloc") (param i32) (result i32) i32.const 1024)
          (func (export "dealloc") (param i32 i32))
          (func (export "init") (param i32 i32) (result i64) i64.const 0x0000100000000002)
          (func (export "execute") (param i32 i32) (result i64) {execute_body}))"#
    ))
    .unwrap()
}

fn replace(path: &Path, bytes: &[u8]) {
    let temporary = path.with_extension("partial");
    std::fs::write(&temporary, bytes).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

#[test]
fn a_refused_swap_does_not_brick_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("function.wasm");
    let good = std::fs::read(anomaly_wasm()).unwrap();
    let sha_good = edge_tests::sha256_hex(&good);
    std::fs::write(&watched, &good).unwrap();
    let config = config(dir.path(), &watched, 300_000_000);

    // First run: the good function passes its probation and is kept.
    let mut agent = start(&config);
    agent.until_log("kept as the last good one");
    let kept = dir.path().join("state").join("function.last-good.wasm");
    assert_eq!(std::fs::read(&kept).unwrap(), good);
    // A module that traps on every window: refused by its canary, and the log names
    // the function kept, not the refused one.
    let traps = wat_function("unreachable");
    let sha_traps = edge_tests::sha256_hex(&traps);
    replace(&watched, &traps);
    agent.until_log("canary run on the latest window failed");
    let refusal = agent
        .logs
        .iter()
        .find(|l| l.contains("canary run on the latest window failed"))
        .unwrap()
        .clone();
    assert!(
        refusal.contains(&format!("keeping {}", &sha_good[..12])),
        "{refusal}"
    );
    assert!(
        !agent
            .logs
            .iter()
            .any(|l| l.contains(&format!("keeping {}", &sha_traps[..12]))),
        "a refused module was reported as kept"
    );
    let (status, _, _) = agent.stop();
    assert!(status.success());

    // Second run: the trapping module is still configured. It loads, fails its first
    // windows and is rolled back to the last good one.
    let mut agent = start(&config);
    agent.until_log("rolled back to");
    agent.until_verdict("by the last good function", |v| {
        v["function_sha256"] == sha_good.as_str() && v["is_anomaly"].is_boolean()
    });
    let (status, _, logs) = agent.stop();
    assert!(status.success(), "{}", logs.join("\n"));

    // Third run: a module whose init fails cannot start; the last good one does.
    let bad_init = wat::parse_str(
        r#"(module (memory (export "memory") 1)
          (func (export "edge_abi_version") (result i32) i32.const 1)
          (func (export "alloc") (param i32) (result i32) i32.const 1024)
          (func (export "dealloc") (param i32 i32))
          (func (export "init") (param i32 i32) (result i64) unreachable)
          (func (export "execute") (param i32 i32) (result i64) unreachable))"#,
    )
    .unwrap();
    replace(&watched, &bad_init);
    let mut agent = start(&config);
    agent.until_log("falling back to the last good function");
    agent.until_verdict("by the last good function", |v| {
        v["function_sha256"] == sha_good.as_str()
    });
    let (status, _, logs) = agent.stop();
    assert!(status.success(), "{}", logs.join("\n"));
}

#[test]
fn sigterm_ends_the_agent_while_a_guest_spins() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("spins.wasm");
    std::fs::write(&watched, wat_function("(loop br 0) i64.const 0")).unwrap();
    // Fuel for minutes (the most the configuration allows): only the deadline (the
    // default, 5 s) stops a window.
    let config = config(dir.path(), &watched, 1_000_000_000_000);
    let mut agent = start(&config);
    agent.until_log("running");
    agent.until_log("past the deadline");
    let started = Instant::now();
    let (status, _, logs) = agent.stop();
    let took = started.elapsed();
    assert!(status.success(), "{status}: {}", logs.join("\n"));
    assert!(took < STOP_TIMEOUT, "stopped in {took:?}");
    eprintln!("stopped in {took:?} with a spinning guest");
}
