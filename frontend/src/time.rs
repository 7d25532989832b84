//! Dates and times as the clinic sees them: the browser's own time zone for
//! display and input, RFC 3339 UTC on the wire.

use js_sys::Date;
use wasm_bindgen::JsValue;

fn ymd(d: &Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        d.get_full_year(),
        d.get_month() + 1,
        d.get_date()
    )
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> f64 {
    Date::now()
}

/// Today's local date, `YYYY-MM-DD`.
pub fn today() -> String {
    ymd(&Date::new_0())
}

/// A local date moved by `days`.
pub fn add_days(date: &str, days: i32) -> String {
    let d = Date::new(&JsValue::from_str(&format!("{date}T12:00")));
    if d.get_time().is_nan() {
        return date.to_owned();
    }
    d.set_date((d.get_date() as i32 + days) as u32);
    ymd(&d)
}

/// A local date and `HH:MM` as RFC 3339 UTC, or `None` if either is not valid.
pub fn local_to_utc(date: &str, time: &str) -> Option<String> {
    let d = Date::new(&JsValue::from_str(&format!("{date}T{time}")));
    if d.get_time().is_nan() {
        return None;
    }
    let iso: String = d.to_iso_string().into();
    // 2030-01-07T04:00:00.000Z → 2030-01-07T04:00:00Z
    Some(match iso.split_once('.') {
        Some((head, _)) => format!("{head}Z"),
        None => iso,
    })
}

/// The UTC bounds of a local day (from its start to the next day's).
pub fn day_range_utc(date: &str) -> Option<(String, String)> {
    Some((
        local_to_utc(date, "00:00")?,
        local_to_utc(&add_days(date, 1), "00:00")?,
    ))
}

fn parse(rfc3339: &str) -> Option<Date> {
    let d = Date::new(&JsValue::from_str(rfc3339));
    (!d.get_time().is_nan()).then_some(d)
}

/// `HH:MM`, local.
pub fn local_hm(rfc3339: &str) -> String {
    match parse(rfc3339) {
        Some(d) => format!("{:02}:{:02}", d.get_hours(), d.get_minutes()),
        None => rfc3339.to_owned(),
    }
}

/// `YYYY-MM-DD HH:MM`, local.
pub fn local_datetime(rfc3339: &str) -> String {
    match parse(rfc3339) {
        Some(d) => format!("{} {}", ymd(&d), local_hm(rfc3339)),
        None => rfc3339.to_owned(),
    }
}

/// Minutes from now until a time (negative once past).
pub fn minutes_until(rfc3339: &str) -> Option<i64> {
    parse(rfc3339).map(|d| ((d.get_time() - now_ms()) / 60_000.0).floor() as i64)
}
