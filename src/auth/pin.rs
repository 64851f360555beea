//! PIN/OTP split and the `otppin` modes (spec §4.4).

/// Where the PIN part of `pass` is checked (auth policy `otppin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtpPin {
    /// The token's own PIN (default).
    #[default]
    TokenPin,
    /// The user-store password.
    UserStore,
    /// No PIN: the PIN part must be empty.
    None,
}

impl OtpPin {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tokenpin" => Some(Self::TokenPin),
            "userstore" => Some(Self::UserStore),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenPin => "tokenpin",
            Self::UserStore => "userstore",
            Self::None => "none",
        }
    }
}

/// Split `pass` into (PIN, OTP) for an OTP of `otplen` characters. `None` when `pass` is shorter
/// than the OTP: such a password never matches (scenario 10).
pub fn split(pass: &str, otplen: usize, prepend_pin: bool) -> Option<(&str, &str)> {
    let chars = pass.chars().count();
    if chars < otplen {
        return None;
    }
    let cut_chars = if prepend_pin { chars - otplen } else { otplen };
    let cut = pass
        .char_indices()
        .nth(cut_chars)
        .map_or(pass.len(), |(i, _)| i);
    let (a, b) = pass.split_at(cut);
    Some(if prepend_pin { (a, b) } else { (b, a) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_and_append() {
        assert_eq!(split("pin755224", 6, true), Some(("pin", "755224")));
        assert_eq!(split("755224pin", 6, false), Some(("pin", "755224")));
        assert_eq!(split("755224", 6, true), Some(("", "755224")));
        assert_eq!(split("pin", 6, true), None);
        assert_eq!(split("pïn12345678", 8, true), Some(("pïn", "12345678")));
        assert_eq!(split("anything", 0, true), Some(("anything", "")));
    }

    #[test]
    fn modes_parse() {
        assert_eq!(OtpPin::parse("userstore"), Some(OtpPin::UserStore));
        assert_eq!(OtpPin::parse("NONE"), Some(OtpPin::None));
        assert_eq!(OtpPin::parse("x"), None);
    }
}
