//! The sampler on the simulated chip and a virtual clock: each fault is survived with the
//! expected counters and exactly one log line per change of state; the schedule does not
//! drift; a stalled consumer costs the oldest samples, counted; the thread survives a driver
//! panic.

use std::sync::{Arc, Mutex, Once};
use std::thread::ThreadId;
use std::time::Duration;

use edge_agent::sensor::bme680::config::{AirQualityConfig, SensorConfig};
use edge_agent::sensor::bme680::error::FaultKind;
use edge_agent::sensor::bme680::sampler::{Sampler, SamplerEvent, SamplerStats, spawn};
use edge_agent::sensor::clock::{Clock, SharedClock, VirtualClock};
use edge_agent::sensor::queue::{SampleReader, sample_queue};
use edge_agent::sensor::simulator::{Calibration, Fault, Scenario, SimulatedBme680};
use edge_agent::sensor::{Sample, SensorSource, start_sampler};

// ---- a logger that keeps records per thread, so parallel tests do not see each other ----

struct Captured {
    thread: ThreadId,
    level: log::Level,
    message: String,
}

struct CaptureLogger {
    records: Mutex<Vec<Captured>>,
}

impl log::Log for CaptureLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        if !record.target().starts_with("edge_agent::sensor") {
            return;
        }
        self.records.lock().unwrap().push(Captured {
            thread: std::thread::current().id(),
            level: record.level(),
            message: record.args().to_string(),
        });
    }
    fn flush(&self) {}
}

static LOGGER: CaptureLogger = CaptureLogger {
    records: Mutex::new(Vec::new()),
};

fn install_logger() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::set_logger(&LOGGER).unwrap();
        log::set_max_level(log::LevelFilter::Debug);
    });
}

/// (level, message) of the records this thread logged.
fn my_logs() -> Vec<(log::Level, String)> {
    let me = std::thread::current().id();
    LOGGER
        .records
        .lock()
        .unwrap()
        .iter()
        .filter(|record| record.thread == me)
        .map(|record| (record.level, record.message.clone()))
        .collect()
}

fn count_logs(level: log::Level, containing: &str) -> usize {
    my_logs()
        .iter()
        .filter(|(l, message)| *l == level && message.contains(containing))
        .count()
}

// ---- the rig ----

struct Rig {
    sampler: Sampler<SimulatedBme680>,
    chip: SimulatedBme680,
    reader: SampleReader,
    clock: VirtualClock,
    _state: tempfile::TempDir,
}

fn rig_with(scenario: Scenario, capacity: usize, change: impl FnOnce(&mut SensorConfig)) -> Rig {
    install_logger();
    let state = tempfile::tempdir().unwrap();
    let clock = VirtualClock::default();
    let shared: SharedClock = Arc::new(clock.clone());
    let chip = SimulatedBme680::new(Calibration::PIMORONI, scenario, shared.clone());
    let mut config = SensorConfig {
        state_dir: state.path().to_path_buf(),
        air_quality: AirQualityConfig {
            burn_in_secs: 60,
            ..AirQualityConfig::default()
        },
        ..SensorConfig::default()
    };
    change(&mut config);
    let (writer, reader) = sample_queue(capacity).unwrap();
    let sampler = Sampler::new(config, chip.clone(), shared, writer).unwrap();
    Rig {
        sampler,
        chip,
        reader,
        clock,
        _state: state,
    }
}

fn rig(scenario: Scenario) -> Rig {
    rig_with(scenario, 4096, |_| {})
}

impl Rig {
    fn run_until(&mut self, done: impl FnMut(&SamplerStats) -> bool) -> SamplerStats {
        self.sampler.run_until(done);
        self.sampler.monitor().stats()
    }

    fn run_samples(&mut self, more: u64) -> SamplerStats {
        let target = self.sampler.monitor().stats().samples + more;
        self.run_until(|stats| stats.samples >= target)
    }

    fn drain(&self) -> Vec<Sample> {
        let mut samples = Vec::new();
        self.reader.drain_into(&mut samples);
        samples
    }

    fn events(&self) -> Vec<SamplerEvent> {
        self.sampler
            .monitor()
            .events()
            .into_iter()
            .map(|timed| timed.event)
            .collect()
    }

    fn faulted_events(&self) -> Vec<FaultKind> {
        self.events()
            .into_iter()
            .filter_map(|event| match event {
                SamplerEvent::Faulted { kind, .. } => Some(kind),
                _ => None,
            })
            .collect()
    }
}

// ---- faults ----

#[test]
fn bus_errors_are_retried_with_backoff_logged_once_and_counted() {
    let mut rig = rig(Scenario::Clean);
    rig.run_samples(5);
    rig.chip.inject(Fault::BusError { transactions: 5 });
    let stats = rig.run_samples(3);
    // Three failed reads, the driver dropped, two failed re-opens, then a good re-init.
    assert_eq!(stats.bus_errors, 5);
    assert_eq!(stats.failures, 5);
    assert_eq!(stats.reinits, 1);
    assert_eq!(stats.consecutive_failures, 0);
    // Backoff 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s pushed the recovery past one 3 s slot.
    assert_eq!(stats.skipped_periods, 1);
    assert_eq!(rig.faulted_events(), [FaultKind::Bus]);
    assert!(
        rig.events()
            .contains(&SamplerEvent::Recovered { failed_tries: 5 })
    );
    assert_eq!(
        count_logs(log::Level::Warn, "BME680 fault"),
        1,
        "{:?}",
        my_logs()
    );
    assert_eq!(count_logs(log::Level::Info, "recovered"), 1);
    assert_eq!(
        count_logs(log::Level::Debug, "still failing"),
        4,
        "the other tries at debug"
    );
}

#[test]
fn nacks_are_survived_and_each_change_of_state_logged_once() {
    let mut rig = rig(Scenario::Clean);
    rig.run_samples(2);
    rig.chip.inject(Fault::Nack { transactions: 4 });
    let stats = rig.run_samples(2);
    assert_eq!(stats.failures, 4);
    assert_eq!(stats.bus_errors, 3, "NACK in the middle of a measurement");
    assert_eq!(
        stats.not_found, 1,
        "NACK while probing: nobody at either address"
    );
    assert_eq!(rig.faulted_events(), [FaultKind::Bus, FaultKind::NotFound]);
    assert_eq!(count_logs(log::Level::Warn, "BME680 fault"), 2);
}

/// What /health and the status line say is the failure now, not the commonest so far: a
/// bus that starts failing otherwise after many "not found" says so at its first failure.
#[test]
fn the_sensor_state_names_the_latest_failure_not_the_commonest() {
    let mut rig = rig(Scenario::Clean);
    rig.chip.inject(Fault::WrongChipId {
        id: 0x55,
        reads: 1000,
    });
    let stats = rig.run_until(|stats| stats.not_found >= 6);
    let state = stats.failing().expect("failing");
    assert!(state.contains("no BME680 answers"), "{state}");
    rig.chip.inject(Fault::BusError { transactions: 3 });
    let stats = rig.run_until(|stats| stats.bus_errors >= 1);
    assert!(stats.not_found > stats.bus_errors, "{stats:?}");
    assert_eq!(stats.last_fault, Some(FaultKind::Bus));
    let state = stats.failing().expect("still failing");
    assert!(state.contains("the bus fails"), "{state}");
    assert!(
        state.starts_with(&format!(
            "not answering: {} reads failed in a row",
            stats.consecutive_failures
        )),
        "{state}"
    );
}

#[test]
fn wrong_chip_id_at_start_is_retried_until_the_chip_answers() {
    let mut rig = rig(Scenario::Clean);
    rig.chip.inject(Fault::WrongChipId { id: 0x55, reads: 3 });
    let stats = rig.run_samples(2);
    assert_eq!(stats.not_found, 3);
    assert_eq!(stats.failures, 3);
    assert_eq!(
        stats.reinits, 0,
        "the first successful open is an init, not a re-init"
    );
    assert_eq!(rig.faulted_events(), [FaultKind::NotFound]);
    assert_eq!(count_logs(log::Level::Warn, "unexpected chip id 0x55"), 1);
}

#[test]
fn data_never_ready_is_counted_without_reinit_below_the_threshold() {
    let mut rig = rig(Scenario::Clean);
    rig.run_samples(2);
    rig.chip.inject(Fault::DataNeverReady { measurements: 2 });
    let stats = rig.run_samples(2);
    assert_eq!(stats.no_data, 2);
    assert_eq!(stats.reinits, 0);
    assert_eq!(count_logs(log::Level::Warn, "no new data"), 1);
}

#[test]
fn stale_data_three_times_triggers_a_reinit() {
    let mut rig = rig(Scenario::Clean);
    rig.run_samples(2);
    rig.chip.inject(Fault::StaleData { measurements: 3 });
    let stats = rig.run_samples(2);
    assert_eq!(stats.no_data, 3);
    assert_eq!(stats.reinits, 1);
    let fresh: Vec<i64> = rig.drain().iter().map(|s| s.timestamp).collect();
    assert_eq!(fresh.len(), 4, "no stale reading was published");
}

#[test]
fn a_driver_panic_on_garbage_mode_bits_is_survived() {
    let mut rig = rig(Scenario::Clean);
    rig.run_samples(2);
    rig.chip.inject(Fault::GarbageModeBits { reads: 1 });
    let stats = rig.run_samples(2);
    assert_eq!(stats.driver_panics, 1);
    assert_eq!(stats.reinits, 1, "a panicked driver is never reused");
    assert_eq!(rig.faulted_events(), [FaultKind::DriverPanic]);
    assert_eq!(count_logs(log::Level::Warn, "driver panic"), 1);
}

#[test]
fn a_chip_stuck_in_forced_mode_is_cut_off_and_reinitialised() {
    let mut rig = rig(Scenario::Clean);
    rig.run_samples(2);
    rig.chip.inject(Fault::ModeStuckForced { reads: 150 });
    let stats = rig.run_until(|stats| stats.samples >= 4 || stats.failures >= 20);
    assert!(stats.samples >= 4, "recovered: {stats:?}");
    assert!(stats.runaways >= 1);
    assert!(stats.reinits >= 1);
    assert_eq!(count_logs(log::Level::Warn, "driver runaway"), 1);
}

#[test]
fn a_fault_that_never_ends_is_logged_once_however_many_tries() {
    let mut rig = rig(Scenario::Clean);
    rig.run_samples(2);
    let logged_before = my_logs()
        .iter()
        .filter(|(level, _)| *level <= log::Level::Info)
        .count();
    rig.chip.inject(Fault::DataNeverReady {
        measurements: u32::MAX,
    });
    let stats = rig.run_until(|stats| stats.failures >= 40);
    assert_eq!(stats.no_data, 40);
    assert!(
        stats.reinits >= 10,
        "re-initialised every 3 failures: {stats:?}"
    );
    let logged_since: Vec<(log::Level, String)> = my_logs()
        .into_iter()
        .filter(|(level, _)| *level <= log::Level::Info)
        .skip(logged_before)
        .collect();
    assert_eq!(logged_since.len(), 1, "{logged_since:?}");
    assert!(logged_since[0].1.contains("no new data"));
}

// ---- schedule and buffer ----

#[test]
fn the_schedule_is_drift_free() {
    let mut rig = rig(Scenario::Clean);
    rig.run_samples(50);
    let samples = rig.drain();
    let start = samples[0].timestamp;
    for (k, sample) in samples.iter().enumerate() {
        // Each conversion takes ~190 ms of (virtual) time; it must not accumulate.
        assert_eq!(sample.timestamp - start, 3000 * k as i64, "sample {k}");
    }
    assert_eq!(rig.sampler.monitor().stats().skipped_periods, 0);
}

#[test]
fn the_schedule_realigns_after_a_fault() {
    let mut rig = rig(Scenario::Clean);
    rig.run_samples(3);
    rig.chip.inject(Fault::BusError { transactions: 6 });
    rig.run_samples(5);
    let samples = rig.drain();
    let start = samples[0].timestamp;
    let off_grid = samples
        .iter()
        .filter(|sample| (sample.timestamp - start) % 3000 != 0)
        .count();
    assert_eq!(off_grid, 1, "only the recovery sample is off the grid");
    assert_eq!((samples[7].timestamp - start) % 3000, 0);
}

#[test]
fn a_stalled_consumer_loses_the_oldest_samples_counted() {
    let mut rig = rig_with(Scenario::Clean, 10, |_| {});
    let stats = rig.run_samples(25);
    assert_eq!(stats.samples, 25);
    assert_eq!(stats.overwritten, 15);
    assert_eq!(stats.dropped, 0);
    let kept = rig.drain();
    assert_eq!(kept.len(), 10);
    let first_kept = kept[0].timestamp;
    assert_eq!(kept[9].timestamp - first_kept, 9 * 3000);
    assert!(rig.clock.unix_millis() - first_kept >= 9 * 3000);
}

#[test]
fn gas_unusable_is_flagged_logged_once_and_holds_the_score() {
    let mut rig = rig(Scenario::HeaterFault);
    let stats = rig.run_samples(200); // 10 minutes; the heater fails at minute 5
    let samples = rig.drain();
    let unusable: Vec<&Sample> = samples.iter().filter(|s| !s.heater_stable).collect();
    assert_eq!(stats.gas_unusable, unusable.len() as u64);
    assert!((95..=105).contains(&unusable.len()), "{}", unusable.len());
    assert!(samples.iter().take(90).all(|s| s.heater_stable));
    let scores: Vec<f32> = unusable.iter().map(|s| s.air_quality).collect();
    let spread = scores.iter().cloned().fold(f32::MIN, f32::max)
        - scores.iter().cloned().fold(f32::MAX, f32::min);
    assert!(
        spread < 1.0,
        "only humidity noise moves a held score: {spread}"
    );
    let events: Vec<SamplerEvent> = rig
        .events()
        .into_iter()
        .filter(|e| matches!(e, SamplerEvent::GasUnusable(_)))
        .collect();
    assert_eq!(events, [SamplerEvent::GasUnusable(true)]);
    assert_eq!(count_logs(log::Level::Warn, "gas readings unusable"), 1);
}

// ---- the thread ----

#[test]
fn the_spawned_sampler_survives_a_driver_panic_and_stops_cleanly() {
    let rig = rig(Scenario::Clean);
    let Rig {
        sampler,
        chip,
        reader,
        _state,
        ..
    } = rig;
    let handle = spawn(sampler).unwrap();
    let before = handle
        .wait_until(Duration::from_secs(30), |stats| stats.samples >= 50)
        .expect("50 samples on virtual time");
    chip.inject(Fault::GarbageModeBits { reads: 1 });
    let after = handle
        .wait_until(Duration::from_secs(30), |stats| {
            stats.driver_panics == 1 && stats.samples >= before.samples + 50
        })
        .expect("sampling goes on after the panic");
    assert_eq!(after.reinits, 1);
    let crashed = handle
        .events()
        .iter()
        .any(|timed| matches!(timed.event, SamplerEvent::Crashed { .. }));
    assert!(!crashed);
    let last = handle.stop();
    assert!(last.samples >= after.samples);
    assert!(!reader.is_empty());
    assert!(
        _state.path().join("bme680-baseline.json").exists(),
        "baseline saved on stop"
    );
}

#[test]
fn start_sampler_runs_a_named_scenario() {
    let state = tempfile::tempdir().unwrap();
    let clock: SharedClock = Arc::new(VirtualClock::default());
    let config = SensorConfig {
        state_dir: state.path().to_path_buf(),
        ..SensorConfig::default()
    };
    let (writer, reader) = sample_queue(16).unwrap();
    let source = SensorSource::Simulated {
        scenario: "heater-fault".parse().unwrap(),
    };
    let handle = start_sampler(config, source, clock, writer).unwrap();
    handle
        .wait_until(Duration::from_secs(30), |stats| stats.samples >= 200)
        .expect("samples from the simulated chip");
    drop(handle);
    // Past minute 5 of "heater-fault" every reading has an unstable heater; the buffer
    // holds only the newest 16.
    let mut kept = Vec::new();
    reader.drain_into(&mut kept);
    assert_eq!(kept.len(), 16);
    assert!(
        kept.iter().all(|s| s.gas_valid && !s.heater_stable),
        "{kept:?}"
    );
}

#[test]
fn a_missing_i2c_device_is_retried_and_counted_not_fatal() {
    let state = tempfile::tempdir().unwrap();
    let clock: SharedClock = Arc::new(VirtualClock::default());
    let config = SensorConfig {
        state_dir: state.path().to_path_buf(),
        i2c_device: state.path().join("i2c-9"),
        ..SensorConfig::default()
    };
    let (writer, _reader) = sample_queue(4).unwrap();
    let handle = start_sampler(config, SensorSource::Hardware, clock, writer).unwrap();
    let stats = handle
        .wait_until(Duration::from_secs(30), |stats| stats.open_errors >= 20)
        .expect("keeps retrying");
    assert_eq!(stats.samples, 0);
    let faults = handle
        .events()
        .iter()
        .filter(|timed| matches!(timed.event, SamplerEvent::Faulted { .. }))
        .count();
    assert_eq!(faults, 1, "one state change, however many tries");
}

#[test]
fn a_flaky_bus_logs_its_changes_of_state_at_a_bounded_rate_with_counts() {
    use edge_agent::sensor::bme680::sampler::{STATE_LOG_BURST, STATE_LOG_INTERVAL};
    let mut rig = rig(Scenario::Clean);
    rig.run_samples(2);
    let logged_before = my_logs()
        .iter()
        .filter(|(level, _)| *level <= log::Level::Info)
        .count();
    let started = rig.clock.monotonic();
    rig.chip.inject(Fault::FlakyNack { every: 5 });
    let minutes = 10;
    let end = started + Duration::from_secs(60 * minutes);
    let clock = rig.clock.clone();
    let stats = rig.run_until(|_| clock.monotonic() >= end);
    let logged: Vec<(log::Level, String)> = my_logs()
        .into_iter()
        .filter(|(level, message)| *level <= log::Level::Info && message.contains("BME680"))
        .skip(logged_before)
        .collect();
    let changes = stats.state_changes;
    assert!(
        changes >= 10 * minutes,
        "the bus flips state many times a minute: {stats:?}"
    );
    let bound = STATE_LOG_BURST as u64 + minutes * 60 / STATE_LOG_INTERVAL.as_secs() + 1;
    assert!(
        (logged.len() as u64) <= bound,
        "{} lines for {changes} changes, bound {bound}",
        logged.len()
    );
    assert!(
        stats.state_changes_suppressed >= changes - bound,
        "{stats:?}"
    );
    assert!(
        logged
            .iter()
            .any(|(_, message)| message.contains("earlier ones not logged, rate limit")),
        "a line says how many were left out: {logged:?}"
    );
    // Every change is still recorded as an event, for a status page, and counted.
    assert!(stats.samples > 0 && stats.bus_errors > 0, "{stats:?}");
}
