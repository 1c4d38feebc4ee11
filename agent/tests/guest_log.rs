//! Issue 23, item 3: a function that speaks. The SDK's `log!` and panic hook reach the
//! agent through its one permitted import, `edge.log`: bounded, escaped, rate-limited per
//! window, and a panic's message becomes the window's error. A module that imports
//! anything else is still refused. Real modules (the misbehaving fixture, built with the
//! SDK) in wasmi, through the binary as a user runs it.

use std::path::Path;
use std::process::{Command, Output};

use edge_agent::function::{FunctionError, FunctionModule};
use edge_tests::misbehave_wasm;

fn replay(dir: &Path, mode: &str) -> Output {
    // The first value negative: the fixture misbehaves on that window.
    let mut csv = String::from("timestamp,value\n");
    for i in 0..8 {
        csv += &format!(
            "{},{}\n",
            1_700_000_000 + i * 60,
            if i == 0 { -1 } else { 50 }
        );
    }
    let input = dir.join("series.csv");
    std::fs::write(&input, csv).unwrap();
    Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .args(["replay", "--window", "8", "--hop", "8", "--function"])
        .arg(misbehave_wasm())
        .arg("--input")
        .arg(&input)
        .args(["--param", &format!("mode={mode}")])
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

#[test]
fn what_a_function_logs_is_printed_bounded_and_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let out = replay(dir.path(), "say");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let said: Vec<&str> = stderr.lines().filter(|l| l.contains(" says: ")).collect();
    // 22 messages, 16 kept, one line for the rest.
    assert_eq!(said.len(), 16, "{stderr}");
    assert!(stderr.contains("6 more log lines dropped"), "{stderr}");
    let first = said[0];
    assert!(
        first.contains("WARN") && first.contains("first of 8"),
        "{first}"
    );
    // The escape and the newline are shown, not acted on: one line, no ESC byte.
    assert!(first.contains("\\u{1b}[31mred\\u{a}forged line"), "{first}");
    assert!(!stderr.contains('\x1b'), "{stderr}");
    assert!(!stderr.lines().any(|l| l.starts_with("forged")), "{stderr}");
    // 512 bytes of the 2,000 copied, the rest counted.
    let long = said[1];
    assert!(
        long.contains(&"x".repeat(512)) && !long.contains(&"x".repeat(513)),
        "{long}"
    );
    assert!(long.contains("(1488 more bytes)"), "{long}");
}

#[test]
fn a_panic_is_reported_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = replay(dir.path(), "trap");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the function panicked: asked to trap (at "),
        "{stderr}"
    );
    assert!(!stderr.contains("'unreachable'"), "{stderr}");
}

#[test]
fn only_edge_log_may_be_imported_and_only_with_its_signature() {
    let module = |import: &str| {
        wat::parse_str(format!(
            r#"(module {import} (memory (export "memory") 1)
              (func (export "edge_abi_version") (result i32) i32.const 1)
              (func (export "alloc") (param i32) (result i32) i32.const 1024)
              (func (export "dealloc") (param i32 i32))
              (func (export "init") (param i32 i32) (result i64) i64.const 0)
              (func (export "execute") (param i32 i32) (result i64) i64.const 0))"#
        ))
        .unwrap()
    };
    assert!(
        FunctionModule::from_bytes(&module(
            r#"(import "edge" "log" (func (param i32 i32 i32)))"#
        ))
        .is_ok()
    );
    for refused in [
        r#"(import "edge" "log" (func (param i32 i32)))"#,
        r#"(import "edge" "time" (func (result i64)))"#,
        r#"(import "env" "log" (func (param i32 i32 i32)))"#,
    ] {
        let err = FunctionModule::from_bytes(&module(refused)).err().unwrap();
        assert!(matches!(err, FunctionError::Imports(_)), "{refused}: {err}");
        assert!(err.to_string().contains("only `edge.log`"), "{err}");
    }
    // And no import at all still works: the S-H-ESD function logs nothing.
    assert!(FunctionModule::from_bytes(&module("")).is_ok());
}
