//! Batched reads of users' tokens, the hot path's one read.
//!
//! Under load many logins look up their tokens at the same moment. On PostgreSQL one reader
//! task takes every lookup that queued up while the previous queries ran and answers them with
//! one `… WHERE owner_login IN (…)` query: one round trip for many logins. A lone request is
//! answered at once by a query of its own. On SQLite, reader threads serve the same queue
//! (`store::sqlite_direct`).

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::AnyPool;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::StoreError;
use super::health::Health;
use super::sql::Sql;
use super::tokens::{Columns, token_from_row};
use crate::token::Token;

type Answer = Result<Vec<Token>, StoreError>;

pub(super) struct Lookup {
    pub(super) realm: String,
    pub(super) login: String,
    pub(super) reply: oneshot::Sender<Answer>,
}

/// The columns of a token lookup, in this order: the token's, then one tokeninfo pair (a
/// token with n tokeninfo entries comes as n rows).
pub(super) const TOKEN_COLUMNS: [&str; 32] = [
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
pub(super) const TOKEN_SELECT: &str = concat!(
    "SELECT ",
    token_columns!(),
    ", ti.key AS info_key, ti.value AS info_value \
     FROM token t LEFT JOIN tokeninfo ti ON ti.token_id = t.id "
);

/// Add one row of a token lookup ordered by token id to `tokens`.
pub(super) fn add_token_row(tokens: &mut Vec<Token>, row: &impl Columns) -> Result<(), StoreError> {
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

/// Logins per query.
const MAX_BATCH: usize = 64;

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
    pub(super) fn channel() -> (Self, mpsc::Receiver<Lookup>) {
        let (tx, rx) = mpsc::channel(8192);
        (Self { tx }, rx)
    }

    /// Serve lookups from sqlx's pool (PostgreSQL). `parallel` queries may run at once (leave
    /// pool connections for the writer and others).
    pub(crate) fn start(pool: AnyPool, parallel: usize, health: Arc<Health>) -> Self {
        let (reader, rx) = Self::channel();
        tokio::spawn(run(pool, rx, parallel.max(1), health));
        reader
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

async fn run(pool: AnyPool, mut rx: mpsc::Receiver<Lookup>, parallel: usize, health: Arc<Health>) {
    let permits = Arc::new(Semaphore::new(parallel));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        // lookups that arrived while we waited for a free connection join this batch
        let mut batch = vec![first];
        super::take_queued(&mut rx, &mut batch, MAX_BATCH);
        let (pool, health) = (pool.clone(), Arc::clone(&health));
        tokio::spawn(async move {
            match health.guard(query(&pool, &batch)).await {
                Ok(by_user) => {
                    // the same user may be asked for several times in one batch
                    for l in batch {
                        let tokens = by_user
                            .get(&(l.realm, l.login))
                            .cloned()
                            .unwrap_or_default();
                        let _ = l.reply.send(Ok(tokens));
                    }
                }
                Err(e) => {
                    for l in batch {
                        let _ = l.reply.send(Err(e.relay()));
                    }
                }
            }
            drop(permit);
        });
    }
}

async fn query(
    pool: &AnyPool,
    batch: &[Lookup],
) -> Result<HashMap<(String, String), Vec<Token>>, StoreError> {
    // (realm, login) pairs grouped by realm, so each group is an index search on
    // token_owner (owner_realm, owner_login); a bare `owner_login IN` would scan the table.
    let mut by_realm: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for l in batch {
        let logins = by_realm.entry(l.realm.as_str()).or_default();
        if !logins.contains(&l.login.as_str()) {
            logins.push(&l.login);
        }
    }
    let mut q = Sql::new(TOKEN_SELECT);
    q.push("WHERE ");
    for (i, (realm, logins)) in by_realm.iter().enumerate() {
        q.push(if i == 0 {
            "(t.owner_realm = "
        } else {
            " OR (t.owner_realm = "
        })
        .bind(*realm)
        .push(" AND t.owner_login IN (")
        .bind_list(logins.iter().copied())
        .push("))");
    }
    q.push(" ORDER BY t.id");
    let rows = q.query().fetch_all(pool).await?;
    let mut out: HashMap<(String, String), Vec<Token>> = HashMap::new();
    for row in &rows {
        let realm = row.opt_text("owner_realm")?.unwrap_or_default();
        let login = row.opt_text("owner_login")?.unwrap_or_default();
        add_token_row(out.entry((realm, login)).or_default(), row)?;
    }
    Ok(out)
}
