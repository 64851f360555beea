//! `RequestMangler` and `ResponseMangler` (spec §3.6–3.7).
//!
//! The request mangler edits the request's parameter map (`user`, `realm`, `pass`, `serial`,
//! `transaction_id`, `type`, and the neutral parameters a front-end copied in). The response
//! mangler edits the answer document by JSON pointer; it is also how an event adds RADIUS reply
//! attributes: `set /detail/radius_reply/Filter-Id`.

use regex::Regex;
use serde_json::{Map, Value};

use super::{Done, HandlerError, Run};
use crate::event::is_true;
use crate::event::options::Options;

#[derive(Debug, Clone)]
pub enum RequestAction {
    Delete(String),
    Set {
        parameter: String,
        value: String,
        matching: Option<(String, Regex)>,
        reset_user: bool,
    },
}

impl RequestAction {
    pub fn parse(action: &str, opts: &mut Options) -> Result<Self, String> {
        let parameter = opts.required("parameter")?;
        match action {
            "delete" => Ok(Self::Delete(parameter)),
            "set" => {
                let value = opts.text("value").unwrap_or_default();
                let matching = match (opts.text("match_parameter"), opts.text("match_pattern")) {
                    (Some(p), pattern) if !p.trim().is_empty() => {
                        let pattern = pattern.unwrap_or_default();
                        let re = Regex::new(&format!("^(?:{pattern})$"))
                            .map_err(|e| format!("match_pattern {pattern:?}: {e}"))?;
                        Some((p, re))
                    }
                    _ => None,
                };
                let reset_user = opts.flag("reset_user");
                if reset_user && !matches!(parameter.as_str(), "user" | "username" | "realm") {
                    return Err(
                        "reset_user works only for the parameters user, username and realm".into(),
                    );
                }
                Ok(Self::Set {
                    parameter,
                    value,
                    matching,
                    reset_user,
                })
            }
            other => Err(format!(
                "unknown RequestMangler action {other:?} (known: delete, set)"
            )),
        }
    }

    pub fn run(&self, run: &mut Run<'_, '_>) -> Result<Done, HandlerError> {
        match self {
            Self::Delete(p) => {
                run.request.delete_param(p);
                Ok(Done::ok())
            }
            Self::Set {
                parameter,
                value,
                matching,
                reset_user,
            } => match matching {
                None => {
                    run.request.set_param(parameter, value);
                    Ok(Done::ok())
                }
                Some((source, re)) => {
                    let Some(current) = run.request.param(source) else {
                        return Ok(Done::nothing("match_parameter not in the request"));
                    };
                    let Some(caps) = re.captures(&current) else {
                        return Ok(Done::nothing("match_pattern does not match"));
                    };
                    let groups: Vec<String> = caps
                        .iter()
                        .skip(1)
                        .map(|g| g.map(|m| m.as_str().to_owned()).unwrap_or_default())
                        .collect();
                    let Ok(new) = crate::event::tags::render_with(value, |name| {
                        name.parse::<usize>()
                            .ok()
                            .and_then(|i| groups.get(i).cloned())
                    }) else {
                        return Ok(Done::nothing("too few groups in match_pattern"));
                    };
                    run.request.set_param(parameter, &new);
                    if *reset_user {
                        *run.reset_user = true;
                    }
                    Ok(Done::ok())
                }
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    String,
    Integer,
    Bool,
}

#[derive(Debug, Clone)]
pub enum ResponseAction {
    Delete(Vec<String>),
    Set {
        pointer: Vec<String>,
        kind: ValueType,
        value: String,
    },
}

/// `/detail/message` → ["detail", "message"]; `None` beyond three components (ignored, as
/// upstream).
fn pointer(text: &str) -> Result<Option<Vec<String>>, String> {
    let parts: Vec<String> = text
        .trim()
        .trim_start_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    match parts.len() {
        0 => Err(format!("JSON pointer {text:?} names nothing")),
        1..=3 => Ok(Some(parts)),
        _ => Ok(None),
    }
}

impl ResponseAction {
    pub fn parse(action: &str, opts: &mut Options) -> Result<Self, String> {
        let text = opts.required("JSON pointer")?;
        // upstream ignores pointers with more than three components; we keep them inert
        let parts = pointer(&text)?.unwrap_or_default();
        match action {
            "delete" => Ok(Self::Delete(parts)),
            "set" => {
                let kind = match opts.text("type").as_deref().map(str::trim) {
                    None | Some("") | Some("string") => ValueType::String,
                    Some("integer") => ValueType::Integer,
                    Some("bool") => ValueType::Bool,
                    Some(other) => {
                        return Err(format!("type {other:?}: use string, integer or bool"));
                    }
                };
                Ok(Self::Set {
                    pointer: parts,
                    kind,
                    value: opts.text("value").unwrap_or_default(),
                })
            }
            other => Err(format!(
                "unknown ResponseMangler action {other:?} (known: delete, set)"
            )),
        }
    }

    pub fn run(&self, run: &mut Run<'_, '_>) -> Result<Done, HandlerError> {
        let Some(response) = run.response.as_deref_mut() else {
            return Ok(Done::nothing("no response"));
        };
        match self {
            Self::Delete(path) => {
                if let Some((last, parents)) = path.split_last() {
                    let mut node = &mut response.body;
                    for p in parents {
                        match node.get_mut(p) {
                            Some(n) => node = n,
                            None => return Ok(Done::ok()),
                        }
                    }
                    if let Some(obj) = node.as_object_mut() {
                        obj.remove(last);
                    }
                }
                Ok(Done::ok())
            }
            Self::Set {
                pointer,
                kind,
                value,
            } => {
                let Some((last, parents)) = pointer.split_last() else {
                    return Ok(Done::ok());
                };
                let new = match kind {
                    ValueType::String => Value::String(value.clone()),
                    // a value that is no integer stays a string (upstream keeps it)
                    ValueType::Integer => value
                        .trim()
                        .parse::<i64>()
                        .map_or_else(|_| Value::String(value.clone()), Value::from),
                    ValueType::Bool => Value::Bool(is_true(value)),
                };
                let mut node = &mut response.body;
                for p in parents {
                    if !node.is_object() {
                        *node = Value::Object(Map::new());
                    }
                    let Some(obj) = node.as_object_mut() else {
                        return Ok(Done::ok());
                    };
                    node = obj
                        .entry(p.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                }
                if !node.is_object() {
                    *node = Value::Object(Map::new());
                }
                if let Some(obj) = node.as_object_mut() {
                    obj.insert(last.clone(), new);
                }
                Ok(Done::ok())
            }
        }
    }
}
