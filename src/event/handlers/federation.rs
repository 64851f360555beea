//! `Federation` (spec §3.5): forward the request to another authentication server and take its
//! answer: another otpgate or privacyIDEA `/validate/check` over HTTP(S), or a RADIUS server.
//! The transport lives outside the core (the `remote` module), behind
//! [`crate::message::upstream::Upstreams`].

use serde_json::json;

use super::{Done, HandlerError, Run};
use crate::event::definition::BuildEnv;
use crate::event::options::Options;

#[derive(Debug, Clone)]
pub struct ForwardAction {
    pub remote: String,
    pub realm: Option<String>,
    pub resolver: Option<String>,
    pub forward_client_ip: bool,
}

impl ForwardAction {
    pub fn parse(action: &str, opts: &mut Options, env: &BuildEnv) -> Result<Self, String> {
        if action != "forward" {
            return Err(format!(
                "unknown Federation action {action:?} (known: forward)"
            ));
        }
        let remote = match opts.text("privacyIDEA") {
            Some(r) if !r.trim().is_empty() => r,
            _ => opts.required("remote")?,
        };
        if !env.remotes.iter().any(|(n, _)| *n == remote) {
            return Err(format!("{remote:?}: no [[remote]] has that name"));
        }
        if opts.flag("forward_authorization_token") {
            return Err(
                "forward_authorization_token: otpgate has no admin tokens to forward".into(),
            );
        }
        Ok(Self {
            remote,
            realm: opts.text("realm").filter(|r| !r.is_empty()),
            resolver: opts.text("resolver").filter(|r| !r.is_empty()),
            forward_client_ip: opts.flag("forward_client_ip"),
        })
    }

    pub async fn run(&self, run: &mut Run<'_, '_>) -> Result<Done, HandlerError> {
        let mut params = run.request.params_for_forwarding();
        let mut set = |k: &str, v: String| {
            params.retain(|(x, _)| x != k);
            params.push((k.to_owned(), v));
        };
        if let Some(r) = &self.realm {
            set("realm", r.clone());
        }
        if let Some(r) = &self.resolver {
            set("resolver", r.clone());
        }
        if self.forward_client_ip && run.request.client.is_some() {
            set("client", run.request.client_text());
        }
        let upstreams = run.scope.actions.upstreams();
        let (mut answer, origin) = upstreams
            .forward(&self.remote, params)
            .await
            .map_err(|e| HandlerError::new("FederationError", e.to_string()))?;
        if let Some(detail) = answer.detail_mut() {
            detail.insert("origin".into(), json!(origin));
        }
        let value = answer.value();
        match run.response.as_deref_mut() {
            Some(r) => *r = answer,
            None => return Ok(Done::nothing("no response to replace")),
        }
        Ok(Done::ok_with(format!("{} answered {value}", self.remote)))
    }
}
