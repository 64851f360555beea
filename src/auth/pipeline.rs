//! `validate_check` from request to audit row (spec §1.4, §4.2).

use std::borrow::Cow;
use std::time::Duration;

use serde_json::{Map, json};

use crate::event::context::Scope;
use crate::event::{Abort, Phase, Position};
use crate::log_limit::Repeated;

use super::check::check_token_list;
use super::policy_steps;
use super::response::{Authentication, Response, codes};
use super::{Attempt, AuthError, Authenticator, Outcome, Request};

use crate::store::audit::AuditRow;

/// What a request through the pipeline asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Endpoint {
    /// `/validate/check`: authenticate.
    #[default]
    Check,
    /// `/validate/triggerchallenge`: create challenges for the user's tokens, no PIN needed
    /// (a service account asked).
    TriggerChallenge,
}

impl Endpoint {
    /// The event its handlers are defined for, and its audit rows' name.
    pub(crate) fn event(self) -> &'static str {
        match self {
            Self::Check => "validate_check",
            Self::TriggerChallenge => "validate_triggerchallenge",
        }
    }
}

impl Authenticator {
    /// Run one authentication request through the whole pipeline and write its audit row.
    pub async fn validate_check(&self, req: Request) -> Outcome {
        self.run_request(req, Endpoint::Check).await
    }

    /// Create challenges for the request's user (or serial) without a PIN, as privacyIDEA's
    /// `/validate/triggerchallenge` does for service accounts: policies, events and the audit
    /// row as for a check. `result.value` is the number of challenges.
    pub async fn trigger_challenge(&self, req: Request) -> Outcome {
        self.run_request(req, Endpoint::TriggerChallenge).await
    }

    async fn run_request(&self, req: Request, endpoint: Endpoint) -> Outcome {
        let mut req = req;
        let cfg = self.config();
        let now = self.clock.now();
        let mut at = Attempt::new(self, &cfg, now);
        at.endpoint = endpoint;
        // formatted once: the trace and the audit row both name it
        let client = trace_request(&mut at, &req);
        at.proof = req.proof.clone();
        resolve_user(&mut at, &req).await;
        policy_steps::request_policies(&mut at, &mut req).await;
        let response = self.validate_with_events(&mut at, &mut req).await;
        let response = policy_steps::authorize(&mut at, response);
        let response = policy_steps::user_in_response(&at, response);
        let response = policy_steps::hide_details(&at, response);
        self.lock_events(&mut at, &req, &response).await;
        self.audit_validate(&at, &req, &response, client).await;
        Outcome {
            response,
            user: at.user.clone(),
            accepted: at.accepted.clone(),
            policies: at.policies.clone(),
            store_unavailable: at.store_unavailable,
        }
    }

    /// The audit row of a request its front-end refused before any token was asked (an
    /// unsupported method, a directory that refused the bind): no token, policy or event
    /// sees it, so no failcounter moves.
    pub async fn refused_before_check(&self, req: &Request, reason: &str) {
        let cfg = self.config();
        let mut at = Attempt::new(self, &cfg, self.clock.now());
        let client = trace_request(&mut at, req);
        at.trace
            .add("result", format!("REJECT by the front-end: {reason}"));
        let (login, realm) = match &req.user {
            Some(user) => cfg.directory.split_user_or(
                user,
                req.realm.as_deref(),
                req.default_realm.as_deref(),
            ),
            None => Default::default(),
        };
        at.login = login;
        at.realm = realm;
        let response = Response::decided(false, Authentication::Reject, {
            let mut detail = Map::new();
            detail.insert("message".into(), reason.into());
            detail
        });
        self.audit_validate(&at, req, &response, client).await;
    }

    /// PRE handlers → the check → POST handlers (spec §1.4). POST handlers do not run when the
    /// check ends in an error answer (unknown user, bad parameters).
    async fn validate_with_events(&self, at: &mut Attempt<'_>, req: &mut Request) -> Response {
        let cfg = at.cfg;
        // a phase copies the attempt's user, serials and token states: only for definitions
        let event = at.endpoint.event();
        if !cfg.events.select(event, Position::Pre).is_empty() {
            let mut phase = self.phase(at, req, None, Position::Pre);
            let outcome = phase.run().await;
            let reset_user = phase.reset_user;
            if let Err(abort) = outcome {
                return aborted(at, abort);
            }
            if reset_user {
                at.trace
                    .add("event", "RequestMangler reset the request user");
                resolve_user(at, req).await;
                policy_steps::request_policies(at, req).await;
            }
        }
        at.transaction_id = req.transaction_id.clone().filter(|t| !t.is_empty());
        let run = match at.endpoint {
            Endpoint::Check => self.run_validate(at, req).await,
            Endpoint::TriggerChallenge => super::trigger::run(at, req).await,
        };
        let mut response = match run {
            Ok(r) => r,
            Err(AuthError::Respond(r)) => {
                at.trace.add(
                    "result",
                    format!("error: {}", r.message().unwrap_or("request refused")),
                );
                return r;
            }
            Err(e) => {
                at.store_unavailable = matches!(&e, AuthError::Store(s) if s.is_unavailable());
                // the store's breaker logs an outage once; any other failure is the same for
                // every login while it lasts (a full disk): a line per 10 s
                static FAILED: Repeated = Repeated::new(Duration::from_secs(10));
                if !at.store_unavailable
                    && let Some(held_back) = FAILED.tick()
                {
                    tracing::error!(target: "otpgate::auth", error = %e, held_back, "{event} failed");
                }
                at.trace.add("error", e.to_string());
                return match &e {
                    // the answer leaves the host: what failed, not which server or why
                    AuthError::Directory(d) => user_store_error(d),
                    _ => Response::error(500, codes::INTERNAL, &format!("ERR500: {e}")),
                };
            }
        };
        if !cfg.events.select(event, Position::Post).is_empty() {
            let mut phase = self.phase(at, req, Some(&mut response), Position::Post);
            if let Err(abort) = phase.run().await {
                return aborted(at, abort);
            }
        }
        response
    }

    /// A phase of `validate_check` for `request` (and `response` in POST).
    fn phase<'p, 'a>(
        &self,
        at: &'p mut Attempt<'a>,
        request: &'p mut Request,
        response: Option<&'p mut Response>,
        position: Position,
    ) -> Phase<'p, 'a> {
        let event = at.endpoint.event();
        let mut scope = Scope::new(at.auth, at.cfg.event_env(), event, position, at.now);
        scope.request_user = at.user.clone();
        scope.audit_serials = at.serials.clone();
        scope.known_tokens = at.post_state.clone();
        Phase {
            scope,
            request,
            response,
            trace: &mut at.trace,
            reset_user: false,
        }
    }

    /// `token_locked` / `token_unlocked` (POST), fired by the request that locked or unlocked a
    /// token. Their handlers see the token's serial and the request's answer; they cannot
    /// change that answer.
    async fn lock_events(&self, at: &mut Attempt<'_>, req: &Request, response: &Response) {
        let cfg = at.cfg;
        for (event, serials) in [
            ("token_locked", at.locked.clone()),
            ("token_unlocked", at.unlocked.clone()),
        ] {
            if serials.is_empty() || !cfg.events.listens(event) {
                continue;
            }
            let mut done: Vec<String> = Vec::new();
            for serial in serials {
                if done.contains(&serial) {
                    continue;
                }
                done.push(serial.clone());
                let mut request = Request {
                    serial: Some(serial),
                    origin: req.origin,
                    client: req.client,
                    params: req.params.clone(),
                    ..Request::empty()
                };
                let mut answer = response.clone();
                let mut scope = Scope::new(self, cfg.event_env(), event, Position::Post, at.now);
                scope.request_user = at.user.clone();
                let mut phase = Phase {
                    scope,
                    request: &mut request,
                    response: Some(&mut answer),
                    trace: &mut at.trace,
                    reset_user: false,
                };
                // boxed: a lock event is rare; a login's future would otherwise hold a phase
                if let Err(abort) = Box::pin(phase.run()).await {
                    at.trace.add(
                        "event",
                        format!("{event}: {abort}; the answer of the request stands"),
                    );
                }
            }
        }
    }

    async fn run_validate(
        &self,
        at: &mut Attempt<'_>,
        req: &Request,
    ) -> Result<Response, AuthError> {
        if let Some(serial) = req.serial.as_deref().filter(|s| !s.is_empty()) {
            return self.check_serial(at, req, serial).await;
        }
        if at.login.is_empty() {
            return Err(no_user_or_serial());
        }
        if let Some(e) = &at.directory_error {
            return Err(AuthError::Respond(user_store_error(e)));
        }
        let Some(user) = at.user.clone() else {
            return policy_steps::unknown_user(at);
        };
        if user.record.disabled() {
            return Err(AuthError::Respond(Response::error(
                400,
                codes::USER_NOT_FOUND,
                &format!(
                    "User <{}@{}> is disabled in the directory.",
                    at.login, at.realm
                ),
            )));
        }
        let mut tokens = self
            .store
            .tokens()
            .of_user(&user.realm, &user.login)
            .await?;
        if let Some(kind) = req.token_type.as_deref().filter(|t| !t.is_empty()) {
            tokens.retain(|t| t.kind.as_str().eq_ignore_ascii_case(kind));
        }
        at.trace
            .add("token", format!("candidates: {}", token_list(&tokens)));
        if let Some(answer) = policy_steps::before_check(at, req, tokens.len()).await? {
            return Ok(answer);
        }
        if tokens.is_empty() {
            let mut detail = Map::new();
            detail.insert("message".into(), json!("The user has no tokens assigned"));
            at.trace
                .add("result", "REJECT: the user has no tokens assigned");
            return Ok(Response::decided(false, Authentication::Reject, detail));
        }
        let participants: Vec<i64> = tokens.iter().map(|t| t.id).collect();
        let answer = check_token_list(at, tokens, &req.pass).await?;
        policy_steps::after_success(at, answer, &participants).await
    }

    async fn check_serial(
        &self,
        at: &mut Attempt<'_>,
        req: &Request,
        serial: &str,
    ) -> Result<Response, AuthError> {
        let Some(token) = self.store.tokens().by_serial(serial).await? else {
            at.trace
                .add("token", format!("serial {serial:?} does not exist"));
            return Err(AuthError::Respond(Response::error(
                404,
                codes::TOKEN_NOT_FOUND,
                "The requested token could not be found.",
            )));
        };
        if !at.login.is_empty() {
            let owns = token
                .owner
                .as_ref()
                .is_some_and(|o| o.login == at.login && o.realm.eq_ignore_ascii_case(&at.realm));
            if !owns {
                return Err(AuthError::Respond(Response::error(
                    400,
                    codes::PARAMETER,
                    "Given serial does not belong to given user!",
                )));
            }
        } else if let Some(owner) = &token.owner {
            // Serial-only request: the owner is the user for policies, events and the audit.
            at.login = owner.login.clone();
            at.realm = owner.realm.clone();
            at.user = at
                .cfg
                .directory
                .find_or_log(&owner.login, &owner.realm)
                .await;
        }
        at.trace.add(
            "token",
            format!("serial request for {} ({})", token.serial, token.kind),
        );
        if req.otponly {
            return self.check_otp_only(at, token, &req.pass).await;
        }
        let participants = [token.id];
        let answer = check_token_list(at, vec![token], &req.pass).await?;
        policy_steps::after_success(at, answer, &participants).await
    }

    /// `otponly=1`: the OTP alone, no PIN and no failcounter logic.
    async fn check_otp_only(
        &self,
        at: &mut Attempt<'_>,
        token: crate::token::Token,
        pass: &crate::secret::Secret<String>,
    ) -> Result<Response, AuthError> {
        let generator = super::verify::generator(&token, &self.key).ok().flatten();
        let check = super::verify::check_otp(
            &token,
            generator.as_ref(),
            pass.expose(),
            at.now,
            &at.cfg.system,
        );
        let mut detail = Map::new();
        if let super::verify::OtpCheck::Accepted {
            new_count,
            time_shift,
            ..
        } = check
            && super::check::consume(at, &token, new_count, time_shift).await?
        {
            detail.insert("message".into(), json!("matching 1 tokens"));
            super::check::token_detail(&mut detail, &token);
            at.note_token(&token);
            at.accepted.push(token.serial.clone());
            at.accepted_tokens.push(token.clone());
            at.trace.add("result", "ACCEPT: OTP only");
            return Ok(Response::decided(true, Authentication::Accept, detail));
        }
        detail.insert("message".into(), json!("wrong otp value"));
        at.note_token(&token);
        at.trace.add("result", "REJECT: OTP only, wrong value");
        Ok(Response::decided(false, Authentication::Reject, detail))
    }

    async fn audit_validate(
        &self,
        at: &Attempt<'_>,
        req: &Request,
        response: &Response,
        client: String,
    ) {
        let row = AuditRow {
            id: None,
            time_us: at.now.timestamp_micros(),
            node: self.node.clone(),
            event: Cow::Borrowed(at.endpoint.event()),
            origin: Cow::Borrowed(req.origin.as_str()),
            success: response.value(),
            authentication: response.authentication().unwrap_or("").into(),
            user: at.login.clone(),
            realm: at.realm.clone(),
            resolver: at
                .user
                .as_ref()
                .map(|u| u.resolver.clone())
                .unwrap_or_default(),
            serial: at.serials.join(","),
            token_type: at.token_types.join(","),
            client,
            info: response.message().unwrap_or("").into(),
            action_detail: String::new(),
            policies: at.policies.join(","),
            duration_us: at.trace.elapsed_us(),
            trace: at.trace.to_json(),
        };
        if at.cfg.audit_before_answer {
            self.audit.record_answered(row).await;
        } else {
            self.audit.record(row).await;
        }
    }
}

/// The trace's first step, naming the request; returns the client as the audit row names it.
fn trace_request(at: &mut Attempt<'_>, req: &Request) -> String {
    let client = req.client_text();
    at.trace.add(
        "request",
        format!(
            "{} request{}: user={:?} realm={:?} serial={:?} transaction={:?} client={}",
            req.origin.as_str(),
            req.proof
                .as_ref()
                .map(|p| format!(" by {}", p.method()))
                .unwrap_or_default(),
            req.user.as_deref().unwrap_or(""),
            req.realm.as_deref().unwrap_or(""),
            req.serial.as_deref().unwrap_or(""),
            req.transaction_id.as_deref().unwrap_or(""),
            client,
        ),
    );
    client
}

/// Split and resolve the request user (spec §1.4 step 1); resets what an earlier resolution
/// found, so a RequestMangler with `reset_user` can call it again. A resolver that could not
/// answer leaves `directory_error`: the check then refuses, it never treats the user as unknown.
pub(crate) async fn resolve_user(at: &mut Attempt<'_>, req: &Request) {
    let cfg = at.cfg;
    at.user = None;
    at.directory_error = None;
    at.login.clear();
    at.realm.clear();
    let Some(user) = req.user.as_deref().filter(|u| !u.trim().is_empty()) else {
        return;
    };
    let (login, realm) =
        cfg.directory
            .split_user_or(user, req.realm.as_deref(), req.default_realm.as_deref());
    at.login = login;
    at.realm = realm;
    match cfg.directory.find(&at.login, &at.realm).await {
        Ok(Some(u)) => {
            at.trace.add(
                "user",
                format!(
                    "{user:?} → login {:?} in realm {:?}, resolver {:?}{}",
                    u.login,
                    u.realm,
                    u.resolver,
                    if u.record.disabled() {
                        " (disabled in the directory)"
                    } else {
                        ""
                    }
                ),
            );
            // the directory's spelling owns the tokens (`Alice` logs in as `alice`)
            at.login = u.login.clone();
            at.user = Some(u);
        }
        Ok(None) => at.trace.add(
            "user",
            format!(
                "{user:?} → login {:?} in realm {:?}: not found in any resolver of the realm",
                at.login, at.realm
            ),
        ),
        Err(e) => {
            static FAILED: Repeated = Repeated::new(Duration::from_secs(10));
            if let Some(held_back) = FAILED.tick() {
                tracing::error!(target: "otpgate::users", error = %e, held_back, "user lookup failed; logins of this realm are refused");
            }
            at.trace.add("user", format!("{user:?} → {e}"));
            at.directory_error = Some(e);
        }
    }
}

/// Tokens as the trace names them: `SERIAL (type), …` or `none`.
pub(super) fn token_list(tokens: &[crate::token::Token]) -> String {
    if tokens.is_empty() {
        return "none".to_owned();
    }
    tokens
        .iter()
        .map(|t| format!("{} ({})", t.serial, t.kind))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A request that names neither a user nor a serial.
pub(super) fn no_user_or_serial() -> AuthError {
    AuthError::Respond(Response::error(
        400,
        codes::PARAMETER,
        "You need to specify a serial, user or credential_id.",
    ))
}

/// The answer when a resolver could not be asked (the audit row's trace has the details).
pub(super) fn user_store_error(e: &crate::users::DirectoryError) -> Response {
    Response::error(
        500,
        codes::INTERNAL,
        &format!(
            "The user store could not be asked (resolver {:?}: {}).",
            e.resolver,
            e.kind.label()
        ),
    )
}

/// The answer when a handler aborts the request.
fn aborted(at: &mut Attempt<'_>, abort: Abort) -> Response {
    at.trace.add("result", format!("error: {abort}"));
    Response::error(
        500,
        codes::HANDLER,
        &format!(
            "Event handler {:?} failed; the request was aborted.",
            abort.definition
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, answer};
    use crate::message::Request;

    /// One row per way the pipeline finds its user and token (spec §4.1, §4.2 and the serial
    /// requests after it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_way_a_request_names_its_user_or_token() {
        let otponly = {
            let mut r = Request::serial("HOTP1", "755224");
            r.otponly = true;
            r
        };
        let both = {
            let mut r = Request::user("bob", "pin755224");
            r.serial = Some("HOTP1".into());
            r
        };
        let rows: Vec<(&str, Request, &str, &str)> = vec![
            (
                "user in the default realm",
                Request::user("alice", "pin755224"),
                "ACCEPT",
                "matching 1 tokens",
            ),
            (
                "user@realm",
                Request::user("alice@realm1", "pin755224"),
                "ACCEPT",
                "matching 1 tokens",
            ),
            (
                "user in a realm that does not exist",
                Request::user("alice", "pin755224").with_realm("nowhere"),
                "error 400",
                "ERR904: User <alice@nowhere> does not exist.",
            ),
            (
                "serial",
                Request::serial("HOTP1", "pin755224"),
                "ACCEPT",
                "matching 1 tokens",
            ),
            ("serial, OTP only", otponly, "ACCEPT", "matching 1 tokens"),
            (
                "unknown serial",
                Request::serial("NOPE", "pin755224"),
                "error 404",
                "ERR601: The requested token could not be found.",
            ),
            (
                "serial of another user",
                both,
                "error 400",
                "ERR905: Given serial does not belong to given user!",
            ),
            (
                "neither user nor serial",
                Request::empty(),
                "error 400",
                "ERR905: You need to specify a serial, user or credential_id.",
            ),
        ];
        for (case, request, decision, message) in rows {
            let f = Fixture::baseline().await;
            let got = answer(&f.check(request).await);
            assert_eq!(got, (decision.to_owned(), message.to_owned()), "{case}");
        }
    }

    /// Every request leaves one audit row with its decision trace.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_request_leaves_an_audit_row_with_its_trace() {
        let f = Fixture::baseline().await;
        f.check(Request::user("alice", "pin755224")).await;
        f.check(Request::user("eve", "x")).await;
        f.auth.audit().flush().await;
        let rows = f
            .auth
            .store()
            .list_audit(&crate::store::audit::AuditFilter {
                event: Some("validate_check".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap_or_default();
        assert_eq!(rows.len(), 2);
        let eve = &rows[0];
        assert!(!eve.success);
        assert_eq!(eve.user, "eve");
        assert!(eve.trace.contains("does not exist"), "{}", eve.trace);
        assert!(rows[1].success);
        assert_eq!(rows[1].serial, "HOTP1");
    }
}
