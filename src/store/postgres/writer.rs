//! PostgreSQL's group commit: an async task on sqlx's pool that takes the queued jobs
//! (`store::jobs`), runs them in one transaction and settles the batch. Consumptions of distinct
//! tokens go into one combined `UPDATE … FROM (VALUES …)` per chunk: one round trip for many
//! logins.

use std::sync::Arc;

use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
use tokio::sync::mpsc;

use crate::store::StoreError;
use crate::store::audit::{AuditRow, audit_insert};
use crate::store::diagnostics::health::Health;
use crate::store::jobs::{
    Batch, ConsumeJob, Done, FAILED_BATCH_PAUSE, FailureOutcome, GroupWriter, Job, Op,
    counter_totals,
};
use crate::store::queued_counters::{QueuedCounters, Taken};
use crate::store::statements::{
    CONSUME_SQL, CONSUME_UNCOUNTED_SQL, COUNTER_ADD_SQL, FAILURE_AT_MAX_SQL, FAILURE_SQL,
    PROBE_CLEANUP_SQL, PROBE_ROWS_KEPT_S, PROBE_SQL,
};

/// Start the writer task on sqlx's pool.
pub(in crate::store) fn start(pool: PgPool, health: Arc<Health>) -> GroupWriter {
    let (writer, rx, counters) = GroupWriter::channel();
    let writer = writer.giving_up_with(Arc::clone(&health));
    tokio::spawn(run(pool, rx, counters, health));
    writer
}

/// Write this process's `commit_probe` row on `conn` (PostgreSQL), forgetting stale ones.
pub(super) async fn write_probe_row(
    conn: &mut PgConnection,
    key: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(PROBE_CLEANUP_SQL)
        .bind(at - PROBE_ROWS_KEPT_S)
        .execute(&mut *conn)
        .await?;
    sqlx::query(PROBE_SQL)
        .bind(key)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn run(
    pool: PgPool,
    mut rx: mpsc::Receiver<Job>,
    counters: Arc<QueuedCounters>,
    health: Arc<Health>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = Batch::gather(first, &mut rx, &counters);
        let mut results = try_commit(&pool, &batch, &health).await;
        // a statement the database refused may be an audit row's: try the logins without them
        if let Err(e) = &results
            && !e.is_unavailable()
            && batch.drop_side_jobs(e)
        {
            results = try_commit(&pool, &batch, &health).await;
        }
        if !batch.settle(results, &counters, &health) {
            tokio::time::sleep(FAILED_BATCH_PAUSE).await;
        }
    }
}

/// One attempt at a batch: refused at once while the breaker is open, watched for a stall
/// while it runs, and its outcome told to `health`.
async fn try_commit(
    pool: &PgPool,
    batch: &Batch,
    health: &Health,
) -> Result<Vec<Done>, StoreError> {
    let results = match health.admit() {
        Ok(()) => {
            health
                .watch_commit(commit(pool, batch.jobs(), batch.queued()), || {
                    crate::store::diagnostics::pg_waits::explain(pool.clone())
                })
                .await
        }
        Err(e) => Err(e),
    };
    health.outcome(&results);
    results
}

async fn commit(pool: &PgPool, jobs: &[Job], queued: &Taken) -> Result<Vec<Done>, StoreError> {
    let mut tx: Transaction<'static, Postgres> = pool.begin().await?;
    // The common case, an OTP consumption of a token no earlier job of this batch touched,
    // goes into one combined UPDATE per chunk: a single statement (one round trip to the
    // database) for many logins. Everything else runs on its own, in order, afterwards.
    let mut touched = std::collections::HashSet::new();
    let mut combined: Vec<(usize, &ConsumeJob)> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let id = match &job.op {
            Op::Consume(c) => c.id,
            Op::Failure { id, .. } => *id,
            Op::CounterAdd { .. }
            | Op::Audit { .. }
            | Op::Flush
            | Op::Schema(_)
            | Op::Probe { .. } => {
                continue;
            }
        };
        if let Op::Consume(c) = &job.op
            && c.new_count.is_some()
            && !touched.contains(&id)
        {
            combined.push((i, c));
        }
        touched.insert(id);
    }
    let mut out: Vec<Option<Done>> = jobs
        .iter()
        .map(|j| match j.op {
            Op::CounterAdd { .. } => Some(Done::CounterAdded),
            Op::Audit { .. } => Some(Done::Audited),
            _ => None,
        })
        .collect();
    // every job's audit rows together: each login brings its own, and a round trip apiece
    // would make the batch's commit wait for as many
    let rows: Vec<&AuditRow> = jobs
        .iter()
        .filter_map(|j| match &j.op {
            Op::Audit { rows, .. } => Some(rows.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    insert_audit(&mut tx, &rows).await?;
    for (name, node, delta) in counter_totals(jobs, queued) {
        sqlx::query(COUNTER_ADD_SQL)
            .bind(name)
            .bind(node)
            .bind(delta)
            .execute(&mut *tx)
            .await?;
    }
    for chunk in combined.chunks(COMBINED_ROWS) {
        let consumed = consume_many(&mut tx, chunk.iter().map(|(_, c)| *c)).await?;
        for (i, c) in chunk {
            if let Some(slot) = out.get_mut(*i) {
                *slot = Some(Done::Consumed(consumed.contains(&c.id)));
            }
        }
    }
    for (job, slot) in jobs.iter().zip(out.iter_mut()) {
        if slot.is_some() {
            continue;
        }
        *slot = Some(match &job.op {
            Op::Consume(c) => Done::Consumed(consume(&mut tx, c).await?),
            Op::Failure {
                id,
                count_auth,
                now_short,
            } => Done::Failure(failure(&mut tx, *id, *count_auth, now_short).await?),
            // added above, once per counter; audit rows above, all together
            Op::CounterAdd { .. } => Done::CounterAdded,
            Op::Audit { .. } => Done::Audited,
            Op::Flush => Done::Flushed,
            Op::Schema(sql) => {
                sqlx::raw_sql(*sql).execute(&mut *tx).await?;
                Done::SchemaChanged
            }
            Op::Probe { key, at } => {
                write_probe_row(&mut tx, key, *at).await?;
                Done::Probed
            }
        });
    }
    tx.commit().await?;
    Ok(out
        .into_iter()
        .map(|d| d.unwrap_or(Done::Consumed(false)))
        .collect())
}

const AUDIT_ROWS_PER_INSERT: usize = 16;

/// Insert audit rows inside the batch's transaction. Statements of a fixed shape, so each is
/// prepared once and cached: 16-row inserts, then single-row ones.
async fn insert_audit(conn: &mut PgConnection, rows: &[&AuditRow]) -> Result<(), StoreError> {
    let mut chunks = rows.chunks_exact(AUDIT_ROWS_PER_INSERT);
    for chunk in chunks.by_ref() {
        super::admin::prepared(audit_insert(chunk).query())
            .execute(&mut *conn)
            .await?;
    }
    for row in chunks.remainder() {
        super::admin::prepared(audit_insert(std::slice::from_ref(row)).query())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Rows per combined consumption statement (5 parameters each).
const COMBINED_ROWS: usize = 64;

/// One UPDATE for many consumptions of distinct tokens; the ids that were consumed.
async fn consume_many<'j>(
    conn: &mut PgConnection,
    jobs: impl Iterator<Item = &'j ConsumeJob>,
) -> Result<std::collections::HashSet<i64>, StoreError> {
    let jobs: Vec<&ConsumeJob> = jobs.collect();
    let mut q =
        crate::store::query::Sql::new("WITH v(id, new_count, shift, inc, last_auth) AS (VALUES ");
    for (i, c) in jobs.iter().enumerate() {
        q.push(if i == 0 { "(" } else { ", (" });
        q.bind(c.id)
            .push(", ")
            .bind(c.new_count.unwrap_or(0))
            .push(", ")
            .bind(c.time_shift.map_or(
                crate::store::query::Param::NullI64,
                crate::store::query::Param::I64,
            ))
            .push(", ")
            .bind(i64::from(c.count_auth))
            .push(", ")
            .bind(c.last_auth.as_str())
            .push(")");
    }
    q.push(
        ") UPDATE token SET otp_counter = v.new_count, \
         time_shift = COALESCE(v.shift, token.time_shift), failcount = 0, \
         failcounter_exceeded = NULL, count_auth = token.count_auth + v.inc, \
         count_auth_success = token.count_auth_success + v.inc, last_auth = v.last_auth \
         FROM v WHERE token.id = v.id AND token.otp_counter < v.new_count RETURNING token.id",
    );
    let rows = super::admin::prepared(q.query())
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| r.try_get::<i64, _>(0).map_err(StoreError::from))
        .collect()
}

async fn consume(conn: &mut PgConnection, c: &ConsumeJob) -> Result<bool, StoreError> {
    let inc = i64::from(c.count_auth);
    let done = match c.new_count {
        Some(new_count) => {
            sqlx::query(CONSUME_SQL)
                .bind(new_count)
                .bind(c.time_shift)
                .bind(inc)
                .bind(c.last_auth.as_str())
                .bind(c.id)
                .execute(&mut *conn)
                .await?
        }
        None => {
            sqlx::query(CONSUME_UNCOUNTED_SQL)
                .bind(inc)
                .bind(c.last_auth.as_str())
                .bind(c.id)
                .execute(&mut *conn)
                .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

async fn failure(
    conn: &mut PgConnection,
    id: i64,
    count_auth: bool,
    now_short: &str,
) -> Result<FailureOutcome, StoreError> {
    let inc = i64::from(count_auth);
    let row = sqlx::query(FAILURE_SQL)
        .bind(inc)
        .bind(now_short)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = row {
        let failcount: i64 = row.try_get("failcount")?;
        let maxfail: i64 = row.try_get("maxfail")?;
        return Ok(FailureOutcome {
            failcount,
            maxfail,
            reached_max: failcount == maxfail,
        });
    }
    // Already at maxfail: the failcount stays, the attempt is still counted.
    let row = sqlx::query(FAILURE_AT_MAX_SQL)
        .bind(inc)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok(FailureOutcome {
            failcount: row.try_get("failcount")?,
            maxfail: row.try_get("maxfail")?,
            reached_max: false,
        }),
        None => Err(StoreError::Corrupt(format!("token id {id} vanished"))),
    }
}
