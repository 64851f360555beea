//! Pure HOTP (RFC 4226) and TOTP (RFC 6238) math.
//!
//! No state, no clock, no store: counters and time steps are arguments. The window and replay
//! rules of privacyIDEA (spec §4.7–4.8) live in [`super::hotp`] and [`super::totp`].

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use crate::secret::ct_eq;

/// The HMAC hash of an OATH token (`hashlib` in privacyIDEA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashLib {
    #[default]
    Sha1,
    Sha256,
    Sha512,
}

impl HashLib {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sha1" => Some(Self::Sha1),
            "sha256" => Some(Self::Sha256),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

impl std::fmt::Display for HashLib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An HMAC keyed once, so a window of counters costs one key schedule.
#[derive(Clone)]
pub enum OtpGenerator {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

/// Supported OTP lengths.
pub const MIN_DIGITS: usize = 6;
pub const MAX_DIGITS: usize = 10;

/// A formatted OTP value on the stack (no allocation on the hot path).
#[derive(Clone, Copy)]
pub struct OtpValue {
    buf: [u8; MAX_DIGITS],
    len: usize,
}

impl OtpValue {
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// Constant-time comparison with what the user typed.
    pub fn matches(&self, typed: &[u8]) -> bool {
        ct_eq(self.as_bytes(), typed)
    }
}

impl std::fmt::Debug for OtpValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtpValue(******)")
    }
}

impl OtpGenerator {
    pub fn new(key: &[u8], hash: HashLib) -> Self {
        // HMAC accepts keys of any length, so these constructors cannot fail; the fallback
        // keeps the function total without a panic path.
        match hash {
            HashLib::Sha1 => Hmac::<Sha1>::new_from_slice(key).map(Self::Sha1),
            HashLib::Sha256 => Hmac::<Sha256>::new_from_slice(key).map(Self::Sha256),
            HashLib::Sha512 => Hmac::<Sha512>::new_from_slice(key).map(Self::Sha512),
        }
        .unwrap_or_else(|_| Self::Sha1(<Hmac<Sha1> as KeyInit>::new(&Default::default())))
    }

    /// The truncated HOTP value for `counter` with `digits` digits (RFC 4226 §5.3).
    pub fn value(&self, counter: u64, digits: usize) -> OtpValue {
        let msg = counter.to_be_bytes();
        let code = match self {
            Self::Sha1(mac) => truncate(&mac.clone().chain_update(msg).finalize().into_bytes()),
            Self::Sha256(mac) => truncate(&mac.clone().chain_update(msg).finalize().into_bytes()),
            Self::Sha512(mac) => truncate(&mac.clone().chain_update(msg).finalize().into_bytes()),
        };
        let digits = digits.clamp(1, MAX_DIGITS);
        let modulus = 10u64.pow(digits as u32);
        let mut n = u64::from(code) % modulus;
        let mut buf = [b'0'; MAX_DIGITS];
        for slot in buf.iter_mut().take(digits).rev() {
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
        }
        OtpValue { buf, len: digits }
    }
}

/// Dynamic truncation (RFC 4226 §5.3): 31 bits starting at the offset named by the low nibble
/// of the last byte.
fn truncate(mac: &[u8]) -> u32 {
    let offset = mac.last().map_or(0, |b| usize::from(b & 0x0f));
    match mac.get(offset..offset + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a & 0x7f, b, c, d]),
        _ => 0,
    }
}

/// HOTP value as a string (enrollment output, test helpers, email/SMS OTPs).
pub fn hotp(key: &[u8], counter: u64, digits: usize, hash: HashLib) -> String {
    OtpGenerator::new(key, hash)
        .value(counter, digits)
        .as_str()
        .to_owned()
}

/// The TOTP time-step counter for unix time `t` (RFC 6238 §4.2, T0 = 0).
pub fn time_counter(unix_seconds: i64, step: i64) -> i64 {
    if step <= 0 {
        return 0;
    }
    unix_seconds.div_euclid(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC4226_KEY: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc4226_appendix_d() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(hotp(RFC4226_KEY, counter as u64, 6, HashLib::Sha1), *want);
        }
        // the spec's extra values beyond the RFC table
        assert_eq!(hotp(RFC4226_KEY, 10, 6, HashLib::Sha1), "403154");
        assert_eq!(hotp(RFC4226_KEY, 13, 6, HashLib::Sha1), "736127");
    }

    #[test]
    fn rfc6238_appendix_b() {
        let k1 = b"12345678901234567890".as_slice();
        let k256 = b"12345678901234567890123456789012".as_slice();
        let k512 = b"1234567890123456789012345678901234567890123456789012345678901234".as_slice();
        let table: [(i64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, s1, s256, s512) in table {
            let c = time_counter(t, 30) as u64;
            assert_eq!(hotp(k1, c, 8, HashLib::Sha1), s1, "sha1 t={t}");
            assert_eq!(hotp(k256, c, 8, HashLib::Sha256), s256, "sha256 t={t}");
            assert_eq!(hotp(k512, c, 8, HashLib::Sha512), s512, "sha512 t={t}");
        }
    }

    #[test]
    fn agrees_with_totp_rs_oracle() {
        use totp_rs::{Algorithm, Builder};
        let key = b"a 20 byte secret key".to_vec();
        for (alg, ours) in [
            (Algorithm::SHA1, HashLib::Sha1),
            (Algorithm::SHA256, HashLib::Sha256),
            (Algorithm::SHA512, HashLib::Sha512),
        ] {
            let oracle = Builder::new()
                .with_algorithm(alg)
                .with_digits(6)
                .with_step_duration(30)
                .with_secret(key.clone())
                .build_noncompliant();
            for t in [0u64, 59, 1_700_000_000, 1_800_000_029] {
                let c = time_counter(t as i64, 30) as u64;
                assert_eq!(oracle.generate(t).to_string(), hotp(&key, c, 6, ours));
            }
        }
    }

    #[test]
    fn value_matches_in_constant_time_and_only_exactly() {
        let g = OtpGenerator::new(RFC4226_KEY, HashLib::Sha1);
        let v = g.value(0, 6);
        assert!(v.matches(b"755224"));
        assert!(!v.matches(b"755225"));
        assert!(!v.matches(b"7552240"));
        assert_eq!(format!("{v:?}"), "OtpValue(******)");
    }

    #[test]
    fn negative_time_does_not_wrap() {
        assert_eq!(time_counter(-1, 30), -1);
        assert_eq!(time_counter(29, 30), 0);
        assert_eq!(time_counter(30, 0), 0);
    }
}
