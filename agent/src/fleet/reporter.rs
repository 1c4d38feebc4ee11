//! When a status document is written, and the thread that writes them into the spool.
//!
//! The rule ([`Reporter::tick`]) is a pure function of time and of what the agent looks
//! like, so it is tested without threads or clocks: the first tick of a run reports; a
//! change of a [`ChangeKey`] field reports at once, within a bound (a [`TokenBucket`] of
//! [`CHANGE_BURST`] reports, one more per [`CHANGE_REFILL`]: a sensor flapping every second
//! writes a dozen documents an hour, not thousands; a change held back goes out with the
//! next token, never lost); and `interval` without a report reports anyway. A clean stop
//! writes one last document. The thread looks every [`TICK`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::status::{ChangeKey, Report, ReportKind, ReporterIdentity, StatusDocument};
use crate::spool::{Destination, Spool, SpoolError};
use crate::support::log_rate::{LogRate, TokenBucket, monotonic_now};
use crate::support::wake::Stop;

pub use super::status::Observed;

/// Change-driven reports at once, at most.
pub const CHANGE_BURST: u32 = 10;
/// One more change-driven report per this, once the burst is spent.
pub const CHANGE_REFILL: Duration = Duration::from_secs(60);
/// How often the thread looks for a change: a change is reported within this.
pub const TICK: Duration = Duration::from_secs(1);

/// The reporter's counters, for metrics.
#[derive(Debug, Default)]
pub struct FleetStats {
    /// Status documents handed to the spool.
    pub written: AtomicU64,
    /// Times a change-driven report was held back by the bound (it goes out later).
    pub deferred: AtomicU64,
}

/// The rule, and the state it needs: O(1).
#[derive(Debug)]
pub struct Reporter {
    identity: ReporterIdentity,
    interval: Duration,
    started: Duration,
    seq: u64,
    /// What the last report said, and when it was made (monotonic).
    last: Option<(ChangeKey, Duration)>,
    changes: TokenBucket,
    /// A change is waiting for a token (counted once).
    deferring: bool,
}

impl Reporter {
    /// A reporter for one run, started at monotonic time `now`.
    pub fn new(identity: ReporterIdentity, interval: Duration, now: Duration) -> Self {
        Self {
            identity,
            interval,
            started: now,
            seq: 0,
            last: None,
            changes: TokenBucket::new(CHANGE_BURST, CHANGE_REFILL),
            deferring: false,
        }
    }

    /// The document to write now, if any: at monotonic `now`, wall clock `unix_ms`.
    pub fn tick(
        &mut self,
        now: Duration,
        unix_ms: i64,
        observed: &Observed,
        stats: &FleetStats,
    ) -> Option<StatusDocument> {
        let key = ChangeKey::of(observed);
        let (kind, changed) = match &self.last {
            None => (ReportKind::Start, Vec::new()),
            Some((before, _)) if *before != key => {
                if !self.changes.try_take(1, now) {
                    if !self.deferring {
                        self.deferring = true;
                        stats.deferred.fetch_add(1, Ordering::Relaxed);
                    }
                    return self.periodic(now, unix_ms, observed, key);
                }
                self.deferring = false;
                (ReportKind::Change, key.changed_since(before))
            }
            Some(_) => return self.periodic(now, unix_ms, observed, key),
        };
        Some(self.report(now, unix_ms, observed, key, kind, changed))
    }

    /// The last document of the run, for a clean stop.
    pub fn stopping(&mut self, now: Duration, unix_ms: i64, observed: &Observed) -> StatusDocument {
        let key = ChangeKey::of(observed);
        let changed = match &self.last {
            Some((before, _)) => key.changed_since(before),
            None => Vec::new(),
        };
        self.report(now, unix_ms, observed, key, ReportKind::Stop, changed)
    }

    fn periodic(
        &mut self,
        now: Duration,
        unix_ms: i64,
        observed: &Observed,
        key: ChangeKey,
    ) -> Option<StatusDocument> {
        let due = self
            .last
            .as_ref()
            .is_some_and(|(_, at)| now.saturating_sub(*at) >= self.interval);
        if !due {
            return None;
        }
        // A change still held back rides along, named.
        let changed = match &self.last {
            Some((before, _)) => key.changed_since(before),
            None => Vec::new(),
        };
        self.deferring = false;
        Some(self.report(now, unix_ms, observed, key, ReportKind::Periodic, changed))
    }

    fn report(
        &mut self,
        now: Duration,
        unix_ms: i64,
        observed: &Observed,
        key: ChangeKey,
        kind: ReportKind,
        changed: Vec<&'static str>,
    ) -> StatusDocument {
        let document = StatusDocument::new(
            Report {
                identity: &self.identity,
                seq: self.seq,
                kind,
                changed,
                interval_secs: self.interval.as_secs(),
                uptime_secs: now.saturating_sub(self.started).as_secs(),
                unix_ms,
            },
            observed,
        );
        self.seq = self.seq.saturating_add(1);
        self.last = Some((key, now));
        document
    }
}

/// The running reporter.
pub struct ReporterHandle {
    thread: JoinHandle<()>,
    stop: Arc<Stop>,
}

impl ReporterHandle {
    /// Stops the reporter; it spools its last document (a clean stop) before it returns.
    pub fn stop(self) {
        self.stop.stop();
        if self.thread.join().is_err() {
            log::warn!("the fleet status reporter panicked");
        }
    }
}

/// Starts the thread: every [`TICK`] it reads `observe()` and spools what
/// [`Reporter::tick`] says to write.
pub fn spawn(
    mut reporter: Reporter,
    observe: impl Fn() -> Observed + Send + 'static,
    spool: Arc<Spool>,
    stats: Arc<FleetStats>,
) -> std::io::Result<ReporterHandle> {
    let stop = Arc::new(Stop::new());
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name("fleet-status".into())
        .spawn(move || {
            let mut log = LogRate::every(Duration::from_secs(60));
            loop {
                let observed = observe();
                if let Some(document) = reporter.tick(monotonic_now(), unix_ms(), &observed, &stats)
                {
                    write(&spool, &document, &stats, &mut log);
                }
                if thread_stop.sleep(TICK) {
                    let last = reporter.stopping(monotonic_now(), unix_ms(), &observe());
                    write(&spool, &last, &stats, &mut log);
                    return;
                }
            }
        })?;
    Ok(ReporterHandle { thread, stop })
}

fn write(spool: &Spool, document: &StatusDocument, stats: &FleetStats, log: &mut LogRate) {
    let body = match serde_json::to_vec(document) {
        Ok(body) => body,
        Err(e) => {
            log::error!("cannot encode a status document: {e}");
            return;
        }
    };
    match spool.append_to(Destination::Status, &[(document.document_id(), body)]) {
        // A disk that refuses keeps it in memory, bounded, like a verdict.
        Ok(_) | Err(SpoolError::Disk(_)) => {
            stats.written.fetch_add(1, Ordering::Relaxed);
            // A few an hour (see the bound above): worth a line each.
            log::info!(
                "status document {} spooled ({:?})",
                document.document_id(),
                document.report
            );
        }
        Err(e) => {
            if let Some(suppressed) = log.allow() {
                log::error!(
                    "cannot spool a status document: {e}{}",
                    LogRate::note(suppressed)
                );
            }
        }
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RolloutState;
    use crate::sensor::RunId;

    fn reporter() -> Reporter {
        Reporter::new(
            ReporterIdentity {
                host_id: "pi".into(),
                sensor_id: "s".into(),
                run_id: RunId::from_raw(1),
            },
            Duration::from_secs(300),
            Duration::ZERO,
        )
    }

    fn at(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn start_then_changes_at_once_then_periodically() {
        let stats = FleetStats::default();
        let mut reporter = reporter();
        let mut observed = Observed::default();
        let first = reporter.tick(at(0), 1, &observed, &stats).unwrap();
        assert_eq!((first.report, first.report_seq), (ReportKind::Start, 0));
        assert!(reporter.tick(at(1), 1, &observed, &stats).is_none());
        observed.counters.windows = 50;
        assert!(
            reporter.tick(at(2), 1, &observed, &stats).is_none(),
            "counters wait"
        );
        observed.function_sha256 = "new".into();
        let change = reporter.tick(at(3), 1, &observed, &stats).unwrap();
        assert_eq!(change.report, ReportKind::Change);
        assert_eq!(change.changed, ["function"]);
        assert_eq!((change.report_seq, change.counters.windows), (1, 50));
        assert!(reporter.tick(at(302), 1, &observed, &stats).is_none());
        let periodic = reporter.tick(at(303), 1, &observed, &stats).unwrap();
        assert_eq!(periodic.report, ReportKind::Periodic);
        assert_eq!(periodic.uptime_secs, 303);
        let last = reporter.stopping(at(304), 1, &observed);
        assert_eq!((last.report, last.report_seq), (ReportKind::Stop, 3));
    }

    #[test]
    fn a_flapping_state_is_bounded_and_its_last_state_still_reported() {
        let stats = FleetStats::default();
        let mut reporter = reporter();
        let mut observed = Observed::default();
        reporter.tick(at(0), 1, &observed, &stats).unwrap();
        let mut written = 0;
        // The sensor fails and recovers every second for an hour.
        for second in 1..=3600 {
            observed.counters.sensor_failing = second % 2 == 1;
            if reporter.tick(at(second), 1, &observed, &stats).is_some() {
                written += 1;
            }
        }
        // The burst, one a minute after it, and the periodic ones, no more.
        assert!(written <= CHANGE_BURST as usize + 60 + 12, "{written}");
        assert!(written >= 60, "{written}");
        assert!(stats.deferred.load(Ordering::Relaxed) > 0);
        // Once it settles, the settled state goes out within a refill.
        observed.counters.sensor_failing = true;
        observed.rollout.state = RolloutState::RolledBack;
        let settled = (3601..3601 + CHANGE_REFILL.as_secs() + 1)
            .filter_map(|s| reporter.tick(at(s), 1, &observed, &stats))
            .last()
            .unwrap();
        assert!(settled.counters.sensor_failing);
        assert_eq!(settled.rollout_state, RolloutState::RolledBack);
    }
}
