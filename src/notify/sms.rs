//! SMS through an HTTP gateway: a URL, GET or POST, form or JSON parameters with the tags
//! `{phone}`, `{otp}` and `{message}`, extra headers, success by status code and optionally a
//! regular expression on the answer body.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;

use super::NotifyError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsMethod {
    Get,
    Post,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsBody {
    Form,
    Json,
}

/// One configured gateway (`[[sms_gateway]]`).
#[derive(Debug, Clone)]
pub struct SmsGateway {
    pub name: String,
    pub url: String,
    pub method: SmsMethod,
    pub body: SmsBody,
    /// Parameter name → value template.
    pub parameters: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    /// Status codes that mean "sent" (default: any 2xx).
    pub success_status: Vec<u16>,
    pub success_regex: Option<Regex>,
    pub timeout: Duration,
}

pub(super) struct Sender {
    gateway: SmsGateway,
    client: Result<reqwest::Client, String>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("name", &self.gateway.name)
            .finish()
    }
}

fn fill(template: &str, phone: &str, message: &str, otp: &str) -> String {
    template
        .replace("{phone}", phone)
        .replace("{otp}", otp)
        .replace("{message}", message)
}

impl Sender {
    pub(super) fn new(g: &SmsGateway) -> Self {
        super::ensure_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(g.timeout)
            .build()
            .map_err(|e| e.to_string());
        Self {
            gateway: g.clone(),
            client,
        }
    }

    pub(super) async fn send(
        &self,
        phone: &str,
        message: &str,
        otp: Option<&str>,
    ) -> Result<(), NotifyError> {
        let g = &self.gateway;
        let err = |message: String| NotifyError::Sms {
            gateway: g.name.clone(),
            message,
        };
        let client = self.client.as_ref().map_err(|e| err(e.clone()))?;
        let otp = otp.unwrap_or("");
        let params: Vec<(String, String)> = g
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), fill(v, phone, message, otp)))
            .collect();
        let url = fill(g.url.as_str(), phone, message, otp);
        let mut req = match g.method {
            SmsMethod::Get => client.get(&url).query(&params),
            SmsMethod::Post => match g.body {
                SmsBody::Form => client.post(&url).form(&params),
                SmsBody::Json => {
                    let map: serde_json::Map<String, serde_json::Value> = params
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::Value::String(v)))
                        .collect();
                    client.post(&url).json(&map)
                }
            },
        };
        for (k, v) in &g.headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| err(e.to_string()))?;
        let status = resp.status().as_u16();
        let ok_status = if g.success_status.is_empty() {
            (200..300).contains(&status)
        } else {
            g.success_status.contains(&status)
        };
        if !ok_status {
            return Err(err(format!("HTTP status {status}")));
        }
        if let Some(re) = &g.success_regex {
            let body = resp.text().await.map_err(|e| err(e.to_string()))?;
            if !re.is_match(&body) {
                return Err(err("the answer does not match success_regex".into()));
            }
        }
        Ok(())
    }
}
