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
    pub fn candidates(&self, now_unix: i64) -> std::ops::Range<i64> {
        let step = self.step.max(1);
        let t = time_counter(now_unix + self.shift, step);
        let w = self.window.max(0) / step;
        (t - w).max(0)..(t + w).max(1)
    }
}

/// What a TOTP check needs to know about the token.
#[derive(Clone, Copy)]
pub struct TotpState<'a> {
    pub generator: &'a OtpGenerator,
    pub digits: usize,
    pub timing: TotpTiming,
    /// The last accepted counter (0 = never used).
    pub stored_count: u64,
}

impl TotpState<'_> {
    fn matches(&self, c: u64, typed: &[u8]) -> bool {
        self.generator.value(c, self.digits).matches(typed)
    }

    /// Counters within ±`sync_window` steps of now, above the stored counter.
    fn sync_range(&self, now_unix: i64, sync_window: u64) -> impl Iterator<Item = u64> + '_ {
        let t = time_counter(now_unix + self.timing.shift, self.timing.step.max(1));
        let w = i64::try_from(sync_window).unwrap_or(i64::MAX / 4);
        let stored = self.stored_count;
        ((t - w).max(0)..=t + w)
            .map(|c| c as u64)
            .filter(move |&c| stored == 0 || c > stored)
    }
}

/// Check `typed` against the token's time window.
pub fn check(s: &TotpState<'_>, typed: &[u8], now_unix: i64) -> OtpVerdict {
    if typed.len() != s.digits {
        return OtpVerdict::Wrong;
    }
    for c in s.timing.candidates(now_unix) {
        let c = c as u64;
        if !s.matches(c, typed) {
            continue;
        }
        if s.stored_count != 0 && c <= s.stored_count {
            return if c == s.stored_count {
                OtpVerdict::PreviousOtp
            } else {
                OtpVerdict::Wrong
            };
        }
        return OtpVerdict::Accepted {
            matched: c,
            new_count: c,
            time_shift: Some(c as i64 * s.timing.step.max(1) - now_unix),
        };
    }
    OtpVerdict::Wrong
}

/// Find `typed` within ±`sync_window` steps of now, above the stored counter (AutoResync).
pub fn find_in_sync_window(
    s: &TotpState<'_>,
    typed: &[u8],
    now_unix: i64,
    sync_window: u64,
) -> Option<u64> {
    if typed.len() != s.digits {
        return None;
    }
    s.sync_range(now_unix, sync_window)
        .find(|&c| s.matches(c, typed))
}

/// Resync with two consecutive values: returns (new stored count, new time shift).
pub fn resync(
    s: &TotpState<'_>,
    otp1: &[u8],
    otp2: &[u8],
    now_unix: i64,
    sync_window: u64,
) -> Option<(u64, i64)> {
    let c = s
        .sync_range(now_unix, sync_window)
        .find(|&c| s.matches(c, otp1) && s.matches(c + 1, otp2))?;
    let new_count = c + 1;
    Some((
        new_count,
        new_count as i64 * s.timing.step.max(1) - now_unix,
    ))
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
    fn state(g: &OtpGenerator, timing: TotpTiming, stored_count: u64) -> TotpState<'_> {
        TotpState {
            generator: g,
            digits: 6,
            timing,
            stored_count,
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
        match check(&state(&g(), timing(), 0), &at(now, 0), now) {
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
                    check(&state(&g(), timing(), 0), &at(now, off), now),
                    OtpVerdict::Accepted { .. }
                ),
                "offset {off}"
            );
        }
        assert_eq!(
            check(&state(&g(), timing(), 0), &at(now, -7), now),
            OtpVerdict::Wrong
        );
        assert_eq!(
            check(&state(&g(), timing(), 0), &at(now, 6), now),
            OtpVerdict::Wrong
        );
    }

    #[test]
    fn replay_is_rejected_and_named() {
        let now = 1_800_000_015;
        let t = time_counter(now, STEP) as u64;
        assert_eq!(
            check(&state(&g(), timing(), t), &at(now, 0), now),
            OtpVerdict::PreviousOtp
        );
        assert_eq!(
            check(&state(&g(), timing(), t), &at(now, -1), now),
            OtpVerdict::Wrong
        );
    }

    #[test]
    fn drift_moves_the_window() {
        let now = 1_800_000_015;
        let shifted = TotpTiming {
            shift: -10 * STEP,
            ..timing()
        };
        assert!(matches!(
            check(&state(&g(), shifted, 0), &at(now, -10), now),
            OtpVerdict::Accepted { .. }
        ));
    }

    #[test]
    fn resync_finds_consecutive_values_above_the_stored_counter() {
        let now = 1_800_000_015;
        let t = time_counter(now, STEP);
        let g = g();
        let (count, _) = resync(
            &state(&g, timing(), 0),
            &at(now, 40),
            &at(now, 41),
            now,
            100,
        )
        .expect("resync");
        assert_eq!(count as i64, t + 41);
        assert!(
            resync(
                &state(&g, timing(), count),
                &at(now, 40),
                &at(now, 41),
                now,
                100
            )
            .is_none()
        );
    }
}
