//! The shipping thread: spool → `_bulk` → answer → settled in the spool.
//!
//! The rule for each answer is [`super::client::classify_response`] and `item_outcome`
//! (the README's table); this file acts on it: remove what was delivered, dead-letter what
//! no retry can fix, back off on what a retry may fix, pause on what a person or the cluster
//! must fix. The index template is installed at start and again whenever it or the index
//! is found missing. A new outcome goes in the client's rule first, then in `ship`/`settle`.
//!
//! Fleet-safe catch-up lives here too, so it holds for every document whatever its
//! destination: the first try after a failure (and the first request of an agent that
//! starts with a backlog) waits a random share of `retry_spread`, so agents that lost the
//! cluster together do not come back together; and the drain can be capped at
//! `drain_max_docs_per_sec` (a [`TokenBucket`] of documents, `batch_max_docs` of burst).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{error, info, warn};
use serde_json::{Value, json};

use super::client::{ClientError, Pause, Routes, TemplateState, template_body};
use super::{BulkOutcome, Client, ItemOutcome};
use crate::spool::{Destination, Entry, Spool, rotate_if_full};
use crate::support::backoff::{Backoff, Jitter};
use crate::support::log_rate::{LogRate, TokenBucket, monotonic_now};

/// How often the template is looked for while all is well: a cluster recreated without a
/// connection error in between is noticed within this.
const TEMPLATE_RECHECK: Duration = Duration::from_secs(600);

/// Shippers made in this process, a salt for their jitter.
static SHIPPERS: AtomicU64 = AtomicU64::new(0);

/// Counters for status lines and metrics.
#[derive(Debug, Default)]
pub struct ShipStats {
    /// Stored by the cluster (2xx) and removed from the spool.
    pub shipped: AtomicU64,
    /// Already in the index from an earlier try (409 on `create`), removed from the spool.
    pub duplicates: AtomicU64,
    /// Documents sent again after a retriable failure.
    pub retried: AtomicU64,
    /// Refused for good, written to the dead-letter file, removed from the spool.
    pub dead_lettered: AtomicU64,
    pub requests: AtomicU64,
    /// Unix ms of the last request that delivered anything; 0 before the first.
    pub last_success_ms: AtomicU64,
    /// Times shipping paused (authorisation, a block, a missing index, misrouting).
    pub pauses: AtomicU64,
    /// Why shipping is paused now: 0 not paused, else [`pause_code`].
    pub paused: AtomicU64,
    /// Times the index template was installed.
    pub template_installs: AtomicU64,
    /// 1 when the template could not be installed for want of the privilege.
    pub template_forbidden: AtomicU64,
    /// Dead-letter file rotations.
    pub dead_letter_rotations: AtomicU64,
    /// Fleet status documents stored by the cluster (or already there): part of
    /// `shipped` and `duplicates`.
    pub status_delivered: AtomicU64,
    /// Times the drain cap held a batch back, and for how long in all (ms).
    pub throttled: AtomicU64,
    pub throttled_ms: AtomicU64,
    /// Times the first try after a failure, or at a start with a backlog, was spread.
    pub spread_waits: AtomicU64,
}

/// The code [`ShipStats::paused`] holds for each reason.
pub fn pause_code(why: Pause) -> u64 {
    match why {
        Pause::Unauthorized => 1,
        Pause::Blocked => 2,
        Pause::MissingIndex => 3,
        Pause::Misrouted => 4,
    }
}

/// The reason behind a [`ShipStats::paused`] code.
pub fn pause_of_code(code: u64) -> Option<Pause> {
    [
        Pause::Unauthorized,
        Pause::Blocked,
        Pause::MissingIndex,
        Pause::Misrouted,
    ]
    .into_iter()
    .find(|why| pause_code(*why) == code)
}

/// How the shipper batches and backs off.
#[derive(Clone, Debug)]
pub struct ShipperSettings {
    pub index: String,
    pub data_stream: bool,
    pub install_template: bool,
    pub batch_max_docs: usize,
    pub batch_max_bytes: usize,
    /// How long the first document of a batch may wait for company.
    pub batch_max_delay: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// The wait after a pause (401/403, a block, a missing index, misrouting): a person
    /// or the cluster has to change something.
    pub auth_retry: Duration,
    pub dead_letter: PathBuf,
    /// Rotated to `.1` past this size.
    pub dead_letter_max_bytes: u64,
    /// Where fleet status documents go ([`Destination::Status`]).
    pub status_index: String,
    /// The status index's template, installed beside the verdicts' when templates are
    /// managed; `None` when status documents are not written.
    pub status_template: Option<Value>,
    /// Documents per second at most, retries included; 0 for no cap.
    pub drain_max_docs_per_sec: u32,
    /// The first try after a failure, and the first request of a start with a backlog of
    /// a batch or more, waits a uniformly random share of this (at most `retry_max`).
    pub retry_spread: Duration,
}

/// Stops the shipper and interrupts its waits.
pub type Stopper = crate::support::wake::Stop;

/// Whether upstream is taking documents, so a change is logged once, not every try.
#[derive(Debug, PartialEq)]
enum Health {
    Up,
    Down { failures: u32 },
    Paused(Pause),
}

/// Whether the index template is known to be in place.
#[derive(Debug, PartialEq)]
enum Template {
    /// Not to be managed (`install_template = false`).
    Unmanaged,
    /// To be installed before the next request.
    Needed,
    /// To be looked for before the next request (after an outage, or periodically).
    Check,
    Installed {
        checked: Instant,
    },
    /// 401/403 on installing: said once, shipping goes on without.
    Forbidden,
}

pub struct Shipper {
    client: Client,
    spool: Arc<Spool>,
    settings: ShipperSettings,
    stats: Arc<ShipStats>,
    stopper: Arc<Stopper>,
    health: Health,
    template: Template,
    jitter: Jitter,
    dead_letter_log: LogRate,
    spool_log: LogRate,
    routes: Routes,
    /// The drain cap, if any.
    cap: Option<TokenBucket>,
}

/// The running shipper.
pub struct ShipperHandle {
    thread: JoinHandle<()>,
    stopper: Arc<Stopper>,
    done: Arc<AtomicBool>,
    last_pass: Arc<AtomicBool>,
}

impl ShipperHandle {
    /// Stops the shipper and waits at most `grace` for it. What the spool holds then is
    /// shipped in a last pass first, while upstream is taking documents (a clean stop
    /// ships what it judged; a cluster that is away is not waited for). A request still in
    /// flight at `grace` is abandoned with its thread (answers `false`): its documents were
    /// not settled, so they stay in the spool, and a hanging upstream cannot hold the
    /// agent's shutdown.
    pub fn stop(self, grace: Duration) -> bool {
        self.last_pass.store(true, Ordering::Release);
        self.stopper.stop();
        let done = self.done.clone();
        if !self
            .stopper
            .wait_regardless(grace, || done.load(Ordering::Acquire))
        {
            return false;
        }
        if self.thread.join().is_err() {
            warn!("the shipper thread panicked");
        }
        true
    }
}

/// Whether to go on with the rest of a split batch, or wait this long.
enum Flow {
    Continue,
    Pause,
    /// The spool, not upstream, is in the way: wait this long, upstream's state unchanged.
    Wait(Duration),
}

impl Shipper {
    pub fn new(
        client: Client,
        spool: Arc<Spool>,
        settings: ShipperSettings,
        stats: Arc<ShipStats>,
        stopper: Arc<Stopper>,
    ) -> Self {
        let template = if settings.install_template {
            Template::Needed
        } else {
            Template::Unmanaged
        };
        let routes = Routes {
            verdicts: settings.index.clone(),
            status: settings.status_index.clone(),
        };
        // The burst is a full batch: the cap spaces requests out rather than shrinking
        // them, and the cluster would rather take a few large bulks than many small ones.
        let cap = (settings.drain_max_docs_per_sec > 0).then(|| {
            TokenBucket::per_second(
                settings.drain_max_docs_per_sec,
                u32::try_from(settings.batch_max_docs).unwrap_or(u32::MAX),
            )
        });
        Self {
            client,
            spool,
            settings,
            stats,
            stopper,
            health: Health::Up,
            template,
            // Salted with the process and the shipper: agents started by the same power cut
            // (or shippers of one process, in a benchmark) still draw apart.
            jitter: Jitter::seeded(
                u64::from(std::process::id()) ^ SHIPPERS.fetch_add(1, Ordering::Relaxed) << 32,
            ),
            dead_letter_log: LogRate::every(Duration::from_secs(60)),
            spool_log: LogRate::every(Duration::from_secs(60)),
            routes,
            cap,
        }
    }

    /// A uniformly random share of the spread window (`retry_spread`, at most `retry_max`).
    fn spread(&mut self) -> Duration {
        let window = self.settings.retry_spread.min(self.settings.retry_max);
        if window.is_zero() {
            return Duration::ZERO;
        }
        self.stats.spread_waits.fetch_add(1, Ordering::Relaxed);
        window.mul_f64(self.jitter.fraction())
    }

    /// How long the drain cap holds the next batch back, counted; zero without a cap.
    fn throttle(&mut self) -> Duration {
        let depth = usize::try_from(self.spool.depth()).unwrap_or(usize::MAX);
        let want =
            u32::try_from(self.settings.batch_max_docs.min(depth).max(1)).unwrap_or(u32::MAX);
        let Some(cap) = self.cap.as_mut() else {
            return Duration::ZERO;
        };
        let wait = cap.wait_for(want, monotonic_now());
        if !wait.is_zero() {
            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
            self.stats.throttled_ms.fetch_add(
                u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
        wait
    }

    pub fn spawn(self) -> std::io::Result<ShipperHandle> {
        let stopper = self.stopper.clone();
        let done = Arc::new(AtomicBool::new(false));
        let last_pass = Arc::new(AtomicBool::new(false));
        let (thread_done, thread_last_pass) = (done.clone(), last_pass.clone());
        let thread = std::thread::Builder::new()
            .name("shipper".into())
            .spawn(move || {
                let stopper = self.stopper.clone();
                let mut shipper = self.run();
                if thread_last_pass.load(Ordering::Acquire) {
                    shipper.last_pass();
                }
                thread_done.store(true, Ordering::Release);
                stopper.notify();
            })?;
        Ok(ShipperHandle {
            thread,
            stopper,
            done,
            last_pass,
        })
    }

    /// After the stop: what the spool holds, batch after batch without waiting, while
    /// upstream takes it (the drain cap still holds). The first batch that does not go
    /// through ends it, its documents kept in the spool for the next start; the handle's
    /// grace bounds the whole pass.
    fn last_pass(&mut self) {
        if self.health != Health::Up {
            return;
        }
        let mut shipped = 0u64;
        while self.spool.depth() > 0 || self.spool.pending() > 0 {
            if self.spool.pending() > 0 && self.spool.flush_pending().is_err() {
                break;
            }
            let before = self.spool.depth();
            let flow = match self.ensure_template() {
                Flow::Continue => self.next_batch(),
                other => other,
            };
            let after = self.spool.depth();
            if !matches!(flow, Flow::Continue) || after >= before {
                break;
            }
            shipped = shipped.saturating_add(before - after);
        }
        if shipped > 0 {
            info!("last pass at the stop: {shipped} documents settled");
        }
    }

    /// Ships until stopped; answers itself for the last pass.
    fn run(mut self) -> Self {
        let backlog = usize::try_from(self.spool.depth()).unwrap_or(usize::MAX);
        if backlog >= self.settings.batch_max_docs {
            let wait = self.spread();
            info!(
                "{backlog} documents queued at start: the first request waits {wait:.1?} (spread over [elasticsearch] retry_spread_ms)"
            );
            if self.stopper.sleep(wait) {
                return self;
            }
        }
        while !self.stopper.is_stopped() {
            if self.spool.pending() > 0
                && let Err(e) = self.spool.flush_pending()
                && let Some(suppressed) = self.spool_log.allow()
            {
                warn!(
                    "the spool still cannot store {} documents kept in memory: {e}{}",
                    self.spool.pending(),
                    LogRate::note(suppressed)
                );
            }
            if !self.spool.wait_for_entries(Duration::from_millis(500)) {
                continue;
            }
            if usize::try_from(self.spool.depth()).unwrap_or(usize::MAX)
                < self.settings.batch_max_docs
                && self.stopper.sleep(self.settings.batch_max_delay)
            {
                return self;
            }
            let throttle = self.throttle();
            if !throttle.is_zero() {
                if self.stopper.sleep(throttle) {
                    return self;
                }
                continue;
            }
            let flow = match self.ensure_template() {
                Flow::Continue => self.next_batch(),
                other => other,
            };
            let wait = match flow {
                Flow::Continue => continue,
                Flow::Pause => self.pause(),
                Flow::Wait(wait) => wait,
            };
            if self.stopper.sleep(wait) {
                return self;
            }
        }
        self
    }

    fn next_batch(&mut self) -> Flow {
        let now = monotonic_now();
        let max_docs = match self.cap.as_mut() {
            Some(cap) => self
                .settings
                .batch_max_docs
                .min(usize::try_from(cap.available(now)).unwrap_or(usize::MAX)),
            None => self.settings.batch_max_docs,
        };
        if max_docs == 0 {
            return Flow::Continue;
        }
        match self.spool.peek(max_docs, self.settings.batch_max_bytes) {
            Ok(batch) if batch.is_empty() => Flow::Continue,
            Ok(batch) => {
                if let Some(cap) = self.cap.as_mut() {
                    // Never more than `available`: peek took at most that many.
                    let _ = cap.try_take(u32::try_from(batch.len()).unwrap_or(u32::MAX), now);
                }
                self.ship(&batch)
            }
            Err(e) => {
                if let Some(suppressed) = self.spool_log.allow() {
                    error!("cannot read the spool: {e}{}", LogRate::note(suppressed));
                }
                // The disk, not Elasticsearch: the spool reopens itself (every 2 s at most).
                Flow::Wait(Duration::from_secs(1))
            }
        }
    }

    /// The templates the shipper manages: the verdicts', and the status index's when
    /// status documents are written.
    fn templates(&self) -> Vec<(String, Value)> {
        let index = &self.settings.index;
        let mut templates = vec![(
            index.clone(),
            template_body(index, self.settings.data_stream),
        )];
        if let Some(body) = &self.settings.status_template {
            templates.push((self.settings.status_index.clone(), body.clone()));
        }
        templates
    }

    /// Puts the templates in place when they are needed or due for a look.
    fn ensure_template(&mut self) -> Flow {
        let due = match &self.template {
            Template::Unmanaged | Template::Forbidden => return Flow::Continue,
            Template::Needed => true,
            Template::Check => false,
            Template::Installed { checked } if checked.elapsed() >= TEMPLATE_RECHECK => false,
            Template::Installed { .. } => return Flow::Continue,
        };
        let templates = self.templates();
        let install = due
            || {
                let mut missing = false;
                for (index, _) in &templates {
                    match self.client.template_state(index) {
                        Ok(TemplateState::Present) => {}
                        Ok(TemplateState::Missing) => {
                            warn!(
                                "the index template for {index} is missing (a new cluster?): installing it again"
                            );
                            missing = true;
                        }
                        // A key that may not even read templates: install, and learn from that.
                        Err(ClientError::Status {
                            status: 401 | 403, ..
                        }) => missing = true,
                        Err(e) => {
                            self.failed(&format!("cannot look for the index template: {e}"));
                            return Flow::Pause;
                        }
                    }
                }
                missing
            };
        if !install {
            self.template = Template::Installed {
                checked: Instant::now(),
            };
            return Flow::Continue;
        }
        for (index, body) in &templates {
            match self.client.install_template_body(index, body) {
                Ok(()) => {
                    info!("index template for {index} installed");
                    self.stats.template_installs.fetch_add(1, Ordering::Relaxed);
                    self.stats.template_forbidden.store(0, Ordering::Relaxed);
                }
                Err(ClientError::Status {
                    status: status @ (401 | 403),
                    reason,
                }) => {
                    warn!(
                        "no privilege to install the index template for {index} (HTTP {status}: {reason}); shipping anyway, with whatever mappings the cluster has"
                    );
                    self.stats.template_forbidden.store(1, Ordering::Relaxed);
                    self.template = Template::Forbidden;
                    return Flow::Continue;
                }
                Err(e) => {
                    self.failed(&format!("cannot install the index template: {e}"));
                    return Flow::Pause;
                }
            }
        }
        self.template = Template::Installed {
            checked: Instant::now(),
        };
        Flow::Continue
    }

    fn ship(&mut self, batch: &[Entry]) -> Flow {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        match self.client.bulk_routed(&self.routes, batch) {
            BulkOutcome::Items(items) => self.settle(batch, items),
            BulkOutcome::Retry(reason) => {
                self.stats
                    .retried
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.failed(&reason);
                Flow::Pause
            }
            BulkOutcome::NoAnswer(reason) => {
                self.stats
                    .retried
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.failed(&reason);
                // A cluster that was away may come back empty: look for the template first.
                if matches!(self.template, Template::Installed { .. }) {
                    self.template = Template::Check;
                }
                Flow::Pause
            }
            BulkOutcome::Paused { why, reason } => {
                self.paused(why, &reason);
                Flow::Pause
            }
            BulkOutcome::TooLarge | BulkOutcome::Rejected { .. } if batch.len() > 1 => {
                // Halve until the culprit is alone: the rest still goes through.
                let (left, right) = batch.split_at(batch.len() / 2);
                match self.ship(left) {
                    Flow::Continue => self.ship(right),
                    other => other,
                }
            }
            BulkOutcome::TooLarge => {
                let reason = "HTTP 413: the document alone is larger than the server accepts";
                self.dead_letter(batch, 413, reason)
            }
            BulkOutcome::Rejected { status, reason } => self.dead_letter(batch, status, &reason),
        }
    }

    /// Settles what the cluster took or will never take; leaves the rest for a retry.
    fn settle(&mut self, batch: &[Entry], items: Vec<ItemOutcome>) -> Flow {
        let mut stored = Vec::with_capacity(batch.len());
        let mut already = Vec::new();
        let mut retry = None;
        let mut retry_count = 0;
        let mut pause = None;
        let mut rejected: Vec<(&Entry, u16, String)> = Vec::new();
        for (entry, item) in batch.iter().zip(items) {
            match item {
                ItemOutcome::Stored => stored.push(entry.seq),
                ItemOutcome::AlreadyThere => already.push(entry.seq),
                ItemOutcome::Retry(reason) => {
                    retry_count += 1;
                    retry.get_or_insert(reason);
                }
                ItemOutcome::Paused { why, reason } => {
                    pause.get_or_insert((why, reason));
                }
                ItemOutcome::Rejected { status, reason } => rejected.push((entry, status, reason)),
            }
        }
        let delivered: Vec<u64> = stored.iter().chain(&already).copied().collect();
        match self.spool.settle(&delivered, &[]) {
            Ok(settled) => {
                // Only what was still there: a document dropped meanwhile was counted then.
                let removed = |seqs: &[u64]| {
                    seqs.iter().filter(|s| settled.removed.contains(s)).count() as u64
                };
                self.stats
                    .shipped
                    .fetch_add(removed(&stored), Ordering::Relaxed);
                self.stats
                    .duplicates
                    .fetch_add(removed(&already), Ordering::Relaxed);
                let status = batch
                    .iter()
                    .filter(|e| {
                        e.destination == Destination::Status && settled.removed.contains(&e.seq)
                    })
                    .count() as u64;
                self.stats
                    .status_delivered
                    .fetch_add(status, Ordering::Relaxed);
            }
            Err(e) => error!("cannot remove delivered documents from the spool: {e}"),
        }
        self.spool.wake();
        let mut flow = Flow::Continue;
        for (entry, status, reason) in rejected {
            if let Flow::Pause = self.dead_letter(std::slice::from_ref(entry), status, &reason) {
                flow = Flow::Pause;
            }
        }
        if !delivered.is_empty() {
            self.stats
                .last_success_ms
                .store(unix_ms(), Ordering::Relaxed);
            if self.spool.depth() == 0 {
                log::debug!(
                    "caught up: delivered {} documents, the spool is empty",
                    delivered.len()
                );
            }
        }
        if let Some((why, reason)) = pause {
            self.paused(why, &reason);
            return Flow::Pause;
        }
        match retry {
            Some(reason) => {
                self.stats.retried.fetch_add(retry_count, Ordering::Relaxed);
                self.failed(&format!(
                    "{retry_count} documents refused for now ({reason})"
                ));
                Flow::Pause
            }
            None => {
                if let Flow::Continue = flow {
                    self.recovered();
                }
                flow
            }
        }
    }

    /// Writes refused documents with the reason, then removes them from the spool. When the
    /// file cannot be written they stay in the spool and shipping waits.
    fn dead_letter(&mut self, entries: &[Entry], status: u16, reason: &str) -> Flow {
        let path = &self.settings.dead_letter;
        let rotated =
            std::fs::metadata(path).is_ok_and(|m| m.len() >= self.settings.dead_letter_max_bytes);
        let written = rotate_if_full(path, self.settings.dead_letter_max_bytes).and_then(|()| {
            let mut file = OpenOptions::new().create(true).append(true).open(path)?;
            for entry in entries {
                let document =
                    serde_json::from_slice::<Value>(&entry.document).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(&entry.document).into())
                    });
                let line = json!({
                    "dead_lettered_at": crate::support::timestamp::format(i64::try_from(unix_ms()).unwrap_or(i64::MAX)),
                    "_id": entry.id,
                    "status": status,
                    "reason": reason,
                    "document": document,
                });
                writeln!(file, "{line}")?;
            }
            file.sync_data()
        });
        if rotated {
            self.stats
                .dead_letter_rotations
                .fetch_add(1, Ordering::Relaxed);
        }
        if let Err(e) = written {
            // Keep them in the spool rather than lose them.
            self.failed(&format!(
                "cannot write the dead-letter file {}: {e}; keeping {} refused documents in the spool",
                path.display(),
                entries.len()
            ));
            return Flow::Pause;
        }
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        match self.spool.settle(&[], &seqs) {
            Ok(settled) => {
                self.stats
                    .dead_lettered
                    .fetch_add(settled.removed.len() as u64, Ordering::Relaxed);
            }
            Err(e) => error!("cannot remove dead-lettered documents from the spool: {e}"),
        }
        self.spool.wake();
        if let Some(suppressed) = self.dead_letter_log.allow() {
            warn!(
                "{} document(s) refused by Elasticsearch (HTTP {status}: {reason}); written to {}{}",
                entries.len(),
                path.display(),
                LogRate::note(suppressed)
            );
        }
        Flow::Continue
    }

    fn paused(&mut self, why: Pause, reason: &str) {
        if self.health != Health::Paused(why) {
            error!(
                "shipping paused: {} (HTTP answer: {reason}); {} documents kept in the spool, next try in {:?}",
                why.advice(),
                self.spool.depth(),
                self.settings.auth_retry
            );
            self.stats.pauses.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.paused.store(pause_code(why), Ordering::Relaxed);
        self.health = Health::Paused(why);
        if why == Pause::MissingIndex && self.template != Template::Unmanaged {
            self.template = Template::Needed;
        }
    }

    fn failed(&mut self, reason: &str) {
        match &mut self.health {
            Health::Down { failures } => *failures = failures.saturating_add(1),
            _ => {
                warn!(
                    "Elasticsearch unavailable: {reason}; retrying with backoff, {} documents kept in the spool",
                    self.spool.depth()
                );
                self.health = Health::Down { failures: 1 };
            }
        }
        self.stats.paused.store(0, Ordering::Relaxed);
    }

    fn recovered(&mut self) {
        match self.health {
            Health::Down { failures } => {
                info!("Elasticsearch is taking documents again (after {failures} failed tries)")
            }
            Health::Paused(why) => info!(
                "Elasticsearch is taking documents again (the pause, {}, is over)",
                why.label()
            ),
            Health::Up => {}
        }
        self.stats.paused.store(0, Ordering::Relaxed);
        self.health = Health::Up;
    }

    /// Exponential backoff with jitter (half to all of the step), capped; the first try
    /// after a failure waits at least a random share of the spread window, so a fleet that
    /// lost the cluster at once does not retry at once; a pause waits `auth_retry`.
    fn pause(&mut self) -> Duration {
        let failures = match self.health {
            Health::Up => return Duration::ZERO,
            Health::Paused(_) => return self.settings.auth_retry,
            Health::Down { failures } => failures,
        };
        if failures <= 1 {
            let initial = self.settings.retry_initial;
            return self.spread().max(self.jitter.spread(initial));
        }
        let step =
            Backoff::new(self.settings.retry_initial, self.settings.retry_max).delay(failures);
        self.jitter.spread(step)
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ElasticsearchSection;
    use crate::spool::WhenFull;

    fn shipper(dir: &std::path::Path, spread: Duration) -> Shipper {
        let client = Client::new(
            "http://127.0.0.1:9",
            super::super::Auth::None,
            None,
            false,
            Duration::from_secs(1),
        )
        .unwrap();
        let spool =
            Arc::new(Spool::open(&dir.join("s.redb"), 1 << 20, WhenFull::DropOldest).unwrap());
        let settings = ShipperSettings {
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
            retry_spread: spread,
            ..ElasticsearchSection::default().shipper_settings(dir)
        };
        Shipper::new(
            client,
            spool,
            settings,
            Arc::new(ShipStats::default()),
            Arc::new(Stopper::default()),
        )
    }

    #[test]
    fn the_first_retry_is_spread_over_the_window_and_later_ones_back_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut shipper = shipper(dir.path(), Duration::from_secs(30));
        shipper.health = Health::Down { failures: 1 };
        let firsts: Vec<Duration> = (0..2000).map(|_| shipper.pause()).collect();
        let secs = |d: &Duration| d.as_secs_f64();
        assert!(firsts.iter().all(|d| secs(d) >= 0.25 && secs(d) <= 30.0));
        // Uniform over 30 s: each tenth of the window gets about 200 of 2000.
        for tenth in 0..10 {
            let low = f64::from(tenth) * 3.0;
            let n = firsts
                .iter()
                .filter(|d| secs(d) >= low && secs(d) < low + 3.0)
                .count();
            assert!((100..=300).contains(&n), "{n} in [{low}, {}) s", low + 3.0);
        }
        assert_eq!(
            shipper.stats.spread_waits.load(Ordering::Relaxed),
            2000,
            "counted"
        );
        // Later retries: the backoff's own half-to-all jitter.
        shipper.health = Health::Down { failures: 3 };
        let third = shipper.pause();
        assert!(third >= Duration::from_secs(1) && third <= Duration::from_secs(2));
        // Without a spread the first retry is the backoff's first step.
        let mut plain = self::shipper(dir.path().join("b").as_path(), Duration::ZERO);
        plain.health = Health::Down { failures: 1 };
        assert!(plain.pause() <= Duration::from_millis(500));
    }

    #[test]
    fn the_spread_never_exceeds_retry_max() {
        let dir = tempfile::tempdir().unwrap();
        let mut shipper = shipper(dir.path(), Duration::from_secs(3600));
        shipper.settings.retry_max = Duration::from_secs(2);
        shipper.health = Health::Down { failures: 1 };
        assert!((0..500).all(|_| shipper.pause() <= Duration::from_secs(2)));
    }
}
