//! Dry runs of event definitions (`otpgate event test`): for a request and an assumed answer,
//! which definitions' conditions hold and which condition stops the others; and the replay
//! (`--replay N`): the same for the last N audited authentications. Nothing runs and nothing
//! is written.

use serde_json::{Map, json};

use crate::auth::{Authentication, Authenticator, Origin, Request, Response};
use crate::event::context::Scope;
use crate::event::engine::evaluate;
use crate::event::{Position, conditions::Check};
use crate::store::StoreError;
use crate::store::audit::{AuditFilter, AuditRow};

/// One definition's verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DefinitionReport {
    pub name: String,
    pub handler: String,
    pub position: &'static str,
    pub active: bool,
    /// The definition listens to the tested event.
    pub listens: bool,
    /// Its conditions hold (it would run).
    pub holds: bool,
    /// (condition, outcome) in evaluation order, up to the first that stopped it.
    pub checks: Vec<(String, String)>,
}

fn outcome_text(c: &Check) -> String {
    match c {
        Check::Holds => "holds".into(),
        Check::Fails(why) => format!("fails: {why}"),
        Check::Unknown(why) => format!("unknown: {why}"),
    }
}

/// How one definition fared over a replay.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplayLine {
    pub name: String,
    pub handler: String,
    pub position: &'static str,
    pub active: bool,
    /// Requests on which its conditions held.
    pub fired: usize,
    /// Their audit ids, newest first (at most [`REPLAY_IDS`]).
    pub audit_ids: Vec<i64>,
}

/// What a replay went through and found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replay {
    pub requests: usize,
    pub oldest_us: Option<i64>,
    pub newest_us: Option<i64>,
    /// Every definition listening to `validate_check`, in run order.
    pub definitions: Vec<ReplayLine>,
}

/// Audit ids listed per definition.
pub const REPLAY_IDS: usize = 10;

/// The request and answer an audit row of `validate_check` records.
fn replayed(row: &AuditRow) -> (Request, Response) {
    let text = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
    let origin = match row.origin.as_ref() {
        "radius" => Origin::Radius,
        "ldap" => Origin::Ldap,
        "http" => Origin::Http,
        _ => Origin::Cli,
    };
    let single_serial = text(&row.serial).filter(|s| !s.contains(','));
    let request = Request {
        user: text(&row.user),
        realm: text(&row.realm),
        serial: single_serial.clone(),
        client: row.client.parse().ok(),
        origin,
        ..Request::empty()
    };
    let mut detail = Map::new();
    if !row.info.is_empty() {
        detail.insert("message".into(), json!(row.info));
    }
    if let Some(s) = single_serial {
        detail.insert("serial".into(), json!(s));
    }
    if !row.token_type.is_empty() {
        detail.insert("type".into(), json!(row.token_type));
    }
    let response = match row.authentication.as_str() {
        "ACCEPT" => Response::decided(true, Authentication::Accept, detail),
        "CHALLENGE" => Response::decided(false, Authentication::Challenge, detail),
        "REJECT" => Response::decided(false, Authentication::Reject, detail),
        _ => Response::error(400, crate::auth::response::codes::PARAMETER, &row.info),
    };
    (request, response)
}

impl Authenticator {
    /// Evaluate the current definitions against the last `limit` audited authentications:
    /// per definition, on how many (and which) its conditions would have held. Token and
    /// counter conditions read today's state, not the state at the time.
    pub async fn event_replay(&self, limit: i64) -> Result<Replay, StoreError> {
        let rows = self
            .store
            .list_audit(&AuditFilter {
                event: Some("validate_check".into()),
                limit,
                ..AuditFilter::default()
            })
            .await?;
        let cfg = self.config();
        let mut lines: Vec<ReplayLine> = Vec::new();
        for def in cfg.events.all() {
            if def.events.iter().any(|e| e == "validate_check") {
                lines.push(ReplayLine {
                    name: def.name.clone(),
                    handler: def.label().to_owned(),
                    position: def.position.as_str(),
                    active: def.active,
                    fired: 0,
                    audit_ids: Vec::new(),
                });
            }
        }
        for row in &rows {
            let (request, response) = replayed(row);
            for report in self
                .event_test("validate_check", &request, Some(&response))
                .await?
            {
                if !(report.listens && report.holds) {
                    continue;
                }
                if let Some(line) = lines
                    .iter_mut()
                    .find(|l| l.name == report.name && l.position == report.position)
                {
                    line.fired += 1;
                    if line.audit_ids.len() < REPLAY_IDS
                        && let Some(id) = row.id
                    {
                        line.audit_ids.push(id);
                    }
                }
            }
        }
        Ok(Replay {
            requests: rows.len(),
            newest_us: rows.first().map(|r| r.time_us),
            oldest_us: rows.last().map(|r| r.time_us),
            definitions: lines,
        })
    }

    /// The policies that match a request (for `otpgate event test`).
    pub async fn matching_policies(&self, request: &Request) -> Vec<String> {
        let cfg = self.config();
        let user = request.user.as_deref().map(|u| {
            cfg.directory.split_user_or(
                u,
                request.realm.as_deref(),
                request.default_realm.as_deref(),
            )
        });
        let (login, realm) = user.unwrap_or_default();
        let resolved = cfg.directory.find_or_log(&login, &realm).await;
        cfg.policies
            .effective(&crate::auth::policy::Subject {
                realm: &realm,
                resolver: resolved.as_ref().map_or("", |u| u.resolver.as_str()),
                user: &login,
                client: request.client,
                request: Some(request),
            })
            .matched
    }

    /// Evaluate every definition for `event`: PRE ones without an answer, POST ones against
    /// `response`.
    pub async fn event_test(
        &self,
        event: &str,
        request: &Request,
        response: Option<&Response>,
    ) -> Result<Vec<DefinitionReport>, StoreError> {
        let cfg = self.config();
        let now = self.now();
        let user = match request.user.as_deref() {
            Some(u) => {
                let (login, realm) = cfg.directory.split_user_or(
                    u,
                    request.realm.as_deref(),
                    request.default_realm.as_deref(),
                );
                cfg.directory.find_or_log(&login, &realm).await
            }
            None => None,
        };
        let mut reports = Vec::new();
        for position in [Position::Pre, Position::Post] {
            let mut scope = Scope::new(self, cfg.event_env(), event, position, now);
            scope.request_user = user.clone();
            let answer = match position {
                Position::Pre => None,
                Position::Post => response,
            };
            for def in cfg.events.all().iter().filter(|d| d.position == position) {
                let mut ctx = scope.view(request, answer);
                let verdict = evaluate(def, &mut ctx).await?;
                reports.push(DefinitionReport {
                    name: def.name.clone(),
                    handler: def.label().to_owned(),
                    position: position.as_str(),
                    active: def.active,
                    listens: def.events.iter().any(|e| e == event),
                    holds: verdict.holds,
                    checks: verdict
                        .checks
                        .iter()
                        .map(|(n, c)| ((*n).to_owned(), outcome_text(c)))
                        .collect(),
                });
            }
        }
        Ok(reports)
    }
}
