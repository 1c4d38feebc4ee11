//! One line of text into one reading: CSV (with configured columns or a header line) or
//! NDJSON, mapped by the `[source]` field names onto a sample's channels, its sensor and
//! its time. Pure and allocation-light (the benchmark measures it); a line that cannot be
//! read is a [`Refused`] reason, never a panic. A new format or field goes here.

use std::borrow::Cow;

use crate::sensor::lines::config::{Format, SourceConfig, TimeFormat};

/// Why a line was dropped: the `reason` label of `edge_agent_lines_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refused {
    /// Not UTF-8, bad CSV quoting, a column count that does not fit, JSON that is not an
    /// object, a value that is not a number.
    Malformed,
    /// Longer than `max_line_bytes`.
    TooLong,
    /// No value field, or an empty one.
    MissingValue,
    /// The value outside `value_min..=value_max`, or not finite.
    OutOfRange,
    /// A time that does not parse or lies outside years 1970–9999.
    BadTime,
    /// Earlier than the same sensor's previous sample.
    TimeWentBack,
    /// A sensor id empty, longer than 128 bytes or with control characters.
    BadSensor,
    /// A new sensor while `max_sensors` are active.
    TooManySensors,
    /// A header line without the value field, or without the time field when one is
    /// configured: never a header whose lines would silently lose their sender's time.
    BadHeader,
    /// The queue was full (UDP only: TCP and standard input wait for room).
    QueueFull,
    /// A time further ahead of the agent's clock than `max_future_s`: one such line
    /// would otherwise make every later line of its sensor go back in time.
    FutureTime,
    /// A last line without its newline when the stream ended (a TCP close, the end of
    /// standard input, a client closed while idle): it may have been cut short (`12` of
    /// `123`), so it is not judged.
    Incomplete,
    /// A line naming a sensor other than its connection's client certificate's, with
    /// `bind_sensor_to_certificate`: one device may not speak for another.
    ForeignSensor,
}

impl Refused {
    pub const ALL: [Refused; 13] = [
        Self::Malformed,
        Self::TooLong,
        Self::MissingValue,
        Self::OutOfRange,
        Self::BadTime,
        Self::TimeWentBack,
        Self::BadSensor,
        Self::TooManySensors,
        Self::BadHeader,
        Self::QueueFull,
        Self::FutureTime,
        Self::Incomplete,
        Self::ForeignSensor,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLong => "too_long",
            Self::MissingValue => "missing_value",
            Self::OutOfRange => "out_of_range",
            Self::BadTime => "bad_time",
            Self::TimeWentBack => "time_went_back",
            Self::BadSensor => "bad_sensor",
            Self::TooManySensors => "too_many_sensors",
            Self::BadHeader => "bad_header",
            Self::QueueFull => "queue_full",
            Self::FutureTime => "future_time",
            Self::Incomplete => "incomplete",
            Self::ForeignSensor => "foreign_sensor",
        }
    }

    pub fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Longest sensor id taken from a line (as `[agent] sensor_id`).
pub const MAX_SENSOR_ID_BYTES: usize = 128;
/// Latest time accepted: 9999-12-31T23:59:59.999Z, in Unix ms.
const MAX_UNIX_MS: i64 = 253_402_300_799_999;
/// Numbers of the time field below this are seconds under `time_format = "auto"`.
const AUTO_SECONDS_BELOW: f64 = 1e11;

/// What a line says.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading<'a> {
    /// `None`: the configured sensor.
    pub sensor: Option<Cow<'a, str>>,
    /// Unix ms; `None`: stamp it when received.
    pub time_ms: Option<i64>,
    pub value: f32,
    pub temperature: f32,
    pub humidity: f32,
    pub pressure: f32,
    pub gas_resistance: f32,
}

/// What a line was.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed<'a> {
    Reading(Reading<'a>),
    /// The CSV header, now in use for the lines after it.
    Header,
    /// Empty or whitespace: skipped, not counted as refused.
    Blank,
}

/// Where each mapped field sits in a CSV row.
#[derive(Debug, Clone, Default, PartialEq)]
struct Columns {
    count: usize,
    sensor: Option<usize>,
    time: Option<usize>,
    value: usize,
    temperature: Option<usize>,
    humidity: Option<usize>,
    pressure: Option<usize>,
    gas_resistance: Option<usize>,
}

/// The parser of one stream of lines (a TCP connection, standard input, UDP as a whole):
/// with CSV and no configured columns it learns them from its first line.
#[derive(Debug, Clone)]
pub struct LineParser {
    format: Format,
    time_format: TimeFormat,
    /// Minutes east of UTC a time written without an offset is read in; `None`: such a
    /// time is refused.
    no_offset: Option<i64>,
    names: Names,
    value_range: (f64, f64),
    columns: Option<Columns>,
    /// Reused between CSV lines: no allocation per line once warm.
    fields: Vec<(usize, usize, bool)>,
}

#[derive(Debug, Clone)]
struct Names {
    sensor: String,
    time: String,
    value: String,
    temperature: String,
    humidity: String,
    pressure: String,
    gas_resistance: String,
}

impl LineParser {
    pub fn new(config: &SourceConfig) -> Self {
        let names = Names {
            sensor: config.sensor_field.clone(),
            time: config.time_field.clone(),
            value: config.value_field.clone(),
            temperature: config.temperature_field.clone(),
            humidity: config.humidity_field.clone(),
            pressure: config.pressure_field.clone(),
            gas_resistance: config.gas_resistance_field.clone(),
        };
        let columns = if config.columns.is_empty() {
            None
        } else {
            names.columns(config.columns.iter().map(String::as_str))
        };
        Self {
            format: config.format,
            time_format: config.time_format,
            no_offset: config.time_without_offset.minutes(),
            names,
            value_range: (config.value_min, config.value_max),
            columns,
            fields: Vec::new(),
        }
    }

    /// What a header line must name, for the log when one does not: the value field and
    /// (unless `time_field = ""`) the time field.
    pub fn header_needs(&self) -> String {
        let value = format!("{:?} (value_field)", self.names.value);
        if self.names.time.is_empty() {
            return value;
        }
        format!(
            "{value} and {:?} (time_field; time_field = \"\" stamps lines when received)",
            self.names.time
        )
    }

    /// Reads one line (without its end of line). A UTF-8 byte order mark at its start
    /// (Excel's "CSV UTF-8" writes one at the start of a file, some senders at the start
    /// of each connection or datagram) is not part of the text.
    pub fn parse<'a>(&mut self, line: &'a str) -> Result<Parsed<'a>, Refused> {
        let line = line.strip_prefix('\u{feff}').unwrap_or(line);
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return Ok(Parsed::Blank);
        }
        match self.format {
            Format::Csv => self.parse_csv(line),
            Format::Ndjson => self.parse_json(line),
            Format::Auto if line.trim_start().starts_with('{') => self.parse_json(line),
            Format::Auto => self.parse_csv(line),
        }
    }

    fn parse_csv<'a>(&mut self, line: &'a str) -> Result<Parsed<'a>, Refused> {
        split_csv(line, &mut self.fields)?;
        let Some(columns) = &self.columns else {
            let names = self.fields.iter().map(|&(s, e, _)| field_text(line, s, e));
            let names: Vec<Cow<'_, str>> = names.collect();
            self.columns = self.names.header_columns(names.iter().map(|n| n.trim()));
            return match self.columns {
                Some(_) => Ok(Parsed::Header),
                None => Err(Refused::BadHeader),
            };
        };
        if self.fields.len() != columns.count {
            return Err(Refused::Malformed);
        }
        let field = |index: Option<usize>| -> Option<Cow<'a, str>> {
            let &(start, end, quoted) = self.fields.get(index?)?;
            let text = field_text(line, start, end);
            let text = match (quoted, text) {
                (true, text) => text,
                (false, Cow::Borrowed(text)) => Cow::Borrowed(text.trim()),
                (false, Cow::Owned(text)) => Cow::Owned(text.trim().to_owned()),
            };
            (!text.is_empty()).then_some(text)
        };
        let value = field(Some(columns.value)).ok_or(Refused::MissingValue)?;
        let value = number(&value).ok_or(Refused::Malformed)?;
        let time_ms = match field(columns.time) {
            Some(text) => Some(self.time(TimeField::Text(&text))?),
            None => None,
        };
        let channel = |index| match field(index) {
            Some(text) => number(&text).map(|v| v as f32).ok_or(Refused::Malformed),
            None => Ok(f32::NAN),
        };
        Ok(Parsed::Reading(Reading {
            sensor: field(columns.sensor).map(check_sensor).transpose()?,
            time_ms,
            value: self.value(value)?,
            temperature: channel(columns.temperature)?,
            humidity: channel(columns.humidity)?,
            pressure: channel(columns.pressure)?,
            gas_resistance: channel(columns.gas_resistance)?,
        }))
    }

    fn parse_json<'a>(&mut self, line: &'a str) -> Result<Parsed<'a>, Refused> {
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).map_err(|_| Refused::Malformed)?;
        let get = |name: &str| {
            if name.is_empty() {
                return None;
            }
            object.get(name).filter(|v| !v.is_null())
        };
        let as_number = |value: &serde_json::Value| match value {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => number(s),
            _ => None,
        };
        let value = get(&self.names.value).ok_or(Refused::MissingValue)?;
        let value = as_number(value).ok_or(Refused::Malformed)?;
        let time_ms = match get(&self.names.time) {
            None => None,
            Some(serde_json::Value::String(s)) => Some(self.time(TimeField::Text(s))?),
            Some(serde_json::Value::Number(n)) => {
                Some(self.time(TimeField::Number(n.as_f64().ok_or(Refused::BadTime)?))?)
            }
            Some(_) => return Err(Refused::BadTime),
        };
        let sensor = match get(&self.names.sensor) {
            None => None,
            Some(serde_json::Value::String(s)) => Some(check_sensor(Cow::Owned(s.clone()))?),
            Some(serde_json::Value::Number(n)) => Some(check_sensor(Cow::Owned(n.to_string()))?),
            Some(_) => return Err(Refused::BadSensor),
        };
        let channel = |name: &str| match get(name) {
            Some(value) => as_number(value).map(|v| v as f32).ok_or(Refused::Malformed),
            None => Ok(f32::NAN),
        };
        Ok(Parsed::Reading(Reading {
            sensor,
            time_ms,
            value: self.value(value)?,
            temperature: channel(&self.names.temperature)?,
            humidity: channel(&self.names.humidity)?,
            pressure: channel(&self.names.pressure)?,
            gas_resistance: channel(&self.names.gas_resistance)?,
        }))
    }

    fn value(&self, value: f64) -> Result<f32, Refused> {
        let (min, max) = self.value_range;
        if !value.is_finite() || value < min || value > max {
            return Err(Refused::OutOfRange);
        }
        let value = value as f32;
        // A finite f64 beyond f32's range becomes infinite.
        if !value.is_finite() {
            return Err(Refused::OutOfRange);
        }
        Ok(value)
    }

    fn time(&self, field: TimeField<'_>) -> Result<i64, Refused> {
        let ms = match (self.time_format, field) {
            (TimeFormat::Auto | TimeFormat::Rfc3339, TimeField::Text(text))
                if !looks_numeric(text) =>
            {
                rfc3339_ms(text, self.no_offset)?
            }
            (TimeFormat::Rfc3339, _) => return Err(Refused::BadTime),
            (format, field) => {
                let n = match field {
                    TimeField::Number(n) => n,
                    TimeField::Text(text) => number(text).ok_or(Refused::BadTime)?,
                };
                let seconds = match format {
                    TimeFormat::UnixS => true,
                    TimeFormat::UnixMs => false,
                    _ => n.abs() < AUTO_SECONDS_BELOW,
                };
                let ms = if seconds { n * 1000.0 } else { n };
                if !ms.is_finite() || !(0.0..=MAX_UNIX_MS as f64).contains(&ms) {
                    return Err(Refused::BadTime);
                }
                // In range, checked above: the cast cannot saturate.
                ms.round() as i64
            }
        };
        if !(0..=MAX_UNIX_MS).contains(&ms) {
            return Err(Refused::BadTime);
        }
        Ok(ms)
    }
}

enum TimeField<'a> {
    Text(&'a str),
    Number(f64),
}

impl Names {
    /// The mapping from a header line: `None` without the value field, and without the
    /// time field when one is configured. A header that names no time column would have
    /// every line stamped when received, silently: a header spelt differently
    /// (`Timestamp`, `time`) is a sender's mistake to refuse loudly. `time_field = ""`
    /// says the lines carry no time. (Configured `columns` are the operator's own word.)
    fn header_columns<'n>(&self, names: impl Iterator<Item = &'n str>) -> Option<Columns> {
        let columns = self.columns(names)?;
        if !self.time.is_empty() && columns.time.is_none() {
            return None;
        }
        Some(columns)
    }

    /// The mapping from a header (or the configured columns); `None` without the value.
    fn columns<'n>(&self, names: impl Iterator<Item = &'n str>) -> Option<Columns> {
        let names: Vec<&str> = names.collect();
        let find = |wanted: &str| {
            if wanted.is_empty() {
                return None;
            }
            names.iter().position(|name| *name == wanted)
        };
        Some(Columns {
            count: names.len(),
            sensor: find(&self.sensor),
            time: find(&self.time),
            value: find(&self.value)?,
            temperature: find(&self.temperature),
            humidity: find(&self.humidity),
            pressure: find(&self.pressure),
            gas_resistance: find(&self.gas_resistance),
        })
    }
}

fn looks_numeric(text: &str) -> bool {
    let text = text.trim();
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
}

fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok()
}

fn rfc3339_ms(text: &str, no_offset: Option<i64>) -> Result<i64, Refused> {
    crate::support::timestamp::parse_with(text.trim(), no_offset).ok_or(Refused::BadTime)
}

fn check_sensor(id: Cow<'_, str>) -> Result<Cow<'_, str>, Refused> {
    if id.is_empty()
        || id.len() > MAX_SENSOR_ID_BYTES
        || id.trim().is_empty()
        || id.chars().any(crate::support::text::is_unsafe_char)
    {
        return Err(Refused::BadSensor);
    }
    Ok(id)
}

/// The text of a field found by [`split_csv`]: a quoted field's `""` become `"`.
fn field_text(line: &str, start: usize, end: usize) -> Cow<'_, str> {
    let text = line.get(start..end).unwrap_or_default();
    if text.contains("\"\"") {
        Cow::Owned(text.replace("\"\"", "\""))
    } else {
        Cow::Borrowed(text)
    }
}

/// Splits one CSV record into byte ranges (quoted fields without their quotes) and
/// whether each was quoted. RFC 4180 quoting; a quote inside an unquoted field, or one
/// left open, is malformed.
fn split_csv(line: &str, fields: &mut Vec<(usize, usize, bool)>) -> Result<(), Refused> {
    fields.clear();
    let bytes = line.as_bytes();
    let mut i = 0;
    loop {
        // Leading blanks before a quote are allowed, as most writers put them.
        let mut start = i;
        while start < bytes.len() && bytes[start] == b' ' {
            start += 1;
        }
        if bytes.get(start) == Some(&b'"') {
            let open = start + 1;
            let mut j = open;
            let close = loop {
                match bytes.get(j) {
                    None => return Err(Refused::Malformed),
                    Some(b'"') if bytes.get(j + 1) == Some(&b'"') => j += 2,
                    Some(b'"') => break j,
                    Some(_) => j += 1,
                }
            };
            fields.push((open, close, true));
            let mut after = close + 1;
            while after < bytes.len() && bytes[after] == b' ' {
                after += 1;
            }
            match bytes.get(after) {
                None => return Ok(()),
                Some(b',') => i = after + 1,
                Some(_) => return Err(Refused::Malformed),
            }
        } else {
            let end = bytes[i..]
                .iter()
                .position(|&b| b == b',')
                .map_or(bytes.len(), |p| i + p);
            if bytes[i..end].contains(&b'"') {
                return Err(Refused::Malformed);
            }
            fields.push((i, end, false));
            if end == bytes.len() {
                return Ok(());
            }
            i = end + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensor::lines::config::{SourceKind, TimeWithoutOffset};

    fn config(format: Format, columns: &[&str]) -> SourceConfig {
        SourceConfig {
            kind: SourceKind::Lines,
            format,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            value_min: 0.0,
            value_max: 100.0,
            ..SourceConfig::default()
        }
    }

    fn reading<'a>(parsed: Result<Parsed<'a>, Refused>) -> Reading<'a> {
        match parsed {
            Ok(Parsed::Reading(reading)) => reading,
            other => panic!("not a reading: {other:?}"),
        }
    }

    #[test]
    fn csv_with_a_header_maps_fields_and_leaves_the_rest_nan() {
        let mut parser = LineParser::new(&config(Format::Csv, &[]));
        assert_eq!(
            parser.parse("timestamp, sensor_id ,value,humidity"),
            Ok(Parsed::Header)
        );
        let r = reading(parser.parse("2026-01-01T00:00:01.5Z,kitchen,42.5,40\r"));
        assert_eq!(r.sensor.as_deref(), Some("kitchen"));
        assert_eq!(r.time_ms, Some(1_767_225_601_500));
        assert_eq!((r.value, r.humidity), (42.5, 40.0));
        assert!(r.temperature.is_nan() && r.pressure.is_nan() && r.gas_resistance.is_nan());
        // Empty time and sensor: stamped when received, the configured sensor.
        let r = reading(parser.parse(",,7,"));
        assert_eq!((r.sensor, r.time_ms, r.value), (None, None, 7.0));
        assert!(r.humidity.is_nan());
        assert_eq!(parser.parse("   "), Ok(Parsed::Blank));
    }

    #[test]
    fn csv_quoting_follows_rfc_4180() {
        let mut parser = LineParser::new(&config(Format::Csv, &["sensor_id", "value"]));
        let r = reading(parser.parse(r#""hall, ""north""", 3"#));
        assert_eq!(r.sensor.as_deref(), Some(r#"hall, "north""#));
        assert_eq!(parser.parse(r#""open,3"#), Err(Refused::Malformed));
        assert_eq!(parser.parse(r#"a"b,3"#), Err(Refused::Malformed));
        assert_eq!(parser.parse("a,3,4"), Err(Refused::Malformed));
    }

    #[test]
    fn bad_lines_are_refused_by_reason() {
        let mut parser =
            LineParser::new(&config(Format::Csv, &["sensor_id", "timestamp", "value"]));
        for (line, reason) in [
            ("a,1,", Refused::MissingValue),
            ("a,1,x", Refused::Malformed),
            ("a,1,101", Refused::OutOfRange),
            ("a,1,NaN", Refused::OutOfRange),
            ("a,yesterday,1", Refused::BadTime),
            ("a,-5,1", Refused::BadTime),
            ("a,1e300,1", Refused::BadTime),
            ("\u{1b}[2J,1,1", Refused::BadSensor),
            (&format!("{},1,1", "s".repeat(129)), Refused::BadSensor),
        ] {
            assert_eq!(parser.parse(line), Err(reason), "{line:?}");
        }
        let mut header = LineParser::new(&config(Format::Csv, &[]));
        assert_eq!(header.parse("a,b"), Err(Refused::BadHeader));
        // The time column is configured (`timestamp`): a header without it is refused,
        // never taken with every line then stamped on receipt.
        assert_eq!(header.parse("value"), Err(Refused::BadHeader));
        assert_eq!(header.parse("Timestamp,value"), Err(Refused::BadHeader));
        assert_eq!(header.parse("timestamp,value"), Ok(Parsed::Header));
        let mut untimed = LineParser::new(&SourceConfig {
            time_field: String::new(),
            ..config(Format::Csv, &[])
        });
        assert_eq!(untimed.parse("value"), Ok(Parsed::Header));
        assert!(header.header_needs().contains("\"timestamp\" (time_field"));
    }

    #[test]
    fn a_byte_order_mark_starts_no_field() {
        let mut parser = LineParser::new(&config(Format::Auto, &[]));
        assert_eq!(
            parser.parse("\u{feff}timestamp,sensor_id,value\r"),
            Ok(Parsed::Header)
        );
        let r = reading(parser.parse("\u{feff}1767225600,a,1"));
        assert_eq!(r.time_ms, Some(1_767_225_600_000));
        assert_eq!(reading(parser.parse("\u{feff}{\"value\":2}")).value, 2.0);
        assert_eq!(parser.parse("\u{feff}"), Ok(Parsed::Blank));
    }

    #[test]
    fn times_without_an_offset_follow_the_configured_rule() {
        let columns = ["timestamp", "value"];
        let with = |rule: TimeWithoutOffset| {
            LineParser::new(&SourceConfig {
                time_without_offset: rule,
                ..config(Format::Csv, &columns)
            })
        };
        for line in ["2026-01-01 01:00:00,1", "2026-01-01T01:00:00,1"] {
            let utc = reading(with(TimeWithoutOffset::Utc).parse(line)).time_ms;
            assert_eq!(utc, Some(1_767_229_200_000), "{line}");
            let east = reading(with(TimeWithoutOffset::Offset(60)).parse(line)).time_ms;
            assert_eq!(east, Some(1_767_225_600_000), "{line}");
            assert_eq!(
                with(TimeWithoutOffset::Refuse).parse(line),
                Err(Refused::BadTime),
                "{line}"
            );
        }
        // An offset written is always honoured.
        let r = reading(with(TimeWithoutOffset::Refuse).parse("2026-01-01T01:00:00Z,1"));
        assert_eq!(r.time_ms, Some(1_767_229_200_000));
    }

    #[test]
    fn times_in_seconds_milliseconds_and_rfc_3339() {
        let mut parser = LineParser::new(&config(Format::Csv, &["timestamp", "value"]));
        for (time, ms) in [
            ("1767225600", 1_767_225_600_000),
            ("1767225600.25", 1_767_225_600_250),
            ("1767225600123", 1_767_225_600_123),
            ("2026-01-01T01:00:00+01:00", 1_767_225_600_000),
        ] {
            assert_eq!(
                reading(parser.parse(&format!("{time},1"))).time_ms,
                Some(ms)
            );
        }
        let mut ms = LineParser::new(&SourceConfig {
            time_format: TimeFormat::UnixMs,
            ..config(Format::Csv, &["timestamp", "value"])
        });
        assert_eq!(reading(ms.parse("1000,1")).time_ms, Some(1000));
        let mut rfc = LineParser::new(&SourceConfig {
            time_format: TimeFormat::Rfc3339,
            ..config(Format::Csv, &["timestamp", "value"])
        });
        assert_eq!(rfc.parse("1000,1"), Err(Refused::BadTime));
    }

    #[test]
    fn auto_tells_json_from_csv_line_by_line() {
        let mut parser = LineParser::new(&config(Format::Auto, &[]));
        assert_eq!(
            parser.parse("timestamp,sensor_id,value"),
            Ok(Parsed::Header)
        );
        assert_eq!(reading(parser.parse(",a,1")).value, 1.0);
        assert_eq!(reading(parser.parse(r#" {"value":2}"#)).value, 2.0);
        assert_eq!(reading(parser.parse(",b,3")).sensor.as_deref(), Some("b"));
    }

    #[test]
    fn ndjson_takes_numbers_or_numeric_text() {
        let mut parser = LineParser::new(&config(Format::Ndjson, &[]));
        let r = reading(parser.parse(
            r#"{"sensor_id":"esp32","timestamp":1767225600,"value":"12.5","temperature":21,"humidity":null}"#,
        ));
        assert_eq!(r.sensor.as_deref(), Some("esp32"));
        assert_eq!(r.time_ms, Some(1_767_225_600_000));
        assert_eq!((r.value, r.temperature), (12.5, 21.0));
        assert!(r.humidity.is_nan());
        let r = reading(parser.parse(r#"{"sensor_id":7,"value":1}"#));
        assert_eq!(r.sensor.as_deref(), Some("7"));
        for (line, reason) in [
            ("[1,2]", Refused::Malformed),
            ("{\"value\":1", Refused::Malformed),
            ("{\"value\":true}", Refused::Malformed),
            ("{\"other\":1}", Refused::MissingValue),
            ("{\"value\":1,\"timestamp\":[]}", Refused::BadTime),
            ("{\"value\":1,\"sensor_id\":{}}", Refused::BadSensor),
            ("{\"value\":1e999}", Refused::Malformed),
        ] {
            assert_eq!(parser.parse(line), Err(reason), "{line}");
        }
    }
}
