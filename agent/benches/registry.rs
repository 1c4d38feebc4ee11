//! Registry figures on a simulated fleet (`edge_tests::fleet`): 50 agents poll one
//! registry on loopback. Prints the convergence time from a 10 % rollout to 100 % (to the
//! swap, and to the end of probation), registry requests per agent per hour in steady
//! state (and the share answered 304), the bytes that costs against unconditional polling
//! measured in the same run, the request rate while the registry is down (backoff), and
//! what those rates mean for 10 000 agents at the default interval. Asserts nothing about
//! time.
//!
//! `cargo bench -p edge-agent --bench registry` (`FLEET_AGENTS`, `FLEET_POLL_MS`,
//! `FLEET_STEADY_S` change the fleet size, the poll interval and the measuring window).

use std::path::Path;
use std::time::{Duration, Instant};

use edge_tests::fleet::{Fleet, FleetOptions, Publisher, module};
use edge_tests::sha256_hex;
use edge_tests::static_server::StaticServer;

const PATIENCE: Duration = Duration::from_secs(600);
/// `[registry] poll_interval_ms`'s default.
const DEFAULT_POLL_MS: f64 = 300_000.0;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let count = env("FLEET_AGENTS", 50) as usize;
    let poll_ms = env("FLEET_POLL_MS", 1000);
    let steady = Duration::from_secs(env("FLEET_STEADY_S", 30));
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = StaticServer::start();
    let publisher = Publisher::new();
    let base = module("v0", false);
    let base_path = dir.path().join("base.wasm");
    std::fs::write(&base_path, &base).expect("the base module");
    let v1 = module("v1", false);
    let sha_v1 = sha256_hex(&v1);
    let registry = format!("{}/manifest.json", server.url);

    let (manifest, signature) = publisher.publish(&server, 1, "v1.wasm", &v1, 0.1);
    let fleet = Fleet::start(
        dir.path(),
        &FleetOptions {
            binary: Path::new(env!("CARGO_BIN_EXE_edge-agent")),
            count,
            function: &base_path,
            registry: &registry,
            public_key: &publisher.public_key(),
            poll_ms,
            speed: "300",
        },
    );
    let (views, _) = fleet.until("settle on manifest 1", PATIENCE, |_, v| {
        v.version == 1 && (v.state == "current" || v.state == "not_in_cohort")
    });
    let cohort = views.iter().filter(|v| v.function == sha_v1).count();

    // 10 % → 100 %: time to the swap everywhere, and to the end of every probation.
    let published = Instant::now();
    publisher.publish(&server, 2, "v1.wasm", &v1, 1.0);
    let (_, swapped) = fleet.until("run v1", PATIENCE, |_, v| v.function == sha_v1);
    let swapped = swapped.min(published.elapsed());
    let (_, _) = fleet.until("pass probation", PATIENCE, |_, v| {
        v.state == "current" && v.version == 2
    });
    let current = published.elapsed();

    // Steady state: nothing changes, every poll is conditional.
    let before = fleet.views();
    let ok_before = server.answers("/manifest.json", 200);
    let nm_before = server.answers("/manifest.json", 304);
    std::thread::sleep(steady);
    let after = fleet.views();
    let requests: u64 = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.requests - b.requests)
        .sum();
    let not_modified: u64 = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.not_modified - b.not_modified)
        .sum();
    let served_200 = server.answers("/manifest.json", 200) - ok_before;
    let served_304 = server.answers("/manifest.json", 304) - nm_before;
    let hours = steady.as_secs_f64() / 3600.0;
    let per_agent_hour = requests as f64 / count as f64 / hours;
    let at_default = per_agent_hour * poll_ms as f64 / DEFAULT_POLL_MS;
    // HTTP bytes (request head, response head and body) per answer, as the server counted
    // them: a conditional poll is one 304; an unconditional one reads manifest and signature.
    let mean = |path: &str, status: u16| {
        let (read, written) = server.bytes(path, status);
        (read + written) as f64 / server.answers(path, status).max(1) as f64
    };
    let conditional_bytes = mean("/manifest.json", 304);
    let full_bytes = mean("/manifest.json", 200) + mean("/manifest.json.minisig", 200);

    // The registry goes away: failed polls back off (from the interval up to twice it here).
    drop(server);
    let down_before = fleet.views();
    std::thread::sleep(steady);
    let down_after = fleet.views();
    let down_requests: u64 = down_after
        .iter()
        .zip(&down_before)
        .map(|(a, b)| a.requests - b.requests)
        .sum();
    let down_per_agent_hour = down_requests as f64 / count as f64 / hours;
    let _ = fleet.stop();

    let intervals = |d: Duration| d.as_secs_f64() * 1000.0 / poll_ms as f64;
    println!(
        "fleet: {count} agents, poll interval {poll_ms} ms (each wait drawn in [0.5, 1] of it)"
    );
    println!("  10 % cohort: {cohort} agents took v1");
    println!(
        "  convergence 10 % -> 100 %: all swapped in {swapped:.2?} ({:.2} poll intervals), all past probation {current:.2?} ({:.2})",
        intervals(swapped),
        intervals(current)
    );
    println!(
        "  steady state over {steady:?}: {requests} manifest requests ({not_modified} answered 304 by the agents' count; server: {served_304} x 304, {served_200} x 200)"
    );
    println!(
        "  registry requests per agent per hour: {per_agent_hour:.0} at {poll_ms} ms; {at_default:.1} at the default {DEFAULT_POLL_MS} ms",
    );
    println!(
        "  HTTP bytes per poll: {conditional_bytes:.0} conditional (304) vs {full_bytes:.0} unconditional (manifest {} + signature {} bytes of body): {:.2}x",
        manifest.len(),
        signature.len(),
        full_bytes / conditional_bytes
    );
    println!(
        "  registry down for {steady:?}: {down_per_agent_hour:.0} requests per agent per hour ({:.2}x the steady rate)",
        down_per_agent_hour / per_agent_hour
    );
    let fleet_rate = 10_000.0 * at_default / 3600.0;
    println!(
        "  10 000 agents at the default interval: {fleet_rate:.0} requests/s to the registry, {:.0} kB/s, nearly all 304",
        fleet_rate * conditional_bytes / 1000.0
    );
}
