//! Time and identity on a Pi without a real-time clock, on the simulated chip and a virtual
//! clock whose wall time the tests step: timestamps within a run never go back and steps
//! are counted; samples before the first sync are marked; burn-in runs on monotonic time;
//! two devices on default settings, and restarts on a repeated clock, never share a
//! document id; a skipped channel is `null` and a skipped temperature is refused.

use std::collections::BTreeSet;
use std::sync::Arc;

use edge_agent::record::{Judgement, VerdictRecord};
use edge_agent::sensor::bme680::config::{AirQualityConfig, Oversampling, SensorConfig};
use edge_agent::sensor::bme680::sampler::{Sampler, SamplerEvent, SamplerStats};
use edge_agent::sensor::clock::{ClockSync, SharedClock, VirtualClock};
use edge_agent::sensor::queue::{SampleReader, sample_queue};
use edge_agent::sensor::simulator::{Calibration, Scenario, SimulatedBme680};
use edge_agent::sensor::timeline::ClockEvent;
use edge_agent::sensor::{Sample, SensorError};

const START_MS: i64 = 1_767_225_600_000;
const HOUR_MS: i64 = 3_600_000;

struct Device {
    sampler: Sampler<SimulatedBme680>,
    reader: SampleReader,
    clock: VirtualClock,
    _state: tempfile::TempDir,
}

fn device(start_ms: i64, change: impl FnOnce(&mut SensorConfig)) -> Device {
    device_then(start_ms, change, |sampler| sampler)
}

fn device_then(
    start_ms: i64,
    change: impl FnOnce(&mut SensorConfig),
    finish: impl FnOnce(Sampler<SimulatedBme680>) -> Sampler<SimulatedBme680>,
) -> Device {
    let state = tempfile::tempdir().unwrap();
    let clock = VirtualClock::starting_at(start_ms);
    let shared: SharedClock = Arc::new(clock.clone());
    let chip = SimulatedBme680::new(Calibration::PIMORONI, Scenario::Clean, shared.clone());
    let mut config = SensorConfig {
        state_dir: state.path().to_path_buf(),
        air_quality: AirQualityConfig {
            burn_in_secs: 60,
            ..AirQualityConfig::default()
        },
        ..SensorConfig::default()
    };
    change(&mut config);
    let (writer, reader) = sample_queue(4096).unwrap();
    Device {
        sampler: finish(Sampler::new(config, chip, shared, writer).unwrap()),
        reader,
        clock,
        _state: state,
    }
}

impl Device {
    fn run_samples(&mut self, more: u64) -> SamplerStats {
        let target = self.sampler.monitor().stats().samples + more;
        self.sampler.run_until(|stats| stats.samples >= target);
        self.sampler.monitor().stats()
    }

    fn drain(&self) -> Vec<Sample> {
        let mut samples = Vec::new();
        self.reader.drain_into(&mut samples);
        samples
    }

    fn clock_events(&self) -> Vec<ClockEvent> {
        self.sampler
            .monitor()
            .events()
            .into_iter()
            .filter_map(|timed| match timed.event {
                SamplerEvent::Clock(event) => Some(event),
                _ => None,
            })
            .collect()
    }
}

fn document_ids(host: &str, samples: &[Sample]) -> Vec<String> {
    let judgement = Judgement {
        host_id: host,
        sensor_id: "bme680",
        function_sha256: "ab",
        window: (0, 0),
    };
    samples
        .iter()
        .map(|s| VerdictRecord::new(s, &judgement, Err("not judged".into())).document_id())
        .collect()
}

fn assert_never_backwards(samples: &[Sample]) {
    for pair in samples.windows(2) {
        assert!(
            pair[1].timestamp >= pair[0].timestamp,
            "seq {} at {} after seq {} at {}",
            pair[1].seq,
            pair[1].timestamp,
            pair[0].seq,
            pair[0].timestamp
        );
    }
}

#[test]
fn a_wall_clock_stepped_back_and_forward_mid_run_never_sends_time_backwards() {
    let mut dev = device(START_MS, |_| {});
    dev.run_samples(10);
    dev.clock.step_wall(-HOUR_MS);
    dev.run_samples(10);
    dev.clock.step_wall(2 * HOUR_MS);
    let stats = dev.run_samples(10);
    let samples = dev.drain();
    assert_eq!(samples.len(), 30);
    assert_never_backwards(&samples);
    assert_eq!((stats.clock_steps_back, stats.clock_steps_forward), (1, 1));
    // After the step back, stamps run on from the last one at the sample period, marked.
    assert_eq!(samples[10].timestamp - samples[9].timestamp, 3000);
    assert!(samples[..10].iter().all(|s| s.clock_synced));
    assert!(samples[10..20].iter().all(|s| !s.clock_synced));
    assert_eq!(stats.unsynced_samples, 10);
    // The forward step lands past the held line: the wall clock leads again.
    assert!(samples[20].clock_synced);
    assert_eq!(
        samples[20].timestamp - samples[19].timestamp,
        HOUR_MS + 3000
    );
    let events = dev.clock_events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(events[0], ClockEvent::SteppedBack { by_ms } if by_ms == HOUR_MS));
    assert!(matches!(events[1], ClockEvent::SteppedForward { by_ms } if by_ms == 2 * HOUR_MS));
    // Sequence numbers count on regardless.
    let seqs: Vec<u64> = samples.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, (0..30).collect::<Vec<_>>());
}

#[test]
fn a_step_back_neither_stretches_nor_a_step_forward_ends_burn_in() {
    let burn_in_ends = |step: i64| {
        let mut dev = device(START_MS, |_| {});
        dev.run_samples(5);
        dev.clock.step_wall(step);
        dev.run_samples(40);
        dev.drain()
            .iter()
            .position(|s| !s.burn_in)
            .expect("burn-in of 60 s ends within 45 samples at 3 s")
    };
    let steady = burn_in_ends(0);
    assert_eq!(burn_in_ends(-24 * HOUR_MS), steady);
    assert_eq!(burn_in_ends(24 * HOUR_MS), steady);
}

#[test]
fn samples_before_the_first_sync_are_marked_and_the_sync_is_seen() {
    let mut dev = device(START_MS, |_| {});
    dev.clock.set_sync(ClockSync::Unsynced);
    dev.run_samples(5);
    // NTP syncs and steps the clock forward (a Pi that booted on last shutdown's time).
    dev.clock.set_sync(ClockSync::Synced);
    dev.clock.step_wall(6 * HOUR_MS);
    let stats = dev.run_samples(5);
    let samples = dev.drain();
    assert!(samples[..5].iter().all(|s| !s.clock_synced));
    assert!(samples[5..].iter().all(|s| s.clock_synced));
    assert_never_backwards(&samples);
    assert_eq!(stats.unsynced_samples, 5);
    assert_eq!(stats.clock_steps_forward, 1);
    // The step wins over the first sync when both happen between two samples.
    assert_eq!(
        dev.clock_events(),
        [ClockEvent::SteppedForward { by_ms: 6 * HOUR_MS }]
    );
}

#[test]
fn two_devices_on_default_settings_never_share_a_document_id() {
    // Same host name, same sensor id, same clock, same scenario: only the run id differs.
    let mut a = device(START_MS, |_| {});
    let mut b = device(START_MS, |_| {});
    a.run_samples(50);
    b.run_samples(50);
    let (from_a, from_b) = (a.drain(), b.drain());
    let stamps = |s: &[Sample]| s.iter().map(|s| s.timestamp).collect::<Vec<_>>();
    assert_eq!(
        stamps(&from_a),
        stamps(&from_b),
        "the old <sensor>-<ms> id would collide"
    );
    let ids_a: BTreeSet<String> = document_ids("pi", &from_a).into_iter().collect();
    let ids_b: BTreeSet<String> = document_ids("pi", &from_b).into_iter().collect();
    assert_eq!((ids_a.len(), ids_b.len()), (50, 50));
    assert!(ids_a.is_disjoint(&ids_b));
    assert_ne!(a.sampler.monitor().run_id(), b.sampler.monitor().run_id());
}

#[test]
fn restarts_on_a_repeated_clock_never_share_a_document_id_and_a_sample_keeps_its_own() {
    // Six boots that each restore the same time (fake-hwclock), as in the issue.
    let mut seen = BTreeSet::new();
    for _ in 0..6 {
        let mut dev = device(START_MS, |_| {});
        dev.run_samples(20);
        let samples = dev.drain();
        let ids = document_ids("pi", &samples);
        // The same sample, turned into a record again (a retry, the spool after a crash),
        // keeps its id.
        assert_eq!(ids, document_ids("pi", &samples));
        for id in ids {
            assert!(seen.insert(id.clone()), "{id} twice");
        }
    }
    assert_eq!(seen.len(), 120);
    // And one sensor id on two hosts.
    let mut dev = device(START_MS, |_| {});
    dev.run_samples(3);
    let samples = dev.drain();
    let on_one: BTreeSet<_> = document_ids("pi-a", &samples).into_iter().collect();
    let on_two: BTreeSet<_> = document_ids("pi-b", &samples).into_iter().collect();
    assert!(on_one.is_disjoint(&on_two));
}

#[test]
fn a_skipped_channel_is_null_in_the_record() {
    let mut dev = device(START_MS, |config| {
        config.humidity_oversampling = Oversampling::Skip;
        config.pressure_oversampling = Oversampling::Skip;
    });
    dev.run_samples(3);
    let samples = dev.drain();
    let judgement = Judgement {
        host_id: "pi",
        sensor_id: "bme680",
        function_sha256: "ab",
        window: (0, 0),
    };
    for sample in &samples {
        assert!(
            sample.humidity.is_nan() && sample.pressure.is_nan(),
            "{sample:?}"
        );
        assert!(
            (sample.temperature - 23.0).abs() < 1.0,
            "temperature is still measured"
        );
        assert!(sample.air_quality.is_finite());
        let record = VerdictRecord::new(sample, &judgement, Err("x".into()));
        let json = serde_json::to_value(&record).unwrap();
        assert!(json["humidity"].is_null(), "{json}");
        assert!(json["pressure"].is_null(), "{json}");
        assert!(json["temperature"].is_number());
    }
    // The shipper's template maps both as float, which indexes `null` as "no value".
    let template = edge_agent::ship::template_body("edge-agent", false);
    let properties = &template["template"]["mappings"]["properties"];
    assert_eq!(properties["humidity"]["type"], "float");
    assert_eq!(properties["pressure"]["type"], "float");
    // The identity is mapped, not left to dynamic mapping (which would make it text).
    assert_eq!(properties["run_id"]["type"], "keyword");
    assert_eq!(properties["seq"]["type"], "long");
    assert_eq!(properties["clock_synced"]["type"], "boolean");
}

#[test]
fn a_skipped_temperature_is_refused_naming_the_key() {
    let state = tempfile::tempdir().unwrap();
    let clock: SharedClock = Arc::new(VirtualClock::default());
    let chip = SimulatedBme680::new(Calibration::PIMORONI, Scenario::Clean, clock.clone());
    let config = SensorConfig {
        state_dir: state.path().to_path_buf(),
        temperature_oversampling: Oversampling::Skip,
        ..SensorConfig::default()
    };
    let (writer, _reader) = sample_queue(4).unwrap();
    let error = Sampler::new(config, chip, clock, writer)
        .err()
        .expect("refused");
    assert!(matches!(error, SensorError::Config(_)), "{error:?}");
    assert!(
        error.to_string().contains("temperature_oversampling"),
        "{error}"
    );
}

#[test]
fn a_run_id_given_by_the_binary_is_the_one_every_sample_carries() {
    let given = edge_agent::sensor::RunId::from_raw(0x0123_4567_89ab_cdef);
    let mut monitor = None;
    let mut dev = device_then(
        START_MS,
        |_| {},
        |sampler| {
            monitor = Some(sampler.monitor());
            sampler.with_run_id(given)
        },
    );
    let monitor = monitor.unwrap();
    assert_eq!(
        monitor.run_id(),
        given,
        "monitors handed out before see it too"
    );
    dev.run_samples(3);
    assert!(dev.drain().iter().all(|s| s.run_id == given));
}
