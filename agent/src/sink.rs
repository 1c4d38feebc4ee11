//! Where verdicts go: a [`Sink`]. With Elasticsearch configured it is the spool the
//! shipper drains (and, with `--output` or `[output] path`, a local NDJSON copy besides:
//! [`Both`]); without, NDJSON on standard output or appended to a file.
//!
//! Sinks degrade rather than fail: a disk that is full or read-only must not stop sampling
//! and judging. The spool keeps what it cannot store in memory (bounded, counted, see
//! `spool.rs`); the NDJSON sink counts what it could not write. Both log at a bounded rate.
//! `emit` returns `Err` only for what no retry can fix (a record that does not serialise).

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::record::VerdictRecord;
use crate::spool::{Spool, SpoolError};
use crate::support::log_rate::LogRate;

/// The end of the pipeline. `emit` takes a window's worth of records; `flush` makes
/// them durable as far as this sink can.
pub trait Sink: Send {
    fn emit(&mut self, records: &[VerdictRecord]) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

/// One JSON object per line.
pub struct NdjsonSink {
    out: BufWriter<Box<dyn Write + Send>>,
    /// Records that could not be written (a full disk, a closed pipe).
    unwritten: Arc<AtomicU64>,
    log: LogRate,
}

impl NdjsonSink {
    pub fn stdout() -> Self {
        Self::new(Box::new(io::stdout()))
    }

    pub fn append_to(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self::new(Box::new(file)))
    }

    /// Appends to `path`, or, when it cannot be opened now (a read-only or full disk),
    /// opens it at a later write: a disk that refuses is counted, not fatal.
    pub fn append_to_or_degraded(path: &Path) -> Self {
        let file = match OpenOptions::new().create(true).append(true).open(path) {
            Ok(file) => Some(file),
            Err(e) => {
                log::error!(
                    "cannot open {}: {e}; verdicts written there are counted as lost until it opens",
                    path.display()
                );
                None
            }
        };
        Self::new(Box::new(LazyFile {
            path: path.to_owned(),
            file,
        }))
    }

    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: BufWriter::new(out),
            unwritten: Arc::new(AtomicU64::new(0)),
            log: LogRate::every(Duration::from_secs(60)),
        }
    }

    /// Records that could not be written, for metrics.
    pub fn unwritten(&self) -> Arc<AtomicU64> {
        self.unwritten.clone()
    }

    fn write(&mut self, records: &[VerdictRecord]) -> io::Result<()> {
        for record in records {
            serde_json::to_writer(&mut self.out, record)?;
            self.out.write_all(b"\n")?;
        }
        // A window's verdicts are few and far between: let a reader see them at once.
        self.out.flush()
    }
}

impl Sink for NdjsonSink {
    fn emit(&mut self, records: &[VerdictRecord]) -> io::Result<()> {
        if let Err(e) = self.write(records) {
            self.unwritten
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            // The buffer (8 KiB, BufWriter's own bound) keeps what it holds for the next try.
            if let Some(suppressed) = self.log.allow() {
                log::error!(
                    "cannot write {} verdicts to the output: {e}{}",
                    records.len(),
                    LogRate::note(suppressed)
                );
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Err(e) = self.out.flush() {
            log::error!("cannot flush the output: {e}");
        }
        Ok(())
    }
}

/// A file opened at the first write that can open it.
struct LazyFile {
    path: std::path::PathBuf,
    file: Option<std::fs::File>,
}

impl Write for LazyFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.file.is_none() {
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        match self.file.as_mut() {
            Some(file) => file.write(bytes),
            None => Err(io::Error::other("not open")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

/// Into the spool, one transaction per window.
pub struct SpoolSink {
    spool: Arc<Spool>,
    only_anomalies: bool,
    drop_log: LogRate,
    disk_log: LogRate,
}

impl SpoolSink {
    /// `only_anomalies`: ship only the flagged samples (for thin links).
    pub fn new(spool: Arc<Spool>, only_anomalies: bool) -> Self {
        Self {
            spool,
            only_anomalies,
            drop_log: LogRate::every(Duration::from_secs(60)),
            disk_log: LogRate::every(Duration::from_secs(60)),
        }
    }
}

impl Sink for SpoolSink {
    fn emit(&mut self, records: &[VerdictRecord]) -> io::Result<()> {
        let documents = records
            .iter()
            .filter(|r| !self.only_anomalies || r.is_anomaly == Some(true))
            .map(|r| Ok((r.document_id(), serde_json::to_vec(r)?)))
            .collect::<io::Result<Vec<_>>>()?;
        match self.spool.append(&documents) {
            Ok(dropped) => {
                if dropped > 0
                    && let Some(suppressed) = self.drop_log.allow()
                {
                    log::warn!(
                        "spool full: {dropped} documents dropped to make room{}",
                        LogRate::note(suppressed)
                    );
                }
            }
            Err(e @ SpoolError::IdTooLong(_)) => return Err(io::Error::other(e)),
            Err(e) => {
                if let Some(suppressed) = self.disk_log.allow() {
                    log::error!(
                        "{e}: {} verdicts kept in memory (at most {}) until the disk takes writes again{}",
                        self.spool.pending(),
                        crate::spool::PENDING_MAX,
                        LogRate::note(suppressed)
                    );
                }
                return Ok(());
            }
        }
        if let (Some(first), Some(last)) = (documents.first(), documents.last()) {
            log::debug!(
                "spooled {} documents: {} .. {}",
                documents.len(),
                first.0,
                last.0
            );
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Every append is a durable commit; what waits in memory gets one more try.
        if self.spool.pending() > 0
            && let Err(e) = self.spool.flush_pending()
        {
            log::error!(
                "{e}: {} verdicts could not be stored before stopping",
                self.spool.pending()
            );
        }
        Ok(())
    }
}

/// The spool and a local NDJSON copy: `--output` (or `[output] path`) with
/// `[elasticsearch]`.
pub struct Both {
    pub spool: SpoolSink,
    pub copy: NdjsonSink,
}

impl Sink for Both {
    fn emit(&mut self, records: &[VerdictRecord]) -> io::Result<()> {
        let copied = self.copy.emit(records);
        self.spool.emit(records).and(copied)
    }

    fn flush(&mut self) -> io::Result<()> {
        let copied = self.copy.flush();
        self.spool.flush().and(copied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ms: i64) -> VerdictRecord {
        let seq = u64::try_from(ms).unwrap();
        let sample = crate::sensor::Sample::air_quality_only(
            crate::sensor::identity::RunId::from_raw(1),
            seq,
            ms,
            80.0,
        );
        let judgement = crate::record::Judgement {
            host_id: "h",
            sensor_id: "s",
            function_sha256: "",
            window: (ms, ms),
        };
        let verdict = edge_function::Verdict {
            is_anomaly: false,
            score: None,
        };
        VerdictRecord::new(&sample, &judgement, Ok(verdict))
    }

    /// A disk that is full: every write fails.
    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(28))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(28))
        }
    }

    #[test]
    fn a_full_disk_is_counted_not_fatal() {
        let mut sink = NdjsonSink::new(Box::new(Full));
        let unwritten = sink.unwritten();
        let records: Vec<_> = (0..3).map(|i| record(1_700_000_000_000 + i)).collect();
        assert!(sink.emit(&records).is_ok());
        assert!(sink.emit(&records).is_ok());
        assert!(sink.flush().is_ok());
        assert_eq!(unwritten.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn a_file_that_cannot_be_opened_yet_is_opened_at_a_later_write() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("later");
        let path = folder.join("out.ndjson");
        let mut sink = NdjsonSink::append_to_or_degraded(&path);
        let unwritten = sink.unwritten();
        assert!(sink.emit(&[record(1)]).is_ok());
        assert_eq!(unwritten.load(Ordering::Relaxed), 1);
        std::fs::create_dir(&folder).unwrap();
        assert!(sink.emit(&[record(2)]).is_ok());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().count() >= 1, "{text}");
        assert!(text.contains("\"sensor_id\":\"s\""));
    }
}
