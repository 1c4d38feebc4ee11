//! `edge-agent replay` as a user runs it: the binary, a CSV, the built function.

use std::path::Path;
use std::process::{Command, Output};

use edge_tests::{anomaly_wasm, punch_anomaly_wasm, seasonal_series, workspace};
use serde_json::Value;

fn replay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .arg("replay")
        .args(args)
        .output()
        .expect("the binary runs")
}

fn demo_csv() -> String {
    workspace()
        .join("demo/air_quality.csv")
        .display()
        .to_string()
}

fn lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_demo_series_flags_exactly_the_injected_spikes() {
    let wasm = anomaly_wasm().display().to_string();
    let out = replay(&[
        "--function",
        &wasm,
        "--input",
        &demo_csv(),
        "--param",
        "period=24",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = lines(&out);
    assert_eq!(lines.len(), 336);
    let sha = sha256_of(anomaly_wasm());
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i as u64);
        assert_eq!(line["function_sha256"], sha.as_str());
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    let flagged: Vec<u64> = lines
        .iter()
        .filter(|l| l["is_anomaly"] == true)
        .map(|l| l["index"].as_u64().unwrap())
        .collect();
    // The demo series has spikes on days 3, 6, 9 and 12 (see demo/README.md).
    assert_eq!(flagged, [91, 152, 236, 291]);
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("336 samples, 1 windows (0 failed), 4 anomalies"),
        "{summary}"
    );
}

#[test]
fn sliding_windows_give_every_sample_one_verdict_in_order() {
    let wasm = anomaly_wasm().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.ndjson");
    let out = replay(&[
        "--function",
        &wasm,
        "--input",
        &demo_csv(),
        "--param",
        "period=24",
        "--window",
        "168",
        "--hop",
        "24",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let text = std::fs::read_to_string(&output).unwrap();
    let indexes: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(indexes, (0..336).collect::<Vec<_>>());
    // 336 samples: one window of 168, then 7 hops of 24.
    assert!(String::from_utf8_lossy(&out.stderr).contains("8 windows (0 failed)"));
}

#[test]
fn a_bad_row_is_named_by_its_line_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bad.csv");
    std::fs::write(
        &csv,
        "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 01:00:00,oops\n",
    )
    .unwrap();
    let wasm = anomaly_wasm().display().to_string();
    let out = replay(&["--function", &wasm, "--input", csv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 3: value \"oops\" is not a number"),
        "{stderr}"
    );
}

#[test]
fn a_window_the_function_refuses_is_marked_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("gap.csv");
    let mut text = String::from("timestamp,value\n");
    for i in 0..16 {
        let value = if i == 3 {
            "NaN".to_owned()
        } else {
            format!("{}", 50 + i % 4)
        };
        text += &format!("{},{value}\n", 1_700_000_000 + i * 60);
    }
    std::fs::write(&csv, text).unwrap();
    let wasm = anomaly_wasm().display().to_string();
    let out = replay(&[
        "--function",
        &wasm,
        "--input",
        csv.to_str().unwrap(),
        "--param",
        "period=4",
        "--window",
        "8",
        "--hop",
        "4",
    ]);
    assert_eq!(out.status.code(), Some(1), "a failed window fails the run");
    let lines = lines(&out);
    assert_eq!(lines.len(), 16, "every sample is still written");
    for line in &lines[..8] {
        assert_eq!(line["is_anomaly"], Value::Null);
        assert!(
            line["error"]
                .as_str()
                .unwrap()
                .contains("air_quality[3] is NaN")
        );
    }
    for line in &lines[8..] {
        assert!(line["is_anomaly"].is_boolean(), "{line}");
        assert!(line.get("error").is_none());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3 windows (1 failed)"), "{stderr}");
}

#[test]
fn a_broken_module_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("broken.wasm");
    std::fs::write(&wasm, b"\0asm\x01\0\0\0\x01").unwrap();
    let out = replay(&["--function", wasm.to_str().unwrap(), "--input", &demo_csv()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing") && stderr.contains("not a valid WebAssembly module"),
        "{stderr}"
    );
}

#[test]
fn a_window_shorter_than_the_function_needs_is_refused_up_front() {
    let wasm = anomaly_wasm().display().to_string();
    let out = replay(&[
        "--function",
        &wasm,
        "--input",
        &demo_csv(),
        "--param",
        "period=24",
        "--window",
        "40",
        "--hop",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("shorter than the function's minimum of 48"),
        "{stderr}"
    );
}

/// A function written for Punch (`tests/fixtures/punch-anomaly`: S-H-ESD through
/// `punch_api` 1.0 with period 10) replays to our function's verdicts, line for line.
#[test]
fn a_punch_function_replays_to_the_same_verdicts_as_ours() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("seasonal.csv");
    let spikes = [33, 95, 130, 171, 246, 312, 377];
    let mut text = String::from("timestamp,value\n");
    for (i, value) in seasonal_series(400, 10, &spikes).iter().enumerate() {
        text += &format!("{},{value}\n", 1_700_000_000 + i * 600);
    }
    std::fs::write(&csv, text).unwrap();
    let input = [
        "--input",
        csv.to_str().unwrap(),
        "--window",
        "100",
        "--hop",
        "20",
    ];

    let punch = punch_anomaly_wasm().display().to_string();
    let out = replay(&[&["--function", &punch][..], &input].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let punch_lines = lines(&out);

    let ours = anomaly_wasm().display().to_string();
    let out = replay(&[&["--function", &ours, "--param", "period=10"][..], &input].concat());
    assert!(out.status.success());
    let our_lines = lines(&out);

    assert_eq!(punch_lines.len(), 400);
    assert_eq!(our_lines.len(), 400);
    let punch_sha = sha256_of(punch_anomaly_wasm());
    let without_sha = |line: &Value| {
        let mut line = line.clone();
        line.as_object_mut().unwrap().remove("function_sha256");
        line
    };
    for (punch, ours) in punch_lines.iter().zip(&our_lines) {
        assert_eq!(punch["function_sha256"], punch_sha.as_str());
        assert_eq!(without_sha(punch), without_sha(ours));
    }
    let flagged: Vec<u64> = punch_lines
        .iter()
        .filter(|line| line["is_anomaly"] == true)
        .map(|line| line["index"].as_u64().unwrap())
        .collect();
    assert!(
        spikes
            .iter()
            .all(|spike| flagged.contains(&(*spike as u64))),
        "{flagged:?}"
    );
}

#[test]
fn a_punch_function_given_parameters_is_refused() {
    let punch = punch_anomaly_wasm().display().to_string();
    let out = replay(&[
        "--function",
        &punch,
        "--input",
        &demo_csv(),
        "--param",
        "period=24",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("punch_api 1.0 functions take no parameters, but got `period`"),
        "{stderr}"
    );
}

/// The demo series with the clock stepped back an hour from row 200 on, the way NAB's
/// machine_temperature does at row 10 151: rows from there on repeat an hour.
fn demo_with_a_step_back(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(demo_csv()).unwrap();
    let mut out = String::new();
    for (n, line) in text.lines().enumerate() {
        if n > 200 {
            let (time, value) = line.split_once(',').unwrap();
            let at = edge_agent::series::parse_timestamp(time).unwrap() - 3_600_000;
            out.push_str(&format!("{},{value}\n", at / 1000));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let path = dir.join("steps-back.csv");
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn a_series_whose_clock_steps_back_is_replayed_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let csv = demo_with_a_step_back(dir.path());
    let wasm = anomaly_wasm().display().to_string();
    let out = replay(&[
        "--function",
        &wasm,
        "--input",
        csv.to_str().unwrap(),
        "--param",
        "period=24",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = lines(&out);
    let indexes: Vec<u64> = lines.iter().map(|l| l["index"].as_u64().unwrap()).collect();
    assert_eq!(
        indexes,
        (0..336).collect::<Vec<_>>(),
        "every row, file order"
    );
    // Row 200 (line 202) repeats row 199's hour: the times say so, in file order.
    let at = |i: usize| {
        edge_agent::series::parse_timestamp(lines[i]["timestamp"].as_str().unwrap()).unwrap()
    };
    assert_eq!(at(200), at(199));
    assert_eq!(at(201) - at(200), 3_600_000);
    // The same values judge the same way: the spikes are where they were.
    let flagged: Vec<u64> = lines
        .iter()
        .filter(|l| l["is_anomaly"] == true)
        .map(|l| l["index"].as_u64().unwrap())
        .collect();
    assert_eq!(flagged, [91, 152, 236, 291]);
    // The warning names the first such row and how many there are.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 row(s) are not after the row before them; the first is line 202"),
        "{stderr}"
    );

    // --strict-order refuses the same file, naming the row, and writes no verdict.
    let out = replay(&[
        "--function",
        &wasm,
        "--input",
        csv.to_str().unwrap(),
        "--param",
        "period=24",
        "--strict-order",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 202"), "{stderr}");
}

fn demo_labels() -> String {
    workspace()
        .join("demo/air_quality.labels.json")
        .display()
        .to_string()
}

/// `--labels`: the demo's four labelled events, scored at several settings in one table.
/// The whole series flags exactly the four (see the first test), so it detects 4/4 at
/// precision 1.00; sliding windows emit sooner.
#[test]
fn labels_score_every_setting_in_one_table() {
    let wasm = anomaly_wasm().display().to_string();
    let out = replay(&[
        "--function",
        &wasm,
        "--input",
        &demo_csv(),
        "--labels",
        &demo_labels(),
        "--window",
        "series,168",
        "--hop",
        "24",
        "--param",
        "period=24",
        "--grid",
        "alpha=0.05,0.001",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        stdout.starts_with("336 samples, 4 labelled windows"),
        "{stdout}"
    );
    assert_eq!(rows.len(), 4, "{stdout}");
    // window, hop, period, alpha, detected, precision, flags/1k, delays, failed
    let whole = &rows[0];
    assert_eq!(
        whole[..4],
        ["series", "-", "period=24", "alpha=0.05"],
        "{stdout}"
    );
    assert_eq!(whole[4..7], ["4/4", "1.00", "11.9"], "{stdout}");
    // Every event is flagged at its own sample: no delay by sample time.
    assert_eq!(whole[7], "0s", "{stdout}");
    let sliding = &rows[1];
    assert_eq!(
        sliding[..4],
        ["168", "24", "period=24", "alpha=0.05"],
        "{stdout}"
    );
    // A window of a week hopping a day emits within a day, the whole series at its end.
    assert_eq!(sliding[4], "4/4", "{stdout}");
    assert_eq!(sliding[8], "20h00m", "{stdout}");
    assert_eq!(whole[8], "7d15h", "{stdout}");
    assert_eq!(
        rows[3][..4],
        ["168", "24", "period=24", "alpha=0.001"],
        "{stdout}"
    );
    assert_eq!(rows[3][4..6], ["4/4", "1.00"], "{stdout}");
}

#[test]
fn bad_labels_are_named_by_file_and_entry() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = anomaly_wasm().display().to_string();
    let cases = [
        (
            r#"[["2026-11-04T19:00:00Z", "2026-11-04T20:00:00Z"], ["2026-11-07T09:00:00Z", "2026-11-07T08:00:00Z"]]"#,
            "entry 1 ([\"2026-11-07T09:00:00Z\",\"2026-11-07T08:00:00Z\"]): its end is before its start",
        ),
        (r#"[["yesterday", "2026-11-04T20:00:00Z"]]"#, "entry 0"),
        (r#"[["2026-11-04T19:00:00Z"]]"#, "not a [start, end] pair"),
        ("[[", "it is not JSON"),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("labels{i}.json"));
        std::fs::write(&path, text).unwrap();
        let shown = path.display().to_string();
        let out = replay(&[
            "--function",
            &wasm,
            "--input",
            &demo_csv(),
            "--labels",
            &shown,
            "--param",
            "period=24",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(stderr.contains(&format!("bad labels {shown}")), "{stderr}");
        assert!(stderr.contains(expected), "{text}: {stderr}");
        assert!(out.stdout.is_empty(), "{text}");
    }
    let missing = dir.path().join("missing.json").display().to_string();
    let out = replay(&[
        "--function",
        &wasm,
        "--input",
        &demo_csv(),
        "--labels",
        &missing,
        "--param",
        "period=24",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("bad labels {missing}: cannot read it")),
        "{stderr}"
    );
    // A table is not verdicts: --output and --plot are refused with --labels.
    let out = replay(&[
        "--function",
        &wasm,
        "--input",
        &demo_csv(),
        "--labels",
        &demo_labels(),
        "--output",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--labels prints a table"));
}
