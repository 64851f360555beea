//! privacyIDEA's encryption of token secrets (its default security module), for reading its
//! database: the encKey file holds three AES-256 keys of 32 bytes (token, config, value); a
//! token's seed is stored as the hex of the seed, AES-256-CBC-encrypted with the token key under
//! the row's IV with PKCS#7 padding — or, from old versions, hexed once more, ended with
//! `\x01\x02` and zero-padded. An encrypted token PIN is `@@` and then `iv:cipher` in hex; a
//! resolver's password is `iv:cipher` under the config key.

use crate::secret::Secret;

/// Why a value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PiCryptoError {
    #[error("the encKey file has {0} bytes; privacyIDEA's has 96 (three 32-byte keys)")]
    KeyFile(usize),
    #[error("{0} is not hex")]
    Hex(&'static str),
    #[error("the value does not open with this encKey (another privacyIDEA's key, or damaged)")]
    Decrypt,
}

/// The key slots of an encKey file.
pub struct EncKey {
    token: Secret<Vec<u8>>,
    config: Secret<Vec<u8>>,
}

impl std::fmt::Debug for EncKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncKey(********)")
    }
}

impl EncKey {
    /// From the file's bytes (privacyIDEA writes 96 raw bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PiCryptoError> {
        if bytes.len() != 96 {
            return Err(PiCryptoError::KeyFile(bytes.len()));
        }
        Ok(Self {
            token: Secret::new(bytes[..32].to_vec()),
            config: Secret::new(bytes[32..64].to_vec()),
        })
    }

    /// A token's seed from its `key_enc` and `key_iv` columns.
    pub fn token_seed(
        &self,
        key_enc: &str,
        key_iv: &str,
    ) -> Result<Secret<Vec<u8>>, PiCryptoError> {
        let ct = hex(key_enc, "key_enc")?;
        let iv = hex(key_iv, "key_iv")?;
        let hex_seed = Secret::new(open(&self.token, &ct, &iv)?);
        data_encoding::HEXLOWER_PERMISSIVE
            .decode(hex_seed.expose())
            .map(Secret::new)
            .map_err(|_| PiCryptoError::Decrypt)
    }

    /// A token PIN stored encrypted (`pin_hash` = `@@iv:cipher`, privacyIDEA's `encryptpin`).
    pub fn token_pin(&self, stored: &str) -> Result<Secret<String>, PiCryptoError> {
        let stored = stored.strip_prefix("@@").unwrap_or(stored);
        open_text(&self.token, stored, "the encrypted PIN")
    }

    /// A password in a resolver's configuration (`iv:cipher`, privacyIDEA's `encryptPassword`).
    pub fn config_password(&self, stored: &str) -> Result<Secret<String>, PiCryptoError> {
        open_text(&self.config, stored, "the encrypted password")
    }
}

fn open_text(
    key: &Secret<Vec<u8>>,
    stored: &str,
    what: &'static str,
) -> Result<Secret<String>, PiCryptoError> {
    let (iv, ct) = stored.split_once(':').ok_or(PiCryptoError::Hex(what))?;
    let plain = open(key, &hex(ct, what)?, &hex(iv, "the IV")?)?;
    String::from_utf8(plain)
        .map(Secret::new)
        .map_err(|_| PiCryptoError::Decrypt)
}

/// AES-256-CBC; PKCS#7, else the legacy hex padding.
fn open(key: &Secret<Vec<u8>>, ct: &[u8], iv: &[u8]) -> Result<Vec<u8>, PiCryptoError> {
    use cbc::cipher::block_padding::{NoPadding, Pkcs7};
    use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
    let dec = || {
        cbc::Decryptor::<aes::Aes256>::new_from_slices(key.expose(), iv)
            .map_err(|_| PiCryptoError::Decrypt)
    };
    if let Ok(plain) = dec()?.decrypt_padded_vec::<Pkcs7>(ct) {
        return Ok(plain);
    }
    let raw = dec()?
        .decrypt_padded_vec::<NoPadding>(ct)
        .map_err(|_| PiCryptoError::Decrypt)?;
    let end = raw
        .windows(2)
        .rposition(|w| w == b"\x01\x02")
        .ok_or(PiCryptoError::Decrypt)?;
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(&raw[..end])
        .map_err(|_| PiCryptoError::Decrypt)
}

fn hex(text: &str, what: &'static str) -> Result<Vec<u8>, PiCryptoError> {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(text.trim().as_bytes())
        .map_err(|_| PiCryptoError::Hex(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by privacyIDEA 3.14's own DefaultSecurityModule (PyPI) with this encKey: encrypt()
    // of the RFC 4226 seed's hex under IV 00..0f, encrypt_pin("1234"); the legacy value by hand
    // in the old format, which privacyIDEA's decrypt() opens to the same seed;
    // encrypt_password("bind pw").
    const ENCKEY: &str = "82d5fd369cf5adecc76c85cbc3d7b7ccae12e8774e84390ea6bcdd897a12799415fc1f61b4709dca6977fc0fe5cb6d4a03e46427480cc568babbe8ee0d87d60842139ce1d5bfaeeebb0a565a8aa8b8723c50703525e1de845889a8cc3d4e5368";
    const SEED: &[u8] = b"12345678901234567890";

    fn key() -> EncKey {
        EncKey::from_bytes(&hex(ENCKEY, "k").unwrap()).unwrap()
    }

    #[test]
    fn seeds_and_pins_open_as_privacyidea_wrote_them() {
        let k = key();
        let seed = k
            .token_seed(
                "d3e163b376f3e032fe4c67c3e07d3b15597c2ef6d3d58a16c973f6fe7368eb8c2b65a728d176cb8bd9366e9d9c4eaac0",
                "000102030405060708090a0b0c0d0e0f",
            )
            .unwrap();
        assert_eq!(seed.expose(), SEED);
        let legacy = k
            .token_seed(
                "8941997908ead298476848ccfd2555e740f939c901bcbf39eb4df306c9569fb452d8f38027ba4013e0cd56f7b1ad251e7ee675d29ea26e7e9c2147428166edac3e49fb6349a58b5a4e5471e6e9765bf182b393dc829a381e0079e4fba43d249c",
                "101112131415161718191a1b1c1d1e1f",
            )
            .unwrap();
        assert_eq!(legacy.expose(), SEED, "the old padding");
        let pin = k
            .token_pin("@@dd30468bdf50429b2609cf6f64ad4d12:f7549edd25eb978d75a0a53f58cbd824")
            .unwrap();
        assert_eq!(pin.expose(), "1234");
        let pw = k
            .config_password("f44d1d8176b29e8a648b9e52afb56d94:9a78dfccc9f1045f027d65d4adc39b6b")
            .unwrap();
        assert_eq!(pw.expose(), "bind pw");
    }

    #[test]
    fn another_key_and_bad_values_are_errors() {
        let mut other = hex(ENCKEY, "k").unwrap();
        other[0] ^= 1;
        let other = EncKey::from_bytes(&other).unwrap();
        assert!(
            other
                .token_pin("@@dd30468bdf50429b2609cf6f64ad4d12:f7549edd25eb978d75a0a53f58cbd824")
                .is_err()
        );
        assert_eq!(
            EncKey::from_bytes(&[0; 32]).unwrap_err(),
            PiCryptoError::KeyFile(32)
        );
        assert!(key().token_seed("zz", "00").is_err());
        assert!(key().token_pin("@@nocolon").is_err());
    }
}
