//! A corrupt spool never stops the agent: a file that is not a database is moved aside at
//! start, a new spool is started, and shipping goes on.

use std::path::Path;

use edge_tests::agent::{Agent, PATIENCE};
use edge_tests::anomaly_wasm;
use edge_tests::fault_server::FaultServer;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_edge-agent"))
}

#[test]
fn a_corrupt_spool_is_moved_aside_and_the_agent_ships_on() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let garbage = b"not a redb file, a truncated copy or a bad sector".repeat(1000);
    std::fs::write(state.join("spool.redb"), &garbage).unwrap();
    let server = FaultServer::healthy();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nsensor_id = \"kitchen\"\n[sensor]\nstate_dir = \"{state}\"\n[function]\npath = \"{function}\"\nfuel_per_call = 300000000\n[function.params]\nperiod = 16\n[window]\nsize = 64\nhop = 16\n[metrics]\nenabled = false\n[elasticsearch]\nurl = \"{url}\"\nbatch_max_delay_ms = 50\n",
            state = state.display(),
            function = anomaly_wasm().display(),
            url = server.url,
        ),
    )
    .unwrap();
    let mut agent = Agent::simulated(binary(), &config, "200", &[]);
    agent.until_log("is corrupt");
    assert!(
        server.wait_until(PATIENCE, |_, stored| stored >= 16),
        "a new spool, and shipping goes on"
    );
    let (status, _, logs) = agent.stop();
    assert!(status.success(), "{}", logs.join("\n"));
    let aside: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("spool.redb.corrupt-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "the old file is kept aside");
    assert_eq!(std::fs::read(aside[0].path()).unwrap(), garbage);
}
