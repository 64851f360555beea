//! `check_token_list` (spec §4.3): classify each candidate token, then take the first
//! non-empty branch: valid → challenge-response → challenge-request → PIN-matching → invalid →
//! unfit → nothing.
//!
//! Cost rule (issue 7): the cheap OTP check runs first for every token; argon2 runs only for
//! tokens whose OTP matched, so a successful login costs exactly one PIN verification however
//! many tokens the user has. Only when no token is valid are the remaining PINs checked, to
//! tell "wrong otp value" (PIN right) from "wrong otp pin" (PIN wrong) as the spec requires.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::challenge::Entry;
use super::pin::{self, OtpPin};
use super::proof::Resolved;
use super::response::{Authentication, Response, codes};
use super::verify::{self, OtpCheck, Resync};
use super::{Attempt, AuthError};
use crate::clock::{format_long, format_short};
use crate::secret::Secret;
use crate::store::tokens::Consume;
use crate::token::{OtpGenerator, Token};

/// A token that passed `check_all`, with what the request said about it.
struct Candidate {
    token: Token,
    generator: Option<OtpGenerator>,
    otp: OtpCheck,
    /// `Some` once the PIN part was verified.
    pin_ok: Option<bool>,
    /// The PIN/OTP split worked (pass at least as long as the OTP).
    splittable: bool,
}

/// Where a candidate ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Pending,
    Valid,
    ChallengeRequest,
    PinMatching { previous: bool },
    Invalid,
}

pub(crate) async fn check_token_list(
    at: &mut Attempt<'_>,
    mut tokens: Vec<Token>,
    pass: &Secret<String>,
) -> Result<Response, AuthError> {
    let before = tokens.len();
    tokens.retain(|t| {
        if t.revoked {
            at.trace
                .add("token", format!("{}: revoked, not considered", t.serial));
        }
        !t.revoked
    });
    if before > 0 && tokens.is_empty() {
        return Err(AuthError::Respond(Response::error(
            400,
            codes::TOKEN_ADMIN,
            "This action is not possible, since the token is locked",
        )));
    }
    if !at.flags.disabled_token_types.is_empty() {
        tokens.retain(|t| {
            let disabled = at.flags.disabled_token_types.contains(&t.kind);
            if disabled {
                at.trace.add(
                    "policy",
                    format!(
                        "{}: type {} disabled by disabled_token_types",
                        t.serial, t.kind
                    ),
                );
            }
            !disabled
        });
    }
    // privacyIDEA's weight: the character code of the type's first letter; stable for ties.
    tokens.sort_by_key(|t| t.kind.weight());

    let mut unfit: Vec<&'static str> = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::with_capacity(tokens.len());
    let mut entries: Vec<Entry> = Vec::new();
    let answering = at.transaction_id.is_some();
    for mut token in tokens {
        auto_clear(at, &mut token).await?;
        let mut reason = verify::unfit_reason(&token, at.now);
        let generator = match verify::generator(&token, &at.auth.key) {
            Ok(g) => g,
            Err(e) => {
                at.trace
                    .add("token", format!("{} ({}): {e}", token.serial, token.kind));
                reason = Some("Token key cannot be decrypted");
                None
            }
        };
        if let Some(reason) = reason {
            at.trace.add(
                "token",
                format!("{} ({}): {reason}", token.serial, token.kind),
            );
        }
        if answering {
            // Challenge answers look at unfit tokens too: a matching answer for an unfit
            // token gets its own message.
            entries.push(Entry {
                token,
                generator,
                unfit: reason,
            });
            continue;
        }
        if let Some(reason) = reason {
            unfit.push(reason);
            continue;
        }
        candidates.push(Candidate {
            token,
            generator,
            otp: OtpCheck::Wrong,
            pin_ok: None,
            splittable: false,
        });
    }

    // A CHAP or MS-CHAP response: find the PIN and OTP it was made from; everything below
    // then runs on that password as for PAP.
    let resolved;
    let pass = match at.proof.clone() {
        None => pass,
        Some(proof) => {
            let tokens: Vec<(&Token, Option<&OtpGenerator>)> = if answering {
                entries
                    .iter()
                    .map(|e| (&e.token, e.generator.as_ref()))
                    .collect()
            } else {
                candidates
                    .iter()
                    .map(|c| (&c.token, c.generator.as_ref()))
                    .collect()
            };
            resolved = super::proof::resolve(at, &tokens, &*proof, answering);
            match &resolved {
                Resolved::Found(p) => p,
                Resolved::Untestable(why) if !answering => {
                    return Ok(unfit_or_nothing(at, vec![why]));
                }
                // a wrong response fails every candidate, as a wrong PIN would
                Resolved::Wrong if !answering && !candidates.is_empty() => {
                    let all: Vec<usize> = (0..candidates.len()).collect();
                    return invalid_branch(at, &candidates, &all).await;
                }
                _ => pass,
            }
        }
    };

    if let Some(txid) = at.transaction_id.clone() {
        // boxed, as `create` below: the challenge branches' futures (their own queries) would
        // otherwise size every login's
        return Box::pin(super::challenge::answer(at, entries, pass, &txid)).await;
    }

    let prepend = at.cfg.system.prepend_pin;
    let mut classes = vec![Class::Pending; candidates.len()];

    // Phase A: the cheap OTP check for everyone.
    for c in &mut candidates {
        if let Some((_, otp)) = pin::split(pass.expose(), c.token.otplen_for_split(), prepend) {
            c.splittable = true;
            c.otp = verify::check_otp(&c.token, c.generator.as_ref(), otp, at.now, &at.cfg.system);
        }
    }

    // Phase B: PIN only where the OTP matched; consume atomically.
    if !at.flags.force_challenge_response {
        for (i, c) in candidates.iter_mut().enumerate() {
            let OtpCheck::Accepted {
                matched,
                new_count,
                time_shift,
            } = c.otp
            else {
                continue;
            };
            let Some((pin_part, _)) =
                pin::split(pass.expose(), c.token.otplen_for_split(), prepend)
            else {
                continue;
            };
            let pin_ok = pin_matches(at, &c.token, pin_part).await?;
            c.pin_ok = Some(pin_ok);
            if !pin_ok {
                at.trace.add(
                    "token",
                    format!(
                        "{} ({}): OTP matched but PIN wrong",
                        c.token.serial, c.token.kind
                    ),
                );
                continue;
            }
            if consume(at, &c.token, new_count, time_shift).await? {
                at.trace.add(
                    "token",
                    match matched {
                        Some(m) => format!(
                            "{} ({}): PIN and OTP right (counter {m}) → valid",
                            c.token.serial, c.token.kind
                        ),
                        None => format!("{} ({}): PIN right → valid", c.token.serial, c.token.kind),
                    },
                );
                classes[i] = Class::Valid;
            } else {
                at.trace.add(
                    "token",
                    format!(
                        "{} ({}): OTP was consumed by a concurrent request → treated as used",
                        c.token.serial, c.token.kind
                    ),
                );
                c.otp = OtpCheck::Previous;
            }
        }
    }

    if classes.contains(&Class::Valid) {
        return Ok(valid_branch(at, &candidates, &classes));
    }

    // Phase C: nothing valid; classify the rest (this is where failures pay for their PINs).
    for (i, c) in candidates.iter_mut().enumerate() {
        let can_trigger = c.token.kind.always_challenges()
            || (c.token.kind.can_challenge() && at.flags.challenge_types.contains(&c.token.kind));
        if can_trigger && pin_matches(at, &c.token, pass.expose()).await? {
            at.trace.add(
                "token",
                format!(
                    "{} ({}): PIN alone → challenge",
                    c.token.serial, c.token.kind
                ),
            );
            classes[i] = Class::ChallengeRequest;
            continue;
        }
        if at.flags.force_challenge_response {
            at.trace.add(
                "policy",
                format!(
                    "{}: force_challenge_response: PIN+OTP not accepted",
                    c.token.serial
                ),
            );
            classes[i] = Class::Invalid;
            continue;
        }
        if !c.splittable {
            at.trace.add(
                "token",
                format!(
                    "{} ({}): password shorter than the OTP length → wrong PIN",
                    c.token.serial, c.token.kind
                ),
            );
            classes[i] = Class::Invalid;
            continue;
        }
        let pin_ok = match c.pin_ok {
            Some(v) => v,
            None => {
                let (pin_part, _) = pin::split(pass.expose(), c.token.otplen_for_split(), prepend)
                    .unwrap_or_default();
                let pin_part = pin_part.to_owned();
                pin_matches(at, &c.token, &pin_part).await?
            }
        };
        if !pin_ok {
            at.trace.add(
                "token",
                format!("{} ({}): PIN wrong → invalid", c.token.serial, c.token.kind),
            );
            classes[i] = Class::Invalid;
            continue;
        }
        if c.otp == OtpCheck::Wrong
            && let Some(g) = c.generator.as_ref()
        {
            let (_, otp) =
                pin::split(pass.expose(), c.token.otplen_for_split(), prepend).unwrap_or_default();
            match verify::auto_resync(&c.token, g, otp, at.now, &at.cfg.system) {
                Resync::NotApplicable => {}
                Resync::Remember { otp1c, due } => {
                    let store = at.auth.store.tokens();
                    store
                        .set_tokeninfo(c.token.id, "otp1c", &otp1c.to_string())
                        .await?;
                    if let Some(due) = due {
                        store
                            .set_tokeninfo(c.token.id, "dueDate", &due.to_string())
                            .await?;
                    }
                    at.trace.add(
                        "token",
                        format!(
                            "{}: AutoResync remembered counter {otp1c}; send the next OTP",
                            c.token.serial
                        ),
                    );
                }
                Resync::Forget => {
                    forget_resync(at, c.token.id).await?;
                    at.trace.add(
                        "token",
                        format!(
                            "{}: AutoResync value did not follow; forgotten",
                            c.token.serial
                        ),
                    );
                }
                Resync::Accept {
                    new_count,
                    time_shift,
                } => {
                    forget_resync(at, c.token.id).await?;
                    if consume(at, &c.token, Some(new_count), time_shift).await? {
                        at.trace.add(
                                "token",
                                format!(
                                    "{}: AutoResync with two consecutive OTPs → valid (counter {new_count})",
                                    c.token.serial
                                ),
                            );
                        classes[i] = Class::Valid;
                        continue;
                    }
                }
            }
        }
        let previous = c.otp == OtpCheck::Previous;
        at.trace.add(
            "token",
            format!(
                "{} ({}): PIN right, OTP wrong{} → PIN-matching",
                c.token.serial,
                c.token.kind,
                if previous {
                    " (previous OTP used again)"
                } else {
                    ""
                }
            ),
        );
        classes[i] = Class::PinMatching { previous };
    }

    if classes.contains(&Class::Valid) {
        return Ok(valid_branch(at, &candidates, &classes));
    }
    let pick = |want: fn(&Class) -> bool| -> Vec<usize> {
        classes
            .iter()
            .enumerate()
            .filter(|(_, c)| want(c))
            .map(|(i, _)| i)
            .collect()
    };
    let challenge = pick(|c| *c == Class::ChallengeRequest);
    if !challenge.is_empty() {
        let tokens: Vec<Token> = candidates
            .into_iter()
            .enumerate()
            .filter(|(i, _)| challenge.contains(i))
            .map(|(_, c)| c.token)
            .collect();
        return Box::pin(super::challenge::create(at, tokens)).await;
    }
    let pin_matching = pick(|c| matches!(c, Class::PinMatching { .. }));
    if !pin_matching.is_empty() {
        return pin_matching_branch(at, &candidates, &classes, &pin_matching).await;
    }
    let invalid = pick(|c| *c == Class::Invalid);
    if !invalid.is_empty() {
        return invalid_branch(at, &candidates, &invalid).await;
    }
    Ok(unfit_or_nothing(at, unfit))
}

/// REJECT with the `check_all` reasons, or "No suitable token found".
pub(crate) fn unfit_or_nothing(at: &mut Attempt<'_>, mut unfit: Vec<&'static str>) -> Response {
    let mut detail = Map::new();
    if unfit.is_empty() {
        detail.insert(
            "message".into(),
            json!("No suitable token found for authentication."),
        );
    } else {
        unfit.dedup();
        let mut distinct: Vec<&str> = Vec::new();
        for r in unfit {
            if !distinct.contains(&r) {
                distinct.push(r);
            }
        }
        detail.insert("message".into(), json!(distinct.join(", ")));
    }
    at.trace
        .add("result", "REJECT: no token fit for authentication");
    Response::decided(false, Authentication::Reject, detail)
}

/// Put one token's identity into the answer detail.
pub(crate) fn token_detail(detail: &mut Map<String, Value>, token: &Token) {
    detail.insert("serial".into(), json!(token.serial));
    detail.insert("type".into(), json!(token.kind.as_str()));
    detail.insert("otplen".into(), json!(token.otplen));
}

fn valid_branch(at: &mut Attempt<'_>, candidates: &[Candidate], classes: &[Class]) -> Response {
    let valid: Vec<&Token> = candidates
        .iter()
        .zip(classes)
        .filter(|(_, c)| **c == Class::Valid)
        .map(|(c, _)| &c.token)
        .collect();
    let mut detail = Map::new();
    detail.insert(
        "message".into(),
        json!(format!("matching {} tokens", valid.len())),
    );
    if let [only] = valid.as_slice() {
        token_detail(&mut detail, only);
        for key in ["next_pin_change", "pin_change"] {
            if let Some(v) = only.info.get(key) {
                detail.insert(key.into(), json!(v));
            }
        }
    }
    for t in &valid {
        at.note_token(t);
        at.accepted.push(t.serial.clone());
        at.accepted_tokens.push((*t).clone());
    }
    at.trace
        .add("result", format!("ACCEPT: matching {} tokens", valid.len()));
    Response::decided(true, Authentication::Accept, detail)
}

async fn pin_matching_branch(
    at: &mut Attempt<'_>,
    candidates: &[Candidate],
    classes: &[Class],
    which: &[usize],
) -> Result<Response, AuthError> {
    let count_auth = !at.cfg.system.no_auth_counter;
    for &i in which {
        let Some(c) = candidates.get(i) else { continue };
        fail(at, &c.token, count_auth).await?;
        if at.cfg.system.reset_failcounter_on_pin {
            let mut t = c.token.clone();
            if let Some(fresh) = at.auth.store.tokens().by_serial(&t.serial).await? {
                t = fresh;
            }
            auto_clear(at, &mut t).await?;
        }
    }
    let mut detail = Map::new();
    let mut message = String::from("wrong otp value");
    if let [only] = which
        && let (Some(c), Some(Class::PinMatching { previous })) =
            (candidates.get(*only), classes.get(*only))
    {
        if *previous {
            message.push_str(". previous otp used again");
        }
        token_detail(&mut detail, &c.token);
        at.note_token(&c.token);
    }
    detail.insert("message".into(), json!(message));
    at.trace.add("result", format!("REJECT: {message}"));
    Ok(Response::decided(false, Authentication::Reject, detail))
}

async fn invalid_branch(
    at: &mut Attempt<'_>,
    candidates: &[Candidate],
    which: &[usize],
) -> Result<Response, AuthError> {
    if at.cfg.system.inc_fail_count_on_false_pin {
        let count_auth = !at.cfg.system.no_auth_counter;
        for &i in which {
            if let Some(c) = candidates.get(i) {
                fail(at, &c.token, count_auth).await?;
            }
        }
    } else {
        at.trace.add(
            "token",
            "IncFailCountOnFalsePin is off: failcounts unchanged",
        );
    }
    let mut detail = Map::new();
    detail.insert("message".into(), json!("wrong otp pin"));
    at.trace.add("result", "REJECT: wrong otp pin");
    Ok(Response::decided(false, Authentication::Reject, detail))
}

/// A failed attempt for one token (failcount capped at maxfail; lock noted for events).
pub(crate) async fn fail(
    at: &mut Attempt<'_>,
    token: &Token,
    count_auth: bool,
) -> Result<(), AuthError> {
    let out = at
        .auth
        .store
        .tokens()
        .record_failure(token.id, count_auth, &format_short(at.now))
        .await?;
    if out.reached_max {
        at.locked.push(token.serial.clone());
        at.trace.add(
            "token",
            format!(
                "{}: failcount {} → {} = maxfail: token locked",
                token.serial, token.failcount, out.failcount
            ),
        );
    } else {
        at.trace.add(
            "token",
            format!(
                "{}: failcount {} → {} (maxfail {})",
                token.serial, token.failcount, out.failcount, out.maxfail
            ),
        );
    }
    Ok(())
}

/// Store a success for one token; false if a concurrent request used the OTP first.
pub(crate) async fn consume(
    at: &mut Attempt<'_>,
    token: &Token,
    new_count: Option<i64>,
    time_shift: Option<i64>,
) -> Result<bool, AuthError> {
    let last_auth = format_long(at.now);
    let done = at
        .auth
        .store
        .tokens()
        .consume_otp(Consume {
            id: token.id,
            new_count,
            time_shift,
            count_auth: !at.cfg.system.no_auth_counter,
            last_auth: &last_auth,
        })
        .await?;
    if done {
        if token.failcount >= token.maxfail && token.maxfail > 0 {
            at.unlocked.push(token.serial.clone());
        }
        // the token as the UPDATE left it, for the POST handlers' conditions
        let mut after = token.clone();
        if let Some(n) = new_count {
            after.otp_counter = n;
        }
        if let Some(s) = time_shift {
            after.time_shift = s;
        }
        after.failcount = 0;
        after.failcounter_exceeded = None;
        if !at.cfg.system.no_auth_counter {
            after.count_auth += 1;
            after.count_auth_success += 1;
        }
        after.last_auth = Some(last_auth.clone());
        at.post_state.retain(|t| t.id != after.id);
        at.post_state.push(Arc::new(after));
        if let Some(n) = new_count {
            at.trace.add(
                "token",
                format!(
                    "{}: counter {} → {n}, failcount → 0",
                    token.serial, token.otp_counter
                ),
            );
        }
    }
    Ok(done)
}

async fn forget_resync(at: &Attempt<'_>, id: i64) -> Result<(), AuthError> {
    let store = at.auth.store.tokens();
    store.delete_tokeninfo(id, "otp1c").await?;
    store.delete_tokeninfo(id, "dueDate").await?;
    Ok(())
}

/// Failcounter auto-clear at the start of an attempt.
pub(crate) async fn auto_clear(at: &mut Attempt<'_>, token: &mut Token) -> Result<(), AuthError> {
    if verify::auto_clear_due(token, at.now, at.cfg.system.failcounter_clear_timeout)
        && at.auth.store.tokens().auto_clear(token.id).await?
    {
        at.trace.add(
            "token",
            format!(
                "{}: failcounter_clear_timeout passed since {} → failcount {} → 0",
                token.serial,
                token.failcounter_exceeded.as_deref().unwrap_or("?"),
                token.failcount
            ),
        );
        token.failcount = 0;
        token.failcounter_exceeded = None;
        at.unlocked.push(token.serial.clone());
    }
    Ok(())
}

/// Does `candidate` match the token PIN under the request's `otppin` mode?
pub(crate) async fn pin_matches(
    at: &mut Attempt<'_>,
    token: &Token,
    candidate: &str,
) -> Result<bool, AuthError> {
    Ok(match at.flags.otppin {
        OtpPin::None => candidate.is_empty(),
        OtpPin::UserStore => {
            if let Some((_, hit)) = at
                .userstore_cache
                .iter()
                .find(|(c, _)| c.expose() == candidate)
            {
                return Ok(*hit);
            }
            let ok = match &at.user {
                Some(user) => {
                    at.cfg
                        .directory
                        .check_password(user, candidate, &at.auth.pins)
                        .await?
                }
                None => false,
            };
            at.userstore_cache
                .push((Secret::new(candidate.to_owned()), ok));
            ok
        }
        OtpPin::TokenPin => match &token.pin_hash {
            None => candidate.is_empty(),
            Some(hash) => {
                if candidate.is_empty() && hash.expose().is_empty() {
                    return Ok(true);
                }
                if let Some(sealed) = hash.expose().strip_prefix(super::proof::SEALED_PIN) {
                    return Ok(
                        super::proof::open_pin(at, &token.serial, sealed).is_some_and(|pin| {
                            crate::secret::ct_eq(pin.expose().as_bytes(), candidate.as_bytes())
                        }),
                    );
                }
                at.auth
                    .pins
                    .verify(candidate, hash.expose())
                    .await
                    .unwrap_or(false)
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Before, CHALLENGE_HOTP, Fixture, answer};
    use crate::message::Request;

    /// One row per branch of `check_token_list` (spec §4.3) and the outcomes of `check_all`:
    /// what alice's request answers and what it leaves in HOTP1's failcount.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_branch_of_check_token_list() {
        use Before::*;
        // branch, policies, before, pass, decision, message, HOTP1's failcount after
        type Row<'a> = (
            &'a str,
            &'a str,
            &'a [Before],
            &'a str,
            &'a str,
            &'a str,
            i64,
        );
        let rows: &[Row<'_>] = &[
            (
                "valid",
                "",
                &[],
                "pin755224",
                "ACCEPT",
                "matching 1 tokens",
                0,
            ),
            (
                "valid resets the failcount",
                "",
                &[Failcount(3)],
                "pin755224",
                "ACCEPT",
                "matching 1 tokens",
                0,
            ),
            (
                "PIN-matching",
                "",
                &[],
                "pin000000",
                "REJECT",
                "wrong otp value",
                1,
            ),
            (
                "PIN-matching, the previous OTP",
                "",
                &[Login("pin755224")],
                "pin755224",
                "REJECT",
                "wrong otp value. previous otp used again",
                1,
            ),
            (
                "invalid: wrong PIN",
                "",
                &[],
                "nip755224",
                "REJECT",
                "wrong otp pin",
                1,
            ),
            (
                "invalid: shorter than the OTP",
                "",
                &[],
                "12345",
                "REJECT",
                "wrong otp pin",
                1,
            ),
            (
                "challenge-request",
                CHALLENGE_HOTP,
                &[],
                "pin",
                "CHALLENGE",
                "please enter otp: ",
                0,
            ),
            (
                "challenge-request raising the failcount",
                INCREASE_ON_CHALLENGE,
                &[],
                "pin",
                "CHALLENGE",
                "please enter otp: ",
                1,
            ),
            (
                "unfit: disabled",
                "",
                &[Disable],
                "pin755224",
                "REJECT",
                "Token is disabled",
                0,
            ),
            (
                "unfit: locked",
                "",
                &[Maxfail(2), Failcount(2)],
                "pin755224",
                "REJECT",
                "Failcounter exceeded",
                2,
            ),
            (
                "unfit: outside its validity",
                "",
                &[ValidityEnd("2026-03-01T00:00+0000")],
                "pin755224",
                "REJECT",
                "Outside validity period",
                0,
            ),
            (
                "unfit: authentication counter",
                "",
                &[Login("pin755224"), CountAuthMax(1)],
                "pin287082",
                "REJECT",
                "Authentication counter exceeded",
                0,
            ),
            (
                "only revoked tokens",
                "",
                &[Revoke],
                "pin755224",
                "error 400",
                "ERR1007: This action is not possible, since the token is locked",
                0,
            ),
            (
                "two tokens: the valid one wins, the other is not penalised",
                "",
                &[SecondToken("other")],
                "pin755224",
                "ACCEPT",
                "matching 1 tokens",
                0,
            ),
        ];
        for (branch, policies, before, pass, decision, message, failcount) in rows {
            let f = Fixture::new(policies, Default::default()).await;
            f.prepare(before).await;
            let got = answer(&f.check(Request::user("alice", pass)).await);
            assert_eq!(got, (decision.to_string(), message.to_string()), "{branch}");
            assert_eq!(
                f.token("HOTP1").await.failcount,
                *failcount,
                "{branch}: failcount"
            );
        }
    }

    const INCREASE_ON_CHALLENGE: &str = r#"
        [[policy]]
        name = "cr"
        scope = "authentication"
        actions = { challenge_response = "hotp", increase_failcounter_on_challenge = true }
    "#;
}
