//! Running the definitions of one phase (spec §1.5): conditions, then the action, one audit
//! row per run, failure isolation with `abort_on_error`.
//!
//! A definition whose conditions hold gets a fresh action run and its own audit row
//! (`PRE-EVENT validate_check>>Token:disable`, success, info = its name). A failing condition
//! evaluation or action is logged and audited with success false; the request goes on unless
//! the definition says `abort_on_error` or the action demands an abort (Script `raise_error`).

use std::borrow::Cow;

use serde_json::Value;

use super::conditions::Check;
use super::context::{Context, Scope};
use super::definition::Definition;
use super::handlers::{Effect, HandlerError, Run};
use crate::clock::Stopwatch;
use crate::message::{Request, Response, Trace};
use crate::store::StoreError;
use crate::store::audit::AuditRow;

/// A handler failure that ends the request.
#[derive(Debug, Clone, thiserror::Error)]
#[error("event handler {definition:?} failed: {reason}")]
pub struct Abort {
    pub definition: String,
    pub reason: String,
}

/// One phase: its scope and the request/response it may change.
pub struct Phase<'p, 'a> {
    pub scope: Scope<'a>,
    pub request: &'p mut Request,
    pub response: Option<&'p mut Response>,
    pub trace: &'p mut Trace,
    /// A RequestMangler asked for the request user to be resolved again.
    pub reset_user: bool,
}

/// Why a definition's conditions do not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub holds: bool,
    /// (condition, outcome) for every condition evaluated.
    pub checks: Vec<(&'static str, Check)>,
}

/// Evaluate a definition's conditions in order, stopping at the first that does not hold.
pub async fn evaluate(def: &Definition, ctx: &mut Context<'_, '_>) -> Result<Verdict, StoreError> {
    let mut checks = Vec::with_capacity(def.conditions.len());
    for c in &def.conditions {
        let outcome = c.check(ctx).await?;
        let ok = Outcome::of(&outcome).fulfils(def);
        let outcome = match outcome {
            Check::Unknown(why) if def.skip_unknown => Check::Unknown(format!("skipped: {why}")),
            other => other,
        };
        checks.push((c.name(), outcome));
        if !ok {
            return Ok(Verdict {
                holds: false,
                checks,
            });
        }
    }
    Ok(Verdict {
        holds: true,
        checks,
    })
}

/// What a condition came to, without the reason: what the phase remembers per distinct
/// condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Holds,
    Fails,
    Unknown,
}

impl Outcome {
    fn of(check: &Check) -> Self {
        match check {
            Check::Holds => Self::Holds,
            Check::Fails(_) => Self::Fails,
            Check::Unknown(_) => Self::Unknown,
        }
    }

    /// Whether the condition counts as fulfilled for `def`: under the skip rule an unknown
    /// object does.
    fn fulfils(self, def: &Definition) -> bool {
        match self {
            Self::Holds => true,
            Self::Unknown => def.skip_unknown,
            Self::Fails => false,
        }
    }
}

/// Like [`evaluate`], remembering each distinct condition's outcome in `seen` (indexed by
/// `Definition::condition_ids`): many definitions share conditions such as `result_value`,
/// and a phase evaluates each only once until an action changes what conditions read.
/// `None` when the definition's conditions hold, else the name of the first that does not.
async fn evaluate_shared(
    def: &Definition,
    ctx: &mut Context<'_, '_>,
    seen: &mut [Option<Outcome>],
) -> Result<Option<&'static str>, StoreError> {
    for (c, id) in def.conditions.iter().zip(&def.condition_ids) {
        let outcome = match seen.get(*id).copied().flatten() {
            Some(o) => o,
            None => {
                let o = Outcome::of(&c.check(ctx).await?);
                if let Some(slot) = seen.get_mut(*id) {
                    *slot = Some(o);
                }
                o
            }
        };
        if !outcome.fulfils(def) {
            return Ok(Some(c.name()));
        }
    }
    Ok(None)
}

/// The verdict of [`evaluate_shared`] when `seen` already decides it: every condition up to
/// the first one that fails is known. `None` when a condition must still be evaluated. With
/// many definitions most share conditions that an earlier one evaluated, and this spares them
/// the context and the await.
fn decided(def: &Definition, seen: &[Option<Outcome>]) -> Option<Option<&'static str>> {
    for (c, id) in def.conditions.iter().zip(&def.condition_ids) {
        if !seen.get(*id).copied().flatten()?.fulfils(def) {
            return Some(Some(c.name()));
        }
    }
    Some(None)
}

impl Phase<'_, '_> {
    /// `POST-EVENT validate_check>>Token:disable`: the audit row's event and the start of the
    /// trace line of a definition's run. Pushed, not formatted: with matching definitions
    /// this runs on every request.
    fn run_name(&self, def: &Definition) -> String {
        let (prefix, event, label) = (
            self.scope.position.audit_prefix(),
            self.scope.event,
            def.label(),
        );
        let mut name = String::with_capacity(prefix.len() + event.len() + label.len() + 3);
        name.push_str(prefix);
        name.push(' ');
        name.push_str(event);
        name.push_str(">>");
        name.push_str(label);
        name
    }

    fn audit_row(
        &self,
        def: &Definition,
        success: bool,
        info: String,
        determined: &AuditFields,
    ) -> AuditRow {
        AuditRow {
            time_us: self.scope.now.timestamp_micros(),
            node: self.scope.actions.node().clone(),
            event: Cow::Owned(self.run_name(def)),
            origin: Cow::Borrowed("event"),
            success,
            user: determined.user.clone(),
            realm: determined.realm.clone(),
            serial: determined.serial.clone(),
            client: self.request.client_text(),
            info,
            action_detail: def.options_text().to_owned(),
            ..Default::default()
        }
    }

    /// Run every selected definition. `Err` when one of them aborts the request.
    pub async fn run(&mut self) -> Result<(), Abort> {
        // borrowed from the configuration, not from `self`
        let env = self.scope.env;
        let defs = env
            .definitions
            .select(self.scope.event, self.scope.position);
        if defs.is_empty() {
            return Ok(());
        }
        // (condition, quoted name) of every definition that did not hold: with many
        // definitions that is most of them, on every request
        let mut skipped: Vec<(&'static str, &str)> = Vec::with_capacity(defs.len());
        let mut seen: Vec<Option<Outcome>> = vec![None; env.definitions.distinct_conditions()];
        // the audit row's user, realm and serial, kept while actions change nothing
        let mut kept_fields: Option<AuditFields> = None;
        for def in defs {
            let verdict = match decided(def, &seen) {
                Some(known) => Ok(known),
                None => {
                    let response = self.response.as_deref();
                    let mut ctx = self.scope.view(&*self.request, response).without_reasons();
                    evaluate_shared(def, &mut ctx, &mut seen).await
                }
            };
            for w in self.scope.warnings.drain(..) {
                self.trace
                    .add("warning", format!("event {:?}: {w}", def.name));
            }
            let verdict = match verdict {
                Ok(v) => v,
                Err(e) => {
                    let fields = self.audit_fields().await;
                    let err = HandlerError::new("StoreError", e.to_string());
                    self.failed(def, &err, &fields, None).await;
                    if def.abort_on_error {
                        return Err(abort(def, &err));
                    }
                    continue;
                }
            };
            if let Some(condition) = verdict {
                skipped.push((condition, def.trace_name()));
                continue;
            }
            let fields = match kept_fields.take() {
                Some(f) => f,
                None => self.audit_fields().await,
            };
            let watch = Stopwatch::start();
            let result = {
                let mut run = Run {
                    def,
                    scope: &mut self.scope,
                    request: self.request,
                    response: self.response.as_deref_mut(),
                    reset_user: &mut self.reset_user,
                };
                def.action.run(&mut run).await
            };
            // Later definitions must see the action's effects.
            let effect = def.action.effect();
            if effect != Effect::Nothing {
                seen.fill(None);
            }
            self.scope.invalidate(effect);
            match result {
                Ok(done) => {
                    let info = match &done.details {
                        Some(d) => format!("{} ({d})", def.name),
                        None => def.name.clone(),
                    };
                    let row = self.audit_row(def, done.success, info, &fields);
                    let mut line = String::with_capacity(row.event.len() + 64);
                    line.push_str(&row.event);
                    line.push(' ');
                    line.push_str(def.trace_name());
                    line.push_str(if done.success {
                        ": ran in "
                    } else {
                        ": ran, returned false in "
                    });
                    push_ms(&mut line, watch.elapsed());
                    if let Some(d) = &done.details {
                        line.push_str(" (");
                        line.push_str(d);
                        line.push(')');
                    }
                    self.trace.add("event", line);
                    self.scope.actions.audit().record(row).await;
                }
                Err(err) => {
                    self.failed(def, &err, &fields, Some(&watch)).await;
                    if err.abort || def.abort_on_error {
                        return Err(abort(def, &err));
                    }
                }
            }
            // counters are not among the fields
            if effect != Effect::Anything {
                kept_fields = Some(fields);
            }
        }
        if !skipped.is_empty() {
            let prefix = self.scope.position.audit_prefix();
            if skipped.len() > NAMED_NOT_MET
                && tracing::enabled!(target: "otpgate::event", tracing::Level::DEBUG)
            {
                tracing::debug!(
                    target: "otpgate::event",
                    user = self.request.user.as_deref().unwrap_or(""),
                    serial = self.request.serial.as_deref().unwrap_or(""),
                    "{}",
                    not_met_named(prefix, self.scope.event, &skipped)
                );
            }
            let text = not_met(prefix, self.scope.event, &skipped);
            self.trace.add("event", text);
        }
        Ok(())
    }

    async fn audit_fields(&mut self) -> AuditFields {
        let response = self.response.as_deref();
        let mut ctx = self.scope.view(&*self.request, response);
        match ctx.determined().await {
            Ok(d) => AuditFields {
                user: d.user.as_ref().map(|u| u.login.clone()).unwrap_or_default(),
                realm: d.user.as_ref().map(|u| u.realm.clone()).unwrap_or_default(),
                serial: d.serial.clone().unwrap_or_default(),
            },
            Err(_) => AuditFields::default(),
        }
    }

    async fn failed(
        &mut self,
        def: &Definition,
        err: &HandlerError,
        fields: &AuditFields,
        // the action's run; `None`: the conditions failed to evaluate
        watch: Option<&Stopwatch>,
    ) {
        // The message may contain request data; the log gets it, the audit row only the kind.
        tracing::warn!(
            target: "otpgate::event",
            definition = %def.name,
            handler = %def.label(),
            error = %err.message,
            "event handler failed"
        );
        let row = self.audit_row(def, false, format!("{} ({})", def.name, err.kind), fields);
        self.trace.add(
            "event",
            format!(
                "{} {}: FAILED {}: {}{}",
                row.event,
                def.trace_name(),
                match watch {
                    Some(w) => {
                        let mut after = "after ".to_owned();
                        push_ms(&mut after, w.elapsed());
                        after
                    }
                    None => "evaluating its conditions".to_owned(),
                },
                err.message,
                if err.abort || def.abort_on_error {
                    " (aborts the request)"
                } else {
                    ""
                }
            ),
        );
        self.scope.actions.audit().record(row).await;
    }
}

/// `0.42 ms`: a run's time in hundredths of a millisecond, without float formatting.
fn push_ms(text: &mut String, took: std::time::Duration) {
    let centi_ms = (took.as_micros() + 5) / 10;
    let mut digits = itoa::Buffer::new();
    text.push_str(digits.format(centi_ms / 100));
    text.push('.');
    let hundredths = (centi_ms % 100) as u8;
    text.push(char::from(b'0' + hundredths / 10));
    text.push(char::from(b'0' + hundredths % 10));
    text.push_str(" ms");
}

/// How many definitions the trace's not-met line names one by one; beyond that it counts them
/// per condition and the debug log names them. Every request writes this line into its audit
/// row: with 20 definitions that did not hold, their names were a third of the trace and a
/// real share of a login's cost, and an audit table should not grow with the size of the
/// event configuration.
const NAMED_NOT_MET: usize = 4;

/// The not-met line of a phase: the definitions that did not hold, grouped by the condition
/// that did not, in order of first appearance.
///
/// - up to [`NAMED_NOT_MET`]: `POST-EVENT validate_check: conditions not met: result_value:
///   a, b; realm: "c, d"` (the names as the trace writes them);
/// - more: `POST-EVENT validate_check: conditions not met by 20 definitions: result_value 10,
///   realm 5, tokentype 5`.
fn not_met(prefix: &str, event: &str, skipped: &[(&'static str, &str)]) -> String {
    if skipped.len() > NAMED_NOT_MET {
        return not_met_counted(prefix, event, skipped);
    }
    not_met_named(prefix, event, skipped)
}

/// The conditions of `skipped` in order of first appearance, each with how many definitions
/// it stopped.
fn by_condition(skipped: &[(&'static str, &str)]) -> Vec<(&'static str, usize)> {
    let mut groups: Vec<(&'static str, usize)> = Vec::with_capacity(4);
    for (condition, _) in skipped {
        match groups.iter_mut().find(|(c, _)| c == condition) {
            Some((_, n)) => *n += 1,
            None => groups.push((condition, 1)),
        }
    }
    groups
}

/// `POST-EVENT validate_check` and `rest`, with room for the names or counts that follow.
fn line_start(prefix: &str, event: &str, rest: &str) -> String {
    let mut text = String::with_capacity(prefix.len() + event.len() + rest.len() + 96);
    text.push_str(prefix);
    text.push(' ');
    text.push_str(event);
    text.push_str(rest);
    text
}

fn not_met_named(prefix: &str, event: &str, skipped: &[(&'static str, &str)]) -> String {
    let groups = by_condition(skipped);
    let mut text = line_start(prefix, event, ": conditions not met:");
    for (i, (condition, _)) in groups.iter().enumerate() {
        text.push_str(if i == 0 { " " } else { "; " });
        text.push_str(condition);
        text.push(':');
        let names = skipped.iter().filter(|(c, _)| c == condition);
        for (j, (_, name)) in names.enumerate() {
            text.push_str(if j == 0 { " " } else { ", " });
            text.push_str(name);
        }
    }
    text
}

fn not_met_counted(prefix: &str, event: &str, skipped: &[(&'static str, &str)]) -> String {
    let mut text = line_start(prefix, event, ": conditions not met by ");
    text.push_str(itoa::Buffer::new().format(skipped.len()));
    text.push_str(" definitions:");
    for (i, (condition, n)) in by_condition(skipped).into_iter().enumerate() {
        text.push_str(if i == 0 { " " } else { ", " });
        text.push_str(condition);
        text.push(' ');
        text.push_str(itoa::Buffer::new().format(n));
    }
    text
}

#[derive(Debug, Clone, Default)]
struct AuditFields {
    user: String,
    realm: String,
    serial: String,
}

fn abort(def: &Definition, err: &HandlerError) -> Abort {
    Abort {
        definition: def.name.clone(),
        reason: err.kind.to_owned(),
    }
}

/// The answer document of a successful admin call (`result.status/value = true`).
pub fn admin_response(detail: serde_json::Map<String, Value>) -> Response {
    Response {
        status_code: 200,
        body: serde_json::json!({
            "jsonrpc": "2.0",
            "id": 1,
            "result": {"status": true, "value": true},
            "detail": Value::Object(detail),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_met_names_a_few_definitions_grouped_by_condition() {
        let skipped = [
            ("result_value", "a"),
            ("realm", "\"b, c\""),
            ("result_value", "d-1"),
        ];
        let text = not_met("POST-EVENT", "validate_check", &skipped);
        assert_eq!(
            text,
            "POST-EVENT validate_check: conditions not met: result_value: a, d-1; realm: \"b, c\""
        );
    }

    /// Past [`NAMED_NOT_MET`] the line counts, so its length does not grow with the names.
    #[test]
    fn not_met_counts_many_definitions_per_condition() {
        let names: Vec<String> = (0..12).map(|i| format!("definition-{i}")).collect();
        let conditions = ["result_value", "realm", "result_value", "tokentype"];
        let skipped: Vec<(&'static str, &str)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (conditions[i % 4], n.as_str()))
            .collect();
        let text = not_met("PRE-EVENT", "validate_check", &skipped);
        assert_eq!(
            text,
            "PRE-EVENT validate_check: conditions not met by 12 definitions: result_value 6, \
             realm 3, tokentype 3"
        );
        let few = &skipped[..NAMED_NOT_MET];
        assert!(not_met("PRE-EVENT", "validate_check", few).contains("definition-3"));
        let named = not_met_named("PRE-EVENT", "validate_check", &skipped);
        assert!(named.contains("result_value: definition-0, definition-2, definition-4"));
    }

    /// The milliseconds as `{:.2} ms` writes them, halves rounded up.
    #[test]
    fn run_times_in_hundredths_of_a_millisecond() {
        let ms = |us| {
            let mut text = String::new();
            push_ms(&mut text, std::time::Duration::from_micros(us));
            text
        };
        assert_eq!(ms(0), "0.00 ms");
        assert_eq!(ms(4), "0.00 ms");
        assert_eq!(ms(5), "0.01 ms");
        assert_eq!(ms(1_234), "1.23 ms");
        assert_eq!(ms(1_999), "2.00 ms");
        assert_eq!(ms(120_050), "120.05 ms");
    }
}
