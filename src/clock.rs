//! The only place that reads the wall clock.
//!
//! Everything else takes `now` as an argument, so TOTP windows, validity periods, `{now}` tags,
//! challenge expiry and failcounter auto-clear are testable with a pinned instant.

use std::sync::Mutex;

use chrono::{DateTime, Local, TimeDelta, Utc};

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
    at.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S%.6f%z")
        .to_string()
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
