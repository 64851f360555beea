//! Sending the OTP of an email or SMS token when its challenge is created.

use chrono::TimeDelta;

use super::Attempt;
use crate::token::{Token, TokenType};

/// Delivery settings of the email and SMS token types.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// `email.validtime`: seconds an emailed OTP stays valid (default 120).
    pub email_validity: TimeDelta,
    /// `sms.validtime` (default 120).
    pub sms_validity: TimeDelta,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            email_validity: TimeDelta::seconds(120),
            sms_validity: TimeDelta::seconds(120),
        }
    }
}

impl DeliverySettings {
    pub fn validity(&self, kind: TokenType) -> TimeDelta {
        match kind {
            TokenType::Sms => self.sms_validity,
            _ => self.email_validity,
        }
    }
}

/// Send the token's next OTP; returns the HOTP counter whose value was sent.
pub(crate) async fn send_otp(_at: &mut Attempt<'_>, token: &Token) -> Result<i64, String> {
    Err(format!(
        "no delivery channel is configured for {} tokens",
        token.kind
    ))
}
