//! `/auth` for the API accounts (`[[api_account]]`) and the check of the token they send back:
//! what privacyIDEA's Keycloak, ADFS and Credential Provider clients do before they trigger a
//! challenge. Failed logins are counted per source address and throttled.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use serde_json::json;

use super::envelope::{Reply, error};
use super::jwt::{self, Claims};
use super::validate::ApiState;

/// privacyIDEA's error codes of `/auth` and the token check.
mod code {
    pub(super) const WRONG_CREDENTIALS: i64 = 4031;
    pub(super) const MISSING_USERNAME: i64 = 4032;
    pub(super) const AUTH_HEADER: i64 = 4033;
    pub(super) const DECODING: i64 = 4304;
    pub(super) const EXPIRED: i64 = 4305;
    pub(super) const MISSING_RIGHT: i64 = 4306;
    pub(super) const POLICY: i64 = 303;
}

/// Failed `/auth` attempts a source may make per window before it waits.
const FAILURES_ALLOWED: u32 = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Failed logins by source address.
#[derive(Debug, Default)]
pub(super) struct Throttle(Mutex<HashMap<IpAddr, (u32, Instant)>>);

impl Throttle {
    /// Whether `ip` must wait (too many failures in the window).
    fn blocked(&self, ip: IpAddr) -> bool {
        let Ok(mut map) = self.0.lock() else {
            return false;
        };
        map.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        map.get(&ip).is_some_and(|(n, _)| *n >= FAILURES_ALLOWED)
    }

    fn failed(&self, ip: IpAddr) {
        if let Ok(mut map) = self.0.lock() {
            let entry = map.entry(ip).or_insert((0, Instant::now()));
            entry.0 += 1;
        }
    }

    fn succeeded(&self, ip: IpAddr) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(&ip);
        }
    }
}

/// `POST /auth` with `username` and `password`: a signed token for an API account.
pub(super) async fn auth(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(super::Peer(peer)): ConnectInfo<super::Peer>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let ip = peer.ip();
    let params = match state.params(query.as_deref(), &headers, &body) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    let name = params.get("username").map(String::as_str).unwrap_or("");
    if name.is_empty() {
        return error(
            401,
            code::MISSING_USERNAME,
            "Authentication failure. Missing Username",
        );
    }
    if state.throttle.blocked(ip) {
        metrics::counter!("otpgate_api_auth_total", "result" => "throttled").increment(1);
        tracing::warn!(target: "otpgate::http", peer = %peer, user = name, "/auth refused: too many failed logins from this address");
        state
            .audit_auth(name, ip, false, "too many failed logins")
            .await;
        return error(
            429,
            code::WRONG_CREDENTIALS,
            "Authentication failure. Too many failed logins; try again later",
        );
    }
    let password = params.get("password").map(String::as_str).unwrap_or("");
    let account = state.settings.accounts.iter().find(|a| a.name == name);
    let dummy = state
        .dummy_hash
        .get_or_init(|| async {
            let random =
                crate::crypto::random_string(24, b"abcdefghijklmnopqrstuvwxyz").unwrap_or_default();
            state.auth.pins.hash(random).await.unwrap_or_default()
        })
        .await;
    let hash = account.map_or(dummy.as_str(), |a| a.password_hash.expose().as_str());
    let ok = state
        .auth
        .pins
        .verify(password, hash)
        .await
        .unwrap_or(false)
        && account.is_some();
    let Some(account) = account.filter(|_| ok) else {
        state.throttle.failed(ip);
        metrics::counter!("otpgate_api_auth_total", "result" => "failed").increment(1);
        tracing::info!(target: "otpgate::http", peer = %peer, user = name, "/auth failed: wrong credentials");
        state.audit_auth(name, ip, false, "wrong credentials").await;
        return error(
            401,
            code::WRONG_CREDENTIALS,
            "Authentication failure. Wrong credentials",
        );
    };
    state.throttle.succeeded(ip);
    let now = state.auth.clock.now().timestamp();
    let claims = Claims {
        username: account.name.clone(),
        role: "admin".into(),
        rights: account.rights.clone(),
        iat: now,
        exp: now + i64::try_from(state.settings.token_lifetime.as_secs()).unwrap_or(3600),
    };
    let token = jwt::sign(&claims, state.auth.key.api_signing_key());
    metrics::counter!("otpgate_api_auth_total", "result" => "success").increment(1);
    tracing::info!(target: "otpgate::http", peer = %peer, user = name, "/auth: token issued");
    state.audit_auth(name, ip, true, "token issued").await;
    Reply::result(
        json!({
            "token": token,
            "role": "admin",
            "username": account.name,
            "realm": "",
            "log_level": 30,
            "rights": account.rights,
            "menus": [],
            "auth": true,
        }),
        serde_json::Map::new(),
    )
}

/// The account behind the request's token if it has `right`; else the error answer.
pub(super) fn authorized(
    state: &ApiState,
    headers: &HeaderMap,
    right: &str,
) -> Result<Claims, Reply> {
    let header = headers
        .get("PI-Authorization")
        .or_else(|| headers.get("Authorization"))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let Some(header) = header else {
        return Err(error(
            401,
            code::AUTH_HEADER,
            "Authentication failure. Missing Authorization header.",
        ));
    };
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .unwrap_or(header);
    let now = state.auth.clock.now().timestamp();
    let claims = jwt::verify(token, state.auth.key.api_signing_key(), now).map_err(|e| {
        let c = match e {
            jwt::JwtError::Expired => code::EXPIRED,
            _ => code::DECODING,
        };
        error(401, c, &format!("Authentication failure. {e}"))
    })?;
    // a token for an account that is no longer configured, or lost the right, is refused
    let current = state
        .settings
        .accounts
        .iter()
        .find(|a| a.name == claims.username);
    match current {
        None => Err(error(
            401,
            code::MISSING_RIGHT,
            "Authentication failure. The account no longer exists.",
        )),
        Some(a) if !a.rights.iter().any(|r| r == right) => Err(error(
            403,
            code::POLICY,
            &format!("Admin actions are defined, but the action {right} is not allowed!"),
        )),
        Some(_) => Ok(claims),
    }
}
