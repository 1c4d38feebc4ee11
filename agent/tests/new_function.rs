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
