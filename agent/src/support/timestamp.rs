//! Time as text, one place for the whole agent: RFC 3339 in UTC from Unix milliseconds
//! (every output), and back (recorded series, lines from other sensors). The calendar
//! arithmetic is Howard Hinnant's `days_from_civil` and its inverse, proleptic Gregorian,
//! exact over the years RFC 3339 can write (0000 to 9999). Written here rather than taken
//! from the `time` crate, which cost 23 KiB of the armv7 binary for these three jobs.

/// A moment split into calendar fields, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

const MS_PER_DAY: i64 = 86_400_000;

impl Civil {
    /// Unix milliseconds as calendar fields.
    pub fn from_unix_millis(unix_millis: i64) -> Self {
        let days = unix_millis.div_euclid(MS_PER_DAY);
        // Below a day's milliseconds, so every cast below is lossless.
        let in_day = unix_millis.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: (in_day / 3_600_000) as u32,
            minute: (in_day / 60_000 % 60) as u32,
            second: (in_day / 1000 % 60) as u32,
            millis: (in_day % 1000) as u32,
        }
    }
}

/// RFC 3339 in UTC (`2024-05-01T12:00:03.5Z`, the fraction only as long as it needs);
/// `None` outside the years 0000 to 9999.
pub fn try_format(unix_millis: i64) -> Option<String> {
    let at = Civil::from_unix_millis(unix_millis);
    if !(0..=9999).contains(&at.year) {
        return None;
    }
    let mut text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year, at.month, at.day, at.hour, at.minute, at.second
    );
    if at.millis != 0 {
        let fraction = format!("{:03}", at.millis);
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    Some(text)
}

/// RFC 3339 in UTC, or `@<ms>ms` for a time it cannot write.
pub fn format(unix_millis: i64) -> String {
    try_format(unix_millis).unwrap_or_else(|| format!("@{unix_millis}ms"))
}

/// Unix milliseconds from RFC 3339 (`2024-05-01T12:00:03.5+02:00`, `T`, `t` or a space
/// between date and time, `Z`/`z` or `±HH:MM`), or from the same without an offset
/// (`2024-05-01 12:00:03`, `2024-05-01T12:00:03`), read as UTC: one rule whatever the
/// separator. A fraction finer than milliseconds is cut; a leap second (`:60`) is the
/// last millisecond of its minute.
pub fn parse(text: &str) -> Option<i64> {
    parse_with(text, Some(0))
}

/// [`parse`], with a time written without an offset read at `no_offset` minutes east of
/// UTC, or refused when it is `None`. The separator (`T`, `t`, a space) never changes
/// how a time is read.
pub fn parse_with(text: &str, no_offset: Option<i64>) -> Option<i64> {
    let bytes = text.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let field = bytes.get(from..from.checked_add(len)?)?;
        field.iter().try_fold(0i64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
        })
    };
    let at = |i: usize, expected: &[u8]| bytes.get(i).is_some_and(|b| expected.contains(b));
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt ") && at(13, b":") && at(16, b":")) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if at(i, b".") {
        let start = i + 1;
        i = start;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let kept = (i - start).min(3);
        millis = digits(start, kept)? * 10i64.pow(3 - kept as u32);
    }
    let offset_minutes = match bytes.get(i) {
        None => no_offset.filter(|m| m.abs() < 24 * 60)?,
        Some(b'Z' | b'z') if i + 1 == bytes.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == bytes.len() && at(i + 3, b":") => {
            let (h, m) = (digits(i + 1, 2)?, digits(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if sign == b'-' { -minutes } else { minutes }
        }
        Some(_) => return None,
    };
    let (second, millis) = if second == 60 {
        (59, 999)
    } else {
        (second, millis)
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (Hinnant's `civil_from_days`). Unix
/// milliseconds in an i64 span ±292 million years, well inside its range.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_show_as_a_fraction() {
        assert_eq!(format(1714564803500), "2024-05-01T12:00:03.5Z");
        assert_eq!(format(1714564803050), "2024-05-01T12:00:03.05Z");
        assert_eq!(format(0), "1970-01-01T00:00:00Z");
        assert_eq!(format(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(format(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(format(253_402_300_800_000), "@253402300800000ms");
        assert_eq!(format(i64::MIN), format!("@{}ms", i64::MIN));
        assert_eq!(format(-62_167_219_200_000), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn every_day_of_four_centuries_goes_round() {
        for day in (-719_528..=2_932_896).step_by(7) {
            let ms = day * MS_PER_DAY + 45_296_789;
            assert_eq!(parse(&format(ms)), Some(ms), "{}", format(ms));
        }
    }

    #[test]
    fn reads_rfc3339_and_the_plain_form() {
        assert_eq!(parse("2024-05-01T12:00:03.5Z"), Some(1714564803500));
        assert_eq!(parse("2024-05-01t12:00:03.500000001z"), Some(1714564803500));
        assert_eq!(parse("2024-05-01T14:00:03.5+02:00"), Some(1714564803500));
        assert_eq!(parse("2024-05-01T10:30:03.5-01:30"), Some(1714564803500));
        assert_eq!(parse("2024-05-01 12:00:03"), Some(1714564803000));
        // Without an offset: one rule, whatever the separator.
        assert_eq!(parse("2024-05-01T12:00:03"), Some(1714564803000));
        assert_eq!(parse("2024-05-01t12:00:03.5"), Some(1714564803500));
        for text in ["2024-05-01 14:00:03", "2024-05-01T14:00:03"] {
            assert_eq!(parse_with(text, Some(120)), Some(1714564803000), "{text}");
            assert_eq!(parse_with(text, None), None, "{text}");
        }
        assert_eq!(
            parse_with("2024-05-01T12:00:03Z", None),
            Some(1714564803000)
        );
        assert_eq!(parse("2016-12-31T23:59:60Z"), Some(1483228799999));
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01T12:00",
            "2024-13-01T12:00:03Z",
            "2023-02-29T12:00:03Z",
            "2024-05-01T24:00:03Z",
            "2024-05-01T12:00:03.Z",
            "2024-05-01T12:00:03+2:00",
            "2024-05-01T12:00:03Zjunk",
            "２０２４-05-01T12:00:03Z",
            "-024-05-01T12:00:03Z",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn calendar_fields() {
        let at = Civil::from_unix_millis(1714564803500);
        assert_eq!(
            (
                at.year, at.month, at.day, at.hour, at.minute, at.second, at.millis
            ),
            (2024, 5, 1, 12, 0, 3, 500)
        );
    }
}
