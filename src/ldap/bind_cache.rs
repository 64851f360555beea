//! The bind cache (`bind_cache_seconds`, off by default): applications that bind several times
//! for one user login get the same DN and password accepted again for a short while without a
//! new OTP. Kept in memory only, bounded, and keyed by an HMAC of client, DN and password
//! under a key made at start: the password itself is never stored.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use lru::LruCache;
use sha2::Sha256;

pub struct BindCache {
    window: Duration,
    key: [u8; 32],
    entries: Option<Mutex<LruCache<[u8; 32], Instant>>>,
}

impl BindCache {
    /// `window` zero: no cache.
    pub fn new(window: Duration, size: usize) -> Self {
        let mut key = [0u8; 32];
        // a cache without a random key would be keyed by a plain hash of the password
        let usable = getrandom::fill(&mut key).is_ok();
        let entries = NonZeroUsize::new(size)
            .filter(|_| usable && !window.is_zero())
            .map(|n| Mutex::new(LruCache::new(n)));
        Self {
            window,
            key,
            entries,
        }
    }

    fn tag(&self, client: IpAddr, dn: &str, password: &str) -> [u8; 32] {
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key) else {
            return [0; 32];
        };
        mac.update(client.to_string().as_bytes());
        mac.update(&[0]);
        mac.update(dn.to_ascii_lowercase().as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Was this bind accepted within the window?
    pub fn hit(&self, client: IpAddr, dn: &str, password: &str) -> bool {
        let Some(entries) = &self.entries else {
            return false;
        };
        let tag = self.tag(client, dn, password);
        let Ok(mut map) = entries.lock() else {
            return false;
        };
        match map.get(&tag) {
            Some(at) if at.elapsed() < self.window => true,
            Some(_) => {
                map.pop(&tag);
                false
            }
            None => false,
        }
    }

    pub fn remember(&self, client: IpAddr, dn: &str, password: &str) {
        if let Some(entries) = &self.entries {
            let tag = self.tag(client, dn, password);
            if let Ok(mut map) = entries.lock() {
                map.put(tag, Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_client_dn_and_password_within_the_window_only() {
        let c = BindCache::new(Duration::from_millis(100), 2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(!c.hit(ip, "uid=a", "pw123456"));
        c.remember(ip, "uid=a", "pw123456");
        assert!(c.hit(ip, "UID=A", "pw123456"), "DNs compare without case");
        assert!(!c.hit(ip, "uid=a", "pw654321"), "another password");
        assert!(!c.hit(other, "uid=a", "pw123456"), "another client");
        std::thread::sleep(Duration::from_millis(120));
        assert!(!c.hit(ip, "uid=a", "pw123456"), "expired");
        let off = BindCache::new(Duration::ZERO, 100);
        off.remember(ip, "uid=a", "x");
        assert!(!off.hit(ip, "uid=a", "x"));
    }
}
