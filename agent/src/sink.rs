//! Where verdicts go: a [`Sink`]. With Elasticsearch configured it is the spool the
//! shipper drains; without, NDJSON on standard output or appended to a file.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use crate::record::VerdictRecord;
use crate::spool::Spool;

/// The end of the pipeline. `emit` takes a window's worth of records; `flush` makes
/// them durable as far as this sink can.
pub trait Sink: Send {
    fn emit(&mut self, records: &[VerdictRecord]) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

/// One JSON object per line.
pub struct NdjsonSink {
    out: BufWriter<Box<dyn Write + Send>>,
}

impl NdjsonSink {
    pub fn stdout() -> Self {
        Self::new(Box::new(io::stdout()))
    }

    pub fn append_to(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self::new(Box::new(file)))
    }

    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: BufWriter::new(out),
        }
    }
}

impl Sink for NdjsonSink {
    fn emit(&mut self, records: &[VerdictRecord]) -> io::Result<()> {
        for record in records {
            serde_json::to_writer(&mut self.out, record)?;
            self.out.write_all(b"\n")?;
        }
        // A window's verdicts are few and far between: let a reader see them at once.
        self.out.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Into the spool, one transaction per window.
pub struct SpoolSink {
    spool: Arc<Spool>,
    only_anomalies: bool,
}

impl SpoolSink {
    /// `only_anomalies`: ship only the flagged samples (for thin links).
    pub fn new(spool: Arc<Spool>, only_anomalies: bool) -> Self {
        Self {
            spool,
            only_anomalies,
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
        let dropped = self.spool.append(&documents).map_err(io::Error::other)?;
        if dropped > 0 {
            log::warn!("spool full: {dropped} documents dropped to make room");
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
        // Every append is already a durable commit.
        Ok(())
    }
}
