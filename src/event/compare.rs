//! privacyIDEA's comparator grammar for condition values (spec §2.2), pure.
//!
//! A condition string is `<left> <cmp> <right>` (generic conditions such as `tokeninfo`),
//! `<cmp><right>` (integer conditions such as `failcounter`), or a bare `<right>` meaning
//! equality. Comparators may be quoted (`'=='100`, `key 'date_after' 2024-01-01`). The string is
//! parsed once, when the configuration is loaded; evaluation gets the left value and `now`.
//! A comparison that cannot be made at run time (a date against a non-date, naive against
//! aware) is an error the caller turns into "not fulfilled" with a warning (errata 1).

use chrono::{DateTime, Local, Utc};
use regex::Regex;

use crate::dates::{self, Stamp};

/// The comparators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `==`, `=`, `equals`, bare value.
    Eq,
    /// `!=`, `!equals`.
    Ne,
    Lt,
    Gt,
    /// `<=`, `=<` (integers only).
    Le,
    /// `>=`, `=>` (integers only).
    Ge,
    Contains,
    NotContains,
    Matches,
    NotMatches,
    In,
    NotIn,
    DateBefore,
    DateAfter,
    DateWithinLast,
    NotDateWithinLast,
    StringContains,
    NotStringContains,
}

/// Which comparator set a condition accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `failcounter`, `otp_counter`, `count_auth` …: `<cmp><int>`.
    Integer,
    /// `tokeninfo`, `user_info`, `counter`: `<key> <cmp> <value>`.
    Generic,
}

const QUOTED_PRIMARY: &[(&str, Cmp)] = &[
    ("'equals'", Cmp::Eq),
    ("'!equals'", Cmp::Ne),
    ("'contains'", Cmp::Contains),
    ("'!contains'", Cmp::NotContains),
    ("'matches'", Cmp::Matches),
    ("'!matches'", Cmp::NotMatches),
    ("'in'", Cmp::In),
    ("'!in'", Cmp::NotIn),
    ("'<'", Cmp::Lt),
    ("'>'", Cmp::Gt),
    ("'date_before'", Cmp::DateBefore),
    ("'date_after'", Cmp::DateAfter),
    ("'date_within_last'", Cmp::DateWithinLast),
    ("'!date_within_last'", Cmp::NotDateWithinLast),
    ("'string_contains'", Cmp::StringContains),
    ("'!string_contains'", Cmp::NotStringContains),
];

const INTEGER_PRIMARY: &[Cmp] = &[Cmp::Eq, Cmp::Ne, Cmp::Lt, Cmp::Gt];

const BASIC: &[(&str, Cmp)] = &[
    ("==", Cmp::Eq),
    ("!=", Cmp::Ne),
    ("<=", Cmp::Le),
    ("=<", Cmp::Le),
    (">=", Cmp::Ge),
    ("=>", Cmp::Ge),
    ("<", Cmp::Lt),
    (">", Cmp::Gt),
    ("=", Cmp::Eq),
];

/// A parsed condition value.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub left: String,
    pub cmp: Cmp,
    pub right: String,
    /// `matches`: the anchored pattern, compiled at load (unless `right` holds `{now}`).
    regex: Option<Regex>,
}

/// Why a condition value cannot be used (a configuration error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the condition value is empty")]
    Empty,
    #[error("{0:?}: an integer condition needs `<cmp><integer>`, e.g. `>=5`")]
    NotInteger(String),
    #[error("{0:?}: needs `<key> <comparator> <value>`")]
    NoKey(String),
    #[error("bad regular expression {0:?}: {1}")]
    Regex(String, String),
    #[error("{0:?} is not a duration like 7d")]
    Duration(String),
}

/// Why a comparison could not be made at run time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompareError {
    #[error("{0:?} is not an integer")]
    NotInteger(String),
    #[error("{0:?} is not a date")]
    NotDate(String),
    #[error("cannot compare a date with a time zone to one without")]
    NaiveVsAware,
    #[error("bad regular expression {0:?}")]
    Regex(String),
}

/// Split on the first comparator token that cuts the string into exactly two parts.
fn split_on<'a>(text: &'a str, token: &str) -> Option<(&'a str, &'a str)> {
    let mut parts = text.split(token);
    let (a, b) = (parts.next()?, parts.next()?);
    parts.next().is_none().then_some((a.trim(), b.trim()))
}

fn anchored(pattern: &str) -> Result<Regex, ParseError> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| ParseError::Regex(pattern.to_owned(), e.to_string()))
}

impl Comparison {
    pub fn parse(text: &str, kind: Kind) -> Result<Self, ParseError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ParseError::Empty);
        }
        let mut found = None;
        for (token, cmp) in QUOTED_PRIMARY {
            if kind == Kind::Integer && !INTEGER_PRIMARY.contains(cmp) {
                continue;
            }
            if let Some((l, r)) = split_on(text, token) {
                found = Some((l, *cmp, r));
                break;
            }
        }
        if found.is_none() {
            for quoted in [true, false] {
                for (token, cmp) in BASIC {
                    let t = if quoted {
                        format!("'{token}'")
                    } else {
                        (*token).to_owned()
                    };
                    if let Some((l, r)) = split_on(text, &t) {
                        found = Some((l, *cmp, r));
                        break;
                    }
                }
                if found.is_some() {
                    break;
                }
            }
        }
        let (left, cmp, right) = found.unwrap_or(("", Cmp::Eq, text));
        match kind {
            Kind::Integer => {
                if !left.is_empty() || right.parse::<i64>().is_err() {
                    return Err(ParseError::NotInteger(text.to_owned()));
                }
            }
            Kind::Generic => {
                if left.is_empty() {
                    return Err(ParseError::NoKey(text.to_owned()));
                }
            }
        }
        if matches!(cmp, Cmp::DateWithinLast | Cmp::NotDateWithinLast)
            && !right.contains('{')
            && within_last_duration(right).is_none()
        {
            return Err(ParseError::Duration(right.to_owned()));
        }
        let regex = match cmp {
            Cmp::Matches | Cmp::NotMatches if !right.contains("{now}") => Some(anchored(right)?),
            _ => None,
        };
        Ok(Self {
            left: left.to_owned(),
            cmp,
            right: right.to_owned(),
            regex,
        })
    }

    /// An integer condition against the actual value.
    pub fn holds_int(&self, actual: i64) -> bool {
        let Ok(want) = self.right.parse::<i64>() else {
            return false;
        };
        match self.cmp {
            Cmp::Eq => actual == want,
            Cmp::Ne => actual != want,
            Cmp::Lt => actual < want,
            Cmp::Gt => actual > want,
            Cmp::Le => actual <= want,
            Cmp::Ge => actual >= want,
            _ => false,
        }
    }

    /// A generic condition: `actual` is the looked-up left value, `right` the right value after
    /// tag replacement (`{now}`).
    pub fn holds(
        &self,
        actual: &str,
        right: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, CompareError> {
        let regex_holds = || -> Result<bool, CompareError> {
            match &self.regex {
                Some(r) => Ok(r.is_match(actual)),
                None => anchored(right)
                    .map(|r| r.is_match(actual))
                    .map_err(|_| CompareError::Regex(right.to_owned())),
            }
        };
        Ok(match self.cmp {
            Cmp::Eq => untyped(actual, right)? == std::cmp::Ordering::Equal,
            Cmp::Ne => untyped(actual, right)? != std::cmp::Ordering::Equal,
            Cmp::Lt => untyped(actual, right)? == std::cmp::Ordering::Less,
            Cmp::Gt => untyped(actual, right)? == std::cmp::Ordering::Greater,
            Cmp::Le => int(actual)? <= int(right)?,
            Cmp::Ge => int(actual)? >= int(right)?,
            Cmp::Matches => regex_holds()?,
            Cmp::NotMatches => !regex_holds()?,
            Cmp::In => csv(right).iter().any(|v| v == actual),
            Cmp::NotIn => !csv(right).iter().any(|v| v == actual),
            Cmp::Contains => list(actual).any(|v| v == right),
            Cmp::NotContains => !list(actual).any(|v| v == right),
            Cmp::StringContains => actual.to_lowercase().contains(&right.to_lowercase()),
            Cmp::NotStringContains => !actual.to_lowercase().contains(&right.to_lowercase()),
            Cmp::DateBefore => date_cmp(actual, right)? == std::cmp::Ordering::Less,
            Cmp::DateAfter => date_cmp(actual, right)? == std::cmp::Ordering::Greater,
            Cmp::DateWithinLast => within_last(actual, right, now)?,
            Cmp::NotDateWithinLast => !within_last(actual, right, now)?,
        })
    }
}

fn int(s: &str) -> Result<i64, CompareError> {
    s.trim()
        .parse()
        .map_err(|_| CompareError::NotInteger(s.to_owned()))
}

/// `==`, `!=`, `<`, `>` without a type: integers, else dates, else strings.
fn untyped(a: &str, b: &str) -> Result<std::cmp::Ordering, CompareError> {
    if let (Ok(x), Ok(y)) = (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
        return Ok(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (dates::parse(a), dates::parse(b)) {
        return x.compare(&y).ok_or(CompareError::NaiveVsAware);
    }
    Ok(a.cmp(b))
}

fn date(s: &str) -> Result<Stamp, CompareError> {
    dates::parse(s).ok_or_else(|| CompareError::NotDate(s.to_owned()))
}

fn date_cmp(a: &str, b: &str) -> Result<std::cmp::Ordering, CompareError> {
    date(a)?
        .compare(&date(b)?)
        .ok_or(CompareError::NaiveVsAware)
}

/// `date_within_last` durations: `<int><s|m|h|d|y>`.
fn within_last_duration(s: &str) -> Option<chrono::TimeDelta> {
    if s.trim().ends_with('w') {
        return None;
    }
    dates::parse_duration(s)
}

fn within_last(actual: &str, duration: &str, now: DateTime<Utc>) -> Result<bool, CompareError> {
    let when = date(actual)?.as_utc();
    let span =
        within_last_duration(duration).ok_or_else(|| CompareError::NotDate(duration.to_owned()))?;
    Ok(now - when < span)
}

/// A stored list value (`groups`, comma-joined) as items.
fn list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty())
}

/// Python `csv` rules: double quotes group, backslash escapes, blanks after commas skipped.
pub fn csv(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut at_start = true;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                at_start = false;
            }
            '"' if quoted => quoted = false,
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            ',' if !quoted => {
                out.push(std::mem::take(&mut cur));
                at_start = true;
            }
            ' ' if at_start => {}
            other => {
                cur.push(other);
                at_start = false;
            }
        }
    }
    out.push(cur);
    out
}

/// Replace `{now}` (optionally followed by `[+-]<int><s|m|h|d>`) with local time plus the last
/// offset, formatted `YYYY-MM-DDTHH:MM+ZZZZ` (tokeninfo and user_info conditions).
pub fn replace_now(text: &str, now: DateTime<Utc>) -> String {
    if !text.contains("{now}") {
        return text.to_owned();
    }
    let mut offset = chrono::TimeDelta::zero();
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(i) = rest.find("{now}") {
        out.push_str(rest.get(..i).unwrap_or(""));
        out.push_str("\u{0}NOW\u{0}");
        rest = rest.get(i + 5..).unwrap_or("");
        if let Some((delta, len)) = leading_offset(rest) {
            offset = delta;
            rest = rest.get(len..).unwrap_or("");
        }
    }
    out.push_str(rest);
    let stamp = (now + offset)
        .with_timezone(&Local)
        .format("%Y-%m-%dT%H:%M%z")
        .to_string();
    out.replace("\u{0}NOW\u{0}", &stamp)
}

/// `+7d` at the start of `s` (no blanks): the delta and how many bytes it took.
fn leading_offset(s: &str) -> Option<(chrono::TimeDelta, usize)> {
    let bytes = s.as_bytes();
    let sign = match bytes.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = bytes
        .get(1..)?
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 {
        return None;
    }
    let unit = *bytes.get(1 + digits)?;
    if !matches!(unit, b's' | b'm' | b'h' | b'd') {
        return None;
    }
    let n: i64 = s.get(1..1 + digits)?.parse().ok()?;
    let secs = match unit {
        b's' => 1,
        b'm' => 60,
        b'h' => 3600,
        _ => 86_400,
    };
    Some((
        chrono::TimeDelta::try_seconds(n.checked_mul(secs)? * sign)?,
        2 + digits,
    ))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn int_holds(cond: &str, actual: i64) -> bool {
        Comparison::parse(cond, Kind::Integer)
            .unwrap()
            .holds_int(actual)
    }

    fn gen_cmp(cond: &str, actual: &str) -> Result<bool, CompareError> {
        let c = Comparison::parse(cond, Kind::Generic).unwrap();
        c.holds(actual, &c.right.clone(), now())
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
    }

    #[test]
    fn integer_conditions() {
        // scenario 60: failcount 8
        assert!(int_holds("<9", 8));
        assert!(int_holds("=8", 8));
        assert!(!int_holds(">9", 8));
        assert!(int_holds("'>'7", 8));
        assert!(int_holds("8", 8));
        assert!(int_holds("==0", 0));
        assert!(int_holds("!=1", 0));
        assert!(int_holds(">=5", 5));
        assert!(int_holds("=>5", 5));
        assert!(int_holds("<=5", 5));
        assert!(int_holds(">-5", 0));
        assert!(int_holds(" < 100 ", 99));
        assert!(int_holds("'equals'3", 3));
        for bad in ["", "abc", "a > 1", ">x", "'matches'1"] {
            assert!(Comparison::parse(bad, Kind::Integer).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn generic_untyped_compare_ints_then_dates_then_strings() {
        assert_eq!(gen_cmp("count == 10", "10"), Ok(true));
        assert_eq!(gen_cmp("count > 9", "10"), Ok(true)); // integer, not lexicographic
        assert_eq!(gen_cmp("name < b", "a"), Ok(true));
        assert_eq!(gen_cmp("name = Alice", "Alice"), Ok(true));
        assert_eq!(gen_cmp("name != Alice", "Bob"), Ok(true));
        assert_eq!(gen_cmp("givenname == Alice", "alice"), Ok(false));
        assert_eq!(gen_cmp("d < 2026-01-02", "2026-01-01"), Ok(true));
        assert_eq!(
            gen_cmp("d < 2026-01-02T00:00+0000", "2026-01-01"),
            Err(CompareError::NaiveVsAware)
        );
        assert_eq!(
            gen_cmp("n >= 5", "x"),
            Err(CompareError::NotInteger("x".into()))
        );
    }

    #[test]
    fn typed_comparators() {
        assert_eq!(gen_cmp("k 'matches' ab.*", "abc"), Ok(true));
        assert_eq!(gen_cmp("k 'matches' b", "abc"), Ok(false)); // anchored both ends
        assert_eq!(gen_cmp("k 'matches' (?i)ABC", "abc"), Ok(true));
        assert_eq!(gen_cmp("k '!matches' ab", "abc"), Ok(true));
        assert_eq!(gen_cmp("k 'in' a, \"b,c\", d", "b,c"), Ok(true));
        assert_eq!(gen_cmp("k '!in' a, b", "c"), Ok(true));
        assert_eq!(gen_cmp("groups 'contains' admins", "vpn,admins"), Ok(true));
        assert_eq!(
            gen_cmp("k 'string_contains' SPEC", "very special"),
            Ok(true)
        );
        assert_eq!(gen_cmp("k '!string_contains' x", "abc"), Ok(true));
        assert_eq!(
            gen_cmp("k 'date_before' 2024-01-01", "2023-12-31"),
            Ok(true)
        );
        assert_eq!(
            gen_cmp("k 'date_after' 2024-01-01", "2023-12-31"),
            Ok(false)
        );
        assert_eq!(
            gen_cmp("k 'date_within_last' 2d", "2026-03-09T12:00+0000"),
            Ok(true)
        );
        assert_eq!(
            gen_cmp("k 'date_within_last' 1d", "2026-03-08T12:00+0000"),
            Ok(false)
        );
        assert_eq!(gen_cmp("k '!date_within_last' 1d", "2026-03-08"), Ok(true));
        assert!(matches!(
            Comparison::parse("k 'matches' (", Kind::Generic),
            Err(ParseError::Regex(..))
        ));
        assert!(matches!(
            Comparison::parse("k 'date_within_last' soon", Kind::Generic),
            Err(ParseError::Duration(..))
        ));
        assert!(matches!(
            Comparison::parse("== 5", Kind::Generic),
            Err(ParseError::NoKey(..))
        ));
    }

    #[test]
    fn a_token_that_appears_twice_does_not_split() {
        // "a == b == c": `==` gives three parts, so the next token is tried
        let c = Comparison::parse("a = b = c", Kind::Generic);
        assert!(c.is_err() || c.unwrap().left.is_empty());
    }

    #[test]
    fn csv_like_python() {
        assert_eq!(csv("a, b,c"), vec!["a", "b", "c"]);
        assert_eq!(csv("\"x, y\", z"), vec!["x, y", "z"]);
        assert_eq!(csv("a\\,b"), vec!["a,b"]);
    }

    #[test]
    fn now_tag_with_the_last_offset() {
        let n = now();
        let plain = replace_now("{now}", n);
        assert_eq!(
            plain,
            n.with_timezone(&Local)
                .format("%Y-%m-%dT%H:%M%z")
                .to_string()
        );
        let minus = replace_now("{now}-7d", n);
        let want = (n - chrono::TimeDelta::days(7))
            .with_timezone(&Local)
            .format("%Y-%m-%dT%H:%M%z")
            .to_string();
        assert_eq!(minus, want);
        // blanks break the offset (documented QUIRK): the offset stays as text
        assert!(replace_now("{now} - 7d", n).ends_with(" - 7d"));
        assert_eq!(replace_now("no tag", n), "no tag");
    }
}
