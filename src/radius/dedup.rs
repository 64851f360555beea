//! The duplicate-request cache (RFC 5080 §2.2.2).
//!
//! Keyed by (source address and port, identifier, Request Authenticator). While a request is
//! in flight, retransmits are dropped; once it is answered, retransmits get the byte-identical
//! cached reply for the TTL. A NAS retransmit therefore never consumes a second OTP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub source: SocketAddr,
    pub identifier: u8,
    pub authenticator: [u8; 16],
}

#[derive(Debug)]
enum Entry {
    InFlight(Instant),
    Done { reply: Arc<[u8]>, at: Instant },
}

/// What to do with an incoming request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// First time: process it.
    New,
    /// The original is still being processed: drop this copy.
    InFlight,
    /// Answered already: send this again.
    Answered(Arc<[u8]>),
}

/// The cache. Bounded: past `max_entries`, expired entries are swept and, if still full, new
/// requests are processed without caching (counted by the caller).
#[derive(Debug)]
pub struct DedupCache {
    entries: Mutex<HashMap<Key, Entry>>,
    ttl: Duration,
    max_entries: usize,
}

/// An in-flight request that left without an answer is forgotten after this long, so a
/// retransmit can be processed.
const IN_FLIGHT_LIMIT: Duration = Duration::from_secs(60);

impl DedupCache {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            max_entries: max_entries.max(16),
        }
    }

    pub fn begin(&self, key: Key, now: Instant) -> Seen {
        let Ok(mut map) = self.entries.lock() else {
            return Seen::New;
        };
        match map.get(&key) {
            Some(Entry::Done { reply, at }) if now.duration_since(*at) < self.ttl => {
                return Seen::Answered(reply.clone());
            }
            Some(Entry::InFlight(since)) if now.duration_since(*since) < IN_FLIGHT_LIMIT => {
                return Seen::InFlight;
            }
            _ => {}
        }
        if map.len() >= self.max_entries {
            Self::sweep_locked(&mut map, now, self.ttl);
        }
        if map.len() < self.max_entries {
            map.insert(key, Entry::InFlight(now));
        }
        Seen::New
    }

    /// Store the reply for retransmits.
    pub fn finish(&self, key: Key, reply: Arc<[u8]>, now: Instant) {
        if let Ok(mut map) = self.entries.lock()
            && (map.contains_key(&key) || map.len() < self.max_entries)
        {
            map.insert(key, Entry::Done { reply, at: now });
        }
    }

    /// Forget a request that will not be answered (dropped under load, failed).
    pub fn abandon(&self, key: &Key) {
        if let Ok(mut map) = self.entries.lock() {
            map.remove(key);
        }
    }

    /// Remove expired entries (called periodically).
    pub fn sweep(&self, now: Instant) {
        if let Ok(mut map) = self.entries.lock() {
            Self::sweep_locked(&mut map, now, self.ttl);
        }
    }

    fn sweep_locked(map: &mut HashMap<Key, Entry>, now: Instant, ttl: Duration) {
        map.retain(|_, e| match e {
            Entry::Done { at, .. } => now.duration_since(*at) < ttl,
            Entry::InFlight(since) => now.duration_since(*since) < IN_FLIGHT_LIMIT,
        });
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u8) -> Key {
        Key {
            source: "127.0.0.1:5000".parse().unwrap(),
            identifier: id,
            authenticator: [id; 16],
        }
    }

    #[test]
    fn retransmits_see_in_flight_then_the_cached_reply() {
        let c = DedupCache::new(Duration::from_secs(30), 100);
        let t = Instant::now();
        assert_eq!(c.begin(key(1), t), Seen::New);
        assert_eq!(c.begin(key(1), t), Seen::InFlight);
        let reply: Arc<[u8]> = Arc::from(&b"reply"[..]);
        c.finish(key(1), reply.clone(), t);
        assert_eq!(
            c.begin(key(1), t + Duration::from_secs(5)),
            Seen::Answered(reply)
        );
        assert_eq!(c.begin(key(1), t + Duration::from_secs(31)), Seen::New);
        assert_eq!(c.begin(key(2), t), Seen::New);
    }

    #[test]
    fn abandoned_requests_can_be_retried_and_size_is_bounded() {
        let c = DedupCache::new(Duration::from_secs(30), 16);
        let t = Instant::now();
        c.begin(key(1), t);
        c.abandon(&key(1));
        assert_eq!(c.begin(key(1), t), Seen::New);
        for i in 0..100 {
            c.begin(key(i), t);
        }
        assert!(c.len() <= 16);
        c.sweep(t + Duration::from_secs(120));
        assert_eq!(c.len(), 0);
    }
}
