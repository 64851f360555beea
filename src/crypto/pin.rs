//! argon2id hashing for token PINs and user-store passwords.
//!
//! Hashes are PHC strings, so the parameters travel with each hash and can be raised later
//! without invalidating old PINs. Each verification holds `memory_kib` of RAM for a few
//! milliseconds of CPU, so it runs in `spawn_blocking` behind a semaphore: a burst of logins
//! queues instead of exhausting memory or starving the RADIUS workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("the PIN hashing worker stopped")]
    Worker,
}

/// argon2id cost settings (`[pin]` in the configuration). Defaults: OWASP's 19 MiB, 2 passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Concurrent hash computations (memory cap = this × memory_kib).
    pub max_concurrent: usize,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
            max_concurrent: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

impl Argon2Settings {
    fn params(&self) -> Result<Params, PinError> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| PinError::Params(e.to_string()))
    }

    /// Check the settings without hashing anything (config validation).
    pub fn validate(&self) -> Result<(), PinError> {
        self.params().map(|_| ())
    }
}

/// Hashes and verifies PINs with a concurrency cap. Cheap to clone.
#[derive(Clone)]
pub struct PinHasher {
    settings: Argon2Settings,
    permits: Arc<Semaphore>,
    verifications: Arc<AtomicU64>,
    /// Reused argon2 working memory, one buffer per permit: allocating 19 MiB per check let
    /// glibc keep hundreds of MiB of freed blocks under load.
    buffers: Arc<std::sync::Mutex<Vec<Vec<argon2::Block>>>>,
}

impl std::fmt::Debug for PinHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinHasher")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PinHasher {
    pub fn new(settings: Argon2Settings) -> Self {
        Self {
            settings,
            permits: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
            verifications: Arc::new(AtomicU64::new(0)),
            buffers: Arc::default(),
        }
    }

    /// Hash synchronously (CLI, enrollment). Blocks the calling thread for the hash time.
    pub fn hash_blocking(&self, pin: &str) -> Result<String, PinError> {
        hash_with(&self.settings, pin)
    }

    /// Hash off the async workers.
    pub async fn hash(&self, pin: String) -> Result<String, PinError> {
        let settings = self.settings;
        let _permit = self.permits.acquire().await.map_err(|_| PinError::Worker)?;
        let pin = crate::secret::Secret::new(pin);
        tokio::task::spawn_blocking(move || hash_with(&settings, pin.expose()))
            .await
            .map_err(|_| PinError::Worker)?
    }

    /// Verify `candidate` against a PHC string off the async workers. A malformed hash is
    /// simply "no match" (logged by the caller through the decision trace).
    pub async fn verify(&self, candidate: &str, phc: &str) -> Result<bool, PinError> {
        let Ok(_permit) = self.permits.acquire().await else {
            return Err(PinError::Worker);
        };
        self.verifications.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("otpgate_argon2_verifications_total").increment(1);
        let candidate = crate::secret::Secret::new(candidate.to_owned());
        let phc = phc.to_owned();
        let pool = self.buffers.clone();
        let mut buffer = pool
            .lock()
            .ok()
            .and_then(|mut b| b.pop())
            .unwrap_or_default();
        let (ok, buffer) = tokio::task::spawn_blocking(move || {
            let ok = verify_in(&mut buffer, candidate.expose(), &phc);
            (ok, buffer)
        })
        .await
        .map_err(|_| PinError::Worker)?;
        if let Ok(mut b) = pool.lock() {
            b.push(buffer);
        }
        Ok(ok)
    }

    /// How many argon2 verifications this hasher has run (tests and benchmarks check "one per
    /// successful login").
    pub fn verification_count(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }
}

fn hash_with(settings: &Argon2Settings, pin: &str) -> Result<String, PinError> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, settings.params()?);
    argon
        .hash_password(pin.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PinError::Hash(e.to_string()))
}

/// Verify a PHC string with caller-provided argon2 memory (grown as the parameters need).
fn verify_in(buffer: &mut Vec<argon2::Block>, candidate: &str, phc: &str) -> bool {
    use argon2::password_hash::phc::PasswordHash;
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let (Some(salt), Some(hash)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let blocks = params.block_count();
    if buffer.len() < blocks {
        buffer.resize(blocks, argon2::Block::default());
    }
    let expected = hash.as_bytes();
    let mut out = vec![0u8; expected.len()];
    let Some(memory) = buffer.get_mut(..blocks) else {
        return false;
    };
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(candidate.as_bytes(), salt, &mut out, memory)
        .is_ok()
        && crate::secret::ct_eq(&out, expected)
}

/// Verify without the semaphore (the CLI and tests).
pub fn verify_blocking(candidate: &str, phc: &str) -> bool {
    Argon2::default()
        .verify_password(candidate.as_bytes(), phc)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PinHasher {
        PinHasher::new(Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 2,
        })
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let h = cheap();
        let phc = h.hash("pin".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(h.verify("pin", &phc).await.unwrap());
        assert!(!h.verify("pim", &phc).await.unwrap());
        assert!(!h.verify("pin", "not a phc string").await.unwrap());
        assert_eq!(h.verification_count(), 3);
        // the buffer path agrees with the crate's own verifier, also for other parameters
        let other = PinHasher::new(Argon2Settings {
            memory_kib: 256,
            iterations: 2,
            parallelism: 2,
            max_concurrent: 1,
        });
        let phc2 = other.hash("pin".into()).await.unwrap();
        assert!(h.verify("pin", &phc2).await.unwrap());
        assert!(verify_blocking("pin", &phc2));
        assert!(!h.verify("pn", &phc2).await.unwrap());
    }

    #[test]
    fn owasp_defaults() {
        let s = Argon2Settings::default();
        assert_eq!((s.memory_kib, s.iterations, s.parallelism), (19456, 2, 1));
        assert!(s.validate().is_ok());
        let bad = Argon2Settings { memory_kib: 1, ..s };
        assert!(bad.validate().is_err());
    }
}
