//! Secrets at rest and PIN hashing.
//!
//! - [`keyfile`]: the 32-byte master key in a 0600 file and AES-256-GCM sealing of token keys,
//!   with the token serial as associated data so a sealed key cannot be moved to another token.
//! - [`tls`]: TLS server configurations from PEM certificate and key files.
//! - [`pin`]: argon2id PHC hashes for token PINs and user-store passwords, verified off the
//!   async workers with a cap on concurrent hashes (each one holds ~19 MiB).

pub mod keyfile;
pub mod pin;
pub mod tls;

pub use keyfile::{MasterKey, SealError};
pub use pin::{Argon2Settings, PinError, PinHasher};

/// Fill a buffer from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), getrandom::Error> {
    getrandom::fill(buf)
}

/// A random string of `len` characters from `alphabet` (rejection-sampled, no modulo bias).
pub fn random_string(len: usize, alphabet: &[u8]) -> Result<String, getrandom::Error> {
    let n = alphabet.len().clamp(1, 256);
    let limit = 256 - (256 % n);
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf)?;
        for &b in &buf {
            if out.len() == len {
                break;
            }
            if usize::from(b) < limit
                && let Some(&c) = alphabet.get(usize::from(b) % n)
            {
                out.push(char::from(c));
            }
        }
    }
    Ok(out)
}

pub const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
pub const DIGITS: &[u8] = b"0123456789";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_strings_use_only_the_alphabet() {
        let s = random_string(200, DIGITS).unwrap();
        assert_eq!(s.len(), 200);
        assert!(s.bytes().all(|b| b.is_ascii_digit()));
        assert_ne!(s, random_string(200, DIGITS).unwrap());
    }
}
