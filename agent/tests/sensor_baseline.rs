//! The air-quality baseline survives a restart, and a stale one (or one learnt with another
//! heater profile, one whose age cannot be told, or a corrupt file) starts a new burn-in
//! instead of being trusted.

use std::path::Path;
use std::sync::Arc;

use edge_agent::sensor::Sample;
use edge_agent::sensor::bme680::air_quality::{BaselineOrigin, Distrust};
use edge_agent::sensor::bme680::baseline::{BASELINE_FILE, BaselineStore};
use edge_agent::sensor::bme680::config::{AirQualityConfig, SensorConfig};
use edge_agent::sensor::bme680::sampler::{Sampler, SamplerEvent};
use edge_agent::sensor::clock::{ClockSync, SharedClock, VirtualClock};
use edge_agent::sensor::queue::sample_queue;
use edge_agent::sensor::simulator::{Calibration, Scenario, SimulatedBme680};

const HOUR_MS: i64 = 3_600_000;
const START_MS: i64 = 1_767_225_600_000;

/// One run of the agent: `samples` samples starting at `start_ms`, state in `state_dir`.
struct Run {
    samples: Vec<Sample>,
    origin: BaselineOrigin,
    baseline_ohm: Option<f32>,
    events: Vec<SamplerEvent>,
}

fn run(
    state_dir: &Path,
    start_ms: i64,
    samples: u64,
    change: impl FnOnce(&mut SensorConfig),
) -> Run {
    run_on(
        VirtualClock::starting_at(start_ms),
        state_dir,
        samples,
        change,
    )
}

/// One run on a given clock (a boot mark, an unsynchronised state).
fn run_on(
    clock: VirtualClock,
    state_dir: &Path,
    samples: u64,
    change: impl FnOnce(&mut SensorConfig),
) -> Run {
    let clock: SharedClock = Arc::new(clock);
    let chip = SimulatedBme680::new(Calibration::PIMORONI, Scenario::Clean, clock.clone());
    let mut config = SensorConfig {
        state_dir: state_dir.to_path_buf(),
        air_quality: AirQualityConfig {
            burn_in_secs: 120,
            baseline_max_age_hours: 24,
            ..AirQualityConfig::default()
        },
        ..SensorConfig::default()
    };
    change(&mut config);
    let (writer, reader) = sample_queue(samples as usize + 1).unwrap();
    let mut sampler = Sampler::new(config, chip, clock, writer).unwrap();
    let origin = sampler.estimator().origin();
    sampler.run_until(|stats| stats.samples >= samples);
    let baseline_ohm = sampler.estimator().baseline_ohm();
    let events = sampler
        .monitor()
        .events()
        .into_iter()
        .map(|e| e.event)
        .collect();
    let mut drained = Vec::new();
    reader.drain_into(&mut drained);
    Run {
        samples: drained,
        origin,
        baseline_ohm,
        events,
    }
}

#[test]
fn the_baseline_is_reused_after_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let first = run(state.path(), START_MS, 60, |_| {});
    assert_eq!(first.origin, BaselineOrigin::None);
    assert!(first.samples[0].burn_in);
    assert!(
        !first.samples[59].burn_in,
        "burn-in of 120 s is over after 3 minutes"
    );
    let learnt = first.baseline_ohm.expect("a baseline");
    let saved = BaselineStore::in_dir(state.path())
        .load()
        .unwrap()
        .expect("saved on stop");
    assert_eq!(saved.gas_baseline_ohm as f32, learnt);

    // The agent restarts an hour later: no burn-in, the same baseline.
    let second = run(state.path(), START_MS + HOUR_MS, 5, |_| {});
    assert!(
        matches!(second.origin, BaselineOrigin::Restored { .. }),
        "{:?}",
        second.origin
    );
    assert!(
        second.samples.iter().all(|s| !s.burn_in),
        "no burn-in after a restart"
    );
    assert!(
        !second
            .events
            .iter()
            .any(|e| matches!(e, SamplerEvent::BurnInCompleted { .. }))
    );
    let continued = second.baseline_ohm.unwrap();
    assert!(
        (continued / learnt - 1.0).abs() < 0.01,
        "{learnt} → {continued}"
    );
    // Same air, same baseline: the score picks up where it left off.
    let before = first.samples[59].air_quality;
    let after = second.samples[0].air_quality;
    assert!((before - after).abs() < 2.0, "{before} → {after}");
}

#[test]
fn a_stale_baseline_starts_a_new_burn_in() {
    let state = tempfile::tempdir().unwrap();
    run(state.path(), START_MS, 60, |_| {});
    let later = run(state.path(), START_MS + 30 * HOUR_MS, 5, |_| {});
    assert!(
        matches!(later.origin, BaselineOrigin::Stale { age } if age.as_secs() >= 29 * 3600),
        "{:?}",
        later.origin
    );
    assert!(
        later.samples.iter().all(|s| s.burn_in),
        "a sample during burn-in says so"
    );
    assert!(later.events.contains(&SamplerEvent::Baseline(later.origin)));
}

#[test]
fn a_baseline_saved_in_the_future_is_not_trusted() {
    // A Pi that ran with a clock a day ahead, then boots with the right time: the file's
    // age would be negative, so nothing can be said about it.
    let state = tempfile::tempdir().unwrap();
    run(state.path(), START_MS + 24 * HOUR_MS, 60, |_| {});
    let after = run(state.path(), START_MS, 5, |_| {});
    assert_eq!(
        after.origin,
        BaselineOrigin::Untrusted(Distrust::SavedInTheFuture)
    );
    assert!(after.samples.iter().all(|s| s.burn_in));
}

#[test]
fn a_baseline_saved_with_an_unsynchronised_clock_is_not_trusted() {
    let state = tempfile::tempdir().unwrap();
    run(state.path(), START_MS, 60, |_| {});
    let store = BaselineStore::in_dir(state.path());
    let mut file = store.load().unwrap().expect("saved");
    assert!(file.clock_synced, "the virtual clock is synchronised");
    file.clock_synced = false;
    store.save(&file).unwrap();
    let after = run(state.path(), START_MS + HOUR_MS, 5, |_| {});
    assert_eq!(
        after.origin,
        BaselineOrigin::Untrusted(Distrust::SavedUnsynchronised)
    );
    assert!(after.samples.iter().all(|s| s.burn_in));
}

#[test]
fn an_unsynchronised_pi_keeps_its_baseline_across_a_restart_within_one_boot() {
    // An offline Pi: the clock never synchronises. Within one boot the boot clock tells the
    // baseline's age; after a reboot nothing does.
    let unsynced = |start_ms: i64, boot_id: u128, since_boot_s: u64| {
        let clock = VirtualClock::starting_at(start_ms)
            .with_boot(boot_id, std::time::Duration::from_secs(since_boot_s));
        clock.set_sync(ClockSync::Unsynced);
        clock
    };
    let state = tempfile::tempdir().unwrap();
    let first = run_on(unsynced(START_MS, 1, 60), state.path(), 60, |_| {});
    assert!(first.baseline_ohm.is_some());
    // The agent restarts ten minutes after it stopped (60 samples at 3 s took 3 minutes);
    // the wall clock meanwhile went back a day.
    let again = run_on(
        unsynced(START_MS - 24 * HOUR_MS, 1, 60 + 180 + 600),
        state.path(),
        5,
        |_| {},
    );
    assert!(
        matches!(again.origin, BaselineOrigin::Restored { age } if (600..605).contains(&age.as_secs())),
        "{:?}",
        again.origin
    );
    assert!(again.samples.iter().all(|s| !s.burn_in));
    // After a reboot (another boot id) the unsynchronised save cannot be dated.
    let rebooted = run_on(unsynced(START_MS, 2, 30), state.path(), 5, |_| {});
    assert_eq!(
        rebooted.origin,
        BaselineOrigin::Untrusted(Distrust::SavedUnsynchronised)
    );
}

#[test]
fn a_baseline_learnt_with_another_heater_profile_is_not_reused() {
    let state = tempfile::tempdir().unwrap();
    run(state.path(), START_MS, 60, |_| {});
    let changed = run(state.path(), START_MS + HOUR_MS, 5, |config| {
        config.heater_temperature_c = 280;
    });
    assert_eq!(changed.origin, BaselineOrigin::ProfileChanged);
    assert!(changed.samples.iter().all(|s| s.burn_in));
}

#[test]
fn a_corrupt_baseline_file_means_burn_in_not_a_crash() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(
        state.path().join(BASELINE_FILE),
        "{\"version\": 1, \"gas_baseline",
    )
    .unwrap();
    let fresh = run(state.path(), START_MS, 60, |_| {});
    assert_eq!(fresh.origin, BaselineOrigin::None);
    assert!(fresh.samples[0].burn_in);
    // The new burn-in overwrote the corrupt file with a good one.
    assert!(
        BaselineStore::in_dir(state.path())
            .load()
            .unwrap()
            .is_some()
    );
}

#[test]
fn the_adapted_baseline_is_saved_periodically_not_per_sample() {
    let state = tempfile::tempdir().unwrap();
    let clock: SharedClock = Arc::new(VirtualClock::starting_at(START_MS));
    let chip = SimulatedBme680::new(Calibration::PIMORONI, Scenario::Clean, clock.clone());
    let config = SensorConfig {
        state_dir: state.path().to_path_buf(),
        air_quality: AirQualityConfig {
            burn_in_secs: 60,
            baseline_save_secs: 600,
            ..AirQualityConfig::default()
        },
        ..SensorConfig::default()
    };
    let (writer, _reader) = sample_queue(16).unwrap();
    let mut sampler = Sampler::new(config, chip, clock, writer).unwrap();
    // One hour at 3 s: 1200 samples; one save at the end of burn-in, then one per 10 min.
    sampler.run_until(|stats| stats.samples >= 1200);
    let saves = sampler.monitor().stats().baseline_saves;
    assert!((6..=8).contains(&saves), "{saves} saves in an hour");
}
