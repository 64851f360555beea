//! `WebHook` (spec §3.9): POST a JSON or form body to a URL, optionally with tags replaced.

use serde_json::Value;

use super::{Done, HandlerError, Run};
use crate::event::options::Options;
use crate::event::tags::{Tags, notification_tags};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Json,
    Form,
}

#[derive(Debug, Clone)]
pub struct WebHookAction {
    pub url: String,
    pub content: ContentType,
    pub data: String,
    pub replace: bool,
}

impl WebHookAction {
    pub fn parse(action: &str, opts: &mut Options) -> Result<Self, String> {
        if action != "post_webhook" {
            return Err(format!(
                "unknown WebHook action {action:?} (known: post_webhook)"
            ));
        }
        let url = opts.required("URL")?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("URL {url:?} is not an http(s) URL"));
        }
        let content = match opts.text("content_type").as_deref().map(str::trim) {
            None | Some("") | Some("application/json") | Some("json") => ContentType::Json,
            Some("application/x-www-form-urlencoded") | Some("urlencoded") => ContentType::Form,
            Some(other) => {
                return Err(format!(
                    "content_type {other:?}: use application/json or application/x-www-form-urlencoded"
                ));
            }
        };
        let data = opts.text("data").unwrap_or_default();
        let replace = opts.flag("replace");
        if content == ContentType::Json && !data.trim().is_empty() {
            serde_json::from_str::<Value>(&data).map_err(|e| format!("data is not JSON: {e}"))?;
        }
        Ok(Self {
            url,
            content,
            data,
            replace,
        })
    }

    pub async fn run(&self, run: &mut Run<'_, '_>) -> Result<Done, HandlerError> {
        let env = run.scope.env;
        let tags = if self.replace {
            let mut ctx = run.ctx();
            let mut t = notification_tags(&mut ctx, &env.handlers.base_url)
                .await
                .map_err(HandlerError::store)?;
            let d = ctx.determined().await.map_err(HandlerError::store)?.clone();
            let request_login = d.user.as_ref().map(|u| u.login.clone());
            t.set(
                "logged_in_user",
                request_login
                    .clone()
                    .or_else(|| ctx.request.admin.clone())
                    .unwrap_or_default(),
            );
            let user_realm = d.user.as_ref().map(|u| u.realm.clone()).unwrap_or_default();
            t.set("realm", user_realm.clone());
            t.set("user_realm", user_realm);
            t.set("token_serial", d.serial.clone().unwrap_or_default());
            t.set(
                "token_owner",
                d.user
                    .as_ref()
                    .map(|u| u.record.givenname().to_owned())
                    .unwrap_or_default(),
            );
            Some(t)
        } else {
            None
        };
        let client = env.handlers.http.clone();
        let timeout = env.handlers.webhook_timeout;
        let req = match self.content {
            ContentType::Json => {
                let mut body: Value = if self.data.trim().is_empty() {
                    Value::Object(Default::default())
                } else {
                    serde_json::from_str(&self.data)
                        .map_err(|e| HandlerError::new("ValueError", e.to_string()))?
                };
                if let Some(t) = &tags {
                    replace_json(&mut body, t)?;
                }
                client.post(&self.url).json(&body)
            }
            ContentType::Form => {
                let data = match &tags {
                    Some(t) => t
                        .render(&self.data, false)
                        .map_err(|e| HandlerError::new("UnknownTag", e.to_string()))?,
                    None => self.data.clone(),
                };
                client
                    .post(&self.url)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(data)
            }
        };
        match req.timeout(timeout).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                tracing::info!(target: "otpgate::event", url = %self.url, status, "webhook posted");
                Ok(Done::ok_with(format!("HTTP {status}")))
            }
            Err(e) => {
                tracing::warn!(target: "otpgate::event", url = %self.url, error = %e, "webhook failed");
                Ok(Done::nothing("connection failed"))
            }
        }
    }
}

/// Replace tags in every string key and value, recursively.
fn replace_json(v: &mut Value, tags: &Tags) -> Result<(), HandlerError> {
    let render = |s: &str| {
        tags.render(s, false)
            .map_err(|e| HandlerError::new("UnknownTag", e.to_string()))
    };
    match v {
        Value::String(s) => *s = render(s)?,
        Value::Array(items) => {
            for i in items {
                replace_json(i, tags)?;
            }
        }
        Value::Object(map) => {
            let old = std::mem::take(map);
            for (k, mut val) in old {
                replace_json(&mut val, tags)?;
                map.insert(render(&k)?, val);
            }
        }
        _ => {}
    }
    Ok(())
}
