//! Password hashes as user databases keep them: argon2 (PHC), bcrypt (`$2a$`/`$2b$`/`$2y$`),
//! SHA-256/512 crypt (`$5$`/`$6$`) and LDAP's salted SHA (`{SSHA}`, `{SSHA256}`,
//! `{SSHA512}`). Recognised by their prefix; anything else never matches.

use data_encoding::BASE64;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

use crate::secret::ct_eq;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Argon2,
    Bcrypt,
    ShaCrypt,
    Ssha1,
    Ssha256,
    Ssha512,
}

impl Scheme {
    pub fn of(hash: &str) -> Option<Self> {
        let upper_prefix = |p: &str| {
            hash.get(..p.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(p))
        };
        if hash.starts_with("$argon2") {
            Some(Self::Argon2)
        } else if ["$2a$", "$2b$", "$2y$", "$2x$"]
            .iter()
            .any(|p| hash.starts_with(p))
        {
            Some(Self::Bcrypt)
        } else if hash.starts_with("$5$") || hash.starts_with("$6$") {
            Some(Self::ShaCrypt)
        } else if upper_prefix("{SSHA512}") {
            Some(Self::Ssha512)
        } else if upper_prefix("{SSHA256}") {
            Some(Self::Ssha256)
        } else if upper_prefix("{SSHA}") {
            Some(Self::Ssha1)
        } else {
            None
        }
    }
}

/// Check a password against a hash of any scheme but argon2 (which runs on the PIN hasher's
/// bounded workers). CPU-heavy for bcrypt and crypt: call it off the async threads.
pub fn verify_blocking(password: &str, hash: &str) -> bool {
    match Scheme::of(hash) {
        Some(Scheme::Bcrypt) => bcrypt::verify(password, hash).unwrap_or(false),
        Some(Scheme::ShaCrypt) => {
            use sha_crypt::{PasswordVerifier, ShaCrypt};
            ShaCrypt::default()
                .verify_password(password.as_bytes(), hash)
                .is_ok()
        }
        Some(Scheme::Ssha1) => ssha::<Sha1>(password, &hash[6..]),
        Some(Scheme::Ssha256) => ssha::<Sha256>(password, &hash[9..]),
        Some(Scheme::Ssha512) => ssha::<Sha512>(password, &hash[9..]),
        Some(Scheme::Argon2) | None => false,
    }
}

/// `base64(digest(password ‖ salt) ‖ salt)`.
fn ssha<D: Digest>(password: &str, encoded: &str) -> bool {
    let Ok(raw) = BASE64.decode(encoded.trim().as_bytes()) else {
        return false;
    };
    let n = <D as Digest>::output_size();
    if raw.len() <= n {
        return false;
    }
    let (digest, salt) = raw.split_at(n);
    let mut d = D::new();
    d.update(password.as_bytes());
    d.update(salt);
    ct_eq(&d.finalize(), digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known vectors made by other implementations.
    #[test]
    fn known_vectors() {
        let rows: &[(&str, &str, Scheme)] = &[
            // SHA-crypt's specification (Drepper), "Hello world!"
            (
                "Hello world!",
                "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
                Scheme::ShaCrypt,
            ),
            (
                "Hello world!",
                "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
                Scheme::ShaCrypt,
            ),
            // glibc crypt(3) with explicit rounds
            (
                "s3cret",
                "$6$rounds=10000$abcdefgh$N7ep5QQ1ONfIOIxr27QI7.Wh2ZoDSrWeKxVzO21iuxWziusVE2g5ZgTCP8E3c9M9PGc9nQ7ZbO4W83SW9wB.R.",
                Scheme::ShaCrypt,
            ),
            // OpenLDAP's slappasswd -h {SSHA} -s secret
            (
                "secret",
                "{SSHA}r0Dp1i54Doa9rlFhABywwaxPDKp8kYoC",
                Scheme::Ssha1,
            ),
            (
                "secret",
                "{SSHA256}/zFqo9DLGVPusNSYwg0mkPZAMnW4hfZhlgkRrlU/3kp6M4YVGPERLQ==",
                Scheme::Ssha256,
            ),
            (
                "secret",
                "{SSHA512}4NIox/l/S7iXa4T534viUIUshImccXMIdQwyh1U2tj+Fk4thBovEI3VC8Fexw7yKfmS5iF41fw0RzUpXvgrt/ZFXiwXW5jyH",
                Scheme::Ssha512,
            ),
            // Python's bcrypt
            (
                "secret",
                "$2b$05$0iARCWOcDx4sUlrWnWcOWuPkHcC0OUpPtnIr25HfLvPn4KrUBrzvm",
                Scheme::Bcrypt,
            ),
        ];
        for (password, hash, scheme) in rows {
            assert_eq!(Scheme::of(hash), Some(*scheme), "{hash}");
            assert!(verify_blocking(password, hash), "{hash}");
            assert!(!verify_blocking(&password.to_uppercase(), hash), "{hash}");
        }
    }
    #[test]
    fn round_trips_of_every_scheme() {
        let bc = bcrypt::hash("s3cret", 4).unwrap();
        assert!(verify_blocking("s3cret", &bc));
        assert!(!verify_blocking("s3cret!", &bc));
        // SSHA built here from its definition, so the prefix and the salt split are tested
        for (prefix, n) in [("{SSHA}", 0), ("{SSHA256}", 1), ("{ssha512}", 2)] {
            let salt = b"NaCl1234";
            let mut raw = match n {
                0 => Sha1::new()
                    .chain_update(b"s3cret")
                    .chain_update(salt)
                    .finalize()
                    .to_vec(),
                1 => Sha256::new()
                    .chain_update(b"s3cret")
                    .chain_update(salt)
                    .finalize()
                    .to_vec(),
                _ => Sha512::new()
                    .chain_update(b"s3cret")
                    .chain_update(salt)
                    .finalize()
                    .to_vec(),
            };
            raw.extend_from_slice(salt);
            let h = format!("{prefix}{}", BASE64.encode(&raw));
            assert!(verify_blocking("s3cret", &h), "{h}");
            assert!(!verify_blocking("s3cret ", &h), "{h}");
        }
        assert!(!verify_blocking("x", "plain-text"));
        assert!(!verify_blocking("x", "{SSHA}!!!"));
        assert_eq!(
            Scheme::of("$argon2id$v=19$m=19456,t=2,p=1$x$y"),
            Some(Scheme::Argon2)
        );
    }
}
