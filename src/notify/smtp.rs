//! SMTP through lettre: plain, STARTTLS or implicit TLS, optional authentication, a timeout.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::NotifyError;
use crate::secret::Secret;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (local relays and test sinks only).
    None,
    /// STARTTLS required (port 587).
    StartTls,
    /// Implicit TLS (port 465).
    Tls,
}

/// One configured SMTP server (`[[smtp]]`).
#[derive(Debug, Clone)]
pub struct SmtpServer {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret<String>>,
    /// The From address.
    pub sender: String,
    /// Bound of one whole send (connect, greeting, every command).
    pub timeout: Duration,
}

/// One message.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub to: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub body: String,
    pub html: bool,
    pub attachments: Vec<Attachment>,
}

/// A file sent with a mail (the enrolment QR code).
#[derive(Debug, Clone)]
pub struct Attachment {
    pub filename: String,
    /// `image/png`, …
    pub content_type: String,
    pub body: Vec<u8>,
}

pub(super) struct Sender {
    name: String,
    from: String,
    limit: Duration,
    transport: Result<AsyncSmtpTransport<Tokio1Executor>, String>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("name", &self.name).finish()
    }
}

impl Sender {
    pub(super) fn new(s: &SmtpServer) -> Self {
        super::ensure_tls_provider();
        let builder = match s.tls {
            SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &s.host,
            )),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host),
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host),
        };
        let transport = builder
            .map(|b| {
                let mut b = b.port(s.port).timeout(Some(s.timeout));
                if let (Some(user), Some(pass)) = (&s.username, &s.password) {
                    b = b.credentials(Credentials::new(user.clone(), pass.expose().clone()));
                }
                b.build()
            })
            .map_err(|e| e.to_string());
        Self {
            name: s.name.clone(),
            from: s.sender.clone(),
            limit: s.timeout,
            transport,
        }
    }

    pub(super) async fn send(&self, mail: &Mail) -> Result<(), NotifyError> {
        let err = |message: String| NotifyError::Smtp {
            server: self.name.clone(),
            message,
        };
        let transport = self.transport.as_ref().map_err(|e| err(e.clone()))?;
        let message = build(&self.from, mail)?;
        // lettre's timeout does not cover a server that accepts and never greets; this one
        // bounds the whole exchange, so a login waits at most `timeout` for its mail.
        let limit = self.limit;
        match tokio::time::timeout(limit, transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(err(e.to_string())),
            Err(_) => Err(err(format!("no answer within {limit:?}"))),
        }
    }
}

fn mailbox(text: &str) -> Result<Mailbox, NotifyError> {
    text.trim()
        .parse()
        .map_err(|e| NotifyError::Message(format!("address {text:?}: {e}")))
}

fn build(from: &str, mail: &Mail) -> Result<Message, NotifyError> {
    let mut b = Message::builder()
        .from(mailbox(from)?)
        .subject(mail.subject.clone());
    if mail.to.is_empty() {
        return Err(NotifyError::Message("no recipient".into()));
    }
    for to in &mail.to {
        b = b.to(mailbox(to)?);
    }
    if let Some(r) = &mail.reply_to {
        b = b.reply_to(mailbox(r)?);
    }
    let kind = if mail.html {
        ContentType::TEXT_HTML
    } else {
        ContentType::TEXT_PLAIN
    };
    let text = SinglePart::builder().header(kind).body(mail.body.clone());
    if mail.attachments.is_empty() {
        return b
            .singlepart(text)
            .map_err(|e| NotifyError::Message(e.to_string()));
    }
    let mut parts = MultiPart::mixed().singlepart(text);
    for a in &mail.attachments {
        let ct = ContentType::parse(&a.content_type)
            .map_err(|e| NotifyError::Message(format!("{}: {e}", a.content_type)))?;
        parts = parts.singlepart(
            lettre::message::Attachment::new(a.filename.clone()).body(a.body.clone(), ct),
        );
    }
    b.multipart(parts)
        .map_err(|e| NotifyError::Message(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_build_or_refuse_bad_addresses() {
        let mail = Mail {
            to: vec!["alice@example.com".into()],
            subject: "s".into(),
            body: "<b>x</b>".into(),
            html: true,
            ..Default::default()
        };
        let m = build("otpgate@example.com", &mail).unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(text.contains("Content-Type: text/html"), "{text}");
        let bad = Mail {
            to: vec!["not an address".into()],
            ..mail
        };
        assert!(build("otpgate@example.com", &bad).is_err());
    }

    #[test]
    fn attachments_make_a_multipart_message() {
        let mail = Mail {
            to: vec!["alice@example.com".into()],
            subject: "s".into(),
            body: "your token".into(),
            attachments: vec![Attachment {
                filename: "qrcode.png".into(),
                content_type: "image/png".into(),
                body: vec![0x89, b'P', b'N', b'G'],
            }],
            ..Default::default()
        };
        let text =
            String::from_utf8(build("otpgate@example.com", &mail).unwrap().formatted()).unwrap();
        assert!(text.contains("multipart/mixed"), "{text}");
        assert!(text.contains("filename=\"qrcode.png\""), "{text}");
        assert!(text.contains("Content-Type: image/png"), "{text}");
    }
}
