//! Challenge-response (spec §4.3): create challenges for tokens whose PIN alone was sent, and
//! answer them with the OTP and the transaction id.
//!
//! Challenges live in the database, so any node sharing it can answer a challenge another node
//! issued. Email and SMS tokens send the HOTP value of a fresh counter when the challenge is
//! created; the row remembers the counter, never the OTP.

use serde_json::{Map, Value, json};

use super::check::{consume, fail, token_detail, unfit_or_nothing};
use super::response::{Authentication, Response};
use super::verify::{self, OtpCheck};
use super::{Attempt, AuthError};
use crate::crypto::{DIGITS, random_string};
use crate::secret::Secret;
use crate::store::challenges::NewChallenge;
use crate::token::{OtpGenerator, Token, TokenType};

/// A token considered for a challenge answer, fit or not.
pub(crate) struct Entry {
    pub token: Token,
    pub generator: Option<OtpGenerator>,
    pub unfit: Option<&'static str>,
}

/// Default challenge texts.
pub const DEFAULT_TEXT: &str = "please enter otp: ";
pub const EMAIL_TEXT: &str = "Enter the OTP from the Email";
pub const SMS_TEXT: &str = "Enter the OTP from the SMS:";
pub const EMAIL_SEND_FAILED: &str = "The PIN was correct, but the EMail could not be sent!";
pub const SMS_SEND_FAILED: &str = "The PIN was correct, but the SMS could not be sent!";

/// A 20-digit transaction id.
pub fn new_transaction_id() -> Result<String, AuthError> {
    random_string(20, DIGITS).map_err(|_| AuthError::Internal("random source failed".into()))
}

/// Answer: `pass` is the OTP for the challenge `txid`.
pub(crate) async fn answer(
    at: &mut Attempt<'_>,
    entries: Vec<Entry>,
    pass: &Secret<String>,
    txid: &str,
) -> Result<Response, AuthError> {
    let now_unix = at.now.timestamp();
    let mut open = Vec::new();
    let mut invalid = Vec::new();
    let mut unfit = Vec::new();
    for e in entries {
        match at.auth.store.challenge_for(txid, &e.token.serial).await? {
            Some(row) => open.push((e, row)),
            None => {
                if let Some(reason) = e.unfit {
                    unfit.push(reason);
                } else {
                    invalid.push(e);
                }
            }
        }
    }
    if open.is_empty() {
        at.trace.add(
            "challenge",
            format!("transaction {txid}: no challenge of this user's tokens → invalid"),
        );
        if invalid.is_empty() {
            return Ok(unfit_or_nothing(at, unfit));
        }
        if at.cfg.system.inc_fail_count_on_false_pin {
            let count_auth = !at.cfg.system.no_auth_counter;
            for e in &invalid {
                fail(at, &e.token, count_auth).await?;
            }
        }
        let mut detail = Map::new();
        detail.insert("message".into(), json!("wrong otp pin"));
        at.trace.add("result", "REJECT: wrong otp pin");
        return Ok(Response::decided(false, Authentication::Reject, detail));
    }

    for (e, row) in &open {
        let expired = !row.is_valid_at(now_unix);
        let (matched, new_count, time_shift) = if expired {
            (false, None, None)
        } else {
            match (e.token.kind, e.generator.as_ref()) {
                (TokenType::Email | TokenType::Sms, Some(g)) => {
                    let counter = row.data.parse::<u64>().unwrap_or(u64::MAX);
                    let ok = counter != u64::MAX
                        && g.value(counter, e.token.otplen())
                            .matches(pass.expose().as_bytes());
                    (ok, None, None)
                }
                (TokenType::Hotp | TokenType::Totp, Some(g)) => {
                    match verify::check_otp(
                        &e.token,
                        Some(g),
                        pass.expose(),
                        at.now,
                        &at.cfg.system,
                    ) {
                        OtpCheck::Accepted {
                            new_count,
                            time_shift,
                            ..
                        } => (true, new_count, time_shift),
                        _ => (false, None, None),
                    }
                }
                _ => (false, None, None),
            }
        };
        at.trace.add(
            "challenge",
            format!(
                "{} ({}): challenge {}{}",
                e.token.serial,
                e.token.kind,
                if expired { "expired" } else { "open" },
                if matched {
                    ", OTP matches"
                } else {
                    ", OTP does not match"
                }
            ),
        );
        if !matched {
            continue;
        }
        if let Some(reason) = e.unfit {
            let mut detail = Map::new();
            let message =
                format!("Challenge matches, but token is not fit for challenge. {reason}");
            detail.insert("message".into(), json!(message));
            at.trace.add("result", format!("REJECT: {message}"));
            return Ok(Response::decided(false, Authentication::Reject, detail));
        }
        // Email/SMS values are guarded by their challenge row (the counter moved when it was
        // sent); OATH values by the counter, as everywhere.
        let first = match new_count {
            None => at.auth.store.take_challenge(row.id).await?,
            Some(_) => true,
        };
        if !first || !consume(at, &e.token, new_count, time_shift).await? {
            at.trace.add(
                "challenge",
                format!("{}: OTP consumed by a concurrent request", e.token.serial),
            );
            continue;
        }
        at.auth.store.delete_transaction(txid).await?;
        let mut detail = Map::new();
        detail.insert("message".into(), json!("Found matching challenge"));
        token_detail(&mut detail, &e.token);
        at.note_token(&e.token);
        at.accepted.push(e.token.serial.clone());
        at.accepted_tokens.push(e.token.clone());
        at.trace.add(
            "result",
            "ACCEPT: Found matching challenge (transaction deleted)",
        );
        return Ok(Response::decided(true, Authentication::Accept, detail));
    }

    // No match: every challenged token pays (push-like out-of-band types would be exempt).
    for (e, row) in &open {
        at.auth.store.bump_challenge(row.id).await?;
        fail(at, &e.token, false).await?;
    }
    let mut detail = Map::new();
    let message = if let [(only, _)] = open.as_slice() {
        token_detail(&mut detail, &only.token);
        at.note_token(&only.token);
        "Response did not match the challenge.".to_owned()
    } else {
        format!("Response did not match for {} tokens.", open.len())
    };
    detail.insert("message".into(), json!(message));
    at.trace.add("result", format!("REJECT: {message}"));
    Ok(Response::decided(false, Authentication::Reject, detail))
}

/// Create one challenge per token under a shared transaction id.
pub(crate) async fn create(
    at: &mut Attempt<'_>,
    tokens: Vec<Token>,
) -> Result<Response, AuthError> {
    let mut tokens = tokens;
    if at.flags.increase_failcounter_on_challenge {
        for t in &mut tokens {
            fail(at, t, false).await?;
            if let Some(fresh) = at.auth.store.tokens().by_serial(&t.serial).await? {
                *t = fresh;
            }
        }
    }
    let txid = new_transaction_id()?;
    let now_unix = at.now.timestamp();
    let mut challenges: Vec<Value> = Vec::new();
    let mut messages: Vec<String> = Vec::new();
    let mut send_failure: Option<&'static str> = None;
    let mut last: Option<Token> = None;
    for token in tokens {
        if let Some(reason) = verify::unfit_reason(&token, at.now) {
            at.trace.add(
                "challenge",
                format!("{}: {reason}; no challenge", token.serial),
            );
            continue;
        }
        let (message, validity, data) = match token.kind {
            TokenType::Email | TokenType::Sms => {
                match super::delivery::send_otp(at, &token).await {
                    Ok(counter) => (
                        if token.kind == TokenType::Email {
                            EMAIL_TEXT.to_owned()
                        } else {
                            SMS_TEXT.to_owned()
                        },
                        at.cfg.delivery.validity(token.kind),
                        counter.to_string(),
                    ),
                    Err(e) => {
                        tracing::warn!(target: "otpgate::auth", serial = %token.serial, error = %e, "OTP could not be sent");
                        at.trace.add("challenge", format!("{}: {e}", token.serial));
                        send_failure = Some(if token.kind == TokenType::Email {
                            EMAIL_SEND_FAILED
                        } else {
                            SMS_SEND_FAILED
                        });
                        continue;
                    }
                }
            }
            _ => (
                at.flags
                    .challenge_text
                    .clone()
                    .unwrap_or_else(|| DEFAULT_TEXT.to_owned()),
                at.cfg.system.challenge_validity,
                String::new(),
            ),
        };
        let owner = token
            .owner
            .as_ref()
            .map(|o| (o.login.as_str(), o.realm.as_str()));
        at.auth
            .store
            .insert_challenge(&NewChallenge {
                transaction_id: &txid,
                serial: &token.serial,
                owner,
                data: &data,
                challenge: &message,
                session: "",
                created: now_unix,
                expiration: now_unix + validity.num_seconds(),
            })
            .await?;
        at.trace.add(
            "challenge",
            format!(
                "{} ({}): challenge created, valid {} s",
                token.serial,
                token.kind,
                validity.num_seconds()
            ),
        );
        challenges.push(json!({
            "transaction_id": txid,
            "serial": token.serial,
            "type": token.kind.as_str(),
            "client_mode": "interactive",
            "message": message,
            "attributes": Value::Null,
        }));
        if !messages.contains(&message) {
            messages.push(message);
        }
        at.note_token(&token);
        last = Some(token);
    }
    let mut detail = Map::new();
    let Some(last) = last else {
        let message = send_failure.unwrap_or("No suitable token found for authentication.");
        detail.insert("message".into(), json!(message));
        at.trace.add("result", format!("REJECT: {message}"));
        return Ok(Response::decided(false, Authentication::Reject, detail));
    };
    detail.insert("message".into(), json!(messages.join(", ")));
    detail.insert("messages".into(), json!(messages));
    detail.insert("transaction_id".into(), json!(txid));
    detail.insert(
        "transaction_ids".into(),
        json!(vec![txid.clone(); challenges.len()]),
    );
    detail.insert("multi_challenge".into(), Value::Array(challenges));
    // every challenge otpgate makes is answered by typing the OTP
    detail.insert("preferred_client_mode".into(), json!("interactive"));
    detail.insert("serial".into(), json!(last.serial));
    detail.insert("type".into(), json!(last.kind.as_str()));
    detail.insert("client_mode".into(), json!("interactive"));
    at.transaction_issued = Some(txid);
    at.trace.add("result", "CHALLENGE");
    Ok(Response::decided(false, Authentication::Challenge, detail))
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Before, CHALLENGE_HOTP, Fixture, answer};
    use crate::message::Request;

    /// Which transaction id the answer names.
    #[derive(Debug, Clone, Copy)]
    enum Tx {
        Issued,
        Unknown,
    }

    /// One row per way a challenge answer ends (spec §4.3, challenge-response branch): alice
    /// triggers with her PIN, then `before` happens, then she answers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_way_a_challenge_answer_ends() {
        use Before::*;
        // case, what happens in between, transaction, pass, decision, message, failcount
        type Row<'a> = (&'a str, &'a [Before], Tx, &'a str, &'a str, &'a str, i64);
        let rows: &[Row<'_>] = &[
            (
                "the right OTP",
                &[],
                Tx::Issued,
                "755224",
                "ACCEPT",
                "Found matching challenge",
                0,
            ),
            (
                "a wrong OTP",
                &[],
                Tx::Issued,
                "000000",
                "REJECT",
                "Response did not match the challenge.",
                1,
            ),
            (
                "an unknown transaction",
                &[],
                Tx::Unknown,
                "755224",
                "REJECT",
                "wrong otp pin",
                1,
            ),
            // errata 8: the expired challenge's row is still there
            (
                "after the challenge expired",
                &[Wait(121)],
                Tx::Issued,
                "755224",
                "REJECT",
                "Response did not match the challenge.",
                1,
            ),
            (
                "a token locked since",
                &[Maxfail(1), Failcount(1)],
                Tx::Issued,
                "755224",
                "REJECT",
                "Challenge matches, but token is not fit for challenge. Failcounter exceeded",
                1,
            ),
        ];
        for (case, before, tx, pass, decision, message, failcount) in rows {
            let f = Fixture::new(CHALLENGE_HOTP, Default::default()).await;
            let trigger = f.check(Request::user("alice", "pin")).await;
            let issued = trigger
                .transaction_id()
                .unwrap_or_else(|| panic!("{case}: no challenge"));
            let id = match tx {
                Tx::Issued => issued.to_owned(),
                Tx::Unknown => "12345678901234567890".to_owned(),
            };
            f.prepare(before).await;
            let got = answer(
                &f.check(Request::user("alice", pass).with_transaction(&id))
                    .await,
            );
            assert_eq!(got, (decision.to_string(), message.to_string()), "{case}");
            assert_eq!(
                f.token("HOTP1").await.failcount,
                *failcount,
                "{case}: failcount"
            );
        }
    }

    /// A challenge is answered once: the same answer again is no longer a challenge's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_answered_challenge_is_gone() {
        let f = Fixture::new(CHALLENGE_HOTP, Default::default()).await;
        let trigger = f.check(Request::user("alice", "pin")).await;
        let id = trigger.transaction_id().unwrap_or_default().to_owned();
        let answer_it = || Request::user("alice", "755224").with_transaction(&id);
        assert_eq!(answer(&f.check(answer_it()).await).0, "ACCEPT");
        assert_eq!(
            answer(&f.check(answer_it()).await),
            ("REJECT".to_owned(), "wrong otp pin".to_owned())
        );
    }
}
