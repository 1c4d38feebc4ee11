//! The sampler: owns the bus and the driver, takes one reading per period on a drift-free
//! schedule, scores it, and pushes a [`Sample`] into the ring buffer without ever waiting on
//! the consumer.
//!
//! Schedule: sample k is triggered at `origin + k × period` (not "period after the last
//! one"), so conversion time and scheduling jitter never accumulate. After a fault the
//! sampler retries with exponential backoff; when it succeeds it rejoins the grid at the next
//! slot, and the slots it missed are counted in `skipped_periods`.
//!
//! Faults: every failed try is counted (per kind); a warning is logged only when the
//! sensor's state changes (healthy → a fault, one fault kind → another, fault → recovered),
//! not per try, and those lines are rate-limited ([`crate::support::log_rate`]) so a flaky
//! bus cannot flood the journal. After `retry.reinit_after_failures` consecutive failures,
//! and at once after a driver panic or runaway, the driver is dropped and the chip
//! re-initialised.
//!
//! Identity and time: the sampler draws a random [`RunId`] when it is created and numbers
//! its samples from 0; each sample's timestamp comes from a [`Timeline`] (never backwards
//! within the run, clock steps counted) and carries whether the clock was synchronised.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use log::{debug, error, info, warn};

use crate::sensor::bme680::air_quality::{
    AirQualityEstimator, BaselineOrigin, HeaterProfile, Moment,
};
use crate::sensor::bme680::baseline::BaselineStore;
use crate::sensor::bme680::config::SensorConfig;
use crate::sensor::bme680::driver::{Bme680Sensor, BusFactory, Reading};
use crate::sensor::bme680::error::{FaultKind, SensorError};
use crate::sensor::clock::SharedClock;
use crate::sensor::identity::RunId;
use crate::sensor::queue::{PushOutcome, SampleWriter};
use crate::sensor::sample::Sample;
use crate::sensor::timeline::{ClockEvent, Stamp, Timeline};
use crate::support::log_rate::{Admit, LogRate};
use crate::support::wake::Wake;

/// Longest single sleep, so a stop request is noticed promptly.
const SLEEP_SLICE: Duration = Duration::from_millis(100);
/// Events kept for inspection; older ones are dropped.
const EVENT_HISTORY: usize = 256;
/// Changes of state (faulted, healthy, clock steps) logged back to back...
pub const STATE_LOG_BURST: u32 = 5;
/// ...and one more per this much monotonic time; the rest are counted and left out.
pub const STATE_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Counters since the sampler was created. Monotone except `consecutive_failures`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SamplerStats {
    /// Samples pushed into the buffer (including those that evicted an older one).
    pub samples: u64,
    /// Older samples evicted because the buffer was full.
    pub overwritten: u64,
    /// New samples dropped because the buffer was full and the reader was mid-pop.
    pub dropped: u64,
    /// Failed tries, all kinds.
    pub failures: u64,
    pub bus_errors: u64,
    pub not_found: u64,
    pub no_data: u64,
    pub driver_panics: u64,
    pub runaways: u64,
    pub open_errors: u64,
    /// Successful initialisations after the first.
    pub reinits: u64,
    /// Schedule slots that passed without a sample (faults, or a stalled bus).
    pub skipped_periods: u64,
    /// Samples whose gas was invalid or whose heater was not stable.
    pub gas_unusable: u64,
    pub baseline_saves: u64,
    pub baseline_save_errors: u64,
    /// Failures since the last good reading.
    pub consecutive_failures: u32,
    /// The kind of the latest failure (kept after a recovery; `failing` reads it only
    /// while `consecutive_failures` > 0).
    pub last_fault: Option<FaultKind>,
    /// Changes of state (faults, recoveries, gas usability), logged or not.
    pub state_changes: u64,
    /// Changes of state left out of the log by the rate limit (still counted and recorded).
    pub state_changes_suppressed: u64,
    /// Wall-clock steps back seen between two samples (stamps held, see `timeline`).
    pub clock_steps_back: u64,
    /// Wall-clock steps forward seen between two samples.
    pub clock_steps_forward: u64,
    /// Samples marked `clock_synced = false` (clock unsynchronised, or stamps held).
    pub unsynced_samples: u64,
}

impl SamplerStats {
    /// The sensor's state in a few words, for `/health` and the status line: `None` while
    /// reads succeed; else how many failed in a row and the kind of the latest failure
    /// (a loose wire reads as the bus failing, a missing chip as not found). The latest,
    /// not the commonest so far: a bus that appears after an hour of "does not open" and
    /// then fails otherwise must say so at once.
    pub fn failing(&self) -> Option<String> {
        if self.consecutive_failures == 0 {
            return None;
        }
        let why = match self.last_fault {
            Some(FaultKind::Open) => "the I2C device does not open",
            Some(FaultKind::NotFound) => "no BME680 answers at its address",
            Some(FaultKind::Bus) => "the bus fails",
            Some(FaultKind::NoData) => "no new data",
            Some(FaultKind::DriverPanic) => "the driver panicked",
            Some(FaultKind::Runaway) => "the driver does not finish (chip stuck?)",
            None => "reads fail",
        };
        Some(format!(
            "not answering: {} reads failed in a row ({why})",
            self.consecutive_failures
        ))
    }
}

/// Something the sampler logged, kept for inspection (tests, a status endpoint).
#[derive(Debug, Clone, PartialEq)]
pub enum SamplerEvent {
    /// The chip was (re)initialised at this address.
    Initialised { address: u8 },
    /// Entered a fault state (first failure of this kind in a row).
    Faulted { kind: FaultKind, message: String },
    /// A good reading after `failed_tries` failed ones.
    Recovered { failed_tries: u32 },
    /// Gas readings became unusable (`true`) or usable again (`false`).
    GasUnusable(bool),
    /// How the air-quality baseline started.
    Baseline(BaselineOrigin),
    /// Burn-in finished with this humidity-compensated baseline.
    BurnInCompleted { baseline_ohm: f32 },
    /// Saving the baseline failed (logged once until a save succeeds).
    BaselineSaveFailed { message: String },
    /// The sampler loop itself panicked and stopped (a bug).
    Crashed { message: String },
    /// Something happened to the wall clock (a step, the first sync, the end of a hold).
    Clock(ClockEvent),
}

/// An event and when it happened (Unix ms of the sampler's clock).
#[derive(Debug, Clone, PartialEq)]
pub struct TimedEvent {
    pub at_ms: i64,
    pub event: SamplerEvent,
}

#[derive(Debug, Default)]
struct Shared {
    /// The [`RunId`]'s bits: set before the first sample, read by monitors.
    run_id: AtomicU64,
    stats: Mutex<SamplerStats>,
    changed: Wake,
    events: Mutex<Vec<TimedEvent>>,
    stop: AtomicBool,
}

/// A view on a running (or synchronously driven) sampler: counters, events, stop.
#[derive(Debug, Clone)]
pub struct SamplerMonitor {
    shared: Arc<Shared>,
}

impl SamplerMonitor {
    /// The run id every sample of this sampler carries.
    pub fn run_id(&self) -> RunId {
        RunId::from_raw(self.shared.run_id.load(Ordering::SeqCst))
    }

    fn stats_lock(&self) -> MutexGuard<'_, SamplerStats> {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn stats(&self) -> SamplerStats {
        *self.stats_lock()
    }

    pub fn events(&self) -> Vec<TimedEvent> {
        self.shared
            .events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Blocks until `condition` holds for the counters, or `timeout` of real time passes.
    /// Returns the counters that satisfied it, or `None` on timeout.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&SamplerStats) -> bool,
    ) -> Option<SamplerStats> {
        let mut seen = None;
        self.shared.changed.wait_until(timeout, || {
            let stats = self.stats();
            let done = condition(&stats);
            seen = done.then_some(stats);
            done
        });
        seen
    }

    /// Asks the sampler to stop after its current step.
    pub fn request_stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify();
    }

    fn stop_requested(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    fn update(&self, change: impl FnOnce(&mut SamplerStats)) {
        change(&mut self.stats_lock());
        self.shared.changed.notify();
    }

    fn record(&self, at_ms: i64, event: SamplerEvent) {
        let mut events = self
            .shared
            .events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if events.len() == EVENT_HISTORY {
            events.remove(0);
        }
        events.push(TimedEvent { at_ms, event });
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Health {
    Starting,
    Healthy,
    Faulted(FaultKind),
}

/// The sampling loop and its state. Drive it on the current thread with
/// [`Sampler::run_until`] (tests, with a virtual clock) or on its own with [`spawn`].
pub struct Sampler<F: BusFactory> {
    config: SensorConfig,
    factory: F,
    clock: SharedClock,
    sensor: Option<Bme680Sensor<F::Bus>>,
    opened_before: bool,
    estimator: AirQualityEstimator,
    store: BaselineStore,
    save_failing: bool,
    writer: SampleWriter,
    monitor: SamplerMonitor,
    health: Health,
    gas_unusable: bool,
    consecutive_failures: u32,
    origin: Option<Duration>,
    next_slot: u64,
    last_temperature_c: Option<f32>,
    next_seq: u64,
    timeline: Timeline,
    state_log: LogRate,
    clock_log: LogRate,
}

impl<F: BusFactory> Sampler<F> {
    /// Validates `config` and restores the air-quality baseline from `config.state_dir`.
    /// Does not touch the bus yet: the first step opens it, so a missing sensor at start is
    /// a fault to retry, not a refusal to start.
    pub fn new(
        config: SensorConfig,
        factory: F,
        clock: SharedClock,
        writer: SampleWriter,
    ) -> Result<Self, SensorError> {
        config.validate()?;
        let run_id = RunId::generate()?;
        let monitor = SamplerMonitor {
            shared: Arc::new(Shared {
                run_id: AtomicU64::new(run_id.raw()),
                ..Shared::default()
            }),
        };
        let store = BaselineStore::in_dir(&config.state_dir);
        let restored = match store.load() {
            Ok(restored) => restored,
            Err(error) => {
                warn!("ignoring the saved air-quality baseline: {error}");
                None
            }
        };
        let now = Moment {
            monotonic: clock.monotonic(),
            unix_ms: clock.unix_millis(),
            clock_synced: clock.sync_state().is_synced(),
            boot: clock.boot_mark(),
        };
        let now_ms = now.unix_ms;
        let profile = HeaterProfile {
            temperature_c: config.heater_temperature_c,
            duration_ms: config.heater_duration_ms,
        };
        let estimator =
            AirQualityEstimator::new(config.air_quality.clone(), profile, restored, now);
        let origin = estimator.origin();
        log_baseline_origin(origin, &store, &config);
        monitor.record(now_ms, SamplerEvent::Baseline(origin));
        Ok(Self {
            config,
            factory,
            clock,
            sensor: None,
            opened_before: false,
            estimator,
            store,
            save_failing: false,
            writer,
            monitor,
            health: Health::Starting,
            gas_unusable: false,
            consecutive_failures: 0,
            origin: None,
            next_slot: 0,
            last_temperature_c: None,
            next_seq: 0,
            timeline: Timeline::new(),
            state_log: LogRate::new(STATE_LOG_BURST, STATE_LOG_INTERVAL),
            clock_log: LogRate::new(STATE_LOG_BURST, STATE_LOG_INTERVAL),
        })
    }

    /// Uses `run_id` instead of the one drawn at creation: for tests that need a known id,
    /// or a binary that draws one run id for the whole agent.
    pub fn with_run_id(self, run_id: RunId) -> Self {
        self.monitor
            .shared
            .run_id
            .store(run_id.raw(), Ordering::SeqCst);
        self
    }
}

fn log_baseline_origin(origin: BaselineOrigin, store: &BaselineStore, config: &SensorConfig) {
    match origin {
        BaselineOrigin::Restored { age } => info!(
            "air-quality baseline restored from {} ({} min old); no burn-in needed",
            store.path().display(),
            age.as_secs() / 60
        ),
        BaselineOrigin::Stale { age } => info!(
            "saved air-quality baseline is {} h old (limit {} h); starting a new burn-in",
            age.as_secs() / 3600,
            config.air_quality.baseline_max_age_hours
        ),
        BaselineOrigin::ProfileChanged => info!(
            "saved air-quality baseline was learnt with another heater profile; starting a new burn-in"
        ),
        BaselineOrigin::None => info!(
            "no saved air-quality baseline; burn-in of {} s starts with the first gas reading",
            config.air_quality.burn_in_secs
        ),
        BaselineOrigin::Untrusted(why) => info!(
            "the saved air-quality baseline's age cannot be told ({why:?}); starting a new burn-in"
        ),
        BaselineOrigin::Pending => info!(
            "the clock is not synchronised yet: burn-in starts, and the saved air-quality baseline is taken instead if the clock synchronises before it ends and shows it fresh"
        ),
    }
}

impl<F: BusFactory> Sampler<F> {
    pub fn monitor(&self) -> SamplerMonitor {
        self.monitor.clone()
    }

    pub fn estimator(&self) -> &AirQualityEstimator {
        &self.estimator
    }

    /// Runs until `done` holds for the counters or a stop is requested; then saves the
    /// baseline.
    pub fn run_until(&mut self, mut done: impl FnMut(&SamplerStats) -> bool) {
        let origin = *self.origin.get_or_insert_with(|| self.clock.monotonic());
        while !self.monitor.stop_requested() && !done(&self.monitor.stats()) {
            self.step(origin);
        }
        let now = self.now();
        self.save_baseline(now, true);
    }

    /// Now, for the estimator: the wall clock counts as synchronised only if it is and
    /// stamps are not held ahead of it.
    fn now(&self) -> Moment {
        Moment {
            monotonic: self.clock.monotonic(),
            unix_ms: self.clock.unix_millis(),
            clock_synced: self.clock.sync_state().is_synced() && !self.timeline.is_held(),
            boot: self.clock.boot_mark(),
        }
    }

    /// One try: wait for the slot (or the backoff), read, and publish.
    fn step(&mut self, origin: Duration) {
        let wake_at = if self.consecutive_failures == 0 {
            origin.saturating_add(self.period_times(self.next_slot))
        } else {
            self.clock
                .monotonic()
                .saturating_add(self.config.retry.backoff(self.consecutive_failures))
        };
        self.sleep_until(wake_at);
        if self.monitor.stop_requested() {
            return;
        }
        let triggered = self.clock.monotonic();
        let wall_ms = self.clock.unix_millis();
        match self.acquire(wall_ms) {
            Ok(reading) => {
                let stamp = self
                    .timeline
                    .stamp(triggered, wall_ms, self.clock.sync_state());
                self.note_clock(&stamp, triggered);
                self.publish(reading, stamp, triggered, triggered.saturating_sub(origin));
            }
            Err(error) => self.fail(error, wall_ms),
        }
    }

    /// Counts, records and (rate-limited) logs what the timeline saw of the wall clock.
    fn note_clock(&mut self, stamp: &Stamp, now: Duration) {
        let unsynced = !stamp.clock_synced;
        let Some(event) = stamp.event else {
            if unsynced {
                self.monitor.update(|stats| stats.unsynced_samples += 1);
            }
            return;
        };
        self.monitor.update(|stats| {
            match event {
                ClockEvent::SteppedBack { .. } => stats.clock_steps_back += 1,
                ClockEvent::SteppedForward { .. } => stats.clock_steps_forward += 1,
                ClockEvent::CaughtUp | ClockEvent::FirstSync => {}
            }
            if unsynced {
                stats.unsynced_samples += 1;
            }
        });
        self.monitor
            .record(stamp.unix_ms, SamplerEvent::Clock(event));
        let admit = self.clock_log.admit(now);
        if admit == Admit::Suppress {
            debug!("wall clock: {event:?}");
            return;
        }
        let suffix = admit.suffix();
        match event {
            ClockEvent::SteppedBack { by_ms } => warn!(
                "the wall clock stepped back by {by_ms} ms; sample times continue on the monotonic clock from {} until it catches up, marked clock_synced = false{suffix}",
                crate::support::timestamp::format(stamp.unix_ms)
            ),
            ClockEvent::SteppedForward { by_ms } => {
                warn!("the wall clock stepped forward by {by_ms} ms{suffix}")
            }
            ClockEvent::CaughtUp => {
                info!(
                    "the wall clock caught up with the held sample times; following it again{suffix}"
                )
            }
            ClockEvent::FirstSync => info!("the wall clock is synchronised{suffix}"),
        }
    }

    fn period_times(&self, slots: u64) -> Duration {
        let nanos = self
            .config
            .sample_period()
            .as_nanos()
            .saturating_mul(u128::from(slots));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn sleep_until(&self, deadline: Duration) {
        loop {
            if self.monitor.stop_requested() {
                return;
            }
            let now = self.clock.monotonic();
            if now >= deadline {
                return;
            }
            self.clock.sleep((deadline - now).min(SLEEP_SLICE));
        }
    }

    fn acquire(&mut self, timestamp: i64) -> Result<Reading, SensorError> {
        let sensor = match &mut self.sensor {
            Some(sensor) => sensor,
            None => {
                // The heater code depends (slightly) on ambient temperature.
                let ambient_c = self
                    .last_temperature_c
                    .map_or(25, |celsius| celsius.round() as i32);
                let sensor = Bme680Sensor::open_at_ambient(
                    &mut self.factory,
                    &self.config,
                    self.clock.clone(),
                    ambient_c,
                )?;
                let address = sensor.address();
                if self.opened_before {
                    self.monitor.update(|stats| stats.reinits += 1);
                    // Part of a retry loop: the fault and the recovery are what is logged.
                    debug!(
                        "BME680 re-initialised at {address:#04x} on {}",
                        self.factory.describe()
                    );
                } else {
                    info!(
                        "BME680 initialised at {address:#04x} on {}",
                        self.factory.describe()
                    );
                }
                self.opened_before = true;
                self.monitor
                    .record(timestamp, SamplerEvent::Initialised { address });
                self.sensor.insert(sensor)
            }
        };
        sensor.read()
    }

    fn fail(&mut self, error: SensorError, timestamp: i64) {
        let kind = error.kind();
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let consecutive = self.consecutive_failures;
        let state_changed = self.health != Health::Faulted(kind);
        self.monitor.update(|stats| {
            stats.failures += 1;
            stats.consecutive_failures = consecutive;
            stats.last_fault = Some(kind);
            match kind {
                FaultKind::Bus => stats.bus_errors += 1,
                FaultKind::NotFound => stats.not_found += 1,
                FaultKind::NoData => stats.no_data += 1,
                FaultKind::DriverPanic => stats.driver_panics += 1,
                FaultKind::Runaway => stats.runaways += 1,
                FaultKind::Open => stats.open_errors += 1,
            }
            if state_changed {
                stats.state_changes += 1;
            }
        });
        if state_changed {
            match self.state_log.admit(self.clock.monotonic()) {
                Admit::Suppress => {
                    self.monitor
                        .update(|stats| stats.state_changes_suppressed += 1);
                    debug!("BME680 fault ({kind}): {error}");
                }
                admit => warn!(
                    "BME680 fault ({kind}): {error}; retrying with backoff{}",
                    admit.suffix()
                ),
            }
            self.monitor.record(
                timestamp,
                SamplerEvent::Faulted {
                    kind,
                    message: error.to_string(),
                },
            );
            self.health = Health::Faulted(kind);
        } else {
            debug!("BME680 still failing ({consecutive} tries): {error}");
        }
        let driver_suspect = matches!(kind, FaultKind::DriverPanic | FaultKind::Runaway);
        let reinit_after = self.config.retry.reinit_after_failures.max(1);
        if self.sensor.is_some() && (driver_suspect || consecutive.is_multiple_of(reinit_after)) {
            debug!(
                "dropping the BME680 driver after {consecutive} failures; it will be re-initialised"
            );
            self.sensor = None;
        }
    }

    /// Logs a change of state at most at the rate [`LogRate`] allows, counting what it
    /// leaves out.
    fn log_state_change(&mut self, level: log::Level, message: std::fmt::Arguments<'_>) {
        match self.state_log.admit(self.clock.monotonic()) {
            Admit::Suppress => {
                self.monitor
                    .update(|stats| stats.state_changes_suppressed += 1);
                debug!("{message}");
            }
            admit => log::log!(level, "{message}{}", admit.suffix()),
        }
    }

    fn publish(
        &mut self,
        reading: Reading,
        stamp: Stamp,
        triggered: Duration,
        since_origin: Duration,
    ) {
        let timestamp = stamp.unix_ms;
        if self.health != Health::Healthy {
            if let Health::Faulted(kind) = self.health {
                let failed_tries = self.consecutive_failures;
                self.log_state_change(
                    log::Level::Info,
                    format_args!("BME680 recovered from {kind} after {failed_tries} failed tries"),
                );
                self.monitor
                    .record(timestamp, SamplerEvent::Recovered { failed_tries });
                self.monitor.update(|stats| stats.state_changes += 1);
            }
            self.health = Health::Healthy;
        }
        self.consecutive_failures = 0;
        self.last_temperature_c = Some(reading.temperature);

        let was_burning_in = self.estimator.in_burn_in();
        let origin_before = self.estimator.origin();
        let now = Moment {
            monotonic: triggered,
            unix_ms: timestamp,
            clock_synced: stamp.clock_synced,
            boot: self.clock.boot_mark(),
        };
        let assessment = self.estimator.assess(&reading, now);
        let origin_after = self.estimator.origin();
        if origin_after != origin_before {
            info!("air-quality baseline: {origin_after:?} (was {origin_before:?})");
            self.monitor
                .record(timestamp, SamplerEvent::Baseline(origin_after));
        }
        if was_burning_in
            && !assessment.burn_in
            && let Some(baseline_ohm) = self.estimator.baseline_ohm()
        {
            info!(
                "air-quality burn-in complete: baseline {baseline_ohm:.0} Ω (humidity-compensated)"
            );
            self.monitor
                .record(timestamp, SamplerEvent::BurnInCompleted { baseline_ohm });
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.saturating_add(1);
        let sample = Sample {
            timestamp,
            run_id: self.monitor.run_id(),
            seq,
            clock_synced: stamp.clock_synced,
            temperature: reading.temperature,
            humidity: reading.humidity,
            pressure: reading.pressure,
            gas_resistance: reading.gas_resistance.unwrap_or(0.0),
            air_quality: assessment.air_quality,
            gas_valid: reading.gas_valid,
            heater_stable: reading.heater_stable,
            burn_in: assessment.burn_in,
            sensor_id: None,
            peer: None,
        };
        let unusable = !sample.gas_usable();
        if unusable != self.gas_unusable {
            self.gas_unusable = unusable;
            if unusable {
                let (valid, stable) = (sample.gas_valid, sample.heater_stable);
                self.log_state_change(
                    log::Level::Warn,
                    format_args!(
                        "BME680 gas readings unusable (gas valid: {valid}, heater stable: {stable}); air quality holds its last value"
                    ),
                );
            } else {
                self.log_state_change(
                    log::Level::Info,
                    format_args!("BME680 gas readings usable again"),
                );
            }
            self.monitor
                .record(timestamp, SamplerEvent::GasUnusable(unusable));
            self.monitor.update(|stats| stats.state_changes += 1);
        }

        let outcome = self.writer.push(sample);

        let period_nanos = self.config.sample_period().as_nanos().max(1);
        let slot = u64::try_from(since_origin.as_nanos() / period_nanos).unwrap_or(u64::MAX);
        let skipped = slot.saturating_sub(self.next_slot);
        self.next_slot = slot.saturating_add(1);

        self.monitor.update(|stats| {
            stats.samples += 1;
            stats.consecutive_failures = 0;
            stats.skipped_periods += skipped;
            if unusable {
                stats.gas_unusable += 1;
            }
            match outcome {
                PushOutcome::Stored => {}
                PushOutcome::OverwroteOldest => stats.overwritten += 1,
                PushOutcome::DroppedNewest => {
                    stats.samples -= 1;
                    stats.dropped += 1;
                }
            }
        });
        self.save_baseline(now, false);
    }

    fn save_baseline(&mut self, now: Moment, final_save: bool) {
        let now_ms = now.unix_ms;
        let snapshot = if final_save {
            self.estimator.snapshot(now)
        } else {
            self.estimator.take_due_snapshot(now)
        };
        let Some(snapshot) = snapshot else {
            return;
        };
        match self.store.save(&snapshot) {
            Ok(()) => {
                if self.save_failing {
                    info!("air-quality baseline saved again");
                }
                self.save_failing = false;
                self.monitor.update(|stats| stats.baseline_saves += 1);
            }
            Err(error) => {
                if !self.save_failing {
                    warn!("cannot save the air-quality baseline: {error}");
                    self.monitor.record(
                        now_ms,
                        SamplerEvent::BaselineSaveFailed {
                            message: error.to_string(),
                        },
                    );
                }
                self.save_failing = true;
                self.monitor.update(|stats| stats.baseline_save_errors += 1);
            }
        }
    }
}

/// A sampler running on its own thread. Dropping it stops and joins the thread.
#[derive(Debug)]
pub struct SamplerHandle {
    monitor: SamplerMonitor,
    thread: Option<JoinHandle<()>>,
}

impl SamplerHandle {
    pub fn monitor(&self) -> &SamplerMonitor {
        &self.monitor
    }

    pub fn stats(&self) -> SamplerStats {
        self.monitor.stats()
    }

    pub fn events(&self) -> Vec<TimedEvent> {
        self.monitor.events()
    }

    /// See [`SamplerMonitor::wait_until`].
    pub fn wait_until(
        &self,
        timeout: Duration,
        condition: impl FnMut(&SamplerStats) -> bool,
    ) -> Option<SamplerStats> {
        self.monitor.wait_until(timeout, condition)
    }

    /// Stops the thread, waits for it (the baseline is saved on the way out), and returns
    /// the final counters.
    pub fn stop(mut self) -> SamplerStats {
        self.shutdown();
        self.monitor.stats()
    }

    fn shutdown(&mut self) {
        self.monitor.request_stop();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            error!("the sampler thread ended with a panic");
        }
    }
}

impl Drop for SamplerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts `sampler` on a thread named `bme680-sampler`.
pub fn spawn<F>(sampler: Sampler<F>) -> Result<SamplerHandle, SensorError>
where
    F: BusFactory + Send + 'static,
    F::Bus: Send + 'static,
{
    let monitor = sampler.monitor();
    let thread_monitor = monitor.clone();
    let clock = sampler.clock.clone();
    let thread = std::thread::Builder::new()
        .name("bme680-sampler".to_owned())
        .spawn(move || {
            let mut sampler = sampler;
            // Driver panics are caught around each driver call; this is the last line for a
            // bug in the loop itself, so it is reported instead of vanishing with the thread.
            let outcome = catch_unwind(AssertUnwindSafe(|| sampler.run_until(|_| false)));
            if let Err(payload) = outcome {
                let message = crate::support::panic::message(payload.as_ref());
                error!("the BME680 sampler stopped after a panic: {message}");
                thread_monitor.record(clock.unix_millis(), SamplerEvent::Crashed { message });
                thread_monitor.request_stop();
            }
        })
        .map_err(|error| SensorError::Open {
            path: "bme680-sampler thread".to_owned(),
            detail: error.to_string(),
        })?;
    Ok(SamplerHandle {
        monitor,
        thread: Some(thread),
    })
}
