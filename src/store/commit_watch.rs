//! The SQLite writer's commit watch: a group commit that has not come back after
//! `[database] commit_timeout` opens the breaker as stalled (`store::health`), as on PostgreSQL.
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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::health::{Health, PROBE_INTERVAL, probe_key};
use super::writer::{self, Job};
use crate::clock::{Clock, SystemClock};

/// When the writer's current commit started; written by the writer thread, read by [`watch`].
#[derive(Debug)]
pub(super) struct CommitClock {
    base: Instant,
    /// Nanoseconds from `base` to the start of the commit in flight; 0: none.
    since_ns: AtomicU64,
}

impl Default for CommitClock {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            since_ns: AtomicU64::new(0),
        }
    }
}

impl CommitClock {
    pub(super) fn started(&self) {
        let ns = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.since_ns.store(ns.max(1), Ordering::Release);
    }

    pub(super) fn ended(&self) {
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

/// Watch the commits `clock` reports, for as long as the writer behind `queue` runs.
pub(super) async fn watch(
    clock: Arc<CommitClock>,
    health: Arc<Health>,
    queue: mpsc::WeakSender<Job>,
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
            Some(running) if running >= limit => health.stall_at(limit, now),
            Some(_) => {}
            None if health.is_stalled()
                && last_probe.is_none_or(|at| now.duration_since(at) >= PROBE_INTERVAL) =>
            {
                last_probe = Some(now);
                // the store is gone: so is the writer
                let Some(queue) = queue.upgrade() else { return };
                // its outcome reaches the breaker through the writer (`Batch::settle`)
                if let Err(e) = writer::probe(&queue, &key, SystemClock.now().timestamp()).await {
                    tracing::debug!(target: "otpgate::store", error = %e, "commit probe failed");
                }
            }
            None => {}
        }
        if queue.strong_count() == 0 {
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
        clock.started();
        std::thread::sleep(Duration::from_millis(20));
        let running = clock.running_for(Instant::now()).unwrap();
        assert!(running >= Duration::from_millis(20), "{running:?}");
        clock.ended();
        assert_eq!(clock.running_for(Instant::now()), None);
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
