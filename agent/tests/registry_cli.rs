//! The two publishing commands and the check, as an operator runs them: `edge-agent
//! manifest` builds the manifest from a `.wasm` and its parameters (on top of the
//! published one with `--base`), it is signed (here with the minisign crate, as
//! `minisign -Sm manifest.json` does), and `edge-agent check --manifest` verifies the
//! signature, the module's sha256 and size and runs it, refusing what an agent refuses.

use std::path::Path;
use std::process::{Command, Output};

use edge_tests::fleet::module;
use edge_tests::sha256_hex;

/// Runs the binary; `check` runs the module on windows of 64, the test module's size.
fn edge_agent(args: &[&str]) -> Output {
    let window: &[&str] = if args[0] == "check" {
        &["--window", "64"]
    } else {
        &[]
    };
    Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .args(args)
        .args(window)
        .output()
        .expect("edge-agent runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn sign(key: &minisign::KeyPair, path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let signature = minisign::sign(Some(&key.pk), &key.sk, bytes.as_slice(), None, None).unwrap();
    let mut name = path.as_os_str().to_owned();
    name.push(".minisig");
    std::fs::write(name, signature.to_string()).unwrap();
}

#[test]
fn publish_sign_and_check_as_an_agent_would() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("v3.wasm");
    let bytes = module("v3", false);
    std::fs::write(&wasm, &bytes).unwrap();
    let manifest = dir.path().join("manifest.json");

    // 1. Build it.
    let built = edge_agent(&[
        "manifest",
        "--function",
        wasm.to_str().unwrap(),
        "--param",
        "mode=none",
        "--group",
        "lab",
        "--version",
        "3",
        "--fraction",
        "0.25",
    ]);
    assert!(built.status.success(), "{}", text(&built));
    let json: serde_json::Value = serde_json::from_slice(&built.stdout).unwrap();
    assert_eq!(json["version"], 3);
    let lab = &json["groups"]["lab"];
    assert_eq!(lab["module"]["url"], "v3.wasm");
    assert_eq!(lab["module"]["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(lab["module"]["size"], bytes.len());
    assert_eq!(lab["params"]["mode"], "none");
    assert_eq!(lab["min_window"], 1);
    assert_eq!(lab["fraction"], 0.25);
    std::fs::write(&manifest, &built.stdout).unwrap();

    // A version that does not go up is refused at the source.
    let stale = edge_agent(&[
        "manifest",
        "--function",
        wasm.to_str().unwrap(),
        "--group",
        "other",
        "--version",
        "3",
        "--base",
        manifest.to_str().unwrap(),
    ]);
    assert!(!stale.status.success());
    assert!(text(&stale).contains("must be higher"), "{}", text(&stale));
    // On top of the published one, other groups are kept.
    let more = edge_agent(&[
        "manifest",
        "--function",
        wasm.to_str().unwrap(),
        "--group",
        "other",
        "--version",
        "4",
        "--base",
        manifest.to_str().unwrap(),
    ]);
    assert!(more.status.success(), "{}", text(&more));
    let json: serde_json::Value = serde_json::from_slice(&more.stdout).unwrap();
    assert_eq!(json["groups"]["lab"]["fraction"], 0.25);
    assert_eq!(json["groups"]["other"]["fraction"], 1.0);

    // 2. Sign it; 3. check it with the public key, as a line and as a `.pub` file.
    let key = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    sign(&key, &manifest);
    let public_file = dir.path().join("registry.pub");
    std::fs::write(&public_file, key.pk.to_box().unwrap().to_string()).unwrap();
    let url = manifest.to_str().unwrap();
    for public in [key.pk.to_base64(), public_file.display().to_string()] {
        let checked = edge_agent(&["check", "--manifest", url, "--public-key", &public]);
        let out = text(&checked);
        assert!(checked.status.success(), "{out}");
        assert!(out.contains("(good, by a trusted key)"), "{out}");
        assert!(out.contains(&sha256_hex(&bytes)), "{out}");
        assert!(out.contains("ran "), "{out}");
    }

    // As the README has the publisher type it: the manifest by its relative path.
    let relative = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .current_dir(dir.path())
        .args([
            "check",
            "--manifest",
            "manifest.json",
            "--public-key",
            "registry.pub",
        ])
        .args(["--window", "64"])
        .output()
        .unwrap();
    assert!(relative.status.success(), "{}", text(&relative));
    assert!(text(&relative).contains("(good, by a trusted key)"));

    // What an agent refuses, check refuses: another key, changed bytes, a changed module.
    let stranger = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let refused = edge_agent(&[
        "check",
        "--manifest",
        url,
        "--public-key",
        &stranger.pk.to_base64(),
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("does not trust"),
        "{}",
        text(&refused)
    );

    let public = key.pk.to_base64();
    let original = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, original.replace("0.25", "1.0")).unwrap();
    let refused = edge_agent(&["check", "--manifest", url, "--public-key", &public]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("bad signature"),
        "{}",
        text(&refused)
    );
    std::fs::write(&manifest, &original).unwrap();

    std::fs::write(&wasm, module("v4", false)).unwrap();
    let refused = edge_agent(&["check", "--manifest", url, "--public-key", &public]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("the signed manifest says"),
        "{}",
        text(&refused)
    );
}
