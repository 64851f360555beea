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

    /// The entries as a JSON array.
    pub fn to_json(&self) -> String {
        // a Vec of plain strings and numbers has nothing serde_json could refuse
        serde_json::to_string(&self.entries).unwrap_or_else(|_| String::from("[]"))
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

#[cfg(test)]
mod tests {
    use super::*;

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
