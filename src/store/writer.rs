//! Group commit for the hot-path writes: OTP consumption, failcount updates, event counters and
//! audit rows (and the rare schema change that must queue with them, `store::login_index`).
//!
//! An accepted OTP must be on disk before the Access-Accept leaves (SQLite `synchronous = FULL`,
//! PostgreSQL's default), or a power cut could let it be accepted again. One fsync per login
//! would cap throughput at the disk's fsync rate, so one writer takes every job that queued up
//! while the previous commit was in flight and runs them in one transaction: one fsync per
//! batch. Each request gets its own statement's result, and only after the commit. Each
//! statement is still the atomic conditional `UPDATE … WHERE otp_counter < …`, so two requests
//! (or two nodes) can never consume the same OTP, inside a batch or across batches.
//!
//! This file holds the jobs, the handle and the PostgreSQL writer (an async task on sqlx's
//! pool); the SQLite writer is a thread of its own (`store::sqlite_direct`). Both take the
//! same jobs, run the same statements and gather, retry and settle their batches through one
//! [`Batch`].

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Any, AnyConnection, AnyPool, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::audit::AuditRow;
use super::health::Health;
use super::queued_counters::{self, QueuedCounters, Taken};
use super::tokens::FailureOutcome;
use super::{Backend, StoreError, begin_write};
use crate::log_limit::Repeated;

/// A successful authentication to store.
#[derive(Debug, Clone)]
pub(crate) struct ConsumeJob {
    pub id: i64,
    pub new_count: Option<i64>,
    pub time_shift: Option<i64>,
    pub count_auth: bool,
    pub last_auth: String,
}

#[derive(Debug)]
pub(super) enum Op {
    Consume(ConsumeJob),
    Failure {
        id: i64,
        count_auth: bool,
        now_short: String,
    },
    CounterAdd {
        name: String,
        node: String,
        delta: i64,
    },
    /// Audit rows ride in the same transaction: one writer for SQLite's one write lock, and
    /// one commit for the logins and their audit rows.
    Audit(Arc<Vec<AuditRow>>),
    /// Nothing to write: answered once everything queued before it is committed.
    Flush,
    /// A schema change (an index built or dropped at a reload) that must not fail on the
    /// write lock: in the writer's own transaction, the logins behind it wait instead.
    Schema(&'static str),
    /// The smallest write, to find out whether commits complete again after one stalled
    /// (`store::commit_watch`): this process's row in `commit_probe`.
    Probe {
        key: String,
        at: i64,
    },
}

#[derive(Debug)]
pub(super) enum Done {
    Consumed(bool),
    Failure(FailureOutcome),
    CounterAdded,
    Audited,
    Flushed,
    SchemaChanged,
    Probed,
}

pub(super) struct Job {
    pub(super) op: Op,
    /// `None`: nobody waits for this job's commit.
    reply: Option<oneshot::Sender<Result<Done, StoreError>>>,
}

/// Most jobs one commit takes.
const MAX_BATCH: usize = 1024;

/// A successful authentication with a new counter: only if the stored counter is still below
/// it (`$1` new counter, `$2` time shift or NULL, `$3` 1 to count the attempt, `$4` last_auth,
/// `$5` token id). Consumed when it changed a row: no `RETURNING`, for which SQLite builds a
/// temporary table per statement.
pub(super) const CONSUME_SQL: &str = "UPDATE token SET otp_counter = $1, \
     time_shift = COALESCE($2, time_shift), failcount = 0, failcounter_exceeded = NULL, \
     count_auth = count_auth + $3, count_auth_success = count_auth_success + $3, last_auth = $4 \
     WHERE id = $5 AND otp_counter < $1";

/// A successful authentication without a counter (`$1` count, `$2` last_auth, `$3` id).
pub(super) const CONSUME_UNCOUNTED_SQL: &str = "UPDATE token SET failcount = 0, \
     failcounter_exceeded = NULL, count_auth = count_auth + $1, \
     count_auth_success = count_auth_success + $1, last_auth = $2 WHERE id = $3";

/// A failed attempt below maxfail (`$1` count, `$2` now, `$3` id).
macro_rules! failure_update {
    () => {
        "UPDATE token SET failcount = failcount + 1, count_auth = count_auth + $1, \
         failcounter_exceeded = CASE WHEN failcount + 1 >= maxfail THEN $2 \
         ELSE failcounter_exceeded END WHERE id = $3 AND failcount < maxfail"
    };
}

/// A failed attempt at maxfail: the failcount stays, the attempt is still counted (`$1` count,
/// `$2` id).
macro_rules! failure_at_max_update {
    () => {
        "UPDATE token SET count_auth = count_auth + $1 WHERE id = $2"
    };
}

/// `failure_update!` returning the counts (PostgreSQL: one round trip).
pub(super) const FAILURE_SQL: &str = concat!(failure_update!(), " RETURNING failcount, maxfail");
/// `failure_at_max_update!` returning the counts.
pub(super) const FAILURE_AT_MAX_SQL: &str =
    concat!(failure_at_max_update!(), " RETURNING failcount, maxfail");
/// The same updates without `RETURNING`, for which SQLite builds a temporary table per
/// statement: in-process, reading the counts back is cheaper.
pub(super) const FAILURE_UPDATE_SQL: &str = failure_update!();
pub(super) const FAILURE_AT_MAX_UPDATE_SQL: &str = failure_at_max_update!();

/// Add to this node's row of an event counter (`$1` name, `$2` node, `$3` delta).
pub(super) const COUNTER_ADD_SQL: &str = "INSERT INTO event_counter (name, node, value) \
     VALUES ($1, $2, $3) ON CONFLICT (name, node) \
     DO UPDATE SET value = event_counter.value + excluded.value";

/// Forget the `commit_probe` rows of processes that have not probed for a day (`$1` the
/// oldest time kept, Unix seconds).
pub(super) const PROBE_CLEANUP_SQL: &str = "DELETE FROM commit_probe WHERE at < $1";
/// Write this process's row (`$1` its key, `$2` now, Unix seconds).
pub(super) const PROBE_SQL: &str = "INSERT INTO commit_probe (probe, at) VALUES ($1, $2) \
     ON CONFLICT (probe) DO UPDATE SET at = excluded.at";
/// How long a process's row stays in `commit_probe` after its last probe.
pub(super) const PROBE_ROWS_KEPT_S: i64 = 86_400;

/// Write this process's `commit_probe` row on `conn` (PostgreSQL), forgetting stale ones.
pub(super) async fn write_probe_row(
    conn: &mut AnyConnection,
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

/// The handle requests use. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct GroupWriter {
    tx: mpsc::Sender<Job>,
    counters: Arc<QueuedCounters>,
    /// A login stops waiting for its commit when the breaker opens (PostgreSQL went away;
    /// commits stall on either backend), and is refused at once while it is open.
    gives_up: Option<Arc<Health>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.op.fmt(f)
    }
}

impl GroupWriter {
    /// The handle, the queue a writer serves and the counter increments it takes along. The
    /// writer ends when every handle is gone. Spawns the task that commits increments no other
    /// write took along (so it needs a runtime).
    pub(super) fn channel() -> (Self, mpsc::Receiver<Job>, Arc<QueuedCounters>) {
        let (tx, rx) = mpsc::channel(8192);
        let counters = Arc::new(QueuedCounters::default());
        tokio::spawn(queued_counters::commit_lazily(
            tx.downgrade(),
            Arc::clone(&counters),
        ));
        (
            Self {
                tx,
                counters: Arc::clone(&counters),
                gives_up: None,
            },
            rx,
            counters,
        )
    }

    /// Start the writer task on sqlx's pool (PostgreSQL).
    pub(crate) fn start(pool: AnyPool, health: Arc<Health>) -> Self {
        let (writer, rx, counters) = Self::channel();
        let writer = writer.giving_up_with(Arc::clone(&health));
        tokio::spawn(run(pool, rx, counters, health));
        writer
    }

    /// Logins stop waiting for their commit when `health`'s breaker opens.
    pub(super) fn giving_up_with(self, health: Arc<Health>) -> Self {
        Self {
            gives_up: Some(health),
            ..self
        }
    }

    /// The writer's queue, without keeping the writer alive (it ends when every handle is
    /// gone).
    pub(super) fn weak_queue(&self) -> mpsc::WeakSender<Job> {
        self.tx.downgrade()
    }

    async fn submit(&self, op: Op) -> Result<Done, StoreError> {
        // Audit rows, schema changes and probes have no NAS waiting: they wait for their
        // commit's answer, so that a stalled commit that completes in the end is not retried
        // twice.
        let waits_for_a_login = !op.is_side_job();
        let job = send_and_wait(&self.tx, op);
        match &self.gives_up {
            // a job given up stays queued with nobody to answer: the writer leaves it out
            Some(health) if waits_for_a_login => health.unless_down(job).await,
            _ => job.await,
        }
    }

    /// Returns once every counter increment added before it is committed (what reads of
    /// counters wait for).
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        if !self.counters.unsettled() {
            return Ok(());
        }
        self.submit(Op::Flush).await.map(|_| ())
    }

    pub(crate) async fn consume(&self, job: ConsumeJob) -> Result<bool, StoreError> {
        match self.submit(Op::Consume(job)).await? {
            Done::Consumed(b) => Ok(b),
            _ => Err(StoreError::Corrupt("writer answered the wrong job".into())),
        }
    }

    /// Run a schema change as a commit of the writer's (see [`Op::Schema`]).
    pub(crate) async fn schema(&self, sql: &'static str) -> Result<(), StoreError> {
        self.submit(Op::Schema(sql)).await.map(|_| ())
    }

    /// Insert audit rows in the next commit.
    pub(crate) async fn audit(&self, rows: Arc<Vec<AuditRow>>) -> Result<(), StoreError> {
        self.submit(Op::Audit(rows)).await.map(|_| ())
    }

    /// Add to an event counter (the Counter handler runs on every login it matches).
    pub(crate) async fn counter_add(
        &self,
        name: &str,
        node: &str,
        delta: i64,
    ) -> Result<(), StoreError> {
        self.submit(Op::CounterAdd {
            name: name.to_owned(),
            node: node.to_owned(),
            delta,
        })
        .await
        .map(|_| ())
    }

    /// Add to an event counter in the next commit, whatever makes it, without waiting for it
    /// (see [`QueuedCounters`]).
    pub(crate) fn counter_add_queued(&self, name: &str, node: &str, delta: i64) {
        self.counters.add(name, node, delta);
    }

    pub(crate) async fn failure(
        &self,
        id: i64,
        count_auth: bool,
        now_short: String,
    ) -> Result<FailureOutcome, StoreError> {
        match self
            .submit(Op::Failure {
                id,
                count_auth,
                now_short,
            })
            .await?
        {
            Done::Failure(f) => Ok(f),
            _ => Err(StoreError::Corrupt("writer answered the wrong job".into())),
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Corrupt("the store writer has stopped".into())
}

/// One batch and its bookkeeping around the commit, the same for both writers: gathered from
/// the queue, committed (once more without its audit rows if that failed), then settled.
pub(super) struct Batch {
    jobs: Vec<Job>,
    queued: Taken,
    started: std::time::Instant,
}

impl Batch {
    /// `first` and what queued up behind it, up to [`MAX_BATCH`], with the queued counter
    /// increments the commit takes along.
    pub(super) fn gather(
        first: Job,
        rx: &mut mpsc::Receiver<Job>,
        counters: &QueuedCounters,
    ) -> Self {
        let mut jobs = Vec::with_capacity(MAX_BATCH.min(rx.len() + 1));
        jobs.push(first);
        super::take_queued(rx, &mut jobs, MAX_BATCH);
        // a login that gave up waiting was answered REJECT: its consumption or failure is
        // not written behind its back
        jobs.retain(|j| !j.given_up());
        metrics::histogram!("otpgate_store_commit_batch").record(jobs.len() as f64);
        Self {
            jobs,
            queued: counters.take(),
            started: std::time::Instant::now(),
        }
    }

    pub(super) fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    pub(super) fn queued(&self) -> &Taken {
        &self.queued
    }

    /// After a failed commit: audit rows and schema changes must never cost a login, so they
    /// are answered with the error (the audit writer retries its rows on its own). `true`
    /// when there were any, and the rest is worth committing again without them.
    pub(super) fn drop_side_jobs(&mut self, error: &StoreError) -> bool {
        let (side, rest): (Vec<Job>, Vec<Job>) = std::mem::take(&mut self.jobs)
            .into_iter()
            .partition(|j| j.op.is_side_job());
        self.jobs = rest;
        let dropped = !side.is_empty();
        for job in side {
            job.answer(Err(error.relay()));
        }
        dropped
    }

    /// Record the commit's time, settle the queued counters and answer every job. `false`
    /// when the batch failed: then the caller pauses for [`FAILED_BATCH_PAUSE`] before the
    /// next one, so as not to spin against a database that is down.
    pub(super) fn settle(
        self,
        results: Result<Vec<Done>, StoreError>,
        counters: &QueuedCounters,
        health: &Health,
    ) -> bool {
        timed(self.started, self.jobs.len());
        health.commit_outcome(&results);
        counters.settle(self.queued, results.as_ref().err());
        match results {
            Ok(results) => {
                for (job, r) in self.jobs.into_iter().zip(results) {
                    job.answer(Ok(r));
                }
                true
            }
            Err(e) => {
                // The whole batch failed (the database went away, the disk is full): every
                // request hears it and answers REJECT; nothing was committed.
                // an unreachable database is logged once, by `health`
                if e.is_unavailable() {
                    tracing::debug!(target: "otpgate::store", error = %e, jobs = self.jobs.len(), "write batch failed");
                } else {
                    // one a commit while it lasts (a full disk): a line per 10 s
                    static FAILED: Repeated = Repeated::new(Duration::from_secs(10));
                    if let Some(held_back) = FAILED.tick() {
                        tracing::warn!(target: "otpgate::store", error = %e, jobs = self.jobs.len(), held_back, "write batch failed");
                    }
                }
                for job in self.jobs {
                    job.answer(Err(e.relay()));
                }
                false
            }
        }
    }
}

impl Op {
    /// A job that no login waits for: it must never cost one.
    fn is_side_job(&self) -> bool {
        matches!(self, Op::Audit(_) | Op::Schema(_) | Op::Probe { .. })
    }
}

/// Queue `op` for the writer behind `queue` and wait for its commit's answer.
async fn send_and_wait(queue: &mpsc::Sender<Job>, op: Op) -> Result<Done, StoreError> {
    let (reply, answer) = oneshot::channel();
    queue
        .send(Job {
            op,
            reply: Some(reply),
        })
        .await
        .map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
}

/// Commit [`Op::Probe`] for `key` through the writer behind `queue`, and wait for its answer.
pub(super) async fn probe(queue: &mpsc::Sender<Job>, key: &str, at: i64) -> Result<(), StoreError> {
    let op = Op::Probe {
        key: key.to_owned(),
        at,
    };
    send_and_wait(queue, op).await.map(|_| ())
}

impl Job {
    pub(super) fn detached(op: Op) -> Self {
        Self { op, reply: None }
    }

    /// Whoever waited for this job's answer stopped waiting (see [`GroupWriter::submit`]).
    fn given_up(&self) -> bool {
        self.reply.as_ref().is_some_and(|r| r.is_closed())
    }

    fn answer(self, result: Result<Done, StoreError>) {
        if let Some(reply) = self.reply {
            let _ = reply.send(result);
        }
    }
}

/// The batch's counter increments and the queued ones it takes along, summed per (counter,
/// node): one statement per counter and batch instead of one per login. Counters are only ever
/// added to here, so the order of the increments inside a batch does not matter.
pub(super) fn counter_totals<'a>(
    jobs: &'a [Job],
    queued: &'a Taken,
) -> Vec<(&'a str, &'a str, i64)> {
    let mut totals: Vec<(&str, &str, i64)> = queued
        .totals
        .iter()
        .map(|(n, o, d)| (n.as_str(), o.as_str(), *d))
        .collect();
    for job in jobs {
        if let Op::CounterAdd { name, node, delta } = &job.op {
            match totals.iter_mut().find(|(n, o, _)| n == name && o == node) {
                Some(c) => c.2 += delta,
                None => totals.push((name, node, *delta)),
            }
        }
    }
    totals
}

/// A commit this slow holds up every login in its batch: worth a log line.
const SLOW_COMMIT: Duration = Duration::from_millis(100);

/// Record how long a batch took to commit (`otpgate_store_commit_seconds`).
fn timed(started: std::time::Instant, jobs: usize) {
    let took = started.elapsed();
    metrics::histogram!("otpgate_store_commit_seconds").record(took.as_secs_f64());
    if took >= SLOW_COMMIT {
        tracing::warn!(target: "otpgate::store", ms = took.as_millis() as u64, jobs, "slow commit");
    }
}

/// Pause after a failed batch.
pub(super) const FAILED_BATCH_PAUSE: Duration = Duration::from_millis(50);

async fn run(
    pool: AnyPool,
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
    pool: &AnyPool,
    batch: &Batch,
    health: &Health,
) -> Result<Vec<Done>, StoreError> {
    let results = match health.admit() {
        Ok(()) => {
            health
                .watch_commit(commit(pool, batch.jobs(), batch.queued()), || {
                    super::pg_waits::explain(pool.clone())
                })
                .await
        }
        Err(e) => Err(e),
    };
    health.outcome(&results);
    results
}

async fn commit(pool: &AnyPool, jobs: &[Job], queued: &Taken) -> Result<Vec<Done>, StoreError> {
    let mut tx: Transaction<'static, Any> = begin_write(pool, Backend::Postgres).await?;
    // The common case, an OTP consumption of a token no earlier job of this batch touched,
    // goes into one combined UPDATE per chunk: a single statement (one round trip to the
    // database) for many logins. Everything else runs on its own, in order, afterwards.
    let mut touched = std::collections::HashSet::new();
    let mut combined: Vec<(usize, &ConsumeJob)> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let id = match &job.op {
            Op::Consume(c) => c.id,
            Op::Failure { id, .. } => *id,
            Op::CounterAdd { .. } | Op::Audit(_) | Op::Flush | Op::Schema(_) | Op::Probe { .. } => {
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
        .map(|j| matches!(j.op, Op::CounterAdd { .. }).then_some(Done::CounterAdded))
        .collect();
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
            // added above, once per counter
            Op::CounterAdd { .. } => Done::CounterAdded,
            Op::Audit(rows) => {
                super::audit::insert_rows(&mut tx, rows).await?;
                Done::Audited
            }
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

/// Rows per combined consumption statement (5 parameters each).
const COMBINED_ROWS: usize = 64;

/// One UPDATE for many consumptions of distinct tokens; the ids that were consumed.
async fn consume_many<'j>(
    conn: &mut AnyConnection,
    jobs: impl Iterator<Item = &'j ConsumeJob>,
) -> Result<std::collections::HashSet<i64>, StoreError> {
    let jobs: Vec<&ConsumeJob> = jobs.collect();
    let mut q = super::sql::Sql::new("WITH v(id, new_count, shift, inc, last_auth) AS (VALUES ");
    for (i, c) in jobs.iter().enumerate() {
        q.push(if i == 0 { "(" } else { ", (" });
        q.bind(c.id)
            .push(", ")
            .bind(c.new_count.unwrap_or(0))
            .push(", ")
            .bind(
                c.time_shift
                    .map_or(super::sql::Param::NullI64, super::sql::Param::I64),
            )
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
    let rows = q.query().fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| r.try_get::<i64, _>(0).map_err(StoreError::from))
        .collect()
}

async fn consume(conn: &mut AnyConnection, c: &ConsumeJob) -> Result<bool, StoreError> {
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
    conn: &mut AnyConnection,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(op: Op) -> (Job, oneshot::Receiver<Result<Done, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        (
            Job {
                op,
                reply: Some(reply),
            },
            answer,
        )
    }

    fn flush() -> (Job, oneshot::Receiver<Result<Done, StoreError>>) {
        job(Op::Flush)
    }

    /// A batch takes what queued behind its first job; after a failed commit its audit rows
    /// and schema changes hear the error at once and the rest stays for the second try.
    #[tokio::test]
    async fn a_failed_batch_drops_its_side_jobs_and_keeps_the_rest() {
        let counters = QueuedCounters::default();
        let (tx, mut rx) = mpsc::channel(8);
        let (audit, audit_answer) = job(Op::Audit(Arc::new(Vec::new())));
        let (schema, schema_answer) = job(Op::Schema("DROP INDEX IF EXISTS nothing"));
        let (second, second_answer) = flush();
        tx.send(audit).await.unwrap();
        tx.send(schema).await.unwrap();
        tx.send(second).await.unwrap();
        let (first, first_answer) = flush();
        let mut batch = Batch::gather(first, &mut rx, &counters);
        assert_eq!(batch.jobs().len(), 4);

        let disk_full = StoreError::Corrupt("disk full".into());
        assert!(batch.drop_side_jobs(&disk_full));
        assert!(audit_answer.await.unwrap().is_err());
        let told = schema_answer.await.unwrap().unwrap_err().to_string();
        assert!(told.contains("disk full"), "{told}");
        assert_eq!(batch.jobs().len(), 2);
        assert!(
            !batch.drop_side_jobs(&disk_full),
            "nothing left to drop: no second retry"
        );

        assert!(batch.settle(
            Ok(vec![Done::Flushed, Done::Flushed]),
            &counters,
            &Health::default()
        ));
        assert!(matches!(first_answer.await.unwrap(), Ok(Done::Flushed)));
        assert!(matches!(second_answer.await.unwrap(), Ok(Done::Flushed)));
    }

    /// A batch whose commit failed answers every job with the error and tells its writer to
    /// pause; the counter increments it had taken are settled (lost), not left pending.
    #[tokio::test]
    async fn a_failed_batch_answers_every_job_and_settles_its_counters() {
        let counters = QueuedCounters::default();
        counters.add("logins", "n1", 1);
        let (_tx, mut rx) = mpsc::channel::<Job>(8);
        let (first, first_answer) = flush();
        let batch = Batch::gather(first, &mut rx, &counters);
        assert!(counters.unsettled(), "taken, not yet committed");

        let failed = Err(StoreError::Corrupt("disk full".into()));
        let health = Health::default();
        assert!(!batch.settle(failed, &counters, &health));
        assert!(health.refusing_writes().is_some(), "/healthz says so");
        let answer = first_answer.await.unwrap();
        assert!(answer.is_err_and(|e| e.to_string().contains("disk full")));
        assert!(!counters.unsettled());
    }
}
