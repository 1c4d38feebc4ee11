//! The function benchmark: S-H-ESD per window natively and in wasmi (fuel on), their
//! ratio, the host's share of a call, the module's size, and how fast a spinning guest is
//! stopped; then the sandbox's figures: what the deadline checks cost S-H-ESD (against
//! one fuel slice per call, measured in the same run), the worst time per window each
//! hostile shape reaches under the default limits and how far past its deadline a call
//! runs, the RSS two instances at their ceiling cost, and load times of hostile modules.
//! Prints tables; asserts nothing about time.
//!
//! With `EDGE_BENCH_ARMHF_BASELINE` naming a directory that holds an earlier 32-bit build
//! (`edge-agent`, from `make cross`, and its `edge_anomaly.wasm`), it also times
//! `edge-agent check` of both builds under `qemu-arm`, interleaved: the Pi's figure against
//! that baseline in one run. `make cross` builds the current one.
//!
//! `cargo bench -p edge-tests --bench function`

use std::time::{Duration, Instant};

use edge_agent::function::{
    FunctionError, FunctionHost, FunctionModule, Limits, MAX_LOCALS_PER_FUNCTION,
};
use edge_anomaly::SeasonalHybridEsd;
use edge_function::testing::Harness;
use edge_function::{Params, Window};
use edge_tests::{anomaly_wasm, misbehave_wasm, seasonal_series};

const PERIOD: usize = 24;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn time<R>(runs: usize, mut f: impl FnMut() -> R) -> (Duration, R) {
    let mut last = None;
    let samples = (0..runs)
        .map(|_| {
            let started = Instant::now();
            last = Some(std::hint::black_box(f()));
            started.elapsed()
        })
        .collect();
    (median(samples), last.expect("at least one run"))
}

fn main() {
    let wasm_path = anomaly_wasm();
    let wasm_size = std::fs::metadata(wasm_path).expect("built").len();
    let module = FunctionModule::load(wasm_path).expect("the function loads");
    let params = Params::from([("period", "24"), ("max_anoms", "0.1")]);
    let unlimited = Limits {
        fuel_per_call: u64::MAX / 2,
        ..Limits::default()
    };

    println!(
        "S-H-ESD (period {PERIOD}, max_anoms 0.1), median per window; {wasm_size} byte module"
    );
    println!(
        "| N | crate natively | function natively | function in wasmi | wasmi / crate | wasmi / function natively | host share | fuel | fuel per µs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for n in [256usize, 1024, 4096] {
        let values = seasonal_series(n, PERIOD, &[n / 5, n / 2, 4 * n / 5]);
        let window = Window::from_air_quality("bench", (0..n as i64).collect(), values.clone());
        let runs = if n >= 4096 { 7 } else { 15 };

        // One of each a round, so that a busy machine weighs on all three alike.
        let native = Harness::<SeasonalHybridEsd>::new(&params).expect("parameters are good");
        let mut host = FunctionHost::new(module.clone(), params.clone(), unlimited)
            .expect("the function starts");
        let (mut crate_times, mut native_times, mut wasm_times) = (vec![], vec![], vec![]);
        let mut host_times = Vec::new();
        let (mut native_verdicts, mut outcome) = (None, None);
        for _ in 0..runs {
            let (took, _) = time(1, || {
                anomaly_detection::params()
                    .max_anoms(0.1)
                    .fit(&values, PERIOD)
                    .expect("the crate judges the window")
            });
            crate_times.push(took);
            let (took, verdicts) = time(1, || native.execute(&window).expect("native run"));
            native_times.push(took);
            native_verdicts = Some(verdicts);
            let (took, ran) = time(1, || host.run(&window).expect("wasm run"));
            wasm_times.push(took);
            host_times.push(ran.host_time);
            outcome = Some(ran);
        }
        let outcome = outcome.expect("at least one run");
        assert_eq!(
            Some(&outcome.verdicts),
            native_verdicts.as_ref(),
            "wasm and native disagree at N={n}"
        );
        let (crate_time, native_time, wasm_time) = (
            median(crate_times),
            median(native_times),
            median(wasm_times),
        );
        let host_time = median(host_times);

        println!(
            "| {n} | {crate_time:.2?} | {native_time:.2?} | {wasm_time:.2?} | {:.1}x | {:.1}x | {:.2}% ({host_time:.0?}) | {:.0}M | {:.0} |",
            wasm_time.as_secs_f64() / crate_time.as_secs_f64(),
            wasm_time.as_secs_f64() / native_time.as_secs_f64(),
            100.0 * host_time.as_secs_f64() / wasm_time.as_secs_f64(),
            outcome.fuel_used as f64 / 1e6,
            outcome.fuel_used as f64 / outcome.guest_time.as_secs_f64() / 1e6,
        );
    }

    let limits = Limits::default();
    println!(
        "\nFuel for N=4096, max_anoms 0.1, by period (default budget {}M):",
        limits.fuel_per_call / 1_000_000
    );
    for period in [2usize, 24, 288, 2048] {
        let values = seasonal_series(4096, period, &[1000, 3000]);
        let window = Window::from_air_quality("bench", (0..4096).collect(), values);
        let params = Params::from([("period", period.to_string())]);
        let mut host = FunctionHost::new(module.clone(), params, unlimited).expect("starts");
        let outcome = host.run(&window).expect("runs");
        println!(
            "- period {period}: {:.0}M fuel ({:.0}% of the budget), {:.0?}",
            outcome.fuel_used as f64 / 1e6,
            100.0 * outcome.fuel_used as f64 / limits.fuel_per_call as f64,
            outcome.guest_time
        );
    }

    let spinner = FunctionModule::load(misbehave_wasm()).expect("the fixture loads");
    let mut host = FunctionHost::new(spinner, Params::from([("mode", "spin")]), limits)
        .expect("the fixture starts");
    let mut trigger = Window::from_air_quality("bench", vec![0], vec![-1.0]);
    trigger.air_quality[0] = -1.0;
    let started = Instant::now();
    let result = host.run(&trigger);
    let stopped = started.elapsed();
    assert!(matches!(result, Err(FunctionError::OutOfFuel { .. })));
    println!(
        "\nAn infinite loop under the default budget of {}M fuel is stopped after {stopped:.0?} ({:.0} fuel per µs).",
        limits.fuel_per_call / 1_000_000,
        limits.fuel_per_call as f64 / stopped.as_secs_f64() / 1e6
    );

    if let Some(baseline) = std::env::var_os("EDGE_BENCH_ARMHF_BASELINE") {
        armhf_against(std::path::Path::new(&baseline), wasm_path);
    }
    deadline_cost(&module);
    worst_cases();
    ceiling_rss();
    hostile_load_times();
}

/// S-H-ESD at N=4096 with the deadline checked between fuel slices (the default) against
/// the same call given all its fuel in one slice (no checks), runs interleaved.
fn deadline_cost(module: &FunctionModule) {
    let n = 4096;
    let values = seasonal_series(n, PERIOD, &[n / 5, n / 2, 4 * n / 5]);
    let window = Window::from_air_quality("bench", (0..n as i64).collect(), values);
    let params = Params::from([("period", "24"), ("max_anoms", "0.1")]);
    let limits = Limits::default();
    let mut sliced = FunctionHost::new(module.clone(), params.clone(), limits).expect("starts");
    let mut whole = FunctionHost::new(module.clone(), params, limits)
        .expect("starts")
        .with_fuel_slice(u64::MAX);
    let (mut with_checks, mut without) = (Vec::new(), Vec::new());
    for round in 0..21 {
        // Alternate which goes first, so neither always runs on a warmer cache.
        for first in [round % 2 == 0, round % 2 != 0] {
            let (host, times) = if first {
                (&mut sliced, &mut with_checks)
            } else {
                (&mut whole, &mut without)
            };
            let started = Instant::now();
            std::hint::black_box(host.run(&window).expect("runs"));
            times.push(started.elapsed());
        }
    }
    let (with_checks, without) = (median(with_checks), median(without));
    println!(
        "\nDeadline checks on S-H-ESD (N={n}, period {PERIOD}), median of 21 interleaved: {with_checks:.2?} with checks every 1M fuel, {without:.2?} in one slice: {:+.2}%",
        100.0 * (with_checks.as_secs_f64() / without.as_secs_f64() - 1.0)
    );
}

/// `edge-agent check` of S-H-ESD (period 24, N=1024) under `qemu-arm`: the 32-bit build
/// in `target/pi` with this checkout's function against the one in `baseline`, runs
/// interleaved, the median of each. Whole processes, so the binary's own speed counts.
fn armhf_against(baseline: &std::path::Path, wasm: &std::path::Path) {
    let current = edge_tests::workspace()
        .join("target/pi/thumbv7neon-unknown-linux-gnueabihf/release/edge-agent");
    let builds = [
        (
            "baseline",
            baseline.join("edge-agent"),
            baseline.join("edge_anomaly.wasm"),
        ),
        ("current", current, wasm.to_path_buf()),
    ];
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..3 {
        for (slot, (_, binary, function)) in builds.iter().enumerate() {
            let output = std::process::Command::new("qemu-arm")
                .args(["-L", "/usr/arm-linux-gnueabihf"])
                .arg(binary)
                .arg("check")
                .arg(function)
                .args([
                    "--param",
                    "period=24",
                    "--window",
                    "1024",
                    "--deadline-ms",
                    "600000",
                ])
                .output()
                .expect("qemu-arm runs (make pi-tools)");
            let errors = String::from_utf8_lossy(&output.stderr);
            let text = String::from_utf8_lossy(&output.stdout);
            let ran = text
                .lines()
                .find_map(|line| line.strip_prefix("ran"))
                .and_then(|line| line.split(" in ").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(parse_duration)
                .unwrap_or_else(|| panic!("no time in `check`'s output: {text}{errors}"));
            times[slot].push(ran);
        }
    }
    let [baseline_time, current_time] = times.map(median);
    println!(
        "\n32-bit ARM (thumbv7neon, `edge-agent check`, N=1024, period 24) under qemu-arm, median of 3 interleaved: {current_time:.2?} against {baseline_time:.2?} for the baseline build ({:.2}x as fast)",
        baseline_time.as_secs_f64() / current_time.as_secs_f64()
    );
}

/// A `Duration`'s `Debug` form as `check` prints it (`65.94ms`, `1.20s`, `812.00µs`).
fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_alphabetic() || c == 'µ')?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => number,
        "ms" => number / 1e3,
        "µs" | "us" => number / 1e6,
        "ns" => number / 1e9,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

/// An edge-ABI module whose `execute` is `body`, with `extra` fields.
fn hostile(body: &str, extra: &str) -> FunctionModule {
    let text = format!(
        r#"(module
          (memory (export "memory") 1)
          (data (i32.const 4096) "\00\01")
          (func (export "edge_abi_version") (result i32) i32.const 1)
          (func (export "alloc") (param i32) (result i32) i32.const 1024)
          (func (export "dealloc") (param i32 i32))
          (func (export "init") (param i32 i32) (result i64) i64.const 0x0000100000000002)
          (func (export "execute") (param i32 i32) (result i64) {body})
          {extra})"#
    );
    FunctionModule::from_bytes(&wat::parse_str(text).expect("valid WAT")).expect("loads")
}

fn worst_cases() {
    let locals = "(local i64)".repeat(MAX_LOCALS_PER_FUNCTION as usize - 1);
    let cases = [
        ("spin (loop br 0)", hostile("(loop br 0) i64.const 0", "")),
        (
            "memory.fill 16 MiB in a loop",
            hostile(
                "(drop (memory.grow (i32.const 256))) (loop (memory.fill (i32.const 0) (i32.const 7) (i32.const 0x1000000)) br 0) i64.const 0",
                "",
            ),
        ),
        (
            "memory.copy 8 MiB in a loop",
            hostile(
                "(drop (memory.grow (i32.const 256))) (loop (memory.copy (i32.const 0) (i32.const 0x800000) (i32.const 0x800000)) br 0) i64.const 0",
                "",
            ),
        ),
        (
            "calls to a function with 2047 locals",
            hostile(
                "(loop (call $heavy) br 0) i64.const 0",
                &format!("(func $heavy {locals})"),
            ),
        ),
        (
            "table.grow/fill in a loop",
            hostile(
                "(loop (drop (table.grow $t (ref.null func) (i32.const 1000))) (table.fill $t (i32.const 0) (ref.null func) (table.size $t)) br 0) i64.const 0",
                "(table $t 1 funcref)",
            ),
        ),
        (
            "memory.grow 1 page in a loop (fails past 32 MiB)",
            hostile(
                "(loop (drop (memory.grow (i32.const 1))) br 0) i64.const 0",
                "",
            ),
        ),
        (
            "table.grow failing in a loop",
            hostile(
                "(loop (drop (table.grow $t (ref.null func) (i32.const 1))) br 0) i64.const 0",
                "(table $t 1 1 funcref)",
            ),
        ),
    ];
    let defaults = Limits::default();
    let clock = Duration::from_secs(1);
    let clock_only = Limits {
        fuel_per_call: u64::MAX,
        deadline: clock,
        ..Limits::default()
    };
    println!(
        "\nWorst time per window by hostile shape: under the default limits ({}M fuel, {:?} deadline), and with fuel unlimited and a {clock:?} deadline (the overshoot is past the deadline):",
        defaults.fuel_per_call / 1_000_000,
        defaults.deadline
    );
    println!("| shape | default limits | stopped by | clock only | overshoot |");
    println!("|---|---|---|---|---|");
    let window = Window::from_air_quality("bench", vec![0, 1, 2, 3], vec![50.0; 4]);
    for (name, module) in cases {
        let mut host = FunctionHost::new(module.clone(), Params::new(), defaults).expect("starts");
        let started = Instant::now();
        let first = host.run(&window);
        let by_default = started.elapsed();
        let mut host = FunctionHost::new(module, Params::new(), clock_only).expect("starts");
        let started = Instant::now();
        let second = host.run(&window);
        let by_clock = started.elapsed();
        println!(
            "| {name} | {by_default:.0?} | {} | {by_clock:.0?} ({}) | {:.1?} |",
            first.err().map_or("nothing: it finished", |e| e.kind()),
            second.err().map_or("finished", |e| e.kind()),
            by_clock.saturating_sub(clock)
        );
    }
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// Two instances (as during a canary) that fill their memory to the ceiling and their
/// tables to the most elements, and what the process's resident set grows by.
fn ceiling_rss() {
    let limits = Limits::default();
    let pages = limits.max_memory_bytes / 65_536 - 1;
    // Tables declared at their bound rather than grown: wasmi 2.0 loses its place when
    // `table.grow` pauses for fuel (see `agent/tests/sandbox.rs`).
    let body = format!(
        "(drop (memory.grow (i32.const {pages}))) (memory.fill (i32.const 0) (i32.const 7) (i32.const {})) (i32.store (i32.const 0x800) (i32.const 0x0100)) i64.const 0x0000080000000004",
        limits.max_memory_bytes
    );
    let module = hostile(
        &body,
        "(table $t 65536 funcref) (table $u 65536 funcref) (table $v 65536 funcref) (table $w 65536 funcref)",
    );
    let window = Window::from_air_quality("bench", vec![0], vec![50.0]);
    let before = rss_kib("VmRSS:");
    let mut hosts: Vec<FunctionHost> = (0..2)
        .map(|_| FunctionHost::new(module.clone(), Params::new(), limits).expect("starts"))
        .collect();
    for host in &mut hosts {
        // Answers one verdict, so the instance (and its memory) is kept.
        host.run(&window).expect("the ceiling module answers");
    }
    let after = rss_kib("VmRSS:");
    println!(
        "\nTwo instances at their ceiling ({} MiB memory, 4 tables of 65536 elements each): RSS +{} MiB (from {} to {} MiB; peak {} MiB)",
        limits.max_memory_bytes >> 20,
        after.saturating_sub(before) / 1024,
        before / 1024,
        after / 1024,
        rss_kib("VmHWM:") / 1024
    );
}

fn hostile_load_times() {
    println!("\nLoading hostile modules (compile and validate):");
    let targets = "0 ".repeat(1_000_000);
    let br_table = wat::parse_str(format!(
        r#"(module (memory (export "memory") 1) (func (export "apply") (param i32) (result i32) (block (br_table {targets} (local.get 0))) i32.const 0))"#
    ))
    .expect("valid");
    let functions = "(func (result i32) i32.const 0)".repeat(9_000);
    let many = wat::parse_str(format!(
        r#"(module (memory (export "memory") 1) {functions})"#
    ))
    .expect("valid");
    for (name, bytes) in [
        ("br_table of 1 M targets", br_table),
        ("9000 tiny functions", many),
    ] {
        let started = Instant::now();
        let result = FunctionModule::from_bytes(&bytes);
        println!(
            "- {name}, {} KiB: {:.0?} ({})",
            bytes.len() / 1024,
            started.elapsed(),
            result
                .err()
                .map_or("loaded".into(), |e| e.kind().to_owned())
        );
    }
}
