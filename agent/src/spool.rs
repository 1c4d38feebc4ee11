//! The spool: verdicts on disk between the pipeline and the shipper (store and forward).
//!
//! A [redb] database (a well-kept embedded store: copy-on-write B-trees, checksummed
//! commits, one writer, crash-safe without a journal of our own). The pipeline appends a
//! window's documents in one transaction, so one fsync per window rather than per sample
//! (SD cards wear); the shipper reads from the oldest end and removes documents only once
//! Elasticsearch has acknowledged them. The size is bounded: when full, the oldest
//! documents are dropped (or the newest refused, as configured) and counted.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::support::wake::Wake;

/// Sequence number → `id length (u16 LE) ‖ id ‖ JSON document`.
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
/// Counters that must survive a restart.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_SEQ: &str = "next_seq";
const BYTES: &str = "bytes";
const DROPPED: &str = "dropped";

#[derive(Debug, Error)]
pub enum SpoolError {
    #[error("spool {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("spool: {0}")]
    Store(String),
    #[error("spool: document id of {0} bytes is too long")]
    IdTooLong(usize),
}

fn store_error(e: impl std::fmt::Display) -> SpoolError {
    SpoolError::Store(e.to_string())
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

/// One document waiting to be shipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub id: String,
    pub document: Vec<u8>,
}

/// Counters for status lines and metrics.
#[derive(Debug, Default)]
pub struct SpoolStats {
    pub depth: AtomicU64,
    pub bytes: AtomicU64,
    pub appended: AtomicU64,
    pub dropped: AtomicU64,
    pub commits: AtomicU64,
}

pub struct Spool {
    db: Database,
    max_bytes: u64,
    when_full: WhenFull,
    stats: SpoolStats,
    arrival: Wake,
}

impl Spool {
    pub fn open(path: &Path, max_bytes: u64, when_full: WhenFull) -> Result<Self, SpoolError> {
        let open_error = |reason: String| SpoolError::Open {
            path: path.display().to_string(),
            reason,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| open_error(e.to_string()))?;
        }
        let db = Database::create(path).map_err(|e| open_error(e.to_string()))?;
        let spool = Self {
            db,
            max_bytes,
            when_full,
            stats: SpoolStats::default(),
            arrival: Wake::new(),
        };
        let txn = spool.db.begin_write().map_err(store_error)?;
        {
            // Creates the tables on first use.
            let entries = txn.open_table(ENTRIES).map_err(store_error)?;
            let meta = txn.open_table(META).map_err(store_error)?;
            spool
                .stats
                .depth
                .store(entries.len().map_err(store_error)?, Ordering::Relaxed);
            let read = |key| meta.get(key).map(|v| v.map(|g| g.value()).unwrap_or(0));
            spool
                .stats
                .bytes
                .store(read(BYTES).map_err(store_error)?, Ordering::Relaxed);
            spool
                .stats
                .dropped
                .store(read(DROPPED).map_err(store_error)?, Ordering::Relaxed);
        }
        txn.commit().map_err(store_error)?;
        Ok(spool)
    }

    pub fn stats(&self) -> &SpoolStats {
        &self.stats
    }

    pub fn depth(&self) -> u64 {
        self.stats.depth.load(Ordering::Relaxed)
    }

    /// Appends documents `(id, JSON)` in one durable transaction. Answers how many were
    /// dropped to respect the size bound (old ones or these, by policy).
    pub fn append(&self, documents: &[(String, Vec<u8>)]) -> Result<u64, SpoolError> {
        if documents.is_empty() {
            return Ok(0);
        }
        let txn = self.db.begin_write().map_err(store_error)?;
        let (depth, bytes, dropped_now, dropped_total) = {
            let mut entries = txn.open_table(ENTRIES).map_err(store_error)?;
            let mut meta = txn.open_table(META).map_err(store_error)?;
            let get = |meta: &redb::Table<&str, u64>, key| {
                meta.get(key)
                    .map(|v| v.map(|g| g.value()).unwrap_or(0))
                    .map_err(store_error)
            };
            let mut next = get(&meta, NEXT_SEQ)?;
            let mut bytes = get(&meta, BYTES)?;
            let mut dropped = 0u64;
            for (id, document) in documents {
                let value = encode(id, document)?;
                let size = value.len() as u64;
                while bytes + size > self.max_bytes && self.when_full == WhenFull::DropOldest {
                    match entries.pop_first().map_err(store_error)? {
                        Some((_, old)) => {
                            bytes = bytes.saturating_sub(old.value().len() as u64);
                            dropped += 1;
                        }
                        None => break,
                    }
                }
                if bytes + size > self.max_bytes {
                    dropped += 1;
                    continue;
                }
                entries
                    .insert(next, value.as_slice())
                    .map_err(store_error)?;
                next += 1;
                bytes += size;
            }
            let dropped_total = get(&meta, DROPPED)? + dropped;
            meta.insert(NEXT_SEQ, next).map_err(store_error)?;
            meta.insert(BYTES, bytes).map_err(store_error)?;
            meta.insert(DROPPED, dropped_total).map_err(store_error)?;
            (
                entries.len().map_err(store_error)?,
                bytes,
                dropped,
                dropped_total,
            )
        };
        txn.commit().map_err(store_error)?;
        self.stats.depth.store(depth, Ordering::Relaxed);
        self.stats.bytes.store(bytes, Ordering::Relaxed);
        self.stats.dropped.store(dropped_total, Ordering::Relaxed);
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats
            .appended
            .fetch_add(documents.len() as u64 - dropped_now, Ordering::Relaxed);
        self.wake();
        Ok(dropped_now)
    }

    /// The oldest documents, at most `max_docs` of them and `max_bytes` of JSON (but at
    /// least one, so an oversized document still moves).
    pub fn peek(&self, max_docs: usize, max_bytes: usize) -> Result<Vec<Entry>, SpoolError> {
        let txn = self.db.begin_read().map_err(store_error)?;
        let entries = txn.open_table(ENTRIES).map_err(store_error)?;
        let mut batch = Vec::new();
        let mut bytes = 0;
        for item in entries.iter().map_err(store_error)?.take(max_docs) {
            let (seq, value) = item.map_err(store_error)?;
            let (id, document) = decode(value.value())?;
            if !batch.is_empty() && bytes + document.len() > max_bytes {
                break;
            }
            bytes += document.len();
            batch.push(Entry {
                seq: seq.value(),
                id,
                document,
            });
        }
        Ok(batch)
    }

    /// Removes acknowledged documents, in one transaction.
    pub fn remove(&self, seqs: &[u64]) -> Result<(), SpoolError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(store_error)?;
        let (depth, bytes) = {
            let mut entries = txn.open_table(ENTRIES).map_err(store_error)?;
            let mut meta = txn.open_table(META).map_err(store_error)?;
            let mut bytes = meta
                .get(BYTES)
                .map(|v| v.map(|g| g.value()).unwrap_or(0))
                .map_err(store_error)?;
            for seq in seqs {
                if let Some(old) = entries.remove(seq).map_err(store_error)? {
                    bytes = bytes.saturating_sub(old.value().len() as u64);
                }
            }
            meta.insert(BYTES, bytes).map_err(store_error)?;
            (entries.len().map_err(store_error)?, bytes)
        };
        txn.commit().map_err(store_error)?;
        self.stats.depth.store(depth, Ordering::Relaxed);
        self.stats.bytes.store(bytes, Ordering::Relaxed);
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.wake();
        Ok(())
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

fn encode(id: &str, document: &[u8]) -> Result<Vec<u8>, SpoolError> {
    let id_len = u16::try_from(id.len()).map_err(|_| SpoolError::IdTooLong(id.len()))?;
    let mut value = Vec::with_capacity(2 + id.len() + document.len());
    value.extend_from_slice(&id_len.to_le_bytes());
    value.extend_from_slice(id.as_bytes());
    value.extend_from_slice(document);
    Ok(value)
}

fn decode(value: &[u8]) -> Result<(String, Vec<u8>), SpoolError> {
    let corrupt = || SpoolError::Store("an entry is malformed".into());
    let (len, rest) = value.split_first_chunk::<2>().ok_or_else(corrupt)?;
    let len = u16::from_le_bytes(*len) as usize;
    let id = rest.get(..len).ok_or_else(corrupt)?;
    let id = String::from_utf8(id.to_vec()).map_err(|_| corrupt())?;
    Ok((id, rest[len..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(range: std::ops::Range<u32>) -> Vec<(String, Vec<u8>)> {
        range
            .map(|i| (format!("s-{i}"), format!("{{\"n\":{i}}}").into_bytes()))
            .collect()
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
        }
        let spool = Spool::open(&path, 1 << 20, WhenFull::DropOldest).unwrap();
        assert_eq!(spool.depth(), 6);
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
    fn a_full_spool_drops_by_policy_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        // Each entry is 2 + 3..4 + 7..8 bytes: room for about 5.
        let spool = Spool::open(&dir.path().join("a.redb"), 70, WhenFull::DropOldest).unwrap();
        let dropped = spool.append(&docs(0..10)).unwrap();
        assert!(dropped >= 4, "{dropped}");
        let kept = spool.peek(100, usize::MAX).unwrap();
        assert_eq!(kept.last().unwrap().id, "s-9", "the newest are kept");
        assert_eq!(kept.len() as u64 + dropped, 10);
        assert_eq!(spool.stats().dropped.load(Ordering::Relaxed), dropped);

        let spool = Spool::open(&dir.path().join("b.redb"), 70, WhenFull::DropNewest).unwrap();
        let dropped = spool.append(&docs(0..10)).unwrap();
        let kept = spool.peek(100, usize::MAX).unwrap();
        assert_eq!(kept.first().unwrap().id, "s-0", "the oldest are kept");
        assert_eq!(kept.len() as u64 + dropped, 10);
        assert!(spool.stats().bytes.load(Ordering::Relaxed) <= 70);
    }

    #[test]
    fn peek_bounds_bytes_but_always_moves_one() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&dir.path().join("s.redb"), 1 << 20, WhenFull::DropOldest).unwrap();
        spool.append(&docs(0..10)).unwrap();
        assert_eq!(spool.peek(100, 15).unwrap().len(), 2);
        assert_eq!(spool.peek(100, 1).unwrap().len(), 1);
    }
}
