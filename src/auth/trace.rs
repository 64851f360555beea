//! The decision trace: what a request did and why, stored with its audit row.
//!
//! It replaces `freeradius -X` plus server debug logs: how user and realm were resolved, each
//! candidate token and why it matched or failed, counter and failcount changes, policy hits and
//! event-handler runs with their latency. Never holds a password, PIN or OTP value.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::clock::Stopwatch;

/// One line of the trace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TraceEntry {
    /// Microseconds since the request started.
    pub at_us: i64,
    /// `request`, `user`, `token`, `policy`, `event`, `result`, `warning`, …: a constant
    /// while a request runs (no allocation per line), owned when read back from a row.
    pub step: Cow<'static, str>,
    pub text: String,
}

/// Collects entries while a request runs.
#[derive(Debug, Clone)]
pub struct Trace {
    started: Stopwatch,
    entries: Vec<TraceEntry>,
}

impl Default for Trace {
    fn default() -> Self {
        Self::new()
    }
}

impl Trace {
    pub fn new() -> Self {
        Self {
            started: Stopwatch::start(),
            entries: Vec::with_capacity(12),
        }
    }

    pub fn add(&mut self, step: &'static str, text: impl Into<String>) {
        self.entries.push(TraceEntry {
            at_us: self.started.elapsed_us(),
            step: Cow::Borrowed(step),
            text: text.into(),
        });
    }

    pub fn elapsed_us(&self) -> i64 {
        self.started.elapsed_us()
    }

    pub fn entries(&self) -> &[TraceEntry] {
        &self.entries
    }

    /// The entries as a JSON array, byte for byte what `serde_json::to_string` writes. Written
    /// by hand because every login stores one: serde_json looks at each byte of the text on
    /// its own (~8 instructions a byte, 6 % of a login's instructions with 20 event
    /// definitions that did not match), [`push_json_str`] at eight bytes a time.
    pub fn to_json(&self) -> String {
        let size: usize = self
            .entries
            .iter()
            .map(|e| e.step.len() + e.text.len() + 48)
            .sum();
        let mut out = String::with_capacity(size + 2);
        out.push('[');
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"at_us\":");
            out.push_str(itoa::Buffer::new().format(e.at_us));
            out.push_str(",\"step\":");
            push_json_str(&mut out, &e.step);
            out.push_str(",\"text\":");
            push_json_str(&mut out, &e.text);
            out.push('}');
        }
        out.push(']');
        out
    }

    /// Render a stored trace for `otpgate audit explain`.
    pub fn render(json: &str) -> String {
        let Ok(entries) = serde_json::from_str::<Vec<TraceEntry>>(json) else {
            return String::from("  (no decision trace stored)\n");
        };
        let mut out = String::new();
        for e in entries {
            out.push_str(&format!(
                "  {:>9.3} ms  {:<8} {}\n",
                e.at_us as f64 / 1000.0,
                e.step,
                e.text
            ));
        }
        out
    }
}

/// `s` as a JSON string, escaped as serde_json escapes: `"`, `\\` and the control characters
/// below U+0020 (`\n`, `\t`, … or `\u00XX`); everything else, UTF-8 included, as it is.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut clean = 0; // bytes[clean..i] need no escape and are not written yet
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let flagged = escape_mask(u64::from_le_bytes(word.try_into().unwrap_or_default()));
            if flagged == 0 {
                i += 8;
                continue;
            }
            // the lowest flagged byte is the first that needs an escape
            i += (flagged.trailing_zeros() / 8) as usize;
        }
        let b = bytes[i];
        if !(b < 0x20 || b == b'"' || b == b'\\') {
            // in the last bytes, which are looked at one by one
            i += 1;
            continue;
        }
        // the byte is ASCII, so both cuts fall on character boundaries
        out.push_str(&s[clean..i]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
        i += 1;
        clean = i;
    }
    out.push_str(&s[clean..]);
    out.push('"');
}

/// The high bit of each byte of `word` (little-endian) that is `"`, `\\` or below 0x20,
/// computed with the classic "has a byte less than n" (a zero byte being less than 1). A
/// borrow may also flag bytes above a flagged one; the lowest flag is always exact, and it is
/// all that is used.
fn escape_mask(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    below(word, 0x20) | below(quote, 1) | below(backslash, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte for byte serde_json's output, for texts with every kind of escape at every
    /// position in an eight-byte word, and with multi-byte characters.
    #[test]
    fn json_is_serde_jsons() {
        let mut texts = vec![
            String::new(),
            "plain ascii text that is long enough for several words".into(),
            "B000572: counter 2 → 3, failcount → 0".into(),
            "\"user572\" → login \"user572\" in realm \"bench\"".into(),
            "tab\there, newline\nthere, cr\r, bell\u{7}, nul\u{0}, esc\u{1b}, del\u{7f}".into(),
            "back\\slash \u{8}\u{c}\u{1f} ünïcödé 🙂 end".into(),
        ];
        for special in ['"', '\\', '\n', '\u{1}', '\u{1f}', 'é', ' ', '~', '\u{7f}'] {
            for at in 0..17 {
                let mut t: String = "abcdefghijklmnopq".chars().take(at).collect();
                t.push(special);
                t.push_str("rstuvwxyz0123456");
                texts.push(t);
            }
        }
        let mut trace = Trace::new();
        for (i, text) in texts.iter().enumerate() {
            trace.entries.push(TraceEntry {
                at_us: i as i64 * 977 - 3,
                step: Cow::Borrowed(if i % 2 == 0 { "token" } else { "event" }),
                text: text.clone(),
            });
        }
        assert_eq!(
            trace.to_json(),
            serde_json::to_string(&trace.entries).unwrap()
        );
        assert_eq!(Trace::new().to_json(), "[]");
    }

    #[test]
    fn trace_round_trips_through_json() {
        let mut t = Trace::new();
        t.add("user", "alice in realm1 (resolver1)");
        t.add("token", "HOTP1: OTP matched counter 0");
        let text = Trace::render(&t.to_json());
        assert!(text.contains("user     alice in realm1"), "{text}");
        assert!(text.contains("HOTP1: OTP matched"), "{text}");
        assert!(Trace::render("garbage").contains("no decision trace"));
    }
}
