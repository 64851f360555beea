//! privacyIDEA's `/validate/*` endpoints as its clients call them (the FreeRADIUS plugin, the
//! LDAP proxy, PAM, the Credential Provider, Keycloak, ADFS, simpleSAMLphp), so that they can
//! point at otpgate unchanged. Enabled with `[http] validate_check = true`.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, Uri};
use serde_json::{Value, json};

use super::api::{self, Throttle};
use super::envelope::{Reply, error};
use super::params::{self, Params};
use super::settings::ApiSettings;
use crate::auth::api_audit::ApiEvent;
use crate::auth::response::codes;
use crate::auth::{Authenticator, Origin, Request, Response};
use crate::secret::Secret;

pub(super) struct ApiState {
    pub auth: Arc<Authenticator>,
    /// Peers whose `client` parameter names the client address.
    pub trusted: Vec<ipnet::IpNet>,
    pub settings: ApiSettings,
    pub throttle: Throttle,
    /// A hash of no password, verified for unknown account names so that the answer's time
    /// does not tell names apart.
    pub dummy_hash: tokio::sync::OnceCell<String>,
}

impl ApiState {
    pub(super) async fn audit_auth(&self, user: &str, ip: IpAddr, success: bool, info: &str) {
        self.auth
            .api_event(ApiEvent {
                event: "auth",
                user,
                client: Some(ip),
                success,
                info: info.to_owned(),
                ..Default::default()
            })
            .await;
    }

    /// The request's parameters, or the parameter error to answer with.
    pub(super) fn params(
        &self,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Params, Reply> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let json = header("content-type")
            .trim_start()
            .starts_with("application/json");
        params::parse(query, header("user-agent"), json, body)
            .map_err(|e| error(400, codes::PARAMETER, &e))
    }

    /// The core request: user, realm, serial, pass, transaction (`state` too), type, the
    /// client (the peer, or a trusted proxy's `client`), the rest as neutral parameters.
    fn request(&self, mut p: Params, peer: IpAddr, headers: &HeaderMap) -> Request {
        let mut take = |k: &str| p.remove(k).filter(|v| !v.is_empty());
        let pass = Secret::new(take("pass").unwrap_or_default());
        let mut req = Request {
            user: take("user"),
            realm: take("realm"),
            serial: take("serial"),
            transaction_id: take("transaction_id").or_else(|| take("state")),
            token_type: take("type"),
            otponly: take("otponly").is_some_and(|v| crate::event::is_true(&v)),
            client: Some(peer),
            origin: Origin::Http,
            pass,
            ..Request::empty()
        };
        let client = take("client");
        if let Some(c) = client
            && self.trusted.iter().any(|n| n.contains(&peer))
            && let Ok(ip) = c.trim().parse()
        {
            req.client = Some(ip);
        }
        req.params.extend(p);
        // after the parameters: a form field of this name does not stand in for the header
        req.params.remove("User-Agent");
        if let Some(ua) = headers.get("user-agent").and_then(|v| v.to_str().ok()) {
            req.params.insert("User-Agent".into(), ua.to_owned());
        }
        req
    }
}

/// Which shape `/validate/check`'s answer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Check,
    /// 204 on success, 400 otherwise, empty (errors keep their JSON).
    Radius,
    /// `result.value = {auth, attributes}`.
    Saml,
}

/// `/validate/check`, `/validate/radiuscheck` and `/validate/samlcheck`.
pub(super) async fn check(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(super::Peer(peer)): ConnectInfo<super::Peer>,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let shape = match uri.path() {
        p if p.ends_with("/radiuscheck") => Shape::Radius,
        p if p.ends_with("/samlcheck") => Shape::Saml,
        _ => Shape::Check,
    };
    let params = match state.params(query.as_deref(), &headers, &body) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    // privacyIDEA refuses a check without `pass`; an empty one is a request (it triggers
    // challenges)
    if !params.contains_key("pass") {
        return error(400, codes::PARAMETER, "Missing parameter: pass");
    }
    let req = state.request(params, peer.ip(), &headers);
    let user = req.user.clone().unwrap_or_default();
    let outcome = state.auth.validate_check(req).await;
    let r = outcome.response;
    tracing::info!(target: "otpgate::http", user = %user, peer = %peer, result = r.authentication().unwrap_or("error"), "{}", uri.path());
    match shape {
        Shape::Check => Reply::from_response(r),
        Shape::Radius if !r.status() => Reply::from_response(r),
        Shape::Radius => Reply::Empty(if r.value() { 204 } else { 400 }),
        Shape::Saml => Reply::from_response(saml(r, outcome.user.as_ref())),
    }
}

/// `result.value` becomes `{auth, attributes}` with the user's attributes on success.
fn saml(mut r: Response, user: Option<&crate::users::ResolvedUser>) -> Response {
    if !r.status() {
        return r;
    }
    let auth = r.value();
    let mut attributes = serde_json::Map::new();
    if let (true, Some(u)) = (auth, user) {
        let rec = &u.record;
        for (k, v) in [
            ("username", Some(u.login.clone())),
            ("realm", Some(u.realm.clone())),
            ("resolver", Some(u.resolver.clone())),
            ("givenname", Some(rec.givenname().to_owned())),
            ("surname", Some(rec.surname().to_owned())),
            ("email", rec.attribute("email")),
            ("mobile", rec.attribute("mobile")),
            ("phone", rec.attribute("phone")),
        ] {
            attributes.insert(k.into(), v.map_or(Value::Null, Value::String));
        }
        for (k, values) in rec.free_attributes() {
            let v = match values.as_slice() {
                [one] => json!(one),
                many => json!(many),
            };
            attributes.insert(k.clone(), v);
        }
    }
    if let Some(result) = r.body.get_mut("result").and_then(Value::as_object_mut) {
        result.insert(
            "value".into(),
            json!({"auth": auth, "attributes": attributes}),
        );
    }
    r
}

/// `/validate/triggerchallenge`: an API account with the `triggerchallenge` right.
pub(super) async fn trigger_challenge(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(super::Peer(peer)): ConnectInfo<super::Peer>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let account = match api::authorized(&state, &headers, "triggerchallenge") {
        Ok(claims) => claims.username,
        Err(reply) => return reply,
    };
    let params = match state.params(query.as_deref(), &headers, &body) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    let mut req = state.request(params, peer.ip(), &headers);
    req.admin = Some(account.clone());
    let user = req.user.clone().unwrap_or_default();
    let outcome = state.auth.trigger_challenge(req).await;
    let r = outcome.response;
    tracing::info!(target: "otpgate::http", user = %user, account = %account, peer = %peer, challenges = r.body.pointer("/result/value").and_then(serde_json::Value::as_u64).unwrap_or(0), "/validate/triggerchallenge");
    Reply::from_response(r)
}

/// `/validate/polltransaction` (`transaction_id` as a parameter or in the path).
pub(super) async fn poll_transaction(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(super::Peer(peer)): ConnectInfo<super::Peer>,
    path: Option<Path<String>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let params = match state.params(query.as_deref(), &headers, &body) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    let transaction_id = path
        .map(|Path(t)| t)
        .or_else(|| params.get("transaction_id").cloned())
        .filter(|t| !t.is_empty());
    let Some(transaction_id) = transaction_id else {
        return error(400, codes::PARAMETER, "Missing parameter: transaction_id");
    };
    Reply::from_response(
        state
            .auth
            .poll_transaction(&transaction_id, Some(peer.ip()))
            .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saml_answers_carry_auth_and_attributes() {
        let r = Response::decided(
            false,
            crate::auth::Authentication::Reject,
            serde_json::Map::new(),
        );
        let r = saml(r, None);
        assert_eq!(
            r.body["result"]["value"],
            json!({"auth": false, "attributes": {}})
        );
        let e = Response::error(400, codes::PARAMETER, "x");
        assert_eq!(saml(e.clone(), None).body, e.body, "errors stay errors");
    }
}
