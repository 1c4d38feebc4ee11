//! Each scenario through the whole sensor stage (simulated chip → real driver → air quality →
//! sampler) on virtual time, checked for the shape it should have. Where it shows an
//! improvement over Pimoroni's method, the test computes Pimoroni's score from the same
//! samples and compares.

use std::sync::Arc;

use edge_agent::sensor::Sample;
use edge_agent::sensor::bme680::air_quality::humidity_comfort;
use edge_agent::sensor::bme680::config::SensorConfig;
use edge_agent::sensor::bme680::datasheet::absolute_humidity_g_m3;
use edge_agent::sensor::bme680::sampler::Sampler;
use edge_agent::sensor::clock::{SharedClock, VirtualClock};
use edge_agent::sensor::queue::sample_queue;
use edge_agent::sensor::simulator::{Calibration, Environment, Scenario, SimulatedBme680};

/// Runs `scenario` for `minutes` at `period_s` and returns every sample.
fn run(scenario: Scenario, minutes: u64, period_s: u64) -> (Vec<Sample>, SimulatedBme680) {
    let state = tempfile::tempdir().unwrap();
    let clock: SharedClock = Arc::new(VirtualClock::default());
    let chip = SimulatedBme680::new(Calibration::PIMORONI, scenario, clock.clone());
    let config = SensorConfig {
        state_dir: state.path().to_path_buf(),
        sample_period_ms: period_s * 1000,
        ..SensorConfig::default()
    };
    let count = minutes * 60 / period_s;
    let (writer, reader) = sample_queue(count as usize + 1).unwrap();
    let mut sampler = Sampler::new(config, chip.clone(), clock, writer).unwrap();
    sampler.run_until(|stats| stats.samples >= count);
    let mut samples = Vec::new();
    reader.drain_into(&mut samples);
    assert_eq!(samples.len() as u64, count);
    (samples, chip)
}

fn minutes_since_start(samples: &[Sample], sample: &Sample) -> f64 {
    (sample.timestamp - samples[0].timestamp) as f64 / 60_000.0
}

/// Mean of `value` over samples taken in [from, to) minutes.
fn mean(samples: &[Sample], from: f64, to: f64, value: impl Fn(&Sample) -> f32) -> f32 {
    let picked: Vec<f32> = samples
        .iter()
        .filter(|s| (from..to).contains(&minutes_since_start(samples, s)))
        .map(value)
        .collect();
    assert!(!picked.is_empty(), "no samples in [{from}, {to}) min");
    picked.iter().sum::<f32>() / picked.len() as f32
}

/// The gas part of our score (what is left after the humidity part).
fn gas_part(sample: &Sample) -> f32 {
    sample.air_quality - 25.0 * humidity_comfort(sample.humidity)
}

/// Pimoroni's gas part against a frozen baseline: 75 × min(R / baseline, 1).
fn pimoroni_gas_part(sample: &Sample, frozen_baseline: f32) -> f32 {
    75.0 * (sample.gas_resistance / frozen_baseline).min(1.0)
}

/// Pimoroni's baseline: the mean of the last 50 burn-in readings.
fn pimoroni_baseline(samples: &[Sample]) -> f32 {
    let burn_in: Vec<f32> = samples
        .iter()
        .filter(|s| s.burn_in)
        .map(|s| s.gas_resistance)
        .collect();
    let tail = &burn_in[burn_in.len().saturating_sub(50)..];
    tail.iter().sum::<f32>() / tail.len() as f32
}

#[test]
fn clean_air_burns_in_for_five_minutes_then_scores_steadily() {
    let (samples, _) = run(Scenario::Clean, 30, 3);
    let burning: Vec<bool> = samples.iter().map(|s| s.burn_in).collect();
    assert!(
        burning[..100].iter().all(|b| *b),
        "the first 300 s are burn-in"
    );
    assert!(burning[100..].iter().all(|b| !*b), "and only those");
    assert!(samples.iter().all(|s| s.gas_valid && s.heater_stable));
    let scores: Vec<f32> = samples[100..].iter().map(|s| s.air_quality).collect();
    let low = scores.iter().cloned().fold(f32::MAX, f32::min);
    let high = scores.iter().cloned().fold(f32::MIN, f32::max);
    // 45 %RH (22.9 points) + air at its baseline (64.3 points) = 87.2.
    assert!(low > 84.0 && high < 91.0, "{low}..{high}");
}

#[test]
fn a_cooking_spike_lowers_the_score_and_it_recovers() {
    let (samples, _) = run(Scenario::Cooking, 150, 3);
    let before = mean(&samples, 6.0, 9.5, |s| s.air_quality);
    let during = mean(&samples, 18.0, 28.0, |s| s.air_quality);
    let after = mean(&samples, 140.0, 150.0, |s| s.air_quality);
    let gas_before = mean(&samples, 6.0, 9.5, |s| s.gas_resistance);
    let gas_during = mean(&samples, 18.0, 28.0, |s| s.gas_resistance);
    println!("cooking: score {before:.1} → {during:.1} → {after:.1}");
    assert!(gas_during < 0.3 * gas_before);
    assert!(before - during > 40.0, "{before} → {during}");
    assert!((after - before).abs() < 5.0, "{before} → {after}");
}

#[test]
fn an_opened_window_raises_gas_resistance_and_our_gas_part_where_pimoroni_saturates() {
    let (samples, _) = run(Scenario::Window, 30, 3);
    let gas_before = mean(&samples, 6.0, 9.5, |s| s.gas_resistance);
    let gas_open = mean(&samples, 20.0, 25.0, |s| s.gas_resistance);
    assert!(gas_open > 1.15 * gas_before, "{gas_before} → {gas_open}");

    let ours_before = mean(&samples, 6.0, 9.5, gas_part);
    let ours_open = mean(&samples, 20.0, 25.0, gas_part);
    let frozen = pimoroni_baseline(&samples);
    let theirs_before = mean(&samples, 6.0, 9.5, |s| pimoroni_gas_part(s, frozen));
    let theirs_open = mean(&samples, 20.0, 25.0, |s| pimoroni_gas_part(s, frozen));
    println!(
        "window gas part: ours {ours_before:.1} → {ours_open:.1}, Pimoroni {theirs_before:.1} → {theirs_open:.1}"
    );
    assert!(ours_open - ours_before > 5.0, "fresher air is visible");
    assert!(
        theirs_open - theirs_before < 2.0,
        "Pimoroni's gas part is pinned near 75"
    );
}

#[test]
fn slow_sensor_drift_is_followed_by_the_baseline() {
    // Three days at one sample a minute; the sensor loses 7 % of resistance a day.
    let (samples, _) = run(Scenario::Drift, 3 * 24 * 60, 60);
    let frozen = pimoroni_baseline(&samples);
    let day = 24.0 * 60.0;
    let ours_start = mean(&samples, 0.25 * day, 0.5 * day, gas_part);
    let ours_end = mean(&samples, 2.75 * day, 3.0 * day, gas_part);
    let theirs_start = mean(&samples, 0.25 * day, 0.5 * day, |s| {
        pimoroni_gas_part(s, frozen)
    });
    let theirs_end = mean(&samples, 2.75 * day, 3.0 * day, |s| {
        pimoroni_gas_part(s, frozen)
    });
    println!(
        "drift gas part: ours {ours_start:.1} → {ours_end:.1}, frozen baseline {theirs_start:.1} → {theirs_end:.1}"
    );
    let our_drop = ours_start - ours_end;
    let their_drop = theirs_start - theirs_end;
    assert!(
        their_drop > 10.0,
        "a frozen baseline reads sensor ageing as worse air"
    );
    assert!(
        our_drop < 0.5 * their_drop,
        "ours {our_drop} vs frozen {their_drop}"
    );
}

#[test]
fn a_cold_start_warms_up_and_the_baseline_catches_up() {
    let (samples, _) = run(Scenario::ColdStart, 150, 3);
    let gas_first_minute = mean(&samples, 0.0, 1.0, |s| s.gas_resistance);
    let gas_settled = mean(&samples, 30.0, 35.0, |s| s.gas_resistance);
    assert!(
        gas_first_minute < 0.35 * gas_settled,
        "{gas_first_minute} vs {gas_settled}"
    );
    assert!(
        samples
            .iter()
            .all(|s| s.gas_valid && s.gas_resistance > 0.0)
    );
    assert!(samples[..100].iter().all(|s| s.burn_in));

    // Burn-in ended while the sensor was still warming, so the first baseline is low and
    // the score high; the upward adaptation brings it back to the clean-air value.
    let frozen = pimoroni_baseline(&samples);
    let ours_late = mean(&samples, 140.0, 150.0, |s| s.air_quality);
    let theirs_late = mean(&samples, 140.0, 150.0, |s| {
        25.0 * humidity_comfort(s.humidity) + pimoroni_gas_part(s, frozen)
    });
    println!("cold start after 2.5 h: ours {ours_late:.1}, frozen baseline {theirs_late:.1}");
    assert!((ours_late - 87.2).abs() < 4.0, "{ours_late}");
    assert!(
        frozen < 0.8 * gas_settled,
        "Pimoroni's baseline froze during warm-up"
    );
}

#[test]
fn humidity_alone_does_not_move_the_gas_part() {
    let state = tempfile::tempdir().unwrap();
    let clock: SharedClock = Arc::new(VirtualClock::default());
    let dry = Environment {
        humidity_pct: 45.0,
        ..Environment::CLEAN_INDOOR
    };
    let chip = SimulatedBme680::new(Calibration::PIMORONI, Scenario::Fixed(dry), clock.clone());
    let config = SensorConfig {
        state_dir: state.path().to_path_buf(),
        ..SensorConfig::default()
    };
    let (writer, reader) = sample_queue(1024).unwrap();
    let mut sampler = Sampler::new(config, chip.clone(), clock, writer).unwrap();
    sampler.run_until(|stats| stats.samples >= 150);

    // Same air, more water vapour: the resistance falls by the documented cross-effect.
    let humid_pct = 65.0;
    let extra_vapour = absolute_humidity_g_m3(23.0, humid_pct) - absolute_humidity_g_m3(23.0, 45.0);
    let humid = Environment {
        humidity_pct: humid_pct,
        gas_ohm: dry.gas_ohm * (-0.03 * extra_vapour).exp(),
        ..dry
    };
    chip.set_environment(humid);
    sampler.run_until(|stats| stats.samples >= 160);

    let mut samples = Vec::new();
    reader.drain_into(&mut samples);
    let (dry_sample, humid_sample) = (&samples[149], &samples[159]);
    let frozen = pimoroni_baseline(&samples);
    let ours = gas_part(humid_sample) - gas_part(dry_sample);
    let theirs = pimoroni_gas_part(humid_sample, frozen) - pimoroni_gas_part(dry_sample, frozen);
    println!("+20 %RH: our gas part {ours:+.2}, Pimoroni's {theirs:+.2}");
    assert!(humid_sample.gas_resistance < 0.9 * dry_sample.gas_resistance);
    assert!(ours.abs() < 0.5, "{ours}");
    assert!(theirs < -5.0, "{theirs}");
}
