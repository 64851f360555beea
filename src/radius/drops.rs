//! The log lines of dropped datagrams, bounded whatever the senders. A drop from a configured
//! client is logged at most once a minute per client and reason, with how many the line
//! stands for; those keys are as many as the configuration's clients. Datagrams from sources
//! no client matches can come from any address (spoofed ones too): the first of a minute is
//! logged with its source, the rest are counted and summed up in one line a minute with a few
//! of their addresses. The metric `otpgate_radius_dropped_total` counts every drop.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::log_limit::Repeated;

/// Source addresses a summary line names.
const SAMPLES: usize = 5;

#[derive(Debug, Default)]
pub(super) struct DropLog {
    per_client: Mutex<HashMap<(String, &'static str), Arc<Repeated>>>,
    unknown: Mutex<Unknown>,
}

/// Datagrams from unknown sources since the last summary.
#[derive(Debug, Default)]
struct Unknown {
    logged: bool,
    held_back: u64,
    samples: Vec<IpAddr>,
}

/// The summary of a minute's datagrams from unknown sources that were not logged one by one.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Summary {
    pub held_back: u64,
    pub samples: Vec<IpAddr>,
}

impl DropLog {
    /// A drop from a configured client: `Some(held_back)` when its line is due.
    pub(super) fn client(&self, client: &str, reason: &'static str) -> Option<u64> {
        let line = {
            let mut lines = self
                .per_client
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(
                lines
                    .entry((client.to_owned(), reason))
                    .or_insert_with(|| Arc::new(Repeated::new(Duration::from_secs(60)))),
            )
        };
        line.tick()
    }

    /// A datagram from a source no client matches: `true` when it is the first since the last
    /// summary, to be logged on its own.
    pub(super) fn unknown(&self, source: IpAddr) -> bool {
        let mut u = self.unknown.lock().unwrap_or_else(PoisonError::into_inner);
        if !u.logged {
            u.logged = true;
            return true;
        }
        u.held_back += 1;
        if u.samples.len() < SAMPLES && !u.samples.contains(&source) {
            u.samples.push(source);
        }
        false
    }

    /// What was held back since the last call (once a minute); `None` when nothing was.
    pub(super) fn unknown_summary(&self) -> Option<Summary> {
        let mut u = self.unknown.lock().unwrap_or_else(PoisonError::into_inner);
        let taken = std::mem::take(&mut *u);
        (taken.held_back > 0).then_some(Summary {
            held_back: taken.held_back,
            samples: taken.samples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_sources_make_one_line_and_one_summary_a_minute() {
        let log = DropLog::default();
        let ip = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x7f00_0000 + i));
        assert!(log.unknown(ip(1)));
        for i in 2..50_000 {
            assert!(!log.unknown(ip(i)));
        }
        let s = log.unknown_summary().unwrap();
        assert_eq!(s.held_back, 49_998);
        assert_eq!(s.samples, (2..7).map(ip).collect::<Vec<_>>());
        // the next minute starts over
        assert_eq!(log.unknown_summary(), None);
        assert!(log.unknown(ip(9)));
    }

    #[test]
    fn a_client_reason_is_logged_once_a_minute() {
        let log = DropLog::default();
        assert_eq!(log.client("vpn", "malformed"), Some(0));
        assert_eq!(log.client("vpn", "malformed"), None);
        assert_eq!(log.client("vpn", "overload"), Some(0));
        assert_eq!(log.client("switch", "malformed"), Some(0));
    }
}
