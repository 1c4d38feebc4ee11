//! Issue 23, items 6 and 7: a parameter the function refuses is a configuration error
//! (exit 78, the key and its line, said once, nothing started), and `run --simulate`
//! without a configuration keeps its state to itself.

use std::path::Path;
use std::process::Command;

use edge_tests::agent::{Agent, write_test_config};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_edge-agent"))
}

#[test]
fn a_misspelt_or_mistyped_parameter_is_exit_78_naming_its_key_and_line() {
    let function = edge_tests::anomaly_wasm();
    // write_test_config puts `params` on line 13 on.
    for (params, key, line, says) in [
        (
            "[function.params]\nperiod = 24\nperod = 12\n\n",
            "function.params.perod",
            15,
            "unknown parameter `perod`",
        ),
        (
            "[function.params]\nperiod = \"often\"\n\n",
            "function.params.period",
            14,
            "cannot use `often`",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = write_test_config(dir.path(), function, params, "");
        let output = Command::new(binary())
            .args(["run", "--simulate", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(78), "{stderr}");
        assert!(
            stderr.contains(&format!("line {line}: `{key}`")),
            "{stderr}"
        );
        assert!(stderr.contains(says), "{stderr}");
        // One account of it, not two that contradict each other.
        assert!(!stderr.contains("fails too"), "{stderr}");
        assert_eq!(stderr.matches(says).count(), 1, "{stderr}");
        assert!(!dir.path().join("state").exists(), "started: {stderr}");
    }
}

#[test]
fn simulate_without_a_config_has_a_state_directory_of_its_own_removed_at_exit() {
    let function = edge_tests::anomaly_wasm().to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let leftover = tmp.path().join("edge-agent-simulate");
    std::fs::create_dir(&leftover).unwrap();
    std::fs::write(leftover.join("function.last-good.wasm"), b"stale").unwrap();
    let run = |tmp: &Path| {
        let mut agent = Agent::start_with_env(
            binary(),
            &[
                "run",
                "--simulate",
                "--speed",
                "3600",
                "--function",
                function,
                "--output",
                "-",
            ],
            &[("TMPDIR", tmp.as_os_str())],
        );
        agent.until_log("running ");
        let own = tmp.join(format!("edge-agent-simulate-{}", agent.pid()));
        assert!(own.is_dir(), "{} was not made", own.display());
        let (status, _, logs) = agent.stop();
        assert!(status.success(), "{logs:?}");
        assert!(!own.exists(), "{} is left behind", own.display());
    };
    run(tmp.path());
    run(tmp.path());
    // Only what the test made itself is left: nothing shared between the two runs.
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [leftover.file_name().unwrap()]);
}
