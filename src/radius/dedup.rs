//! The duplicate-request cache (RFC 5080 §2.2.2).
//!
//! Keyed by (source address and port, identifier, Request Authenticator). While a request is
//! in flight, retransmits are dropped; once it is answered, retransmits get the byte-identical
//! cached reply for the TTL. A NAS retransmit therefore never consumes a second OTP.
//!
//! At 10,000 logins/s a 30 s TTL means 300,000 live entries, so an entry is kept small (32
//! bytes with its key): the key is a 128-bit keyed fingerprint of the request's identity, the
//! time is 32 bits, and the commonest answer, a bare Access-Accept or Access-Reject (the header
//! and the Message-Authenticator, nothing else), is kept as its code alone. Its bytes are a
//! function of the request and the client's secret, so the server builds them again for a
//! retransmit, byte for byte the first reply; any other reply is kept whole.
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

use super::attr::MESSAGE_AUTHENTICATOR;
use super::packet::Code;

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
    Answered(Arc<Vec<u8>>),
    /// Answered already with a bare reply of this code: build it again for the retransmit
    /// (`translate::start_reply` and `finish_reply`), the same bytes as the first time.
    AnsweredBare(Code),
}

/// A bare reply: the header (20 bytes) and a Message-Authenticator (18), which every reply
/// carries first (`translate::start_reply`).
const BARE_REPLY: usize = 38;

/// Two independent SipHash outputs under random keys: a collision between two live requests is
/// about as likely as guessing a 128-bit key, and a sender cannot aim for one.
type Fingerprint = [u64; 2];

/// Centiseconds since the cache was made, wrapping (an entry never lives near 497 days).
type Stamp = u32;

/// A request and what became of it, with its arrival (the TTL counts from there). 16 bytes:
/// a table of 100,000 and their keys is 4 MiB (the bare reply inline took 64-byte entries,
/// 8.4 MiB per generation).
#[derive(Debug)]
enum Slot {
    InFlight {
        at: Stamp,
    },
    /// Given up without a reply (dropped under load, failed): a retransmit is processed.
    /// Marked rather than removed, so the table never holds a tombstone.
    Abandoned {
        at: Stamp,
    },
    /// Answered with a bare reply of this code.
    Bare {
        at: Stamp,
        code: u8,
    },
    /// Answered with this reply (a thin pointer, so that the slot stays 16 bytes).
    Whole {
        at: Stamp,
        reply: Arc<Vec<u8>>,
    },
}

impl Slot {
    fn at(&self) -> Stamp {
        match self {
            Self::InFlight { at }
            | Self::Abandoned { at }
            | Self::Bare { at, .. }
            | Self::Whole { at, .. } => *at,
        }
    }
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

/// The code of a bare reply (see [`BARE_REPLY`]).
fn bare_code(reply: &[u8]) -> Option<u8> {
    let bare =
        reply.len() == BARE_REPLY && reply.get(20..22) == Some(&[MESSAGE_AUTHENTICATOR, 18][..]);
    bare.then(|| reply.first().copied()).flatten()
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
            && !self.expired(slot.at(), now)
        {
            match slot {
                Slot::InFlight { .. } => return Seen::InFlight,
                Slot::Bare { code, .. } => return Seen::AnsweredBare(Code::from_u8(*code)),
                Slot::Whole { reply, .. } => return Seen::Answered(Arc::clone(reply)),
                Slot::Abandoned { .. } => {}
            }
        }
        if !e.current.map.contains_key(&fp) && e.current.map.len() >= self.generation {
            self.rotate(&mut e, now);
        }
        // a stale copy in the older generation is shadowed by this one
        e.current.map.insert(fp, Slot::InFlight { at: now });
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
            let at = slot.at();
            *slot = match bare_code(reply) {
                Some(code) => Slot::Bare { at, code },
                None => Slot::Whole {
                    at,
                    reply: Arc::new(reply.to_vec()),
                },
            };
        }
    }

    /// Forget a request that will not be answered (dropped under load, failed).
    pub fn abandon(&self, key: &Key) {
        let fp = self.fingerprint(key);
        if let Ok(mut e) = self.entries.lock()
            && let Some(slot) = e.slot_mut(&fp)
        {
            *slot = Slot::Abandoned { at: slot.at() };
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

    fn answered(reply: &[u8]) -> Seen {
        Seen::Answered(Arc::new(reply.to_vec()))
    }

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
            answered(b"reply")
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

    /// A bare reply is kept as its code, for the server to build again; anything else whole.
    #[test]
    fn bare_replies_are_kept_as_their_code_and_others_whole() {
        assert_eq!(size_of::<(Fingerprint, Slot)>(), 32);
        let c = DedupCache::new(Duration::from_secs(30), 100);
        let t = Instant::now();
        let mut bare = vec![3u8, 1, 0, 38];
        bare.extend([7; 16]);
        bare.extend([MESSAGE_AUTHENTICATOR, 18]);
        bare.extend([9; 16]);
        assert_eq!(c.begin(key(1), t), Seen::New);
        c.finish(key(1), &bare);
        assert_eq!(c.begin(key(1), t), Seen::AnsweredBare(Code::AccessReject));

        let mut not_an_authenticator = bare.clone();
        not_an_authenticator[20] = 18; // a Reply-Message of 16 bytes instead
        let long: Vec<u8> = (0..=255).collect();
        let mut longer = bare.clone();
        longer.push(0);
        for (id, reply) in [
            (2, &not_an_authenticator[..]),
            (3, &longer[..]),
            (4, &long[..]),
            (5, &long[..BARE_REPLY]),
        ] {
            assert_eq!(c.begin(key(id), t), Seen::New);
            c.finish(key(id), reply);
            assert_eq!(c.begin(key(id), t), answered(reply));
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
            assert_eq!(c.begin(key(i), later), answered(&[i]));
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
        assert_eq!(c.begin(key(1), after_first), answered(b"ok"));
        assert_eq!(c.begin(key(1), retry + Duration::from_secs(31)), Seen::New);
    }
}
