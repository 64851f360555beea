//! privacyIDEA's answer document as its clients read it: `jsonrpc`, `id`, `version`,
//! `versionnumber`, `time`, `result`, `detail`; and the empty answers of `/validate/radiuscheck`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use serde_json::{Map, Value, json};

use crate::auth::Response;
use crate::message::response::VERSION;

/// An answer on its way out.
#[derive(Debug)]
pub(super) enum Reply {
    Json(u16, Value),
    /// `/validate/radiuscheck`: only the status says it.
    Empty(u16),
}

impl Reply {
    /// A core answer with the envelope completed.
    pub(super) fn from_response(r: Response) -> Self {
        Self::Json(r.status_code, complete(r.body))
    }

    /// A successful call whose `result.value` is `value` (`/auth`).
    pub(super) fn result(value: Value, detail: Map<String, Value>) -> Self {
        Self::Json(
            200,
            complete(json!({
                "jsonrpc": "2.0",
                "id": 2,
                "version": VERSION,
                "result": {"status": true, "value": value},
                "detail": detail,
            })),
        )
    }
}

/// The members privacyIDEA adds to every answer.
fn complete(mut body: Value) -> Value {
    if let Some(o) = body.as_object_mut() {
        o.insert("versionnumber".into(), json!(env!("CARGO_PKG_VERSION")));
        o.insert("time".into(), json!(now()));
    }
    body
}

/// An error answer: `result.status` false, `result.error.{code,message}`.
pub(super) fn error(status: u16, code: i64, message: &str) -> Reply {
    Reply::from_response(Response::error(status, code, message))
}

// the answer's `time` is a stamp for the client to read, never an input to a decision
#[allow(clippy::disallowed_methods)]
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl IntoResponse for Reply {
    fn into_response(self) -> HttpResponse {
        match self {
            Self::Json(status, body) => (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                axum::Json(body),
            )
                .into_response(),
            Self::Empty(status) => StatusCode::from_u16(status)
                .unwrap_or(StatusCode::BAD_REQUEST)
                .into_response(),
        }
    }
}
