//! A privacyIDEA-compatible `/validate/check` (GET query, POST form or JSON), so another
//! otpgate or a privacyIDEA can forward to this one (Federation handler), and scripts can
//! authenticate over HTTP. Enabled with `[http] validate_check = true`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

use crate::auth::{Authenticator, Origin, Request, Response};
use crate::secret::Secret;

/// Parameters from the query string and the body (form or JSON).
fn parameters(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<BTreeMap<String, String>, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    if let Some(q) = query {
        map.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    if body.is_empty() {
        return Ok(map);
    }
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        let value: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
            .map_err(|e| format!("the body is not a JSON object: {e}"))?;
        for (k, v) in value {
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            map.insert(k, text);
        }
    } else {
        map.extend(form_urlencoded::parse(body).into_owned());
    }
    Ok(map)
}

fn request_from(mut p: BTreeMap<String, String>, peer: IpAddr) -> Request {
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
    // `client` overrides the peer address only for proxies the configuration trusts; see
    // `[http] client_override_from`.
    let client = take("client");
    req.params.extend(p);
    if let Some(c) = client {
        req.params.insert("client".into(), c);
    }
    req
}

pub(super) struct ValidateState {
    pub auth: Arc<Authenticator>,
    pub trusted: Vec<ipnet::IpNet>,
}

pub(super) async fn check(
    State(state): State<Arc<ValidateState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let params = match parameters(query.as_deref(), &headers, &body) {
        Ok(p) => p,
        Err(e) => {
            let r = Response::error(400, crate::auth::response::codes::PARAMETER, &e);
            return (StatusCode::BAD_REQUEST, axum::Json(r.body));
        }
    };
    let mut req = request_from(params, peer.ip());
    if let Some(c) = req.params.remove("client")
        && state.trusted.iter().any(|n| n.contains(&peer.ip()))
        && let Ok(ip) = c.trim().parse()
    {
        req.client = Some(ip);
    }
    let user = req.user.clone().unwrap_or_default();
    let outcome = state.auth.validate_check(req).await;
    let r = outcome.response;
    tracing::info!(target: "otpgate::http", user = %user, peer = %peer, result = r.authentication().unwrap_or("error"), "/validate/check");
    let status = StatusCode::from_u16(r.status_code).unwrap_or(StatusCode::OK);
    (status, axum::Json(r.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_json_and_query_parameters() {
        let mut h = HeaderMap::new();
        let p = parameters(Some("user=alice"), &h, b"pass=pin%2B1&realm=r").unwrap();
        assert_eq!(p["user"], "alice");
        assert_eq!(p["pass"], "pin+1");
        h.insert("content-type", "application/json".parse().unwrap());
        let p = parameters(None, &h, br#"{"user":"bob","otponly":1}"#).unwrap();
        assert_eq!(p["user"], "bob");
        assert_eq!(p["otponly"], "1");
        assert!(parameters(None, &h, b"[1]").is_err());
        let req = request_from(p, "10.0.0.1".parse().unwrap());
        assert!(req.otponly);
        assert_eq!(req.client, Some("10.0.0.1".parse().unwrap()));
    }
}
