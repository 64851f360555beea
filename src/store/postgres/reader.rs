//! PostgreSQL's token lookups. Under load many logins look up their tokens at the same moment:
//! one reader task takes every lookup that queued up while the previous queries ran and
//! answers them with one `… WHERE owner_login IN (…)` query, one round trip for many logins. A
//! lone request is answered at once by a query of its own.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::{PgPool, Row};
use tokio::sync::{Semaphore, mpsc};

use crate::store::StoreError;
use crate::store::diagnostics::health::Health;
use crate::store::lookup::{Lookup, TOKEN_SELECT, TokenReader, add_token_row};
use crate::store::query::{Columns, Sql};
use crate::token::Token;

impl Columns for sqlx::postgres::PgRow {
    fn int(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn opt_blob(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.try_get(name)?)
    }
}

/// Logins per query.
const MAX_BATCH: usize = 64;

/// Serve lookups from sqlx's pool. `parallel` queries may run at once (leave pool
/// connections for the writer and others).
pub(in crate::store) fn start(pool: PgPool, parallel: usize, health: Arc<Health>) -> TokenReader {
    let (reader, rx) = TokenReader::channel();
    tokio::spawn(run(pool, rx, parallel.max(1), health));
    reader
}

async fn run(pool: PgPool, mut rx: mpsc::Receiver<Lookup>, parallel: usize, health: Arc<Health>) {
    let permits = Arc::new(Semaphore::new(parallel));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        // lookups that arrived while we waited for a free connection join this batch
        let mut batch = vec![first];
        crate::store::take_queued(&mut rx, &mut batch, MAX_BATCH);
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
    pool: &PgPool,
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
    let rows = super::admin::prepared(q.query()).fetch_all(pool).await?;
    let mut out: HashMap<(String, String), Vec<Token>> = HashMap::new();
    for row in &rows {
        let realm = row.opt_text("owner_realm")?.unwrap_or_default();
        let login = row.opt_text("owner_login")?.unwrap_or_default();
        add_token_row(out.entry((realm, login)).or_default(), row)?;
    }
    Ok(out)
}
