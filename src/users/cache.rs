//! The user cache of a directory resolver: found users for a time, at most so many.
//!
//! Only lookups are cached (attributes and groups); a password is always checked against the
//! directory itself. Logins are keyed case-insensitively, as directories match them.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;

use super::UserRecord;

/// Lower-cased login → when it was found, and the user.
type Entries = LruCache<String, (Instant, Arc<UserRecord>)>;

#[derive(Debug)]
pub struct UserCache {
    ttl: Duration,
    entries: Option<Mutex<Entries>>,
}

impl UserCache {
    /// `ttl` zero or `size` zero: no cache.
    pub fn new(ttl: Duration, size: usize) -> Self {
        let entries = NonZeroUsize::new(size)
            .filter(|_| !ttl.is_zero())
            .map(|n| Mutex::new(LruCache::new(n)));
        Self { ttl, entries }
    }

    pub fn get(&self, login: &str) -> Option<Arc<UserRecord>> {
        let mut map = self.entries.as_ref()?.lock().ok()?;
        let key = login.to_lowercase();
        match map.get(&key) {
            Some((at, record)) if at.elapsed() < self.ttl => Some(record.clone()),
            Some(_) => {
                map.pop(&key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, login: &str, record: Arc<UserRecord>) {
        if let Some(mut map) = self.entries.as_ref().and_then(|m| m.lock().ok()) {
            map.put(login.to_lowercase(), (Instant::now(), record));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.entries
            .as_ref()
            .and_then(|m| m.lock().ok())
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
        assert!(c.get("bob").is_none(), "the least recently used entry goes");
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.get("alice").is_none(), "expired");
        let off = UserCache::new(Duration::ZERO, 100);
        off.put("alice", user("alice"));
        assert!(off.get("alice").is_none());
    }
}
