//! `[source]`: where samples come from. `kind = "bme680"` (the default) is the chip and
//! nothing here applies; `kind = "lines"` is text from other sensors, over TCP, UDP or
//! standard input, and every other key of the section says how it is read and what it
//! may cost. A new key goes in [`SourceConfig`], in [`SourceConfig::check`] with a bound,
//! and in `deploy/config.example.toml`.

use serde::{Deserialize, Serialize};

/// Which source feeds the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The BME680 (or the simulated one with `--simulate`).
    #[default]
    Bme680,
    /// Lines of text, see [`Transport`] and [`Format`].
    Lines,
}

/// How lines arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Many clients, each a stream of lines.
    #[default]
    Tcp,
    /// One or more lines per datagram.
    Udp,
    /// The agent's standard input; the agent stops at its end.
    Stdin,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Stdin => "stdin",
        }
    }
}

/// How a line is spelt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Comma-separated values: `columns`, or a header line first on each connection.
    #[default]
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// Either, line by line: a line starting with `{` is JSON, any other CSV.
    Auto,
}

/// How the time field is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// Text is RFC 3339; a number is Unix seconds below 10^11 (the year 5138) and Unix
    /// milliseconds from there.
    #[default]
    Auto,
    Rfc3339,
    UnixS,
    UnixMs,
}

/// The `[source]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    pub kind: SourceKind,
    pub transport: Transport,
    /// `IP:port` for TCP and UDP; loopback unless said otherwise.
    pub listen: String,
    pub format: Format,
    /// CSV column names; empty: the first line of each TCP connection (or of standard
    /// input) is the header. UDP needs them (a datagram has no "first line").
    pub columns: Vec<String>,
    /// The field naming the sensor; a line without it is `[agent] sensor_id`'s.
    pub sensor_field: String,
    /// The field with the sample's time; a line without it is stamped when received.
    pub time_field: String,
    pub time_format: TimeFormat,
    /// The field that becomes the sample's `air_quality`, the value the function judges.
    pub value_field: String,
    /// The optional channels: absent from a line (or named "" here), they are NaN.
    pub temperature_field: String,
    pub humidity_field: String,
    pub pressure_field: String,
    pub gas_resistance_field: String,
    /// The value's accepted range; outside it the line is refused.
    pub value_min: f64,
    pub value_max: f64,
    /// Longer lines are refused (and not buffered past this).
    pub max_line_bytes: usize,
    /// TCP clients at once; more are closed at once.
    pub max_connections: usize,
    /// A TCP client silent this long is closed.
    pub idle_timeout_s: u64,
    /// Sensors at once; a new sensor's lines are refused at the bound.
    pub max_sensors: usize,
    /// A sensor silent this long is forgotten, which frees its place.
    pub sensor_idle_s: u64,
    /// Samples the ring holds while the function is busy.
    pub queue: usize,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            kind: SourceKind::Bme680,
            transport: Transport::Tcp,
            listen: "127.0.0.1:7878".into(),
            format: Format::Csv,
            columns: Vec::new(),
            sensor_field: "sensor_id".into(),
            time_field: "timestamp".into(),
            time_format: TimeFormat::Auto,
            value_field: "value".into(),
            temperature_field: "temperature".into(),
            humidity_field: "humidity".into(),
            pressure_field: "pressure".into(),
            gas_resistance_field: "gas_resistance".into(),
            value_min: -1e9,
            value_max: 1e9,
            max_line_bytes: 1024,
            max_connections: 16,
            idle_timeout_s: 300,
            max_sensors: 100,
            sensor_idle_s: 3600,
            queue: 4096,
        }
    }
}

/// The ranges `check` enforces.
pub mod bounds {
    use std::ops::RangeInclusive;

    /// A line of a few fields is under 200 bytes; 64 KiB is a UDP datagram's most.
    pub const MAX_LINE_BYTES: RangeInclusive<usize> = 16..=65_507;
    /// A thread each (with a 256 KiB stack and a line buffer).
    pub const MAX_CONNECTIONS: RangeInclusive<usize> = 1..=1024;
    pub const IDLE_TIMEOUT_S: RangeInclusive<u64> = 1..=86_400;
    /// Each sensor keeps up to a window of samples (about 80 bytes each).
    pub const MAX_SENSORS: RangeInclusive<usize> = 1..=10_000;
    pub const SENSOR_IDLE_S: RangeInclusive<u64> = 1..=30 * 86_400;
    /// About 100 bytes a sample.
    pub const QUEUE: RangeInclusive<usize> = 1..=1_000_000;
    /// Field names: short, printable.
    pub const FIELD_BYTES: RangeInclusive<usize> = 0..=64;
    pub const COLUMNS: RangeInclusive<usize> = 0..=256;
    /// Samples all sensors' windows may hold together (`max_sensors` × `[window] size`):
    /// 64 bytes each (`size_of::<Sample>()` on 64-bit), so 128 MiB at the bound, within a
    /// Pi 3's RAM; the default 100 × 1024 is 6.4 MB (`benches/lines.rs` measures it).
    pub const WINDOWED_SAMPLES: usize = 1 << 21;
}

impl SourceConfig {
    /// The rules serde cannot express, as `(key under [source], reason)`; the caller
    /// names the file and line.
    pub fn check(&self, window_size: usize) -> Result<(), (&'static str, String)> {
        if self.kind == SourceKind::Bme680 {
            return Ok(());
        }
        use crate::support::check::within;
        if self.transport != Transport::Stdin {
            self.listen
                .trim()
                .parse::<std::net::SocketAddr>()
                .map_err(|e| {
                    (
                        "listen",
                        format!("{e}: expected IP:port, e.g. \"127.0.0.1:7878\""),
                    )
                })?;
        }
        within(
            "max_line_bytes",
            self.max_line_bytes,
            &bounds::MAX_LINE_BYTES,
        )?;
        within(
            "max_connections",
            self.max_connections,
            &bounds::MAX_CONNECTIONS,
        )?;
        within(
            "idle_timeout_s",
            self.idle_timeout_s,
            &bounds::IDLE_TIMEOUT_S,
        )?;
        within("max_sensors", self.max_sensors, &bounds::MAX_SENSORS)?;
        within("sensor_idle_s", self.sensor_idle_s, &bounds::SENSOR_IDLE_S)?;
        within("queue", self.queue, &bounds::QUEUE)?;
        if self.max_sensors.saturating_mul(window_size) > bounds::WINDOWED_SAMPLES {
            return Err((
                "max_sensors",
                format!(
                    "{} sensors of {window_size}-sample windows exceed the {} samples all windows may hold",
                    self.max_sensors,
                    bounds::WINDOWED_SAMPLES
                ),
            ));
        }
        within("columns", self.columns.len(), &bounds::COLUMNS)?;
        if !(self.value_min.is_finite() && self.value_max.is_finite())
            || self.value_min > self.value_max
        {
            return Err((
                "value_max",
                format!(
                    "value_min {} and value_max {} must be finite, min at most max",
                    self.value_min, self.value_max
                ),
            ));
        }
        for (key, name) in [
            ("sensor_field", &self.sensor_field),
            ("time_field", &self.time_field),
            ("value_field", &self.value_field),
            ("temperature_field", &self.temperature_field),
            ("humidity_field", &self.humidity_field),
            ("pressure_field", &self.pressure_field),
            ("gas_resistance_field", &self.gas_resistance_field),
        ] {
            check_name(name).map_err(|reason| (key, reason))?;
        }
        if self.value_field.is_empty() {
            return Err(("value_field", "must name a field".into()));
        }
        for column in &self.columns {
            check_name(column).map_err(|reason| ("columns", reason))?;
        }
        if self.format != Format::Ndjson {
            if self.transport == Transport::Udp && self.columns.is_empty() {
                return Err((
                    "columns",
                    "CSV over UDP needs the columns (a datagram has no header line)".into(),
                ));
            }
            if !self.columns.is_empty() && !self.columns.contains(&self.value_field) {
                return Err((
                    "columns",
                    format!("none of them is value_field {:?}", self.value_field),
                ));
            }
        }
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if !bounds::FIELD_BYTES.contains(&name.len()) {
        return Err(format!(
            "field names are at most {} bytes",
            bounds::FIELD_BYTES.end()
        ));
    }
    if name.chars().any(|c| c.is_control() || c == ',' || c == '"') {
        return Err(format!(
            "{:?} must not contain control characters, commas or quotes",
            crate::support::text::untrusted(name)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> SourceConfig {
        SourceConfig {
            kind: SourceKind::Lines,
            ..SourceConfig::default()
        }
    }

    #[test]
    fn the_defaults_pass_and_bme680_checks_nothing() {
        assert_eq!(lines().check(1024), Ok(()));
        let odd = SourceConfig {
            max_sensors: 0,
            ..SourceConfig::default()
        };
        assert_eq!(odd.check(1024), Ok(()));
    }

    #[test]
    fn bad_values_name_their_key() {
        let key = |config: SourceConfig| config.check(1024).unwrap_err().0;
        assert_eq!(
            key(SourceConfig {
                max_sensors: 0,
                ..lines()
            }),
            "max_sensors"
        );
        let many = SourceConfig {
            max_sensors: 10_000,
            ..lines()
        };
        assert_eq!(many.check(16_384).unwrap_err().0, "max_sensors");
        assert_eq!(many.check(200), Ok(()));
        assert_eq!(
            key(SourceConfig {
                listen: "nowhere".into(),
                ..lines()
            }),
            "listen"
        );
        assert_eq!(
            key(SourceConfig {
                transport: Transport::Udp,
                ..lines()
            }),
            "columns"
        );
        assert_eq!(
            key(SourceConfig {
                value_min: 5.0,
                value_max: 1.0,
                ..lines()
            }),
            "value_max"
        );
        assert_eq!(
            key(SourceConfig {
                columns: vec!["a".into(), "b".into()],
                ..lines()
            }),
            "columns"
        );
        let stdin = SourceConfig {
            transport: Transport::Stdin,
            listen: "ignored".into(),
            ..lines()
        };
        assert_eq!(stdin.check(1024), Ok(()));
    }
}
