//! Where verdicts go: a [`Sink`]. With Elasticsearch configured it is the spool the
//! shipper drains (and, with `--output` or `[output] path`, a local NDJSON copy besides:
//! [`Both`]); without, NDJSON on standard output or appended to a file.
//!
//! Sinks degrade rather than fail: a disk that is full or read-only must not stop sampling
//! and judging. The spool keeps what it cannot store in memory (bounded, counted, see
//! `spool.rs`); the NDJSON sink counts what it could not write. Both log at a bounded rate.
//! `emit` returns `Err` only for what no retry can fix (a record that does not serialise).
//! [`OutputSection`] is the `[output]` section.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::record::VerdictRecord;
use crate::spool::{SampleMark, Spool, SpoolError};
use crate::support::check::{Refusal, creatable, within};
use crate::support::log_rate::LogRate;
use serde::{Deserialize, Serialize};

/// `[output] max_mib`'s range: a file of at least 1 MiB, at most 16 GiB (twice that on
/// disk with the rotated one).
pub const OUTPUT_MAX_MIB: std::ops::RangeInclusive<u64> = 1..=16_384;

/// `[output]`: where verdicts go: without an upstream, the only copy; with one, a local
/// copy besides the spool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputSection {
    /// An NDJSON file to append to; standard output when absent or `-`.
    pub path: Option<PathBuf>,
    /// The file's bound. A window's records that would take it past this go to a new file,
    /// the full one renamed `<path>.1` (replacing the one before), so the copy never takes
    /// more than twice this on disk. A Pi in a cupboard for a year would otherwise fill
    /// its card with it.
    pub max_mib: u64,
}

impl Default for OutputSection {
    fn default() -> Self {
        Self {
            path: None,
            max_mib: 64,
        }
    }
}

impl OutputSection {
    /// The file to append to; `None` for standard output.
    pub fn file(&self) -> Option<&Path> {
        self.path.as_deref().filter(|p| *p != Path::new("-"))
    }

    /// The rules serde cannot express.
    pub fn check(&self) -> Result<(), Refusal> {
        within("output.max_mib", self.max_mib, &OUTPUT_MAX_MIB)?;
        match self.file() {
            Some(path) => creatable("output.path", path),
            None => Ok(()),
        }
    }
}

/// The end of the pipeline. `emit` takes a window's worth of records; `flush` makes
/// them durable as far as this sink can.
pub trait Sink: Send {
    fn emit(&mut self, records: &[VerdictRecord]) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
    /// Whether `emit` is a durable commit that a restart reads back (the spool): then it
    /// is where samples count as decided, and the window history must hold them first.
    fn commits_decisions(&self) -> bool {
        false
    }
}

/// The NDJSON output's counters, shared with the metrics.
#[derive(Debug, Default, Clone)]
pub struct NdjsonCounters {
    /// Records that could not be written (a full disk, a closed pipe).
    pub unwritten: Arc<AtomicU64>,
    /// Times the file reached its bound and was rotated.
    pub rotations: Arc<AtomicU64>,
}

/// One JSON object per line. A window's records are serialised whole before any byte is
/// written, so a failing write (a full disk) loses whole records, counted; and a line cut
/// by one is ended before the next write, so the records after it stay readable.
pub struct NdjsonSink {
    out: Box<dyn Write + Send>,
    /// The last write stopped inside a line.
    torn: bool,
    /// Records that could not be written; rotations of the file.
    counters: NdjsonCounters,
    log: LogRate,
}

impl NdjsonSink {
    pub fn stdout() -> Self {
        Self::new(Box::new(io::stdout()))
    }

    /// Appends to `path`, or, when it cannot be opened now (a read-only or full disk),
    /// opens it at a later write: a disk that refuses is counted, not fatal. Past
    /// `max_bytes` the file is rotated once (`[output] max_mib`).
    pub fn append_to_or_degraded(path: &Path, max_bytes: u64) -> Self {
        let counters = NdjsonCounters::default();
        let mut file = OutputFile::new(path, max_bytes, counters.rotations.clone());
        if let Err(e) = file.open() {
            log::error!(
                "cannot open {}: {e}; verdicts written there are counted as lost until it opens",
                path.display()
            );
        }
        Self {
            counters,
            ..Self::new(Box::new(file))
        }
    }

    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out,
            torn: false,
            counters: NdjsonCounters::default(),
            log: LogRate::every(Duration::from_secs(60)),
        }
    }

    /// Its counters, shared with the metrics.
    pub fn counters(&self) -> NdjsonCounters {
        self.counters.clone()
    }

    /// Writes `records`; answers how many were written whole, and the error that stopped
    /// the rest. `Err` only for a record that does not serialise.
    fn write(&mut self, records: &[VerdictRecord]) -> io::Result<(usize, Option<io::Error>)> {
        let mut text = Vec::new();
        if self.torn {
            text.push(b'\n');
        }
        let mut ends = Vec::with_capacity(records.len());
        for record in records {
            serde_json::to_writer(&mut text, record)?;
            text.push(b'\n');
            ends.push(text.len());
        }
        let mut written = 0;
        let mut failure = None;
        while written < text.len() {
            match self.out.write(&text[written..]) {
                Ok(0) => {
                    failure = Some(io::Error::from(io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if failure.is_none()
            && let Err(e) = self.out.flush()
        {
            failure = Some(e);
        }
        let whole = ends.iter().filter(|&&end| end <= written).count();
        let prefix = usize::from(self.torn);
        // Nothing written leaves the file as it was; otherwise the file now ends inside a
        // line unless it ends at the prefix's newline or after a whole record.
        if written > 0 {
            self.torn = written != prefix && !ends.contains(&written);
        }
        Ok((whole, failure))
    }
}

impl Sink for NdjsonSink {
    fn emit(&mut self, records: &[VerdictRecord]) -> io::Result<()> {
        let (whole, failure) = self.write(records)?;
        if let Some(e) = failure {
            let lost = records.len().saturating_sub(whole);
            self.counters
                .unwritten
                .fetch_add(lost as u64, Ordering::Relaxed);
            if let Some(suppressed) = self.log.allow() {
                log::error!(
                    "cannot write {lost} verdicts to the output: {e}{}",
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

/// The output file: opened at the first write that can open it, and rotated at its bound.
struct OutputFile {
    path: PathBuf,
    file: Option<std::fs::File>,
    /// Bytes in the file now.
    size: u64,
    /// Nothing written since the last flush: the next write starts a window's records, so
    /// a new file may begin there (a short write's rest never goes to another file).
    window_start: bool,
    /// A regular file, which can be rotated; a pipe, a device or `/dev/stdout` cannot.
    rotatable: bool,
    max_bytes: u64,
    rotations: Arc<AtomicU64>,
    /// Rotations that could not be done (the bound not kept, nothing lost), for the log.
    refused: LogRate,
}

impl OutputFile {
    fn new(path: &Path, max_bytes: u64, rotations: Arc<AtomicU64>) -> Self {
        Self {
            path: path.to_owned(),
            file: None,
            size: 0,
            window_start: true,
            rotatable: false,
            max_bytes,
            rotations,
            refused: LogRate::every(Duration::from_secs(60)),
        }
    }

    /// Opens (or creates) the file. One cut off inside a line (a power cut mid-write) is
    /// ended first, so the next record starts a line of its own.
    fn open(&mut self) -> io::Result<()> {
        use std::os::unix::fs::FileExt as _;
        // Write-only, as a pipe must be opened: a reader of our own would keep a pipe
        // whose reader went away from ever failing.
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let metadata = file.metadata()?;
        self.rotatable = metadata.is_file();
        self.size = metadata.len();
        if self.rotatable && self.size > 0 {
            let mut last = [0u8];
            let ends_a_line = std::fs::File::open(&self.path)
                .and_then(|reader| reader.read_exact_at(&mut last, self.size.saturating_sub(1)))
                .map_or(true, |()| last[0] == b'\n');
            if !ends_a_line {
                file.write_all(b"\n")?;
                self.size = self.size.saturating_add(1);
            }
        }
        self.file = Some(file);
        Ok(())
    }

    /// `<path>.1`, the file before this one.
    fn rotated_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".1");
        PathBuf::from(name)
    }

    /// Whether `path` is still the file written to: another tool (logrotate) may have
    /// moved it away, and renaming what is at `path` now would lose the wrong file.
    fn still_at_path(&self) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        let (Some(file), Ok(at_path)) = (&self.file, std::fs::metadata(&self.path)) else {
            return false;
        };
        file.metadata()
            .is_ok_and(|open| open.dev() == at_path.dev() && open.ino() == at_path.ino())
    }

    /// The full file becomes `<path>.1` (the one before goes) and a new one begins. A file
    /// moved away by someone else is not renamed: a new one begins at `path`. A rename that
    /// fails (`<path>.1` a folder, the folder read-only) keeps the file growing, said once a
    /// minute: the verdicts matter more than the bound, and the log says why it is not kept.
    fn rotate(&mut self) -> io::Result<()> {
        let rotated = self.rotated_path();
        if self.still_at_path() {
            if let Err(e) = std::fs::rename(&self.path, &rotated) {
                if let Some(suppressed) = self.refused.allow() {
                    log::error!(
                        "output {} is past its bound ({} bytes) and cannot be renamed to {}: {e}; \
                         writing on{}",
                        self.path.display(),
                        self.max_bytes,
                        rotated.display(),
                        LogRate::note(suppressed)
                    );
                }
                return Ok(());
            }
            self.rotations.fetch_add(1, Ordering::Relaxed);
            log::info!(
                "output {} reached {} bytes: renamed to {}",
                self.path.display(),
                self.size,
                rotated.display()
            );
        } else {
            log::info!(
                "output {} was moved away by another program: a new file begun",
                self.path.display()
            );
        }
        self.file = None;
        self.open()
    }
}

impl Write for OutputFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.file.is_none() {
            self.open()?;
        }
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if self.window_start
            && self.rotatable
            && self.size > 0
            && self.size.saturating_add(len) > self.max_bytes
        {
            self.rotate()?;
        }
        self.window_start = false;
        let written = match self.file.as_mut() {
            Some(file) => file.write(bytes)?,
            None => return Err(io::Error::other("not open")),
        };
        self.size = self
            .size
            .saturating_add(u64::try_from(written).unwrap_or(u64::MAX));
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.window_start = true;
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
        let appended = match records.last() {
            Some(last) => self.spool.append_decided(
                &documents,
                SampleMark {
                    run_id: last.head.run_id.raw(),
                    seq: last.seq,
                },
            ),
            None => self.spool.append(&documents),
        };
        match appended {
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

    fn commits_decisions(&self) -> bool {
        true
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

/// The spool commits first: it is where a verdict counts as decided, so the copy never
/// holds a verdict that a crash could take from the spool (and from upstream).
impl Sink for Both {
    fn emit(&mut self, records: &[VerdictRecord]) -> io::Result<()> {
        self.spool.emit(records)?;
        self.copy.emit(records)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.spool.flush()?;
        self.copy.flush()
    }

    fn commits_decisions(&self) -> bool {
        true
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

    /// A disk with `room` bytes left, then room again when `room` is raised.
    #[derive(Clone, Default)]
    struct Filling {
        written: Arc<std::sync::Mutex<Vec<u8>>>,
        room: Arc<AtomicU64>,
    }

    impl Write for Filling {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let room = self.room.load(Ordering::SeqCst) as usize;
            if room == 0 {
                return Err(io::Error::from_raw_os_error(28));
            }
            let n = bytes.len().min(room);
            self.written.lock().unwrap().extend_from_slice(&bytes[..n]);
            self.room.fetch_sub(n as u64, Ordering::SeqCst);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_disk_filling_mid_record_loses_whole_records_and_no_later_line() {
        let disk = Filling::default();
        let mut sink = NdjsonSink::new(Box::new(disk.clone()));
        let unwritten = sink.counters().unwritten;
        let first: Vec<_> = (0..3).map(|i| record(1_700_000_000_000 + i)).collect();
        let one_line = serde_json::to_vec(&first[0]).unwrap().len() + 1;
        // Room for one record and half of the next.
        disk.room
            .store((one_line + one_line / 2) as u64, Ordering::SeqCst);
        sink.emit(&first).unwrap();
        assert_eq!(unwritten.load(Ordering::Relaxed), 2);

        disk.room.store(u64::MAX / 2, Ordering::SeqCst);
        let second: Vec<_> = (10..12).map(|i| record(1_700_000_000_000 + i)).collect();
        sink.emit(&second).unwrap();
        assert_eq!(unwritten.load(Ordering::Relaxed), 2);

        let text = String::from_utf8(disk.written.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        let parsed: Vec<Option<serde_json::Value>> =
            lines.iter().map(|l| serde_json::from_str(l).ok()).collect();
        // The first record, the torn one (unreadable, counted lost), then both of the next.
        assert!(parsed[0].is_some() && parsed[1].is_none());
        assert_eq!(parsed[2].as_ref().unwrap()["seq"], 1_700_000_000_010_u64);
        assert_eq!(parsed[3].as_ref().unwrap()["seq"], 1_700_000_000_011_u64);
    }

    #[test]
    fn a_full_disk_is_counted_not_fatal() {
        let mut sink = NdjsonSink::new(Box::new(Full));
        let unwritten = sink.counters().unwritten;
        let records: Vec<_> = (0..3).map(|i| record(1_700_000_000_000 + i)).collect();
        assert!(sink.emit(&records).is_ok());
        assert!(sink.emit(&records).is_ok());
        assert!(sink.flush().is_ok());
        assert_eq!(unwritten.load(Ordering::Relaxed), 6);
    }

    /// Windows of records into a file bounded at 2 KiB: it rotates, the two files together
    /// never pass twice the bound plus a window, each begins and ends with a whole line,
    /// and the newest records are all there, in order, across the rotation.
    #[test]
    fn the_output_file_rotates_at_its_bound_and_loses_no_line_across() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let max = 2048;
        let mut sink = NdjsonSink::append_to_or_degraded(&path, max);
        let counters = sink.counters();
        let mut largest_window = 0;
        for window in 0..40 {
            let records: Vec<_> = (0..3).map(|i| record(window * 3 + i)).collect();
            let before = std::fs::metadata(&path).map_or(0, |m| m.len());
            sink.emit(&records).unwrap();
            let after = std::fs::metadata(&path).unwrap().len();
            if after > before {
                largest_window = largest_window.max(after - before);
            }
        }
        assert_eq!(counters.unwritten.load(Ordering::Relaxed), 0);
        let rotations = counters.rotations.load(Ordering::Relaxed);
        assert!(rotations >= 2, "{rotations} rotations");
        let rotated = dir.path().join("out.ndjson.1");
        let (old, new) = (
            std::fs::read_to_string(&rotated).unwrap(),
            std::fs::read_to_string(&path).unwrap(),
        );
        for text in [&old, &new] {
            assert!(text.len() as u64 <= max, "{} bytes", text.len());
            assert!(text.ends_with('\n'));
        }
        let seqs: Vec<u64> = old
            .lines()
            .chain(new.lines())
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                value["seq"].as_u64().unwrap()
            })
            .collect();
        let expected: Vec<u64> = (120 - seqs.len() as u64..120).collect();
        assert_eq!(seqs, expected, "the newest records, in order, none lost");
        assert!(largest_window < max);
        // Nothing else in the folder: one rotated file, not a series.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    fn emit_windows(sink: &mut NdjsonSink, windows: i64) {
        for window in 0..windows {
            let records: Vec<_> = (0..3).map(|i| record(window * 3 + i)).collect();
            sink.emit(&records).unwrap();
        }
    }

    /// A power cut mid-line left half a record: the next record starts a line of its own.
    #[test]
    fn a_file_cut_inside_a_line_is_ended_before_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        std::fs::write(&path, b"{\"seq\":0}\n{\"half").unwrap();
        let mut sink = NdjsonSink::append_to_or_degraded(&path, 1 << 20);
        emit_windows(&mut sink, 1);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(lines[1], "{\"half");
        assert!(
            lines[2..]
                .iter()
                .all(|line| serde_json::from_str::<serde_json::Value>(line).is_ok())
        );
    }

    /// Moved away by another program (logrotate): that file is left alone, a new one begun.
    #[test]
    fn a_file_moved_away_by_another_program_is_not_rotated_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut sink = NdjsonSink::append_to_or_degraded(&path, 2048);
        let counters = sink.counters();
        emit_windows(&mut sink, 3);
        let moved = dir.path().join("out.ndjson.moved");
        std::fs::rename(&path, &moved).unwrap();
        std::fs::write(&path, b"").unwrap(); // what logrotate's `create` leaves
        emit_windows(&mut sink, 20);
        assert_eq!(
            std::fs::read_to_string(&moved).unwrap().lines().count() % 3,
            0
        );
        assert!(std::fs::read_to_string(&moved).unwrap().len() <= 2048);
        assert!(!std::fs::read_to_string(&path).unwrap().is_empty());
        assert_eq!(counters.unwritten.load(Ordering::Relaxed), 0);
    }

    /// A rename that cannot be done (`<path>.1` is a folder) loses nothing: the file grows
    /// past its bound, and the log says why.
    #[test]
    fn a_rotation_that_cannot_rename_keeps_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        std::fs::create_dir(dir.path().join("out.ndjson.1")).unwrap();
        let mut sink = NdjsonSink::append_to_or_degraded(&path, 1024);
        let counters = sink.counters();
        emit_windows(&mut sink, 20);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 60);
        assert_eq!(counters.unwritten.load(Ordering::Relaxed), 0);
        assert_eq!(counters.rotations.load(Ordering::Relaxed), 0);
    }

    /// What is not a regular file (a device, a pipe) is never renamed.
    #[test]
    fn a_device_is_not_rotated() {
        let mut sink = NdjsonSink::append_to_or_degraded(Path::new("/dev/null"), 1);
        let counters = sink.counters();
        emit_windows(&mut sink, 5);
        assert_eq!(counters.rotations.load(Ordering::Relaxed), 0);
        assert_eq!(counters.unwritten.load(Ordering::Relaxed), 0);
        assert!(Path::new("/dev/null").exists());
    }

    #[test]
    fn a_file_that_cannot_be_opened_yet_is_opened_at_a_later_write() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("later");
        let path = folder.join("out.ndjson");
        let mut sink = NdjsonSink::append_to_or_degraded(&path, 1 << 20);
        let unwritten = sink.counters().unwritten;
        assert!(sink.emit(&[record(1)]).is_ok());
        assert_eq!(unwritten.load(Ordering::Relaxed), 1);
        std::fs::create_dir(&folder).unwrap();
        assert!(sink.emit(&[record(2)]).is_ok());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().count() >= 1, "{text}");
        assert!(text.contains("\"sensor_id\":\"s\""));
    }
}
