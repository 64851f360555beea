//! `UserNotification` (spec §3.2): `sendmail` through a configured SMTP server, `sendsms`
//! through a configured SMS gateway, `savefile` into the spool directory.

use std::path::{Component, Path, PathBuf};

use super::{Done, HandlerError, Run};
use crate::event::definition::BuildEnv;
use crate::event::options::Options;
use crate::event::tags::notification_tags;
use crate::notify::{Attachment, Mail};
use crate::users::ResolvedUser;

pub const ACTIONS: &[&str] = &["sendmail", "sendsms", "savefile"];

pub const DEFAULT_SUBJECT: &str = "An action was performed on your token.";
pub const DEFAULT_BODY: &str = "Hello {user},\n\nthe administrator {admin}@{realm} performed the action\n{action} on your token {serial}.\n\nTo check your tokens you may login to the Web UI:\n{url}\n";
const DEFAULT_SMS: &str = "{action} was performed on your token {serial}";

/// Who gets the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// The token owner; the address is in this user attribute.
    TokenOwner(String),
    /// The administrator acting, found in the directory by the admin's login (for an
    /// authentication: nobody).
    LoggedInUser(String),
    /// Every user of a realm that has an email address.
    AdminRealm(String),
    Email(Vec<String>),
    None,
}

impl Recipient {
    /// Why nobody was found, for the trace.
    fn describe(&self) -> String {
        match self {
            Self::TokenOwner(attr) => format!("no token owner with an attribute {attr}"),
            Self::LoggedInUser(attr) => {
                format!("no logged-in user (an administrator) with an attribute {attr}")
            }
            Self::AdminRealm(realm) => format!("no user of realm {realm} has an email"),
            Self::Email(_) | Self::None => "no address".into(),
        }
    }

    fn parse(kind: &str, opts: &mut Options, prefix: &str) -> Result<Self, String> {
        Ok(match kind.trim() {
            "" | "tokenowner" => Self::TokenOwner(
                opts.text(&format!("{prefix} tokenowner"))
                    .filter(|a| !a.is_empty())
                    .unwrap_or_else(|| "email".into()),
            ),
            "logged_in_user" => Self::LoggedInUser(
                opts.text(&format!("{prefix} logged_in_user"))
                    .filter(|a| !a.is_empty())
                    .unwrap_or_else(|| "email".into()),
            ),
            "admin realm" => Self::AdminRealm(opts.required(&format!("{prefix} admin realm"))?),
            "email" => Self::Email(
                opts.required(&format!("{prefix} email"))?
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            ),
            "no reply to" if prefix == "reply_to" => Self::None,
            "internal admin" => {
                return Err("internal admin: otpgate has no internal administrators with addresses; use email".into());
            }
            other => {
                return Err(format!(
                    "{prefix} {other:?}: use tokenowner, logged_in_user, admin realm or email"
                ));
            }
        })
    }
}

#[derive(Debug, Clone)]
pub enum NotifyAction {
    SendMail {
        server: String,
        to: Recipient,
        reply_to: Recipient,
        subject: String,
        body: String,
        html: bool,
        /// Attach the enrolled token's QR code as a PNG (`token_init`).
        attach_qrcode: bool,
    },
    SendSms {
        gateway: String,
        body: String,
    },
    SaveFile {
        spool: PathBuf,
        filename: String,
        body: String,
    },
}

/// `file:PATH` bodies are read at load time.
fn body_option(opts: &mut Options, default: &str) -> Result<String, String> {
    match opts.text("body") {
        None => Ok(default.to_owned()),
        Some(b) if b.is_empty() => Ok(default.to_owned()),
        Some(b) => match b.strip_prefix("file:") {
            Some(path) => std::fs::read_to_string(path.trim())
                .map_err(|e| format!("body file {}: {e}", path.trim())),
            None => Ok(b),
        },
    }
}

impl NotifyAction {
    pub fn parse(action: &str, opts: &mut Options, env: &BuildEnv) -> Result<Self, String> {
        match action {
            "sendmail" => {
                let server = opts.required("emailconfig")?;
                if !env.smtp.contains(&server) {
                    return Err(format!(
                        "emailconfig {server:?}: no [[smtp]] server has that name"
                    ));
                }
                let to_kind = opts.text("To").unwrap_or_default();
                let to = Recipient::parse(&to_kind, opts, "To")?;
                let reply_kind = opts.text("reply_to").unwrap_or_default();
                let reply_to = if reply_kind.trim().is_empty() {
                    Recipient::None
                } else {
                    Recipient::parse(&reply_kind, opts, "reply_to")?
                };
                let attach_qrcode = opts.flag("attach_qrcode");
                let html = match opts.text("mimetype").as_deref().map(str::trim) {
                    None | Some("") | Some("plain") => false,
                    Some("html") => true,
                    Some(other) => return Err(format!("mimetype {other:?}: use plain or html")),
                };
                Ok(Self::SendMail {
                    server,
                    to,
                    reply_to,
                    attach_qrcode,
                    subject: opts
                        .text("subject")
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| DEFAULT_SUBJECT.into()),
                    body: body_option(opts, DEFAULT_BODY)?,
                    html,
                })
            }
            "sendsms" => {
                let gateway = opts.required("smsconfig")?;
                if !env.sms.contains(&gateway) {
                    return Err(format!(
                        "smsconfig {gateway:?}: no [[sms_gateway]] has that name"
                    ));
                }
                match opts.text("To").as_deref().map(str::trim) {
                    None | Some("") | Some("tokenowner") => {}
                    Some(other) => {
                        return Err(format!(
                            "To {other:?}: sendsms sends to the tokenowner only"
                        ));
                    }
                }
                Ok(Self::SendSms {
                    gateway,
                    body: body_option(opts, DEFAULT_SMS)?,
                })
            }
            "savefile" => Ok(Self::SaveFile {
                spool: env.spool_dir.clone(),
                filename: opts.required("filename")?,
                body: {
                    let b = body_option(opts, "")?;
                    if b.is_empty() {
                        return Err("option \"body\" is required".into());
                    }
                    b
                },
            }),
            other => Err(format!(
                "unknown UserNotification action {other:?} (known: {})",
                ACTIONS.join(", ")
            )),
        }
    }

    pub async fn run(&self, run: &mut Run<'_, '_>) -> Result<Done, HandlerError> {
        let env = run.scope.env;
        let mut tags = {
            let mut ctx = run.ctx();
            notification_tags(&mut ctx, &env.handlers.base_url)
                .await
                .map_err(HandlerError::store)?
        };
        match self {
            Self::SendMail {
                server,
                to,
                reply_to,
                subject,
                body,
                html,
                attach_qrcode,
            } => {
                let recipients = recipients_of(run, to).await?;
                let Some(first) = recipients.first() else {
                    // upstream reports success here (#4281); a mail nobody gets is a failure
                    return Ok(Done::nothing(format!("no recipient: {}", to.describe())));
                };
                tags.set("recipient_givenname", first.1.clone());
                tags.set("recipient_surname", first.2.clone());
                let reply = recipients_of(run, reply_to)
                    .await?
                    .into_iter()
                    .next()
                    .map(|r| r.0);
                let render = |t: &str, html: bool| {
                    tags.render(t, html)
                        .map_err(|e| HandlerError::new("UnknownTag", e.to_string()))
                };
                let mail = Mail {
                    to: recipients.iter().map(|r| r.0.clone()).collect(),
                    reply_to: reply,
                    subject: render(subject, false)?,
                    body: render(body, *html)?,
                    html: *html,
                    attachments: match tags.get("googleurl_value").filter(|u| !u.is_empty()) {
                        Some(uri) if *attach_qrcode => vec![Attachment {
                            filename: "qrcode.png".into(),
                            content_type: "image/png".into(),
                            body: crate::token::enroll::qr_png(uri)
                                .map_err(|e| HandlerError::new("QrError", e.to_string()))?,
                        }],
                        _ => Vec::new(),
                    },
                };
                match env.notifier.send_mail(Some(server), &mail).await {
                    Ok(()) => Ok(Done::ok_with(format!("Sent to {}", mail.to.join(", ")))),
                    Err(e) => {
                        tracing::warn!(target: "otpgate::event", error = %e, "notification mail not sent");
                        Ok(Done::nothing(format!("Failed: {}.", mail.to.join(", "))))
                    }
                }
            }
            Self::SendSms { gateway, body } => {
                let user = run.determined_user().await?;
                let Some(phone) = user.and_then(|u| u.record.attribute("mobile")) else {
                    return Ok(Done::nothing("no recipient: the token owner has no mobile"));
                };
                let text = tags
                    .render(body, false)
                    .map_err(|e| HandlerError::new("UnknownTag", e.to_string()))?;
                match env
                    .notifier
                    .send_sms(Some(gateway), &phone, &text, None)
                    .await
                {
                    Ok(()) => Ok(Done::ok_with(format!("Sent to {phone}"))),
                    Err(e) => {
                        tracing::warn!(target: "otpgate::event", error = %e, "notification SMS not sent");
                        Ok(Done::nothing(format!("Failed: {phone}.")))
                    }
                }
            }
            Self::SaveFile {
                spool,
                filename,
                body,
            } => {
                let random = crate::crypto::random_string(16, crate::crypto::ALPHANUMERIC)
                    .map_err(|e| HandlerError::new("RandomError", e.to_string()))?;
                tags.set("random", random);
                let name = tags
                    .render(filename, false)
                    .map_err(|e| HandlerError::new("UnknownTag", e.to_string()))?;
                let text = tags
                    .render(body, false)
                    .map_err(|e| HandlerError::new("UnknownTag", e.to_string()))?;
                let path = inside_spool(spool, &name).ok_or_else(|| {
                    HandlerError::new("PathError", format!("{name:?} leaves the spool directory"))
                })?;
                tokio::fs::create_dir_all(spool)
                    .await
                    .map_err(|e| HandlerError::new("IOError", e.to_string()))?;
                tokio::fs::write(&path, text).await.map_err(|e| {
                    HandlerError::new("IOError", format!("{}: {e}", path.display()))
                })?;
                Ok(Done::ok_with(path.display().to_string()))
            }
        }
    }
}

/// (address, givenname, surname) of each recipient.
async fn recipients_of(
    run: &mut Run<'_, '_>,
    r: &Recipient,
) -> Result<Vec<(String, String, String)>, HandlerError> {
    Ok(match r {
        Recipient::None => Vec::new(),
        Recipient::LoggedInUser(attr) => run
            .logged_in_user()
            .await
            .and_then(|u| addressed(&u, attr))
            .into_iter()
            .collect(),
        Recipient::TokenOwner(attr) => run
            .determined_user()
            .await?
            .and_then(|u| addressed(&u, attr))
            .into_iter()
            .collect(),
        Recipient::AdminRealm(realm) => run
            .scope
            .env
            .directory
            .users_of_realm(realm)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(target: "otpgate::event", error = %e, "the admin realm's users could not be read");
                Vec::new()
            })
            .iter()
            .filter_map(|u| addressed(u, "email"))
            .collect(),
        Recipient::Email(list) => list
            .iter()
            .map(|a| (a.clone(), String::new(), String::new()))
            .collect(),
    })
}

/// (address, givenname, surname) of a user with the address attribute.
fn addressed(u: &ResolvedUser, attr: &str) -> Option<(String, String, String)> {
    u.record.attribute(attr).map(|a| {
        (
            a,
            u.record.givenname().to_owned(),
            u.record.surname().to_owned(),
        )
    })
}

/// `spool/name` with leading separators stripped; `None` if the normalised path leaves the
/// spool directory.
pub fn inside_spool(spool: &Path, name: &str) -> Option<PathBuf> {
    let name = name.trim_start_matches(['/', '\\']);
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    if out.as_os_str().is_empty() {
        return None;
    }
    Some(spool.join(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spool_directory_cannot_be_left() {
        let spool = Path::new("/var/spool/n");
        assert_eq!(inside_spool(spool, "a.txt"), Some(spool.join("a.txt")));
        assert_eq!(inside_spool(spool, "/a.txt"), Some(spool.join("a.txt")));
        assert_eq!(
            inside_spool(spool, "sub/../b.txt"),
            Some(spool.join("b.txt"))
        );
        assert_eq!(inside_spool(spool, "../x"), None);
        assert_eq!(inside_spool(spool, "a/../../x"), None);
        assert_eq!(inside_spool(spool, ""), None);
    }
}
