//! `[[event]]` tables → validated definitions, indexed by (event, position).
//!
//! Everything that can be wrong with a definition is found here, at load: an unknown module,
//! action, condition or option, an option or condition value of the wrong type, a position the
//! module does not allow, a bad regular expression, a script outside the script directory, an
//! SMTP server or remote that does not exist. Each problem names the definition.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::conditions::Condition;
use super::handlers::{Action, Module};
use super::options::{Options, value_text};
use super::{KNOWN_EVENTS, Position};
use crate::issues::Issues;

/// What definitions may refer to, for validation.
#[derive(Debug, Clone, Default)]
pub struct BuildEnv {
    pub script_dir: PathBuf,
    pub spool_dir: PathBuf,
    pub smtp: Vec<String>,
    pub sms: Vec<String>,
    /// (name, kind) of `[[remote]]` entries; kind `privacyidea` or `radius`.
    pub remotes: Vec<(String, String)>,
}

/// One validated definition.
#[derive(Debug)]
pub struct Definition {
    /// Position in the file (the tie-break after `ordering`).
    pub index: usize,
    pub name: String,
    pub active: bool,
    pub ordering: i64,
    pub position: Position,
    pub events: Vec<String>,
    pub module: Module,
    pub action_name: String,
    pub action: Action,
    pub conditions: Vec<Condition>,
    /// Per condition, its number among the distinct conditions of the configuration: two
    /// definitions with the same condition and value (`name=value` as written) share it, so a
    /// phase evaluates it once.
    pub condition_ids: Vec<usize>,
    /// The options as written (audit `action_detail`).
    pub options: BTreeMap<String, String>,
    /// `Token:disable` and the options as text, made once: every run writes them into its
    /// audit row.
    label: String,
    options_text: String,
    /// The name as the decision trace writes it, on every request it does not hold for.
    trace_name: String,
    pub abort_on_error: bool,
    pub skip_unknown: bool,
}

impl Definition {
    /// `Token:disable`, as in audit rows.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `name=value, …` of the options, as in audit `action_detail`.
    pub fn options_text(&self) -> &str {
        &self.options_text
    }

    /// The name as the decision trace writes it: as it is when it is one word of letters,
    /// digits and `_.-:@/+`, else quoted as `{:?}` quotes it (a name may hold `, ` or `; `,
    /// which separate names in the trace). Quotes would cost two escapes each in the trace's
    /// JSON, for every definition, on every request.
    pub fn trace_name(&self) -> &str {
        &self.trace_name
    }
}

/// All definitions of a configuration.
#[derive(Debug, Default)]
pub struct Definitions {
    all: Vec<Arc<Definition>>,
    /// Per event, the PRE and the POST definitions (looked up by `&str` on every request,
    /// without making a key).
    by_event: HashMap<String, [Vec<Arc<Definition>>; 2]>,
    /// How many distinct conditions the definitions have (see `Definition::condition_ids`).
    distinct_conditions: usize,
    /// A CustomUserAttributes definition exists: users are read with their custom attributes.
    custom_attributes: bool,
}

impl Definitions {
    /// Active definitions for an event and position, in run order.
    pub fn select(&self, event: &str, position: Position) -> &[Arc<Definition>] {
        self.by_event
            .get(event)
            .map_or(&[], |phases| phases[position_index(position)].as_slice())
    }

    /// Whether anything listens to this event at all (the fast path skips the rest).
    pub fn listens(&self, event: &str) -> bool {
        !self.select(event, Position::Pre).is_empty()
            || !self.select(event, Position::Post).is_empty()
    }

    pub fn all(&self) -> &[Arc<Definition>] {
        &self.all
    }

    /// Whether users need their custom attributes (a store read) when determined.
    pub fn keeps_user_attributes(&self) -> bool {
        self.custom_attributes
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    pub fn distinct_conditions(&self) -> usize {
        self.distinct_conditions
    }

    pub fn from_list(list: Vec<Definition>) -> Self {
        let distinct_conditions = list
            .iter()
            .flat_map(|d| d.condition_ids.iter().map(|id| id + 1))
            .max()
            .unwrap_or(0);
        let mut all: Vec<Arc<Definition>> = list.into_iter().map(Arc::new).collect();
        all.sort_by_key(|d| (d.ordering, d.index));
        let mut by_event: HashMap<String, [Vec<Arc<Definition>>; 2]> = HashMap::new();
        for d in all.iter().filter(|d| d.active) {
            for e in &d.events {
                by_event.entry(e.clone()).or_default()[position_index(d.position)].push(d.clone());
            }
        }
        let custom_attributes = all
            .iter()
            .any(|d| d.active && d.module == Module::CustomUserAttributes);
        Self {
            all,
            by_event,
            distinct_conditions,
            custom_attributes,
        }
    }
}

fn position_index(position: Position) -> usize {
    match position {
        Position::Pre => 0,
        Position::Post => 1,
    }
}

/// A string or a list of strings (`event = "a, b"` or `event = ["a", "b"]`).
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    /// The entries, split on commas and trimmed.
    pub fn items(&self) -> Vec<String> {
        let all = match self {
            Self::One(s) => vec![s.clone()],
            Self::Many(v) => v.clone(),
        };
        all.iter()
            .flat_map(|s| s.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// `[[event]]`: one event handler definition (privacyIDEA field names).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvent {
    /// A label shown in audit rows.
    pub name: String,
    /// Inactive definitions are ignored (default true).
    #[serde(default = "yes")]
    pub active: bool,
    /// Ascending run order (default 0); ties run in file order.
    #[serde(default)]
    pub ordering: i64,
    /// `post` (default) or `pre`.
    pub position: Option<String>,
    /// Events this definition listens to, e.g. `["validate_check"]`.
    pub event: StringOrList,
    /// The handler module: Token, UserNotification, Script, Counter, Logging, WebHook,
    /// RequestMangler, ResponseMangler, Federation, CustomUserAttributes.
    #[serde(alias = "handlermodule")]
    pub handler: String,
    pub action: String,
    /// Condition name → value; all must hold.
    #[serde(default)]
    pub conditions: BTreeMap<String, toml::Value>,
    /// Option name → value (privacyIDEA's option keys, e.g. `"To email"`).
    #[serde(default)]
    pub options: BTreeMap<String, toml::Value>,
    /// Fail the request when this handler fails (default: true for Federation, else false).
    pub abort_on_error: Option<bool>,
    /// privacyIDEA's "skip when unknown" rule: a condition whose object (serial, token, client
    /// address …) cannot be determined counts as fulfilled (default true). `false` makes such a
    /// condition fail instead.
    pub skip_unknown: Option<bool>,
}

fn yes() -> bool {
    true
}

/// Validate every `[[event]]`.
pub fn build(raw: &[RawEvent], env: &BuildEnv, issues: &mut Issues) -> Definitions {
    let mut list = Vec::new();
    // `name=value` → its number among the distinct conditions (`Definition::condition_ids`)
    let mut distinct: HashMap<String, usize> = HashMap::new();
    for (i, r) in raw.iter().enumerate() {
        let key = format!("event[{i}]");
        let label = format!("event {:?}", r.name);
        let mut push =
            |k: &str, m: String| issues.push(format!("{key}{k}"), format!("{label}: {m}"));
        if r.name.trim().is_empty() {
            push(".name", "must not be empty".into());
        }
        let events = r.event.items();
        if events.is_empty() {
            push(".event", "names no event".into());
        }
        for e in &events {
            if !KNOWN_EVENTS.contains(&e.as_str()) {
                push(
                    ".event",
                    format!(
                        "otpgate never raises {e:?} (it raises: {})",
                        KNOWN_EVENTS.join(", ")
                    ),
                );
            }
        }
        if raw[..i].iter().any(|other| other.name == r.name) {
            push(".name", "another definition has this name".into());
        }
        let Some(module) = Module::parse(&r.handler) else {
            push(
                ".handler",
                format!(
                    "unknown handler module {:?} (known: {})",
                    r.handler,
                    Module::ALL
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            continue;
        };
        let position = match r.position.as_deref().map(str::trim) {
            None | Some("") | Some("post") => Position::Post,
            Some("pre") => Position::Pre,
            Some(other) => {
                push(".position", format!("{other:?} is neither pre nor post"));
                continue;
            }
        };
        if !module.positions().contains(&position) {
            push(
                ".position",
                format!(
                    "{} handlers cannot run in position {}",
                    module.as_str(),
                    position.as_str()
                ),
            );
        }
        let mut conditions = Vec::new();
        let mut condition_ids = Vec::new();
        for (name, value) in &r.conditions {
            let value = value_text(value);
            match Condition::parse(name, &value) {
                Ok(c) => {
                    conditions.push(c);
                    let next = distinct.len();
                    condition_ids.push(*distinct.entry(format!("{name}={value}")).or_insert(next));
                }
                Err(e) => push(&format!(".conditions.{name}"), e),
            }
        }
        let options: BTreeMap<String, String> = r
            .options
            .iter()
            .map(|(k, v)| (k.clone(), value_text(v)))
            .collect();
        let mut opts = Options::new(options.clone());
        let action = match Action::parse(module, &r.action, &mut opts, position, env) {
            Ok(a) => a,
            Err(e) => {
                push(".action", e);
                continue;
            }
        };
        if let Err(e) = opts.finish() {
            push(".options", e);
            continue;
        }
        list.push(Definition {
            label: format!("{}:{}", module.as_str(), r.action.trim()),
            options_text: options
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
            index: i,
            trace_name: trace_name(&r.name),
            name: r.name.clone(),
            active: r.active,
            ordering: r.ordering,
            position,
            events,
            module,
            action_name: r.action.trim().to_owned(),
            action,
            conditions,
            condition_ids,
            options,
            abort_on_error: r.abort_on_error.unwrap_or(module.default_abort_on_error()),
            skip_unknown: r.skip_unknown.unwrap_or(true),
        });
    }
    Definitions::from_list(list)
}

/// See [`Definition::trace_name`].
fn trace_name(name: &str) -> String {
    let plain = |c: char| c.is_alphanumeric() || "_.-:@/+".contains(c);
    if !name.is_empty() && name.chars().all(plain) {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::trace_name;

    /// Bare where no reader could take it for two names, quoted otherwise.
    #[test]
    fn trace_names_are_quoted_only_when_needed() {
        assert_eq!(trace_name("nm-result-1"), "nm-result-1");
        assert_eq!(
            trace_name("lock.on_fail:v2@realm/x+y"),
            "lock.on_fail:v2@realm/x+y"
        );
        assert_eq!(trace_name("Zähler"), "Zähler");
        assert_eq!(trace_name("b, c"), "\"b, c\"");
        assert_eq!(trace_name("two words"), "\"two words\"");
        assert_eq!(trace_name("a;b"), "\"a;b\"");
        assert_eq!(trace_name("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(trace_name(""), "\"\"");
    }
}
