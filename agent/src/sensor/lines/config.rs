//! `[source]`: where samples come from. `kind = "bme680"` (the default) is the chip and
//! nothing here applies; `kind = "lines"` is text from other sensors, over TCP, UDP or
//! standard input, and every other key of the section says how it is read and what it
//! may cost. A new key goes in [`SourceConfig`], in [`SourceConfig::check`] with a bound,
//! and in `deploy/config.example.toml`.

use std::net::IpAddr;
use std::path::PathBuf;

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

/// How a time written without an offset (`2026-01-01 00:00:05`, `2026-01-01T00:00:05`) is
/// read: in UTC (the default), at a fixed offset from UTC, or not at all. One rule for
/// both spellings. A fixed offset has no daylight saving time: a sender on local time
/// with DST should write its offset (`+02:00`), which is always honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TimeWithoutOffset {
    /// `"utc"`.
    #[default]
    Utc,
    /// `"+HH:MM"` or `"-HH:MM"`: minutes east of UTC.
    Offset(i64),
    /// `"refuse"`: such a time is refused (`bad_time`).
    Refuse,
}

impl TimeWithoutOffset {
    /// Minutes east of UTC, or `None` to refuse.
    pub fn minutes(self) -> Option<i64> {
        match self {
            Self::Utc => Some(0),
            Self::Offset(minutes) => Some(minutes),
            Self::Refuse => None,
        }
    }
}

impl TryFrom<String> for TimeWithoutOffset {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = || {
            format!(
                "{:?} is not \"utc\", \"refuse\" or an offset such as \"+01:00\"",
                crate::support::text::untrusted(&text)
            )
        };
        match text.trim() {
            t if t.eq_ignore_ascii_case("utc") || t == "Z" => return Ok(Self::Utc),
            t if t.eq_ignore_ascii_case("refuse") => return Ok(Self::Refuse),
            _ => {}
        }
        let bytes = text.trim().as_bytes();
        let [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] = bytes else {
            return Err(bad());
        };
        let digit = |b: &u8| b.is_ascii_digit().then(|| i64::from(b - b'0'));
        let (Some(h1), Some(h2), Some(m1), Some(m2)) = (digit(h1), digit(h2), digit(m1), digit(m2))
        else {
            return Err(bad());
        };
        let (hours, minutes) = (h1 * 10 + h2, m1 * 10 + m2);
        if hours > 23 || minutes > 59 {
            return Err(bad());
        }
        let east = hours * 60 + minutes;
        Ok(Self::Offset(if *sign == b'-' { -east } else { east }))
    }
}

impl From<TimeWithoutOffset> for String {
    fn from(rule: TimeWithoutOffset) -> String {
        match rule {
            TimeWithoutOffset::Utc => "utc".into(),
            TimeWithoutOffset::Refuse => "refuse".into(),
            TimeWithoutOffset::Offset(minutes) => format!(
                "{}{:02}:{:02}",
                if minutes < 0 { '-' } else { '+' },
                minutes.abs() / 60,
                minutes.abs() % 60
            ),
        }
    }
}

/// A network a sender may be in (`[source] allow`): `"192.168.1.0/24"`, `"fd00::/8"`, or
/// one address (`"::1"`, a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Network {
    base: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `address` is in it. An IPv4 client of an IPv6 socket (`::ffff:a.b.c.d`) is
    /// the IPv4 address it is, so one list serves either kind of socket.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.base, address.to_canonical()) {
            (IpAddr::V4(base), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(base) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(base), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(base) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

impl TryFrom<String> for Network {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "{:?} {why}: expected an address or a network, e.g. \"192.168.1.0/24\" or \"::1\"",
                crate::support::text::untrusted(&text)
            )
        };
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let base: IpAddr = address.parse().map_err(|_| bad("is not an IP address"))?;
        let base = base.to_canonical();
        let most: u8 = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => most,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= most)
                .ok_or_else(|| bad(&format!("has a prefix length that is not 0 to {most}")))?,
        };
        Ok(Self { base, prefix })
    }
}

impl From<Network> for String {
    fn from(network: Network) -> String {
        format!("{}/{}", network.base, network.prefix)
    }
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
    /// How a time written without an offset is read.
    pub time_without_offset: TimeWithoutOffset,
    /// The furthest a line's time may be ahead of the agent's clock when it arrives;
    /// beyond it the line is refused (`future_time`).
    pub max_future_s: u64,
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
    /// UDP: the socket's receive buffer (`SO_RCVBUF`), bytes; 0 keeps the system's
    /// (`net.core.rmem_default`). The kernel caps it at `net.core.rmem_max`.
    pub udp_receive_buffer_bytes: usize,
    /// TCP: the server's certificate chain (PEM); with `tls_key`, the listener speaks
    /// TLS only.
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM), readable by the service and not by every user.
    pub tls_key: Option<PathBuf>,
    /// With TLS: clients must present a certificate issued by a CA in this file (PEM).
    pub tls_client_ca: Option<PathBuf>,
    /// The longest a TLS handshake may take from the accept; then the connection is
    /// closed, counted, and its place freed.
    pub tls_handshake_timeout_s: u64,
    /// Where senders may be (TCP and UDP); empty: anywhere `listen` can be reached from.
    /// Others are closed (TCP) or dropped (UDP) before a byte of theirs is read, counted.
    pub allow: Vec<Network>,
    /// With `tls_client_ca`: a connection speaks for the sensor its certificate names
    /// (its first DNS subject alternative name) and no other; a line naming another is
    /// refused (`foreign_sensor`), a line naming none is that sensor's.
    pub bind_sensor_to_certificate: bool,
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
            time_without_offset: TimeWithoutOffset::Utc,
            max_future_s: 300,
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
            udp_receive_buffer_bytes: 0,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            tls_handshake_timeout_s: 10,
            allow: Vec::new(),
            bind_sensor_to_certificate: false,
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
    /// Up to a year ahead; a second at least (clocks a few milliseconds apart).
    pub const MAX_FUTURE_S: RangeInclusive<u64> = 1..=366 * 86_400;
    /// 0 (the system's), or a buffer of 4 KiB to 64 MiB.
    pub const UDP_RECEIVE_BUFFER_BYTES: RangeInclusive<usize> = 4096..=64 << 20;
    /// Field names: short, printable.
    pub const FIELD_BYTES: RangeInclusive<usize> = 0..=64;
    pub const COLUMNS: RangeInclusive<usize> = 0..=256;
    /// An ESP32 completes a handshake in about a second (ECDSA P-256 in mbedTLS, 240 MHz).
    pub const TLS_HANDSHAKE_TIMEOUT_S: RangeInclusive<u64> = 1..=120;
    /// Networks in `allow`: checked in turn for every connection and datagram.
    pub const ALLOW: RangeInclusive<usize> = 0..=64;

    /// Samples all sensors' windows may hold together (`max_sensors` × `[window] size`):
    /// 72 bytes each (`size_of::<Sample>()` on 64-bit, the sender's pointer included), so
    /// 144 MiB at the bound, within a Pi 3's RAM; the default 100 × 1024 is 7.4 MB
    /// (`benches/lines.rs` measures it).
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
        within("max_future_s", self.max_future_s, &bounds::MAX_FUTURE_S)?;
        if self.udp_receive_buffer_bytes != 0 {
            within(
                "udp_receive_buffer_bytes",
                self.udp_receive_buffer_bytes,
                &bounds::UDP_RECEIVE_BUFFER_BYTES,
            )?;
        }
        within(
            "tls_handshake_timeout_s",
            self.tls_handshake_timeout_s,
            &bounds::TLS_HANDSHAKE_TIMEOUT_S,
        )?;
        within("allow", self.allow.len(), &bounds::ALLOW)?;
        self.check_tls()?;
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

impl SourceConfig {
    /// TLS is configured whole, for TCP, and its files read and fit together (a key
    /// that does not match the certificate is refused here, before anything starts).
    fn check_tls(&self) -> Result<(), (&'static str, String)> {
        let tls = self.tls_cert.is_some() || self.tls_key.is_some();
        if tls && self.transport != Transport::Tcp {
            return Err((
                if self.tls_cert.is_some() {
                    "tls_cert"
                } else {
                    "tls_key"
                },
                format!(
                    "TLS is for transport = \"tcp\", not {:?}",
                    self.transport.name()
                ),
            ));
        }
        if self.tls_client_ca.is_some() && !tls {
            return Err((
                "tls_client_ca",
                "client certificates need TLS: set tls_cert and tls_key".into(),
            ));
        }
        if self.bind_sensor_to_certificate && self.tls_client_ca.is_none() {
            return Err((
                "bind_sensor_to_certificate",
                "needs client certificates: set tls_client_ca (and tls_cert, tls_key)".into(),
            ));
        }
        for (key, path) in [
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
            ("tls_client_ca", &self.tls_client_ca),
        ] {
            if path.as_ref().is_some_and(|path| {
                path.to_string_lossy()
                    .chars()
                    .any(crate::support::text::is_unsafe_char)
            }) {
                return Err((
                    key,
                    "must not contain control or bidirectional-override characters".into(),
                ));
            }
        }
        self.tls().map(|_| ())
    }

    /// The TLS server's configuration from the files, when TLS is configured.
    pub fn tls(
        &self,
    ) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, (&'static str, String)> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                crate::sensor::lines::tls::server_config(cert, key, self.tls_client_ca.as_deref())
                    .map(Some)
            }
            (Some(_), None) => Err(("tls_key", "tls_cert needs its key, tls_key".into())),
            (None, Some(_)) => Err(("tls_cert", "tls_key needs its certificate, tls_cert".into())),
            (None, None) => Ok(None),
        }
    }

    /// Whether the listener may be reached from other machines with nothing between
    /// them and the feed: a non-loopback `listen` without TLS and without `allow`.
    pub fn exposed(&self) -> bool {
        let open = self
            .listen
            .trim()
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|addr| !addr.ip().to_canonical().is_loopback());
        self.transport != Transport::Stdin
            && open
            && self.tls_cert.is_none()
            && self.allow.is_empty()
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
    fn times_without_an_offset_are_read_as_configured() {
        let parse = |text: &str| TimeWithoutOffset::try_from(text.to_owned());
        assert_eq!(parse("utc"), Ok(TimeWithoutOffset::Utc));
        assert_eq!(parse("refuse"), Ok(TimeWithoutOffset::Refuse));
        assert_eq!(parse("+01:00"), Ok(TimeWithoutOffset::Offset(60)));
        assert_eq!(parse("-05:30"), Ok(TimeWithoutOffset::Offset(-330)));
        for bad in [
            "",
            "local",
            "Europe/Paris",
            "+1:00",
            "+24:00",
            "+01:60",
            "01:00",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        for rule in ["utc", "refuse", "+01:00", "-05:30"] {
            assert_eq!(String::from(parse(rule).unwrap()), rule);
        }
        let file = |rule: &str| {
            crate::config::AgentConfig::parse(
                &format!("[source]\ntime_without_offset = \"{rule}\"\n"),
                "agent.toml",
            )
        };
        let parsed = file("+02:00").unwrap();
        assert_eq!(parsed.source.time_without_offset.minutes(), Some(120));
        assert!(file("CET").is_err());
    }

    #[test]
    fn networks_hold_their_addresses_whatever_the_socket_family() {
        let net = |text: &str| Network::try_from(text.to_owned());
        let lan = net("192.168.1.0/24").unwrap();
        assert!(lan.contains("192.168.1.77".parse().unwrap()));
        assert!(!lan.contains("192.168.2.1".parse().unwrap()));
        // An IPv4 client of an IPv6 socket is the IPv4 address it is.
        assert!(lan.contains("::ffff:192.168.1.77".parse().unwrap()));
        assert!(!lan.contains("::1".parse().unwrap()));
        let one = net("::1").unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        assert!(
            net("0.0.0.0/0")
                .unwrap()
                .contains("10.1.2.3".parse().unwrap())
        );
        assert!(
            net("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        assert_eq!(String::from(net("10.0.0.1").unwrap()), "10.0.0.1/32");
        for bad in ["", "lan", "10.0.0.0/33", "::/129", "10.0.0.0/x", "10.0.0/8"] {
            assert!(net(bad).is_err(), "{bad:?}");
        }
        let file = crate::config::AgentConfig::parse(
            "[source]\nkind = \"lines\"\nallow = [\"10.0.0.0/8\", \"10.0.0.0/40\"]\n",
            "agent.toml",
        );
        let message = file.unwrap_err().to_string();
        assert!(
            message.contains("allow") && message.contains("line 3"),
            "{message}"
        );
    }

    #[test]
    fn tls_is_configured_whole_and_for_tcp() {
        let key = |config: SourceConfig| config.check(1024).unwrap_err().0;
        let file = |name: &str| Some(PathBuf::from(format!("/nonexistent/{name}")));
        assert_eq!(
            key(SourceConfig {
                transport: Transport::Udp,
                columns: vec!["value".into()],
                tls_cert: file("c"),
                tls_key: file("k"),
                ..lines()
            }),
            "tls_cert"
        );
        assert_eq!(
            key(SourceConfig {
                tls_cert: file("c"),
                ..lines()
            }),
            "tls_key"
        );
        assert_eq!(
            key(SourceConfig {
                tls_client_ca: file("ca"),
                ..lines()
            }),
            "tls_client_ca"
        );
        assert_eq!(
            key(SourceConfig {
                bind_sensor_to_certificate: true,
                ..lines()
            }),
            "bind_sensor_to_certificate"
        );
        assert_eq!(
            key(SourceConfig {
                tls_cert: file("c"),
                tls_key: file("k"),
                ..lines()
            }),
            "tls_cert"
        );
        assert_eq!(
            key(SourceConfig {
                tls_handshake_timeout_s: 0,
                ..lines()
            }),
            "tls_handshake_timeout_s"
        );
    }

    #[test]
    fn only_a_network_address_with_nothing_in_front_is_exposed() {
        let at = |listen: &str| SourceConfig {
            listen: listen.into(),
            ..lines()
        };
        assert!(!at("127.0.0.1:7878").exposed());
        assert!(!at("[::1]:7878").exposed());
        assert!(at("0.0.0.0:7878").exposed());
        assert!(at("[::]:7878").exposed());
        let allowed = SourceConfig {
            allow: vec![Network::try_from("192.168.1.0/24".to_owned()).unwrap()],
            ..at("0.0.0.0:7878")
        };
        assert!(!allowed.exposed());
        let tls = SourceConfig {
            tls_cert: Some("c".into()),
            ..at("0.0.0.0:7878")
        };
        assert!(!tls.exposed());
        let stdin = SourceConfig {
            transport: Transport::Stdin,
            ..at("0.0.0.0:7878")
        };
        assert!(!stdin.exposed());
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
                max_future_s: 0,
                ..lines()
            }),
            "max_future_s"
        );
        assert_eq!(
            key(SourceConfig {
                udp_receive_buffer_bytes: 100,
                ..lines()
            }),
            "udp_receive_buffer_bytes"
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
