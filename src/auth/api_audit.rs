//! Audit rows of the HTTP API's own endpoints (`/auth`, `/validate/polltransaction`), which do
//! not run the authentication pipeline.

use std::borrow::Cow;
use std::net::IpAddr;

use super::Authenticator;
use crate::store::audit::AuditRow;

/// One API request for the audit trail.
#[derive(Debug, Default)]
pub struct ApiEvent<'a> {
    pub event: &'static str,
    pub user: &'a str,
    pub client: Option<IpAddr>,
    pub success: bool,
    pub authentication: &'a str,
    pub serial: String,
    pub info: String,
    pub action_detail: String,
    pub duration_us: i64,
}

impl Authenticator {
    pub async fn audit_api(&self, e: ApiEvent<'_>) {
        self.audit
            .record(AuditRow {
                id: None,
                time_us: self.clock.now().timestamp_micros(),
                node: self.node.clone(),
                event: Cow::Borrowed(e.event),
                origin: Cow::Borrowed("http"),
                success: e.success,
                authentication: e.authentication.to_owned(),
                user: e.user.to_owned(),
                realm: String::new(),
                resolver: String::new(),
                serial: e.serial,
                token_type: String::new(),
                client: e.client.map(|ip| ip.to_string()).unwrap_or_default(),
                info: e.info,
                action_detail: e.action_detail,
                policies: String::new(),
                duration_us: e.duration_us,
                trace: String::new(),
            })
            .await;
    }
}
