//! The duplicate-request cache (RFC 5080 §2.2.2).
//!
//! Keyed by (source address and port, identifier, Request Authenticator). While a request is
//! in flight, retransmits are dropped; once it is answered, retransmits get the byte-identical
//! cached reply for the TTL. A NAS retransmit therefore never consumes a second OTP.
//!
//! At 10,000 logins/s a 30 s TTL means 300,000 live entries, so an entry is kept small: the
//! key is a 128-bit keyed fingerprint of the request's identity, the time is 32 bits, and a
//! reply is kept as its code and its own attributes only. The rest of a reply is the
//! request's (header, Message-Authenticator, Proxy-States; `translate::start_reply`), so the
//! server builds it again for a retransmit (`translate::rebuild_reply`), byte for byte.
//!
//! One map, made once with room for `max_entries`. When it is full the oldest entries go
//! until half of it is free, so it never grows: the cache remembers the newest half to all of
//! its entries, and under overload the window shrinks instead of new requests going uncached.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::attr::{MESSAGE_AUTHENTICATOR, PROXY_STATE};
use super::packet::{Code, Packet};

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
    /// Answered already with a reply of this code and these own attributes: build it again
    /// for the retransmit (`translate::rebuild_reply`), the same bytes as the first time.
    Answered { code: Code, attributes: Vec<u8> },
    /// Answered already with a reply of another shape: send it again.
    Verbatim(Vec<u8>),
}

/// Two independent SipHash outputs under random keys: a collision between two live requests is
/// about as likely as guessing a 128-bit key, and a sender cannot aim for one.
type Fingerprint = [u64; 2];

/// Centiseconds since the cache was made, wrapping (an entry never lives near 497 days).
type Stamp = u32;

/// A request and what became of it, with its arrival (the TTL counts from there).
#[derive(Debug)]
enum Slot {
    InFlight {
        at: Stamp,
    },
    /// Given up without a reply (dropped under load, failed): a retransmit is processed.
    Abandoned {
        at: Stamp,
    },
    /// Answered with a reply of this code and these own attributes (none: no allocation).
    Answered {
        at: Stamp,
        code: u8,
        attributes: Box<[u8]>,
    },
    /// Answered with a reply of another shape, kept as it was.
    Verbatim {
        at: Stamp,
        reply: Box<[u8]>,
    },
}

impl Slot {
    fn at(&self) -> Stamp {
        match self {
            Self::InFlight { at }
            | Self::Abandoned { at }
            | Self::Answered { at, .. }
            | Self::Verbatim { at, .. } => *at,
        }
    }
}

/// What a slot keeps of a reply, made before the cache's lock is taken: every login's reply
/// is parsed and copied here.
enum Kept {
    Answered { code: u8, attributes: Box<[u8]> },
    Verbatim(Box<[u8]>),
}

impl Kept {
    fn of(reply: &[u8]) -> Self {
        match own_attributes(reply) {
            Some((code, attributes)) => Self::Answered {
                code,
                attributes: attributes.into(),
            },
            None => Self::Verbatim(reply.into()),
        }
    }

    fn arrived(self, at: Stamp) -> Slot {
        match self {
            Self::Answered { code, attributes } => Slot::Answered {
                at,
                code,
                attributes,
            },
            Self::Verbatim(reply) => Slot::Verbatim { at, reply },
        }
    }
}

/// A reply's code and its own attributes: what follows the Message-Authenticator and the
/// Proxy-States copied from the request, which every reply carries first
/// (`translate::start_reply`). `None` for a reply of another shape.
fn own_attributes(reply: &[u8]) -> Option<(u8, &[u8])> {
    let packet = Packet::decode(reply).ok()?;
    // bytes past the Length field would not be built again
    if packet.len() != reply.len() {
        return None;
    }
    let mut attrs = packet.attributes().peekable();
    let first = attrs.next()?;
    if first.kind != MESSAGE_AUTHENTICATOR || first.value.len() != 16 {
        return None;
    }
    let mut own = first.offset + 18;
    while let Some(a) = attrs.next_if(|a| a.kind == PROXY_STATE) {
        own = a.offset + 2 + a.value.len();
    }
    Some((reply.first().copied()?, reply.get(own..)?))
}

/// The cache, bounded by `max_entries`.
#[derive(Debug)]
pub struct DedupCache {
    entries: Mutex<HashMap<Fingerprint, Slot>>,
    ttl: Stamp,
    /// Most entries held (the map was made with room for them).
    room: usize,
    /// What the map holds without a new table: at least `room`.
    table: usize,
    epoch: Instant,
    keys: [RandomState; 2],
}

impl DedupCache {
    /// Keeps at most `max_entries` requests (at least half as many once it is full).
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        let ttl = Stamp::try_from(ttl.as_millis() / 10).unwrap_or(Stamp::MAX / 2);
        let room = max_entries.max(16);
        let map = HashMap::with_capacity(room);
        Self {
            room,
            table: map.capacity(),
            entries: Mutex::new(map),
            ttl: ttl.min(Stamp::MAX / 2),
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
        let Ok(mut map) = self.entries.lock() else {
            return Seen::New;
        };
        let now = self.stamp(now);
        let fp = self.fingerprint(&key);
        if let Some(slot) = map.get(&fp)
            && !self.expired(slot.at(), now)
        {
            match slot {
                Slot::InFlight { .. } => return Seen::InFlight,
                Slot::Answered {
                    code, attributes, ..
                } => {
                    return Seen::Answered {
                        code: Code::from_u8(*code),
                        attributes: attributes.to_vec(),
                    };
                }
                Slot::Verbatim { reply, .. } => return Seen::Verbatim(reply.to_vec()),
                Slot::Abandoned { .. } => {}
            }
        }
        // `capacity()` shrinks by the slots that removed entries leave behind: at it, the
        // next insert rebuilds the table, in place if at most half of it is live, else twice
        // as large
        let full =
            map.len() >= self.room || (map.len() >= map.capacity() && map.len() >= self.table / 2);
        if full && !map.contains_key(&fp) {
            self.make_room(&mut map, now);
        }
        map.insert(fp, Slot::InFlight { at: now });
        Seen::New
    }

    /// Forget the expired entries, then the oldest, until at most half of the room is taken.
    fn make_room(&self, map: &mut HashMap<Fingerprint, Slot>, now: Stamp) {
        let age = |slot: &Slot| now.wrapping_sub(slot.at());
        map.retain(|_, slot| age(slot) < self.ttl);
        let keep = self.room / 2;
        if map.len() <= keep {
            return;
        }
        let mut ages: Vec<Stamp> = map.values().map(age).collect();
        // the (keep + 1)th youngest age: entries that old and older go
        let (_, &mut cutoff, _) = ages.select_nth_unstable(keep);
        let live = map.len();
        map.retain(|_, slot| age(slot) < cutoff);
        // replies forgotten before their time: the cache is too small for the load
        metrics::counter!("otpgate_radius_duplicate_cache_evicted_total")
            .increment((live - map.len()) as u64);
    }

    /// Store the reply for retransmits (if the request is still in the cache).
    pub fn finish(&self, key: Key, reply: &[u8]) {
        let fp = self.fingerprint(&key);
        let kept = Kept::of(reply);
        if let Ok(mut map) = self.entries.lock()
            && let Some(slot) = map.get_mut(&fp)
        {
            *slot = kept.arrived(slot.at());
        }
    }

    /// Forget a request that will not be answered (dropped under load, failed).
    pub fn abandon(&self, key: &Key) {
        let fp = self.fingerprint(key);
        if let Ok(mut map) = self.entries.lock()
            && let Some(slot) = map.get_mut(&fp)
        {
            *slot = Slot::Abandoned { at: slot.at() };
        }
    }

    /// Forget the expired entries (the map keeps its table).
    pub fn sweep(&self, now: Instant) {
        let now = self.stamp(now);
        if let Ok(mut map) = self.entries.lock() {
            map.retain(|_, slot| !self.expired(slot.at(), now));
        }
    }

    /// Entries held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|map| map.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a retransmit of a request answered with `reply` sees when those bytes are not a
    /// reply otpgate built (too short to be a packet): the bytes as they were.
    fn verbatim(reply: &[u8]) -> Seen {
        Seen::Verbatim(reply.to_vec())
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
            verbatim(b"reply")
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

    /// A full cache under steady churn keeps the table it was made with: a table that grew
    /// would double its memory for good.
    #[test]
    fn a_churning_full_cache_keeps_its_table() {
        let c = DedupCache::new(Duration::from_secs(30), 20_000);
        let table = |c: &DedupCache| c.entries.lock().unwrap().capacity();
        let before = table(&c);
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
        assert!(table(&c) <= before, "{} > {before}", table(&c));
    }

    /// A reply is kept as its code and its own attributes, for the server to build again; a
    /// reply of another shape as it was.
    #[test]
    fn replies_are_kept_as_their_code_and_own_attributes() {
        let c = DedupCache::new(Duration::from_secs(30), 100);
        let t = Instant::now();
        let reply = |attrs: &[&[u8]]| {
            let mut b = crate::radius::packet::Builder::new(Code::AccessAccept, 1, &[7; 16]);
            for a in attrs {
                b.attr(a[0], &a[1..]).unwrap();
            }
            b.finish()
        };
        let ma = [&[MESSAGE_AUTHENTICATOR][..], &[9; 16]].concat();
        let ma = &ma[..];
        let class: &[u8] = &[25, b'v', b'p', b'n'];
        for (id, attrs, own) in [
            (1, vec![ma], vec![]),
            (2, vec![ma, class], vec![25, 5, b'v', b'p', b'n']),
            (
                3,
                vec![ma, &[PROXY_STATE, b'x'], &[PROXY_STATE, b'y'], class],
                vec![25, 5, b'v', b'p', b'n'],
            ),
        ] {
            assert_eq!(c.begin(key(id), t), Seen::New);
            c.finish(key(id), &reply(&attrs));
            assert_eq!(
                c.begin(key(id), t),
                Seen::Answered {
                    code: Code::AccessAccept,
                    attributes: own
                }
            );
        }
        // no Message-Authenticator first, or bytes past the Length field: not a reply otpgate
        // built; kept as it was
        let mut padded = reply(&[ma, class]);
        padded.push(0);
        for (id, bytes) in [
            (4, reply(&[class, ma])),
            (5, reply(&[])),
            (6, b"ok".to_vec()),
            (7, padded),
        ] {
            assert_eq!(c.begin(key(id), t), Seen::New);
            c.finish(key(id), &bytes);
            assert_eq!(c.begin(key(id), t), Seen::Verbatim(bytes));
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
        // the newest are still answered; the oldest went to make room
        for i in 32..40u8 {
            assert_eq!(c.begin(key(i), later), verbatim(&[i]));
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
        assert_eq!(c.begin(key(1), after_first), verbatim(b"ok"));
        assert_eq!(c.begin(key(1), retry + Duration::from_secs(31)), Seen::New);
    }
}
