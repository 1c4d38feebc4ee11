//! A recorded series read from CSV (`timestamp,value` with a header), for `replay`.
//!
//! Timestamps may be RFC 3339 (`2024-05-01T12:00:00Z`, `…+02:00`), `YYYY-MM-DD HH:MM:SS`
//! (taken as UTC) or Unix epoch seconds (`1714564800`, fractions allowed) or milliseconds
//! (`1714564800000`: a number of 10^11 or more, as the lines' `auto` reads it). A row that
//! cannot be read is an error naming its line; nothing is skipped silently.
//!
//! Rows are kept in file order. Real recordings are not always in time order (NAB's
//! machine_temperature steps back an hour at row 10 151, a DST change or a clock fix), so a
//! row whose time is not after the previous row's is counted in [`Series::order`], with the
//! first such row named, for the caller to warn about; [`ReadOptions::strict_order`] makes
//! it an error instead. Formatting times for output is `support::timestamp`'s job, not this
//! module's.

use std::io::Read;

use thiserror::Error;

/// Timestamps (Unix milliseconds, UTC, in file order) and their values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub timestamps: Vec<i64>,
    pub values: Vec<f32>,
    /// Rows whose time is not after the previous row's.
    pub order: TimeOrder,
}

/// What the reader found about the series' time order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeOrder {
    /// Rows whose timestamp is not after the previous row's (steps back and repeats).
    pub out_of_order_rows: u64,
    /// The first of them.
    pub first: Option<OutOfOrder>,
}

impl TimeOrder {
    pub fn is_ordered(&self) -> bool {
        self.out_of_order_rows == 0
    }

    /// One line for a warning: the first such row, its time, the previous row's, and the
    /// count; `None` when the series is in order.
    pub fn warning(&self) -> Option<String> {
        let first = self.first.as_ref()?;
        Some(format!(
            "{} row(s) are not after the row before them; the first is line {}: {} after {}; replaying in file order",
            self.out_of_order_rows,
            first.line,
            crate::support::timestamp::format(first.timestamp),
            crate::support::timestamp::format(first.previous),
        ))
    }
}

/// A row whose time is not after the previous row's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutOfOrder {
    /// CSV line (the header is line 1).
    pub line: u64,
    pub timestamp: i64,
    pub previous: i64,
}

/// How to read a series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Refuse a series whose timestamps are not strictly increasing (the first such row is
    /// the error) instead of reading it in file order.
    pub strict_order: bool,
}

#[derive(Debug, Error)]
pub enum SeriesError {
    #[error("cannot read the CSV: {0}")]
    Io(String),
    #[error("the header must name the columns `timestamp` and `value` (found: {found})")]
    Header { found: String },
    #[error("line {line}: {reason}")]
    Row { line: u64, reason: String },
    #[error("the CSV has a header but no rows")]
    Empty,
    #[error(
        "line {line}: timestamp {} is not after the previous row's {}",
        crate::support::timestamp::format(*timestamp),
        crate::support::timestamp::format(*previous)
    )]
    OutOfOrder {
        line: u64,
        timestamp: i64,
        previous: i64,
    },
}

impl Series {
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// Reads a series in file order, noting rows out of time order in [`Series::order`].
    pub fn from_csv(input: impl Read) -> Result<Self, SeriesError> {
        Self::from_csv_with(input, ReadOptions::default())
    }

    pub fn from_csv_with(input: impl Read, options: ReadOptions) -> Result<Self, SeriesError> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(LineCounter::new(input));
        let header = reader
            .headers()
            .map_err(|e| SeriesError::Io(e.to_string()))?
            .clone();
        let column = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
        let (Some(time_column), Some(value_column)) = (column("timestamp"), column("value")) else {
            return Err(SeriesError::Header {
                found: crate::support::text::escape(
                    &header.iter().collect::<Vec<_>>().join(","),
                    200,
                ),
            });
        };

        let mut series = Series::default();
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    return Err(match e.position() {
                        Some(position) => SeriesError::Row {
                            line: reader.get_mut().line_at(position.byte()),
                            reason: e.to_string(),
                        },
                        None => SeriesError::Io(e.to_string()),
                    });
                }
            }
            let line = record
                .position()
                .map_or(0, |p| reader.get_mut().line_at(p.byte()));
            let row_error = |reason: String| SeriesError::Row { line, reason };
            let field = |index: usize, name: &str| {
                record
                    .get(index)
                    .filter(|text| !text.is_empty())
                    .ok_or_else(|| row_error(format!("no {name}")))
            };

            let timestamp = parse_timestamp(field(time_column, "timestamp")?).map_err(row_error)?;
            let value_text = field(value_column, "value")?;
            let value = value_text.parse::<f32>().map_err(|_| {
                let shown = crate::support::text::escape(value_text, 40);
                row_error(format!("value {shown:?} is not a number"))
            })?;
            if let Some(&previous) = series.timestamps.last()
                && timestamp <= previous
            {
                if options.strict_order {
                    return Err(SeriesError::OutOfOrder {
                        line,
                        timestamp,
                        previous,
                    });
                }
                series.order.out_of_order_rows += 1;
                series.order.first.get_or_insert(OutOfOrder {
                    line,
                    timestamp,
                    previous,
                });
            }
            series.timestamps.push(timestamp);
            series.values.push(value);
        }
        if series.is_empty() {
            return Err(SeriesError::Empty);
        }
        Ok(series)
    }
}

/// The input, counting its newlines as the CSV reader reads it, so that a row's line is
/// the file's own: the csv crate's `Position::line` undercounts after CRLF line ends and
/// blank lines (a bad row on line 4 of a Windows file was named line 3). Only the line
/// ends read ahead of the current row are kept (record starts only grow), so the memory
/// is the reader's buffer's, not the file's.
struct LineCounter<R> {
    inner: R,
    /// Bytes read so far.
    read: u64,
    /// Offsets of the `\r` and `\n` bytes read but not yet passed by a row, and which.
    ahead: std::collections::VecDeque<(u64, u8)>,
    /// Newlines before the last row asked about.
    passed: u64,
}

impl<R: Read> LineCounter<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            read: 0,
            ahead: std::collections::VecDeque::new(),
            passed: 0,
        }
    }

    /// The line (from 1) of the first byte at or after `offset` that ends no line: the
    /// csv crate places a row's start before the line ends (a CRLF's `\n`, blank lines)
    /// it skipped to reach it. For offsets that never go back.
    fn line_at(&mut self, offset: u64) -> u64 {
        let mut cursor = offset;
        while let Some(&(at, byte)) = self.ahead.front() {
            if at > cursor {
                break;
            }
            if at == cursor {
                cursor = cursor.saturating_add(1);
            }
            self.ahead.pop_front();
            if byte == b'\n' {
                self.passed = self.passed.saturating_add(1);
            }
        }
        self.passed.saturating_add(1)
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, byte) in buf.get(..n).unwrap_or_default().iter().enumerate() {
            if matches!(byte, b'\n' | b'\r') {
                let at = self
                    .read
                    .saturating_add(u64::try_from(i).unwrap_or(u64::MAX));
                self.ahead.push_back((at, *byte));
            }
        }
        self.read = self
            .read
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        Ok(n)
    }
}

/// Numbers at or above this are Unix milliseconds, below it seconds: the lines'
/// `time_format = "auto"` rule. Recorders write either (pandas and Elasticsearch exports
/// write milliseconds), and 10^11 s is the year 5138, so no real series is ambiguous;
/// read as seconds, 1714564800000 ms became the year 56,300.
const SECONDS_BELOW: f64 = 1e11;

/// Unix milliseconds from any of the accepted forms, within the years RFC 3339 can write
/// (0000 to 9999), which every verdict's timestamp is.
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    let shown = || crate::support::text::escape(text, 40);
    if let Ok(number) = text.parse::<f64>() {
        let millis = if number.abs() < SECONDS_BELOW {
            number * 1000.0
        } else {
            number
        }
        .round();
        // The range check first: the cast below cannot saturate.
        return if millis.is_finite()
            && millis.abs() < 1e15
            && crate::support::timestamp::try_format(millis as i64).is_some()
        {
            Ok(millis as i64)
        } else {
            Err(format!(
                "epoch time {:?} is outside the years 0000 to 9999",
                shown()
            ))
        };
    }
    match crate::support::timestamp::parse(text) {
        Some(millis) => Ok(millis),
        None => Err(format!(
            "timestamp {:?} is neither RFC 3339, `YYYY-MM-DD HH:MM:SS` nor epoch seconds or milliseconds",
            shown()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_timestamp_form() {
        let csv = "timestamp,value\n\
                   2024-05-01T12:00:00Z,1.5\n\
                   2024-05-01T14:00:01+02:00,2\n\
                   2024-05-01 12:00:02,3\n\
                   1714564803,4\n\
                   1714564803.5,NaN\n";
        let series = Series::from_csv(csv.as_bytes()).unwrap();
        assert_eq!(
            series.timestamps,
            [
                1714564800000,
                1714564801000,
                1714564802000,
                1714564803000,
                1714564803500
            ]
        );
        assert_eq!(series.values[..4], [1.5, 2.0, 3.0, 4.0]);
        assert!(series.values[4].is_nan());
        assert_eq!(
            crate::support::timestamp::format(1714564803500),
            "2024-05-01T12:00:03.5Z"
        );
    }

    /// An export in epoch milliseconds (pandas, Elasticsearch) is read as milliseconds,
    /// not as seconds 56,000 years ahead; a time no RFC 3339 can write is refused with
    /// its line, never replayed as `@…ms`.
    #[test]
    fn epoch_milliseconds_are_told_from_seconds() {
        let csv = "timestamp,value\n1714564800000,1\n1714564800500.0,2\n-1000,3\n";
        let series = Series::from_csv(csv.as_bytes()).unwrap();
        assert_eq!(
            series.timestamps,
            [1_714_564_800_000, 1_714_564_800_500, -1_000_000]
        );
        assert_eq!(
            crate::support::timestamp::format(series.timestamps[0]),
            "2024-05-01T12:00:00Z"
        );
        for beyond in ["253402300800000", "1e15", "-62167219200001", "inf"] {
            let csv = format!("timestamp,value\n1,1\n{beyond},2\n");
            let err = Series::from_csv(csv.as_bytes()).unwrap_err().to_string();
            assert!(
                err.starts_with("line 3: epoch time") && err.contains("0000 to 9999"),
                "{beyond}: {err}"
            );
        }
    }

    /// A row's line is the file's, whatever the line ends and blank lines before it: the
    /// csv crate's own count said line 3 for line 4 of a CRLF file.
    #[test]
    fn a_bad_row_is_named_by_its_own_line_after_crlf_and_blank_lines() {
        for (csv, line) in [
            ("timestamp,value\r\n1,1\r\n2,1\r\n3,x\r\n", 4),
            ("timestamp,value\n1,1\n\n\n3,x\n", 5),
            ("timestamp,value\r\n1,1\r\n\r\n\r\n3,x", 5),
            ("timestamp,value\n\"1\n\",1\n3,x\n", 4),
        ] {
            let err = Series::from_csv(csv.as_bytes()).unwrap_err().to_string();
            assert!(err.starts_with(&format!("line {line}: ")), "{csv:?}: {err}");
        }
        let steps_back = STEPS_BACK.replace('\n', "\r\n");
        let series = Series::from_csv(steps_back.as_bytes()).unwrap();
        assert_eq!(series.order.first.unwrap().line, 4);
        let uneven = "timestamp,value\r\n1,1\r\n\r\n2,1,9\r\n";
        let err = Series::from_csv(uneven.as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with("line 4: "), "{err}");
    }

    #[test]
    fn columns_are_found_by_name() {
        let csv = "Value,sensor,Timestamp\n7,a,10\n8,a,20\n";
        let series = Series::from_csv(csv.as_bytes()).unwrap();
        assert_eq!(series.timestamps, [10_000, 20_000]);
        assert_eq!(series.values, [7.0, 8.0]);
    }

    #[test]
    fn bad_rows_name_their_line() {
        let cases = [
            (
                "timestamp,value\n1,2\n2,abc\n",
                "line 3: value \"abc\" is not a number",
            ),
            (
                "timestamp,value\n1,2\nyesterday,3\n",
                "line 3: timestamp \"yesterday\"",
            ),
            ("timestamp,value\n1,2\n3,\n", "line 3: no value"),
            ("timestamp,value\n1,2\n2,3,4\n", "line 3"),
            ("time,value\n1,2\n", "header must name"),
            ("timestamp,value\n", "no rows"),
        ];
        for (csv, expected) in cases {
            let err = Series::from_csv(csv.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(expected), "{csv:?}: {err}");
        }
    }

    /// NAB machine_temperature's shape at row 10 151: 02:55, then 02:00 (an hour back).
    const STEPS_BACK: &str = "timestamp,value\n\
        2013-12-15 02:50:00,70.1\n\
        2013-12-15 02:55:00,70.2\n\
        2013-12-15 02:00:00,70.3\n\
        2013-12-15 02:05:00,70.4\n\
        2013-12-15 02:05:00,70.5\n\
        2013-12-15 03:10:00,70.6\n";

    #[test]
    fn a_series_that_steps_back_is_read_in_file_order_and_reported() {
        let series = Series::from_csv(STEPS_BACK.as_bytes()).unwrap();
        assert_eq!(series.len(), 6, "every row kept");
        assert_eq!(series.values, [70.1, 70.2, 70.3, 70.4, 70.5, 70.6]);
        assert!(
            series.timestamps[2] < series.timestamps[1],
            "file order, not sorted"
        );
        assert_eq!(
            series.order.out_of_order_rows, 2,
            "the step back and the repeat"
        );
        let first = series.order.first.clone().unwrap();
        assert_eq!(first.line, 4);
        assert_eq!(first.previous - first.timestamp, 55 * 60 * 1000);
        let warning = series.order.warning().unwrap();
        assert!(warning.starts_with("2 row(s)"), "{warning}");
        assert!(
            warning.contains("line 4: 2013-12-15T02:00:00Z after 2013-12-15T02:55:00Z"),
            "{warning}"
        );
    }

    #[test]
    fn strict_order_refuses_the_first_row_out_of_order() {
        let strict = ReadOptions { strict_order: true };
        let err = Series::from_csv_with(STEPS_BACK.as_bytes(), strict).unwrap_err();
        assert!(
            matches!(err, SeriesError::OutOfOrder { line: 4, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("line 4: timestamp 2013-12-15T02:00:00Z is not after")
        );
        let repeat = Series::from_csv_with("timestamp,value\n5,2\n5,3\n".as_bytes(), strict);
        assert!(matches!(
            repeat,
            Err(SeriesError::OutOfOrder { line: 3, .. })
        ));
    }

    #[test]
    fn an_ordered_series_reports_nothing() {
        let series = Series::from_csv("timestamp,value\n1,2\n2,3\n".as_bytes()).unwrap();
        assert!(series.order.is_ordered());
        assert_eq!(series.order.warning(), None);
    }
}
