//! The same windows through the function natively and through wasmi give identical
//! verdicts: the wasm build, the ABI and the host change nothing.

use edge_agent::function::{FunctionHost, FunctionModule, Limits};
use edge_anomaly::SeasonalHybridEsd;
use edge_function::testing::Harness;
use edge_function::{Params, Window};
use edge_tests::{anomaly_wasm, seasonal_series};

#[test]
fn identical_verdicts_natively_and_in_wasmi() {
    let module = FunctionModule::load(anomaly_wasm()).unwrap();
    let parameter_sets: &[&[(&str, &str)]] = &[
        &[("period", "24")],
        &[("period", "12"), ("max_anoms", "0.2"), ("alpha", "0.1")],
        &[("period", "24"), ("direction", "pos")],
        &[("period", "7"), ("direction", "neg"), ("max_anoms", "0.49")],
        &[
            ("period", "12"),
            ("longterm_period", "36"),
            ("threshold", "p95"),
        ],
        &[("period", "24"), ("alpha", "1e-7"), ("critical", "auto")],
    ];
    let mut anomalies = 0;
    for pairs in parameter_sets {
        let params: Params = pairs.iter().copied().collect();
        let native = Harness::<SeasonalHybridEsd>::new(&params).unwrap();
        let mut wasm =
            FunctionHost::new(module.clone(), params.clone(), Limits::default()).unwrap();
        assert_eq!(wasm.min_window_len(), native.min_window_len());
        for n in [48usize, 100, 256, 1000] {
            let period: usize = params.get("period").unwrap().unwrap();
            if n < 2 * period {
                continue;
            }
            let mut values = seasonal_series(n, period, &[n / 4, n / 2 + 1, n - 3]);
            values[n / 3] -= 30.0; // a dip, for the negative direction
            let window =
                Window::from_air_quality("s", (0..n as i64).map(|i| i * 60_000).collect(), values);
            let expected = native.execute(&window).unwrap();
            let outcome = wasm.run(&window).unwrap();
            assert_eq!(outcome.verdicts, expected, "{pairs:?} n={n}");
            assert!(outcome.fuel_used > 0);
            anomalies += expected.iter().filter(|v| v.is_anomaly).count();
        }
    }
    assert!(
        anomalies >= 20,
        "only {anomalies} anomalies: the comparison proves little"
    );
}

#[test]
fn refusals_are_the_same_natively_and_in_wasmi() {
    let module = FunctionModule::load(anomaly_wasm()).unwrap();
    for pairs in [
        [("period", "1")],
        [("alpha", "2")],
        [("direction", "up")],
        [("bogus", "1")],
    ] {
        let params: Params = pairs.into_iter().collect();
        let native = Harness::<SeasonalHybridEsd>::new(&params).err().unwrap();
        let wasm = FunctionHost::new(module.clone(), params, Limits::default())
            .err()
            .unwrap();
        assert_eq!(wasm.to_string(), format!("the function refused: {native}"));
    }
    let mut wasm =
        FunctionHost::new(module, Params::from([("period", "4")]), Limits::default()).unwrap();
    let mut values = vec![1.0; 12];
    values[5] = f32::NAN;
    let err = wasm
        .run(&Window::from_air_quality("s", (0..12).collect(), values))
        .unwrap_err();
    assert!(err.to_string().contains("air_quality[5] is NaN"), "{err}");
    let err = wasm
        .run(&Window::from_air_quality(
            "s",
            (0..7).collect(),
            vec![1.0; 7],
        ))
        .unwrap_err();
    assert!(
        err.to_string().contains("shorter than two seasons"),
        "{err}"
    );
}

/// The largest live window the README promises (N = 4,096) fits the default fuel budget
/// with room to spare, for periods from the shortest to the longest a window that size
/// takes, and at the most anomalies the function looks for: the heaviest S-H-ESD asks.
/// The verdicts match the native build's there too.
#[test]
fn a_4096_window_fits_the_default_fuel_budget() {
    let module = FunctionModule::load(anomaly_wasm()).unwrap();
    let n = 4096;
    let budget = Limits::default().fuel_per_call;
    let mut heaviest = 0;
    for period in [2usize, 24, 288, 2048] {
        for max_anoms in ["0.1", "0.49"] {
            let params = Params::from([
                ("period", period.to_string()),
                ("max_anoms", max_anoms.into()),
            ]);
            let native = Harness::<SeasonalHybridEsd>::new(&params).unwrap();
            let mut wasm = FunctionHost::new(module.clone(), params, Limits::default()).unwrap();
            let values = seasonal_series(n, period, &[n / 5, n / 2, 4 * n / 5]);
            let window = Window::from_air_quality("s", (0..n as i64).collect(), values);
            let outcome = wasm
                .run(&window)
                .unwrap_or_else(|e| panic!("period {period}, max_anoms {max_anoms}: {e}"));
            assert_eq!(outcome.verdicts, native.execute(&window).unwrap());
            heaviest = heaviest.max(outcome.fuel_used);
        }
    }
    // Half the budget: a slower build of the function still fits.
    assert!(
        heaviest <= budget / 2,
        "{heaviest} fuel at N={n}, budget {budget}"
    );
}
