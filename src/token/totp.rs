//! TOTP window, replay, drift and resync rules (spec §4.8). Pure: `now` is an argument.

use super::hotp::OtpVerdict;
use super::otp::{OtpGenerator, time_counter};

/// Time parameters of one TOTP token (tokeninfo, else system defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpTiming {
    /// `timeStep`, seconds.
    pub step: i64,
    /// `timeWindow`, seconds either side.
    pub window: i64,
    /// `timeShift`, seconds of tracked drift.
    pub shift: i64,
}

impl TotpTiming {
    /// Counters to try: `[T − W/step, T + W/step)`, lower bound ≥ 0.
    fn candidates(&self, now_unix: i64) -> std::ops::Range<i64> {
        let step = self.step.max(1);
        let t = time_counter(now_unix + self.shift, step);
        let w = self.window.max(0) / step;
        (t - w).max(0)..(t + w).max(1)
    }
}

/// Check `typed` against the token's time window. `stored_count` is the last accepted counter
/// (0 = never used).
pub fn check(
    generator: &OtpGenerator,
    digits: usize,
    typed: &[u8],
    now_unix: i64,
    timing: TotpTiming,
    stored_count: u64,
) -> OtpVerdict {
    if typed.len() != digits {
        return OtpVerdict::Wrong;
    }
    for c in timing.candidates(now_unix) {
        let c = c as u64;
        if !generator.value(c, digits).matches(typed) {
            continue;
        }
        if stored_count != 0 && c <= stored_count {
            return if c == stored_count {
                OtpVerdict::PreviousOtp
            } else {
                OtpVerdict::Wrong
            };
        }
        return OtpVerdict::Accepted {
            matched: c,
            new_count: c,
            time_shift: Some(c as i64 * timing.step.max(1) - now_unix),
        };
    }
    OtpVerdict::Wrong
}

/// Find `typed` within ±`sync_window` steps of now, above the stored counter (AutoResync).
pub fn find_in_sync_window(
    generator: &OtpGenerator,
    digits: usize,
    typed: &[u8],
    now_unix: i64,
    timing: TotpTiming,
    stored_count: u64,
    sync_window: u64,
) -> Option<u64> {
    if typed.len() != digits {
        return None;
    }
    let t = time_counter(now_unix + timing.shift, timing.step.max(1));
    let w = sync_window as i64;
    ((t - w).max(0)..=t + w)
        .map(|c| c as u64)
        .filter(|&c| stored_count == 0 || c > stored_count)
        .find(|&c| generator.value(c, digits).matches(typed))
}

/// Resync with two consecutive values: returns (new stored count, new time shift).
pub fn resync(
    generator: &OtpGenerator,
    digits: usize,
    otp1: &[u8],
    otp2: &[u8],
    now_unix: i64,
    timing: TotpTiming,
    stored_count: u64,
    sync_window: u64,
) -> Option<(u64, i64)> {
    let t = time_counter(now_unix + timing.shift, timing.step.max(1));
    let w = sync_window as i64;
    let c = ((t - w).max(0)..=t + w).map(|c| c as u64).find(|&c| {
        (stored_count == 0 || c > stored_count)
            && generator.value(c, digits).matches(otp1)
            && generator.value(c + 1, digits).matches(otp2)
    })?;
    let new_count = c + 1;
    Some((new_count, new_count as i64 * timing.step.max(1) - now_unix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::otp::HashLib;

    const STEP: i64 = 30;
    fn g() -> OtpGenerator {
        OtpGenerator::new(b"12345678901234567890", HashLib::Sha1)
    }
    fn timing() -> TotpTiming {
        TotpTiming {
            step: STEP,
            window: 180,
            shift: 0,
        }
    }
    fn at(now: i64, offset_steps: i64) -> Vec<u8> {
        let c = (time_counter(now, STEP) + offset_steps) as u64;
        g().value(c, 6).as_bytes().to_vec()
    }

    #[test]
    fn current_step_is_accepted_and_stored_as_is() {
        let now = 1_800_000_015;
        let t = time_counter(now, STEP) as u64;
        match check(&g(), 6, &at(now, 0), now, timing(), 0) {
            OtpVerdict::Accepted {
                new_count,
                time_shift,
                ..
            } => {
                assert_eq!(new_count, t);
                assert_eq!(time_shift, Some(t as i64 * STEP - now));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn window_is_minus_six_to_plus_five() {
        let now = 1_800_000_015;
        for off in -6..=5 {
            assert!(
                matches!(
                    check(&g(), 6, &at(now, off), now, timing(), 0),
                    OtpVerdict::Accepted { .. }
                ),
                "offset {off}"
            );
        }
        assert_eq!(check(&g(), 6, &at(now, -7), now, timing(), 0), OtpVerdict::Wrong);
        assert_eq!(check(&g(), 6, &at(now, 6), now, timing(), 0), OtpVerdict::Wrong);
    }

    #[test]
    fn replay_is_rejected_and_named() {
        let now = 1_800_000_015;
        let t = time_counter(now, STEP) as u64;
        assert_eq!(
            check(&g(), 6, &at(now, 0), now, timing(), t),
            OtpVerdict::PreviousOtp
        );
        assert_eq!(check(&g(), 6, &at(now, -1), now, timing(), t), OtpVerdict::Wrong);
    }

    #[test]
    fn drift_moves_the_window() {
        let now = 1_800_000_015;
        let shifted = TotpTiming {
            shift: -10 * STEP,
            ..timing()
        };
        assert!(matches!(
            check(&g(), 6, &at(now, -10), now, shifted, 0),
            OtpVerdict::Accepted { .. }
        ));
    }

    #[test]
    fn resync_finds_consecutive_values_above_the_stored_counter() {
        let now = 1_800_000_015;
        let t = time_counter(now, STEP);
        let (count, _) = resync(&g(), 6, &at(now, 40), &at(now, 41), now, timing(), 0, 100)
            .expect("resync");
        assert_eq!(count as i64, t + 41);
        assert!(resync(&g(), 6, &at(now, 40), &at(now, 41), now, timing(), count, 100).is_none());
    }
}
