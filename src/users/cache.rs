//! The user cache of a directory resolver: found users for a time, at most so many.
//!
//! Only lookups are cached (attributes and groups); a password is always checked against the
//! directory itself. Logins are keyed case-insensitively, as directories match them.

use std::num::NonZeroUsize;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use lru::LruCache;

use super::UserRecord;

/// Lower-cased login → when it was found, and the user.
type Entries = LruCache<String, (Instant, Arc<UserRecord>)>;

#[derive(Debug)]
pub struct UserCache {
    ttl: Duration,
    entries: Option<RwLock<Entries>>,
}

impl UserCache {
    /// `ttl` zero or `size` zero: no cache.
    pub fn new(ttl: Duration, size: usize) -> Self {
        let entries = NonZeroUsize::new(size)
            .filter(|_| !ttl.is_zero())
            .map(|n| RwLock::new(LruCache::new(n)));
        Self { ttl, entries }
    }

    /// A hit takes the lock shared (`peek` leaves the order alone): every login of a busy
    /// node reads here, so readers must not queue behind each other. Eviction is then by
    /// insertion, which the TTL bounds anyway.
    pub fn get(&self, login: &str) -> Option<Arc<UserRecord>> {
        let key = login.to_lowercase();
        {
            let map = self.entries.as_ref()?.read().ok()?;
            match map.peek(&key) {
                Some((at, record)) if at.elapsed() < self.ttl => return Some(record.clone()),
                Some(_) => {}
                None => return None,
            }
        }
        if let Some(mut map) = self.entries.as_ref().and_then(|m| m.write().ok()) {
            map.pop(&key);
        }
        None
    }

    pub fn put(&self, login: &str, record: Arc<UserRecord>) {
        if let Some(mut map) = self.entries.as_ref().and_then(|m| m.write().ok()) {
            map.put(login.to_lowercase(), (Instant::now(), record));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.entries
            .as_ref()
            .and_then(|m| m.read().ok())
            .map_or(0, |m| m.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::UserDetails;

    fn user(login: &str) -> Arc<UserRecord> {
        Arc::new(UserRecord::new(login, None, UserDetails::default()))
    }

    #[test]
    fn bounded_expiring_and_case_insensitive() {
        let c = UserCache::new(Duration::from_millis(50), 2);
        c.put("Alice", user("alice"));
        c.put("bob", user("bob"));
        assert!(c.get("ALICE").is_some());
        c.put("carol", user("carol"));
        assert_eq!(c.len(), 2);
        assert!(c.get("alice").is_none(), "the oldest entry goes");
        assert!(c.get("bob").is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.get("alice").is_none(), "expired");
        let off = UserCache::new(Duration::ZERO, 100);
        off.put("alice", user("alice"));
        assert!(off.get("alice").is_none());
    }
}
