//! Where parsed lines become samples: the table of sensors (each its own run id and
//! sequence, so `_id` = host.sensor.run.seq stays unique, and its last time, so time never
//! goes back within a sensor), bounded by `max_sensors`, and the one ring writer every
//! connection shares. The queue policy is here: a stream (TCP, standard input) waits for
//! room, which stops reading its socket and lets TCP's flow control slow the client; a
//! datagram is dropped and counted. The counters every transport keeps are here too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::warn;

use crate::sensor::clock::{SharedClock, SystemClock};
use crate::sensor::identity::RunId;
use crate::sensor::lines::parse::{Reading, Refused};
use crate::sensor::lines::tls::HandshakeFailure;
use crate::sensor::queue::SampleWriter;
use crate::sensor::sample::{Peer, Sample};
use crate::sensor::timeline::{ClockEvent, Timeline};
use crate::support::log_rate::LogRate;
use crate::support::text;
use crate::support::wake::Stop;

/// How often a stream waiting for room in a full queue looks again. The ring has no
/// "room" signal; this bounds a waiting client's extra latency, not a test's.
const ROOM_POLL: Duration = Duration::from_millis(2);
/// At most this often is the sensor table swept for idle sensors (only at its bound).
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Refused lines logged at once, then one a second; the rest are counted.
const LOG_BURST: u32 = 10;
/// Bytes of a refused line quoted in the log.
const LOG_LINE_BYTES: usize = 120;
/// `[source] max_future_s`'s default, for a feed built without it.
const DEFAULT_MAX_FUTURE_MS: i64 = 300_000;

/// What to do with a line when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Wait for room (streams: the client is slowed by TCP, never dropped).
    Wait,
    /// Drop it, counted as [`Refused::QueueFull`] (datagrams).
    Drop,
}

/// The source's counters, written by its threads, read by `/metrics` and tests. Every
/// line read (blank ones aside) ends in exactly one of `accepted`, `refused` or
/// `headers`, counted once it has; lines read is their sum, so
/// read = accepted + refused + headers holds at every scrape (a line waiting for room in
/// the queue is not read yet).
#[derive(Debug, Default)]
pub struct LinesStats {
    /// Lines that became a sample in the queue.
    pub accepted: AtomicU64,
    /// Lines dropped, by [`Refused::index`].
    pub refused: [AtomicU64; Refused::ALL.len()],
    /// CSV header lines taken (one per TCP connection or standard input).
    pub headers: AtomicU64,
    /// TCP clients accepted, turned away at `max_connections`, closed when idle.
    pub connections: AtomicU64,
    pub connections_refused: AtomicU64,
    pub connections_idle: AtomicU64,
    /// TCP clients connected now (a gauge).
    pub connections_open: AtomicU64,
    /// Sensors in the table now (a gauge), and sensors forgotten after `sensor_idle_s`.
    pub sensors_active: AtomicU64,
    pub sensors_expired: AtomicU64,
    /// Times a stream waited for room in a full queue.
    pub queue_waits: AtomicU64,
    /// TCP connections closed and UDP datagrams dropped because their address is not in
    /// `allow`, before a byte of theirs was read.
    pub not_allowed: AtomicU64,
    /// TLS handshakes that did not finish, by [`HandshakeFailure::index`].
    pub handshake_failures: [AtomicU64; HandshakeFailure::ALL.len()],
    /// Steps of the agent's wall clock seen between two lines it stamped on receipt.
    pub clock_steps_back: AtomicU64,
    pub clock_steps_forward: AtomicU64,
    /// Lines stamped on receipt while the clock was not synchronised, or held ahead of a
    /// clock that stepped back (`clock_synced: false`).
    pub unsynced_samples: AtomicU64,
    /// Refused-line log lines left out by the rate limit.
    pub log_suppressed: AtomicU64,
    /// Moves while the listener thread turns (at least every 200 ms): its sign of life.
    pub heartbeat: AtomicU64,
}

/// The counters at one instant, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinesCounts {
    /// `tcp`, `udp` or `stdin`: the `source` label.
    pub transport: &'static str,
    /// Lines read: `accepted` + every `refused` + `headers`, from one reading of each.
    pub lines: u64,
    pub accepted: u64,
    pub refused: Vec<(&'static str, u64)>,
    pub headers: u64,
    /// UDP: datagrams the kernel dropped because the socket's receive buffer was full
    /// (`/proc/net/udp`'s `drops`); `None` for TCP and standard input, or unknown.
    pub kernel_drops: Option<u64>,
    pub connections: u64,
    pub connections_refused: u64,
    pub connections_idle: u64,
    pub connections_open: u64,
    pub sensors_active: u64,
    pub sensors_expired: u64,
    pub queue_waits: u64,
    pub not_allowed: u64,
    /// What the wall clock did under lines stamped on receipt (the sampler's counters'
    /// twins: the same metrics add both).
    pub clock_steps_back: u64,
    pub clock_steps_forward: u64,
    pub unsynced_samples: u64,
    /// TLS handshakes that failed, by reason; `None` without TLS.
    pub handshake_failures: Option<Vec<(&'static str, u64)>>,
    /// Why the listener is open to anyone who can reach it (a non-loopback `listen`
    /// without TLS or `allow`), for `/health`; `None` when it is not.
    pub exposed: Option<&'static str>,
}

impl LinesStats {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self, reason: Refused) -> u64 {
        self.refused[reason.index()].load(Ordering::Relaxed)
    }

    pub fn counts(&self, transport: &'static str) -> LinesCounts {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let accepted = load(&self.accepted);
        let refused: Vec<(&'static str, u64)> = Refused::ALL
            .iter()
            .map(|r| (r.name(), self.refused(*r)))
            .collect();
        let headers = load(&self.headers);
        let lines = refused
            .iter()
            .fold(accepted.saturating_add(headers), |sum, (_, n)| {
                sum.saturating_add(*n)
            });
        LinesCounts {
            transport,
            lines,
            accepted,
            refused,
            headers,
            kernel_drops: None,
            connections: load(&self.connections),
            connections_refused: load(&self.connections_refused),
            connections_idle: load(&self.connections_idle),
            connections_open: load(&self.connections_open),
            sensors_active: load(&self.sensors_active),
            sensors_expired: load(&self.sensors_expired),
            queue_waits: load(&self.queue_waits),
            not_allowed: load(&self.not_allowed),
            clock_steps_back: load(&self.clock_steps_back),
            clock_steps_forward: load(&self.clock_steps_forward),
            unsynced_samples: load(&self.unsynced_samples),
            handshake_failures: None,
            exposed: None,
        }
    }
}

/// One sensor's place in the table.
#[derive(Debug)]
struct SensorState {
    /// The key the pipeline's series is found by: one allocation per sensor, shared.
    key: Arc<str>,
    run_id: RunId,
    next_seq: u64,
    last_ms: i64,
    last_seen: Instant,
}

struct Inner {
    writer: SampleWriter,
    capacity: usize,
    sensors: HashMap<Arc<str>, SensorState>,
    last_sweep: Option<Instant>,
    /// Counts admissions: with `fallback_run`, a run id when the kernel gives no random.
    admitted: u64,
    /// Stamps for lines that carry no time: one timeline for the agent's one clock, so a
    /// step of the wall clock is seen (and counted) once, whichever sensor's line shows it,
    /// and stamps never go back for any sensor.
    timeline: Timeline,
}

/// The shared end every connection feeds.
pub struct Feed {
    inner: Mutex<Inner>,
    stats: Arc<LinesStats>,
    stop: Arc<Stop>,
    default_sensor: Arc<str>,
    max_sensors: usize,
    sensor_idle: Duration,
    /// How far ahead of the agent's clock a line's time may be, ms.
    max_future_ms: i64,
    fallback_run: RunId,
    log: Mutex<LogRate>,
    /// Stamps lines that carry no time, and judges a line's time against now.
    clock: SharedClock,
}

impl Feed {
    pub fn new(
        writer: SampleWriter,
        default_sensor: &str,
        max_sensors: usize,
        sensor_idle: Duration,
        stats: Arc<LinesStats>,
        stop: Arc<Stop>,
    ) -> Self {
        let capacity = writer.capacity();
        let fallback_run = RunId::generate().unwrap_or_else(|_| {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            RunId::from_raw(nanos as u64)
        });
        Self {
            inner: Mutex::new(Inner {
                writer,
                capacity,
                sensors: HashMap::new(),
                last_sweep: None,
                admitted: 0,
                timeline: Timeline::new(),
            }),
            stats,
            stop,
            default_sensor: Arc::from(default_sensor),
            max_sensors: max_sensors.max(1),
            sensor_idle,
            max_future_ms: DEFAULT_MAX_FUTURE_MS,
            fallback_run,
            log: Mutex::new(LogRate::new(LOG_BURST, Duration::from_secs(1))),
            clock: Arc::new(SystemClock::new()),
        }
    }

    /// Another clock than the system's (a test's virtual one).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Refuses (`future_time`) a line whose time is more than `max_future` ahead of the
    /// agent's clock when it arrives.
    pub fn with_max_future(mut self, max_future: Duration) -> Self {
        self.max_future_ms = i64::try_from(max_future.as_millis()).unwrap_or(i64::MAX);
        self
    }

    pub fn stats(&self) -> &Arc<LinesStats> {
        &self.stats
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Turns `reading` into the next sample of its sensor and queues it.
    pub fn offer(&self, reading: &Reading<'_>, when_full: WhenFull) -> Result<(), Refused> {
        self.offer_from(reading, None, when_full)
    }

    /// [`Self::offer`], the sample naming who sent it.
    pub fn offer_from(
        &self,
        reading: &Reading<'_>,
        peer: Option<&Arc<Peer>>,
        when_full: WhenFull,
    ) -> Result<(), Refused> {
        let mut waited = false;
        loop {
            let mut inner = self.lock();
            if inner.writer.len() >= inner.capacity {
                drop(inner);
                if when_full == WhenFull::Drop || self.stop.is_stopped() {
                    return Err(Refused::QueueFull);
                }
                if !waited {
                    waited = true;
                    LinesStats::count(&self.stats.queue_waits);
                }
                self.stop.sleep(ROOM_POLL);
                continue;
            }
            return self.queue(&mut inner, reading, peer);
        }
    }

    fn queue(
        &self,
        inner: &mut Inner,
        reading: &Reading<'_>,
        peer: Option<&Arc<Peer>>,
    ) -> Result<(), Refused> {
        let name: &str = reading.sensor.as_deref().unwrap_or(&self.default_sensor);
        let now = Instant::now();
        let received_ms = self.clock.unix_millis();
        // Before anything else: a line from the future must neither take a sensor's place
        // nor become its last time, or every line after it would be refused as going
        // back until that time came.
        if reading
            .time_ms
            .is_some_and(|ms| ms > received_ms.saturating_add(self.max_future_ms))
        {
            return Err(Refused::FutureTime);
        }
        if !inner.sensors.contains_key(name) {
            self.admit(inner, name, now)?;
        }
        let Inner {
            writer,
            sensors,
            timeline,
            ..
        } = inner;
        // Admitted just above when it was missing.
        let state = sensors.get_mut(name).ok_or(Refused::TooManySensors)?;
        let (timestamp, clock_synced) = match reading.time_ms {
            Some(ms) if ms < state.last_ms => return Err(Refused::TimeWentBack),
            // The sender's clock: whether it was synchronised is the sender's to know.
            Some(ms) => (ms, true),
            // The agent's clock: stamped as the sampler stamps, on a timeline that holds
            // stamps through a step back and marks them (see `sensor/timeline.rs`).
            None => {
                let stamp =
                    timeline.stamp(self.clock.monotonic(), received_ms, self.clock.sync_state());
                if let Some(event) = stamp.event {
                    self.note_clock(event, stamp.unix_ms);
                }
                if !stamp.clock_synced {
                    LinesStats::count(&self.stats.unsynced_samples);
                }
                (stamp.unix_ms.max(state.last_ms), stamp.clock_synced)
            }
        };
        let sample = Sample {
            timestamp,
            run_id: state.run_id,
            seq: state.next_seq,
            clock_synced,
            temperature: reading.temperature,
            humidity: reading.humidity,
            pressure: reading.pressure,
            gas_resistance: reading.gas_resistance,
            air_quality: reading.value,
            gas_valid: true,
            heater_stable: true,
            burn_in: false,
            sensor_id: Some(state.key.clone()),
            peer: peer.cloned(),
        };
        // Room was checked under this lock and only this writer adds: it is stored.
        writer.push(sample);
        state.next_seq = state.next_seq.saturating_add(1);
        state.last_ms = timestamp;
        state.last_seen = now;
        LinesStats::count(&self.stats.accepted);
        Ok(())
    }

    /// Makes room for and enters a new sensor, or refuses it at the bound.
    fn admit(&self, inner: &mut Inner, name: &str, now: Instant) -> Result<(), Refused> {
        if inner.sensors.len() >= self.max_sensors {
            let due = inner
                .last_sweep
                .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY);
            if due {
                inner.last_sweep = Some(now);
                let before = inner.sensors.len();
                let idle = self.sensor_idle;
                inner
                    .sensors
                    .retain(|_, s| now.saturating_duration_since(s.last_seen) < idle);
                let expired = before.saturating_sub(inner.sensors.len()) as u64;
                self.stats
                    .sensors_expired
                    .fetch_add(expired, Ordering::Relaxed);
            }
            if inner.sensors.len() >= self.max_sensors {
                return Err(Refused::TooManySensors);
            }
        }
        inner.admitted = inner.admitted.wrapping_add(1);
        // A fresh run per admission: a sensor forgotten and seen again restarts its
        // sequence at 0, and must not reuse the `_id`s of its first run.
        let run_id = RunId::generate().unwrap_or_else(|_| {
            RunId::from_raw(self.fallback_run.raw().wrapping_add(inner.admitted))
        });
        let key: Arc<str> = Arc::from(name);
        inner.sensors.insert(
            key.clone(),
            SensorState {
                key,
                run_id,
                next_seq: 0,
                last_ms: i64::MIN,
                last_seen: now,
            },
        );
        self.stats
            .sensors_active
            .store(inner.sensors.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Counts a refused line and logs it within the rate limit: where it came from, its
    /// line number, why, and the start of it, escaped.
    pub fn refuse(&self, reason: Refused, origin: &str, line_no: u64, line: &[u8]) {
        self.refuse_noted(reason, origin, line_no, line, "");
    }

    /// [`Self::refuse`], the log line ending with `note` (the agent's own text).
    pub fn refuse_noted(
        &self,
        reason: Refused,
        origin: &str,
        line_no: u64,
        line: &[u8],
        note: &str,
    ) {
        LinesStats::count(&self.stats.refused[reason.index()]);
        self.warn_limited(|| {
            let shown = String::from_utf8_lossy(&line[..line.len().min(LOG_LINE_BYTES)]);
            format!(
                "{origin} line {line_no}: refused ({}): {}{note}",
                reason.name(),
                text::untrusted(&shown),
            )
        });
    }

    /// Counts and logs (within the rate limit) a step of the wall clock.
    fn note_clock(&self, event: ClockEvent, stamped_ms: i64) {
        let counter = match event {
            ClockEvent::SteppedBack { .. } => &self.stats.clock_steps_back,
            ClockEvent::SteppedForward { .. } => &self.stats.clock_steps_forward,
            ClockEvent::CaughtUp | ClockEvent::FirstSync => return,
        };
        LinesStats::count(counter);
        self.warn_limited(|| match event {
            ClockEvent::SteppedBack { by_ms } => format!(
                "the wall clock stepped back by {by_ms} ms; lines are stamped on the monotonic clock from {} until it catches up, marked clock_synced = false",
                crate::support::timestamp::format(stamped_ms)
            ),
            _ => format!(
                "the wall clock stepped forward; lines are stamped from {}",
                crate::support::timestamp::format(stamped_ms)
            ),
        });
    }

    /// Logs what `message` makes within the refused lines' rate limit (a flood of bad
    /// lines and one of bad handshakes or strangers are one flood for the log); the rest
    /// are counted.
    pub fn warn_limited(&self, message: impl FnOnce() -> String) {
        let admitted = self.log.lock().map(|mut log| log.allow()).unwrap_or(None);
        match admitted {
            Some(suppressed) => warn!("{}{}", message(), LogRate::note(suppressed)),
            None => LinesStats::count(&self.stats.log_suppressed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensor::clock::{Clock, ClockSync, VirtualClock};
    use crate::sensor::queue::sample_queue;
    use std::borrow::Cow;

    fn reading(sensor: &str, time_ms: Option<i64>, value: f32) -> Reading<'_> {
        Reading {
            sensor: Some(Cow::Borrowed(sensor)),
            time_ms,
            value,
            temperature: f32::NAN,
            humidity: f32::NAN,
            pressure: f32::NAN,
            gas_resistance: f32::NAN,
        }
    }

    fn feed(capacity: usize, max_sensors: usize) -> (Feed, crate::sensor::SampleReader) {
        let (writer, reader) = sample_queue(capacity).unwrap();
        let feed = Feed::new(
            writer,
            "default",
            max_sensors,
            Duration::from_secs(3600),
            Arc::default(),
            Arc::default(),
        );
        (feed, reader)
    }

    /// Lines stamped on receipt go through the sampler's timeline: a step back of the wall
    /// clock is counted once (not once per sensor), stamps hold on the monotonic clock and
    /// are marked until it catches up, and lines before the first sync are marked too.
    #[test]
    fn lines_stamped_on_receipt_hold_and_count_a_clock_step() {
        let clock = Arc::new(VirtualClock::default());
        clock.set_sync(ClockSync::Unsynced);
        let (feed, reader) = feed(64, 4);
        let feed = feed.with_clock(clock.clone());
        let second = Duration::from_secs(1);
        let offer = |sensor: &str| {
            feed.offer(&reading(sensor, None, 1.0), WhenFull::Drop)
                .unwrap();
            clock.advance(second);
        };
        offer("a");
        clock.set_sync(ClockSync::Synced);
        offer("a");
        offer("b");
        clock.step_wall(-60_000);
        offer("a");
        offer("b");
        let stats = feed.stats().clone();
        let mut samples = Vec::new();
        reader.drain_into(&mut samples);
        let stamps: Vec<(i64, bool)> = samples
            .iter()
            .map(|s| (s.timestamp - 1_767_225_600_000, s.clock_synced))
            .collect();
        // Before the sync: marked. After the step: held a second apart on the monotonic
        // clock, marked, for either sensor.
        assert_eq!(
            stamps,
            [
                (0, false),
                (1_000, true),
                (2_000, true),
                (3_000, false),
                (4_000, false)
            ]
        );
        assert_eq!(stats.clock_steps_back.load(Ordering::Relaxed), 1);
        assert_eq!(stats.clock_steps_forward.load(Ordering::Relaxed), 0);
        assert_eq!(stats.unsynced_samples.load(Ordering::Relaxed), 3);
        let counts = stats.counts("tcp");
        assert_eq!((counts.clock_steps_back, counts.unsynced_samples), (1, 3));
    }

    #[test]
    fn each_sensor_has_its_own_run_and_sequence() {
        let (feed, reader) = feed(16, 4);
        for (sensor, value) in [("a", 1.0), ("b", 2.0), ("a", 3.0)] {
            feed.offer(&reading(sensor, Some(5), value), WhenFull::Drop)
                .unwrap();
        }
        let mut none = reading("", None, 4.0);
        none.sensor = None;
        feed.offer(&none, WhenFull::Drop).unwrap();
        let mut samples = Vec::new();
        reader.drain_into(&mut samples);
        let keys: Vec<(&str, u64)> = samples
            .iter()
            .map(|s| (s.sensor_id.as_deref().unwrap(), s.seq))
            .collect();
        assert_eq!(keys, [("a", 0), ("b", 0), ("a", 1), ("default", 0)]);
        assert_eq!(samples[0].run_id, samples[2].run_id);
        assert_ne!(samples[0].run_id, samples[1].run_id);
        assert!(samples[3].timestamp > 1_700_000_000_000);
    }

    #[test]
    fn a_time_too_far_ahead_is_refused_and_does_not_poison_the_sensor() {
        let (feed, reader) = feed(16, 4);
        let feed = feed.with_max_future(Duration::from_secs(60));
        let now = SystemClock::new().unix_millis();
        assert_eq!(
            feed.offer(&reading("a", Some(now + 3_600_000), 1.0), WhenFull::Drop),
            Err(Refused::FutureTime)
        );
        feed.offer(&reading("a", Some(now + 30_000), 2.0), WhenFull::Drop)
            .unwrap();
        feed.offer(&reading("a", Some(now + 31_000), 3.0), WhenFull::Drop)
            .unwrap();
        assert_eq!(reader.len(), 2);
        // Refused before it could take a place in the table.
        assert_eq!(
            feed.offer(&reading("b", Some(now + 3_600_000), 1.0), WhenFull::Drop),
            Err(Refused::FutureTime)
        );
        assert_eq!(feed.stats().sensors_active.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn time_going_back_is_refused_per_sensor() {
        let (feed, _reader) = feed(16, 4);
        feed.offer(&reading("a", Some(100), 1.0), WhenFull::Drop)
            .unwrap();
        assert_eq!(
            feed.offer(&reading("a", Some(99), 1.0), WhenFull::Drop),
            Err(Refused::TimeWentBack)
        );
        // Another sensor has its own clock; the same time again is not going back.
        feed.offer(&reading("b", Some(50), 1.0), WhenFull::Drop)
            .unwrap();
        feed.offer(&reading("a", Some(100), 1.0), WhenFull::Drop)
            .unwrap();
    }

    #[test]
    fn the_sensor_bound_refuses_new_sensors_and_a_full_queue_drops_datagrams() {
        let (feed, reader) = feed(3, 2);
        feed.offer(&reading("a", None, 1.0), WhenFull::Drop)
            .unwrap();
        feed.offer(&reading("b", None, 1.0), WhenFull::Drop)
            .unwrap();
        assert_eq!(
            feed.offer(&reading("c", None, 1.0), WhenFull::Drop),
            Err(Refused::TooManySensors)
        );
        feed.offer(&reading("a", None, 1.0), WhenFull::Drop)
            .unwrap();
        assert_eq!(
            feed.offer(&reading("a", None, 1.0), WhenFull::Drop),
            Err(Refused::QueueFull)
        );
        assert_eq!(reader.len(), 3);
        assert_eq!(feed.stats().sensors_active.load(Ordering::Relaxed), 2);
        assert_eq!(feed.stats().accepted.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn idle_sensors_are_forgotten_at_the_bound() {
        let (writer, _reader) = sample_queue(8).unwrap();
        let feed = Feed::new(
            writer,
            "default",
            1,
            Duration::ZERO,
            Arc::default(),
            Arc::default(),
        );
        feed.offer(&reading("a", None, 1.0), WhenFull::Drop)
            .unwrap();
        feed.offer(&reading("b", None, 1.0), WhenFull::Drop)
            .unwrap();
        assert_eq!(feed.stats().sensors_expired.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_stream_waits_for_room_until_the_reader_makes_some() {
        let (feed, reader) = feed(1, 2);
        let feed = Arc::new(feed);
        feed.offer(&reading("a", None, 1.0), WhenFull::Wait)
            .unwrap();
        let writer = {
            let feed = feed.clone();
            std::thread::spawn(move || feed.offer(&reading("a", None, 2.0), WhenFull::Wait))
        };
        // The second offer cannot finish before the first sample is taken out.
        let first = loop {
            if feed.stats().queue_waits.load(Ordering::Relaxed) == 1 {
                break reader.pop().unwrap();
            }
            std::thread::yield_now();
        };
        assert_eq!(writer.join().unwrap(), Ok(()));
        assert_eq!(first.air_quality, 1.0);
        assert_eq!(reader.pop().map(|s| s.air_quality), Some(2.0));
    }
}
