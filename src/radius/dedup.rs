//! The duplicate-request cache (RFC 5080 §2.2.2).
//!
//! Keyed by (source address and port, identifier, Request Authenticator). While a request is
//! in flight, retransmits are dropped; once it is answered, retransmits get the byte-identical
//! cached reply for the TTL. A NAS retransmit therefore never consumes a second OTP.
//!
//! At 10,000 logins/s a 30 s TTL means 300,000 live entries, so an entry is kept small: the key
//! is a 128-bit keyed fingerprint of the request's identity, a bare Access-Accept (with its
//! Message-Authenticator) is stored inline, and the time is 32 bits. Entries leave in the order
//! they came (a queue beside the map), when their TTL is over or, when the cache is full, the
//! oldest first: under overload the window shrinks instead of new requests going uncached,
//! and a retransmit (which comes within seconds) still finds its answer.

use std::collections::{HashMap, VecDeque};
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
    Inline { len: u8, bytes: [u8; INLINE_REPLY] },
    Shared(Arc<[u8]>),
}

#[derive(Debug)]
struct Slot {
    /// When the request arrived; the TTL counts from here.
    at: Stamp,
    state: State,
}

#[derive(Debug)]
struct Entries {
    map: HashMap<Fingerprint, Slot>,
    /// Every begun request in arrival order. An item whose map slot is gone or newer (the key
    /// was abandoned and begun again) is skipped when it reaches the front.
    order: VecDeque<(Fingerprint, Stamp)>,
}

/// The cache, bounded by `max_entries`.
#[derive(Debug)]
pub struct DedupCache {
    entries: Mutex<Entries>,
    ttl: Stamp,
    max_entries: usize,
    epoch: Instant,
    keys: [RandomState; 2],
}

impl DedupCache {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        let ttl = Stamp::try_from(ttl.as_millis() / 10).unwrap_or(Stamp::MAX / 2);
        let max_entries = max_entries.max(16);
        // Sized once: growing by doubling left the outgrown tables in the heap (glibc keeps
        // freed memory of that size), and untouched pages of a reserved table cost no RSS.
        let entries = Entries {
            map: HashMap::with_capacity(max_entries),
            order: VecDeque::with_capacity(max_entries),
        };
        Self {
            entries: Mutex::new(entries),
            ttl: ttl.min(Stamp::MAX / 2),
            max_entries,
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

    pub fn begin(&self, key: Key, now: Instant) -> Seen {
        let Ok(mut e) = self.entries.lock() else {
            return Seen::New;
        };
        let now = self.stamp(now);
        self.expire(&mut e, now);
        let fp = self.fingerprint(&key);
        if let Some(slot) = e.map.get(&fp) {
            return match &slot.state {
                State::InFlight => Seen::InFlight,
                State::Inline { len, bytes } => {
                    Seen::Answered(Arc::from(bytes.get(..usize::from(*len)).unwrap_or(&[])))
                }
                State::Shared(reply) => Seen::Answered(reply.clone()),
            };
        }
        // every live entry has its item in `order`, so bounding `order` bounds both
        while e.order.len() >= self.max_entries {
            Self::evict_oldest(&mut e);
        }
        e.map.insert(
            fp,
            Slot {
                at: now,
                state: State::InFlight,
            },
        );
        e.order.push_back((fp, now));
        Seen::New
    }

    /// Store the reply for retransmits (if the request is still in the cache).
    pub fn finish(&self, key: Key, reply: &[u8]) {
        let fp = self.fingerprint(&key);
        let Ok(mut e) = self.entries.lock() else {
            return;
        };
        if let Some(slot) = e.map.get_mut(&fp) {
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
        if let Ok(mut e) = self.entries.lock() {
            e.map.remove(&fp);
        }
    }

    /// Remove expired entries (also done on every `begin`; call it when traffic stops).
    pub fn sweep(&self, now: Instant) {
        if let Ok(mut e) = self.entries.lock() {
            let now = self.stamp(now);
            self.expire(&mut e, now);
        }
    }

    fn expire(&self, e: &mut Entries, now: Stamp) {
        while let Some(&(fp, at)) = e.order.front() {
            if now.wrapping_sub(at) < self.ttl {
                break;
            }
            e.order.pop_front();
            if e.map.get(&fp).is_some_and(|s| s.at == at) {
                e.map.remove(&fp);
            }
        }
    }

    fn evict_oldest(e: &mut Entries) {
        if let Some((fp, at)) = e.order.pop_front()
            && e.map.get(&fp).is_some_and(|s| s.at == at)
        {
            e.map.remove(&fp);
            metrics::counter!("otpgate_radius_duplicate_cache_evicted_total").increment(1);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.map.len()).unwrap_or(0)
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
        // the 15 newest are still answered; the oldest went to make room
        for i in 25..40u8 {
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
