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
//! This file holds the jobs, the handle requests use and the batch bookkeeping both writers
//! share: SQLite's is a thread of its own (`store::sqlite::writer`), PostgreSQL's an async
//! task on sqlx's pool (`store::postgres::writer`). Both gather, retry and settle their
//! batches through one [`Batch`] and run the statements of `store::statements`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::audit::AuditRow;
use super::diagnostics::health::Health;
use super::queued_counters::{QueuedCounters, Taken};
use crate::log_limit::Repeated;

/// What a recorded failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureOutcome {
    pub failcount: i64,
    pub maxfail: i64,
    /// This request moved the failcount to maxfail (fires `token_locked`).
    pub reached_max: bool,
}

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
pub(in crate::store) enum Op {
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
    /// one commit for the logins and their audit rows. `answer_waits`: the row of a request
    /// whose answer leaves only after this commit; like a login's own writes it is given up
    /// when the breaker opens.
    Audit {
        rows: Arc<Vec<AuditRow>>,
        answer_waits: bool,
    },
    /// Nothing to write: answered once everything queued before it is committed.
    Flush,
    /// A schema change (an index built or dropped at a reload) that must not fail on the
    /// write lock: in the writer's own transaction, the logins behind it wait instead.
    Schema(&'static str),
    /// The smallest write, to find out whether commits complete again after one stalled
    /// (`store::diagnostics::commit_watch`): this process's row in `commit_probe`.
    Probe {
        key: String,
        at: i64,
    },
}

#[derive(Debug)]
pub(in crate::store) enum Done {
    Consumed(bool),
    Failure(FailureOutcome),
    CounterAdded,
    Audited,
    Flushed,
    SchemaChanged,
    Probed,
}

pub(in crate::store) struct Job {
    pub(in crate::store) op: Op,
    /// `None`: nobody waits for this job's commit.
    reply: Option<oneshot::Sender<Result<Done, StoreError>>>,
}

/// Most jobs one commit takes.
const MAX_BATCH: usize = 1024;

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
    pub(in crate::store) fn channel() -> (Self, mpsc::Receiver<Job>, Arc<QueuedCounters>) {
        let (tx, rx) = mpsc::channel(8192);
        let counters = Arc::new(QueuedCounters::default());
        tokio::spawn(commit_lazily(tx.downgrade(), Arc::clone(&counters)));
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

    /// Logins stop waiting for their commit when `health`'s breaker opens.
    pub(in crate::store) fn giving_up_with(self, health: Arc<Health>) -> Self {
        Self {
            gives_up: Some(health),
            ..self
        }
    }

    /// The writer's queue, without keeping the writer alive (it ends when every handle is
    /// gone).
    pub(in crate::store) fn weak_queue(&self) -> mpsc::WeakSender<Job> {
        self.tx.downgrade()
    }

    async fn submit(&self, op: Op) -> Result<Done, StoreError> {
        // Queued audit rows, schema changes and probes have no NAS waiting: they wait for their
        // commit's answer, so that a stalled commit that completes in the end is not retried
        // twice.
        let waits_for_a_login = op.waits_for_a_login();
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
        let op = Op::Audit {
            rows,
            answer_waits: false,
        };
        self.submit(op).await.map(|_| ())
    }

    /// Insert the audit row of a request whose answer waits for it, in the next commit; given
    /// up when the breaker opens.
    pub(crate) async fn audit_answered(&self, rows: Arc<Vec<AuditRow>>) -> Result<(), StoreError> {
        let op = Op::Audit {
            rows,
            answer_waits: true,
        };
        self.submit(op).await.map(|_| ())
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
pub(in crate::store) struct Batch {
    jobs: Vec<Job>,
    queued: Taken,
    started: std::time::Instant,
}

impl Batch {
    /// `first` and what queued up behind it, up to [`MAX_BATCH`], with the queued counter
    /// increments the commit takes along.
    pub(in crate::store) fn gather(
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

    pub(in crate::store) fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    pub(in crate::store) fn queued(&self) -> &Taken {
        &self.queued
    }

    /// After a failed commit: audit rows and schema changes must never cost a login, so they
    /// are answered with the error (the audit writer retries its rows on its own). `true`
    /// when there were any, and the rest is worth committing again without them.
    pub(in crate::store) fn drop_side_jobs(&mut self, error: &StoreError) -> bool {
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
    pub(in crate::store) fn settle(
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
    /// A job that must never cost a login its commit: after a failed commit it is left out.
    fn is_side_job(&self) -> bool {
        matches!(self, Op::Audit { .. } | Op::Schema(_) | Op::Probe { .. })
    }

    /// A job whose request's answer waits for it: given up when the breaker opens.
    fn waits_for_a_login(&self) -> bool {
        matches!(
            self,
            Op::Audit {
                answer_waits: true,
                ..
            }
        ) || !self.is_side_job()
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
pub(in crate::store) async fn probe(
    queue: &mpsc::Sender<Job>,
    key: &str,
    at: i64,
) -> Result<(), StoreError> {
    let op = Op::Probe {
        key: key.to_owned(),
        at,
    };
    send_and_wait(queue, op).await.map(|_| ())
}

impl Job {
    pub(in crate::store) fn detached(op: Op) -> Self {
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
pub(in crate::store) fn counter_totals<'a>(
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

/// Commit counter increments that no other write took along (`store::queued_counters`).
/// Ends with the writer (when the queue has no sender left).
async fn commit_lazily(queue: mpsc::WeakSender<Job>, counters: Arc<QueuedCounters>) {
    loop {
        let left_behind = counters.left_behind().await;
        let Some(queue) = queue.upgrade() else {
            return;
        };
        if left_behind && queue.send(Job::detached(Op::Flush)).await.is_err() {
            return;
        }
    }
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
pub(in crate::store) const FAILED_BATCH_PAUSE: Duration = Duration::from_millis(50);

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
        let (audit, audit_answer) = job(Op::Audit {
            rows: Arc::new(Vec::new()),
            answer_waits: false,
        });
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
