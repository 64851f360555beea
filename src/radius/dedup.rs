//! The duplicate-request cache (RFC 5080 §2.2.2).
//!
//! Keyed by (source address and port, identifier, Request Authenticator). While a request is
//! in flight, retransmits are dropped; once it is answered, retransmits get the byte-identical
//! cached reply for the TTL. A NAS retransmit therefore never consumes a second OTP.
//!
//! At 10,000 logins/s a 30 s TTL means 300,000 live entries, so an entry is kept small (40
//! bytes with its key): the key is a 128-bit keyed fingerprint of the request's identity, the
//! time is 32 bits, and a reply is kept as its code and its own attributes only. The rest of a
//! reply is the request's: its header and Message-Authenticator are a function of the request,
//! the attributes and the client's secret, and the Proxy-States are the request's copied
//! (`translate::start_reply`). So the server builds the reply again for a retransmit
//! (`translate::rebuild_reply`), byte for byte the first one; a bare Accept keeps no bytes at
//! all. A reply of another shape is kept as it was.
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

/// A request and what became of it, with its arrival (the TTL counts from there). 24 bytes:
/// a table of 100,000 and their keys is 5 MiB (whole replies behind a pointer took 64-byte
/// entries and a reply's every byte).
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
        let kept = Kept::of(reply);
        let Ok(mut e) = self.entries.lock() else {
            return;
        };
        if let Some(slot) = e.slot_mut(&fp) {
            *slot = kept.arrived(slot.at());
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

    /// A reply is kept as its code and its own attributes, for the server to build again; a
    /// reply of another shape as it was.
    #[test]
    fn replies_are_kept_as_their_code_and_own_attributes() {
        assert_eq!(size_of::<(Fingerprint, Slot)>(), 40);
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
        // the newest generation and the one before it are still answered; the oldest went to
        // make room
        for i in 24..40u8 {
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
