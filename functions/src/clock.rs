//! Time as the API shows it: RFC 3339 UTC timestamps and `YYYY-MM-DD` dates.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

pub const MINUTE: i64 = 60;
pub const DAY: i64 = 86_400;

/// `2026-11-23T10:00:00Z`.
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Parses an RFC 3339 timestamp (any offset) into Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<Date> {
    if s.len() != 10 {
        return None;
    }
    Date::parse(s, format_description!("[year]-[month]-[day]")).ok()
}

/// Unix seconds of a date's start (UTC).
pub fn unix_of_date(d: Date) -> i64 {
    d.midnight().assume_utc().unix_timestamp()
}

/// The UTC date of a Unix time.
pub fn date_of(unix: i64) -> Option<Date> {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .map(|t| t.date())
}

/// The same moment `years` calendar years later (29 February becomes
/// 1 March: never earlier than the calendar's answer).
pub fn add_years(unix: i64, years: u32) -> i64 {
    let Ok(t) = OffsetDateTime::from_unix_timestamp(unix) else {
        return unix;
    };
    let year = t.year() + years as i32;
    match t.replace_year(year) {
        Ok(later) => later.unix_timestamp(),
        // Only 29 February of a year that has none: the day after the 28th.
        Err(_) => (t - time::Duration::days(1))
            .replace_year(year)
            .map_or(unix + i64::from(years) * 366 * DAY, |d| {
                d.unix_timestamp() + DAY
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_are_calendar_years() {
        let t = parse_rfc3339("2026-12-07T10:00:00Z").unwrap();
        assert_eq!(rfc3339(add_years(t, 25)), "2051-12-07T10:00:00Z");
        let leap = parse_rfc3339("2028-02-29T08:00:00Z").unwrap();
        assert_eq!(rfc3339(add_years(leap, 25)), "2053-03-01T08:00:00Z");
        assert_eq!(rfc3339(add_years(leap, 4)), "2032-02-29T08:00:00Z");
    }

    #[test]
    fn formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            parse_rfc3339("2026-11-23T10:00:00+05:00"),
            parse_rfc3339("2026-11-23T05:00:00Z")
        );
        assert!(parse_date("2024-02-29").is_some());
        for bad in [
            "2023-02-29",
            "2024-2-1",
            "20240201",
            "2024-02-01T00:00:00Z",
            "",
        ] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
    }
}
