//! The PostgreSQL probe behind the breaker (`store::diagnostics::health`): asks the server
//! whether it answers when a batch found it unreachable, and while commits stall writes until
//! one completes.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgConnection, PgPool};

use crate::clock::{Clock, SystemClock};
use crate::store::StoreError;
use crate::store::diagnostics::health::{Health, PROBE_INTERVAL, PROBE_TIMEOUT, probe_key, within};

/// Ask the database whenever a batch found it unreachable, and every [`PROBE_INTERVAL`] while
/// the breaker is open; after a stalled commit, write until a commit completes. Runs as long as
/// the store.
pub(in crate::store) async fn run(pool: PgPool, health: Arc<Health>) {
    let key = probe_key();
    loop {
        if !health.is_stalled() {
            health.trouble().await;
        }
        if pool.is_closed() {
            return;
        }
        if health.is_stalled() {
            match commit_completes(&pool, &key).await {
                Ok(()) => {
                    health.committed();
                    continue;
                }
                // refused, not stalled (a standby promoted under us is read-only): commits
                // fail on their own then, and say why
                Err(e) if !e.is_unavailable() => {
                    tracing::warn!(target: "otpgate::store", error = %e, "commit probe refused");
                    health.committed();
                    continue;
                }
                // gone altogether: find out below
                Err(_) => {}
            }
        }
        loop {
            if pool.is_closed() {
                return;
            }
            match ask(&pool).await {
                Err(e) if e.is_unavailable() => {
                    health.unreachable(e.unavailable_reason());
                    tokio::time::sleep(PROBE_INTERVAL).await;
                }
                _ => {
                    health.answered();
                    break;
                }
            }
        }
    }
}

/// A `SELECT 1` that may take [`PROBE_TIMEOUT`].
async fn ask(pool: &PgPool) -> Result<(), StoreError> {
    within(PROBE_TIMEOUT, sqlx::query("SELECT 1").execute(pool)).await?;
    Ok(())
}

/// How often a probe write that waits checks that it is still waiting on the database.
const STALL_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Wait for [`probe_commit`] for as long as commits stall. Every [`STALL_CHECK_INTERVAL`] the
/// database is asked, on another connection, whether the write's server process is still at
/// work: a process that waits for a standby is. One that is gone or idle means the write's
/// connection died without a word (a primary powered off under a floating address; a link
/// that drops packets), and the write is given up (`Err`) so that the caller starts another.
/// A write is never given up while it waits, since each one given up would leave a server
/// process waiting for the standby.
async fn commit_completes(pool: &PgPool, key: &str) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    // a connection given up may hang; it is not handed out again
    conn.close_on_drop();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await?;
    let write = probe_commit(&mut conn, key);
    tokio::pin!(write);
    loop {
        tokio::select! {
            done = &mut write => return done,
            () = tokio::time::sleep(STALL_CHECK_INTERVAL) => match at_work(pool, pid).await {
                Ok(false) => {
                    return Err(StoreError::Unavailable(
                        "the commit probe's connection stopped answering".into(),
                    ));
                }
                Err(e) if e.is_unavailable() => return Err(e),
                // at work, or the database cannot say: go on waiting
                _ => {}
            },
        }
    }
}

/// Whether the server process `pid` is running a statement, asked within [`PROBE_TIMEOUT`].
async fn at_work(pool: &PgPool, pid: i32) -> Result<bool, StoreError> {
    let query = sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'",
    )
    .bind(pid)
    .fetch_one(pool);
    Ok(within(PROBE_TIMEOUT, query).await? > 0)
}

/// A write that must wait for whatever commits wait for (a synchronous standby): the smallest
/// that PostgreSQL writes to its WAL. No time limit: it completes when commits do.
async fn probe_commit(conn: &mut PgConnection, key: &str) -> Result<(), StoreError> {
    super::writer::write_probe_row(conn, key, SystemClock.now().timestamp()).await
}
