//! System settings of the authentication core (privacyIDEA's "system config").

use chrono::TimeDelta;

use crate::token::HashLib;

/// The `[system]` table, validated. Names follow privacyIDEA's system config keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemSettings {
    /// `PrependPin`: PIN before OTP in `pass` (default true).
    pub prepend_pin: bool,
    /// `IncFailCountOnFalsePin`: a wrong PIN raises the failcount (default true).
    pub inc_fail_count_on_false_pin: bool,
    /// `failcounter_clear_timeout`: auto-clear a locked token after this long (0 = off).
    pub failcounter_clear_timeout: TimeDelta,
    /// `no_auth_counter`: leave `count_auth` / `count_auth_success` alone.
    pub no_auth_counter: bool,
    /// `splitAtSign`: `user@realm` splitting.
    pub split_at_sign: bool,
    /// `AutoResync` with `AutoResyncTimeout` and the sync window `DefaultSyncWindow`.
    pub auto_resync: bool,
    pub auto_resync_timeout: TimeDelta,
    pub sync_window: u64,
    /// Defaults for new tokens.
    pub default_maxfail: i64,
    pub default_count_window: i64,
    pub default_otplen: i64,
    pub default_hashlib: HashLib,
    /// `totp.timeStep`, `totp.timeWindow`.
    pub totp_timestep: i64,
    pub totp_timewindow: i64,
    /// `DefaultChallengeValidityTime` (seconds).
    pub challenge_validity: TimeDelta,
    /// `ResetFailcounterOnPIN`: re-run auto-clear after a PIN-matching failure.
    pub reset_failcounter_on_pin: bool,
}

impl Default for SystemSettings {
    fn default() -> Self {
        Self {
            prepend_pin: true,
            inc_fail_count_on_false_pin: true,
            failcounter_clear_timeout: TimeDelta::zero(),
            no_auth_counter: false,
            split_at_sign: true,
            auto_resync: false,
            auto_resync_timeout: TimeDelta::seconds(300),
            sync_window: 1000,
            default_maxfail: 10,
            default_count_window: 10,
            default_otplen: 6,
            default_hashlib: HashLib::Sha1,
            totp_timestep: 30,
            totp_timewindow: 180,
            challenge_validity: TimeDelta::seconds(120),
            reset_failcounter_on_pin: false,
        }
    }
}
