//! SIGTERM with an upstream that hangs: the agent is gone well within the unit's
//! `TimeoutStopSec` (20 s), not after the request timeout, and what was not acknowledged
//! stays spooled for the next start. The password in the URL never reaches the log.

use std::path::Path;
use std::time::{Duration, Instant};

use edge_tests::agent::{Agent, PATIENCE};
use edge_tests::anomaly_wasm;
use edge_tests::fault_server::{FaultServer, Reply};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_edge-agent"))
}

#[test]
fn sigterm_does_not_wait_for_a_hanging_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let server = FaultServer::start(|request, _| {
        if request.path.contains("_bulk") {
            Reply::Hang
        } else {
            Reply::Bulk
        }
    });
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nsensor_id = \"kitchen\"\n[sensor]\nstate_dir = \"{state}\"\n[function]\npath = \"{function}\"\nfuel_per_call = 300000000\n[function.params]\nperiod = 16\n[window]\nsize = 64\nhop = 16\n[metrics]\nenabled = false\n[elasticsearch]\nurl = \"{url}\"\nbatch_max_delay_ms = 50\ntimeout_ms = 120000\n",
            state = state.display(),
            function = anomaly_wasm().display(),
            // A password inside the URL: it must never reach the log.
            url = server.url.replace("http://", "http://edge:s3cret-pw@"),
        ),
    )
    .unwrap();
    let mut agent = Agent::simulated(binary(), &config, "200", &[]);
    agent.until_log(" documents: ");
    assert!(
        server.wait_until(PATIENCE, |requests, _| requests >= 2),
        "a _bulk request is hanging"
    );
    let started = Instant::now();
    let (status, _, logs) = agent.stop();
    let took = started.elapsed();
    assert!(status.success(), "{}", logs.join("\n"));
    // Within the unit's TimeoutStopSec (20 s) with room to spare, whatever the backlog:
    // the pipeline's drain is bounded by its 10 s grace (under qemu the 200x sampler leaves
    // one) and the shipper's 5 s grace overlaps it.
    assert!(
        took < Duration::from_secs(15),
        "stopped in {took:?} with a 120 s request timeout"
    );
    let left: u64 = logs
        .iter()
        .find_map(|l| {
            let head = l.split(" left in the spool").next()?;
            l.contains("shipping stopped")
                .then(|| head.rsplit(' ').next()?.parse().ok())?
        })
        .expect("the shutdown line");
    assert!(left > 0, "nothing was acknowledged, so it stays spooled");
    assert!(server.stored_ids().is_empty());
    assert!(
        logs.iter()
            .any(|l| l.contains("shipping to http://127.0.0.1:")),
        "the URL is logged, without its userinfo"
    );
    assert!(
        !logs.iter().any(|l| l.contains("s3cret-pw")),
        "the password reached the log"
    );
}
