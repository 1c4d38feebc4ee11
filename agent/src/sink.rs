//! Where verdicts go: a [`Sink`]. Without an upstream it is NDJSON on standard output or
//! appended to a file.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::record::VerdictRecord;

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
