//! A function written for Punch (`tests/fixtures/punch-anomaly`: S-H-ESD through
//! `punch_api` 1.0, period 10) in the running agent: it judges the live windows, and on
//! each of them says what our own function says with the same parameters.

use std::collections::BTreeMap;
use std::path::Path;

use edge_agent::function::{FunctionHost, FunctionModule, Limits};
use edge_agent::series::parse_timestamp;
use edge_function::{Params, Window};
use edge_tests::agent::{Agent, write_test_config};
use edge_tests::{anomaly_wasm, punch_anomaly_wasm, sha256_hex};
use serde_json::Value;

/// No [function.params]: a Punch function takes none.
fn config(dir: &Path, function: &Path) -> std::path::PathBuf {
    write_test_config(dir, function, "", "")
}

fn millis(verdict: &Value, field: &str) -> i64 {
    parse_timestamp(verdict[field].as_str().unwrap()).unwrap()
}

#[test]
fn the_running_agent_judges_live_windows_with_a_punch_function() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), punch_anomaly_wasm());
    let mut agent = Agent::start(
        Path::new(env!("CARGO_BIN_EXE_edge-agent")),
        &[
            "run",
            "--simulate",
            "--speed",
            "2000",
            "--scenario",
            "cooking",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    agent.until_log("running");
    while agent.verdicts.len() < 300 {
        agent.until_verdict("any", |_| true);
    }
    let (status, verdicts, logs) = agent.stop();
    assert!(status.success(), "{status}; logs:\n{}", logs.join("\n"));

    let sha = sha256_hex(&std::fs::read(punch_anomaly_wasm()).unwrap());
    let mut air_quality = BTreeMap::new();
    for verdict in &verdicts {
        assert_eq!(verdict["function_sha256"], sha.as_str());
        assert!(
            verdict["is_anomaly"].is_boolean(),
            "a window failed: {verdict}"
        );
        let value = verdict["air_quality"].as_f64().unwrap() as f32;
        air_quality.insert(millis(verdict, "@timestamp"), value);
    }

    // Every window the agent ran, rebuilt from its samples' verdicts, through our own
    // S-H-ESD with the Punch function's parameters.
    let mut ours = FunctionHost::new(
        FunctionModule::load(anomaly_wasm()).unwrap(),
        Params::from([("period", "10")]),
        Limits::default(),
    )
    .unwrap();
    let mut windows: BTreeMap<(i64, i64), Vec<&Value>> = BTreeMap::new();
    for verdict in &verdicts {
        let span = (
            millis(verdict, "window_start"),
            millis(verdict, "window_end"),
        );
        windows.entry(span).or_default().push(verdict);
    }
    assert!(windows.len() >= 10, "only {} windows", windows.len());
    let mut compared = 0;
    for ((start, end), decided) in windows {
        let samples: Vec<(i64, f32)> = air_quality
            .range(start..=end)
            .map(|(&t, &v)| (t, v))
            .collect();
        // The stream may begin or end mid-window; judge only windows seen whole.
        if samples.len() != 64 {
            continue;
        }
        let window = Window::from_air_quality(
            "kitchen",
            samples.iter().map(|s| s.0).collect(),
            samples.iter().map(|s| s.1).collect(),
        );
        let expected = ours.run(&window).unwrap().verdicts;
        for verdict in decided {
            let at = millis(verdict, "@timestamp");
            let index = samples.iter().position(|s| s.0 == at).unwrap();
            assert_eq!(
                verdict["is_anomaly"].as_bool(),
                Some(expected[index].is_anomaly),
                "{verdict}"
            );
            compared += 1;
        }
    }
    let flagged = verdicts.iter().filter(|v| v["is_anomaly"] == true).count();
    eprintln!("{compared} verdicts compared, {flagged} anomalies");
    assert!(compared >= 200, "only {compared} verdicts compared");
    assert!(flagged > 0, "no anomaly: the comparison proves little");
}
