//! The running agent's figures: CPU per simulated hour at 1 Hz with N=1024, H=60 (an
//! accelerated run on the simulated chip), resident memory, and hot-swap latency (file
//! replaced → first verdict by the new module). Prints them; asserts nothing about time.
//!
//! `cargo bench -p edge-agent --bench agent`

use std::path::Path;
use std::time::{Duration, Instant};

use edge_tests::agent::{Agent, cpu_seconds};
use edge_tests::{anomaly_wasm, misbehave_wasm, sha256_hex};

const SPEED: f64 = 1000.0;
const MEASURED_HOURS: f64 = 2.0;

fn main() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let watched = dir.path().join("function.wasm");
    std::fs::copy(anomaly_wasm(), &watched).expect("copy the function");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[sensor]\nsample_period_ms = 1000\nstate_dir = \"{}\"\n\n[function]\npath = \"{}\"\n\n[function.params]\nperiod = 60\n\n[window]\nsize = 1024\nhop = 60\n",
            dir.path().join("state").display(),
            watched.display()
        ),
    )
    .expect("write the config");
    let speed = SPEED.to_string();
    let binary = Path::new(env!("CARGO_BIN_EXE_edge-agent"));
    let args = [
        "run",
        "--simulate",
        "--speed",
        &speed,
        "--config",
        config.to_str().expect("UTF-8"),
    ];
    let mut agent = Agent::start(binary, &args);

    // Warm up past the first window (1024 samples), then measure a stretch of windows.
    agent.until_verdict("after the first window", |_| true);
    let (cpu_start, simulated_start) = (cpu_seconds(agent.pid()), latest_time(&agent));
    let target = simulated_start + MEASURED_HOURS * 3600.0;
    agent.until_verdict("after the measured hours", |v| seconds(v) >= target);
    let cpu = cpu_seconds(agent.pid()) - cpu_start;
    let simulated_hours = (latest_time(&agent) - simulated_start) / 3600.0;
    let per_hour = cpu / simulated_hours;
    let (rss, peak) = memory_kib(agent.pid());

    // Hot swap: replace the file, wait for the first verdict by the new module.
    let other = std::fs::read(misbehave_wasm()).expect("the fixture");
    let other_sha = sha256_hex(&other);
    let partial = watched.with_extension("partial");
    std::fs::write(&partial, &other).expect("write");
    let replaced = Instant::now();
    std::fs::rename(&partial, &watched).expect("rename");
    agent.until_log("function swapped in");
    let swapped = replaced.elapsed();
    agent.until_verdict("by the new module", |v| {
        v["function_sha256"] == other_sha.as_str()
    });
    let first_verdict = replaced.elapsed();
    let (status, _, _) = agent.stop();
    assert!(status.success());

    println!(
        "edge-agent run --simulate --speed {SPEED} (1 Hz samples, N=1024, H=60, S-H-ESD period 60):"
    );
    println!(
        "- CPU: {per_hour:.3} s per simulated hour over {simulated_hours:.1} h = {:.4}% of one core at real time",
        100.0 * per_hour / 3600.0
    );
    println!(
        "- resident memory: {:.1} MB now, {:.1} MB peak",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!(
        "- hot swap: swapped in {swapped:.0?} after the file was replaced; first verdict by the new module after {first_verdict:.0?} (windows every {:.0?} at this speed)",
        Duration::from_secs_f64(60.0 / SPEED)
    );
}

fn seconds(verdict: &serde_json::Value) -> f64 {
    let text = verdict["@timestamp"].as_str().unwrap_or_default();
    edge_agent::series::parse_timestamp(text).unwrap_or(0) as f64 / 1000.0
}

fn latest_time(agent: &Agent) -> f64 {
    agent.verdicts.last().map(seconds).unwrap_or(0.0)
}

/// VmRSS and VmHWM of `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc is there");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
