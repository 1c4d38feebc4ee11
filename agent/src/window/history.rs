//! The windows' memory across restarts: the samples the next windows still need (the
//! newest N-H decided ones as history, and every undecided one), kept in a small redb
//! database in the state directory. A restart resumes where the windows were: the first
//! window after it comes after H new samples, not N, and no decided sample is judged again.
//!
//! Writes are batched (one commit per [`COMMIT_EVERY`] samples or [`COMMIT_INTERVAL`],
//! whichever comes first, before each window's verdicts are sunk, and at a clean stop), so
//! an SD card sees one fsync per batch, not per sample; a power cut loses at most the
//! samples since the last commit, and none of them was judged: a judged sample is in the
//! sink (the spool) or, undecided, in the store, to be judged again. The store is an
//! aid, never a dependency: a store that cannot be opened, read or written is logged and
//! counted, and the windows go on from memory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, TableDefinition};
use thiserror::Error;

use crate::sensor::Sample;
use crate::window::WindowSpec;

/// Position in the sample stream → the sample, postcard-encoded.
const SAMPLES: TableDefinition<u64, &[u8]> = TableDefinition::new("samples");
/// What the positions mean: the window shape and the sensor they were taken for, under one
/// key. Same key and value types as `SAMPLES` (and the spool's entries), so redb's generic
/// B-tree code is not compiled once more for this table: bytes on a Pi's SD card.
const META: TableDefinition<u64, &[u8]> = TableDefinition::new("window_state");
const STATE: u64 = 0;

/// Samples buffered before a commit.
pub const COMMIT_EVERY: usize = 64;
/// Longest a sample waits in memory before a commit.
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum HistoryError {
    #[error("window history {path}: {reason}")]
    Store { path: String, reason: String },
}

/// Where the windows were when the store was last committed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct State {
    size: u64,
    hop: u64,
    sensor_id: String,
    /// Samples ever pushed, and how many of them had been decided.
    seen: u64,
    decided: u64,
}

/// What a restart resumes from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resumed {
    /// The stored samples, oldest first (at most N).
    pub samples: Vec<Sample>,
    /// How many of the newest of them no window has decided yet.
    pub undecided: usize,
}

impl Resumed {
    /// Marks every sample up to the one taken by `run_id` as `seq` decided, if it is among
    /// the undecided ones: its verdict is committed elsewhere (the spool). Answers how many
    /// it marked.
    pub fn decided_through(&mut self, run_id: u64, seq: u64) -> usize {
        let first_undecided = self.samples.len().saturating_sub(self.undecided);
        let Some(position) = self.samples[first_undecided..]
            .iter()
            .position(|s| s.run_id.raw() == run_id && s.seq == seq)
        else {
            return 0;
        };
        let marked = position.saturating_add(1);
        self.undecided = self.undecided.saturating_sub(marked);
        marked
    }
}

pub struct HistoryStore {
    db: Database,
    path: PathBuf,
    spec: WindowSpec,
    sensor_id: String,
    seen: u64,
    decided: u64,
    /// Samples not committed yet, with their positions.
    pending: Vec<(u64, Sample)>,
    last_commit: Instant,
}

impl HistoryStore {
    /// Opens (or creates) the store at `path` and reads what a restart resumes from. A
    /// store written for another window shape or sensor resumes nothing and starts over.
    pub fn open(
        path: &Path,
        spec: WindowSpec,
        sensor_id: &str,
    ) -> Result<(Self, Resumed), HistoryError> {
        let error = |e: &dyn std::fmt::Display| HistoryError::Store {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let db = Database::create(path).map_err(|e| error(&e))?;
        let mut store = Self {
            db,
            path: path.to_owned(),
            spec,
            sensor_id: sensor_id.to_owned(),
            seen: 0,
            decided: 0,
            pending: Vec::new(),
            last_commit: Instant::now(),
        };
        let resumed = match store.read() {
            Ok(Some(resumed)) => resumed,
            Ok(None) => {
                store.clear()?;
                Resumed::default()
            }
            Err(e) => {
                log::warn!("{e}; starting the windows over");
                store.clear()?;
                Resumed::default()
            }
        };
        Ok((store, resumed))
    }

    fn store_error(&self, e: &dyn std::fmt::Display) -> HistoryError {
        HistoryError::Store {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        }
    }

    /// The stored state if it fits this window shape and sensor.
    fn read(&mut self) -> Result<Option<Resumed>, HistoryError> {
        let txn = self.db.begin_read().map_err(|e| self.store_error(&e))?;
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.store_error(&e)),
        };
        let Some(state) = meta.get(&STATE).map_err(|e| self.store_error(&e))? else {
            return Ok(None);
        };
        let state: State = postcard::from_bytes(state.value()).map_err(|e| self.store_error(&e))?;
        let fits = state.size == self.spec.size() as u64
            && state.hop == self.spec.hop() as u64
            && state.sensor_id == self.sensor_id
            && state.decided <= state.seen;
        if !fits {
            log::info!(
                "window history is for windows of {}/{} on sensor {:?}; starting over",
                state.size,
                state.hop,
                crate::support::text::untrusted(&state.sensor_id)
            );
            return Ok(None);
        }
        let samples_table = txn.open_table(SAMPLES).map_err(|e| self.store_error(&e))?;
        let first = state.seen.saturating_sub(self.spec.size() as u64);
        let mut samples = Vec::new();
        for item in samples_table
            .range(first..state.seen)
            .map_err(|e| self.store_error(&e))?
        {
            let (_, value) = item.map_err(|e| self.store_error(&e))?;
            let sample: Sample =
                postcard::from_bytes(value.value()).map_err(|e| self.store_error(&e))?;
            samples.push(sample);
        }
        let expected = state.seen.saturating_sub(first);
        if samples.len() as u64 != expected {
            return Err(self.store_error(&format!(
                "{} samples stored where {expected} were expected",
                samples.len()
            )));
        }
        let undecided = usize::try_from(state.seen.saturating_sub(state.decided))
            .unwrap_or(usize::MAX)
            .min(samples.len());
        self.seen = state.seen;
        self.decided = state.decided;
        Ok(Some(Resumed { samples, undecided }))
    }

    fn clear(&mut self) -> Result<(), HistoryError> {
        let txn = self.db.begin_write().map_err(|e| self.store_error(&e))?;
        // Deleting a table that does not exist is not an error worth reporting.
        let _ = txn.delete_table(SAMPLES);
        let _ = txn.delete_table(META);
        txn.commit().map_err(|e| self.store_error(&e))?;
        self.seen = 0;
        self.decided = 0;
        Ok(())
    }

    /// Records a new sample; commits when the batch is full or old enough.
    pub fn push(&mut self, sample: &Sample) -> Result<(), HistoryError> {
        self.pending.push((self.seen, sample.clone()));
        self.seen = self.seen.saturating_add(1);
        if self.pending.len() >= COMMIT_EVERY || self.last_commit.elapsed() >= COMMIT_INTERVAL {
            self.commit()?;
        }
        Ok(())
    }

    /// Commits the samples pushed since the last commit, if any: before a window's
    /// verdicts leave, so that a crash before the sink commits them judges them again.
    pub fn commit_pending(&mut self) -> Result<(), HistoryError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.commit()
    }

    /// Records that all but the newest `undecided` samples pushed so far are decided (a
    /// resumed history that the spool knows more of).
    pub fn decided_all_but(&mut self, undecided: usize) {
        self.decided = self.seen.saturating_sub(undecided as u64).max(self.decided);
    }

    /// Records that every sample pushed so far has been decided.
    pub fn decided_all(&mut self) {
        self.decided = self.seen;
    }

    /// Writes the pending samples and the state, and forgets samples no window needs.
    pub fn commit(&mut self) -> Result<(), HistoryError> {
        self.last_commit = Instant::now();
        let state = State {
            size: self.spec.size() as u64,
            hop: self.spec.hop() as u64,
            sensor_id: self.sensor_id.clone(),
            seen: self.seen,
            decided: self.decided,
        };
        let encoded_state = postcard::to_allocvec(&state).map_err(|e| self.store_error(&e))?;
        let keep_from = self.seen.saturating_sub(self.spec.size() as u64);
        let txn = self.db.begin_write().map_err(|e| self.store_error(&e))?;
        {
            let mut samples = txn.open_table(SAMPLES).map_err(|e| self.store_error(&e))?;
            for (position, sample) in &self.pending {
                if *position < keep_from {
                    continue;
                }
                let value = postcard::to_allocvec(sample).map_err(|e| self.store_error(&e))?;
                samples
                    .insert(position, value.as_slice())
                    .map_err(|e| self.store_error(&e))?;
            }
            samples
                .retain_in(..keep_from, |_, _| false)
                .map_err(|e| self.store_error(&e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.store_error(&e))?;
            meta.insert(&STATE, encoded_state.as_slice())
                .map_err(|e| self.store_error(&e))?;
        }
        txn.commit().map_err(|e| self.store_error(&e))?;
        self.pending.clear();
        Ok(())
    }

    /// Drops pending samples beyond what a window needs, so a store that keeps failing
    /// holds at most N samples in memory.
    pub fn bound_pending(&mut self) {
        let size = self.spec.size();
        if self.pending.len() > size {
            let excess = self.pending.len() - size;
            self.pending.drain(..excess);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sensor::sample::test_sample as sample;

    #[test]
    fn a_reopened_store_resumes_the_last_n_samples_and_the_undecided_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("window.redb");
        let spec = WindowSpec::new(10, 4).unwrap();
        {
            let (mut store, resumed) = HistoryStore::open(&path, spec, "s").unwrap();
            assert_eq!(resumed, Resumed::default());
            for t in 0..13 {
                store.push(&sample(t)).unwrap();
                if t == 9 {
                    store.decided_all();
                }
            }
            store.commit().unwrap();
        }
        let (_, resumed) = HistoryStore::open(&path, spec, "s").unwrap();
        let stamps: Vec<i64> = resumed.samples.iter().map(|s| s.timestamp).collect();
        assert_eq!(stamps, (3..13).collect::<Vec<_>>());
        assert_eq!(resumed.undecided, 3);
    }

    #[test]
    fn samples_the_spool_decided_are_not_judged_again() {
        let samples: Vec<Sample> = (0..10).map(sample).collect();
        let run = samples[0].run_id.raw();
        let mut resumed = Resumed {
            samples: samples.clone(),
            undecided: 4,
        };
        // Decided before the undecided ones: nothing changes.
        assert_eq!(resumed.decided_through(run, samples[3].seq), 0);
        assert_eq!(resumed.undecided, 4);
        assert_eq!(resumed.decided_through(run, samples[7].seq), 2);
        assert_eq!(resumed.undecided, 2);
        // Another run's sample is not among them.
        assert_eq!(resumed.decided_through(run ^ 1, samples[9].seq), 0);
        assert_eq!(resumed.undecided, 2);
    }

    #[test]
    fn another_shape_or_sensor_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("window.redb");
        let spec = WindowSpec::new(10, 4).unwrap();
        {
            let (mut store, _) = HistoryStore::open(&path, spec, "s").unwrap();
            for t in 0..5 {
                store.push(&sample(t)).unwrap();
            }
            store.commit().unwrap();
        }
        let other = WindowSpec::new(12, 4).unwrap();
        let (_, resumed) = HistoryStore::open(&path, other, "s").unwrap();
        assert!(resumed.samples.is_empty());
        let (_, resumed) = HistoryStore::open(&path, spec, "t").unwrap();
        assert!(resumed.samples.is_empty());
    }

    #[test]
    fn uncommitted_samples_are_what_a_crash_loses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("window.redb");
        let spec = WindowSpec::new(100, 10).unwrap();
        {
            let (mut store, _) = HistoryStore::open(&path, spec, "s").unwrap();
            for t in 0..(COMMIT_EVERY as i64 + 5) {
                store.push(&sample(t)).unwrap();
            }
            // Dropped without a commit: the last 5 were only in memory.
        }
        let (_, resumed) = HistoryStore::open(&path, spec, "s").unwrap();
        assert_eq!(resumed.samples.len(), COMMIT_EVERY);
        assert_eq!(resumed.undecided, COMMIT_EVERY);
    }
}
