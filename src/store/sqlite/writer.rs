//! SQLite's group commit: one thread that owns the write connection takes every job that
//! queued up while it was busy (`store::jobs`), runs them in one `BEGIN IMMEDIATE … COMMIT`
//! (one fsync, `synchronous = FULL`) and answers each job only after the commit. A task
//! watches its commits for stalls (`store::diagnostics::commit_watch`).

use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::mpsc;

use super::checkpoints::{self, WalRestart};
use super::connection::{connect, run_statement, wait_for_lock};
use crate::clock::{Clock, SystemClock};
use crate::store::StoreError;
use crate::store::audit::{AUDIT_COLUMNS, AuditRow};
use crate::store::diagnostics::commit_watch::{self, CommitClock};
use crate::store::diagnostics::health::Health;
use crate::store::jobs::{self, Batch, ConsumeJob, Done, FailureOutcome, GroupWriter, Job, Op};
use crate::store::queued_counters::{QueuedCounters, Taken};
use crate::store::statements;

thread_local! {
    /// The writer thread's commit clock, for its busy handler (a plain `fn`).
    static WRITER_CLOCK: std::cell::OnceCell<Arc<CommitClock>> = const { std::cell::OnceCell::new() };
}

/// The writer waits longer, about a minute: a lock that another process holds for seconds (an
/// admin's `sqlite3` shell in a transaction) is a stall, which the commit watch turns into refusals
/// after `commit_timeout` (`store::diagnostics::commit_watch`), not a batch of failed logins every
/// five seconds. Past it the batch fails and the watch's probe tries again. Each wait is marked on
/// the commit clock, so that the watch can tell a lock from the disk.
fn wait_for_lock_as_writer(attempt: i32) -> bool {
    WRITER_CLOCK.with(|clock| {
        if let Some(clock) = clock.get() {
            clock.waiting_for_lock();
        }
    });
    match attempt {
        0..5000 => return wait_for_lock(attempt),
        5000..10_600 => std::thread::sleep(Duration::from_millis(10)),
        _ => return false,
    }
    true
}

/// Start the group-commit writer thread on the SQLite file at `path`, and the task that
/// watches its commits (`store::diagnostics::commit_watch`, with `commit_timeout`).
pub(in crate::store) fn start_writer(
    path: &Path,
    restart: Arc<WalRestart>,
    health: Arc<Health>,
    commit_timeout: Duration,
) -> Result<GroupWriter, StoreError> {
    let conn = connect(path, false)?;
    conn.busy_handler(Some(wait_for_lock_as_writer))?;
    let (handle, rx, counters) = GroupWriter::channel();
    let handle = handle.giving_up_with(Arc::clone(&health));
    let clock = Arc::new(CommitClock::default());
    let watched = Arc::clone(&clock);
    let watching = Arc::clone(&health);
    std::thread::Builder::new()
        .name("otpgate-db-write".into())
        .spawn(move || {
            WRITER_CLOCK.with(|c| c.set(Arc::clone(&clock)).ok());
            write_loop(conn, rx, &counters, &restart, &health, &clock);
        })
        .map_err(|source| StoreError::Thread {
            what: "writer",
            source,
        })?;
    tokio::spawn(commit_watch::watch(
        watched,
        path.to_owned(),
        watching,
        Probes(handle.weak_queue()),
        commit_timeout,
    ));
    Ok(handle)
}

/// The commit watch's way to the writer, which it does not keep alive.
struct Probes(mpsc::WeakSender<Job>);

impl commit_watch::Watched for Probes {
    fn running(&self) -> bool {
        self.0.strong_count() > 0
    }

    async fn probe(&self, key: &str) -> Option<Result<(), StoreError>> {
        let queue = self.0.upgrade()?;
        Some(jobs::probe(&queue, key, SystemClock.now().timestamp()).await)
    }
}

/// Ends when every [`GroupWriter`] handle is gone.
fn write_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    counters: &QueuedCounters,
    restart: &WalRestart,
    health: &Health,
    clock: &CommitClock,
) {
    let timed_commit = |batch: &Batch| {
        clock.started(
            batch
                .jobs()
                .iter()
                .any(|job| matches!(job.op, Op::Schema(_))),
        );
        let results = commit(&conn, batch.jobs(), batch.queued());
        clock.ended();
        results
    };
    while let Some(first) = rx.blocking_recv() {
        let mut batch = Batch::gather(first, &mut rx, counters);
        let mut results = timed_commit(&batch);
        if let Err(e) = &results
            && batch.drop_side_jobs(e)
        {
            results = timed_commit(&batch);
        }
        if !batch.settle(results, counters, health) {
            std::thread::sleep(jobs::FAILED_BATCH_PAUSE);
        }
        if restart.take_request() {
            finish_checkpoint(&conn);
        }
    }
}

/// Copy what the background checkpoint left, so that the next transaction starts the WAL over
/// (`store::sqlite::checkpoints`).
fn finish_checkpoint(conn: &Connection) {
    let started = std::time::Instant::now();
    match checkpoints::passive_on(conn) {
        Ok(pass) => {
            checkpoints::record("writer", started, &pass);
            if pass.copied < pass.log {
                // a reader still on an old snapshot: the background task asks again
                tracing::debug!(target: "otpgate::store", log = pass.log, copied = pass.copied, "WAL not fully copied");
            }
        }
        Err(e) => tracing::warn!(target: "otpgate::store", error = %e, "WAL checkpoint failed"),
    }
}

/// One transaction for the batch: the counter totals, then the jobs in their order. An error
/// rolls everything back.
///
/// `BEGIN IMMEDIATE` and `COMMIT` are cached statements: rusqlite's `Transaction` parses both
/// again for every batch, and at moderate load a batch is one or two logins.
fn commit(conn: &Connection, jobs: &[Job], queued: &Taken) -> Result<Vec<Done>, StoreError> {
    if !conn.is_autocommit() {
        // an earlier batch's ROLLBACK failed: end that transaction before starting this one
        run_statement(conn, "ROLLBACK")?;
    }
    run_statement(conn, "BEGIN IMMEDIATE")?;
    let result = batch_statements(conn, jobs, queued).and_then(|out| {
        run_statement(conn, "COMMIT")
            .map(|()| out)
            .map_err(Into::into)
    });
    if result.is_err()
        && !conn.is_autocommit()
        && let Err(e) = run_statement(conn, "ROLLBACK")
    {
        tracing::error!(target: "otpgate::store", error = %e, "a failed batch could not be rolled back; the next batch tries again");
    }
    result
}

/// The batch's statements, inside [`commit`]'s transaction.
fn batch_statements(
    tx: &Connection,
    jobs: &[Job],
    queued: &Taken,
) -> Result<Vec<Done>, StoreError> {
    for (name, node, delta) in jobs::counter_totals(jobs, queued) {
        tx.prepare_cached(statements::COUNTER_ADD_SQL)?
            .execute(params![name, node, delta])?;
    }
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        out.push(match &job.op {
            Op::Consume(c) => Done::Consumed(consume(tx, c)?),
            Op::Failure {
                id,
                count_auth,
                now_short,
            } => Done::Failure(failure(tx, *id, *count_auth, now_short)?),
            // added above, once per counter
            Op::CounterAdd { .. } => Done::CounterAdded,
            Op::Audit { rows, .. } => {
                insert_audit(tx, rows)?;
                Done::Audited
            }
            Op::Flush => Done::Flushed,
            Op::Schema(sql) => {
                tx.execute_batch(sql)?;
                Done::SchemaChanged
            }
            Op::Probe { key, at } => {
                tx.prepare_cached(statements::PROBE_CLEANUP_SQL)?
                    .execute([at - statements::PROBE_ROWS_KEPT_S])?;
                tx.prepare_cached(statements::PROBE_SQL)?
                    .execute(params![key, at])?;
                Done::Probed
            }
        });
    }
    Ok(out)
}

fn consume(conn: &Connection, c: &ConsumeJob) -> Result<bool, StoreError> {
    let inc = i64::from(c.count_auth);
    let changed = match c.new_count {
        Some(new_count) => conn
            .prepare_cached(statements::CONSUME_SQL)?
            .execute(params![new_count, c.time_shift, inc, c.last_auth, c.id])?,
        None => conn
            .prepare_cached(statements::CONSUME_UNCOUNTED_SQL)?
            .execute(params![inc, c.last_auth, c.id])?,
    };
    Ok(changed == 1)
}

fn failure(
    conn: &Connection,
    id: i64,
    count_auth: bool,
    now_short: &str,
) -> Result<FailureOutcome, StoreError> {
    let inc = i64::from(count_auth);
    let below_max = conn
        .prepare_cached(statements::FAILURE_UPDATE_SQL)?
        .execute(params![inc, now_short, id])?
        == 1;
    if !below_max {
        conn.prepare_cached(statements::FAILURE_AT_MAX_UPDATE_SQL)?
            .execute(params![inc, id])?;
    }
    // the row this transaction just wrote: no other connection can change it before the commit
    match conn
        .prepare_cached("SELECT failcount, maxfail FROM token WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .optional()?
    {
        Some((failcount, maxfail)) => Ok(FailureOutcome {
            failcount,
            maxfail,
            reached_max: below_max && failcount == maxfail,
        }),
        None => Err(StoreError::Corrupt(format!("token id {id} vanished"))),
    }
}

/// One prepared single-row INSERT per row: in-process, a statement costs a bind and a step,
/// and the values are bound from the row without copying.
fn insert_audit(conn: &Connection, rows: &[AuditRow]) -> Result<(), StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let values: Vec<String> = (1..=17).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT INTO audit ({AUDIT_COLUMNS}) VALUES ({})",
            values.join(", ")
        )
    });
    let mut insert = conn.prepare_cached(&SQL)?;
    for r in rows {
        insert.execute(params![
            r.time_us,
            r.node,
            r.event,
            r.origin,
            r.success,
            r.authentication,
            r.user,
            r.realm,
            r.resolver,
            r.serial,
            r.token_type,
            r.client,
            r.info,
            r.action_detail,
            r.policies,
            r.duration_us,
            r.trace,
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_db::{file_with_a_token, migrated_file, migrated_memory, otp_counter};
    use super::*;
    use crate::store::tests::until;

    /// A batch that fails half-way leaves nothing behind, not even the consumption before the
    /// failing job, and the writer's next batch commits.
    #[test]
    fn a_failed_batch_is_rolled_back_and_the_next_one_commits() {
        let (_dir, path, admin, id) = file_with_a_token();
        let counter = || otp_counter(&admin, id);
        let consume = || {
            Job::detached(Op::Consume(ConsumeJob {
                id,
                new_count: Some(5),
                time_shift: None,
                count_auth: true,
                last_auth: "2026-12-04 10:00:00".into(),
            }))
        };
        let writer = connect(&path, false).unwrap();
        let none = Taken::default();

        let failing = [consume(), Job::detached(Op::Schema("THIS IS NOT SQL"))];
        assert!(commit(&writer, &failing, &none).is_err());
        assert!(
            writer.is_autocommit(),
            "the failed batch's transaction was ended"
        );
        assert_eq!(
            counter(),
            0,
            "the consumption was rolled back with its batch"
        );

        let done = commit(&writer, &[consume()], &none).unwrap();
        assert!(matches!(done[..], [Done::Consumed(true)]));
        assert_eq!(counter(), 5);
        // the same counter again is no consumption
        let done = commit(&writer, &[consume()], &none).unwrap();
        assert!(matches!(done[..], [Done::Consumed(false)]));
    }

    /// Failed attempts count up to maxfail, the one that reaches it says so, and past it the
    /// failcount stays while the attempts are still counted.
    #[test]
    fn failures_count_up_to_maxfail_and_no_further() {
        let conn = migrated_memory();
        conn.execute(
            "INSERT INTO token (serial, tokentype, created, maxfail) VALUES ('T1', 'hotp', 0, 2)",
            [],
        )
        .unwrap();
        let id = conn.last_insert_rowid();
        let outcomes: Vec<(i64, bool)> = (0..3)
            .map(|_| {
                let o = failure(&conn, id, true, "2026-12-04T10:00+0000").unwrap();
                assert_eq!(o.maxfail, 2);
                (o.failcount, o.reached_max)
            })
            .collect();
        assert_eq!(outcomes, [(1, false), (2, true), (2, false)]);
        let (count_auth, exceeded): (i64, Option<String>) = conn
            .query_row(
                "SELECT count_auth, failcounter_exceeded FROM token WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(count_auth, 3);
        assert_eq!(exceeded.as_deref(), Some("2026-12-04T10:00+0000"));
        assert!(matches!(
            failure(&conn, id + 1, true, "x"),
            Err(StoreError::Corrupt(_))
        ));
    }

    /// A writer on `path` whose commit watch opens `health` after 200 ms.
    fn watched_writer(path: &Path, health: &Arc<Health>) -> GroupWriter {
        let restart = Arc::new(WalRestart::default());
        start_writer(
            path,
            restart,
            Arc::clone(health),
            Duration::from_millis(200),
        )
        .unwrap()
    }

    /// Another connection holds the write lock: the login waiting for the commit is refused
    /// once the commit has waited `commit_timeout`, later ones at once, and the commit goes on
    /// and completes when the lock is released, which closes the breaker.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_waiting_for_a_lock_opens_the_breaker_until_it_completes() {
        let (_dir, path, admin, id) = file_with_a_token();
        let health = Arc::new(Health::default());
        let writer = watched_writer(&path, &health);
        let job = |new_count| ConsumeJob {
            id,
            new_count: Some(new_count),
            time_shift: None,
            count_auth: true,
            last_auth: "2026-12-04 10:00:00".into(),
        };
        admin.execute_batch("BEGIN IMMEDIATE").unwrap();
        let started = std::time::Instant::now();
        let refused = writer.consume(job(5)).await.unwrap_err();
        assert!(refused.is_unavailable(), "{refused}");
        // this process holds it, through another connection: no other process to name
        assert!(
            refused
                .to_string()
                .contains("(another connection holds the database's write lock)"),
            "{refused}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(health.is_stalled());
        let refused = writer.consume(job(6)).await.unwrap_err();
        assert!(refused.is_unavailable(), "{refused}");
        admin.execute_batch("ROLLBACK").unwrap();
        until("a commit completes", || !health.is_down()).await;
        assert_eq!(
            otp_counter(&admin, id),
            5,
            "the stalled commit was stored, the refused one not"
        );
        assert!(writer.consume(job(7)).await.unwrap());
    }

    /// A schema change that outlasts `commit_timeout` is a stall too (the logins behind it
    /// wait), and its reason says what holds the commit; its own answer is the build's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_schema_change_is_a_stall_that_names_it() {
        // one statement of about 1.5 s, as an index build over a big audit table; sized on
        // this machine, so that a faster one does not finish before the 200 ms limit
        let count = |rows: u64| {
            format!(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                 WHERE x < {rows}) SELECT COUNT(*) FROM c"
            )
        };
        let started = std::time::Instant::now();
        Connection::open_in_memory()
            .unwrap()
            .query_row(&count(1_000_000), [], |r| r.get::<_, i64>(0))
            .unwrap();
        let per_million = started.elapsed().as_secs_f64().max(1e-3);
        let rows = (1.5 / per_million * 1e6) as u64;
        let slow: &'static str = format!("CREATE TABLE slow AS {}", count(rows)).leak();
        let (_dir, path, _admin, id) = file_with_a_token();
        let health = Arc::new(Health::default());
        let writer = watched_writer(&path, &health);
        let build = tokio::spawn({
            let writer = writer.clone();
            async move { writer.schema(slow).await }
        });
        until("the build opens the breaker", || health.is_stalled()).await;
        let refused = writer
            .consume(ConsumeJob {
                id,
                new_count: Some(1),
                time_shift: None,
                count_auth: true,
                last_auth: "2026-12-04 10:00:00".into(),
            })
            .await
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("(an index is being built or dropped)"),
            "{refused}"
        );
        build.await.unwrap().unwrap();
        until("the build's commit closes the breaker", || {
            !health.is_down()
        })
        .await;
    }

    /// A stall whose commit ended without completing (it waited out the lock) leaves no
    /// commit to close the breaker: the watch commits a probe row of its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stall_without_a_commit_in_flight_is_closed_by_a_probe() {
        let (_dir, path, admin) = migrated_file();
        let health = Arc::new(Health::default());
        let _writer = watched_writer(&path, &health);
        health.stall_because(Duration::from_millis(200), std::time::Instant::now(), "");
        assert!(health.is_stalled());
        until("the probe's commit closes the breaker", || {
            !health.is_down()
        })
        .await;
        let probes: i64 = admin
            .query_row("SELECT COUNT(*) FROM commit_probe", [], |r| r.get(0))
            .unwrap();
        assert_eq!(probes, 1);
    }
}
