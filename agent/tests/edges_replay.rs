//! `edge-agent replay` of a long series, as a user runs it: offline has no wall-clock
//! deadline unless asked (`--deadline-ms`), fuel still bounds every call, and the first
//! failure's reason is printed. And the S-H-ESD function (the real module, in wasmi)
//! refuses an `alpha` its f32 critical values cannot honour, naming the usable range.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use edge_tests::{anomaly_wasm, misbehave_wasm, seasonal_series};
use serde_json::Value;

fn replay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .arg("replay")
        .args(args)
        .output()
        .expect("the binary runs")
}

fn verdicts(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

/// A CSV of `values`, a minute apart.
fn write_series(dir: &Path, values: &[f32]) -> String {
    let mut text = String::from("timestamp,value\n");
    for (i, value) in values.iter().enumerate() {
        text += &format!("{},{value}\n", 1_700_000_000 + i * 60);
    }
    let path = dir.join("series.csv");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Fuel the misbehaving function's spin burns in about `seconds` on this machine, now:
/// measured, so the test says something on a fast machine and a slow one.
fn fuel_for(seconds: f64, wasm: &str, csv: &str) -> u64 {
    let probe: u64 = 2_000_000_000;
    let started = Instant::now();
    let out = replay(&[
        "--function",
        wasm,
        "--input",
        csv,
        "--param",
        "mode=spin",
        "--fuel",
        &probe.to_string(),
    ]);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("out of fuel"), "{stderr}");
    let per_second = probe as f64 / took.as_secs_f64().max(0.01);
    (per_second * seconds) as u64
}

#[test]
fn offline_has_no_deadline_unless_asked_and_says_why_a_window_failed() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = misbehave_wasm().display().to_string();
    // A negative first value makes the misbehaving function do what `mode` says.
    let csv = write_series(dir.path(), &[-1.0, 2.0, 3.0, 4.0]);

    // Asked for: a deadline, and the reason printed.
    let out = replay(&[
        "--function",
        &wasm,
        "--input",
        &csv,
        "--param",
        "mode=spin",
        "--deadline-ms",
        "300",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("1 windows (1 failed)"), "{stderr}");
    assert!(
        stderr.contains("first failed window (samples 0 to 3): past the deadline"),
        "the first failure's reason is printed: {stderr}"
    );
    assert!(
        verdicts(&out)
            .iter()
            .all(|v| v["error"].as_str().unwrap().contains("past the deadline"))
    );

    // Not asked for: a window running well past the live 5 s ends by its fuel only.
    let fuel = fuel_for(15.0, &wasm, &csv);
    let started = Instant::now();
    let out = replay(&[
        "--function",
        &wasm,
        "--input",
        &csv,
        "--param",
        "mode=spin",
        "--fuel",
        &fuel.to_string(),
    ]);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("out of fuel") && !stderr.contains("past the deadline"),
        "{took:?}: {stderr}"
    );
    // What makes the check above say something: the window outlived the live deadline.
    assert!(took > Duration::from_secs(5), "{took:?} for {fuel} fuel");

    // A bad --deadline-ms is a usage error.
    let out = replay(&["--function", &wasm, "--input", &csv, "--deadline-ms", "0"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The first two spikes of the series below are among the flags.
fn assert_spikes_flagged(out: &Output, alpha: &str) {
    let flagged: Vec<u64> = verdicts(out)
        .iter()
        .filter(|v| v["is_anomaly"] == true)
        .map(|v| v["index"].as_u64().unwrap())
        .collect();
    assert!(
        flagged.contains(&500) && flagged.contains(&1200),
        "alpha {alpha}: {flagged:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_function_refuses_an_alpha_it_cannot_honour_naming_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = anomaly_wasm().display().to_string();
    // A week of five-minute samples (a daily season of 288) with three spikes.
    let n = 2016;
    let csv = write_series(dir.path(), &seasonal_series(n, 288, &[500, 1200, 1900]));
    // `critical=f32`: the crate's critical values, which refuse what they cannot serve.
    let run_in = |alpha: &str, critical: &str| {
        replay(&[
            "--function",
            &wasm,
            "--input",
            &csv,
            "--param",
            "period=288",
            "--param",
            &format!("alpha={alpha}"),
            "--param",
            &format!("critical={critical}"),
        ])
    };
    let run = |alpha: &str| run_in(alpha, "f32");

    // 1e-4 < 2016 × 6e-8: f32 critical values would round to certainty.
    let out = run("1e-4");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`alpha` = 1e-4 cannot be honoured on a window of 2016 samples"),
        "{stderr}"
    );
    assert!(stderr.contains("[1.3e-4, 1)"), "the usable range: {stderr}");
    assert!(verdicts(&out).iter().all(|v| v["is_anomaly"].is_null()));

    // Inside the range it is honoured: the window runs and the spikes are flagged.
    let out = run("2e-4");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_spikes_flagged(&out, "2e-4");

    // An alpha no window it accepts could honour is refused at once, at init.
    let out = run("1e-12");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("cannot be honoured on a window of 576 samples"),
        "{stderr}"
    );

    // By default (`critical=auto`) the same small alpha is judged in f64: the spikes.
    for alpha in ["1e-4", "1e-12"] {
        let out = run_in(alpha, "auto");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{alpha}: {stderr}");
        assert_spikes_flagged(&out, alpha);
    }
    // Even f64 has a floor, about 2e-16 x the window: refused at init, naming it.
    let out = run_in("1e-20", "auto");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("even with f64 critical values"), "{stderr}");
}

/// A series as Excel and a pipe give it: a BOM, CRLF line ends, no newline after the
/// last row, times in epoch milliseconds, read from standard input (`--input -`). Every
/// row gets its verdict, at the time it was written, in the years it was written.
#[test]
fn a_windows_csv_in_milliseconds_replays_from_standard_input() {
    use std::io::Write as _;
    let wasm = anomaly_wasm().display().to_string();
    let values = seasonal_series(96, 24, &[]);
    let start_ms: i64 = 1_714_564_800_000;
    let rows: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, value)| format!("{},{value}", start_ms + i as i64 * 3_600_000))
        .collect();
    let mut csv = b"\xef\xbb\xbftimestamp,value\r\n".to_vec();
    csv.extend_from_slice(rows.join("\r\n").as_bytes());

    let mut child = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .args(["replay", "--function", &wasm, "--input", "-"])
        .args(["--param", "period=24"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&csv).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let verdicts = verdicts(&output);
    assert_eq!(verdicts.len(), values.len(), "{stderr}");
    assert_eq!(verdicts[0]["timestamp"], "2024-05-01T12:00:00Z");
    assert_eq!(verdicts[95]["timestamp"], "2024-05-05T11:00:00Z");
    let last = verdicts[95]["value"].as_f64().unwrap();
    assert!((last - f64::from(values[95])).abs() < 1e-3, "{last}");
}
