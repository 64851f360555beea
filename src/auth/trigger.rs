//! `/validate/triggerchallenge`: challenges for a user's (or one serial's) tokens without the
//! PIN — the first step of the Credential Provider's, the PAM module's and Keycloak's flows,
//! asked by a service account. The answer is privacyIDEA's: `result.value` is the number of
//! challenges, `detail` has them as `/validate/check` does.

use serde_json::{Map, Value, json};

use super::challenge;
use super::pipeline::{no_user_or_serial, token_list, user_store_error};
use super::response::{Authentication, Response, codes};
use super::{Attempt, AuthError, Request};
use crate::token::TokenType;

pub(super) async fn run(at: &mut Attempt<'_>, req: &Request) -> Result<Response, AuthError> {
    let serial = req.serial.as_deref().filter(|s| !s.is_empty());
    if serial.is_none() && at.login.is_empty() {
        return Err(no_user_or_serial());
    }
    if let Some(e) = &at.directory_error {
        return Err(AuthError::Respond(user_store_error(e)));
    }
    let mut tokens = match serial {
        Some(serial) => {
            let Some(token) = at.auth.store.tokens().by_serial(serial).await? else {
                return Err(AuthError::Respond(Response::error(
                    404,
                    codes::TOKEN_NOT_FOUND,
                    "The requested token could not be found.",
                )));
            };
            match &token.owner {
                Some(o) if at.login.is_empty() => {
                    at.login = o.login.clone();
                    at.realm = o.realm.clone();
                }
                Some(o) if o.login == at.login && o.realm.eq_ignore_ascii_case(&at.realm) => {}
                _ if at.login.is_empty() => {}
                _ => {
                    return Err(AuthError::Respond(Response::error(
                        400,
                        codes::PARAMETER,
                        "Given serial does not belong to given user!",
                    )));
                }
            }
            vec![token]
        }
        None => {
            let Some(user) = at.user.clone() else {
                return Err(AuthError::Respond(Response::error(
                    400,
                    codes::USER_NOT_FOUND,
                    &format!("User <{}@{}> does not exist.", at.login, at.realm),
                )));
            };
            at.auth
                .store
                .tokens()
                .of_user(&user.realm, &user.login)
                .await?
        }
    };
    if let Some(kind) = req.token_type.as_deref().filter(|t| !t.is_empty()) {
        tokens.retain(|t| t.kind.as_str().eq_ignore_ascii_case(kind));
    }
    // privacyIDEA's "challenge" mode: every type but the static password
    tokens.retain(|t| !t.revoked && t.kind != TokenType::Spass);
    at.trace.add(
        "token",
        format!("challenge-capable: {}", token_list(&tokens)),
    );
    if tokens.is_empty() {
        at.trace
            .add("result", "no challenge-capable token: 0 challenges");
        let mut detail = Map::new();
        detail.insert("messages".into(), json!([]));
        detail.insert("transaction_ids".into(), json!([]));
        return Ok(counted(Response::decided(
            false,
            Authentication::Reject,
            detail,
        )));
    }
    Ok(counted(challenge::create(at, tokens).await?))
}

/// `result.value` is the number of challenges; `authentication` says CHALLENGE when there is
/// one (privacyIDEA's rule for an answer with `multi_challenge`).
fn counted(mut response: Response) -> Response {
    let n = response
        .body
        .pointer("/detail/multi_challenge")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if let Some(result) = response
        .body
        .get_mut("result")
        .and_then(Value::as_object_mut)
    {
        result.insert("value".into(), json!(n));
        let authentication = if n > 0 {
            Authentication::Challenge
        } else {
            Authentication::Reject
        };
        result.insert("authentication".into(), json!(authentication.as_str()));
    }
    response
}
