//! The spool: verdicts on disk between the pipeline and the shipper (store and forward).
//!
//! A [redb] database (a well-kept embedded store: copy-on-write B-trees, checksummed
//! commits, one writer, crash-safe without a journal of our own). The pipeline appends a
//! window's documents in one transaction, so one fsync per window rather than per sample
//! (SD cards wear); the shipper reads from the oldest end and settles documents (delivered
//! or dead-lettered) only once Elasticsearch has answered for them.
//!
//! Bounds and accounting, all here so they hold whoever calls:
//! - The payload is held to [`PAYLOAD_SHARE`] of `max_bytes`, and the file is compacted
//!   when it grows past `max_bytes`, so the file stays within `max_bytes` plus redb's
//!   minimum (see the README). When full, the oldest documents are dropped (or the newest
//!   refused, as configured) and counted.
//! - Counters are persisted in the same transaction as the change they count, and
//!   published together, so `appended = delivered + dead_lettered + dropped + depth` holds
//!   at every read of [`SpoolStats::snapshot`], across restarts too.
//! - A disk that is full or read-only degrades, it does not fail the caller for good:
//!   documents that cannot be committed wait in memory (at most [`PENDING_MAX`], the
//!   oldest lost and counted beyond that) and the database is reopened at the next try.
//! - An entry that does not decode is moved to the quarantine file and skipped; a database
//!   that does not open as one is moved aside and a new one started.
//!
//! Each entry carries its [`Destination`] (the verdict index, or the fleet status index),
//! so one spool, one shipper and one set of promises serve both. A verdict is stored as
//! the first version stored everything, so a spool written before destinations existed
//! drains unchanged (its entries are verdicts); other destinations use a tagged form that
//! the first version's reader cannot mistake for a verdict (see `encode`).
//!
//! A change to what is stored per entry goes in `encode`/`decode`; a new counter in
//! [`SpoolCounts`], `Meta` and `publish`. [`config`] is the `[spool]` section.

pub mod config;

pub use config::SpoolSection;

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::support::wake::Wake;

/// Sequence number → an entry, see `encode`.
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
/// Counters that must survive a restart.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_SEQ: &str = "next_seq";
const BYTES: &str = "bytes";
const DROPPED: &str = "dropped";
const DELIVERED: &str = "delivered";
const DEAD_LETTERED: &str = "dead_lettered";
/// The newest sample whose verdict is committed (its run id, and its seq + 1; 0: none):
/// written with the verdicts, in their transaction, so a restart knows exactly which
/// samples are decided (see [`Spool::decided_through`]).
const DECIDED_RUN: &str = "decided_run";
const DECIDED_SEQ_PLUS_1: &str = "decided_seq_plus_1";

/// The share of `max_bytes` the documents themselves may take: the rest is redb's pages
/// (B-tree nodes half full after splits, pages freed by the last commits not yet reused).
pub const PAYLOAD_SHARE: (u64, u64) = (2, 5);
/// Documents kept in memory while the disk refuses them (about 300 bytes each: ~1.2 MiB).
pub const PENDING_MAX: usize = 4096;
/// The quarantine file (entries that did not decode) is rotated past this size.
pub const QUARANTINE_MAX_BYTES: u64 = 4 << 20;
/// How often a database that failed is reopened, at most.
const REOPEN_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Error)]
pub enum SpoolError {
    #[error("spool {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("spool: {0}")]
    Store(String),
    /// The disk refused a write (full, read-only, gone): the documents wait in memory.
    #[error("spool: cannot write: {0}")]
    Disk(String),
    #[error("spool: document id of {0} bytes is too long")]
    IdTooLong(usize),
}

/// What kind of failure redb reported.
fn classify(error: impl Into<redb::Error>) -> SpoolError {
    match error.into() {
        redb::Error::Io(e)
            if !matches!(
                e.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            SpoolError::Disk(e.to_string())
        }
        redb::Error::PreviousIo => SpoolError::Disk("an earlier write failed".into()),
        other => SpoolError::Store(other.to_string()),
    }
}

/// What to give up when the spool is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Keep the newest data: the oldest documents make room (the default).
    #[default]
    DropOldest,
    /// Keep the oldest data: new documents are refused.
    DropNewest,
}

/// Where a spooled document is shipped. The shipper maps each to an index (or data
/// stream) of its configuration at the time it ships, as it always did for verdicts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Destination {
    /// A verdict: `[elasticsearch] index`. Every entry of a spool written before
    /// destinations existed is one.
    #[default]
    Verdicts,
    /// A fleet status document: `[fleet] index`.
    Status,
}

impl Destination {
    /// The code stored in a tagged entry; `Verdicts` is stored untagged.
    fn code(self) -> u8 {
        match self {
            Destination::Verdicts => 0,
            Destination::Status => 1,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Destination::Verdicts),
            1 => Some(Destination::Status),
            _ => None,
        }
    }
}

/// One document waiting to be shipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub id: String,
    pub document: Vec<u8>,
    pub destination: Destination,
}

/// A document as handed to the spool: where it goes, its `_id`, its JSON.
type Pending = (Destination, String, Vec<u8>);

/// The spool's state at one instant; the document counters add up:
/// `appended = delivered + dead_lettered + dropped + depth`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpoolCounts {
    pub depth: u64,
    /// Bytes of the stored entries.
    pub bytes: u64,
    /// Bytes of the database file.
    pub file_bytes: u64,
    /// Documents committed to the spool (or refused by `drop_newest`), ever.
    pub appended: u64,
    pub delivered: u64,
    /// Refused by the cluster for good, or quarantined (did not decode, or in a database
    /// that had to be moved aside).
    pub dead_lettered: u64,
    /// Given up by the `when_full` policy.
    pub dropped: u64,
    /// Of `dead_lettered`: entries or databases moved aside because they did not read.
    pub quarantined: u64,
    /// Databases moved aside because they did not open.
    pub resets: u64,
    /// Documents waiting in memory because the disk refused them.
    pub pending: u64,
    /// Documents lost from memory: the disk refused them and [`PENDING_MAX`] was reached.
    pub lost: u64,
    /// Commits the disk refused.
    pub write_errors: u64,
    /// The disk refuses writes right now (the last try failed).
    pub degraded: bool,
    pub commits: u64,
    pub compactions: u64,
}

/// The published counters.
#[derive(Debug, Default)]
pub struct SpoolStats {
    counts: Mutex<SpoolCounts>,
}

impl SpoolStats {
    pub fn snapshot(&self) -> SpoolCounts {
        lock(&self.counts).clone()
    }

    fn update(&self, change: impl FnOnce(&mut SpoolCounts)) {
        change(&mut lock(&self.counts));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The counters kept in the database.
#[derive(Clone, Copy, Default)]
struct Meta {
    next_seq: u64,
    bytes: u64,
    dropped: u64,
    delivered: u64,
    dead_lettered: u64,
    decided: Option<SampleMark>,
}

/// A sample's identity (run id and seq): the newest one the spool holds a verdict for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleMark {
    pub run_id: u64,
    pub seq: u64,
}

impl Meta {
    fn read(meta: &impl ReadableTable<&'static str, u64>) -> Result<Self, SpoolError> {
        let get = |key| {
            meta.get(key)
                .map(|v| v.map(|g| g.value()).unwrap_or(0))
                .map_err(classify)
        };
        Ok(Self {
            next_seq: get(NEXT_SEQ)?,
            bytes: get(BYTES)?,
            dropped: get(DROPPED)?,
            delivered: get(DELIVERED)?,
            dead_lettered: get(DEAD_LETTERED)?,
            decided: get(DECIDED_SEQ_PLUS_1)?
                .checked_sub(1)
                .map(|seq| get(DECIDED_RUN).map(|run_id| SampleMark { run_id, seq }))
                .transpose()?,
        })
    }

    fn write(&self, meta: &mut redb::Table<&str, u64>) -> Result<(), SpoolError> {
        for (key, value) in [
            (NEXT_SEQ, self.next_seq),
            (BYTES, self.bytes),
            (DROPPED, self.dropped),
            (DELIVERED, self.delivered),
            (DEAD_LETTERED, self.dead_lettered),
        ] {
            meta.insert(key, value).map_err(classify)?;
        }
        if let Some(mark) = self.decided {
            meta.insert(DECIDED_RUN, mark.run_id).map_err(classify)?;
            meta.insert(DECIDED_SEQ_PLUS_1, mark.seq.saturating_add(1))
                .map_err(classify)?;
        }
        Ok(())
    }
}

pub struct Spool {
    path: PathBuf,
    /// `None` while the disk refuses the file; reopened at the next write.
    db: RwLock<Option<Database>>,
    max_bytes: u64,
    payload_budget: u64,
    when_full: WhenFull,
    stats: SpoolStats,
    /// Documents the disk refused, oldest first.
    pending: Mutex<VecDeque<Pending>>,
    /// The decided mark to write with the next commit (it waits with `pending`), and the
    /// one the file held when it was opened.
    pending_mark: Mutex<Option<SampleMark>>,
    opened_mark: Mutex<Option<SampleMark>>,
    last_reopen: Mutex<Option<Instant>>,
    /// The size the last compaction left when that was still above the bound, else 0.
    compacted_to: Mutex<u64>,
    /// Counts carried over a reset (a database moved aside), so they never go backwards.
    carried: Mutex<SpoolCounts>,
    arrival: Wake,
    /// The sequence numbers the last [`Spool::peek`] handed out (in flight upstream), and
    /// those of them the policy dropped meanwhile: if upstream then takes them, they are
    /// counted delivered, not dropped (at most one batch).
    in_flight: Mutex<InFlight>,
}

#[derive(Default)]
struct InFlight {
    seqs: std::ops::Range<u64>,
    dropped: Vec<u64>,
}

/// How the settled documents of a batch went.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Sequence numbers that were still in the spool and are now gone; the rest had been
    /// dropped meanwhile and were counted then.
    pub removed: Vec<u64>,
}

impl Spool {
    /// Opens (or creates) the spool; an error when it cannot, for tools and tests. The agent
    /// uses [`Spool::open_or_degraded`].
    pub fn open(path: &Path, max_bytes: u64, when_full: WhenFull) -> Result<Self, SpoolError> {
        let spool = Self::unopened(path, max_bytes, when_full);
        let db = spool.create()?;
        spool.adopt(db)?;
        Ok(spool)
    }

    /// Opens the spool, or, when the disk refuses (full, read-only), a spool that keeps
    /// documents in memory and opens the file at a later write. Never fails: sampling must
    /// not stop because the disk did.
    pub fn open_or_degraded(path: &Path, max_bytes: u64, when_full: WhenFull) -> Self {
        let spool = Self::unopened(path, max_bytes, when_full);
        if let Err(e) = spool.create().and_then(|db| spool.adopt(db)) {
            log::error!(
                "{e}; running without a durable spool (verdicts kept in memory, at most {PENDING_MAX}) until the disk takes writes again"
            );
            spool.stats.update(|c| c.degraded = true);
            *lock(&spool.last_reopen) = Some(Instant::now());
        }
        spool
    }

    fn unopened(path: &Path, max_bytes: u64, when_full: WhenFull) -> Self {
        Self {
            path: path.to_owned(),
            db: RwLock::new(None),
            max_bytes,
            payload_budget: max_bytes / PAYLOAD_SHARE.1 * PAYLOAD_SHARE.0,
            when_full,
            stats: SpoolStats::default(),
            pending: Mutex::new(VecDeque::new()),
            pending_mark: Mutex::new(None),
            opened_mark: Mutex::new(None),
            last_reopen: Mutex::new(None),
            compacted_to: Mutex::new(0),
            carried: Mutex::new(SpoolCounts::default()),
            arrival: Wake::new(),
            in_flight: Mutex::new(InFlight::default()),
        }
    }

    /// Opens the file; one that is not a database (or that redb cannot read) is moved
    /// aside and a new one created.
    fn create(&self) -> Result<Database, SpoolError> {
        let open_error = |reason: String| SpoolError::Open {
            path: self.path.display().to_string(),
            reason,
        };
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| open_error(e.to_string()))?;
        }
        match open_database(&self.path) {
            Ok(db) => Ok(db),
            Err(OpenFailure::Disk(reason)) => Err(open_error(reason)),
            Err(OpenFailure::Corrupt(reason)) => {
                let aside = aside_path(&self.path, "corrupt");
                std::fs::rename(&self.path, &aside)
                    .map_err(|e| open_error(format!("{reason}; cannot move it aside: {e}")))?;
                // What the old file held is given up to the file aside: counted so, and the
                // counters carry on from where they were. At a start nothing was counted
                // yet, so the file aside is read for its count where it still reads.
                let held = self.stats.snapshot().depth;
                let aside_count = if held == 0 {
                    count_entries(&aside)
                } else {
                    None
                };
                let given_up = aside_count.unwrap_or(held);
                let counted = match aside_count {
                    Some(n) => format!("{n} documents"),
                    None if held > 0 => format!("{held} documents"),
                    None => "documents that cannot be counted (the file does not read)".into(),
                };
                log::error!(
                    "spool {} is corrupt ({reason}): moved to {} with {counted}, given up, and a new one started",
                    self.path.display(),
                    aside.display()
                );
                self.stats.update(|c| {
                    c.resets = c.resets.saturating_add(1);
                    c.quarantined = c.quarantined.saturating_add(given_up);
                    c.dead_lettered = c.dead_lettered.saturating_add(given_up);
                    c.depth = 0;
                    let mut carried = lock(&self.carried);
                    carried.delivered = c.delivered;
                    carried.dead_lettered = c.dead_lettered;
                    carried.dropped = c.dropped;
                });
                match open_database(&self.path) {
                    Ok(db) => Ok(db),
                    Err(OpenFailure::Disk(reason) | OpenFailure::Corrupt(reason)) => {
                        Err(open_error(reason))
                    }
                }
            }
        }
    }

    /// Takes `db` as the spool's database: tables created, counters read.
    fn adopt(&self, db: Database) -> Result<(), SpoolError> {
        let txn = db.begin_write().map_err(classify)?;
        let (depth, meta) = {
            let entries = txn.open_table(ENTRIES).map_err(classify)?;
            let meta = txn.open_table(META).map_err(classify)?;
            (entries.len().map_err(classify)?, Meta::read(&meta)?)
        };
        txn.commit().map_err(classify)?;
        *lock(&self.opened_mark) = meta.decided;
        let carried = lock(&self.carried).clone();
        let file_bytes = file_len(&self.path);
        self.stats.update(|c| {
            c.depth = depth;
            c.bytes = meta.bytes;
            c.file_bytes = file_bytes;
            c.delivered = carried.delivered.saturating_add(meta.delivered);
            c.dead_lettered = carried.dead_lettered.saturating_add(meta.dead_lettered);
            c.dropped = carried.dropped.saturating_add(meta.dropped);
            // Derived, so the sum holds whatever the file remembered.
            c.appended = c
                .delivered
                .saturating_add(c.dead_lettered)
                .saturating_add(c.dropped)
                .saturating_add(depth);
            c.degraded = false;
        });
        *self.write_db() = Some(db);
        Ok(())
    }

    fn write_db(&self) -> std::sync::RwLockWriteGuard<'_, Option<Database>> {
        self.db.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read_db(&self) -> std::sync::RwLockReadGuard<'_, Option<Database>> {
        self.db.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> &SpoolStats {
        &self.stats
    }

    pub fn depth(&self) -> u64 {
        lock(&self.stats.counts).depth
    }

    /// Documents waiting in memory for the disk.
    pub fn pending(&self) -> usize {
        lock(&self.pending).len()
    }

    /// Runs `work` on the database, reopening it first if an earlier failure closed it;
    /// a failure of the disk closes it (redb refuses everything after an I/O error).
    fn with_db<T>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, SpoolError>,
    ) -> Result<T, SpoolError> {
        if self.read_db().is_none() {
            // A failed or throttled reopen leaves things as they are (closed).
            self.reopen()?;
        }
        let result = match self.read_db().as_ref() {
            Some(db) => work(db),
            // Closed meanwhile by another thread's failure: its reopen is due, not ours.
            None => return Err(SpoolError::Disk("the spool is not open".into())),
        };
        match &result {
            Err(SpoolError::Disk(_)) => self.close_after_failure(true),
            // The file may be damaged: reopening it moves it aside if so.
            Err(SpoolError::Store(_)) => self.close_after_failure(false),
            _ => {}
        }
        result
    }

    fn close_after_failure(&self, disk: bool) {
        *self.write_db() = None;
        *lock(&self.last_reopen) = Some(Instant::now());
        if disk {
            self.stats.update(|c| {
                c.degraded = true;
                c.write_errors = c.write_errors.saturating_add(1);
            });
        }
    }

    fn reopen(&self) -> Result<(), SpoolError> {
        {
            let mut last = lock(&self.last_reopen);
            if last.is_some_and(|at| at.elapsed() < REOPEN_EVERY) {
                return Err(SpoolError::Disk("waiting to reopen".into()));
            }
            *last = Some(Instant::now());
        }
        let db = self.create()?;
        // What the old file had counted carries into this one, if it is a new file.
        self.adopt(db)?;
        log::info!("spool {} is writable again", self.path.display());
        Ok(())
    }

    /// Appends documents `(id, JSON)` in one durable transaction, after any the disk
    /// refused before. Answers how many were dropped to respect the size bound (old ones or
    /// these, by policy). On a disk error the documents wait in memory (bounded) and the
    /// error is returned for the caller to report; they go in with the next append.
    pub fn append(&self, documents: &[(String, Vec<u8>)]) -> Result<u64, SpoolError> {
        self.append_to(Destination::Verdicts, documents)
    }

    /// [`Spool::append`] of a window's verdicts, with `decided`, the newest sample they
    /// decide, committed in the same transaction (whether or not any document is kept:
    /// `ship = "anomalies"` spools few). This commit is where those samples count as
    /// decided.
    pub fn append_decided(
        &self,
        documents: &[(String, Vec<u8>)],
        decided: SampleMark,
    ) -> Result<u64, SpoolError> {
        *lock(&self.pending_mark) = Some(decided);
        self.append_to(Destination::Verdicts, documents)
    }

    /// The newest sample whose verdict the spool had committed when it was opened: the
    /// window history resumes with every sample up to it decided, so a window whose
    /// verdicts reached the spool is not judged again after a crash.
    pub fn decided_through(&self) -> Option<SampleMark> {
        *lock(&self.opened_mark)
    }

    /// [`Spool::append`] for documents bound for `destination`; the same bounds and
    /// promises, counted together.
    pub fn append_to(
        &self,
        destination: Destination,
        documents: &[(String, Vec<u8>)],
    ) -> Result<u64, SpoolError> {
        for (id, _) in documents {
            if u16::try_from(id.len()).is_err() {
                return Err(SpoolError::IdTooLong(id.len()));
            }
        }
        let mut pending = lock(&self.pending);
        pending.extend(
            documents
                .iter()
                .map(|(id, document)| (destination, id.clone(), document.clone())),
        );
        let overflow = pending.len().saturating_sub(PENDING_MAX);
        if overflow > 0 {
            pending.drain(..overflow);
        }
        let waiting = pending.len() as u64;
        self.stats.update(|c| {
            c.lost = c.lost.saturating_add(overflow as u64);
            c.pending = waiting;
        });
        if pending.is_empty() && lock(&self.pending_mark).is_none() {
            return Ok(0);
        }
        let batch: Vec<Pending> = pending.iter().cloned().collect();
        match self.with_db(|db| self.commit_append(db, &batch)) {
            Ok(dropped) => {
                pending.clear();
                self.stats.update(|c| c.pending = 0);
                drop(pending);
                self.bound_file();
                self.wake();
                Ok(dropped)
            }
            Err(e) => Err(e),
        }
    }

    /// Commits what waits in memory, if anything; for the shipper to call after it freed
    /// space.
    pub fn flush_pending(&self) -> Result<u64, SpoolError> {
        self.append(&[])
    }

    fn commit_append(&self, db: &Database, documents: &[Pending]) -> Result<u64, SpoolError> {
        let txn = db.begin_write().map_err(classify)?;
        let (depth, meta, dropped_now) = {
            let mut entries = txn.open_table(ENTRIES).map_err(classify)?;
            let mut table = txn.open_table(META).map_err(classify)?;
            let mut meta = Meta::read(&table)?;
            let mut dropped = 0u64;
            for (destination, id, document) in documents {
                let value = encode(*destination, id, document)?;
                let size = value.len() as u64;
                while meta.bytes.saturating_add(size) > self.payload_budget
                    && self.when_full == WhenFull::DropOldest
                {
                    match entries.pop_first().map_err(classify)? {
                        Some((old_seq, old)) => {
                            meta.bytes = meta.bytes.saturating_sub(old.value().len() as u64);
                            dropped = dropped.saturating_add(1);
                            let mut in_flight = lock(&self.in_flight);
                            if in_flight.seqs.contains(&old_seq.value()) {
                                in_flight.dropped.push(old_seq.value());
                            }
                        }
                        None => break,
                    }
                }
                if meta.bytes.saturating_add(size) > self.payload_budget {
                    dropped = dropped.saturating_add(1);
                    continue;
                }
                entries
                    .insert(meta.next_seq, value.as_slice())
                    .map_err(classify)?;
                meta.next_seq = meta.next_seq.saturating_add(1);
                meta.bytes = meta.bytes.saturating_add(size);
            }
            meta.dropped = meta.dropped.saturating_add(dropped);
            if let Some(mark) = *lock(&self.pending_mark) {
                meta.decided = Some(mark);
            }
            meta.write(&mut table)?;
            (entries.len().map_err(classify)?, meta, dropped)
        };
        txn.commit().map_err(classify)?;
        {
            let mut mark = lock(&self.pending_mark);
            if *mark == meta.decided {
                *mark = None;
            }
        }
        let carried = lock(&self.carried).clone();
        self.stats.update(|c| {
            c.depth = depth;
            c.bytes = meta.bytes;
            c.dropped = carried.dropped.saturating_add(meta.dropped);
            c.appended = c.appended.saturating_add(documents.len() as u64);
            c.commits = c.commits.saturating_add(1);
            c.degraded = false;
        });
        Ok(dropped_now)
    }

    /// Compacts the file when it has grown past `max_bytes`; redb frees pages at the end of
    /// the file then.
    fn bound_file(&self) {
        let len = file_len(&self.path);
        self.stats.update(|c| c.file_bytes = len);
        // A compaction that could not get under the bound (redb's own minimum above a tiny
        // `max_mib`) is not repeated until the file has grown a quarter more.
        let floor = *lock(&self.compacted_to);
        if len <= self.max_bytes || len <= floor.saturating_add(floor / 4) {
            return;
        }
        let mut guard = self.write_db();
        if let Some(db) = guard.as_mut() {
            match db.compact() {
                Ok(_) => {
                    let after = file_len(&self.path);
                    log::debug!("spool compacted: {len} → {after} bytes");
                    *lock(&self.compacted_to) = if after > self.max_bytes { after } else { 0 };
                    self.stats.update(|c| {
                        c.compactions = c.compactions.saturating_add(1);
                        c.file_bytes = after;
                    });
                }
                Err(e) => log::warn!("cannot compact the spool: {e}"),
            }
        }
    }

    /// The oldest documents, at most `max_docs` of them and `max_bytes` of JSON (but at
    /// least one, so an oversized document still moves). An entry that does not decode is
    /// moved to the quarantine file and skipped.
    pub fn peek(&self, max_docs: usize, max_bytes: usize) -> Result<Vec<Entry>, SpoolError> {
        let (batch, corrupt) = self.with_db(|db| {
            let txn = db.begin_read().map_err(classify)?;
            let entries = txn.open_table(ENTRIES).map_err(classify)?;
            let mut batch = Vec::new();
            let mut corrupt = Vec::new();
            let mut bytes = 0usize;
            for item in entries.iter().map_err(classify)? {
                if batch.len() >= max_docs {
                    break;
                }
                let (seq, value) = item.map_err(classify)?;
                let Some((destination, id, document)) = decode(value.value()) else {
                    corrupt.push((seq.value(), value.value().to_vec()));
                    continue;
                };
                if !batch.is_empty() && bytes.saturating_add(document.len()) > max_bytes {
                    break;
                }
                bytes = bytes.saturating_add(document.len());
                batch.push(Entry {
                    seq: seq.value(),
                    id,
                    document,
                    destination,
                });
            }
            Ok((batch, corrupt))
        })?;
        if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
            *lock(&self.in_flight) = InFlight {
                seqs: first.seq..last.seq.saturating_add(1),
                dropped: Vec::new(),
            };
        }
        if !corrupt.is_empty() {
            self.quarantine(&corrupt)?;
        }
        Ok(batch)
    }

    /// Writes undecodable entries to `<spool>.quarantine` and removes them.
    fn quarantine(&self, corrupt: &[(u64, Vec<u8>)]) -> Result<(), SpoolError> {
        let file = aside_path(&self.path, "quarantine");
        let written = rotate_if_full(&file, QUARANTINE_MAX_BYTES).and_then(|()| {
            let mut out = OpenOptions::new().create(true).append(true).open(&file)?;
            for (seq, bytes) in corrupt {
                let line = serde_json::json!({
                    "seq": seq,
                    "quarantined_at": crate::support::timestamp::format(unix_ms()),
                    "entry": String::from_utf8_lossy(bytes),
                });
                writeln!(out, "{line}")?;
            }
            out.sync_data()
        });
        if let Err(e) = written {
            return Err(SpoolError::Disk(format!(
                "cannot write the quarantine file {}: {e}",
                file.display()
            )));
        }
        log::error!(
            "{} spool entries do not decode: moved to {}",
            corrupt.len(),
            file.display()
        );
        let seqs: Vec<u64> = corrupt.iter().map(|(seq, _)| *seq).collect();
        let removed = self.settle(&[], &seqs)?;
        let n = removed.removed.len() as u64;
        self.stats
            .update(|c| c.quarantined = c.quarantined.saturating_add(n));
        self.wake();
        Ok(())
    }

    /// Removes documents the cluster answered for: `delivered` (stored, or already there)
    /// and `dead_lettered` (refused for good, written to the dead-letter file), in one
    /// transaction. A document the policy dropped while it was in flight went where the
    /// cluster's answer says: it moves from dropped to delivered (or dead-lettered), so
    /// each document is counted once, where it went. Waiters are not woken: the caller
    /// does, once its own counters are up to date.
    pub fn settle(&self, delivered: &[u64], dead_lettered: &[u64]) -> Result<Settled, SpoolError> {
        if delivered.is_empty() && dead_lettered.is_empty() {
            return Ok(Settled::default());
        }
        // A split batch is settled half by half: each half takes only its own.
        let dropped_in_flight = lock(&self.in_flight).dropped.clone();
        let (depth, meta, removed) = self.with_db(|db| {
            let txn = db.begin_write().map_err(classify)?;
            let result = {
                let mut entries = txn.open_table(ENTRIES).map_err(classify)?;
                let mut table = txn.open_table(META).map_err(classify)?;
                let mut meta = Meta::read(&table)?;
                let mut removed = Vec::new();
                for (seqs, dead) in [(delivered, false), (dead_lettered, true)] {
                    for seq in seqs {
                        let went = match entries.remove(seq).map_err(classify)? {
                            Some(old) => {
                                meta.bytes = meta.bytes.saturating_sub(old.value().len() as u64);
                                true
                            }
                            None if dropped_in_flight.contains(seq) && meta.dropped > 0 => {
                                meta.dropped -= 1;
                                true
                            }
                            None => false,
                        };
                        if !went {
                            continue;
                        }
                        if dead {
                            meta.dead_lettered = meta.dead_lettered.saturating_add(1);
                        } else {
                            meta.delivered = meta.delivered.saturating_add(1);
                        }
                        removed.push(*seq);
                    }
                }
                meta.write(&mut table)?;
                (entries.len().map_err(classify)?, meta, removed)
            };
            txn.commit().map_err(classify)?;
            Ok(result)
        })?;
        let carried = lock(&self.carried).clone();
        self.stats.update(|c| {
            c.depth = depth;
            c.bytes = meta.bytes;
            c.delivered = carried.delivered.saturating_add(meta.delivered);
            c.dead_lettered = carried.dead_lettered.saturating_add(meta.dead_lettered);
            c.dropped = carried.dropped.saturating_add(meta.dropped);
            c.commits = c.commits.saturating_add(1);
        });
        if !dropped_in_flight.is_empty() {
            lock(&self.in_flight)
                .dropped
                .retain(|seq| !removed.contains(seq));
        }
        Ok(Settled { removed })
    }

    /// Removes delivered documents (see [`Spool::settle`]) and wakes waiters. The shipper
    /// settles, counts, then wakes, so a waiter on the depth reads its counters complete.
    pub fn remove(&self, seqs: &[u64]) -> Result<Settled, SpoolError> {
        let settled = self.settle(seqs, &[]);
        self.wake();
        settled
    }

    /// Waits until the spool holds something or `timeout` passes; answers whether it does.
    pub fn wait_for_entries(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |depth| depth > 0)
    }

    /// Waits until `done(depth)` holds (checked at every append and removal) or `timeout`
    /// passes; answers whether it holds.
    pub fn wait_until(&self, timeout: Duration, done: impl Fn(u64) -> bool) -> bool {
        self.arrival.wait_until(timeout, || done(self.depth()))
    }

    /// Wakes anyone waiting on the spool (after a change, or to stop).
    pub fn wake(&self) {
        self.arrival.notify();
    }
}

enum OpenFailure {
    Disk(String),
    Corrupt(String),
}

/// Opens with redb, which may panic on some damage in debug builds: that is a corrupt file
/// too, never a dead agent.
fn open_database(path: &Path) -> Result<Database, OpenFailure> {
    let attempt = std::panic::catch_unwind(|| Database::create(path));
    match attempt {
        Ok(Ok(db)) => Ok(db),
        // redb reads a file that is not its own (or cut short) as InvalidData / EOF.
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))))
            if !matches!(
                e.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            Err(OpenFailure::Disk(e.to_string()))
        }
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::PreviousIo))) => {
            Err(OpenFailure::Disk("an earlier write failed".into()))
        }
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => Err(OpenFailure::Disk(
            "already open (another agent on this state directory?)".into(),
        )),
        Ok(Err(e)) => Err(OpenFailure::Corrupt(e.to_string())),
        Err(panic) => Err(OpenFailure::Corrupt(crate::support::panic::message(
            panic.as_ref(),
        ))),
    }
}

/// The entries of a database moved aside, if it still opens (read once, for the count).
fn count_entries(path: &Path) -> Option<u64> {
    let db = open_database(path).ok()?;
    let txn = db.begin_read().ok()?;
    let entries = txn.open_table(ENTRIES).ok()?;
    entries.len().ok()
}

/// `<path>.<what>` (quarantine) or `<path>.<what>-<unix ms>` (a database moved aside).
fn aside_path(path: &Path, what: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    if what == "quarantine" {
        name.push(".quarantine");
    } else {
        name.push(format!(".{what}-{}", unix_ms()));
    }
    PathBuf::from(name)
}

/// Moves `path` to `path.1` (replacing an older one) when it has reached `max_bytes`: one
/// file full and one filling, so at most twice `max_bytes` on disk.
pub fn rotate_if_full(path: &Path, max_bytes: u64) -> std::io::Result<()> {
    if file_len(path) < max_bytes {
        return Ok(());
    }
    let mut older = path.as_os_str().to_owned();
    older.push(".1");
    std::fs::rename(path, PathBuf::from(older))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The first bytes of a tagged entry: an id length of 0, which no verdict has (an empty
/// id does not decode), then the tagged form's version.
const TAGGED: [u8; 3] = [0, 0, 1];

/// A verdict: `id length (u16 LE) ‖ id ‖ JSON document`, as every version stored it. Any
/// other destination: `0 0 1 ‖ destination code ‖ the same`. A reader that knows only the
/// first form quarantines a tagged entry (an empty id) rather than ship it as a verdict.
fn encode(destination: Destination, id: &str, document: &[u8]) -> Result<Vec<u8>, SpoolError> {
    let id_len = u16::try_from(id.len()).map_err(|_| SpoolError::IdTooLong(id.len()))?;
    let mut value = Vec::with_capacity(TAGGED.len() + 3 + id.len() + document.len());
    if destination != Destination::Verdicts {
        value.extend_from_slice(&TAGGED);
        value.push(destination.code());
    }
    value.extend_from_slice(&id_len.to_le_bytes());
    value.extend_from_slice(id.as_bytes());
    value.extend_from_slice(document);
    Ok(value)
}

/// `None` for an entry that is not what `encode` wrote (an unknown destination too).
fn decode(value: &[u8]) -> Option<(Destination, String, Vec<u8>)> {
    let (destination, value) = match value.strip_prefix(&TAGGED) {
        Some(rest) => {
            let (code, rest) = rest.split_first()?;
            match Destination::from_code(*code)? {
                // Verdicts are never tagged: a tagged one is not what `encode` writes.
                Destination::Verdicts => return None,
                other => (other, rest),
            }
        }
        None => (Destination::Verdicts, value),
    };
    let (len, rest) = value.split_first_chunk::<2>()?;
    let len = u16::from_le_bytes(*len) as usize;
    let id = String::from_utf8(rest.get(..len)?.to_vec()).ok()?;
    let document = rest.get(len..)?;
    if id.is_empty() || serde_json::from_slice::<serde::de::IgnoredAny>(document).is_err() {
        return None;
    }
    Some((destination, id, document.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(range: std::ops::Range<u32>) -> Vec<(String, Vec<u8>)> {
        range
            .map(|i| (format!("s-{i}"), format!("{{\"n\":{i}}}").into_bytes()))
            .collect()
    }

    fn adds_up(spool: &Spool) -> SpoolCounts {
        let c = spool.stats().snapshot();
        assert_eq!(
            c.appended,
            c.delivered + c.dead_lettered + c.dropped + c.depth,
            "{c:?}"
        );
        c
    }

    #[test]
    fn appended_documents_come_out_in_order_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.redb");
        {
            let spool = Spool::open(&path, 1 << 20, WhenFull::DropOldest).unwrap();
            spool.append(&docs(0..5)).unwrap();
            spool.append(&docs(5..8)).unwrap();
            let first = spool.peek(3, usize::MAX).unwrap();
            assert_eq!(
                first.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
                ["s-0", "s-1", "s-2"]
            );
            spool.remove(&[first[0].seq, first[1].seq]).unwrap();
            assert_eq!(spool.depth(), 6);
            adds_up(&spool);
        }
        let spool = Spool::open(&path, 1 << 20, WhenFull::DropOldest).unwrap();
        assert_eq!(spool.depth(), 6);
        let counts = adds_up(&spool);
        assert_eq!((counts.appended, counts.delivered), (8, 2));
        let rest = spool.peek(100, usize::MAX).unwrap();
        assert_eq!(rest.first().unwrap().id, "s-2");
        assert_eq!(rest.last().unwrap().id, "s-7");
        assert_eq!(rest.last().unwrap().document, b"{\"n\":7}");
        // Sequence numbers keep growing after a reopen.
        spool.append(&docs(8..9)).unwrap();
        let all = spool.peek(100, usize::MAX).unwrap();
        assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    }

    #[test]
    fn the_decided_mark_is_committed_with_the_verdicts_and_read_at_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.redb");
        let mark = |seq| SampleMark { run_id: 7, seq };
        {
            let spool = Spool::open(&path, 1 << 20, WhenFull::DropOldest).unwrap();
            assert_eq!(spool.decided_through(), None);
            spool.append_decided(&docs(0..3), mark(2)).unwrap();
            // No document kept (`ship = "anomalies"`), the samples decided all the same.
            spool.append_decided(&[], mark(5)).unwrap();
            adds_up(&spool);
        }
        let spool = Spool::open(&path, 1 << 20, WhenFull::DropOldest).unwrap();
        assert_eq!(spool.decided_through(), Some(mark(5)));
        assert_eq!(spool.depth(), 3);
    }

    #[test]
    fn a_full_spool_drops_by_policy_and_counts_add_up() {
        let dir = tempfile::tempdir().unwrap();
        // Each entry is 2 + 3..4 + 7..8 bytes; a budget of 2/5 of 175 is 70: about 5.
        let spool = Spool::open(&dir.path().join("a.redb"), 175, WhenFull::DropOldest).unwrap();
        let dropped = spool.append(&docs(0..10)).unwrap();
        assert!(dropped >= 4, "{dropped}");
        let kept = spool.peek(100, usize::MAX).unwrap();
        assert_eq!(kept.last().unwrap().id, "s-9", "the newest are kept");
        assert_eq!(kept.len() as u64 + dropped, 10);
        let counts = adds_up(&spool);
        assert_eq!(counts.dropped, dropped);
        assert_eq!(counts.appended, 10);

        // Documents in flight are dropped, then delivered: counted once, where they went
        // (the index), no longer as dropped.
        let dropped_before = adds_up(&spool).dropped;
        let in_flight = spool.peek(2, usize::MAX).unwrap();
        let seqs: Vec<u64> = in_flight.iter().map(|e| e.seq).collect();
        let dropped_now = spool.append(&docs(10..20)).unwrap();
        assert!(
            dropped_now >= 2,
            "the in-flight ones are the oldest: dropped first"
        );
        let settled = spool.remove(&seqs).unwrap();
        assert_eq!(settled.removed, seqs, "delivered, though dropped meanwhile");
        let counts = adds_up(&spool);
        assert_eq!(counts.delivered, 2);
        assert_eq!(counts.dropped, dropped_before + dropped_now - 2);
        // Settled twice (a retried answer) counts nothing more.
        assert!(spool.remove(&seqs).unwrap().removed.is_empty());
        assert_eq!(adds_up(&spool).delivered, 2);

        let spool = Spool::open(&dir.path().join("b.redb"), 175, WhenFull::DropNewest).unwrap();
        let dropped = spool.append(&docs(0..10)).unwrap();
        let kept = spool.peek(100, usize::MAX).unwrap();
        assert_eq!(kept.first().unwrap().id, "s-0", "the oldest are kept");
        assert_eq!(kept.len() as u64 + dropped, 10);
        assert!(spool.stats().snapshot().bytes <= 70);
        adds_up(&spool);
    }

    /// A spool file as the version before destinations wrote it: entries put in with that
    /// version's encoding, byte for byte, and its counters.
    #[test]
    fn a_spool_written_before_destinations_drains_as_verdicts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut entries = txn.open_table(ENTRIES).unwrap();
                let mut bytes = 0u64;
                for seq in 0..3u64 {
                    let id = format!("pi.bme680.0000000000000001.{seq}");
                    let document = format!("{{\"seq\":{seq}}}");
                    let mut value = (id.len() as u16).to_le_bytes().to_vec();
                    value.extend_from_slice(id.as_bytes());
                    value.extend_from_slice(document.as_bytes());
                    bytes += value.len() as u64;
                    entries.insert(seq, value.as_slice()).unwrap();
                }
                let mut meta = txn.open_table(META).unwrap();
                meta.insert(NEXT_SEQ, 3).unwrap();
                meta.insert(BYTES, bytes).unwrap();
            }
            txn.commit().unwrap();
        }
        let spool = Spool::open(&path, 1 << 20, WhenFull::DropOldest).unwrap();
        spool
            .append_to(
                Destination::Status,
                &[("status-1".into(), b"{\"s\":1}".to_vec())],
            )
            .unwrap();
        let batch = spool.peek(10, usize::MAX).unwrap();
        let seen: Vec<(&str, Destination)> = batch
            .iter()
            .map(|e| (e.id.as_str(), e.destination))
            .collect();
        assert_eq!(
            seen,
            [
                ("pi.bme680.0000000000000001.0", Destination::Verdicts),
                ("pi.bme680.0000000000000001.1", Destination::Verdicts),
                ("pi.bme680.0000000000000001.2", Destination::Verdicts),
                ("status-1", Destination::Status),
            ]
        );
        assert_eq!(batch[3].document, b"{\"s\":1}");
        spool
            .remove(&batch.iter().map(|e| e.seq).collect::<Vec<_>>())
            .unwrap();
        let counts = adds_up(&spool);
        assert_eq!(
            (counts.depth, counts.delivered, counts.quarantined),
            (0, 4, 0)
        );
    }

    #[test]
    fn a_tagged_entry_never_reads_as_a_verdict_of_the_old_form() {
        let tagged = encode(Destination::Status, "a", b"{}").unwrap();
        // The old reader: id length first. It reads 0: an empty id, which does not decode.
        assert_eq!(u16::from_le_bytes([tagged[0], tagged[1]]), 0);
        assert_eq!(
            decode(&tagged),
            Some((Destination::Status, "a".into(), b"{}".to_vec()))
        );
        assert_eq!(
            decode(&encode(Destination::Verdicts, "a", b"{}").unwrap()),
            Some((Destination::Verdicts, "a".into(), b"{}".to_vec()))
        );
        // An unknown destination, or a tagged verdict, is not ours: quarantined.
        assert_eq!(decode(&[0, 0, 1, 9, 1, 0, b'a', b'{', b'}']), None);
        assert_eq!(decode(&[0, 0, 1, 0, 1, 0, b'a', b'{', b'}']), None);
        assert_eq!(decode(&[0, 0, 2, 1, 1, 0, b'a', b'{', b'}']), None);
    }

    #[test]
    fn peek_bounds_bytes_but_always_moves_one() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&dir.path().join("s.redb"), 1 << 20, WhenFull::DropOldest).unwrap();
        spool.append(&docs(0..10)).unwrap();
        assert_eq!(spool.peek(100, 15).unwrap().len(), 2);
        assert_eq!(spool.peek(100, 1).unwrap().len(), 1);
    }

    #[test]
    fn a_malformed_entry_is_quarantined_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let spool = Spool::open(&path, 1 << 20, WhenFull::DropOldest).unwrap();
            spool.append(&docs(0..3)).unwrap();
        }
        {
            // Entry 1 rewritten as garbage, the way a bug or a bad sector would leave it.
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(ENTRIES)
                .unwrap()
                .insert(1, &[0xff, 0xff, 1][..])
                .unwrap();
            txn.commit().unwrap();
        }
        let spool = Spool::open(&path, 1 << 20, WhenFull::DropOldest).unwrap();
        let batch = spool.peek(10, usize::MAX).unwrap();
        assert_eq!(
            batch.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["s-0", "s-2"]
        );
        let counts = adds_up(&spool);
        assert_eq!((counts.quarantined, counts.depth), (1, 2));
        let quarantine = std::fs::read_to_string(aside_path(&path, "quarantine")).unwrap();
        assert_eq!(quarantine.lines().count(), 1);
        assert!(quarantine.contains("\"seq\":1"), "{quarantine}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        std::fs::write(&path, vec![0x5a; 64 << 10]).unwrap();
        let spool = Spool::open_or_degraded(&path, 1 << 20, WhenFull::DropOldest);
        let counts = spool.stats().snapshot();
        assert_eq!((counts.resets, counts.degraded), (1, false));
        spool.append(&docs(0..2)).unwrap();
        assert_eq!(spool.depth(), 2);
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(
            std::fs::read(aside[0].path()).unwrap(),
            vec![0x5a; 64 << 10]
        );
    }

    #[test]
    fn the_file_stays_within_max_bytes_while_filling_and_draining() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let max = 4 << 20;
        let spool = Spool::open(&path, max, WhenFull::DropOldest).unwrap();
        let body = |i: u32| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(250)).into_bytes();
        let mut largest = 0;
        for window in 0..600u32 {
            let documents: Vec<_> = (window * 60..window * 60 + 60)
                .map(|i| (format!("sensor-{i}"), body(i)))
                .collect();
            spool.append(&documents).unwrap();
            if window % 3 == 0 {
                let batch = spool.peek(50, usize::MAX).unwrap();
                spool
                    .remove(&batch.iter().map(|e| e.seq).collect::<Vec<_>>())
                    .unwrap();
            }
            largest = largest.max(file_len(&path));
        }
        adds_up(&spool);
        assert!(
            spool.stats().snapshot().dropped > 0,
            "the bound was reached"
        );
        assert!(
            largest <= max + (1 << 20),
            "{largest} bytes for a bound of {max}"
        );
    }
}
