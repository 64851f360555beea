//! Sending the OTP of an email or SMS token when its challenge is created.
//!
//! The counter whose HOTP value is sent is reserved with one atomic increment, so two
//! challenges never carry the same value; the challenge row remembers the counter, never the
//! OTP. The address comes from the token (`email` / `phone` tokeninfo) or, with
//! `dynamic_email` / `dynamic_phone`, from the user's attribute at each login.

use chrono::TimeDelta;

use super::Attempt;
use crate::notify::Mail;
use crate::token::{Token, TokenType};

/// Delivery settings of the email and SMS token types (`[email_token]`, `[sms_token]`).
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// `email.validtime`: seconds an emailed OTP stays valid (default 120).
    pub email_validity: TimeDelta,
    /// `sms.validtime` (default 120).
    pub sms_validity: TimeDelta,
    /// SMTP server for email tokens without `smtp_identifier` (default: the first `[[smtp]]`).
    pub smtp: Option<String>,
    pub email_subject: String,
    /// Body with `{otp}` (and the notification tags `{user}`, `{serial}` …).
    pub email_body: String,
    /// SMS gateway for SMS tokens without `sms_identifier` (default: the first gateway).
    pub sms_gateway: Option<String>,
    pub sms_text: String,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            email_validity: TimeDelta::seconds(120),
            sms_validity: TimeDelta::seconds(120),
            smtp: None,
            email_subject: "Your OTP".into(),
            email_body: "{otp}".into(),
            sms_gateway: None,
            sms_text: "{otp}".into(),
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

/// Why no OTP went out. The message names the cause, never the OTP.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the token has no {0}")]
    NoAddress(&'static str),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the token key cannot be opened")]
    Key,
    #[error(transparent)]
    Notify(#[from] crate::notify::NotifyError),
}

/// Send the token's next OTP; returns the HOTP counter whose value was sent.
pub(crate) async fn send_otp(at: &mut Attempt<'_>, token: &Token) -> Result<i64, DeliveryError> {
    let dynamic = |key: &str| {
        token
            .info
            .get(key)
            .is_some_and(|v| crate::event::is_true(v))
    };
    let user_attr = |attr: &str| {
        at.user
            .as_ref()
            .and_then(|u| u.record.attribute(attr))
            .filter(|a| !a.is_empty())
    };
    let (address, what) = match token.kind {
        TokenType::Email if dynamic("dynamic_email") => (user_attr("email"), "email address"),
        TokenType::Email => (
            token.info.get("email").cloned().filter(|a| !a.is_empty()),
            "email address",
        ),
        TokenType::Sms if dynamic("dynamic_phone") => (user_attr("mobile"), "phone number"),
        _ => (
            token.info.get("phone").cloned().filter(|a| !a.is_empty()),
            "phone number",
        ),
    };
    let address = address.ok_or(DeliveryError::NoAddress(what))?;
    let generator = super::verify::generator(token, &at.auth.key)
        .ok()
        .flatten()
        .ok_or(DeliveryError::Key)?;
    let counter = at.auth.store.tokens().reserve_counter(token.id).await?;
    let otp = generator.value(u64::try_from(counter).unwrap_or(0), token.otplen());
    let delivery = &at.cfg.delivery;
    let fill = |t: &str| {
        t.replace("{otp}", otp.as_str())
            .replace("{serial}", &token.serial)
            .replace(
                "{user}",
                &at.user
                    .as_ref()
                    .map(|u| u.record.givenname().to_owned())
                    .unwrap_or_default(),
            )
    };
    match token.kind {
        TokenType::Email => {
            let server = token
                .info
                .get("smtp_identifier")
                .cloned()
                .or_else(|| delivery.smtp.clone());
            let mail = Mail {
                to: vec![address.clone()],
                reply_to: None,
                subject: fill(&delivery.email_subject),
                body: fill(&delivery.email_body),
                html: false,
                attachments: Vec::new(),
            };
            at.cfg.notifier.send_mail(server.as_deref(), &mail).await?;
        }
        _ => {
            let gateway = token
                .info
                .get("sms_identifier")
                .cloned()
                .or_else(|| delivery.sms_gateway.clone());
            at.cfg
                .notifier
                .send_sms(
                    gateway.as_deref(),
                    &address,
                    &fill(&delivery.sms_text),
                    Some(otp.as_str()),
                )
                .await?;
        }
    }
    at.trace.add(
        "challenge",
        format!(
            "{}: OTP of counter {counter} sent to {address}",
            token.serial
        ),
    );
    Ok(counter)
}
