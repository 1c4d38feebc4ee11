//! Time as every output of the agent writes it: RFC 3339 in UTC, from Unix milliseconds.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 in UTC (`2024-05-01T12:00:03.5Z`); `@<ms>ms` for a time `time` cannot show.
pub fn format(unix_millis: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_millis) * 1_000_000)
        .ok()
        .and_then(|datetime| datetime.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{unix_millis}ms"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn milliseconds_show_as_a_fraction() {
        assert_eq!(super::format(1714564803500), "2024-05-01T12:00:03.5Z");
        assert_eq!(super::format(0), "1970-01-01T00:00:00Z");
    }
}
