//! The function benchmark: S-H-ESD per window natively and in wasmi (fuel on), their
//! ratio, the host's share of a call, the module's size, and how fast a spinning guest is
//! stopped. Prints a table; asserts nothing about time.
//!
//! `cargo bench -p edge-tests --bench function`

use std::time::{Duration, Instant};

use edge_agent::function::{FunctionError, FunctionHost, FunctionModule, Limits};
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
        "| N | crate natively | function natively | function in wasmi | wasmi / native | host share | fuel | fuel per µs |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in [256usize, 1024, 4096] {
        let values = seasonal_series(n, PERIOD, &[n / 5, n / 2, 4 * n / 5]);
        let window = Window::from_air_quality("bench", (0..n as i64).collect(), values.clone());
        let runs = if n >= 4096 { 5 } else { 11 };

        let (crate_time, _) = time(runs, || {
            anomaly_detection::params()
                .max_anoms(0.1)
                .fit(&values, PERIOD)
                .expect("the crate judges the window")
        });
        let native = Harness::<SeasonalHybridEsd>::new(&params).expect("parameters are good");
        let (native_time, native_verdicts) =
            time(runs * 3, || native.execute(&window).expect("native run"));

        let mut host = FunctionHost::new(module.clone(), params.clone(), unlimited)
            .expect("the function starts");
        let mut host_times = Vec::new();
        let (wasm_time, outcome) = time(runs, || {
            let outcome = host.run(&window).expect("wasm run");
            host_times.push(outcome.host_time);
            outcome
        });
        assert_eq!(
            outcome.verdicts, native_verdicts,
            "wasm and native disagree at N={n}"
        );
        let host_time = median(host_times);

        println!(
            "| {n} | {crate_time:.2?} | {native_time:.2?} | {wasm_time:.2?} | {:.1}x | {:.2}% ({host_time:.0?}) | {:.0}M | {:.0} |",
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
}
