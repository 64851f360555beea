//! The cryptography of a PSKC file (RFC 6030 §6): the key that opens its encrypted values
//! (pre-shared, or derived from a password with PBKDF2), the ciphers those values are encrypted
//! with (AES-CBC, AES key wrap) and the HMACs of their `ValueMAC`s.
//!
//! Algorithms are named by their XML Encryption / XML Signature URIs; only the part after `#`
//! is compared, as vendors' files differ in the namespace part.

use std::cell::OnceCell;

use hmac::{Hmac, KeyInit, Mac};

use crate::secret::Secret;

/// What the admin gave to open a file's encrypted values.
#[derive(Clone, Copy, Debug, Default)]
pub struct PskcKeys<'a> {
    /// `--psk`: a pre-shared AES key (RFC 6030 §6.1).
    pub psk: Option<&'a [u8]>,
    /// `--password`: the key is derived from it (RFC 6030 §6.2).
    pub password: Option<&'a str>,
}

/// PBKDF2 iterations above this are refused: a file is not worth hours of CPU.
const MAX_ITERATIONS: u32 = 10_000_000;

/// The key that opens a container's values.
pub(super) enum Opener {
    /// The file encrypts nothing, or the admin gave no key (then encrypted values are refused).
    Nothing {
        encrypted_with_password: bool,
    },
    PreShared(Secret<Vec<u8>>),
    Derived {
        password: Secret<String>,
        salt: Vec<u8>,
        iterations: u32,
        prf: Prf,
        /// `KeyLength`; without it the first cipher's key length.
        length: Option<usize>,
        key: OnceCell<Secret<Vec<u8>>>,
    },
}

/// The pseudo-random function of PBKDF2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Prf {
    Sha1,
    Sha256,
    Sha512,
}

/// A cipher of an `EncryptionMethod`, with its key length in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cipher {
    AesCbc(usize),
    AesKeyWrap(usize),
}

/// The HMAC of a `MACMethod`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MacAlgorithm {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// The part of an algorithm URI after `#`, lower-cased.
fn fragment(uri: &str) -> String {
    uri.rsplit('#')
        .next()
        .unwrap_or(uri)
        .trim()
        .to_ascii_lowercase()
}

impl Cipher {
    pub(super) fn from_uri(uri: &str) -> Result<Self, String> {
        Ok(match fragment(uri).as_str() {
            "aes128-cbc" => Self::AesCbc(16),
            "aes192-cbc" => Self::AesCbc(24),
            "aes256-cbc" => Self::AesCbc(32),
            "kw-aes128" => Self::AesKeyWrap(16),
            "kw-aes192" => Self::AesKeyWrap(24),
            "kw-aes256" => Self::AesKeyWrap(32),
            _ => {
                return Err(format!(
                    "encryption algorithm {uri:?} is not supported (AES-128/192/256 in CBC mode \
                     or as key wrap are)"
                ));
            }
        })
    }

    fn key_len(self) -> usize {
        match self {
            Self::AesCbc(n) | Self::AesKeyWrap(n) => n,
        }
    }

    /// `AES-256-CBC`, for messages.
    fn name(self) -> String {
        match self {
            Self::AesCbc(n) => format!("AES-{}-CBC", n * 8),
            Self::AesKeyWrap(n) => format!("AES-{} key wrap", n * 8),
        }
    }

    /// Decrypt `data`; `None` when it does not decrypt (wrong key, damaged data).
    fn open(self, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::AesCbc(16) => cbc_open::<aes::Aes128>(key, data),
            Self::AesCbc(24) => cbc_open::<aes::Aes192>(key, data),
            Self::AesCbc(_) => cbc_open::<aes::Aes256>(key, data),
            Self::AesKeyWrap(16) => kw_open::<aes::Aes128>(key, data),
            Self::AesKeyWrap(24) => kw_open::<aes::Aes192>(key, data),
            Self::AesKeyWrap(_) => kw_open::<aes::Aes256>(key, data),
        }
    }
}

/// CBC with the IV in front (XML Encryption), PKCS#7 padding.
fn cbc_open<C>(key: &[u8], data: &[u8]) -> Option<Vec<u8>>
where
    C: aes::cipher::BlockCipherDecrypt + KeyInit,
    cbc::Decryptor<C>: cbc::cipher::KeyIvInit,
{
    use cbc::cipher::block_padding::Pkcs7;
    use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
    let (iv, ct) = data.split_at_checked(16)?;
    cbc::Decryptor::<C>::new_from_slices(key, iv)
        .ok()?
        .decrypt_padded_vec::<Pkcs7>(ct)
        .ok()
}

/// AES key wrap: RFC 3394, or RFC 5649 (with padding) for keys that are not a multiple of 8
/// bytes long, such as a 20-byte HOTP seed; the initial value tells which. Its integrity check
/// tells a wrong key.
fn kw_open<C>(key: &[u8], data: &[u8]) -> Option<Vec<u8>>
where
    C: aes::cipher::BlockCipherDecrypt<BlockSize = aes::cipher::consts::U16>,
    aes_kw::AesKw<C>: KeyInit,
    aes_kw::AesKwp<C>: KeyInit,
{
    let mut out = vec![0u8; data.len()];
    let plain = aes_kw::AesKw::<C>::new_from_slice(key)
        .ok()
        .and_then(|kw| kw.unwrap_key(data, &mut out).ok().map(<[u8]>::len));
    let len = match plain {
        Some(len) => len,
        None => aes_kw::AesKwp::<C>::new_from_slice(key)
            .ok()?
            .unwrap_key(data, &mut out)
            .ok()?
            .len(),
    };
    out.truncate(len);
    Some(out)
}

impl MacAlgorithm {
    /// `None` (no `Algorithm`) is HMAC-SHA1, RFC 6030's mandatory one.
    pub(super) fn from_uri(uri: Option<&str>) -> Result<Self, String> {
        let Some(uri) = uri else {
            return Ok(Self::Sha1);
        };
        Ok(match fragment(uri).as_str() {
            "hmac-sha1" => Self::Sha1,
            "hmac-sha224" => Self::Sha224,
            "hmac-sha256" => Self::Sha256,
            "hmac-sha384" => Self::Sha384,
            "hmac-sha512" => Self::Sha512,
            _ => return Err(format!("MAC algorithm {uri:?} is not supported")),
        })
    }

    /// `mac` is the HMAC of `data` under `key` (compared in constant time).
    pub(super) fn verifies(self, key: &[u8], data: &[u8], mac: &[u8]) -> bool {
        fn check<M: Mac + KeyInit>(key: &[u8], data: &[u8], mac: &[u8]) -> bool {
            let Ok(mut m) = <M as KeyInit>::new_from_slice(key) else {
                return false;
            };
            m.update(data);
            m.verify_slice(mac).is_ok()
        }
        match self {
            Self::Sha1 => check::<Hmac<sha1::Sha1>>(key, data, mac),
            Self::Sha224 => check::<Hmac<sha2::Sha224>>(key, data, mac),
            Self::Sha256 => check::<Hmac<sha2::Sha256>>(key, data, mac),
            Self::Sha384 => check::<Hmac<sha2::Sha384>>(key, data, mac),
            Self::Sha512 => check::<Hmac<sha2::Sha512>>(key, data, mac),
        }
    }
}

impl Prf {
    /// An empty `PRF` is HMAC-SHA1 (PKCS #5's default).
    pub(super) fn from_uri(uri: Option<&str>) -> Result<Self, String> {
        match uri.map(fragment).as_deref() {
            None | Some("") | Some("hmac-sha1") => Ok(Self::Sha1),
            Some("hmac-sha256") => Ok(Self::Sha256),
            Some("hmac-sha512") => Ok(Self::Sha512),
            Some(_) => Err(format!(
                "PBKDF2 PRF {:?} is not supported (HMAC-SHA1, -SHA256 and -SHA512 are)",
                uri.unwrap_or_default()
            )),
        }
    }

    fn derive(self, password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
        use pbkdf2::pbkdf2;
        // HMAC takes keys of any length, so these cannot fail
        let _ = match self {
            Self::Sha1 => pbkdf2::<Hmac<sha1::Sha1>>(password, salt, iterations, out),
            Self::Sha256 => pbkdf2::<Hmac<sha2::Sha256>>(password, salt, iterations, out),
            Self::Sha512 => pbkdf2::<Hmac<sha2::Sha512>>(password, salt, iterations, out),
        };
    }
}

impl Opener {
    /// The opener for a container whose `EncryptionKey` holds a `DerivedKey` with these
    /// PBKDF2 parameters.
    pub(super) fn derived(
        keys: PskcKeys<'_>,
        salt: Vec<u8>,
        iterations: u32,
        prf: Prf,
        length: Option<usize>,
    ) -> Result<Self, String> {
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(format!(
                "PBKDF2 IterationCount {iterations}: 1 to {MAX_ITERATIONS}"
            ));
        }
        if let Some(n) = length
            && !matches!(n, 16 | 24 | 32)
        {
            return Err(format!("PBKDF2 KeyLength {n}: 16, 24 or 32"));
        }
        Ok(match keys.password {
            Some(p) => Self::Derived {
                password: Secret::new(p.to_owned()),
                salt,
                iterations,
                prf,
                length,
                key: OnceCell::new(),
            },
            None => Self::Nothing {
                encrypted_with_password: true,
            },
        })
    }

    /// The opener for a container without a `DerivedKey`: the pre-shared key, if given.
    pub(super) fn pre_shared(keys: PskcKeys<'_>) -> Self {
        match keys.psk {
            Some(k) => Self::PreShared(Secret::new(k.to_vec())),
            None => Self::Nothing {
                encrypted_with_password: false,
            },
        }
    }

    /// Decrypt one value. The errors say what the admin can do about them.
    pub(super) fn open(&self, cipher: Cipher, data: &[u8]) -> Result<Vec<u8>, String> {
        let need = cipher.key_len();
        let (key, what): (&[u8], &str) = match self {
            Self::Nothing {
                encrypted_with_password: true,
            } => {
                return Err(
                    "the file is encrypted with a key derived from a password: give it \
                     (--password or --password-file)"
                        .into(),
                );
            }
            Self::Nothing { .. } => {
                return Err("the secret is encrypted: give the pre-shared key (--psk)".into());
            }
            Self::PreShared(k) => (k.expose().as_slice(), "the pre-shared key"),
            Self::Derived {
                password,
                salt,
                iterations,
                prf,
                length,
                key,
            } => {
                let key = key.get_or_init(|| {
                    let mut out = vec![0u8; length.unwrap_or(need)];
                    prf.derive(password.expose().as_bytes(), salt, *iterations, &mut out);
                    Secret::new(out)
                });
                (key.expose().as_slice(), "the derived key (KeyLength)")
            }
        };
        if key.len() != need {
            return Err(format!(
                "{what} has {} bytes; {} needs {need}",
                key.len(),
                cipher.name()
            ));
        }
        cipher.open(key, data).ok_or_else(|| self.wrong_key())
    }

    /// Why a value that should decrypt or verify did not.
    pub(super) fn wrong_key(&self) -> String {
        match self {
            Self::Derived { .. } => "wrong password, or a damaged file".into(),
            _ => "wrong pre-shared key, or a damaged file".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6070's PBKDF2-HMAC-SHA1 test vectors 1 and 2, and RFC 3394 §4.1's key wrap.
    #[test]
    fn primitives_match_their_rfcs() {
        let mut out = [0u8; 20];
        Prf::Sha1.derive(b"password", b"salt", 1, &mut out);
        assert_eq!(
            data_encoding::HEXLOWER.encode(&out),
            "0c60c80f961f0e71f3a9b524af6012062fe037a6"
        );
        Prf::Sha1.derive(b"password", b"salt", 2, &mut out);
        assert_eq!(
            data_encoding::HEXLOWER.encode(&out),
            "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"
        );
        let hex = |s: &str| data_encoding::HEXUPPER.decode(s.as_bytes()).unwrap();
        let kek = hex("000102030405060708090A0B0C0D0E0F");
        let wrapped = hex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5");
        assert_eq!(
            Cipher::AesKeyWrap(16).open(&kek, &wrapped),
            Some(hex("00112233445566778899AABBCCDDEEFF"))
        );
        let mut damaged = wrapped.clone();
        damaged[3] ^= 1;
        assert_eq!(Cipher::AesKeyWrap(16).open(&kek, &damaged), None);
    }

    #[test]
    fn algorithms_by_uri() {
        assert_eq!(
            Cipher::from_uri("http://www.w3.org/2001/04/xmlenc#aes256-cbc"),
            Ok(Cipher::AesCbc(32))
        );
        assert_eq!(
            Cipher::from_uri("http://www.w3.org/2001/04/xmlenc#kw-aes192"),
            Ok(Cipher::AesKeyWrap(24))
        );
        assert!(
            Cipher::from_uri("http://www.w3.org/2001/04/xmlenc#tripledes-cbc")
                .unwrap_err()
                .contains("not supported")
        );
        assert_eq!(MacAlgorithm::from_uri(None), Ok(MacAlgorithm::Sha1));
        assert_eq!(
            MacAlgorithm::from_uri(Some("http://www.w3.org/2001/04/xmldsig-more#hmac-sha384")),
            Ok(MacAlgorithm::Sha384)
        );
        assert_eq!(Prf::from_uri(Some("")), Ok(Prf::Sha1));
        assert!(Prf::from_uri(Some("urn:x#hmac-md5")).is_err());
    }

    #[test]
    fn keys_of_the_wrong_size_or_missing_are_named() {
        let short = Opener::pre_shared(PskcKeys {
            psk: Some(&[0u8; 16]),
            password: None,
        });
        assert!(
            short
                .open(Cipher::AesCbc(32), &[0u8; 32])
                .unwrap_err()
                .contains("has 16 bytes; AES-256-CBC needs 32")
        );
        let none = Opener::derived(PskcKeys::default(), vec![1; 8], 1000, Prf::Sha1, None).unwrap();
        assert!(
            none.open(Cipher::AesCbc(16), &[0u8; 32])
                .unwrap_err()
                .contains("--password")
        );
        assert!(Opener::derived(PskcKeys::default(), vec![], 0, Prf::Sha1, None).is_err());
        assert!(Opener::derived(PskcKeys::default(), vec![], 1, Prf::Sha1, Some(20)).is_err());
    }
}
