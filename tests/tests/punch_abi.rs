//! Functions written for Punch's FaaS (`punch_api` 1.0) run unchanged: the Punch build of
//! S-H-ESD gives our function's verdicts, and every way a Punch module can answer badly is
//! a typed error after which the host carries on.

use edge_agent::function::{
    Abi, FunctionError, FunctionHost, FunctionModule, Limits, PunchGlueError,
};
use edge_function::{Params, Verdict, Window};
use edge_tests::{anomaly_wasm, punch_anomaly_wasm, seasonal_series};

/// 2024-05-01T12:00:00Z.
const START_MS: i64 = 1_714_564_800_000;

fn punch_host() -> FunctionHost {
    let module = FunctionModule::load(punch_anomaly_wasm()).unwrap();
    FunctionHost::new(module, Params::new(), Limits::default()).unwrap()
}

/// Our S-H-ESD with the parameters the Punch fixture hard-codes.
fn our_host() -> FunctionHost {
    let module = FunctionModule::load(anomaly_wasm()).unwrap();
    FunctionHost::new(
        module,
        Params::from([
            ("period", "10"),
            ("max_anoms", "0.1"),
            ("alpha", "0.05"),
            ("direction", "both"),
        ]),
        Limits::default(),
    )
    .unwrap()
}

/// `n` samples a minute apart, some with milliseconds, so fractional RFC 3339 seconds
/// cross too.
fn window(values: Vec<f32>) -> Window {
    let timestamps = (0..values.len() as i64)
        .map(|i| START_MS + i * 60_000 + if i % 7 == 3 { 250 } else { 0 })
        .collect();
    Window::from_air_quality("punch", timestamps, values)
}

#[test]
fn the_module_is_recognised_as_punch_and_takes_no_parameters() {
    let module = FunctionModule::load(punch_anomaly_wasm()).unwrap();
    assert_eq!(module.abi(), Abi::Punch);
    let host = FunctionHost::new(module.clone(), Params::new(), Limits::default()).unwrap();
    assert_eq!(host.min_window_len(), 1);

    let err = FunctionHost::new(
        module,
        Params::from([("period", "10"), ("alpha", "0.1")]),
        Limits::default(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, FunctionError::ParamsNotAccepted { ref names, .. } if names.contains("`period`") && names.contains("`alpha`")),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "punch_api 1.0 functions take no parameters, but got `period`, `alpha`"
    );
}

#[test]
fn the_punch_function_gives_our_verdicts_on_the_same_windows() {
    let mut punch = punch_host();
    let mut ours = our_host();
    let mut anomalies = 0;
    for (n, seed_shift) in [(20usize, 0usize), (37, 1), (100, 2), (256, 3), (1000, 4)] {
        let spikes = [n / 4 + seed_shift, n / 2 + 1, n - 3];
        let mut values = seasonal_series(n, 10, &spikes);
        values[n / 3] -= 30.0; // a dip, so both tails are exercised
        let window = window(values);
        let expected = ours.run(&window).unwrap();
        let outcome = punch.run(&window).unwrap();
        assert_eq!(outcome.verdicts, expected.verdicts, "n={n}");
        assert!(outcome.verdicts.iter().all(|v| v.score.is_none()));
        assert!(outcome.fuel_used > 0);
        anomalies += expected.verdicts.iter().filter(|v| v.is_anomaly).count();
    }
    assert!(
        anomalies >= 12,
        "only {anomalies} anomalies: the comparison proves little"
    );
}

#[test]
fn the_punch_function_refuses_like_the_crate_and_keeps_working() {
    let mut punch = punch_host();
    // Period 10 needs two seasons; the crate's own message comes back as the refusal.
    let err = punch.run(&window(vec![50.0; 19])).unwrap_err();
    assert_eq!(
        err,
        FunctionError::Function("series must contain at least 2 periods".into())
    );
    // JSON cannot carry NaN: refused on the host's side, naming the sample.
    let mut values = seasonal_series(40, 10, &[]);
    values[5] = f32::NAN;
    let err = punch.run(&window(values)).unwrap_err();
    assert!(
        matches!(err, FunctionError::Encode(ref m) if m.contains("air_quality[5] is NaN")),
        "{err}"
    );
    let calm = window(seasonal_series(40, 10, &[]));
    assert_eq!(punch.run(&calm).unwrap().verdicts.len(), 40);
}

#[test]
fn many_windows_run_on_one_instance() {
    // The host frees the input and the result after every call; leaking them would
    // exhaust a 2 MiB memory ceiling long before 300 windows of 256 samples (~20 KB of
    // JSON each way).
    let limits = Limits {
        max_memory_bytes: 2 << 20,
        ..Limits::default()
    };
    let module = FunctionModule::load(punch_anomaly_wasm()).unwrap();
    let mut punch = FunctionHost::new(module, Params::new(), limits).unwrap();
    let window = window(seasonal_series(256, 10, &[100]));
    for _ in 0..300 {
        assert_eq!(punch.run(&window).unwrap().verdicts.len(), 256);
    }
}

// Hand-written Punch modules. `apply` answers a well-formed four-verdict result unless the
// window's first value is negative (the JSON's byte 16 is '-'); then it runs `trigger`.
// `allocate` and `deallocate` check that the host frees exactly what punch_api expects:
// the input with the size it was allocated with, each string result with strlen + 1, and
// everything before the next window; any slip traps.

const GOOD: u32 = 0x4000;
const CALM: f32 = 50.0;

fn punch_wat(trigger: &str, data: &[(u32, &[u8])]) -> Vec<u8> {
    let mut segments = String::new();
    let good: &[u8] = b"0{\"air_quality\":[],\"is_anomaly\":[false,false,false,false]}\0";
    for (offset, bytes) in [(GOOD, good)].iter().chain(data) {
        let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
        segments += &format!("(data (i32.const {offset}) \"{escaped}\")\n");
    }
    let text = format!(
        r#"(module
          (memory (export "memory") 1)
          {segments}
          (global $outstanding (mut i32) (i32.const 0))
          (global $input_size (mut i32) (i32.const 0))
          (global $result (mut i32) (i32.const -1))
          (func (export "allocate") (param $size i32) (result i32)
            (if (global.get $outstanding) (then unreachable))
            (global.set $input_size (local.get $size))
            (global.set $outstanding (i32.const 1))
            i32.const 1024)
          (func (export "deallocate") (param $p i32) (param $cap i32)
            (local $end i32)
            (local.set $end (i32.add (local.get $p) (local.get $cap)))
            (if (i32.eq (local.get $p) (i32.const 1024))
              (then (if (i32.ne (local.get $cap) (global.get $input_size)) (then unreachable)))
              (else
                (if (i32.ne (local.get $p) (global.get $result)) (then unreachable))
                (if (i32.load8_u (i32.sub (local.get $end) (i32.const 1))) (then unreachable))
                (if (i32.eqz (i32.load8_u (i32.sub (local.get $end) (i32.const 2))))
                  (then unreachable))))
            (global.set $outstanding (i32.sub (global.get $outstanding) (i32.const 1))))
          (func (export "apply") (param $in i32) (result i32)
            (local $r i32)
            (local.set $r
              (if (result i32) (i32.eq (i32.load8_u offset=16 (local.get $in)) (i32.const 45))
                (then {trigger})
                (else (i32.const {GOOD}))))
            (if (i32.and (i32.gt_u (local.get $r) (i32.const 3))
                         (i32.lt_u (local.get $r) (i32.const 65536)))
              (then
                (global.set $result (local.get $r))
                (global.set $outstanding (i32.add (global.get $outstanding) (i32.const 1)))))
            local.get $r))"#
    );
    wat::parse_str(text).expect("the test's WAT is valid")
}

fn load(bytes: &[u8]) -> Result<FunctionHost, FunctionError> {
    let module = FunctionModule::from_bytes(bytes)?;
    assert_eq!(module.abi(), Abi::Punch);
    FunctionHost::new(module, Params::new(), Limits::default())
}

fn four(first: f32) -> Window {
    window(vec![first, CALM, CALM, CALM])
}

/// Runs the trigger window and returns its error, after checking that a calm window ran
/// before it and runs after it on the same host.
fn trigger_error(trigger: &str, data: &[(u32, &[u8])]) -> FunctionError {
    let mut host = load(&punch_wat(trigger, data)).unwrap();
    assert_eq!(
        host.run(&four(CALM)).unwrap().verdicts,
        [Verdict::flag(false); 4]
    );
    let err = host.run(&four(-1.0)).unwrap_err();
    for _ in 0..3 {
        let after = host
            .run(&four(CALM))
            .unwrap_or_else(|e| panic!("a calm window fails after {err}: {e}"));
        assert_eq!(after.verdicts, [Verdict::flag(false); 4]);
    }
    err
}

#[test]
fn the_three_error_pointers_are_distinct_typed_errors() {
    let cases = [
        ("1", PunchGlueError::InputNotUtf8, "not valid UTF-8"),
        ("2", PunchGlueError::InputNotDeserialisable, "air_quality"),
        (
            "3",
            PunchGlueError::OutputNotSerialisable,
            "does not serialise",
        ),
    ];
    for (pointer, expected, text) in cases {
        let err = trigger_error(&format!("(i32.const {pointer})"), &[]);
        assert_eq!(err, FunctionError::PunchGlue(expected));
        assert!(!err.poisons_instance());
        assert!(err.to_string().contains(text), "{err}");
    }
}

#[test]
fn an_error_result_carries_the_function_message() {
    let err = trigger_error(
        "(i32.const 0x5000)",
        &[(0x5000, b"1{\"_ppf_error_message\":\"window too calm\"}\0")],
    );
    assert_eq!(err, FunctionError::Function("window too calm".into()));
}

#[test]
fn a_result_that_is_not_utf8_is_bad_output() {
    let err = trigger_error("(i32.const 0x5000)", &[(0x5000, b"0{\"is_\xff\xfe\"}\0")]);
    assert!(
        matches!(err, FunctionError::BadOutput(ref m) if m.contains("not UTF-8")),
        "{err}"
    );
}

#[test]
fn a_result_that_is_not_json_is_bad_output() {
    let err = trigger_error("(i32.const 0x5000)", &[(0x5000, b"0all fine\0")]);
    assert!(
        matches!(err, FunctionError::BadOutput(ref m) if m.contains("not JSON")),
        "{err}"
    );
    let err = trigger_error("(i32.const 0x5000)", &[(0x5000, b"1oops\0")]);
    assert!(
        matches!(err, FunctionError::BadOutput(ref m) if m.contains("error result is not JSON")),
        "{err}"
    );
    let err = trigger_error(
        "(i32.const 0x5000)",
        &[(0x5000, b"0{\"is_anomaly\":[0,1,0,0]}\0")],
    );
    assert!(
        matches!(err, FunctionError::BadOutput(ref m) if m.contains("`is_anomaly` list of booleans")),
        "{err}"
    );
    let err = trigger_error("(i32.const 0x5000)", &[(0x5000, b"{\"is_anomaly\":[]}\0")]);
    assert!(
        matches!(err, FunctionError::BadOutput(ref m) if m.contains("'0' (ok) or '1' (error)")),
        "{err}"
    );
}

#[test]
fn a_result_without_nul_is_bad_output_and_the_scan_is_bounded() {
    // The last 16 bytes of memory, none of them NUL.
    let err = trigger_error("(i32.const 65520)", &[(65520, &[b'0'; 16])]);
    assert!(
        matches!(err, FunctionError::BadOutput(ref m) if m.contains("no NUL terminator before the end")),
        "{err}"
    );
    // 9 MiB without a NUL: the host gives up after its bound (256 bytes per sample of the
    // window plus 64 KiB), not at the end of memory.
    let err = trigger_error(
        "(drop (memory.grow (i32.const 160)))
         (memory.fill (i32.const 0x10000) (i32.const 48) (i32.const 0x900000))
         (i32.const 0x10000)",
        &[],
    );
    assert!(
        matches!(err, FunctionError::BadOutput(ref m) if m.contains("no NUL terminator within 66560 bytes")),
        "{err}"
    );
}

#[test]
fn pointers_outside_memory_are_bad_output() {
    let err = trigger_error("(i32.const 0x7fff0000)", &[]);
    assert!(
        matches!(err, FunctionError::BadOutput(ref m) if m.contains("outside")),
        "{err}"
    );
    // Just past the end: the first byte to read is already outside.
    let err = trigger_error("(i32.const 65536)", &[]);
    assert!(
        matches!(err, FunctionError::BadOutput(ref m) if m.contains("outside")),
        "{err}"
    );
    let err = trigger_error("(i32.const 0)", &[]);
    assert!(
        matches!(err, FunctionError::BadOutput(ref m) if m.contains("null pointer")),
        "{err}"
    );
}

#[test]
fn the_wrong_number_of_verdicts_is_bad_output() {
    let err = trigger_error(
        "(i32.const 0x5000)",
        &[(0x5000, b"0{\"is_anomaly\":[true]}\0")],
    );
    assert_eq!(
        err,
        FunctionError::BadOutput("1 verdicts for a window of 4 samples".into())
    );
}

#[test]
fn a_trap_in_apply_is_a_trap() {
    let err = trigger_error("unreachable", &[]);
    assert!(matches!(err, FunctionError::Trap(_)), "{err}");
}

#[test]
fn an_allocation_outside_memory_is_bad_output() {
    let bytes = wat::parse_str(
        r#"(module (memory (export "memory") 1)
          (func (export "allocate") (param i32) (result i32) i32.const 65530)
          (func (export "deallocate") (param i32 i32))
          (func (export "apply") (param i32) (result i32) i32.const 0))"#,
    )
    .unwrap();
    let mut host = load(&bytes).unwrap();
    let err = host.run(&four(CALM)).unwrap_err();
    assert!(
        matches!(err, FunctionError::BadOutput(ref m) if m.starts_with("allocate at 0xfffa")),
        "{err}"
    );
}

#[test]
fn punch_exports_are_checked_by_signature() {
    let only_apply = wat::parse_str(
        r#"(module (memory (export "memory") 1)
          (func (export "apply") (param i32) (result i32) i32.const 0))"#,
    )
    .unwrap();
    let err = FunctionModule::from_bytes(&only_apply).err().unwrap();
    assert_eq!(
        err,
        FunctionError::MissingExport {
            name: "allocate",
            expected: "func (i32) -> i32"
        }
    );

    let wrong_apply = wat::parse_str(
        r#"(module (memory (export "memory") 1)
          (func (export "apply") (param i32 i32) (result i64) i64.const 0)
          (func (export "allocate") (param i32) (result i32) i32.const 0)
          (func (export "deallocate") (param i32 i32)))"#,
    )
    .unwrap();
    let err = FunctionModule::from_bytes(&wrong_apply).err().unwrap();
    assert_eq!(
        err,
        FunctionError::MissingExport {
            name: "apply",
            expected: "func (i32) -> i32"
        }
    );

    let neither = wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap();
    let err = FunctionModule::from_bytes(&neither).err().unwrap();
    assert!(
        matches!(err, FunctionError::UnknownAbi(ref m) if m.contains("`apply`")),
        "{err}"
    );
}
