//! Token kinds, the token record, and the OTP checks per kind.
//!
//! - [`otp`]: RFC 4226/6238 math; [`hotp`] and [`totp`]: window, replay and resync rules;
//! - [`enroll`]: keys, serials, `otpauth://` URIs and terminal QR codes;
//! - [`Token`]: one row of the token store as the core sees it, with its tokeninfo view.
//!
//! Nothing here touches the store or the clock; `now` is an argument.

pub mod enroll;
pub mod hotp;
pub mod import;
pub mod otp;
pub mod totp;

use std::collections::BTreeMap;

use crate::secret::Secret;
pub use hotp::OtpVerdict;
pub use otp::{HashLib, OtpGenerator};

/// Token types otpgate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenType {
    Hotp,
    Totp,
    Spass,
    Email,
    Sms,
}

impl TokenType {
    pub const ALL: [Self; 5] = [Self::Hotp, Self::Totp, Self::Spass, Self::Email, Self::Sms];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hotp => "hotp",
            Self::Totp => "totp",
            Self::Spass => "spass",
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// privacyIDEA's serial prefix for generated serials.
    pub fn serial_prefix(self) -> &'static str {
        match self {
            Self::Hotp => "OATH",
            Self::Totp => "TOTP",
            Self::Spass => "PISP",
            Self::Email => "PIEM",
            Self::Sms => "PISM",
        }
    }

    /// Tokens whose OTP is the counter-based HOTP value of a stored key.
    pub fn has_key(self) -> bool {
        !matches!(self, Self::Spass)
    }

    /// Email and SMS tokens trigger a challenge on their PIN without any policy (spec §4.3).
    pub fn always_challenges(self) -> bool {
        matches!(self, Self::Email | Self::Sms)
    }

    /// Types that may trigger a challenge when the `challenge_response` policy names them.
    pub fn can_challenge(self) -> bool {
        !matches!(self, Self::Spass)
    }

    /// Sort key of `check_token_list`: the character code of the first letter of the type.
    pub fn weight(self) -> u8 {
        self.as_str().as_bytes().first().copied().unwrap_or(0)
    }
}

impl std::fmt::Display for TokenType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The user a token is assigned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub login: String,
    pub realm: String,
    pub resolver: String,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.login, self.realm)
    }
}

/// One token as stored. Column-backed tokeninfo keys (`count_auth`, `last_auth`, …) are fields;
/// everything else is in `info`.
#[derive(Debug, Clone)]
pub struct Token {
    pub id: i64,
    pub serial: String,
    pub kind: TokenType,
    pub description: String,
    pub owner: Option<Owner>,
    pub active: bool,
    pub revoked: bool,
    pub failcount: i64,
    pub maxfail: i64,
    pub otp_counter: i64,
    pub count_window: i64,
    pub otplen: i64,
    pub hashlib: HashLib,
    pub time_step: Option<i64>,
    pub time_window: Option<i64>,
    pub time_shift: i64,
    pub pin_hash: Option<Secret<String>>,
    pub key_sealed: Option<Secret<Vec<u8>>>,
    pub rollout_state: String,
    pub validity_start: Option<String>,
    pub validity_end: Option<String>,
    pub count_auth: i64,
    pub count_auth_success: i64,
    pub count_auth_max: i64,
    pub count_auth_success_max: i64,
    pub last_auth: Option<String>,
    pub failcounter_exceeded: Option<String>,
    pub created: i64,
    pub info: BTreeMap<String, String>,
}

impl Token {
    /// `now` within `validity_period_start`…`validity_period_end` (unset or unparseable bounds are
    /// open; naive values are server local time).
    pub fn within_validity(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        let bound = |v: &Option<String>| {
            v.as_deref()
                .and_then(crate::dates::parse)
                .map(|s| s.as_local_utc())
        };
        if let Some(start) = bound(&self.validity_start)
            && now < start
        {
            return false;
        }
        if let Some(end) = bound(&self.validity_end)
            && now > end
        {
            return false;
        }
        true
    }

    /// `failcount >= maxfail` (the `token_locked` condition, "Failcounter exceeded").
    pub fn is_locked(&self) -> bool {
        self.failcount >= self.maxfail
    }

    pub fn otplen(&self) -> usize {
        usize::try_from(self.otplen).unwrap_or(6)
    }

    /// Characters of `pass` that belong to the OTP: none for spass (the pass is the PIN).
    pub fn otplen_for_split(&self) -> usize {
        if self.kind == TokenType::Spass {
            0
        } else {
            self.otplen()
        }
    }

    /// One tokeninfo value, column-backed keys included.
    pub fn tokeninfo(&self, key: &str) -> Option<String> {
        match InfoField::parse(key) {
            Some(field) => self.field(field),
            None => self.info.get(key).cloned(),
        }
    }

    /// The whole tokeninfo map as privacyIDEA shows it.
    pub fn tokeninfo_map(&self) -> BTreeMap<String, String> {
        let mut map = self.info.clone();
        for field in InfoField::ALL {
            if let Some(v) = self.field(field) {
                map.insert(field.key().to_owned(), v);
            }
        }
        map
    }

    fn field(&self, field: InfoField) -> Option<String> {
        let nonzero = |v: i64| (v != 0).then(|| v.to_string());
        match field {
            InfoField::CountAuth => Some(self.count_auth.to_string()),
            InfoField::CountAuthSuccess => Some(self.count_auth_success.to_string()),
            InfoField::CountAuthMax => nonzero(self.count_auth_max),
            InfoField::CountAuthSuccessMax => nonzero(self.count_auth_success_max),
            InfoField::LastAuth => self.last_auth.clone(),
            InfoField::FailcounterExceeded => self.failcounter_exceeded.clone(),
            InfoField::Hashlib => self.kind.has_key().then(|| self.hashlib.to_string()),
            InfoField::TimeStep => self.time_step.map(|v| v.to_string()),
            InfoField::TimeWindow => self.time_window.map(|v| v.to_string()),
            InfoField::TimeShift => {
                (self.kind == TokenType::Totp).then(|| self.time_shift.to_string())
            }
            InfoField::ValidityStart => self.validity_start.clone(),
            InfoField::ValidityEnd => self.validity_end.clone(),
        }
    }
}

/// Tokeninfo keys that live in columns of the token table, so the hot path updates them in the
/// same statement that consumes the OTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoField {
    CountAuth,
    CountAuthSuccess,
    CountAuthMax,
    CountAuthSuccessMax,
    LastAuth,
    FailcounterExceeded,
    Hashlib,
    TimeStep,
    TimeWindow,
    TimeShift,
    ValidityStart,
    ValidityEnd,
}

impl InfoField {
    pub const ALL: [Self; 12] = [
        Self::CountAuth,
        Self::CountAuthSuccess,
        Self::CountAuthMax,
        Self::CountAuthSuccessMax,
        Self::LastAuth,
        Self::FailcounterExceeded,
        Self::Hashlib,
        Self::TimeStep,
        Self::TimeWindow,
        Self::TimeShift,
        Self::ValidityStart,
        Self::ValidityEnd,
    ];

    /// The privacyIDEA tokeninfo key.
    pub fn key(self) -> &'static str {
        match self {
            Self::CountAuth => "count_auth",
            Self::CountAuthSuccess => "count_auth_success",
            Self::CountAuthMax => "count_auth_max",
            Self::CountAuthSuccessMax => "count_auth_success_max",
            Self::LastAuth => "last_auth",
            Self::FailcounterExceeded => "failcounter_exceeded",
            Self::Hashlib => "hashlib",
            Self::TimeStep => "timeStep",
            Self::TimeWindow => "timeWindow",
            Self::TimeShift => "timeShift",
            Self::ValidityStart => "validity_period_start",
            Self::ValidityEnd => "validity_period_end",
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.key() == key)
    }

    /// Integer-valued fields reject non-integers.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            Self::CountAuth
                | Self::CountAuthSuccess
                | Self::CountAuthMax
                | Self::CountAuthSuccessMax
                | Self::TimeStep
                | Self::TimeWindow
                | Self::TimeShift
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_and_sort_like_privacyidea() {
        for t in TokenType::ALL {
            assert_eq!(TokenType::parse(t.as_str()), Some(t));
        }
        assert_eq!(TokenType::parse("HOTP"), Some(TokenType::Hotp));
        assert_eq!(TokenType::parse("push"), None);
        // e < h < s < t
        let mut v = vec![
            TokenType::Totp,
            TokenType::Spass,
            TokenType::Hotp,
            TokenType::Email,
        ];
        v.sort_by_key(|t| t.weight());
        assert_eq!(
            v,
            vec![
                TokenType::Email,
                TokenType::Hotp,
                TokenType::Spass,
                TokenType::Totp
            ]
        );
    }

    #[test]
    fn info_fields_have_unique_keys() {
        for f in InfoField::ALL {
            assert_eq!(InfoField::parse(f.key()), Some(f));
        }
    }
}
