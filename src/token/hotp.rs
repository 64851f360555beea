//! HOTP window, replay and resync rules (spec §4.7). Pure: the caller stores the outcome.

use super::otp::OtpGenerator;

/// What one OTP value means for an OATH token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpVerdict {
    /// The value is good. Store `new_count` (and `time_shift` for TOTP) atomically, guarded by
    /// `count < new_count`, before answering.
    Accepted {
        matched: u64,
        new_count: u64,
        time_shift: Option<i64>,
    },
    /// The value is the one accepted last time ("previous otp used again").
    PreviousOtp,
    /// Anything else.
    Wrong,
}

/// Check `typed` against HOTP values for counters `[count, count + window)`.
pub fn check(
    generator: &OtpGenerator,
    digits: usize,
    typed: &[u8],
    count: u64,
    window: u64,
) -> OtpVerdict {
    if typed.len() != digits {
        return OtpVerdict::Wrong;
    }
    let window = window.max(1);
    for c in count..count.saturating_add(window) {
        if generator.value(c, digits).matches(typed) {
            return OtpVerdict::Accepted {
                matched: c,
                new_count: c + 1,
                time_shift: None,
            };
        }
    }
    if count > 0 && generator.value(count - 1, digits).matches(typed) {
        return OtpVerdict::PreviousOtp;
    }
    OtpVerdict::Wrong
}

/// Find `typed` anywhere in `[count, count + sync_window)` (AutoResync's first step).
pub fn find_in_sync_window(
    generator: &OtpGenerator,
    digits: usize,
    typed: &[u8],
    count: u64,
    sync_window: u64,
) -> Option<u64> {
    if typed.len() != digits {
        return None;
    }
    (count..count.saturating_add(sync_window)).find(|&c| generator.value(c, digits).matches(typed))
}

/// Resync with two consecutive values: returns the new stored count (`c + 2`).
pub fn resync(
    generator: &OtpGenerator,
    digits: usize,
    otp1: &[u8],
    otp2: &[u8],
    count: u64,
    sync_window: u64,
) -> Option<u64> {
    let c = (count..count.saturating_add(sync_window)).find(|&c| {
        generator.value(c, digits).matches(otp1) && generator.value(c + 1, digits).matches(otp2)
    })?;
    Some(c + 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::otp::HashLib;
    use proptest::prelude::*;

    fn g() -> OtpGenerator {
        OtpGenerator::new(b"12345678901234567890", HashLib::Sha1)
    }

    #[test]
    fn window_of_ten_from_the_stored_count() {
        assert_eq!(
            check(&g(), 6, b"520489", 1, 10),
            OtpVerdict::Accepted {
                matched: 9,
                new_count: 10,
                time_shift: None
            }
        );
        assert_eq!(check(&g(), 6, b"403154", 0, 10), OtpVerdict::Wrong);
    }

    #[test]
    fn the_previous_value_is_recognised() {
        assert_eq!(check(&g(), 6, b"755224", 1, 10), OtpVerdict::PreviousOtp);
        assert_eq!(check(&g(), 6, b"755224", 2, 10), OtpVerdict::Wrong);
    }

    #[test]
    fn wrong_length_never_matches() {
        assert_eq!(check(&g(), 6, b"75522", 0, 10), OtpVerdict::Wrong);
        assert_eq!(check(&g(), 6, b"0755224", 0, 10), OtpVerdict::Wrong);
    }

    #[test]
    fn resync_needs_two_consecutive_values() {
        // c12 868912, c13 736127
        assert_eq!(resync(&g(), 6, b"868912", b"736127", 0, 1000), Some(14));
        assert_eq!(resync(&g(), 6, b"736127", b"868912", 0, 1000), None);
    }

    proptest! {
        #[test]
        fn every_value_in_the_window_is_accepted_once(count in 0u64..1_000_000, offset in 0u64..10) {
            let generator = g();
            let typed = generator.value(count + offset, 6);
            let verdict = check(&generator, 6, typed.as_bytes(), count, 10);
            prop_assert_eq!(verdict, OtpVerdict::Accepted { matched: count + offset, new_count: count + offset + 1, time_shift: None });
            // once stored, the same value is never accepted again
            let again = check(&generator, 6, typed.as_bytes(), count + offset + 1, 10);
            prop_assert_ne!(again, OtpVerdict::Accepted { matched: count + offset, new_count: count + offset + 1, time_shift: None });
        }
    }
}
