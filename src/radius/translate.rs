//! Pure mapping between verified RADIUS packets and the core's request/answer. No sockets.
//!
//! Access-Request → [`Request`]: User-Name → user, User-Password (unhidden) → pass, State →
//! transaction id, packet source (or Calling-Station-Id / NAS-IP-Address) → client, a few NAS
//! attributes → neutral parameters. [`Response`] → Access-Accept (with reply attributes),
//! Access-Challenge (State = transaction id, Reply-Message = message) or Access-Reject.

use std::net::IpAddr;

use serde_json::Value;

use super::attr;
use super::credential::Credential;
use super::crypto::{self, Authentic};
use super::dictionary::{AttrDef, Dictionary};
use super::packet::{Builder, Code, EncodeError, Packet};
use super::settings::{ClientDef, ClientIpFrom, RadiusSettings, ReplyValue};
use crate::auth::{Decision, Origin, Request, Response};
use crate::users::ResolvedUser;

/// Build the core request from a verified Access-Request. The proof argument makes sure the
/// shared-secret checks ran first.
pub fn to_request(
    p: &Packet<'_>,
    _proof: &Authentic,
    credential: &Credential,
    client: &ClientDef,
    source: IpAddr,
) -> Request {
    let text = |kind: u8| {
        p.attr(kind)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let (pass, proof) = credential.request_parts();
    let transaction_id = p.attr(attr::STATE).map(|s| match std::str::from_utf8(s) {
        Ok(t) => t.to_owned(),
        Err(_) => data_encoding::HEXLOWER.encode(s),
    });
    let nas_ip = p
        .attr(attr::NAS_IP_ADDRESS)
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .map(IpAddr::from);
    let calling = text(attr::CALLING_STATION_ID);
    let client_ip = match client.client_ip_from {
        ClientIpFrom::Packet => Some(source),
        ClientIpFrom::NasIpAddress => nas_ip.or(Some(source)),
        ClientIpFrom::CallingStationId => calling
            .as_deref()
            .and_then(|c| c.trim().parse().ok())
            .or(Some(source)),
    };
    let mut params = std::collections::BTreeMap::new();
    for (kind, name) in [
        (attr::NAS_IDENTIFIER, "NAS-Identifier"),
        (attr::CALLED_STATION_ID, "Called-Station-Id"),
        (attr::CALLING_STATION_ID, "Calling-Station-Id"),
    ] {
        if let Some(v) = text(kind) {
            params.insert(name.to_owned(), v);
        }
    }
    if let Some(ip) = nas_ip {
        params.insert("NAS-IP-Address".into(), ip.to_string());
    }
    params.insert("radius_client".into(), client.name.clone());
    Request {
        user: text(attr::USER_NAME),
        realm: None,
        default_realm: client.realm.clone(),
        serial: None,
        pass,
        transaction_id,
        token_type: None,
        otponly: false,
        client: client_ip,
        origin: Origin::Radius,
        params,
        admin: None,
        proof,
    }
}

/// Replace `{name}` placeholders; `None` if one is unknown.
pub fn render(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(rest.get(..start)?);
        let after = rest.get(start + 1..)?;
        let end = after.find('}')?;
        out.push_str(&lookup(after.get(..end)?)?);
        rest = after.get(end + 1..)?;
    }
    out.push_str(rest);
    Some(out)
}

fn push_attr(b: &mut Builder, def: &AttrDef, value: &[u8]) -> Result<(), EncodeError> {
    match def.vendor {
        Some(vendor) => b.vsa(vendor, def.code, value).map(|_| ()),
        None => b.attr(def.code, value).map(|_| ()),
    }
}

/// Attributes the reply rules give this user.
fn rule_attributes(settings: &RadiusSettings, user: &ResolvedUser, b: &mut Builder) {
    let record = &user.record;
    for rule in &settings.replies {
        if rule.realm.as_deref().is_some_and(|r| r != user.realm) {
            continue;
        }
        if let Some((name, want)) = &rule.user_attribute {
            match (record.attribute(name), want) {
                (None, _) => continue,
                (Some(v), Some(w)) if &v != w => continue,
                _ => {}
            }
        }
        let groups: Vec<&str> = match rule.group.as_deref() {
            None => vec![""],
            Some("*") => record
                .groups()
                .iter()
                .map(|g| crate::users::short_name(g))
                .collect(),
            Some(g) if record.in_group(g) => vec![g],
            Some(_) => continue,
        };
        for group in groups {
            for a in &rule.attributes {
                let bytes = match &a.value {
                    ReplyValue::Fixed(bytes) => bytes.clone(),
                    ReplyValue::Template(t) => {
                        let lookup = |name: &str| match name {
                            "username" => Some(user.login.clone()),
                            "realm" => Some(user.realm.clone()),
                            "group" => Some(group.to_owned()),
                            other => record.attribute(other),
                        };
                        let Some(text) = render(t, &lookup) else {
                            tracing::warn!(target: "otpgate::radius", attribute = %a.def.name, template = %t, user = %user.login, "reply attribute skipped: a placeholder has no value");
                            continue;
                        };
                        match Dictionary::encode(&a.def, &text, a.tag) {
                            Ok(bytes) => bytes,
                            Err(e) => {
                                tracing::warn!(target: "otpgate::radius", error = %e, "reply attribute skipped");
                                continue;
                            }
                        }
                    }
                };
                if let Err(e) = push_attr(b, &a.def, &bytes) {
                    tracing::warn!(target: "otpgate::radius", attribute = %a.def.name, error = %e, "reply attribute skipped");
                }
            }
        }
    }
}

/// Attributes put into the answer by events (`detail.radius_reply`, set with a
/// ResponseMangler): `{"Filter-Id": "staff", "Class": ["a", "b"]}`.
fn answer_attributes(dict: &Dictionary, detail: Option<&Value>, b: &mut Builder) {
    let Some(Value::Object(map)) = detail.and_then(|d| d.get("radius_reply")) else {
        return;
    };
    for (name, value) in map {
        let (attr_name, tag) = match name.rsplit_once(':') {
            Some((n, t)) if t.bytes().all(|c| c.is_ascii_digit()) => (n, t.parse::<u8>().ok()),
            _ => (name.as_str(), None),
        };
        let Some(def) = dict.attr(attr_name) else {
            tracing::warn!(target: "otpgate::radius", attribute = %name, "detail.radius_reply names an attribute the dictionaries do not know; skipped");
            continue;
        };
        let values: Vec<String> = match value {
            Value::Array(items) => items.iter().map(json_text).collect(),
            other => vec![json_text(other)],
        };
        for text in values {
            match Dictionary::encode(def, &text, tag) {
                Ok(bytes) => {
                    if let Err(e) = push_attr(b, def, &bytes) {
                        tracing::warn!(target: "otpgate::radius", attribute = %name, error = %e, "reply attribute skipped");
                    }
                }
                Err(e) => {
                    tracing::warn!(target: "otpgate::radius", error = %e, "reply attribute skipped")
                }
            }
        }
    }
}

fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A signed reply and its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: Code,
    pub bytes: Vec<u8>,
}

/// The signed reply to an Access-Request.
pub fn access_reply(
    request: &Packet<'_>,
    response: &Response,
    user: Option<&ResolvedUser>,
    credential: &Credential,
    settings: &RadiusSettings,
    client: &ClientDef,
) -> Reply {
    let decision = response.decision();
    let code = match decision {
        Decision::Accept => Code::AccessAccept,
        Decision::Challenge => Code::AccessChallenge,
        Decision::Reject | Decision::Error => Code::AccessReject,
    };
    let mut b = start_reply(request, code);
    let message = response.message().unwrap_or("");
    let result = (|| -> Result<(), EncodeError> {
        match decision {
            Decision::Accept => {
                if let Some(u) = user {
                    rule_attributes(settings, u, &mut b);
                }
                answer_attributes(&settings.dictionary, response.body.get("detail"), &mut b);
                credential.accept_attributes(request, client, &mut b)?;
            }
            Decision::Challenge => {
                if let Some(tx) = response.transaction_id() {
                    b.attr(attr::STATE, tx.as_bytes())?;
                }
                b.attr_split(attr::REPLY_MESSAGE, message.as_bytes())?;
                answer_attributes(&settings.dictionary, response.body.get("detail"), &mut b);
            }
            Decision::Reject | Decision::Error => {
                let text = if settings.hide_reject_detail {
                    settings.reject_message.as_str()
                } else {
                    message
                };
                if !text.is_empty() {
                    b.attr_split(attr::REPLY_MESSAGE, text.as_bytes())?;
                }
                credential.reject_attributes(&mut b)?;
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(target: "otpgate::radius", error = %e, "reply truncated");
    }
    Reply {
        code,
        bytes: finish_reply(b, request, client),
    }
}

/// Message-Authenticator first (BlastRADIUS), then the echoed Proxy-State attributes.
pub fn start_reply(request: &Packet<'_>, code: Code) -> Builder {
    let mut b = Builder::new(code, request.identifier(), &[0; 16]);
    let _ = b.attr(attr::MESSAGE_AUTHENTICATOR, &[0; 16]);
    for a in request.attributes().filter(|a| a.kind == attr::PROXY_STATE) {
        let _ = b.attr(attr::PROXY_STATE, a.value);
    }
    b
}

/// Set the length, the Message-Authenticator and the Response Authenticator.
pub fn finish_reply(b: Builder, request: &Packet<'_>, client: &ClientDef) -> Vec<u8> {
    let mut bytes = b.finish();
    crypto::sign_response_to(
        &mut bytes,
        request.code(),
        request.authenticator(),
        client.secret.expose(),
    );
    bytes
}

/// A reply built again for a retransmit of `request` from its code and its own attributes,
/// which is what the duplicate cache keeps (`radius::dedup`): the rest is the request's (its
/// identifier and Proxy-States) and the secret's, so these are the first reply's bytes.
pub fn rebuild_reply(
    request: &Packet<'_>,
    code: Code,
    own_attributes: &[u8],
    client: &ClientDef,
) -> Vec<u8> {
    let mut b = start_reply(request, code);
    b.bytes_mut().extend_from_slice(own_attributes);
    finish_reply(b, request, client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_or_refuse() {
        let lookup = |k: &str| match k {
            "group" => Some("admins".to_owned()),
            _ => None,
        };
        assert_eq!(
            render("grp-{group}", &lookup).as_deref(),
            Some("grp-admins")
        );
        assert_eq!(render("plain", &lookup).as_deref(), Some("plain"));
        assert_eq!(render("{nope}", &lookup), None);
        assert_eq!(render("{unterminated", &lookup), None);
    }
}

#[cfg(test)]
mod round_trip {
    use std::time::Duration;

    use crate::secret::Secret;

    use serde_json::{Map, json};

    use super::*;
    use crate::auth::Authentication;
    use crate::radius::client::{AccessRequest, encode_access_request};
    use crate::radius::settings::MaPolicy;

    fn client() -> ClientDef {
        ClientDef {
            name: "nas".into(),
            net: "127.0.0.1/32".parse().unwrap(),
            secret: Secret::new(b"s3cret".to_vec()),
            realm: Some("corp".into()),
            require_ma: MaPolicy::Required,
            limit_proxy_state: true,
            client_ip_from: ClientIpFrom::Packet,
            timeout: Duration::from_secs(3),
            radsec_only: false,
            tls_pins: Default::default(),
        }
    }

    fn settings() -> RadiusSettings {
        RadiusSettings {
            listen: vec![],
            accounting_listen: vec![],
            dictionary: Default::default(),
            max_in_flight: 1,
            receive_buffer: 0,
            dedup_ttl: Duration::from_secs(30),
            hide_reject_detail: false,
            reject_message: String::new(),
            shared_ledger: None,
            no_reply_when_store_unavailable: false,
            clients: vec![client()],
            replies: vec![],
            radsec: None,
        }
    }

    fn request(state: Option<&[u8]>) -> Vec<u8> {
        encode_access_request(
            &AccessRequest {
                user: "alice".into(),
                password: Secret::new("pin".into()),
                state: state.map(<[u8]>::to_vec),
                message_authenticator: true,
                ..Default::default()
            },
            7,
            b"s3cret",
        )
        .unwrap()
        .0
    }

    /// CHALLENGE → Access-Challenge with State and Reply-Message; the answer's State comes back
    /// as the transaction id.
    #[test]
    fn challenge_state_round_trip() {
        let bytes = request(None);
        let p = Packet::decode(&bytes).unwrap();
        let proof = crypto::verify_request(&p, b"s3cret", true, true).unwrap();
        let credential = Credential::of(&p, &proof, &client());
        let req = to_request(
            &p,
            &proof,
            &credential,
            &client(),
            "127.0.0.1".parse().unwrap(),
        );
        assert_eq!(req.user.as_deref(), Some("alice"));
        assert_eq!(req.pass.expose(), "pin");
        assert_eq!(req.default_realm.as_deref(), Some("corp"));
        assert!(req.transaction_id.is_none());

        let mut detail = Map::new();
        detail.insert("message".into(), json!("please enter otp: "));
        detail.insert("transaction_id".into(), json!("01234567890123456789"));
        let answer = Response::decided(false, Authentication::Challenge, detail);
        let reply = access_reply(
            &p,
            &answer,
            None,
            &Credential::Unsupported("test"),
            &settings(),
            &client(),
        )
        .bytes;
        let r = Packet::decode(&reply).unwrap();
        assert_eq!(r.code(), Code::AccessChallenge);
        assert!(crypto::verify_response(&r, p.authenticator(), b"s3cret", true).is_ok());
        assert_eq!(r.attr(attr::STATE), Some(&b"01234567890123456789"[..]));
        assert_eq!(
            r.attr(attr::REPLY_MESSAGE),
            Some(&b"please enter otp: "[..])
        );

        let next = request(r.attr(attr::STATE));
        let p2 = Packet::decode(&next).unwrap();
        let proof = crypto::verify_request(&p2, b"s3cret", true, true).unwrap();
        let credential = Credential::of(&p2, &proof, &client());
        let req = to_request(
            &p2,
            &proof,
            &credential,
            &client(),
            "127.0.0.1".parse().unwrap(),
        );
        assert_eq!(req.transaction_id.as_deref(), Some("01234567890123456789"));

        // the radius crate decodes the challenge as well
        let oracle = radius::core::packet::Packet::decode(&reply, b"s3cret").unwrap();
        assert_eq!(oracle.get_code(), radius::core::code::Code::AccessChallenge);
        assert_eq!(
            radius::core::rfc2865::lookup_state(&oracle),
            Some(b"01234567890123456789".to_vec())
        );
    }

    /// What the duplicate cache keeps of a reply (its code and own attributes) builds the same
    /// bytes again for a retransmit, Proxy-States and all.
    #[test]
    fn a_cached_reply_is_rebuilt_byte_for_byte() {
        use crate::radius::dedup::{DedupCache, Key, Seen};

        let bytes = encode_access_request(
            &AccessRequest {
                user: "alice".into(),
                password: Secret::new("pin".into()),
                extra: vec![
                    (attr::PROXY_STATE, b"first".to_vec()),
                    (attr::PROXY_STATE, b"second".to_vec()),
                ],
                message_authenticator: true,
                ..Default::default()
            },
            9,
            b"s3cret",
        )
        .unwrap()
        .0;
        let p = Packet::decode(&bytes).unwrap();
        let mut detail = Map::new();
        detail.insert("message".into(), json!("please enter otp: "));
        detail.insert("transaction_id".into(), json!("01234567890123456789"));
        let answer = Response::decided(false, Authentication::Challenge, detail);
        let reply = access_reply(
            &p,
            &answer,
            None,
            &Credential::Unsupported("test"),
            &settings(),
            &client(),
        )
        .bytes;
        assert_eq!(
            Packet::decode(&reply)
                .unwrap()
                .attributes()
                .filter(|a| a.kind == attr::PROXY_STATE)
                .count(),
            2
        );

        let cache = DedupCache::new(Duration::from_secs(30), 100);
        let key = Key {
            source: "127.0.0.1:5000".parse().unwrap(),
            identifier: p.identifier(),
            authenticator: *p.authenticator(),
        };
        let now = std::time::Instant::now();
        assert_eq!(cache.begin(key, now), Seen::New);
        cache.finish(key, &reply);
        let Seen::Answered { code, attributes } = cache.begin(key, now) else {
            panic!("kept as it was, not as its own attributes");
        };
        assert!(
            attributes.len() < reply.len() - 38,
            "the Proxy-States are not kept"
        );
        assert_eq!(rebuild_reply(&p, code, &attributes, &client()), reply);
    }
}
