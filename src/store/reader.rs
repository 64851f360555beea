//! Batched reads of users' tokens, the hot path's one read.
//!
//! Under load many logins look up their tokens at the same moment. One reader task takes every
//! lookup that queued up while the previous queries ran and answers them with one
//! `… WHERE owner_login IN (…)` query: one round trip for many logins. A lone request is
//! answered at once by a query of its own.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::{AnyPool, Row};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::sql::Sql;
use super::tokens::token_from_row;
use super::{Backend, StoreError};
use crate::token::Token;

type Answer = Result<Vec<Token>, StoreError>;

struct Lookup {
    realm: String,
    login: String,
    reply: oneshot::Sender<Answer>,
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
    /// `parallel` queries may run at once (leave pool connections for the writer and others).
    pub(crate) fn start(pool: AnyPool, backend: Backend, parallel: usize) -> Self {
        let (tx, rx) = mpsc::channel(8192);
        tokio::spawn(run(pool, backend, rx, parallel.max(1)));
        Self { tx }
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

async fn run(pool: AnyPool, backend: Backend, mut rx: mpsc::Receiver<Lookup>, parallel: usize) {
    let permits = Arc::new(Semaphore::new(parallel));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        // lookups that arrived while we waited for a free connection join this batch
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(l) => batch.push(l),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            let result = query(&pool, backend, &batch).await;
            match result {
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
                    let text = e.to_string();
                    for l in batch {
                        let _ = l.reply.send(Err(StoreError::Corrupt(text.clone())));
                    }
                }
            }
            drop(permit);
        });
    }
}

async fn query(
    pool: &AnyPool,
    backend: Backend,
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
    let mut q = Sql::new(
        "SELECT t.id, t.serial, t.tokentype, t.description, t.owner_login, t.owner_realm, \
         t.owner_resolver, t.active, t.revoked, t.failcount, t.maxfail, t.otp_counter, \
         t.count_window, t.otplen, t.hashlib, t.time_step, t.time_window, t.time_shift, \
         t.pin_hash, t.key_sealed, t.rollout_state, t.validity_start, t.validity_end, \
         t.count_auth, t.count_auth_success, t.count_auth_max, t.count_auth_success_max, \
         t.last_auth, t.failcounter_exceeded, t.created, ti.key AS info_key, \
         ti.value AS info_value FROM token t LEFT JOIN tokeninfo ti ON ti.token_id = t.id \
         WHERE ",
    );
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
    let rows = q.query_for(backend).fetch_all(pool).await?;
    let mut out: HashMap<(String, String), Vec<Token>> = HashMap::new();
    for row in &rows {
        let id: i64 = row.try_get("id")?;
        let realm: String = row
            .try_get::<Option<String>, _>("owner_realm")?
            .unwrap_or_default();
        let login: String = row
            .try_get::<Option<String>, _>("owner_login")?
            .unwrap_or_default();
        let key = (realm, login);
        let list = out.entry(key).or_default();
        if list.last().is_none_or(|t| t.id != id) {
            list.push(token_from_row(row)?);
        }
        if let (Some(k), Some(t)) = (
            row.try_get::<Option<String>, _>("info_key")?,
            list.last_mut(),
        ) {
            let v: Option<String> = row.try_get("info_value")?;
            t.info.insert(k, v.unwrap_or_default());
        }
    }
    Ok(out)
}
