//! Other authentication servers (`[[remote]]`): privacyIDEA or another otpgate over HTTP(S)
//! (`/validate/check`, form-encoded), or a RADIUS server through our own client. Implements
//! [`crate::auth::upstream::Upstreams`] for the Federation handler (and the passthru policy).
//!
//! Not part of the core: this is where protocol clients live, so the core stays free of them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::auth::upstream::{UpstreamError, UpstreamFuture, Upstreams};
use crate::auth::{Authentication, Response};
use crate::radius::client::{self, AccessRequest};
use crate::radius::packet::Code;
use crate::secret::Secret;

/// How to reach a remote.
#[derive(Debug, Clone)]
pub enum RemoteKind {
    /// `{url}/validate/check`.
    Http { url: String, tls_verify: bool },
    Radius {
        address: SocketAddr,
        secret: Secret<Vec<u8>>,
        retries: u32,
    },
}

/// One `[[remote]]`, validated.
#[derive(Debug, Clone)]
pub struct RemoteDef {
    pub name: String,
    pub kind: RemoteKind,
    pub timeout: Duration,
}

impl RemoteDef {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            RemoteKind::Http { .. } => "privacyidea",
            RemoteKind::Radius { .. } => "radius",
        }
    }
}

/// All remotes of a configuration.
#[derive(Debug)]
pub struct Remotes {
    defs: HashMap<String, RemoteDef>,
    http: reqwest::Client,
    http_no_verify: reqwest::Client,
}

impl Remotes {
    pub fn new(defs: &[RemoteDef]) -> Self {
        crate::notify::ensure_tls_provider();
        let build = |verify: bool| {
            reqwest::Client::builder()
                .tls_danger_accept_invalid_certs(!verify)
                .build()
                .unwrap_or_default()
        };
        Self {
            defs: defs.iter().map(|d| (d.name.clone(), d.clone())).collect(),
            http: build(true),
            http_no_verify: build(false),
        }
    }

    async fn http_check(
        &self,
        def: &RemoteDef,
        url: &str,
        verify: bool,
        params: Vec<(String, String)>,
    ) -> Result<(Response, String), UpstreamError> {
        let fail = |message: String| UpstreamError::Failed {
            remote: def.name.clone(),
            message,
        };
        let client = if verify {
            &self.http
        } else {
            &self.http_no_verify
        };
        let endpoint = format!("{url}/validate/check");
        // JSON, not a form: privacyIDEA percent-decodes form values a second time
        let body: Map<String, Value> = params
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let resp = client
            .post(&endpoint)
            .json(&body)
            .timeout(def.timeout)
            .send()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.map_err(|e| {
            fail(format!(
                "HTTP {status}: the answer is not JSON: {}",
                e.without_url()
            ))
        })?;
        if body.get("result").is_none() {
            return Err(fail(format!("HTTP {status}: the answer has no result")));
        }
        Ok((
            Response {
                status_code: status,
                body,
            },
            url.to_owned(),
        ))
    }

    async fn radius_check(
        &self,
        def: &RemoteDef,
        address: SocketAddr,
        secret: &Secret<Vec<u8>>,
        retries: u32,
        params: Vec<(String, String)>,
    ) -> Result<(Response, String), UpstreamError> {
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let user = match (get("user"), get("realm")) {
            (Some(u), Some(r)) if !r.is_empty() && !u.contains('@') => format!("{u}@{r}"),
            (Some(u), _) => u,
            (None, _) => String::new(),
        };
        let req = AccessRequest {
            user,
            password: Secret::new(get("pass").unwrap_or_default()),
            state: get("transaction_id").map(String::into_bytes),
            message_authenticator: true,
            ..Default::default()
        };
        let reply = client::authenticate(address, secret.expose(), &req, def.timeout, retries)
            .await
            .map_err(|e| UpstreamError::Failed {
                remote: def.name.clone(),
                message: e.to_string(),
            })?;
        let message = reply.reply_message();
        let mut detail = Map::new();
        let response = match reply.code {
            Code::AccessAccept => {
                detail.insert(
                    "message".into(),
                    json!(if message.is_empty() {
                        "Access-Accept".to_owned()
                    } else {
                        message
                    }),
                );
                Response::decided(true, Authentication::Accept, detail)
            }
            Code::AccessChallenge => {
                detail.insert("message".into(), json!(message));
                if let Some(state) = reply.state() {
                    detail.insert(
                        "transaction_id".into(),
                        json!(String::from_utf8_lossy(&state)),
                    );
                }
                Response::decided(false, Authentication::Challenge, detail)
            }
            _ => {
                detail.insert(
                    "message".into(),
                    json!(if message.is_empty() {
                        "Access-Reject".to_owned()
                    } else {
                        message
                    }),
                );
                Response::decided(false, Authentication::Reject, detail)
            }
        };
        Ok((response, format!("radius://{address}")))
    }
}

impl Upstreams for Remotes {
    fn forward<'a>(&'a self, remote: &'a str, params: Vec<(String, String)>) -> UpstreamFuture<'a> {
        Box::pin(async move {
            let def = self
                .defs
                .get(remote)
                .ok_or_else(|| UpstreamError::Unknown(remote.to_owned()))?;
            match &def.kind {
                RemoteKind::Http { url, tls_verify } => {
                    self.http_check(def, url, *tls_verify, params).await
                }
                RemoteKind::Radius {
                    address,
                    secret,
                    retries,
                } => {
                    self.radius_check(def, *address, secret, *retries, params)
                        .await
                }
            }
        })
    }
}
