//! The function natively, through the SDK's harness: parameters, data guards, verdicts.

use edge_anomaly::SeasonalHybridEsd;
use edge_function::Window;
use edge_function::testing::Harness;

fn harness(pairs: &[(&str, &str)]) -> Result<Harness<SeasonalHybridEsd>, edge_function::Error> {
    Harness::new(&pairs.iter().copied().collect())
}

fn window(values: Vec<f32>) -> Window {
    let timestamps = (0..values.len() as i64).map(|i| i * 60_000).collect();
    Window::from_air_quality("test", timestamps, values)
}

/// The crate's own example series: known anomalies at 9, 15 and 26 with period 7.
fn crate_example() -> Vec<f32> {
    vec![
        5.0, 9.0, 2.0, 9.0, 0.0, 6.0, 3.0, 8.0, 5.0, 18.0, 7.0, 8.0, 8.0, 0.0, 2.0, -5.0, 0.0, 5.0,
        6.0, 7.0, 3.0, 6.0, 1.0, 4.0, 4.0, 4.0, 30.0, 7.0, 5.0, 8.0,
    ]
}

fn flagged(verdicts: &[edge_function::Verdict]) -> Vec<usize> {
    verdicts
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_anomaly)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn finds_the_known_anomalies_in_each_direction() {
    let cases = [
        ("both", vec![9, 15, 26]),
        ("pos", vec![9, 26]),
        ("neg", vec![15]),
    ];
    for (direction, expected) in cases {
        let f = harness(&[
            ("period", "7"),
            ("max_anoms", "0.2"),
            ("direction", direction),
        ])
        .unwrap();
        let verdicts = f.execute(&window(crate_example())).unwrap();
        assert_eq!(verdicts.len(), 30);
        assert_eq!(flagged(&verdicts), expected, "direction {direction}");
    }
}

#[test]
fn minimum_window_is_two_periods() {
    assert_eq!(harness(&[("period", "7")]).unwrap().min_window_len(), 14);
    assert_eq!(harness(&[]).unwrap().min_window_len(), 48);
}

#[test]
fn bad_parameters_are_refused_with_the_name() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("period", "1")], "`period` must be at least 2"),
        (&[("period", "0")], "`period` must be at least 2"),
        (&[("period", "-3")], "`period`"),
        (&[("period", "x")], "`period`"),
        (&[("max_anoms", "0")], "`max_anoms`"),
        (&[("max_anoms", "-0.1")], "`max_anoms`"),
        (&[("max_anoms", "NaN")], "`max_anoms`"),
        (&[("alpha", "0")], "`alpha`"),
        (&[("alpha", "1")], "`alpha`"),
        (&[("alpha", "NaN")], "`alpha`"),
        (&[("direction", "up")], "`direction`"),
        (&[("periodd", "7")], "unknown parameter `periodd`"),
    ];
    for (params, expected) in cases {
        let err = harness(params)
            .err()
            .unwrap_or_else(|| panic!("{params:?} accepted"));
        assert!(err.message.contains(expected), "{params:?}: {err}");
    }
}

#[test]
fn max_anoms_above_the_ceiling_is_clamped_not_refused() {
    let f = harness(&[("period", "7"), ("max_anoms", "0.9"), ("alpha", "0.5")]).unwrap();
    let verdicts = f.execute(&window(crate_example())).unwrap();
    assert!(flagged(&verdicts).len() <= (30.0 * 0.49) as usize);
}

#[test]
fn bad_data_is_an_error_not_a_panic() {
    let f = harness(&[("period", "7")]).unwrap();
    let mut with_nan = crate_example();
    with_nan[4] = f32::NAN;
    let mut with_inf = crate_example();
    with_inf[5] = f32::INFINITY;
    let mut with_huge = crate_example();
    with_huge[6] = -3e38;
    let cases = [
        (with_nan, "air_quality[4] is NaN"),
        (with_inf, "air_quality[5] is infinite"),
        (with_huge, "air_quality[6] is beyond"),
        (crate_example()[..13].to_vec(), "shorter than two seasons"),
        (vec![], "shorter than two seasons"),
    ];
    for (values, expected) in cases {
        let err = f.execute(&window(values)).unwrap_err();
        assert!(err.message.contains(expected), "{err}");
    }
    let mut mismatched = window(crate_example());
    mismatched.timestamps.pop();
    assert!(
        f.execute(&mismatched)
            .unwrap_err()
            .message
            .contains("timestamps")
    );
}

#[test]
fn never_panics_on_odd_but_finite_series() {
    // Deterministic pseudo-random series of awkward shapes; a panic here would be a trap
    // in the wasm build.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let f = harness(&[("period", "5"), ("max_anoms", "0.49")]).unwrap();
    for case in 0..200 {
        let n = 10 + (next() % 90) as usize;
        let values: Vec<f32> = (0..n)
            .map(|i| match case % 5 {
                0 => 42.0,
                1 => {
                    if i == n / 2 {
                        1e30
                    } else {
                        0.0
                    }
                }
                2 => (next() % 3) as f32,
                3 => f32::from_bits((next() as u32 & 0x7f7f_ffff) | (next() as u32 & 0x8000_0000))
                    .clamp(-1e30, 1e30),
                _ => (next() % 1000) as f32 / 7.0 - 70.0,
            })
            .collect();
        // Values of ±1e30 and beyond are refused by the data guard, by design; every
        // other series must be judged, one verdict per sample.
        let beyond_guard = values.iter().any(|v| v.abs() >= 1e30);
        match f.execute(&window(values)) {
            Ok(verdicts) => assert_eq!(verdicts.len(), n, "case {case}"),
            Err(e) if beyond_guard => assert!(e.message.contains("beyond"), "case {case}: {e}"),
            Err(e) => panic!("case {case}: a finite series in range was refused: {e}"),
        }
    }
}

/// f32 critical values (`critical = f32`, the crate's): with `alpha` below about 6e-8 ×
/// the window length (3e-8 with one tail) the ESD test's probability rounds to 1 and
/// nothing could ever be flagged. Such an `alpha` is refused, naming the usable range,
/// instead of answering "no anomaly".
#[test]
fn an_alpha_the_f32_test_cannot_honour_is_refused_with_the_usable_range() {
    let series = spiked_series(2016, 288);
    for (direction, refused, honoured) in [
        ("both", "1e-4", "1.3e-4"),
        ("pos", "5e-5", "6.1e-5"),
        ("neg", "5e-5", "6.1e-5"),
    ] {
        let f = harness(&[
            ("period", "288"),
            ("alpha", refused),
            ("direction", direction),
            ("critical", "f32"),
        ])
        .unwrap();
        let err = match f.execute(&window(series.clone())) {
            Err(err) => err,
            Ok(verdicts) => panic!(
                "{direction}: alpha {refused} judged the window, {} flagged",
                flagged(&verdicts).len()
            ),
        };
        assert!(
            err.message.contains(&format!(
                "`alpha` = {refused} cannot be honoured on a window of 2016 samples"
            )),
            "{direction}: {err}"
        );
        assert!(
            err.message.contains(&format!("[{honoured}, 1)")),
            "{direction}: {err}"
        );
        // The bound named is usable: it runs, and the spike is found.
        let f = harness(&[
            ("period", "288"),
            ("alpha", honoured),
            ("direction", direction),
            ("critical", "f32"),
        ])
        .unwrap();
        let verdicts = f.execute(&window(series.clone())).unwrap();
        if direction != "neg" {
            assert!(flagged(&verdicts).contains(&700), "{direction}");
        }
    }
    // Too small for even the shortest window it accepts (two periods): refused at init.
    let err = harness(&[("period", "24"), ("alpha", "1e-9"), ("critical", "f32")])
        .err()
        .expect("refused");
    assert!(
        err.message
            .contains("`alpha` = 1e-9 cannot be honoured on a window of 48 samples"),
        "{err}"
    );
    // The default is honoured on the longest window the agent allows.
    assert!(harness(&[("period", "24")]).is_ok());
    let long = harness(&[("period", "24")]).unwrap();
    assert!(long.execute(&window(spiked_series(16_384, 24))).is_ok());
}

/// A seasonal series with one spike at 700.
fn spiked_series(len: usize, period: usize) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let phase = i as f32 / period as f32 * std::f32::consts::TAU;
            let wobble = ((i * 7919) % 13) as f32 / 13.0 - 0.5;
            let spike = if i == 700 { 40.0 } else { 0.0 };
            60.0 + 10.0 * phase.sin() + wobble + spike
        })
        .collect()
}

/// By default (`critical = auto`) a window where f32 could flag nothing is judged with f64
/// critical values instead of refused, so a small `alpha` works; `f64` does it everywhere.
#[test]
fn a_small_alpha_works_in_f64() {
    let series = spiked_series(2016, 288);
    for precision in ["auto", "f64"] {
        for alpha in ["1e-4", "1e-9"] {
            let f =
                harness(&[("period", "288"), ("alpha", alpha), ("critical", precision)]).unwrap();
            let flagged = flagged(&f.execute(&window(series.clone())).unwrap());
            assert_eq!(flagged, vec![700], "{precision} alpha {alpha}");
        }
    }
    // Below what even f64 can honour: refused, with the bound.
    let err = harness(&[("period", "24"), ("alpha", "1e-20")])
        .err()
        .expect("refused");
    assert!(err.message.contains("even with f64"), "{err}");
    // Where f32 can honour it, auto is f32: the crate's result (tests/equivalence.rs).
    let auto = harness(&[("period", "7"), ("max_anoms", "0.2")]).unwrap();
    let f32 = harness(&[("period", "7"), ("max_anoms", "0.2"), ("critical", "f32")]).unwrap();
    assert_eq!(
        auto.execute(&window(crate_example())).unwrap(),
        f32.execute(&window(crate_example())).unwrap()
    );
}

/// A level shift halfway: one median for the whole window calls a run of the higher half
/// anomalous; the piecewise median (`longterm_period`) follows the shift and flags the
/// spike, and at most the one shifted sample the piece before the shift ends with.
#[test]
fn the_piecewise_median_follows_a_level_shift() {
    let period = 24;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let values: Vec<f32> = (0..960)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let phase = i as f32 / period as f32 * std::f32::consts::TAU;
            let wobble = (state % 1000) as f32 / 500.0 - 1.0;
            let level = if i >= 480 { 40.0 } else { 0.0 };
            let spike = if i == 700 { 25.0 } else { 0.0 };
            50.0 + 5.0 * phase.sin() + wobble + level + spike
        })
        .collect();
    let whole = harness(&[("period", "24")]).unwrap();
    let pieces = harness(&[("period", "24"), ("longterm_period", "240")]).unwrap();
    let whole = flagged(&whole.execute(&window(values.clone())).unwrap());
    let pieces = flagged(&pieces.execute(&window(values)).unwrap());
    assert!(
        pieces.contains(&700) && pieces.iter().all(|&i| i == 700 || i == 480),
        "piecewise: {pieces:?}"
    );
    assert!(whole.len() > 10, "whole window: {whole:?}");
}

/// `threshold` keeps only flags at or above the statistic of the season maxima: the
/// crate example's low anomaly (15) goes, its high ones stay.
#[test]
fn threshold_keeps_only_high_flags() {
    for (threshold, expected) in [
        ("none", vec![9, 15, 26]),
        ("med_max", vec![9, 26]),
        ("p95", vec![26]),
        ("p99", vec![26]),
    ] {
        let f = harness(&[
            ("period", "7"),
            ("max_anoms", "0.2"),
            ("threshold", threshold),
        ])
        .unwrap();
        let verdicts = f.execute(&window(crate_example())).unwrap();
        assert_eq!(flagged(&verdicts), expected, "threshold {threshold}");
    }
}

#[test]
fn bad_options_are_refused_with_the_name() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("period", "7"), ("longterm_period", "13")],
            "`longterm_period` must be at least two seasons (2 x `period` samples), got `13`",
        ),
        (&[("longterm_period", "x")], "`longterm_period`"),
        (&[("threshold", "p90")], "`threshold` must be"),
        (&[("critical", "f16")], "`critical` must be"),
    ];
    for (params, expected) in cases {
        let err = harness(params)
            .err()
            .unwrap_or_else(|| panic!("{params:?} accepted"));
        assert!(err.message.contains(expected), "{params:?}: {err}");
    }
}
