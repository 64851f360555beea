//! `{tag}` replacement (spec §3.2): privacyIDEA's tag dictionary and Python `str.format`
//! rules. `{{` and `}}` are literal braces; an unknown tag is an error (the handler fails); a
//! known tag without a value renders as the empty string. HTML bodies escape tag values.

use std::collections::BTreeMap;

use chrono::{DateTime, Local, TimeDelta, Utc};
use serde_json::Value;

use super::context::Context;
use crate::store::StoreError;

/// A tag in a template that no one knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tag {{{0}}}")]
pub struct UnknownTag(pub String);

/// Tag name → value.
#[derive(Debug, Clone, Default)]
pub struct Tags(BTreeMap<String, String>);

impl Tags {
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(name.to_owned(), value.into());
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Replace the tags in `template`.
    pub fn render(&self, template: &str, html: bool) -> Result<String, UnknownTag> {
        render_with(template, |name| {
            self.0
                .get(name)
                .map(|v| if html { escape_html(v) } else { v.clone() })
        })
    }
}

/// Python `str.format` over a lookup; `{name:spec}` and `{name!r}` use the bare name.
pub fn render_with(
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, UnknownTag> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut chars = template.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|(_, n)| *n) == Some('{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek().map(|(_, n)| *n) == Some('}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let rest = template.get(i + 1..).unwrap_or("");
                let Some(end) = rest.find('}') else {
                    return Err(UnknownTag(rest.to_owned()));
                };
                let inner = rest.get(..end).unwrap_or("");
                let name = inner.split([':', '!']).next().unwrap_or("").trim();
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => return Err(UnknownTag(name.to_owned())),
                }
                for _ in 0..=inner.chars().count() {
                    chars.next();
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            other => out.push(other),
        }
    }
    out
}

/// The long local timestamp of `set tokeninfo` / `set description` tags.
fn long_time(at: DateTime<Utc>) -> String {
    crate::clock::format_long(at)
}

/// `{now}` / `{current_time}` with an optional `+N`/`-N` and unit `s|m|h|d` right after the
/// tag, plus the request tags (Token handler `set description` / `set tokeninfo`).
pub fn render_time_tags(
    template: &str,
    now: DateTime<Utc>,
    extra: &Tags,
) -> Result<String, UnknownTag> {
    // Move `{now}-12h` offsets inside the braces so the lookup sees them.
    let mut normalized = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        normalized.push_str(rest.get(..i).unwrap_or(""));
        let after = rest.get(i..).unwrap_or("");
        let tag = ["{now}", "{current_time}"]
            .into_iter()
            .find(|t| after.starts_with(t));
        match tag {
            Some(t) => {
                let tail = after.get(t.len()..).unwrap_or("");
                let off_len = offset_len(tail);
                normalized.push_str(t.trim_end_matches('}'));
                if off_len > 0 {
                    normalized.push('|');
                    normalized.push_str(tail.get(..off_len).unwrap_or(""));
                }
                normalized.push('}');
                rest = tail.get(off_len..).unwrap_or("");
            }
            None => {
                normalized.push('{');
                rest = after.get(1..).unwrap_or("");
            }
        }
    }
    normalized.push_str(rest);
    render_with(&normalized, |name| {
        let (base, offset) = name.split_once('|').unwrap_or((name, ""));
        match base {
            "now" | "current_time" => {
                let delta = parse_offset(offset).unwrap_or_else(TimeDelta::zero);
                Some(long_time(now + delta))
            }
            other => extra.get(other).map(str::to_owned),
        }
    })
}

fn offset_len(s: &str) -> usize {
    let b = s.as_bytes();
    if !matches!(b.first(), Some(b'+' | b'-')) {
        return 0;
    }
    let digits = b.iter().skip(1).take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || !matches!(b.get(1 + digits), Some(b's' | b'm' | b'h' | b'd')) {
        return 0;
    }
    2 + digits
}

fn parse_offset(s: &str) -> Option<TimeDelta> {
    if s.is_empty() {
        return None;
    }
    crate::dates::parse_offset(s)
}

/// The tag names a template uses (`{{`/`}}` are not tags).
pub fn tag_names(template: &str) -> Vec<String> {
    let names = std::cell::RefCell::new(Vec::new());
    let _ = render_with(template, |name| {
        names.borrow_mut().push(name.to_owned());
        Some(String::new())
    });
    names.into_inner()
}

/// Tags [`request_tags`] provides without a store lookup.
const REQUEST_ONLY: &[&str] = &[
    "admin",
    "realm",
    "action",
    "url",
    "time",
    "date",
    "client_ip",
    "ua_browser",
    "ua_string",
];

/// Whether rendering these templates needs more than [`request_tags`] (then the full
/// dictionary, with the determined user, serial and token, is built).
pub fn need_context(templates: &[&str]) -> bool {
    templates
        .iter()
        .flat_map(|t| tag_names(t))
        .any(|n| !REQUEST_ONLY.contains(&n.as_str()))
}

/// The tags that need no store lookup (Logging messages like the default
/// `event={action} triggered`).
pub fn request_tags(ctx: &Context<'_, '_>, base_url: &str) -> Tags {
    let mut t = Tags::default();
    for name in REQUEST_ONLY {
        t.set(name, request_tag(ctx, base_url, name).unwrap_or_default());
    }
    t
}

/// One of [`request_tags`], computed alone: a template that uses one tag renders without
/// building the others (the Logging handler runs on every login it matches).
pub fn request_tag(ctx: &Context<'_, '_>, base_url: &str, name: &str) -> Option<String> {
    Some(match name {
        "admin" => ctx.request.admin.clone().unwrap_or_default(),
        // `{realm}` is the logged-in user's realm: empty for validate_check and for the CLI.
        "realm" => String::new(),
        "action" => action_path(ctx.event()),
        "url" => base_url.to_owned(),
        "time" => ctx
            .now()
            .with_timezone(&Local)
            .format("%H:%M:%S")
            .to_string(),
        "date" => ctx
            .now()
            .with_timezone(&Local)
            .format("%Y-%m-%d")
            .to_string(),
        "client_ip" => ctx.client().map(|ip| ip.to_string()).unwrap_or_default(),
        "ua_string" => user_agent_tags(ctx.request).1.to_owned(),
        "ua_browser" => user_agent_tags(ctx.request).0.to_owned(),
        _ => return None,
    })
}

/// privacyIDEA's tag dictionary for notifications, webhooks and logging.
pub async fn notification_tags(
    ctx: &mut Context<'_, '_>,
    base_url: &str,
) -> Result<Tags, StoreError> {
    let mut t = request_tags(ctx, base_url);
    let d = ctx.determined().await?.clone();
    let serial = match (&d.serial, &d.user) {
        (Some(s), _) => s.clone(),
        (None, Some(_)) => ctx
            .user_tokens()
            .await?
            .map(|ts| {
                ts.iter()
                    .map(|t| t.serial.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        (None, None) => String::new(),
    };
    t.set("serial", serial);
    let (given, sur, login, urealm) = match &d.user {
        Some(u) => (
            u.record.givenname().to_owned(),
            u.record.surname().to_owned(),
            u.login.clone(),
            u.realm.clone(),
        ),
        None => Default::default(),
    };
    t.set("user", given.clone());
    t.set("givenname", given);
    t.set("surname", sur);
    t.set("username", login);
    t.set("userrealm", urealm);
    t.set(
        "tokentype",
        d.token.as_ref().map(|x| x.kind.as_str()).unwrap_or(""),
    );
    t.set(
        "tokendescription",
        d.token
            .as_ref()
            .map(|x| x.description.clone())
            .unwrap_or_default(),
    );
    let detail = |k: &str| {
        ctx.response()
            .and_then(|r| r.body.get("detail"))
            .and_then(|x| x.get(k))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Object(o) => o
                    .get("value")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    t.set("registrationcode", detail("registrationcode"));
    t.set("pin", detail("pin"));
    t.set("googleurl_value", detail("googleurl"));
    t.set("googleurl_img", "");
    t.set("pushurl_value", "");
    t.set("pushurl_img", "");
    t.set("container_serial", "");
    t.set("container_url_value", "");
    t.set("container_url_img", "");
    t.set("recipient_givenname", "");
    t.set("recipient_surname", "");
    t.set("challenge", detail("challenge"));
    Ok(t)
}

/// The request path privacyIDEA would show for an event (`{action}`).
pub fn action_path(event: &str) -> String {
    match event {
        "validate_check" => "/validate/check".into(),
        "token_init" => "/token/init".into(),
        "token_delete" => "/token/<serial>".into(),
        other => match other.strip_prefix("token_") {
            Some(op) => format!("/token/{op}"),
            None => format!("/{other}"),
        },
    }
}

/// `{ua_browser}` and `{ua_string}`: the client software is HTTP's `User-Agent`, for RADIUS
/// the NAS-Identifier (the NAS's name for itself); the browser is privacyIDEA's product name
/// at its start (`privacyIDEA-LDAP-Proxy` of `privacyIDEA-LDAP-Proxy/1.2 …`, `Mozilla`).
pub fn user_agent_tags(r: &crate::message::Request) -> (&str, &str) {
    let ua = r
        .params
        .get("User-Agent")
        .or_else(|| r.params.get("NAS-Identifier"))
        .map_or("", String::as_str);
    let end = ua
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(ua.len());
    (&ua[..end], ua)
}

/// The tags every Token-style template knows about the request's client: `{client_ip}`,
/// `{ua_browser}`, `{ua_string}`.
pub fn client_tags(r: &crate::message::Request, tags: &mut Tags) {
    tags.set(
        "client_ip",
        r.client.map(|c| c.to_string()).unwrap_or_default(),
    );
    let (browser, ua) = user_agent_tags(r);
    tags.set("ua_browser", browser.to_owned());
    tags.set("ua_string", ua.to_owned());
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn user_agents_name_their_product() {
        let mut r = crate::message::Request::empty();
        assert_eq!(user_agent_tags(&r), ("", ""));
        r.params.insert("NAS-Identifier".into(), "vpn-gw1".into());
        assert_eq!(user_agent_tags(&r), ("vpn-gw1", "vpn-gw1"));
        r.params.insert(
            "User-Agent".into(),
            "FreeRADIUS/3.0 privacyidea_radius.pm".into(),
        );
        assert_eq!(
            user_agent_tags(&r),
            ("FreeRADIUS", "FreeRADIUS/3.0 privacyidea_radius.pm")
        );
    }

    #[test]
    fn python_format_rules() {
        let mut t = Tags::default();
        t.set("user", "Alice <a>");
        t.set("empty", "");
        assert_eq!(t.render("Hi {user}!", false).unwrap(), "Hi Alice <a>!");
        assert_eq!(t.render("Hi {user}!", true).unwrap(), "Hi Alice &lt;a&gt;!");
        assert_eq!(
            t.render("{{literal}} {empty}.", false).unwrap(),
            "{literal} ."
        );
        assert_eq!(
            t.render("{unknown}", false),
            Err(UnknownTag("unknown".into()))
        );
        assert_eq!(t.render("{user:>5}", false).unwrap(), "Alice <a>");
    }

    #[test]
    fn time_tags_with_offsets() {
        let now = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
        let extra = Tags::default();
        let s = render_time_tags("at {now}", now, &extra).unwrap();
        assert_eq!(s, format!("at {}", long_time(now)));
        let s = render_time_tags("it was {current_time}-12h...", now, &extra).unwrap();
        assert_eq!(
            s,
            format!("it was {}...", long_time(now - TimeDelta::hours(12)))
        );
        assert!(render_time_tags("{nope}", now, &extra).is_err());
    }
}
