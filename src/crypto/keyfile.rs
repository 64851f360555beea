//! The master key file and AES-256-GCM sealing of token secrets.
//!
//! Layout of a sealed value: 12-byte random nonce ‖ ciphertext ‖ 16-byte tag. The associated
//! data is the token serial, so swapping sealed keys between rows fails to open.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::secret::Secret;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path}: expected {KEY_LEN} bytes as 64 hex characters")]
    Malformed { path: PathBuf },
    #[error(
        "key file {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("key file {path} already exists; refusing to overwrite it")]
    Exists { path: PathBuf },
    #[error("the operating system's random source failed")]
    Random,
    #[error("sealed secret is truncated")]
    Truncated,
    #[error(
        "sealed secret does not open with this key file (wrong key file, or moved between tokens)"
    )]
    WrongKey,
}

/// The 32-byte key that seals token secrets.
pub struct MasterKey {
    cipher: Aes256Gcm,
    /// The key that signs API tokens (`/auth`), derived from the same file so that every
    /// node with it accepts the others' tokens; never the sealing key itself.
    api_signing: Secret<Vec<u8>>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(********)")
    }
}

impl MasterKey {
    /// Read the key file; refuse files that group or others can read.
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let io = |source| SealError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = fs::metadata(path).map_err(io)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SealError::TooOpen {
                path: path.to_owned(),
                mode,
            });
        }
        let text = Secret::new(fs::read_to_string(path).map_err(io)?);
        let bytes = Secret::new(
            data_encoding::HEXLOWER_PERMISSIVE
                .decode(text.expose().trim().as_bytes())
                .map_err(|_| SealError::Malformed {
                    path: path.to_owned(),
                })?,
        );
        Self::from_bytes(bytes.expose()).ok_or(SealError::Malformed {
            path: path.to_owned(),
        })
    }

    /// Create a new random key file with mode 0600. Never overwrites.
    pub fn create(path: &Path) -> Result<Self, SealError> {
        let mut raw = [0u8; KEY_LEN];
        getrandom::fill(&mut raw).map_err(|_| SealError::Random)?;
        let key = Secret::new(raw.to_vec());
        raw.fill(0);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|source| SealError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::AlreadyExists {
                    SealError::Exists {
                        path: path.to_owned(),
                    }
                } else {
                    SealError::Io {
                        path: path.to_owned(),
                        source,
                    }
                }
            })?;
        let hex = Secret::new(data_encoding::HEXLOWER.encode(key.expose()));
        file.write_all(format!("{}\n", hex.expose()).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|source| SealError::Io {
                path: path.to_owned(),
                source,
            })?;
        Self::from_bytes(key.expose()).ok_or(SealError::Malformed {
            path: path.to_owned(),
        })
    }

    /// A key from raw bytes (tests, and the two constructors above).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != KEY_LEN {
            return None;
        }
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(bytes).ok()?;
        mac.update(b"otpgate API token signing key");
        let api_signing = Secret::new(mac.finalize().into_bytes().to_vec());
        Aes256Gcm::new_from_slice(bytes).ok().map(|cipher| Self {
            cipher,
            api_signing,
        })
    }

    /// The key that signs and checks API tokens.
    pub fn api_signing_key(&self) -> &[u8] {
        self.api_signing.expose()
    }

    /// Seal `plaintext` for the token `serial`.
    pub fn seal(&self, serial: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce_bytes = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce_bytes).map_err(|_| SealError::Random)?;
        let nonce = Nonce::from(nonce_bytes);
        let ct = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: serial.as_bytes(),
                },
            )
            .map_err(|_| SealError::WrongKey)?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Open a value sealed for `serial`.
    pub fn open(&self, serial: &str, sealed: &[u8]) -> Result<Secret<Vec<u8>>, SealError> {
        let (nonce, ct) = sealed
            .split_at_checked(NONCE_LEN)
            .ok_or(SealError::Truncated)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Truncated)?;
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: serial.as_bytes(),
                },
            )
            .map(Secret::new)
            .map_err(|_| SealError::WrongKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_bound_to_serial() {
        let key = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        let sealed = key.seal("HOTP1", b"12345678901234567890").unwrap();
        assert_eq!(
            key.open("HOTP1", &sealed).unwrap().expose(),
            b"12345678901234567890"
        );
        assert!(matches!(
            key.open("HOTP2", &sealed),
            Err(SealError::WrongKey)
        ));
        let other = MasterKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(matches!(
            other.open("HOTP1", &sealed),
            Err(SealError::WrongKey)
        ));
        assert!(matches!(
            key.open("HOTP1", &sealed[..5]),
            Err(SealError::Truncated)
        ));
    }

    #[test]
    fn key_file_is_created_0600_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/secret.key");
        let created = MasterKey::create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = MasterKey::load(&path).unwrap();
        let sealed = created.seal("S", b"x").unwrap();
        assert_eq!(loaded.open("S", &sealed).unwrap().expose(), b"x");
        assert!(matches!(
            MasterKey::create(&path),
            Err(SealError::Exists { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            MasterKey::load(&path),
            Err(SealError::TooOpen { .. })
        ));
    }
}
