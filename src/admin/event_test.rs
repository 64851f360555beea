//! Dry runs of event definitions (`otpgate event test`): for a request and an assumed answer,
//! which definitions' conditions hold and which condition stops the others. Nothing runs and
//! nothing is written.

use crate::auth::{Authenticator, Request, Response};
use crate::event::context::Scope;
use crate::event::engine::evaluate;
use crate::event::{Position, conditions::Check};
use crate::store::StoreError;

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

impl Authenticator {
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
