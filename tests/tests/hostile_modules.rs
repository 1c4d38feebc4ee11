//! Modules that are broken or hostile: each is refused or stopped with its own typed
//! error, and the host carries on normally afterwards.

use std::time::{Duration, Instant};

use edge_agent::function::{FunctionError, FunctionHost, FunctionModule, Limits};
use edge_function::{Params, Window};
use edge_tests::{anomaly_wasm, misbehave_wasm};

fn window(first: f32, len: usize) -> Window {
    let mut values = vec![50.0; len];
    values[0] = first;
    Window::from_air_quality("t", (0..len as i64).collect(), values)
}

const CALM: f32 = 50.0;
const TRIGGER: f32 = -1.0;

/// A module in the edge ABI written by hand, with `execute`'s body supplied.
fn wat_module(abi_version: i32, execute_body: &str) -> Vec<u8> {
    let text = format!(
        r#"(module
          (memory (export "memory") 1)
          (data (i32.const 2048) "\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff")
          (func (export "edge_abi_version") (result i32) i32.const {abi_version})
          (func (export "alloc") (param i32) (result i32) i32.const 1024)
          (func (export "dealloc") (param i32 i32))
          ;; init answers Ok(InitInfo {{ min_window_len: 1 }}) = [0x00, 0x01] at 4096.
          (func (export "init") (param i32 i32) (result i64)
            (i32.store8 (i32.const 4096) (i32.const 0))
            (i32.store8 (i32.const 4097) (i32.const 1))
            i64.const 0x0000100000000002)
          (func (export "execute") (param i32 i32) (result i64) {execute_body}))"#
    );
    wat::parse_str(text).expect("the test's WAT is valid")
}

fn load(bytes: &[u8]) -> Result<FunctionHost, FunctionError> {
    FunctionHost::new(
        FunctionModule::from_bytes(bytes)?,
        Params::new(),
        Limits::default(),
    )
}

fn misbehaving(mode: &str, limits: Limits) -> FunctionHost {
    let module = FunctionModule::load(misbehave_wasm()).unwrap();
    FunctionHost::new(module, Params::from([("mode", mode)]), limits).unwrap()
}

/// After a failure the same host judges a normal window, and a good module still loads.
fn host_still_works(host: &mut FunctionHost) {
    let outcome = host
        .run(&window(CALM, 8))
        .expect("a calm window runs after the failure");
    assert_eq!(outcome.verdicts.len(), 8);
    let mut anomaly = FunctionHost::new(
        FunctionModule::load(anomaly_wasm()).unwrap(),
        Params::from([("period", "4")]),
        Limits::default(),
    )
    .unwrap();
    assert_eq!(anomaly.run(&window(CALM, 16)).unwrap().verdicts.len(), 16);
}

#[test]
fn bytes_that_are_not_wasm_are_refused() {
    let err = load(b"#!/bin/sh\necho hello\n").err().unwrap();
    assert!(matches!(err, FunctionError::NotWasm(_)), "{err}");
}

#[test]
fn a_truncated_module_is_refused() {
    let bytes = std::fs::read(anomaly_wasm()).unwrap();
    let err = load(&bytes[..bytes.len() / 2]).err().unwrap();
    assert!(matches!(err, FunctionError::NotWasm(_)), "{err}");
}

#[test]
fn a_module_without_our_exports_is_refused() {
    let no_abi = wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap();
    assert!(matches!(load(&no_abi), Err(FunctionError::UnknownAbi(_))));

    let no_execute = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "edge_abi_version") (result i32) i32.const 1))"#,
    )
    .unwrap();
    let err = load(&no_execute).err().unwrap();
    assert!(
        matches!(err, FunctionError::MissingExport { name: "alloc", .. }),
        "{err}"
    );

    let wrong_signature = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "edge_abi_version") (result i32) i32.const 1)
             (func (export "alloc") (param i64) (result i64) i64.const 0))"#,
    )
    .unwrap();
    let err = load(&wrong_signature).err().unwrap();
    assert!(
        matches!(
            err,
            FunctionError::MissingExport {
                name: "alloc",
                expected: "func (i32) -> i32"
            }
        ),
        "{err}"
    );
}

#[test]
fn a_module_with_imports_is_refused() {
    let bytes = wat::parse_str(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1))"#,
    )
    .unwrap();
    let err = load(&bytes).err().unwrap();
    assert!(
        matches!(err, FunctionError::Imports(ref list) if list.contains("fd_write")),
        "{err}"
    );
}

#[test]
fn a_wrong_abi_version_is_refused() {
    let err = load(&wat_module(2, "i64.const 0")).err().unwrap();
    assert_eq!(
        err,
        FunctionError::AbiVersion {
            found: 2,
            supported: 1
        }
    );
}

#[test]
fn an_answer_outside_memory_is_refused() {
    // ptr 0xffff0000, len 100: far past the one 64 KiB page.
    let mut host = load(&wat_module(1, "i64.const 0xffff000000000064")).unwrap();
    let err = host.run(&window(CALM, 4)).unwrap_err();
    assert!(
        matches!(err, FunctionError::BadOutput(ref m) if m.contains("outside")),
        "{err}"
    );
    // ptr + len overflowing u32 arithmetic is caught too.
    let mut host = load(&wat_module(1, "i64.const 0x00000fffffffffff")).unwrap();
    assert!(matches!(
        host.run(&window(CALM, 4)),
        Err(FunctionError::BadOutput(_))
    ));
}

#[test]
fn an_answer_that_does_not_decode_is_refused() {
    // Ten 0xff bytes: not a postcard Result.
    let mut host = load(&wat_module(1, "i64.const 0x000008000000000a")).unwrap();
    let err = host.run(&window(CALM, 4)).unwrap_err();
    assert!(
        matches!(err, FunctionError::BadOutput(ref m) if m.contains("decode")),
        "{err}"
    );
}

#[test]
fn a_trap_is_reported_and_the_next_window_gets_a_fresh_instance() {
    let mut host = misbehaving("trap", Limits::default());
    let err = host.run(&window(TRIGGER, 8)).unwrap_err();
    // The SDK's panic hook said why through `edge.log` before the abort's `unreachable`.
    assert!(
        matches!(err, FunctionError::Trap(ref m) if m.starts_with("the function panicked: asked to trap (at ")),
        "{err}"
    );
    host_still_works(&mut host);
}

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    // Fuel is what is under test: a deadline long enough that it never comes first, even
    // under qemu, where 1.1 G units of spinning take longer than the default 5 s.
    let limits = Limits {
        deadline: Duration::from_secs(600),
        ..Limits::default()
    };
    let mut host = misbehaving("spin", limits);
    let started = Instant::now();
    let err = host.run(&window(TRIGGER, 8)).unwrap_err();
    assert_eq!(
        err,
        FunctionError::OutOfFuel {
            budget: limits.fuel_per_call
        }
    );
    eprintln!("spin stopped after {:?}", started.elapsed());
    host_still_works(&mut host);
}

#[test]
fn a_memory_bomb_hits_the_limit() {
    let limits = Limits {
        max_memory_bytes: 8 << 20,
        ..Limits::default()
    };
    let mut host = misbehaving("hoard", limits);
    let err = host.run(&window(TRIGGER, 8)).unwrap_err();
    assert_eq!(
        err,
        FunctionError::MemoryLimit {
            limit_bytes: 8 << 20
        }
    );
    host_still_works(&mut host);
}

#[test]
fn runaway_recursion_is_a_trap() {
    let mut host = misbehaving("recurse", Limits::default());
    let err = host.run(&window(TRIGGER, 8)).unwrap_err();
    assert!(matches!(err, FunctionError::Trap(_)), "{err}");
    host_still_works(&mut host);
}

#[test]
fn a_refusal_carries_the_guest_message_and_keeps_the_instance() {
    let mut host = misbehaving("refuse", Limits::default());
    let err = host.run(&window(TRIGGER, 8)).unwrap_err();
    assert_eq!(err, FunctionError::Function("asked to refuse".into()));
    host_still_works(&mut host);
}

#[test]
fn too_few_verdicts_are_bad_output() {
    let mut host = misbehaving("short", Limits::default());
    let err = host.run(&window(TRIGGER, 8)).unwrap_err();
    assert!(
        matches!(err, FunctionError::BadOutput(ref m) if m.contains("0 verdicts")),
        "{err}"
    );
    host_still_works(&mut host);
}

#[test]
fn a_module_whose_init_spins_is_refused_at_load() {
    let bytes = wat::parse_str(
        r#"(module (memory (export "memory") 1)
          (func (export "edge_abi_version") (result i32) i32.const 1)
          (func (export "alloc") (param i32) (result i32) i32.const 1024)
          (func (export "dealloc") (param i32 i32))
          (func (export "init") (param i32 i32) (result i64) (loop br 0) i64.const 0)
          (func (export "execute") (param i32 i32) (result i64) i64.const 0))"#,
    )
    .unwrap();
    let limits = Limits {
        fuel_per_call: 1_000_000,
        ..Limits::default()
    };
    let err = FunctionHost::new(
        FunctionModule::from_bytes(&bytes).unwrap(),
        Params::new(),
        limits,
    )
    .err()
    .unwrap();
    assert_eq!(err, FunctionError::OutOfFuel { budget: 1_000_000 });
}
