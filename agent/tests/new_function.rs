//! Issue 23: a function written from a directory of one's own, exactly as the README's
//! "Writing a function" says: `edge-agent new`, then the printed commands. Built offline
//! against this checkout's SDK (a path dependency), for wasm32 with the crate's own
//! profile and stack size, its native test run, then `edge-agent check` and `replay` on
//! the module it built. One test, with a target directory kept between runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn agent(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// `cargo ARGS` in `dir`, as a user types it: offline, and without the outer build's
/// flags, which would replace the crate's own `.cargo/config.toml` rustflags.
fn cargo(dir: &Path, args: &[&str]) {
    let target: PathBuf = edge_tests::workspace().join("target").join("scaffold");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(dir)
        .args(args)
        .arg("--quiet")
        .env("CARGO_NET_OFFLINE", "true")
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .unwrap();
    assert!(status.success(), "cargo {args:?} in {}", dir.display());
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_new_function_builds_outside_the_workspace_and_passes_check() {
    let outside = tempfile::tempdir().unwrap();
    assert!(!outside.path().starts_with(edge_tests::workspace()));
    let sdk = edge_tests::workspace().join("functions").join("api");
    let made = agent(
        outside.path(),
        &["new", "my-function", "--sdk", sdk.to_str().unwrap()],
    );
    let said = text(&made);
    assert!(made.status.success(), "{said}");
    let wasm = "target/wasm32-unknown-unknown/wasm/my_function.wasm";
    for command in [
        "cargo build --profile wasm --target wasm32-unknown-unknown".to_owned(),
        format!("edge-agent check {wasm}"),
        format!("edge-agent replay --function {wasm} --input samples.csv"),
    ] {
        assert!(said.contains(&command), "{command} is not printed: {said}");
    }
    // A second time would overwrite someone's work: refused.
    let again = agent(
        outside.path(),
        &["new", "my-function", "--sdk", sdk.to_str().unwrap()],
    );
    assert!(!again.status.success());

    let dir = outside.path().join("my-function");
    cargo(&dir, &["test"]);
    cargo(
        &dir,
        &[
            "build",
            "--profile",
            "wasm",
            "--target",
            "wasm32-unknown-unknown",
        ],
    );
    // The build went to the shared target dir; put it where the printed commands look.
    let built = edge_tests::workspace()
        .join("target/scaffold")
        .join(wasm.trim_start_matches("target/"));
    let bytes = std::fs::read(&built).unwrap();
    std::fs::create_dir_all(dir.join(wasm).parent().unwrap()).unwrap();
    std::fs::write(dir.join(wasm), &bytes).unwrap();

    // The crate's own `.cargo/config.toml` took: a 64 KiB stack leaves linear memory at a
    // few pages, where the linker's default 1 MiB would need 17 or more.
    let engine = wasmi::Engine::default();
    let module = wasmi::Module::new(&engine, &bytes).unwrap();
    let pages = module
        .exports()
        .find_map(|export| match export.ty() {
            wasmi::ExternType::Memory(memory) => Some(memory.minimum()),
            _ => None,
        })
        .unwrap();
    assert!(
        pages < 16,
        "{pages} pages: the 64 KiB stack setting was not used"
    );

    let checked = agent(&dir, &["check", wasm]);
    let said = text(&checked);
    assert!(checked.status.success(), "{said}");
    assert!(said.contains("edge-function v1"), "{said}");
    // The function's `log!` came through the agent's log.
    assert!(said.contains("says: 1 of 1024 samples below 40"), "{said}");

    let replayed = agent(
        &dir,
        &[
            "replay",
            "--function",
            wasm,
            "--input",
            "samples.csv",
            "--param",
            "limit=30",
        ],
    );
    let said = text(&replayed);
    assert!(replayed.status.success(), "{said}");
    assert!(
        said.contains("24 samples, 1 windows (0 failed), 1 anomalies"),
        "{said}"
    );
}

/// The C example (`functions/c-zscore/zscore.c`), compiled exactly as its header and the
/// README say, in a directory outside the workspace; replayed through the agent, its flags
/// and scores equal the same arithmetic done here, sample for sample, and its parameter
/// errors and log reach the user. Skips without clang and wasm-ld, except under CI.
#[test]
fn a_function_in_c_speaks_the_abi_by_hand() {
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let have_tools = [clang.as_str(), "wasm-ld"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    });
    if !have_tools {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs clang and wasm-ld (deploy/ensure-clang)"
        );
        eprintln!("skipped: no clang/wasm-ld (apt install clang lld)");
        return;
    }
    let outside = tempfile::tempdir().unwrap();
    let source = edge_tests::workspace().join("functions/c-zscore/zscore.c");
    std::fs::copy(&source, outside.path().join("zscore.c")).unwrap();
    let built = Command::new(&clang)
        .current_dir(outside.path())
        .args([
            "--target=wasm32",
            "-O2",
            "-nostdlib",
            "-Wl,--no-entry",
            "-Wl,-z,stack-size=65536",
            "-o",
            "zscore.wasm",
            "zscore.c",
        ])
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", text(&built));

    let checked = agent(outside.path(), &["check", "zscore.wasm"]);
    let said = text(&checked);
    assert!(checked.status.success(), "{said}");
    assert!(said.contains("edge-function v1"), "{said}");
    assert!(said.contains("min window 8 samples"), "{said}");
    assert!(said.contains("says: z-score function ready"), "{said}");

    for (param, refusal) in [
        (
            "k=x",
            "parameter `k`: cannot use `x`: not a positive number",
        ),
        ("kk=2", "unknown parameter `kk` (known: k)"),
    ] {
        let refused = agent(outside.path(), &["check", "zscore.wasm", "--param", param]);
        let said = text(&refused);
        assert!(!refused.status.success(), "{param}: {said}");
        assert!(said.contains(refusal), "{param}: {said}");
    }

    const WINDOW: usize = 64;
    let spikes = [70, 200, 201, 333];
    let values = edge_tests::seasonal_series(8 * WINDOW, 48, &spikes);
    let mut csv = String::from("timestamp,value\n");
    for (minute, value) in values.iter().enumerate() {
        csv += &format!(
            "2026-01-01T{:02}:{:02}:00Z,{value}\n",
            minute / 60,
            minute % 60
        );
    }
    std::fs::write(outside.path().join("series.csv"), csv).unwrap();
    let window = WINDOW.to_string();
    let replayed = agent(
        outside.path(),
        &[
            "replay",
            "--function",
            "zscore.wasm",
            "--input",
            "series.csv",
            "--window",
            &window,
            "--hop",
            &window,
            "--param",
            "k=2.5",
            "--output",
            "verdicts.ndjson",
        ],
    );
    assert!(replayed.status.success(), "{}", text(&replayed));
    let verdicts: Vec<serde_json::Value> =
        std::fs::read_to_string(outside.path().join("verdicts.ndjson"))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
    assert_eq!(verdicts.len(), values.len());

    // The C code's arithmetic: f64 sums in order, the score rounded to f32 at the end.
    let mut expected = Vec::new();
    for chunk in values.chunks(WINDOW) {
        let n = chunk.len() as f64;
        let mean = chunk.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let squares: f64 = chunk.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum();
        let deviation = (squares / n).sqrt();
        expected.extend(
            chunk
                .iter()
                .map(|&v| ((f64::from(v) - mean).abs() / deviation) as f32),
        );
    }
    let mut flagged = Vec::new();
    for (index, (verdict, score)) in verdicts.iter().zip(&expected).enumerate() {
        assert_eq!(verdict["index"], index);
        // Printed as the shortest text that reads back as the same f32.
        let printed = verdict["score"].as_f64().map(|score| score as f32);
        assert_eq!(printed, Some(*score), "{index}");
        assert_eq!(verdict["is_anomaly"], f64::from(*score) > 2.5, "{index}");
        if *score > 2.5 {
            flagged.push(index);
        }
    }
    assert_eq!(flagged, spikes, "the spikes, and nothing else");
}
