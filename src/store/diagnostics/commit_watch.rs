//! The SQLite writer's commit watch: a group commit that has not come back after `[database]
//! commit_timeout` opens the breaker as stalled (`store::diagnostics::health`), as on PostgreSQL.
//!
//! A SQLite commit waits for two things only: the write lock, which another process may hold
//! (an admin's `sqlite3` shell left in a transaction, a backup tool), and the disk's fsync (a
//! network volume that hangs). Without the watch every login waited for the commit, up to the
//! writer's lock patience, and the NAS gave up first. With it the logins waiting for the
//! commit are refused after `commit_timeout` (or get no answer, `when_store_unavailable =
//! "no_reply"`, so the NAS fails over), later ones at once, while the commit itself goes on:
//! its answer says what was stored. A completed commit closes the breaker.
//!
//! PostgreSQL's writer is a task that watches its own commits ([`Health::watch_commit`]).
//! SQLite's is a thread blocked in the commit, so it only marks when a commit starts and ends
//! ([`CommitClock`]) and [`watch`] looks from a task. If the stalled commit fails instead (it
//! waited out the lock patience), nothing else may commit soon: logins are refused before
//! they reach the writer. So while the breaker says stalled and no commit runs, the watch
//! commits a row of its own in `commit_probe` every [`PROBE_INTERVAL`], through the writer.
//!
//! The answers and the log line say which of the two it is: the writer's busy handler marks the
//! clock while it waits for the lock, and then the process holding it is named from `/proc/locks`
//! (`store::diagnostics::lock_holder`); otherwise the commit is in the disk's hands, or builds an
//! index (`store::login_index`), which takes as long as the audit table is big.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::health::{Health, PROBE_INTERVAL, probe_key};
use super::lock_holder;
use crate::store::StoreError;

/// The writer a watch looks after.
pub(in crate::store) trait Watched: Send + 'static {
    /// Whether the writer still runs (it ends with the store).
    fn running(&self) -> bool;

    /// Commit this process's `commit_probe` row (`key`) through the writer; `None` when the
    /// writer has stopped.
    fn probe(&self, key: &str) -> impl Future<Output = Option<Result<(), StoreError>>> + Send;
}

/// When the writer's current commit started; written by the writer thread, read by [`watch`].
#[derive(Debug)]
pub(in crate::store) struct CommitClock {
    base: Instant,
    /// Nanoseconds from `base` to the start of the commit in flight; 0: none.
    since_ns: AtomicU64,
    /// Nanoseconds from `base` to the last time the writer's busy handler waited for the
    /// write lock; 0: never.
    lock_wait_ns: AtomicU64,
    /// The commit in flight changes the schema (builds or drops `audit_user`).
    schema_change: AtomicBool,
}

impl Default for CommitClock {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            since_ns: AtomicU64::new(0),
            lock_wait_ns: AtomicU64::new(0),
            schema_change: AtomicBool::new(false),
        }
    }
}

/// A busy handler waits at most 10 ms between its calls: one seen within this time is still
/// waiting.
const LOCK_WAIT_SEEN_WITHIN: Duration = Duration::from_millis(100);

impl CommitClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// A commit starts; `schema_change`: it builds or drops an index, which takes as long as
    /// the table is big.
    pub(in crate::store) fn started(&self, schema_change: bool) {
        self.schema_change.store(schema_change, Ordering::Release);
        self.since_ns.store(self.now_ns(), Ordering::Release);
    }

    /// The writer waits for the write lock (called from its busy handler).
    pub(in crate::store) fn waiting_for_lock(&self) {
        self.lock_wait_ns.store(self.now_ns(), Ordering::Release);
    }

    /// Whether the commit in flight at `now` is waiting for the write lock.
    fn waits_for_lock(&self, now: Instant) -> bool {
        let (since, wait) = (
            self.since_ns.load(Ordering::Acquire),
            self.lock_wait_ns.load(Ordering::Acquire),
        );
        since != 0
            && wait >= since
            && now.saturating_duration_since(self.base + Duration::from_nanos(wait))
                <= LOCK_WAIT_SEEN_WITHIN
    }

    pub(in crate::store) fn ended(&self) {
        self.since_ns.store(0, Ordering::Release);
    }

    /// How long the commit in flight at `now` has run.
    fn running_for(&self, now: Instant) -> Option<Duration> {
        match self.since_ns.load(Ordering::Acquire) {
            0 => None,
            ns => Some(now.saturating_duration_since(self.base + Duration::from_nanos(ns))),
        }
    }
}

/// How often the watch looks: a quarter of the limit, within 50–250 ms. A stall is seen at
/// most one look late, and a look costs nothing the logins would notice.
fn look_every(limit: Duration) -> Duration {
    (limit / 4).clamp(Duration::from_millis(50), Duration::from_millis(250))
}

/// What holds the commit in flight at `now`, for the breaker's reason.
fn stall_cause(clock: &CommitClock, db: &std::path::Path, now: Instant) -> String {
    if !clock.waits_for_lock(now) {
        if clock.schema_change.load(Ordering::Acquire) {
            return "an index is being built or dropped".into();
        }
        return "the disk does not finish a write".into();
    }
    match lock_holder::holder(db) {
        Some(holder) => holder.holds_the_write_lock(),
        None => "another connection holds the database's write lock".into(),
    }
}

/// Watch the commits `clock` reports on the database at `db`, for as long as `writer` runs.
pub(in crate::store) async fn watch(
    clock: Arc<CommitClock>,
    db: PathBuf,
    health: Arc<Health>,
    writer: impl Watched,
    limit: Duration,
) {
    let key = probe_key();
    let mut looks = tokio::time::interval(look_every(limit));
    looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_probe: Option<Instant> = None;
    loop {
        looks.tick().await;
        let now = Instant::now();
        match clock.running_for(now) {
            Some(running) if running >= limit && !health.is_down() => {
                health.stall_because(limit, now, &stall_cause(&clock, &db, now));
            }
            Some(_) => {}
            None if health.is_stalled()
                && last_probe.is_none_or(|at| now.duration_since(at) >= PROBE_INTERVAL) =>
            {
                last_probe = Some(now);
                // its outcome reaches the breaker through the writer (`Batch::settle`)
                match writer.probe(&key).await {
                    None => return,
                    Some(Err(e)) => {
                        tracing::debug!(target: "otpgate::store", error = %e, "commit probe failed");
                    }
                    Some(Ok(())) => {}
                }
            }
            None => {}
        }
        if !writer.running() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_reports_only_a_commit_in_flight() {
        let clock = CommitClock::default();
        assert_eq!(clock.running_for(Instant::now()), None);
        clock.started(false);
        std::thread::sleep(Duration::from_millis(20));
        let running = clock.running_for(Instant::now()).unwrap();
        assert!(running >= Duration::from_millis(20), "{running:?}");
        clock.ended();
        assert_eq!(clock.running_for(Instant::now()), None);
    }

    #[test]
    fn a_lock_wait_counts_only_while_recent_and_within_the_commit() {
        let clock = CommitClock::default();
        clock.waiting_for_lock();
        clock.started(false);
        assert!(
            !clock.waits_for_lock(Instant::now()),
            "a wait before the commit"
        );
        clock.waiting_for_lock();
        assert!(clock.waits_for_lock(Instant::now()));
        assert!(
            !clock.waits_for_lock(Instant::now() + LOCK_WAIT_SEEN_WITHIN * 2),
            "the lock came, and the commit went on"
        );
        clock.ended();
        assert!(!clock.waits_for_lock(Instant::now()));
    }

    #[test]
    fn the_cause_is_the_disk_unless_the_writer_waits_for_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("otpgate.db");
        let clock = CommitClock::default();
        clock.started(false);
        assert_eq!(
            stall_cause(&clock, &db, Instant::now()),
            "the disk does not finish a write"
        );
        clock.waiting_for_lock();
        assert_eq!(
            stall_cause(&clock, &db, Instant::now()),
            "another connection holds the database's write lock"
        );
        clock.started(true);
        assert_eq!(
            stall_cause(&clock, &db, Instant::now()),
            "an index is being built or dropped"
        );
    }

    #[test]
    fn looks_are_between_50_and_250_ms() {
        assert_eq!(
            look_every(Duration::from_secs(5)),
            Duration::from_millis(250)
        );
        assert_eq!(
            look_every(Duration::from_millis(400)),
            Duration::from_millis(100)
        );
        assert_eq!(
            look_every(Duration::from_millis(10)),
            Duration::from_millis(50)
        );
    }
}
