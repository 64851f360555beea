//! Where the policies act in `validate_check` (spec §4.2):
//!
//! - [`request_policies`]: before the PRE handlers: `set_realm`, `mangle`, and the switches the
//!   check reads (`otppin`, `challenge_response`, …);
//! - [`before_check`]: `passOnNoUser`, `passOnNoToken`, `auth_max_fail`/`auth_max_success`,
//!   `passthru`;
//! - [`after_success`]: `last_auth`, `reset_all_user_tokens`;
//! - [`authorize`]: after the POST handlers: `tokentype`, `serial`, `tokeninfo`;
//! - [`hide_details`]: `hide_specific_error_message`, last of all.

use serde_json::{Map, Value, json};

use super::policy::{Passthru, Subject};
use super::response::{Authentication, Response, codes};
use super::{Attempt, AuthError, AuthFlags, Request};
use crate::store::tokens::TokenChange;

fn accept(at: &mut Attempt<'_>, message: String) -> Response {
    at.accepted_without_token = true;
    at.trace.add("result", format!("ACCEPT: {message}"));
    let mut detail = Map::new();
    detail.insert("message".into(), json!(message));
    Response::decided(true, Authentication::Accept, detail)
}

fn reject(at: &mut Attempt<'_>, message: String) -> Response {
    at.trace.add("result", format!("REJECT: {message}"));
    let mut detail = Map::new();
    detail.insert("message".into(), json!(message));
    Response::decided(false, Authentication::Reject, detail)
}

fn subject<'a>(at: &'a Attempt<'_>, req: &'a Request) -> Subject<'a> {
    Subject {
        realm: &at.realm,
        resolver: at.user.as_ref().map_or("", |u| u.resolver.as_str()),
        user: &at.login,
        client: req.client,
        request: Some(req),
    }
}

/// Compute the policies in force, apply `set_realm` and `mangle` (re-resolving the user), and
/// set the switches of the check. Returns true when the request user changed.
pub(crate) async fn request_policies(at: &mut Attempt<'_>, req: &mut Request) -> bool {
    if at.cfg.policies.is_empty() {
        return false;
    }
    let mut eff = at.cfg.policies.effective(&subject(at, req));
    let mut changed = false;
    if let Some(realm) = eff.set_realm().map(str::to_owned)
        && req.user.is_some()
        && realm != at.realm
    {
        at.trace.add(
            "policy",
            format!(
                "set_realm ({}): realm {:?} → {realm:?}",
                eff.flag("set_realm").unwrap_or(""),
                at.realm
            ),
        );
        req.realm = Some(realm);
        changed = true;
    }
    for m in eff.mangle().to_vec() {
        let current = req.param(&m.field).unwrap_or_default();
        let new = m.search.replace(&current, m.replace.as_str()).into_owned();
        if new != current {
            // never trace the password itself
            let shown = if m.field == "pass" {
                "(password rewritten)".to_owned()
            } else {
                format!("{current:?} → {new:?}")
            };
            at.trace
                .add("policy", format!("mangle {}: {shown}", m.field));
            req.set_param(&m.field, &new);
            changed |= m.field != "pass";
        }
    }
    if changed {
        super::pipeline::resolve_user(at, req).await;
        eff = at.cfg.policies.effective(&subject(at, req));
    }
    at.flags = AuthFlags {
        otppin: eff.otppin(),
        challenge_types: eff.challenge_types(),
        challenge_text: eff.challenge_text(),
        force_challenge_response: eff.flag("force_challenge_response").is_some(),
        increase_failcounter_on_challenge: eff.flag("increase_failcounter_on_challenge").is_some(),
        reset_all_user_tokens: eff.flag("reset_all_user_tokens").is_some(),
        disabled_token_types: eff.disabled_token_types(),
    };
    // privacyIDEA injects these into the parameter map; handlers can see them.
    if at.flags.increase_failcounter_on_challenge {
        req.params
            .insert("increase_failcounter_on_challenge".into(), "True".into());
    }
    if !at.flags.disabled_token_types.is_empty() {
        req.params.insert(
            "disabled_token_types".into(),
            at.flags
                .disabled_token_types
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    if !eff.matched.is_empty() {
        at.trace.add(
            "policy",
            format!("matching policies: {}", eff.matched.join(", ")),
        );
    }
    at.policies = eff.matched.clone();
    at.policy = eff;
    changed
}

/// A user request whose user does not exist: `passOnNoUser` or error 904.
pub(crate) fn unknown_user(at: &mut Attempt<'_>) -> Result<Response, AuthError> {
    if let Some(name) = at.policy.flag("passOnNoUser").map(str::to_owned) {
        return Ok(accept(
            at,
            format!("user does not exist, accepted due to '{name}'"),
        ));
    }
    Err(AuthError::Respond(Response::error(
        400,
        codes::USER_NOT_FOUND,
        &format!("User <{}@{}> does not exist.", at.login, at.realm),
    )))
}

/// Steps 3–6 of §4.2 for a user with `tokens` tokens: `Some` answer ends the request.
pub(crate) async fn before_check(
    at: &mut Attempt<'_>,
    req: &Request,
    tokens: usize,
) -> Result<Option<Response>, AuthError> {
    if tokens == 0
        && let Some(name) = at.policy.flag("passOnNoToken").map(str::to_owned)
    {
        return Ok(Some(accept(
            at,
            format!("user has no token, accepted due to '{name}'"),
        )));
    }
    for (action, success, what) in [
        ("auth_max_fail", false, "failed"),
        ("auth_max_success", true, "successful"),
    ] {
        let Some((rate, name)) = at.policy.rate(action).map(|(r, n)| (r, n.to_owned())) else {
            continue;
        };
        // rows of earlier requests may still be queued for the batch writer
        at.auth.audit.flush().await;
        let since = (at.now - rate.window).timestamp_micros();
        let n = at
            .auth
            .store
            .count_auth_rows(&at.login, &at.realm, since, success)
            .await?;
        if n >= rate.count {
            at.trace.add(
                "policy",
                format!("{action} ({name}): {n} {what} authentications in the window"),
            );
            let message = format!(
                "Only {} {what} authentications per {} allowed.",
                rate.count,
                crate::dates::python_timedelta(rate.window)
            );
            return Ok(Some(reject(at, message)));
        }
    }
    if tokens == 0
        && let Some((passthru, name)) = at.policy.passthru().map(|(p, n)| (p.clone(), n.to_owned()))
    {
        match passthru {
            Passthru::UserStore => {
                let ok = match &at.user {
                    Some(u) => {
                        at.cfg
                            .directory
                            .check_password(u, req.pass.expose(), &at.auth.pins)
                            .await?
                    }
                    None => false,
                };
                if ok {
                    return Ok(Some(accept(
                        at,
                        format!("against userstore due to '{name}'"),
                    )));
                }
                at.trace.add(
                    "policy",
                    format!("passthru ({name}): the user-store password is wrong"),
                );
            }
            Passthru::Radius(remote) => {
                let params = req.params_for_forwarding();
                match at.auth.upstreams().forward(&remote, params).await {
                    Ok((answer, _)) if answer.value() => {
                        return Ok(Some(accept(
                            at,
                            format!("against RADIUS server {remote} due to '{name}'"),
                        )));
                    }
                    Ok(_) => at.trace.add(
                        "policy",
                        format!("passthru ({name}): RADIUS server {remote} rejected"),
                    ),
                    Err(e) => at.trace.add("policy", format!("passthru ({name}): {e}")),
                }
            }
        }
    }
    Ok(None)
}

/// Steps 10–11 of §4.2 after an ACCEPT: `last_auth` and `reset_all_user_tokens`.
/// `participants` are the token ids that took part in the check.
pub(crate) async fn after_success(
    at: &mut Attempt<'_>,
    response: Response,
    participants: &[i64],
) -> Result<Response, AuthError> {
    if !response.value() {
        return Ok(response);
    }
    if let (Some(delta), [only]) = (at.policy.last_auth(), at.accepted_tokens.as_slice())
        && let Some(previous) = only.last_auth.clone()
        && let Some(stamp) = crate::dates::parse(&previous)
        && stamp.as_utc() + delta < at.now
    {
        return Ok(reject(
            at,
            format!("The last successful authentication was {previous}. It is too long ago."),
        ));
    }
    if at.flags.reset_all_user_tokens && !participants.is_empty() {
        // boxed: a policy's rare write would otherwise size every login's future
        Box::pin(
            at.auth
                .store
                .tokens()
                .change(participants, &[TokenChange::Failcount(0)]),
        )
        .await?;
        at.trace.add(
            "policy",
            format!(
                "reset_all_user_tokens: failcount of {} token(s) → 0",
                participants.len()
            ),
        );
    }
    Ok(response)
}

/// Authorization after the POST handlers: the accepted token's type, serial and tokeninfo.
pub(crate) fn authorize(at: &mut Attempt<'_>, response: Response) -> Response {
    if !response.value() || at.accepted_without_token || at.accepted_tokens.is_empty() {
        return response;
    }
    let refuse = |at: &mut Attempt<'_>, message: &str| {
        at.trace.add("policy", format!("authorization: {message}"));
        Response::error(403, codes::POLICY, message)
    };
    if let Some(types) = at.policy.allowed_types().map(<[_]>::to_vec)
        && at.accepted_tokens.iter().any(|t| !types.contains(&t.kind))
    {
        return refuse(at, "Tokentype not allowed for authentication!");
    }
    if let Some(re) = at.policy.serial_regex().cloned()
        && at.accepted_tokens.iter().any(|t| !re.is_match(&t.serial))
    {
        return refuse(at, "Serial is not allowed for authentication!");
    }
    if let Some((key, re)) = at
        .policy
        .tokeninfo()
        .map(|(k, r)| (k.to_owned(), r.clone()))
        && at
            .accepted_tokens
            .iter()
            .any(|t| !t.tokeninfo(&key).is_some_and(|v| re.is_match(&v)))
    {
        return refuse(
            at,
            &format!("Tokeninfo field {key} does not match the policy."),
        );
    }
    response
}

/// `hide_specific_error_message`: errors and rejects say only that authentication failed.
/// `add_user_in_response` (on ACCEPT: `detail.user`, the user's attributes) and
/// `add_resolver_in_response` (on success: `detail.user-resolver`, `detail.user-realm`).
pub(crate) fn user_in_response(at: &Attempt<'_>, mut response: Response) -> Response {
    let Some(user) = at.user.as_ref() else {
        return response;
    };
    let accepted = response.authentication() == Some("ACCEPT");
    let add_user = accepted && at.policy.flag("add_user_in_response").is_some();
    let add_resolver = response.value() && at.policy.flag("add_resolver_in_response").is_some();
    let Some(detail) = response.detail_mut() else {
        return response;
    };
    if add_user {
        let rec = &user.record;
        let mut info = Map::new();
        info.insert("username".into(), json!(user.login));
        info.insert("givenname".into(), json!(rec.givenname()));
        info.insert("surname".into(), json!(rec.surname()));
        for key in ["email", "mobile", "phone"] {
            info.insert(key.into(), json!(rec.attribute(key).unwrap_or_default()));
        }
        for (k, v) in rec.free_attributes() {
            info.insert(k.clone(), json!(v));
        }
        detail.insert("user".into(), Value::Object(info));
    }
    if add_resolver {
        detail.insert("user-resolver".into(), json!(user.resolver));
        detail.insert("user-realm".into(), json!(user.realm));
    }
    response
}

pub(crate) fn hide_details(at: &Attempt<'_>, mut response: Response) -> Response {
    if at.policy.flag("hide_specific_error_message").is_none() || response.value() {
        return response;
    }
    if !response.status() {
        return Response::error(400, codes::VALIDATE, "Authentication failed.");
    }
    if response.authentication() == Some("REJECT")
        && let Some(detail) = response.detail_mut()
    {
        detail.insert("message".into(), json!("wrong otp pin"));
        detail.remove("serial");
        detail.remove("type");
        detail.remove("otplen");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Before, Fixture, answer};
    use crate::message::Request;

    fn policy(scope: &str, actions: &str) -> String {
        format!("[[policy]]\nname = \"p\"\nscope = \"{scope}\"\nactions = {{ {actions} }}\n")
    }

    /// One row per policy step of §4.2 and the authorization policies of §4.9: the answer to
    /// `user`/`pass` under one policy, after `before`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_policy_step() {
        use Before::*;
        let authn = |a: &str| policy("authentication", a);
        let authz = |a: &str| policy("authorization", a);
        // step, policies, before, user, pass, decision, message
        type Row<'a> = (
            &'a str,
            String,
            &'a [Before],
            &'a str,
            &'a str,
            &'a str,
            &'a str,
        );
        let rows: Vec<Row<'_>> = vec![
            (
                "unknown user",
                String::new(),
                &[],
                "eve",
                "x",
                "error 400",
                "ERR904: User <eve@realm1> does not exist.",
            ),
            (
                "passOnNoUser",
                authn("passOnNoUser = true"),
                &[],
                "eve",
                "x",
                "ACCEPT",
                "user does not exist, accepted due to 'p'",
            ),
            (
                "no token",
                String::new(),
                &[],
                "bob",
                "x",
                "REJECT",
                "The user has no tokens assigned",
            ),
            (
                "passOnNoToken",
                authn("passOnNoToken = true"),
                &[],
                "bob",
                "x",
                "ACCEPT",
                "user has no token, accepted due to 'p'",
            ),
            (
                "passthru to the user store",
                authn("passthru = true"),
                &[],
                "carol",
                "Carol1",
                "ACCEPT",
                "against userstore due to 'p'",
            ),
            (
                "passthru with a wrong password falls through",
                authn("passthru = true"),
                &[],
                "carol",
                "wrong",
                "REJECT",
                "The user has no tokens assigned",
            ),
            (
                "otppin = userstore",
                authn("otppin = \"userstore\""),
                &[],
                "alice",
                "Secret1755224",
                "ACCEPT",
                "matching 1 tokens",
            ),
            (
                "otppin = userstore, the token PIN is no password",
                authn("otppin = \"userstore\""),
                &[],
                "alice",
                "pin755224",
                "REJECT",
                "wrong otp pin",
            ),
            (
                "otppin = none",
                authn("otppin = \"none\""),
                &[],
                "alice",
                "755224",
                "ACCEPT",
                "matching 1 tokens",
            ),
            (
                "force_challenge_response",
                authn("force_challenge_response = true, challenge_response = \"hotp\""),
                &[],
                "alice",
                "pin755224",
                "REJECT",
                "wrong otp pin",
            ),
            (
                "auth_max_fail",
                authz("auth_max_fail = \"1/1m\""),
                &[Login("pin000000")],
                "alice",
                "pin755224",
                "REJECT",
                "Only 1 failed authentications per 0:01:00 allowed.",
            ),
            (
                "auth_max_success",
                authz("auth_max_success = \"1/1m\""),
                &[Login("pin755224")],
                "alice",
                "pin287082",
                "REJECT",
                "Only 1 successful authentications per 0:01:00 allowed.",
            ),
            (
                "authorization by token type",
                authz("tokentype = \"totp\""),
                &[],
                "alice",
                "pin755224",
                "error 403",
                "ERR303: Tokentype not allowed for authentication!",
            ),
            (
                "authorization by serial",
                authz("serial = \"^TOTP\""),
                &[],
                "alice",
                "pin755224",
                "error 403",
                "ERR303: Serial is not allowed for authentication!",
            ),
            (
                "hide_specific_error_message",
                authn("hide_specific_error_message = true"),
                &[],
                "eve",
                "x",
                "error 400",
                "ERR10: Authentication failed.",
            ),
        ];
        for (step, policies, before, user, pass, decision, message) in rows {
            let f = Fixture::new(&policies, Default::default()).await;
            f.prepare(before).await;
            let got = answer(&f.check(Request::user(user, pass)).await);
            assert_eq!(got, (decision.to_owned(), message.to_owned()), "{step}");
        }
    }

    /// `reset_all_user_tokens`: a success resets the failcount of the user's other tokens.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reset_all_user_tokens_resets_the_others() {
        let f = Fixture::new(
            &policy("authentication", "reset_all_user_tokens = true"),
            Default::default(),
        )
        .await;
        f.prepare(&[Before::SecondToken("other"), Before::Failcount(3)])
            .await;
        f.set("HOTP2", &[crate::admin::manage::TokenSetting::Failcount(2)])
            .await;
        let accepted = answer(&f.check(Request::user("alice", "pin755224")).await);
        assert_eq!(accepted.0, "ACCEPT");
        assert_eq!(f.token("HOTP1").await.failcount, 0);
        assert_eq!(f.token("HOTP2").await.failcount, 0);
    }
}
