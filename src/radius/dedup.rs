//! The duplicate-request cache (RFC 5080 §2.2.2).
//!
//! Keyed by (source address and port, identifier, Request Authenticator). While a request is
//! in flight, retransmits are dropped; once it is answered, retransmits get the byte-identical
//! cached reply for the TTL. A NAS retransmit therefore never consumes a second OTP.
//!
//! At 10,000 logins/s a 30 s TTL means 300,000 live entries, so an entry is kept small: the key
//! is a 128-bit keyed fingerprint of the request's identity, a bare Access-Accept (with its
//! Message-Authenticator) is stored inline, and the time is 32 bits.
//!
//! The entries live in two generations of a fixed size, each a hash table made once: new
//! requests go into the current one; when it is full, the older generation is emptied (its
//! table kept) and the two swap. Nothing is ever deleted from a table, so it never fills with
//! tombstones and never grows: a single table that dropped its oldest entry for every new one
//! doubled itself after a few hundred thousand requests (hashbrown grows rather than rehash in
//! place when more than half of it is live), 17 MiB more for good. A full cache therefore
//! remembers between one and two generations of requests, the oldest leaving first, and under
//! overload the window shrinks instead of new requests going uncached; a retransmit, which
//! comes within seconds, still finds its answer.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub source: SocketAddr,
    pub identifier: u8,
    pub authenticator: [u8; 16],
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

/// Replies up to this size live in the entry itself: an Access-Accept or Access-Reject with a
/// Message-Authenticator and no other attribute is 38 bytes (and the entry then 64).
const INLINE_REPLY: usize = 38;

/// Two independent SipHash outputs under random keys: a collision between two live requests is
/// about as likely as guessing a 128-bit key, and a sender cannot aim for one.
type Fingerprint = [u64; 2];

/// Centiseconds since the cache was made, wrapping (an entry never lives near 497 days).
type Stamp = u32;

#[derive(Debug)]
enum State {
    InFlight,
    /// Given up without a reply (dropped under load, failed): a retransmit is processed.
    /// Marked rather than removed, so the table never holds a tombstone.
    Abandoned,
    Inline {
        len: u8,
        bytes: [u8; INLINE_REPLY],
    },
    Shared(Arc<[u8]>),
}

#[derive(Debug)]
struct Slot {
    /// When the request arrived; the TTL counts from here.
    at: Stamp,
    state: State,
}

/// One generation: its table and the arrival of its newest entry.
#[derive(Debug)]
struct Generation {
    map: HashMap<Fingerprint, Slot>,
    newest: Stamp,
}

impl Generation {
    fn with_capacity(n: usize) -> Self {
        Self {
            map: HashMap::with_capacity(n),
            newest: 0,
        }
    }
}

#[derive(Debug)]
struct Entries {
    current: Generation,
    previous: Generation,
}

impl Entries {
    /// The live slot of a request, newest generation first.
    fn slot_mut(&mut self, fp: &Fingerprint) -> Option<&mut Slot> {
        if self.current.map.contains_key(fp) {
            self.current.map.get_mut(fp)
        } else {
            self.previous.map.get_mut(fp)
        }
    }
}

/// The cache, bounded by `max_entries`.
#[derive(Debug)]
pub struct DedupCache {
    entries: Mutex<Entries>,
    ttl: Stamp,
    /// Entries per generation.
    generation: usize,
    epoch: Instant,
    keys: [RandomState; 2],
}

impl DedupCache {
    /// Keeps at most `max_entries` requests (at least half as many once it is full).
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        let ttl = Stamp::try_from(ttl.as_millis() / 10).unwrap_or(Stamp::MAX / 2);
        let generation = (max_entries / 2).max(8);
        // Both tables are sized once; untouched pages of a reserved table cost no RSS.
        let entries = Entries {
            current: Generation::with_capacity(generation),
            previous: Generation::with_capacity(generation),
        };
        Self {
            entries: Mutex::new(entries),
            ttl: ttl.min(Stamp::MAX / 2),
            generation,
            epoch: Instant::now(),
            keys: [RandomState::new(), RandomState::new()],
        }
    }

    fn fingerprint(&self, key: &Key) -> Fingerprint {
        [self.keys[0].hash_one(key), self.keys[1].hash_one(key)]
    }

    fn stamp(&self, now: Instant) -> Stamp {
        // wraps after 497 days; ages are taken with wrapping subtraction
        (now.saturating_duration_since(self.epoch).as_millis() / 10) as Stamp
    }

    fn expired(&self, at: Stamp, now: Stamp) -> bool {
        now.wrapping_sub(at) >= self.ttl
    }

    pub fn begin(&self, key: Key, now: Instant) -> Seen {
        let Ok(mut e) = self.entries.lock() else {
            return Seen::New;
        };
        let now = self.stamp(now);
        let fp = self.fingerprint(&key);
        if let Some(slot) = e.slot_mut(&fp)
            && !self.expired(slot.at, now)
        {
            match &slot.state {
                State::InFlight => return Seen::InFlight,
                State::Inline { len, bytes } => {
                    return Seen::Answered(Arc::from(
                        bytes.get(..usize::from(*len)).unwrap_or(&[]),
                    ));
                }
                State::Shared(reply) => return Seen::Answered(reply.clone()),
                State::Abandoned => {}
            }
        }
        if !e.current.map.contains_key(&fp) && e.current.map.len() >= self.generation {
            self.rotate(&mut e, now);
        }
        // a stale copy in the older generation is shadowed by this one
        e.current.map.insert(
            fp,
            Slot {
                at: now,
                state: State::InFlight,
            },
        );
        e.current.newest = now;
        Seen::New
    }

    /// The current generation is full: forget the older one and start a new one in its table.
    fn rotate(&self, e: &mut Entries, now: Stamp) {
        if !self.expired(e.previous.newest, now) && !e.previous.map.is_empty() {
            // replies forgotten before their time: the cache is too small for the load
            metrics::counter!("otpgate_radius_duplicate_cache_evicted_total")
                .increment(e.previous.map.len() as u64);
        }
        e.previous.map.clear();
        std::mem::swap(&mut e.current, &mut e.previous);
    }

    /// Store the reply for retransmits (if the request is still in the cache).
    pub fn finish(&self, key: Key, reply: &[u8]) {
        let fp = self.fingerprint(&key);
        let Ok(mut e) = self.entries.lock() else {
            return;
        };
        if let Some(slot) = e.slot_mut(&fp) {
            let mut bytes = [0u8; INLINE_REPLY];
            slot.state = match (u8::try_from(reply.len()), bytes.get_mut(..reply.len())) {
                (Ok(len), Some(inline)) => {
                    inline.copy_from_slice(reply);
                    State::Inline { len, bytes }
                }
                _ => State::Shared(Arc::from(reply)),
            };
        }
    }

    /// Forget a request that will not be answered (dropped under load, failed).
    pub fn abandon(&self, key: &Key) {
        let fp = self.fingerprint(key);
        if let Ok(mut e) = self.entries.lock()
            && let Some(slot) = e.slot_mut(&fp)
        {
            slot.state = State::Abandoned;
        }
    }

    /// Empty the generations whose every entry has expired (call it when traffic stops; the
    /// tables are kept).
    pub fn sweep(&self, now: Instant) {
        if let Ok(mut e) = self.entries.lock() {
            let now = self.stamp(now);
            let Entries { current, previous } = &mut *e;
            for g in [current, previous] {
                if self.expired(g.newest, now) {
                    g.map.clear();
                }
            }
        }
    }

    /// Entries held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .map(|e| e.current.map.len() + e.previous.map.len())
            .unwrap_or(0)
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
        c.finish(key(1), b"reply");
        assert_eq!(
            c.begin(key(1), t + Duration::from_secs(5)),
            Seen::Answered(Arc::from(&b"reply"[..]))
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

    /// A full cache under steady churn keeps the table it was made with: a hash table that
    /// grows doubles its memory for good (hashbrown grows instead of rehashing in place when
    /// more than half of it is live), which is what put 16 MiB on top of RSS at 28,000
    /// logins/s.
    #[test]
    fn a_churning_full_cache_keeps_its_table() {
        let c = DedupCache::new(Duration::from_secs(30), 20_000);
        let capacity = |c: &DedupCache| {
            c.entries
                .lock()
                .map(|e| e.current.map.capacity() + e.previous.map.capacity())
                .unwrap()
        };
        let before = capacity(&c);
        let t = Instant::now();
        for i in 0..200_000u32 {
            let k = Key {
                source: "127.0.0.1:5000".parse().unwrap(),
                identifier: (i % 256) as u8,
                authenticator: {
                    let mut a = [0u8; 16];
                    a[..4].copy_from_slice(&i.to_be_bytes());
                    a
                },
            };
            assert_eq!(c.begin(k, t), Seen::New);
            c.finish(k, b"ok");
        }
        assert_eq!(capacity(&c), before);
    }

    #[test]
    fn long_replies_are_kept_whole() {
        assert_eq!(size_of::<(Fingerprint, Slot)>(), 64);
        let c = DedupCache::new(Duration::from_secs(30), 100);
        let t = Instant::now();
        let long: Vec<u8> = (0..=255).collect();
        for (id, reply) in [
            (1, &long[..INLINE_REPLY]),
            (2, &long[..INLINE_REPLY + 1]),
            (3, &long[..]),
        ] {
            assert_eq!(c.begin(key(id), t), Seen::New);
            c.finish(key(id), reply);
            assert_eq!(c.begin(key(id), t), Seen::Answered(Arc::from(reply)));
        }
    }

    #[test]
    fn a_full_cache_forgets_the_oldest_first() {
        let c = DedupCache::new(Duration::from_secs(30), 16);
        let t = Instant::now();
        for i in 0..40u8 {
            assert_eq!(
                c.begin(key(i), t + Duration::from_millis(u64::from(i) * 20)),
                Seen::New
            );
            c.finish(key(i), &[i]);
        }
        let later = t + Duration::from_secs(1);
        // the newest generation and the one before it are still answered; the oldest went to
        // make room
        for i in 24..40u8 {
            assert_eq!(c.begin(key(i), later), Seen::Answered(Arc::from(&[i][..])));
        }
        assert_eq!(c.begin(key(0), later), Seen::New);
        assert!(c.len() <= 16);
    }

    #[test]
    fn expiry_counts_from_arrival_and_survives_abandon_and_retry() {
        let c = DedupCache::new(Duration::from_secs(30), 100);
        let t = Instant::now();
        assert_eq!(c.begin(key(1), t), Seen::New);
        c.abandon(&key(1));
        let retry = t + Duration::from_secs(10);
        assert_eq!(c.begin(key(1), retry), Seen::New);
        c.finish(key(1), b"ok");
        // the first attempt's queue item expires without taking the retry's entry along
        let after_first = t + Duration::from_secs(35);
        assert_eq!(c.begin(key(2), after_first), Seen::New);
        assert_eq!(
            c.begin(key(1), after_first),
            Seen::Answered(Arc::from(&b"ok"[..]))
        );
        assert_eq!(c.begin(key(1), retry + Duration::from_secs(31)), Seen::New);
    }
}
