//! A user's tokens, the hot path's one read: the queue the backends' readers serve
//! (`store::sqlite::reader`, `store::postgres::reader`), and the lookup's columns.

use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::query::Columns;
use super::tokens::token_from_row;
use crate::token::Token;

type Answer = Result<Vec<Token>, StoreError>;

pub(in crate::store) struct Lookup {
    pub(in crate::store) realm: String,
    pub(in crate::store) login: String,
    pub(in crate::store) reply: oneshot::Sender<Answer>,
}

/// The columns of a token lookup, in this order: the token's, then one tokeninfo pair (a
/// token with n tokeninfo entries comes as n rows).
pub(in crate::store) const TOKEN_COLUMNS: [&str; 32] = [
    "id",
    "serial",
    "tokentype",
    "description",
    "owner_login",
    "owner_realm",
    "owner_resolver",
    "active",
    "revoked",
    "failcount",
    "maxfail",
    "otp_counter",
    "count_window",
    "otplen",
    "hashlib",
    "time_step",
    "time_window",
    "time_shift",
    "pin_hash",
    "key_sealed",
    "rollout_state",
    "validity_start",
    "validity_end",
    "count_auth",
    "count_auth_success",
    "count_auth_max",
    "count_auth_success_max",
    "last_auth",
    "failcounter_exceeded",
    "created",
    "info_key",
    "info_value",
];

/// `SELECT` [`TOKEN_COLUMNS`] `FROM token t LEFT JOIN tokeninfo ti …`; a `WHERE` follows.
pub(in crate::store) const TOKEN_SELECT: &str = concat!(
    "SELECT ",
    token_columns!(),
    ", ti.key AS info_key, ti.value AS info_value \
     FROM token t LEFT JOIN tokeninfo ti ON ti.token_id = t.id "
);

/// Add one row of a token lookup ordered by token id to `tokens`.
pub(in crate::store) fn add_token_row(
    tokens: &mut Vec<Token>,
    row: &impl Columns,
) -> Result<(), StoreError> {
    let id = row.int("id")?;
    if tokens.last().is_none_or(|t| t.id != id) {
        tokens.push(token_from_row(row)?);
    }
    if let (Some(k), Some(t)) = (row.opt_text("info_key")?, tokens.last_mut()) {
        t.info
            .insert(k, row.opt_text("info_value")?.unwrap_or_default());
    }
    Ok(())
}

#[derive(Clone, Debug)]
pub(crate) struct TokenReader {
    tx: mpsc::Sender<Lookup>,
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lookup")
    }
}

impl TokenReader {
    /// The handle and the queue readers serve.
    pub(in crate::store) fn channel() -> (Self, mpsc::Receiver<Lookup>) {
        let (tx, rx) = mpsc::channel(8192);
        (Self { tx }, rx)
    }

    pub(crate) async fn user_tokens(&self, realm: &str, login: &str) -> Answer {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send(Lookup {
                realm: realm.to_owned(),
                login: login.to_owned(),
                reply,
            })
            .await
            .map_err(|_| StoreError::Corrupt("the token reader has stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Corrupt("the token reader has stopped".into()))?
    }
}
