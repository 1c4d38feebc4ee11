//! The shipping thread: spool → `_bulk` → acknowledgement → removal from the spool.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{error, info, warn};
use serde_json::{Value, json};

use super::{BulkOutcome, Client, ItemOutcome};
use crate::spool::{Entry, Spool};
use crate::support::backoff::{Backoff, Jitter};

/// Counters for status lines and metrics.
#[derive(Debug, Default)]
pub struct ShipStats {
    pub shipped: AtomicU64,
    /// Already in the index from an earlier try (409 on `create`).
    pub duplicates: AtomicU64,
    /// Documents sent again after a retriable failure.
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub requests: AtomicU64,
    /// Unix ms of the last request that delivered anything; 0 before the first.
    pub last_success_ms: AtomicU64,
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
    /// The wait after 401/403: a person has to fix the credentials.
    pub auth_retry: Duration,
    pub dead_letter: PathBuf,
}

/// Stops the shipper and interrupts its waits.
pub type Stopper = crate::support::wake::Stop;

/// Whether upstream is taking documents, so a change is logged once, not every try.
#[derive(Debug, PartialEq)]
enum Health {
    Up,
    Down { failures: u32 },
}

pub struct Shipper {
    client: Client,
    spool: Arc<Spool>,
    settings: ShipperSettings,
    stats: Arc<ShipStats>,
    stopper: Arc<Stopper>,
    health: Health,
    jitter: Jitter,
}

/// Whether to go on with the rest of a split batch.
enum Flow {
    Continue,
    Pause,
}

impl Shipper {
    pub fn new(
        client: Client,
        spool: Arc<Spool>,
        settings: ShipperSettings,
        stats: Arc<ShipStats>,
        stopper: Arc<Stopper>,
    ) -> Self {
        Self {
            client,
            spool,
            settings,
            stats,
            stopper,
            health: Health::Up,
            jitter: Jitter::seeded(0),
        }
    }

    pub fn spawn(self) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("shipper".into())
            .spawn(move || self.run())
    }

    fn run(mut self) {
        if self.settings.install_template && !self.install_template() {
            return;
        }
        while !self.stopper.is_stopped() {
            if !self.spool.wait_for_entries(Duration::from_millis(500)) {
                continue;
            }
            if (self.spool.depth() as usize) < self.settings.batch_max_docs
                && self.stopper.sleep(self.settings.batch_max_delay)
            {
                return;
            }
            let batch = match self
                .spool
                .peek(self.settings.batch_max_docs, self.settings.batch_max_bytes)
            {
                Ok(batch) => batch,
                Err(e) => {
                    error!("cannot read the spool: {e}");
                    if self.stopper.sleep(self.settings.retry_max) {
                        return;
                    }
                    continue;
                }
            };
            if let Flow::Pause = self.ship(&batch) {
                let wait = self.pause();
                if self.stopper.sleep(wait) {
                    return;
                }
            }
        }
    }

    /// Retries until the template is in place (a data stream cannot exist without it).
    fn install_template(&mut self) -> bool {
        loop {
            match self
                .client
                .install_template(&self.settings.index, self.settings.data_stream)
            {
                Ok(()) => {
                    info!("index template for {} installed", self.settings.index);
                    self.recovered();
                    return true;
                }
                Err(e) => {
                    self.failed(&format!("cannot install the index template: {e}"));
                    let wait = self.pause();
                    if self.stopper.sleep(wait) {
                        return false;
                    }
                }
            }
        }
    }

    fn ship(&mut self, batch: &[Entry]) -> Flow {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        match self.client.bulk(&self.settings.index, batch) {
            BulkOutcome::Items(items) => self.settle(batch, items),
            BulkOutcome::Retry(reason) => {
                self.stats
                    .retried
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.failed(&reason);
                Flow::Pause
            }
            BulkOutcome::Unauthorized { status, reason } => {
                error!(
                    "Elasticsearch refused the credentials (HTTP {status}: {reason}); shipping paused, {} documents kept in the spool, next try in {:?}",
                    self.spool.depth(),
                    self.settings.auth_retry
                );
                self.health = Health::Down {
                    failures: u32::MAX / 2,
                };
                Flow::Pause
            }
            BulkOutcome::TooLarge | BulkOutcome::Rejected { .. } if batch.len() > 1 => {
                // Halve until the culprit is alone: the rest still goes through.
                let (left, right) = batch.split_at(batch.len() / 2);
                match self.ship(left) {
                    Flow::Continue => self.ship(right),
                    Flow::Pause => Flow::Pause,
                }
            }
            BulkOutcome::TooLarge => {
                let reason = "HTTP 413: the document alone is larger than the server accepts";
                self.dead_letter(batch, 413, reason);
                Flow::Continue
            }
            BulkOutcome::Rejected { status, reason } => {
                self.dead_letter(batch, status, &reason);
                Flow::Continue
            }
        }
    }

    /// Removes what the cluster took or will never take; leaves the rest for a retry.
    fn settle(&mut self, batch: &[Entry], items: Vec<ItemOutcome>) -> Flow {
        let mut done = Vec::with_capacity(batch.len());
        let mut retry = None;
        let mut retry_count = 0;
        for (entry, item) in batch.iter().zip(items) {
            match item {
                ItemOutcome::Stored => {
                    self.stats.shipped.fetch_add(1, Ordering::Relaxed);
                    done.push(entry.seq);
                }
                ItemOutcome::AlreadyThere => {
                    self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    done.push(entry.seq);
                }
                ItemOutcome::Retry(reason) => {
                    retry_count += 1;
                    retry.get_or_insert(reason);
                }
                ItemOutcome::Rejected { status, reason } => {
                    self.dead_letter(std::slice::from_ref(entry), status, &reason);
                }
            }
        }
        if let Err(e) = self.spool.remove(&done) {
            error!("cannot remove delivered documents from the spool: {e}");
        }
        if !done.is_empty() {
            self.stats
                .last_success_ms
                .store(unix_ms(), Ordering::Relaxed);
            if self.spool.depth() == 0 {
                log::debug!(
                    "caught up: delivered {} documents, the spool is empty",
                    done.len()
                );
            }
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
                self.recovered();
                Flow::Continue
            }
        }
    }

    /// Writes refused documents with the reason, then removes them from the spool.
    fn dead_letter(&mut self, entries: &[Entry], status: u16, reason: &str) {
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.settings.dead_letter)
            .and_then(|mut file| {
                for entry in entries {
                    let document =
                        serde_json::from_slice::<Value>(&entry.document).unwrap_or_else(|_| {
                            Value::String(String::from_utf8_lossy(&entry.document).into())
                        });
                    let line = json!({
                        "dead_lettered_at": crate::support::timestamp::format(unix_ms() as i64),
                        "_id": entry.id,
                        "status": status,
                        "reason": reason,
                        "document": document,
                    });
                    writeln!(file, "{line}")?;
                }
                file.sync_data()
            });
        if let Err(e) = written {
            // Keep them in the spool rather than lose them.
            error!(
                "cannot write the dead-letter file {}: {e}; keeping {} refused documents in the spool",
                self.settings.dead_letter.display(),
                entries.len()
            );
            return;
        }
        warn!(
            "{} document(s) refused by Elasticsearch (HTTP {status}: {reason}); written to {}",
            entries.len(),
            self.settings.dead_letter.display()
        );
        self.stats
            .dead_lettered
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        if let Err(e) = self.spool.remove(&seqs) {
            error!("cannot remove dead-lettered documents from the spool: {e}");
        }
    }

    fn failed(&mut self, reason: &str) {
        match &mut self.health {
            Health::Up => {
                warn!(
                    "Elasticsearch unavailable: {reason}; retrying with backoff, {} documents kept in the spool",
                    self.spool.depth()
                );
                self.health = Health::Down { failures: 1 };
            }
            Health::Down { failures } => *failures = failures.saturating_add(1),
        }
    }

    fn recovered(&mut self) {
        if let Health::Down { failures } = self.health {
            info!("Elasticsearch is taking documents again (after {failures} failed tries)");
        }
        self.health = Health::Up;
    }

    /// Exponential backoff with jitter (half to all of the step), capped.
    fn pause(&mut self) -> Duration {
        let failures = match self.health {
            Health::Up => return Duration::ZERO,
            Health::Down { failures } if failures >= u32::MAX / 2 => {
                return self.settings.auth_retry;
            }
            Health::Down { failures } => failures,
        };
        let step =
            Backoff::new(self.settings.retry_initial, self.settings.retry_max).delay(failures);
        self.jitter.spread(step)
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
