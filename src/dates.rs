//! Date strings the way privacyIDEA writes and reads them, plus its offset and duration syntax.
//!
//! Pure: nothing here reads the clock. Parsing keeps the difference between a timestamp with
//! an offset and a naive one, because comparisons between the two are "not fulfilled"
//! (spec §2.2, errata 1) while `last_auth` and `date_within_last` read naive values as UTC.

use chrono::{
    DateTime, FixedOffset, Local, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Utc,
};

/// A parsed date: with an offset, or naive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    Aware(DateTime<FixedOffset>),
    Naive(NaiveDateTime),
}

impl Stamp {
    /// The instant, reading a naive value as UTC.
    pub fn as_utc(&self) -> DateTime<Utc> {
        match self {
            Self::Aware(d) => d.with_timezone(&Utc),
            Self::Naive(n) => Utc.from_utc_datetime(n),
        }
    }

    /// The instant, reading a naive value as server local time.
    pub fn as_local_utc(&self) -> DateTime<Utc> {
        match self {
            Self::Aware(d) => d.with_timezone(&Utc),
            Self::Naive(n) => Local
                .from_local_datetime(n)
                .earliest()
                .map_or_else(|| Utc.from_utc_datetime(n), |d| d.with_timezone(&Utc)),
        }
    }

    /// Compare two stamps; `None` when one is naive and the other aware.
    pub fn compare(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Self::Aware(a), Self::Aware(b)) => Some(a.cmp(b)),
            (Self::Naive(a), Self::Naive(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

const AWARE_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M%z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M%z",
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M%:z",
    "%Y-%m-%dT%H:%M:%S%:z",
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%d %H:%M:%S%.f%:z",
];

const NAIVE_DATETIME_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %I:%M%p",
    "%Y/%m/%d %H:%M",
    "%d.%m.%Y %H:%M",
    "%d/%m/%Y %H:%M",
    "%d.%m.%Y %I:%M%p",
];

const NAIVE_DATE_FORMATS: &[&str] = &["%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y", "%d/%m/%Y"];

/// Parse the date formats privacyIDEA accepts and writes. A trailing `Z` counts as UTC.
pub fn parse(text: &str) -> Option<Stamp> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let zulu;
    let text = match text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        Some(rest) if rest.contains(':') => {
            zulu = format!("{rest}+0000");
            zulu.as_str()
        }
        _ => text,
    };
    for f in AWARE_FORMATS {
        if let Ok(d) = DateTime::parse_from_str(text, f) {
            return Some(Stamp::Aware(d));
        }
    }
    for f in NAIVE_DATETIME_FORMATS {
        if let Ok(d) = NaiveDateTime::parse_from_str(text, f) {
            return Some(Stamp::Naive(d));
        }
        // `9:30am`: chrono wants upper-case AM/PM for %p on some inputs
        if let Ok(d) = NaiveDateTime::parse_from_str(&text.to_ascii_uppercase(), f) {
            return Some(Stamp::Naive(d));
        }
    }
    for f in NAIVE_DATE_FORMATS {
        if let Ok(d) = NaiveDate::parse_from_str(text, f) {
            return Some(Stamp::Naive(d.and_time(NaiveTime::MIN)));
        }
    }
    None
}

/// A signed offset like `+10m`, `-12h`, `+7d` (units s, m, h, d, w, y; y = 365 days).
pub fn parse_offset(text: &str) -> Option<TimeDelta> {
    let text = text.trim();
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, text.get(1..)?),
        b'-' => (-1, text.get(1..)?),
        _ => return None,
    };
    parse_duration(rest).map(|d| d * sign)
}

/// An unsigned duration `<int><unit>` with units s, m, h, d, w, y (y = 365 days).
pub fn parse_duration(text: &str) -> Option<TimeDelta> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let number: i64 = text
        .get(..text.len() - unit.len_utf8())?
        .trim()
        .parse()
        .ok()?;
    if number < 0 {
        return None;
    }
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        'y' => 365 * 86_400,
        _ => return None,
    };
    TimeDelta::try_seconds(number.checked_mul(seconds)?)
}

/// `H:MM:SS` as Python renders a `timedelta` under one day (auth_max_fail messages).
pub fn python_timedelta(d: TimeDelta) -> String {
    let total = d.num_seconds().max(0);
    let days = total / 86_400;
    let rest = total % 86_400;
    let hms = format!("{}:{:02}:{:02}", rest / 3600, (rest % 3600) / 60, rest % 60);
    match days {
        0 => hms,
        1 => format!("1 day, {hms}"),
        n => format!("{n} days, {hms}"),
    }
}

/// Parse a validity bound: a date privacyIDEA accepts, `+N[mhd]` from now, or "" to clear.
pub fn parse_validity(text: &str, now: DateTime<Utc>) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.starts_with('+') {
        let delta =
            parse_offset(text).ok_or_else(|| format!("{text:?} is not an offset like +10d"))?;
        return Ok(Some(crate::clock::format_short(now + delta)));
    }
    let stamp = parse(text).ok_or_else(|| format!("{text:?} is not a date otpgate understands"))?;
    Ok(Some(crate::clock::format_short(stamp.as_local_utc())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privacyidea_formats_parse() {
        for s in [
            "2026-08-21T09:30+0200",
            "2026-08-21 09:30:00.123456+0200",
            "2016-12-23T15:30+0600",
            "2026-08-21T09:30:00Z",
            "2026-08-21T09:30:00+02:00",
        ] {
            assert!(matches!(parse(s), Some(Stamp::Aware(_))), "{s}");
        }
        for s in [
            "2016-10-10",
            "2016/12/23",
            "23.12.2016",
            "2016/12/23 9:30am",
            "23.12.2016 23:20",
            "2016-10-10T10:00:00",
        ] {
            assert!(matches!(parse(s), Some(Stamp::Naive(_))), "{s}");
        }
        assert_eq!(parse("not a date"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn am_pm_and_day_first() {
        let Some(Stamp::Naive(d)) = parse("2016/12/23 9:30am") else {
            panic!()
        };
        assert_eq!(d.to_string(), "2016-12-23 09:30:00");
        let Some(Stamp::Naive(d)) = parse("23.12.2016 23:20") else {
            panic!()
        };
        assert_eq!(d.to_string(), "2016-12-23 23:20:00");
    }

    #[test]
    fn naive_and_aware_do_not_compare() {
        let a = parse("2026-01-01T00:00+0000").unwrap();
        let n = parse("2026-01-01").unwrap();
        assert_eq!(a.compare(&n), None);
        assert_eq!(a.as_utc(), n.as_utc());
    }

    #[test]
    fn offsets_and_durations() {
        assert_eq!(parse_offset("+10m"), Some(TimeDelta::minutes(10)));
        assert_eq!(parse_offset("-12h"), Some(TimeDelta::hours(-12)));
        assert_eq!(parse_offset("10m"), None);
        assert_eq!(parse_duration("180d"), Some(TimeDelta::days(180)));
        assert_eq!(parse_duration("2y"), Some(TimeDelta::days(730)));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("-5d"), None);
        assert_eq!(python_timedelta(TimeDelta::seconds(20)), "0:00:20");
        assert_eq!(python_timedelta(TimeDelta::hours(25)), "1 day, 1:00:00");
    }
}
