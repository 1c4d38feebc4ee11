//! The function's S-H-ESD against `anomaly_detection` 0.4 itself: the same anomalies,
//! index for index, on thousands of series of every shape and on every parameter set.

use anomaly_detection::{AnomalyDetectionParams, Direction};
use edge_anomaly::esd::{Tail, detect};
use edge_anomaly::stl;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() % 1_000_000) as f32 / 1_000_000.0
    }
}

fn series(rng: &mut Rng, shape: u64, n: usize, period: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let season = (i % period) as f32 / period as f32 * std::f32::consts::TAU;
            match shape % 6 {
                // Seasonal with noise and rare spikes both ways.
                0 => {
                    let spike = match rng.next() % 40 {
                        0 => 20.0,
                        1 => -15.0,
                        _ => 0.0,
                    };
                    50.0 + 10.0 * season.sin() + rng.unit() * 2.0 + spike
                }
                // Few distinct values: many ties in values and deviations.
                1 => (rng.next() % 4) as f32,
                // Constant with one outlier: MAD of zero.
                2 => {
                    if i == n / 3 {
                        9.0
                    } else {
                        1.0
                    }
                }
                // Integers on a trend.
                3 => (i / 3) as f32 + (rng.next() % 3) as f32,
                // Wide dynamic range.
                4 => (rng.unit() - 0.5) * 1e6,
                // Quantised sensor readings.
                _ => (60.0 + 5.0 * season.cos() + rng.unit() * 3.0).round() / 2.0,
            }
        })
        .collect()
}

#[test]
fn same_anomalies_as_the_crate() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut compared = 0;
    let mut flagged = 0;
    for case in 0..1500u64 {
        let period = 2 + (rng.next() % 30) as usize;
        let n = 2 * period + (rng.next() % 200) as usize;
        let max_anoms = [0.02, 0.1, 0.2, 0.49][(rng.next() % 4) as usize];
        let alpha = [0.001, 0.05, 0.3][(rng.next() % 3) as usize];
        let (direction, tail) = [
            (Direction::Both, Tail::Both),
            (Direction::Positive, Tail::Upper),
            (Direction::Negative, Tail::Lower),
        ][(case % 3) as usize]
            .clone();
        let values = series(&mut rng, case / 3, n, period);

        let expected = AnomalyDetectionParams::new()
            .max_anoms(max_anoms)
            .alpha(alpha)
            .direction(direction)
            .fit(&values, period)
            .unwrap();
        let mut actual = detect(&values, period, max_anoms, alpha, tail).unwrap();
        actual.sort_unstable();
        assert_eq!(
            actual,
            expected.anomalies(),
            "case {case}: n={n} period={period} max_anoms={max_anoms} alpha={alpha} {tail:?}"
        );
        compared += 1;
        flagged += actual.len();
    }
    // The comparison means something only if the series do have anomalies.
    assert_eq!(compared, 1500);
    assert!(flagged > 1000, "only {flagged} anomalies in all cases");
}

#[test]
fn same_anomalies_as_the_crate_on_live_sized_windows() {
    let mut rng = Rng(0xfeed_beef_cafe_f00d);
    for (n, period) in [(1024, 60), (4096, 24), (4096, 288)] {
        let values = series(&mut rng, 0, n, period);
        let expected = AnomalyDetectionParams::new().fit(&values, period).unwrap();
        let mut actual = detect(&values, period, 0.1, 0.05, Tail::Both).unwrap();
        actual.sort_unstable();
        assert_eq!(actual, expected.anomalies(), "n={n} period={period}");
        assert!(!actual.is_empty(), "n={n}: no anomalies to compare");
    }
}

/// The function's STL against `stlrs` (what the crate decomposes with), bit for bit: the
/// seasonal component of every shape, period and length, short and live-sized, where
/// ties, zero residuals (robustness weights of 0) and both subseries lengths occur.
#[test]
fn same_seasonal_component_as_stlrs_bit_for_bit() {
    let mut rng = Rng(0x0bad_cafe_dead_beef);
    let mut cases: Vec<(u64, usize, usize)> = (0..600u64)
        .map(|case| {
            let period = 2 + (rng.next() % 40) as usize;
            (case, period, 2 * period + (rng.next() % 300) as usize)
        })
        .collect();
    cases.extend([
        (0, 24, 1024),
        (5, 48, 1024),
        (1, 60, 1024),
        (0, 24, 4096),
        (3, 288, 4096),
    ]);
    for (case, period, n) in cases {
        let values = series(&mut rng, case, n, period);
        let expected = stlrs::params()
            .robust(true)
            .seasonal_length(n * 10 + 1)
            .fit(&values, period)
            .unwrap();
        let actual = stl::seasonal(&values, period, n * 10 + 1).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&actual),
            bits(expected.seasonal()),
            "case {case}: n={n} period={period}"
        );
    }
}

#[test]
fn stl_refuses_what_stlrs_refuses() {
    assert_eq!(
        stl::seasonal(&[1.0; 7], 4, 71),
        Err("series has less than two periods")
    );
    assert_eq!(
        stl::seasonal(&[1.0; 8], 1, 81),
        Err("period must be at least 2")
    );
}
