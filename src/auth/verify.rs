//! One token's OTP check: open the sealed key, run the type's window rules, and AutoResync.

use chrono::{DateTime, TimeDelta, Utc};

use super::SystemSettings;
use crate::crypto::MasterKey;
use crate::token::{OtpGenerator, OtpVerdict, Token, TokenType, hotp, totp};

/// The result of checking an OTP value against one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpCheck {
    /// Store this (atomically, guarded by the counter) and the token is valid.
    Accepted {
        matched: Option<u64>,
        new_count: Option<i64>,
        time_shift: Option<i64>,
    },
    /// The OTP accepted last time.
    Previous,
    Wrong,
}

/// A token whose key could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token key cannot be decrypted (wrong key file?)")]
pub struct KeyUnavailable;

/// A token's OTP generator (key opened once per request).
pub fn generator(token: &Token, key: &MasterKey) -> Result<Option<OtpGenerator>, KeyUnavailable> {
    if !token.kind.has_key() {
        return Ok(None);
    }
    let sealed = token.key_sealed.as_ref().ok_or(KeyUnavailable)?;
    let plain = key
        .open(&token.serial, sealed.expose())
        .map_err(|_| KeyUnavailable)?;
    Ok(Some(OtpGenerator::new(plain.expose(), token.hashlib)))
}

/// The TOTP timing of a token: tokeninfo first, else the system defaults.
pub fn totp_timing(token: &Token, system: &SystemSettings) -> totp::TotpTiming {
    totp::TotpTiming {
        step: token.time_step.unwrap_or(system.totp_timestep).max(1),
        window: token.time_window.unwrap_or(system.totp_timewindow).max(0),
        shift: token.time_shift,
    }
}

fn from_verdict(v: OtpVerdict) -> OtpCheck {
    match v {
        OtpVerdict::Accepted {
            matched,
            new_count,
            time_shift,
        } => OtpCheck::Accepted {
            matched: Some(matched),
            new_count: i64::try_from(new_count).ok(),
            time_shift,
        },
        OtpVerdict::PreviousOtp => OtpCheck::Previous,
        OtpVerdict::Wrong => OtpCheck::Wrong,
    }
}

/// Check `otp` against the token's window (pure apart from the key).
pub fn check_otp(
    token: &Token,
    generator: Option<&OtpGenerator>,
    otp: &str,
    now: DateTime<Utc>,
    system: &SystemSettings,
) -> OtpCheck {
    let digits = token.otplen();
    let count = u64::try_from(token.otp_counter).unwrap_or(0);
    match (token.kind, generator) {
        (TokenType::Spass, _) => OtpCheck::Accepted {
            matched: None,
            new_count: None,
            time_shift: None,
        },
        (TokenType::Totp, Some(g)) => from_verdict(totp::check(
            &totp::TotpState {
                generator: g,
                digits,
                timing: totp_timing(token, system),
                stored_count: count,
            },
            otp.as_bytes(),
            now.timestamp(),
        )),
        (TokenType::Hotp | TokenType::Email | TokenType::Sms, Some(g)) => {
            let window = u64::try_from(token.count_window).unwrap_or(10);
            from_verdict(hotp::check(g, digits, otp.as_bytes(), count, window))
        }
        (_, None) => OtpCheck::Wrong,
    }
}

/// What AutoResync decided for a PIN-matching OTP outside the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resync {
    /// Not applicable: off, or the OTP is not in the sync window.
    NotApplicable,
    /// First value remembered: store `otp1c` (and `dueDate` for HOTP); the attempt fails.
    Remember { otp1c: u64, due: Option<i64> },
    /// The second, consecutive value within the timeout: resync to these values and accept.
    Accept {
        new_count: i64,
        time_shift: Option<i64>,
    },
    /// A remembered value did not fit: forget it; the attempt fails.
    Forget,
}

/// privacyIDEA's AutoResync (spec §4.7, errata 6).
pub fn auto_resync(
    token: &Token,
    generator: &OtpGenerator,
    otp: &str,
    now: DateTime<Utc>,
    system: &SystemSettings,
) -> Resync {
    if !system.auto_resync {
        return Resync::NotApplicable;
    }
    let digits = token.otplen();
    let count = u64::try_from(token.otp_counter).unwrap_or(0);
    let found = match token.kind {
        TokenType::Totp => totp::find_in_sync_window(
            &totp::TotpState {
                generator,
                digits,
                timing: totp_timing(token, system),
                stored_count: count,
            },
            otp.as_bytes(),
            now.timestamp(),
            system.sync_window,
        ),
        TokenType::Hotp => {
            hotp::find_in_sync_window(generator, digits, otp.as_bytes(), count, system.sync_window)
        }
        _ => None,
    };
    let Some(c) = found else {
        return Resync::NotApplicable;
    };
    let Some(otp1c) = token.info.get("otp1c").and_then(|v| v.parse::<u64>().ok()) else {
        let due =
            (token.kind == TokenType::Hotp).then(|| (now + system.auto_resync_timeout).timestamp());
        return Resync::Remember { otp1c: c, due };
    };
    let in_time = match token.kind {
        TokenType::Hotp => token
            .info
            .get("dueDate")
            .and_then(|d| d.parse::<i64>().ok())
            .is_some_and(|due| now.timestamp() < due),
        _ => true,
    };
    if otp1c + 1 != c || !in_time {
        return Resync::Forget;
    }
    match token.kind {
        TokenType::Totp => {
            let timing = totp_timing(token, system);
            Resync::Accept {
                new_count: i64::try_from(c).unwrap_or(i64::MAX),
                time_shift: Some(c as i64 * timing.step - now.timestamp()),
            }
        }
        _ => Resync::Accept {
            new_count: i64::try_from(c + 1).unwrap_or(i64::MAX),
            time_shift: None,
        },
    }
}

/// Validity period and the other `check_all` reasons (spec §4.3 step 2). `None` = fit.
pub fn unfit_reason(token: &Token, now: DateTime<Utc>) -> Option<&'static str> {
    if (token.count_auth_max != 0 && token.count_auth >= token.count_auth_max)
        || (token.count_auth_success_max != 0
            && token.count_auth_success >= token.count_auth_success_max)
    {
        return Some("Authentication counter exceeded");
    }
    if !token.active {
        return Some("Token is disabled");
    }
    if token.is_locked() {
        return Some("Failcounter exceeded");
    }
    if !token.within_validity(now) {
        return Some("Outside validity period");
    }
    if matches!(
        token.rollout_state.as_str(),
        "clientwait" | "verify" | "verifypending"
    ) {
        return Some("Token is not yet enrolled");
    }
    None
}

/// Failcounter auto-clear is due (spec §4.3 step 1, §4.5).
pub fn auto_clear_due(token: &Token, now: DateTime<Utc>, timeout: TimeDelta) -> bool {
    if timeout <= TimeDelta::zero() || token.failcount != token.maxfail {
        return false;
    }
    token
        .failcounter_exceeded
        .as_deref()
        .and_then(crate::dates::parse)
        .is_some_and(|stamp| stamp.as_local_utc() + timeout < now)
}
