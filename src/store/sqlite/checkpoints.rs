//! SQLite WAL checkpoints: keep the write-ahead log small without making a commit wait.
//!
//! No connection checkpoints on its own (`wal_autocheckpoint = 0`): the commit that crossed
//! the limit held up every login of its batch for tens of milliseconds. Instead a background
//! task copies the WAL into the database file every [`INTERVAL`] with a PASSIVE checkpoint,
//! which never blocks the writer or the readers.
//!
//! A passive checkpoint under constant load never catches up with the writer, and SQLite starts the
//! WAL over only at a write that finds every frame copied. Under load the WAL then grew by the
//! whole write volume — about 5 KB per login, a full disk in a long morning rush. So when the WAL
//! holds more than [`RESTART_FRAMES`] after a passive pass, the task asks the group writer to
//! finish the job: between two batches the writer runs a passive checkpoint of its own, which
//! copies the few frames written since (no write can come in between, the writer is the only one),
//! and its next transaction starts the WAL over. `journal_size_limit` then trims a WAL file that
//! grew past `connection::WAL_FILE_LIMIT`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::admin::Pool;

/// How often the background task copies the WAL into the database file.
pub(in crate::store) const INTERVAL: Duration = Duration::from_millis(250);

/// WAL frames (pages, 4 KiB each by default) above which the writer is asked to let the WAL
/// start over: 64 MiB.
pub(in crate::store) const RESTART_FRAMES: i64 = 16384;

/// Shared between the background task and the group writer.
#[derive(Debug, Default)]
pub(in crate::store) struct WalRestart {
    wanted: AtomicBool,
}

impl WalRestart {
    /// Called by the group writer between batches: whether to checkpoint now (once per ask).
    pub(in crate::store) fn take_request(&self) -> bool {
        self.wanted.load(Ordering::Relaxed) && self.wanted.swap(false, Ordering::AcqRel)
    }

    fn request(&self) {
        self.wanted.store(true, Ordering::Release);
    }
}

/// What `PRAGMA wal_checkpoint` reports.
#[derive(Debug)]
pub(in crate::store) struct Pass {
    /// Frames in the WAL.
    pub(in crate::store) log: i64,
    /// Frames copied into the database file.
    pub(in crate::store) copied: i64,
}

/// One passive checkpoint on `conn`.
pub(in crate::store) fn passive_on(conn: &rusqlite::Connection) -> rusqlite::Result<Pass> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(Pass {
            log: r.get(1)?,
            copied: r.get(2)?,
        })
    })
}

/// Record a checkpoint pass (`who`: "background" or "writer").
pub(in crate::store) fn record(who: &'static str, started: Instant, pass: &Pass) {
    metrics::histogram!("otpgate_store_checkpoint_seconds", "by" => who)
        .record(started.elapsed().as_secs_f64());
    metrics::gauge!("otpgate_store_wal_frames").set(pass.log as f64);
}

async fn passive(pool: &Pool) -> Option<Pass> {
    let started = Instant::now();
    let pass = pool.run(|conn| Ok(passive_on(conn)?));
    match pass.await {
        Ok(pass) => {
            record("background", started, &pass);
            Some(pass)
        }
        Err(e) => {
            tracing::debug!(target: "otpgate::store", error = %e, "WAL checkpoint failed");
            None
        }
    }
}

/// The background task (SQLite only). Ends when the pool is closed.
pub(in crate::store) async fn run(pool: Pool, restart: Arc<WalRestart>) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            break;
        }
        let Some(pass) = passive(&pool).await else {
            continue;
        };
        if pass.log > RESTART_FRAMES {
            // A second pass copies what the writer wrote during the first, so that what is
            // left for the writer (while logins wait) is only what came in during the second.
            if passive(&pool).await.is_some() {
                restart.request();
            }
        }
    }
}
