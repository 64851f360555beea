//! `[[smtp]]`, `[[sms_gateway]]`, `[[remote]]` and `[handlers]`, validated.

use std::path::Path;
use std::time::Duration;

use regex::Regex;

use super::raw::RawConfig;
use super::validate::{Issues, resolve_path};
use crate::auth::DeliverySettings;
use crate::event::HandlerSettings;
use crate::event::definition::BuildEnv;
use crate::notify::{SmsBody, SmsGateway, SmsMethod, SmtpServer, SmtpTls};
use crate::remote::{RemoteDef, RemoteKind};
use crate::secret::Secret;

/// A secret given inline or as a file (first line).
pub(super) fn secret(
    inline: &Option<String>,
    file: &Option<String>,
    key: &str,
    base: &Path,
    issues: &mut Issues,
) -> Option<String> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            issues.push(key, "give the value or a file, not both");
            None
        }
        (Some(s), None) => Some(s.clone()),
        (None, Some(f)) => {
            let path = resolve_path(base, f);
            match std::fs::read_to_string(&path) {
                Ok(text) => Some(text.lines().next().unwrap_or("").to_owned()),
                Err(e) => {
                    issues.push(format!("{key}_file"), format!("{}: {e}", path.display()));
                    None
                }
            }
        }
        (None, None) => None,
    }
}

pub(super) fn unique(
    names: &mut Vec<String>,
    name: &str,
    key: String,
    what: &str,
    issues: &mut Issues,
) {
    if name.trim().is_empty() {
        issues.push(key, "the name must not be empty");
    } else if names.iter().any(|n| n == name) {
        issues.push(key, format!("{what} {name:?} is defined twice"));
    } else {
        names.push(name.to_owned());
    }
}

/// A timeout in seconds (fractions allowed), `default` when absent; 10 minutes at most.
pub(super) fn seconds(
    value: Option<f64>,
    default: f64,
    key: &str,
    issues: &mut Issues,
) -> Duration {
    let s = value.unwrap_or(default);
    if !(s > 0.0 && s <= 600.0) {
        issues.push(
            key,
            format!("{s} is not a number of seconds between 0 and 600"),
        );
        return Duration::from_secs_f64(default);
    }
    Duration::from_secs_f64(s)
}

pub(super) fn smtp(raw: &RawConfig, base: &Path, issues: &mut Issues) -> Vec<SmtpServer> {
    let mut names = Vec::new();
    let mut out = Vec::new();
    for (i, s) in raw.smtp.iter().enumerate() {
        let key = format!("smtp[{i}]");
        unique(
            &mut names,
            &s.name,
            format!("{key}.name"),
            "SMTP server",
            issues,
        );
        let tls = match s.tls.as_deref().map(str::trim) {
            None | Some("starttls") => SmtpTls::StartTls,
            Some("tls") => SmtpTls::Tls,
            Some("none") => SmtpTls::None,
            Some(other) => {
                issues.push(
                    format!("{key}.tls"),
                    format!("{other:?}: use none, starttls or tls"),
                );
                continue;
            }
        };
        let password = secret(
            &s.password,
            &s.password_file,
            &format!("{key}.password"),
            base,
            issues,
        );
        if password.is_some() != s.username.is_some() {
            issues.push(
                format!("{key}.username"),
                "give username and password together",
            );
        }
        if s.sender.parse::<lettre::message::Mailbox>().is_err() {
            issues.push(
                format!("{key}.sender"),
                format!("{:?} is not a mail address", s.sender),
            );
        }
        out.push(SmtpServer {
            name: s.name.clone(),
            host: s.host.clone(),
            port: s.port.unwrap_or(match tls {
                SmtpTls::None => 25,
                SmtpTls::StartTls => 587,
                SmtpTls::Tls => 465,
            }),
            tls,
            username: s.username.clone(),
            password: password.map(Secret::new),
            sender: s.sender.clone(),
            timeout: seconds(s.timeout, 2.0, &format!("{key}.timeout"), issues),
        });
    }
    out
}

pub(super) fn sms(raw: &RawConfig, issues: &mut Issues) -> Vec<SmsGateway> {
    let mut names = Vec::new();
    let mut out = Vec::new();
    for (i, g) in raw.sms_gateway.iter().enumerate() {
        let key = format!("sms_gateway[{i}]");
        unique(
            &mut names,
            &g.name,
            format!("{key}.name"),
            "SMS gateway",
            issues,
        );
        if !(g.url.starts_with("http://") || g.url.starts_with("https://")) {
            issues.push(
                format!("{key}.url"),
                format!("{:?} is not an http(s) URL", g.url),
            );
        }
        let method = match g.method.as_deref().map(str::to_ascii_uppercase).as_deref() {
            None | Some("POST") => SmsMethod::Post,
            Some("GET") => SmsMethod::Get,
            Some(other) => {
                issues.push(
                    format!("{key}.method"),
                    format!("{other:?}: use GET or POST"),
                );
                SmsMethod::Post
            }
        };
        let body = match g.body.as_deref() {
            None | Some("form") => SmsBody::Form,
            Some("json") => SmsBody::Json,
            Some(other) => {
                issues.push(
                    format!("{key}.body"),
                    format!("{other:?}: use form or json"),
                );
                SmsBody::Form
            }
        };
        let success_regex = match &g.success_regex {
            None => None,
            Some(r) => match Regex::new(r) {
                Ok(re) => Some(re),
                Err(e) => {
                    issues.push(format!("{key}.success_regex"), e.to_string());
                    None
                }
            },
        };
        out.push(SmsGateway {
            name: g.name.clone(),
            url: g.url.clone(),
            method,
            body,
            parameters: g.parameters.clone(),
            headers: g.headers.clone(),
            success_status: g.success_status.clone(),
            success_regex,
            timeout: seconds(g.timeout, 2.0, &format!("{key}.timeout"), issues),
        });
    }
    out
}

pub(super) fn remotes(raw: &RawConfig, base: &Path, issues: &mut Issues) -> Vec<RemoteDef> {
    let mut names = Vec::new();
    let mut out = Vec::new();
    for (i, r) in raw.remote.iter().enumerate() {
        let key = format!("remote[{i}]");
        unique(&mut names, &r.name, format!("{key}.name"), "remote", issues);
        let timeout = seconds(r.timeout, 1.0, &format!("{key}.timeout"), issues);
        let kind = match r.kind.as_str() {
            "privacyidea" | "otpgate" => {
                let Some(url) = r
                    .url
                    .clone()
                    .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
                else {
                    issues.push(
                        format!("{key}.url"),
                        "a privacyidea remote needs an http(s) url",
                    );
                    continue;
                };
                RemoteKind::Http {
                    url: url.trim_end_matches('/').to_owned(),
                    tls_verify: r.tls_verify.unwrap_or(true),
                }
            }
            "radius" => {
                let addr = r.address.as_deref().and_then(|a| {
                    use std::net::ToSocketAddrs;
                    a.to_socket_addrs().ok()?.next()
                });
                let Some(address) = addr else {
                    issues.push(
                        format!("{key}.address"),
                        "a radius remote needs address = \"host:port\"",
                    );
                    continue;
                };
                let Some(secret) = secret(
                    &r.secret,
                    &r.secret_file,
                    &format!("{key}.secret"),
                    base,
                    issues,
                ) else {
                    issues.push(
                        format!("{key}.secret"),
                        "a radius remote needs secret or secret_file",
                    );
                    continue;
                };
                RemoteKind::Radius {
                    address,
                    secret: Secret::new(secret.into_bytes()),
                    retries: r.retries.unwrap_or(2).max(1),
                }
            }
            other => {
                issues.push(
                    format!("{key}.type"),
                    format!("{other:?}: use privacyidea or radius"),
                );
                continue;
            }
        };
        out.push(RemoteDef {
            name: r.name.clone(),
            kind,
            timeout,
        });
    }
    out
}

pub(super) fn handlers(raw: &RawConfig, base: &Path, issues: &mut Issues) -> HandlerSettings {
    let h = &raw.handlers;
    let d = HandlerSettings::default();
    let script_dir = h
        .script_directory
        .as_deref()
        .map_or(d.script_dir.clone(), |p| resolve_path(base, p));
    let spool_dir = h
        .spool_directory
        .as_deref()
        .map_or(d.spool_dir.clone(), |p| resolve_path(base, p));
    let webhook_timeout = match h.webhook_timeout {
        Some(s) => seconds(Some(s), 2.0, "handlers.webhook_timeout", issues),
        None => d.webhook_timeout,
    };
    let http = reqwest::Client::builder()
        .timeout(webhook_timeout)
        .build()
        .unwrap_or_else(|e| {
            issues.push("handlers", format!("the HTTP client cannot be built: {e}"));
            reqwest::Client::new()
        });
    HandlerSettings {
        script_dir,
        script_timeout: h.script_timeout.unwrap_or(d.script_timeout).max(1),
        spool_dir,
        base_url: h.base_url.clone().unwrap_or_default(),
        webhook_timeout,
        http,
    }
}

pub(super) fn delivery(raw: &RawConfig, env: &BuildEnv, issues: &mut Issues) -> DeliverySettings {
    let d = DeliverySettings::default();
    let e = &raw.email_token;
    let s = &raw.sms_token;
    if let Some(name) = &e.smtp
        && !env.smtp.contains(name)
    {
        issues.push(
            "email_token.smtp",
            format!("no [[smtp]] server named {name:?}"),
        );
    }
    if let Some(name) = &s.gateway
        && !env.sms.contains(name)
    {
        issues.push(
            "sms_token.gateway",
            format!("no [[sms_gateway]] named {name:?}"),
        );
    }
    let mut seconds = |key: &str, v: Option<i64>, default: chrono::TimeDelta| match v {
        Some(v) if v <= 0 => {
            issues.push(key, "must be positive");
            default
        }
        Some(v) => chrono::TimeDelta::seconds(v),
        None => default,
    };
    DeliverySettings {
        email_validity: seconds("email_token.validity", e.validity, d.email_validity),
        sms_validity: seconds("sms_token.validity", s.validity, d.sms_validity),
        smtp: e.smtp.clone(),
        email_subject: e.subject.clone().unwrap_or(d.email_subject),
        email_body: e.body.clone().unwrap_or(d.email_body),
        sms_gateway: s.gateway.clone(),
        sms_text: s.text.clone().unwrap_or(d.sms_text),
    }
}
