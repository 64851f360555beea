//! The only place that reads the wall clock.
//!
//! Everything else takes `now` as an argument, so TOTP windows, validity periods, `{now}` tags,
//! challenge expiry and failcounter auto-clear are testable with a pinned instant.

use std::sync::Mutex;

use chrono::{DateTime, Datelike, Local, NaiveDateTime, TimeDelta, Timelike, Utc};

/// A source of "now".
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned clock read
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stays where tests put it.
#[derive(Debug)]
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        if let Ok(mut guard) = self.0.lock() {
            *guard = at;
        }
    }

    pub fn advance(&self, by: TimeDelta) {
        if let Ok(mut guard) = self.0.lock() {
            *guard += by;
        }
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map(|g| *g).unwrap_or_default()
    }
}

/// privacyIDEA's short timestamp, `YYYY-MM-DDTHH:MM+ZZZZ` in server local time
/// (tokeninfo `failcounter_exceeded`, validity periods, the `{now}` condition tag).
pub fn format_short(at: DateTime<Utc>) -> String {
    at.with_timezone(&Local)
        .format("%Y-%m-%dT%H:%M%z")
        .to_string()
}

/// privacyIDEA's long timestamp, `YYYY-MM-DD HH:MM:SS.ffffff+ZZZZ` in server local time
/// (tokeninfo `last_auth`, the `{now}` tag of `set tokeninfo` and `set description`).
pub fn format_long(at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&Local);
    long_text(&local.naive_local(), local.offset().local_minus_utc())
        .unwrap_or_else(|| local.format(LONG_FORMAT).to_string())
}

const LONG_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6f%z";

/// [`LONG_FORMAT`] written digit by digit: every accepted login stores one (`last_auth`), and
/// chrono's formatter walking its items cost ~3,600 instructions a login (callgrind).
/// `None` where chrono should write it: a year past 9999 or before 0, a leap second, an
/// offset with seconds.
fn long_text(t: &NaiveDateTime, offset_secs: i32) -> Option<String> {
    if t.nanosecond() >= 1_000_000_000 || offset_secs % 60 != 0 {
        return None;
    }
    let mut text = String::with_capacity(LONG_FORMAT.len() + 12);
    push_date_time(&mut text, t, ' ')?;
    text.push(if offset_secs < 0 { '-' } else { '+' });
    let minutes = offset_secs.unsigned_abs() / 60;
    push_digits(&mut text, minutes / 60, 2);
    push_digits(&mut text, minutes % 60, 2);
    Some(text)
}

/// A log line's time, `2026-12-04T11:30:26.505394Z` (UTC, microseconds), as tracing-subscriber's
/// default timer writes it, digit by digit: every log line carries one (at `info` one a login),
/// and the default cost ~2,000 instructions a line (callgrind).
pub fn push_log_time(text: &mut String, at: DateTime<Utc>) {
    match push_date_time(text, &at.naive_utc(), 'T') {
        Some(()) => text.push('Z'),
        None => text.push_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
    }
}

/// `YYYY-MM-DD` `between` `HH:MM:SS.ffffff`, a leap second as second 60 (as chrono writes it).
/// `None`, with nothing written, for a year outside 0–9999.
fn push_date_time(text: &mut String, t: &NaiveDateTime, between: char) -> Option<()> {
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    for (value, width, then) in [
        (year, 4, '-'),
        (t.month(), 2, '-'),
        (t.day(), 2, between),
        (t.hour(), 2, ':'),
        (t.minute(), 2, ':'),
    ] {
        push_digits(text, value, width);
        text.push(then);
    }
    // a leap second's nanoseconds run past 10⁹
    let (second, nanos) = match t.nanosecond() {
        n if n >= 1_000_000_000 => (t.second() + 1, n - 1_000_000_000),
        n => (t.second(), n),
    };
    push_digits(text, second, 2);
    text.push('.');
    push_digits(text, nanos / 1000, 6);
    Some(())
}

/// The last `width` decimal digits of `n`, zero-padded.
fn push_digits(text: &mut String, n: u32, width: u32) {
    let mut unit = 10u32.pow(width - 1);
    while unit > 0 {
        text.push(char::from_digit(n / unit % 10, 10).unwrap_or('0'));
        unit /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let clock = FixedClock::new(t0);
        assert_eq!(clock.now(), t0);
        clock.advance(TimeDelta::seconds(30));
        assert_eq!(clock.now(), t0 + TimeDelta::seconds(30));
    }

    #[test]
    fn formats_have_the_privacyidea_shape() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let short = format_short(t0);
        assert_eq!(short.len(), "2026-01-02T03:04+0000".len(), "{short}");
        let long = format_long(t0);
        assert!(long.contains(".000000"), "{long}");
    }

    /// The hand-written long timestamp is chrono's, for offsets east and west, on the half
    /// and quarter hour, and for every width of the fraction; so is the log time.
    #[test]
    fn the_long_timestamp_is_chronos() {
        use chrono::{FixedOffset, NaiveDate};
        let day = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        for (h, m, s, nanos) in [
            (0, 0, 0, 0),
            (9, 5, 7, 1_000),
            (23, 59, 59, 999_999_999),
            (12, 30, 1, 123_456_789),
        ] {
            let naive = day.and_hms_nano_opt(h, m, s, nanos).unwrap();
            for offset in [0, 3_600, -5 * 3_600, 19_800, -34_200, 45_900, -43_200] {
                let zone = FixedOffset::east_opt(offset).unwrap();
                let local = naive.and_local_timezone(zone).unwrap();
                let chrono = local.format(LONG_FORMAT).to_string();
                assert_eq!(long_text(&naive, offset).as_deref(), Some(&*chrono));
            }
        }
        let leap = day.and_hms_nano_opt(23, 59, 59, 1_500_000_000).unwrap();
        assert_eq!(long_text(&leap, 0), None, "chrono writes a leap second");
        for naive in [
            day.and_hms_nano_opt(0, 0, 0, 0).unwrap(),
            day.and_hms_nano_opt(23, 59, 59, 999_999_999).unwrap(),
            day.and_hms_nano_opt(12, 30, 1, 123_456_789).unwrap(),
            leap,
        ] {
            let at = naive.and_utc();
            let mut text = String::new();
            push_log_time(&mut text, at);
            assert_eq!(
                text,
                at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            );
        }
        assert_eq!(long_text(&day.and_hms_opt(1, 2, 3).unwrap(), 30), None);
    }
}

/// Measures how long something took (audit durations, handler latency). Monotonic, so it is
/// not "the time" and tests need not pin it.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(std::time::Instant);

impl Stopwatch {
    pub fn start() -> Self {
        Self(std::time::Instant::now())
    }

    pub fn elapsed(&self) -> std::time::Duration {
        self.0.elapsed()
    }

    pub fn elapsed_us(&self) -> i64 {
        i64::try_from(self.0.elapsed().as_micros()).unwrap_or(i64::MAX)
    }
}
