#![cfg(feature = "plot")]
//! `edge-agent replay --plot out.svg`: an SVG document is written, well formed, with one
//! red dot per flagged sample (as many as the NDJSON verdicts flag), with and without
//! `--window`; a path that cannot be written is a clear error before any work.

use std::path::Path;
use std::process::{Command, Output};

use edge_agent::plot::ANOMALY_RADIUS;
use edge_tests::anomaly_wasm;

fn replay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .arg("replay")
        .arg("--function")
        .arg(anomaly_wasm())
        .args(args)
        .output()
        .unwrap()
}

fn demo_csv() -> String {
    edge_tests::workspace()
        .join("demo/air_quality.csv")
        .display()
        .to_string()
}

/// Checks that every element opened is closed, in order: XML's nesting, without a parser.
fn assert_well_formed(svg: &str) {
    assert!(svg.starts_with("<svg "), "{}", &svg[..svg.len().min(200)]);
    let mut open: Vec<&str> = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let tag_end = rest[start..].find('>').expect("an unclosed tag") + start;
        let tag = &rest[start + 1..tag_end];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(name.trim()), "mismatched </{name}>");
        } else if !tag.ends_with('/') && !tag.starts_with('?') && !tag.starts_with('!') {
            open.push(tag.split_whitespace().next().unwrap_or_default());
        }
        rest = &rest[tag_end + 1..];
    }
    assert!(open.is_empty(), "never closed: {open:?}");
}

/// Anomaly dots: plotters draws them as circles of their own radius.
fn dots(svg: &str) -> usize {
    svg.matches(&format!("r=\"{ANOMALY_RADIUS}\"")).count()
}

fn flagged(ndjson: &str) -> usize {
    ndjson
        .lines()
        .filter(|line| line.contains("\"is_anomaly\":true"))
        .count()
}

fn plot(dir: &Path, extra: &[&str]) -> (String, String) {
    let svg_path = dir.join("out.svg");
    let ndjson_path = dir.join("out.ndjson");
    let mut args = vec![
        "--input".to_owned(),
        demo_csv(),
        "--param".to_owned(),
        "period=24".to_owned(),
        "--output".to_owned(),
        ndjson_path.display().to_string(),
        "--plot".to_owned(),
        svg_path.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = replay(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        std::fs::read_to_string(svg_path).unwrap(),
        std::fs::read_to_string(ndjson_path).unwrap(),
    )
}

#[test]
fn the_plot_marks_every_flagged_sample_and_the_windows() {
    let dir = tempfile::tempdir().unwrap();
    let (svg, ndjson) = plot(dir.path(), &["--window", "168", "--hop", "24"]);
    assert_well_formed(&svg);
    let anomalies = flagged(&ndjson);
    assert!(anomalies > 0);
    assert_eq!(dots(&svg), anomalies);
    assert!(
        svg.contains(&format!("{anomalies} anomalies")),
        "the title counts them"
    );
    assert!(svg.contains("8 windows (N=168 H=24)"));
    let sha = edge_tests::sha256_hex(&std::fs::read(anomaly_wasm()).unwrap());
    assert!(svg.contains(&format!("function {}", &sha[..12])));
    // Time labels on the axis: the demo starts on the 1st of November.
    assert!(svg.contains("11-02"), "no date labels");
    assert!(svg.contains("samples decided by one window"));
}

#[test]
fn without_a_window_the_whole_series_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let (svg, ndjson) = plot(dir.path(), &[]);
    assert_well_formed(&svg);
    assert_eq!(dots(&svg), flagged(&ndjson));
    assert!(svg.contains("1 window (the whole series)"));
}

#[test]
fn an_unwritable_plot_path_is_a_clear_error() {
    let out = replay(&[
        "--input",
        &demo_csv(),
        "--param",
        "period=24",
        "--plot",
        "/nonexistent-dir/out.svg",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot create the plot /nonexistent-dir/out.svg"),
        "{stderr}"
    );
    // Refused before replaying: no verdicts were written.
    assert!(out.stdout.is_empty());
}
