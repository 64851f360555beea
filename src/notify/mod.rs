//! Outbound notifications shared by the email and SMS token types and the `UserNotification`
//! handler: SMTP servers ([`smtp`], lettre) and HTTP SMS gateways ([`sms`], reqwest).
//!
//! Senders are built once per configuration and identified by name (`emailconfig`,
//! `smsconfig`, `smtp_identifier`). Every send has a timeout, so a dead relay costs a bounded
//! wait and a clear error, never a stuck worker.

pub mod sms;
pub mod smtp;

use std::collections::HashMap;

pub use sms::{SmsBody, SmsGateway, SmsMethod};
pub use smtp::{Attachment, Mail, SmtpServer, SmtpTls};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("no SMTP server named {0:?} is configured")]
    UnknownSmtp(String),
    #[error("no SMS gateway named {0:?} is configured")]
    UnknownSms(String),
    #[error("no SMTP server is configured")]
    NoSmtp,
    #[error("no SMS gateway is configured")]
    NoSms,
    #[error("the message cannot be built: {0}")]
    Message(String),
    #[error("SMTP server {server}: {message}")]
    Smtp { server: String, message: String },
    #[error("SMS gateway {gateway}: {message}")]
    Sms { gateway: String, message: String },
}

/// All senders of one configuration.
#[derive(Debug, Default)]
pub struct Notifier {
    smtp: HashMap<String, smtp::Sender>,
    sms: HashMap<String, sms::Sender>,
    /// The first configured SMTP server / SMS gateway: used when nothing names one.
    default_smtp: Option<String>,
    default_sms: Option<String>,
}

impl Notifier {
    pub fn new(smtp: &[SmtpServer], sms: &[SmsGateway]) -> Self {
        Self {
            smtp: smtp
                .iter()
                .map(|s| (s.name.clone(), smtp::Sender::new(s)))
                .collect(),
            sms: sms
                .iter()
                .map(|g| (g.name.clone(), sms::Sender::new(g)))
                .collect(),
            default_smtp: smtp.first().map(|s| s.name.clone()),
            default_sms: sms.first().map(|g| g.name.clone()),
        }
    }

    /// Send through the named server, or the default one when `server` is `None`.
    pub async fn send_mail(&self, server: Option<&str>, mail: &Mail) -> Result<(), NotifyError> {
        let name = server
            .or(self.default_smtp.as_deref())
            .ok_or(NotifyError::NoSmtp)?;
        let sender = self
            .smtp
            .get(name)
            .ok_or_else(|| NotifyError::UnknownSmtp(name.to_owned()))?;
        let result = sender.send(mail).await;
        metrics::counter!("otpgate_notify_mail_total", "server" => name.to_owned(),
            "result" => if result.is_ok() { "sent" } else { "failed" })
        .increment(1);
        result
    }

    /// Send an SMS through the named gateway, or the default one.
    pub async fn send_sms(
        &self,
        gateway: Option<&str>,
        phone: &str,
        message: &str,
        otp: Option<&str>,
    ) -> Result<(), NotifyError> {
        let name = gateway
            .or(self.default_sms.as_deref())
            .ok_or(NotifyError::NoSms)?;
        let sender = self
            .sms
            .get(name)
            .ok_or_else(|| NotifyError::UnknownSms(name.to_owned()))?;
        let result = sender.send(phone, message, otp).await;
        metrics::counter!("otpgate_notify_sms_total", "gateway" => name.to_owned(),
            "result" => if result.is_ok() { "sent" } else { "failed" })
        .increment(1);
        result
    }

    pub fn has_smtp(&self, name: &str) -> bool {
        self.smtp.contains_key(name)
    }

    pub fn has_sms(&self, name: &str) -> bool {
        self.sms.contains_key(name)
    }
}

/// Install the process-wide rustls crypto provider (ring) once; reqwest and lettre need it.
pub fn ensure_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
