//! Audit rows and POST event handlers of the HTTP API's own endpoints (`/auth`,
//! `/validate/polltransaction`), which do not run the authentication pipeline.

use std::borrow::Cow;
use std::net::IpAddr;

use serde_json::{Map, json};

use super::response::{Authentication, Response};
use super::{Authenticator, Origin, Request};
use crate::event::context::Scope;
use crate::event::{Phase, Position};
use crate::message::Trace;
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
    /// The audit row of an API request, then the POST handlers defined for its event (they
    /// see the request's user, client and success; they cannot change the answer).
    pub async fn api_event(&self, e: ApiEvent<'_>) {
        let cfg = self.config();
        let (event, user, client, success) = (e.event, e.user.to_owned(), e.client, e.success);
        let message = e.info.clone();
        self.audit_api(e).await;
        if !cfg.events.listens(event) {
            return;
        }
        let mut request = Request {
            user: Some(user).filter(|u| !u.is_empty()),
            client,
            origin: Origin::Http,
            ..Request::empty()
        };
        let mut detail = Map::new();
        detail.insert("message".into(), json!(message));
        let authentication = if success {
            Authentication::Accept
        } else {
            Authentication::Reject
        };
        let mut response = Response::decided(success, authentication, detail);
        let mut trace = Trace::new();
        let mut phase = Phase {
            scope: Scope::new(
                self,
                cfg.event_env(),
                event,
                Position::Post,
                self.clock.now(),
            ),
            request: &mut request,
            response: Some(&mut response),
            trace: &mut trace,
            reset_user: false,
        };
        if let Err(abort) = phase.run().await {
            tracing::info!(target: "otpgate::http", event, error = %abort, "event handler ended the request");
        }
    }

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
