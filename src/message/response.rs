//! The answer document, shaped like privacyIDEA's `/validate/check` JSON (spec §4.1).
//!
//! It stays a JSON value because ResponseMangler handlers edit it by JSON pointer and
//! conditions read it by path; the front-ends read the decision back with the accessors here.

use serde_json::{Map, Value, json};

/// `result.authentication`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authentication {
    Accept,
    Reject,
    Challenge,
    Declined,
}

impl Authentication {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "ACCEPT",
            Self::Reject => "REJECT",
            Self::Challenge => "CHALLENGE",
            Self::Declined => "DECLINED",
        }
    }
}

/// What a front-end does with the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Reject,
    Challenge,
    /// An error answer (`result.status == false`): unknown user, bad parameters, policy error.
    Error,
}

/// The document's `version`.
pub const VERSION: &str = concat!("otpgate ", env!("CARGO_PKG_VERSION"));

/// The answer: an HTTP-like status and the JSON document.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status_code: u16,
    pub body: Value,
}

/// privacyIDEA error codes used here.
pub mod codes {
    pub const USER_NOT_FOUND: i64 = 904;
    pub const PARAMETER: i64 = 905;
    pub const TOKEN_NOT_FOUND: i64 = 601;
    pub const TOKEN_ADMIN: i64 = 1007;
    pub const POLICY: i64 = 303;
    pub const VALIDATE: i64 = 10;
    pub const HANDLER: i64 = 904_100;
    pub const INTERNAL: i64 = 500;
}

impl Response {
    /// A decided authentication (HTTP 200).
    pub fn decided(
        value: bool,
        authentication: Authentication,
        detail: Map<String, Value>,
    ) -> Self {
        // built member by member: `json!` would serialize `detail` into a copy of itself
        // (every login answers with one of these)
        let mut result = Map::with_capacity(3);
        result.insert("status".into(), Value::Bool(true));
        result.insert("value".into(), Value::Bool(value));
        result.insert(
            "authentication".into(),
            Value::String(authentication.as_str().into()),
        );
        let mut body = Map::with_capacity(5);
        body.insert("jsonrpc".into(), Value::String("2.0".into()));
        body.insert("id".into(), Value::from(1));
        body.insert("version".into(), Value::String(VERSION.into()));
        body.insert("result".into(), Value::Object(result));
        body.insert("detail".into(), Value::Object(detail));
        Self {
            status_code: 200,
            body: Value::Object(body),
        }
    }

    /// An error answer: `result.status = false`, `result.error = {code, message}`.
    pub fn error(status_code: u16, code: i64, message: &str) -> Self {
        let text = if code == codes::INTERNAL || code == codes::HANDLER {
            message.to_owned()
        } else {
            format!("ERR{code}: {message}")
        };
        Self {
            status_code,
            body: json!({
                "jsonrpc": "2.0",
                "id": 1,
                "version": VERSION,
                "result": {
                    "status": false,
                    "error": { "code": code, "message": text },
                },
            }),
        }
    }

    pub fn status(&self) -> bool {
        json_at(&self.body, "/result/status")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// `result.value` as a success: true, or (triggerchallenge) a number of challenges > 0.
    pub fn value(&self) -> bool {
        match json_at(&self.body, "/result/value") {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_u64().is_some_and(|n| n > 0),
            _ => false,
        }
    }

    pub fn authentication(&self) -> Option<&str> {
        json_at(&self.body, "/result/authentication").and_then(Value::as_str)
    }

    /// `detail.message`, or the error message of an error answer.
    pub fn message(&self) -> Option<&str> {
        json_at(&self.body, "/detail/message")
            .or_else(|| json_at(&self.body, "/result/error/message"))
            .and_then(Value::as_str)
    }

    pub fn detail_str(&self, key: &str) -> Option<&str> {
        self.body
            .get("detail")
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
    }

    pub fn transaction_id(&self) -> Option<&str> {
        self.detail_str("transaction_id")
    }

    pub fn serial(&self) -> Option<&str> {
        self.detail_str("serial")
    }

    pub fn detail_mut(&mut self) -> Option<&mut Map<String, Value>> {
        self.body.get_mut("detail").and_then(Value::as_object_mut)
    }

    pub fn decision(&self) -> Decision {
        if !self.status() {
            return Decision::Error;
        }
        match self.authentication() {
            Some("ACCEPT") if self.value() => Decision::Accept,
            Some("CHALLENGE") => Decision::Challenge,
            _ => Decision::Reject,
        }
    }
}

/// `value.pointer(path)` for paths without `~` escapes, without allocating: serde_json's
/// `pointer` unescapes every segment into a new String. Hand-written because a login reads a
/// dozen paths: with `pointer` a login cost 14 % more CPU (`bench/compare.sh`, 5 rounds).
pub fn json_at<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    if !path.is_empty() && !path.starts_with('/') {
        return None;
    }
    path.split('/')
        .skip(1)
        .try_fold(value, |v, segment| match v {
            Value::Object(map) => member(map, segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
}

/// Objects this small are searched key by key: serde_json's map hashes the key with SipHash
/// first, and the answer documents' objects have a handful of members.
const SCANNED_MEMBERS: usize = 12;

fn member<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    if map.len() <= SCANNED_MEMBERS {
        map.iter().find_map(|(k, v)| (k == key).then_some(v))
    } else {
        map.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_at_agrees_with_pointer() {
        let v = json!({"result": {"value": true, "list": [1, {"x": "y"}]}, "": {"": 3}});
        for path in [
            "",
            "/result",
            "/result/value",
            "/result/list/1/x",
            "/result/list/7",
            "/result/value/x",
            "/missing",
            "/",
            "//",
            "result",
        ] {
            assert_eq!(json_at(&v, path), v.pointer(path), "{path}");
        }
        // past SCANNED_MEMBERS the map's own lookup answers
        for n in [SCANNED_MEMBERS, SCANNED_MEMBERS + 1, 40] {
            let big: Map<String, Value> = (0..n).map(|i| (format!("k{i}"), json!(i))).collect();
            let v = json!({ "big": big });
            for path in ["/big/k0", &format!("/big/k{}", n - 1), "/big/missing"] {
                assert_eq!(json_at(&v, path), v.pointer(path), "{n} {path}");
            }
        }
    }

    #[test]
    fn accept_document_shape() {
        let mut d = Map::new();
        d.insert("message".into(), json!("matching 1 tokens"));
        let r = Response::decided(true, Authentication::Accept, d);
        assert_eq!(r.decision(), Decision::Accept);
        assert_eq!(r.message(), Some("matching 1 tokens"));
        assert_eq!(r.body["result"]["status"], json!(true));
        // the members and their order, as a client sees them
        let expected = json!({
            "jsonrpc": "2.0",
            "id": 1,
            "version": VERSION,
            "result": {"status": true, "value": true, "authentication": "ACCEPT"},
            "detail": {"message": "matching 1 tokens"},
        });
        assert_eq!(r.body.to_string(), expected.to_string());
    }

    #[test]
    fn error_document_shape() {
        let r = Response::error(
            400,
            codes::USER_NOT_FOUND,
            "User <eve@realm1> does not exist.",
        );
        assert_eq!(r.decision(), Decision::Error);
        assert_eq!(
            r.message(),
            Some("ERR904: User <eve@realm1> does not exist.")
        );
        assert_eq!(r.body["result"]["error"]["code"], json!(904));
        assert!(r.authentication().is_none());
    }
}
