//! `/validate/polltransaction`: has a challenge of this transaction been answered out of band?
//! otpgate has no push tokens, so nothing answers a challenge that way yet; the answer follows
//! privacyIDEA's shape so that polling clients (Credential Provider, PAM, Keycloak) carry on.

use std::net::IpAddr;

use serde_json::{Map, json};

use super::Authenticator;
use super::api_audit::ApiEvent;
use super::response::{Authentication, Response, codes};

impl Authenticator {
    /// `result.value` true when a valid challenge of `transaction_id` was accepted;
    /// `detail.challenge_status` `accept`, `declined` or `pending` (also for no challenge).
    pub async fn poll_transaction(&self, transaction_id: &str, client: Option<IpAddr>) -> Response {
        let now = self.clock.now();
        let started = std::time::Instant::now();
        let rows = match self.store.challenges_of_transaction(transaction_id).await {
            Ok(rows) => rows,
            Err(e) => return Response::error(500, codes::INTERNAL, &format!("ERR500: {e}")),
        };
        let valid: Vec<_> = rows
            .into_iter()
            .filter(|c| c.is_valid_at(now.timestamp()))
            .collect();
        let (value, status, authentication) = if valid.iter().any(|c| c.otp_valid) {
            (true, "accept", Authentication::Accept)
        } else if valid.iter().any(|c| c.session == "challenge_declined") {
            (false, "declined", Authentication::Declined)
        } else {
            (false, "pending", Authentication::Reject)
        };
        let mut detail = Map::new();
        detail.insert("challenge_status".into(), json!(status));
        let response = Response::decided(value, authentication, detail);
        let serials: Vec<&str> = valid.iter().map(|c| c.serial.as_str()).collect();
        self.audit_api(ApiEvent {
            event: "validate_polltransaction",
            client,
            success: value,
            authentication: authentication.as_str(),
            serial: serials.join(","),
            info: format!("status: {status}"),
            action_detail: format!("transaction_id: {transaction_id}"),
            duration_us: i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX),
            ..Default::default()
        })
        .await;
        response
    }
}
