//! Event counter increments nobody waits for (the `Counter` handler's `increase_counter`):
//! summed in memory and written by the next commit the group writer makes anyway.
//!
//! A login's own writes are committed before its reply leaves; its counter increment happens
//! after that, in the post-event phase. Waiting for a commit of its own cost every matching
//! login a second fsync, and queueing it as a writer job of its own split the group commit in
//! two: the increments of one batch made the next, small commit. So the increments wait here,
//! summed per (counter, node), and every commit takes what has gathered. When no other write
//! comes along, `jobs::commit_lazily` makes a commit for them after [`LAZY_COMMIT`].
//!
//! Reads of counters first flush (`GroupWriter::flush`) while any increment is unsettled, so
//! a read sees every increment added before it. An increment is lost only with its commit
//! (a crash within milliseconds of the login, or a database that refuses the write), and then
//! the log says so.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use super::StoreError;

/// How long increments wait for another write to take them along.
const LAZY_COMMIT: Duration = Duration::from_millis(5);

#[derive(Debug, Default)]
pub(crate) struct QueuedCounters {
    /// What no commit has taken yet.
    gathered: Mutex<Taken>,
    /// Increments added and not yet committed (or lost): taken ones count until their commit
    /// ends, so a read cannot slip in between the take and the commit.
    unsettled: AtomicUsize,
    /// The first increment after a take wakes [`QueuedCounters::left_behind`].
    nudge: Notify,
}

/// Increments summed per (counter, node), and how many they were.
#[derive(Debug, Default)]
pub(super) struct Taken {
    pub(super) totals: Vec<(String, String, i64)>,
    increments: usize,
}

impl QueuedCounters {
    pub(super) fn add(&self, name: &str, node: &str, delta: i64) {
        let first = {
            let mut g = self.gathered.lock().unwrap_or_else(PoisonError::into_inner);
            match g.totals.iter_mut().find(|(n, o, _)| n == name && o == node) {
                Some(t) => t.2 += delta,
                None => g.totals.push((name.to_owned(), node.to_owned(), delta)),
            }
            g.increments += 1;
            self.unsettled.fetch_add(1, Ordering::AcqRel);
            g.increments == 1
        };
        if first {
            self.nudge.notify_one();
        }
    }

    /// Everything gathered so far, for the commit about to start.
    pub(super) fn take(&self) -> Taken {
        std::mem::take(&mut *self.gathered.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Until the first increment after a take, then [`LAZY_COMMIT`] more; whether any
    /// increment is still gathered by then (no other write took it along).
    pub(super) async fn left_behind(&self) -> bool {
        self.nudge.notified().await;
        tokio::time::sleep(LAZY_COMMIT).await;
        self.gathered_any()
    }

    fn gathered_any(&self) -> bool {
        self.gathered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .increments
            > 0
    }

    /// The commit that took `taken` ended (`failed`: with this error).
    pub(super) fn settle(&self, taken: Taken, failed: Option<&StoreError>) {
        if taken.increments == 0 {
            return;
        }
        if let Some(e) = failed {
            for (name, _, delta) in &taken.totals {
                tracing::error!(target: "otpgate::store", counter = %name, delta, error = %e, "event counter increment lost");
            }
            metrics::counter!("otpgate_event_counter_lost_total")
                .increment(taken.totals.len() as u64);
        }
        self.unsettled.fetch_sub(taken.increments, Ordering::AcqRel);
    }

    /// Whether an increment is waiting for or riding in a commit.
    pub(super) fn unsettled(&self) -> bool {
        self.unsettled.load(Ordering::Acquire) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_sum_per_counter_and_settle_with_their_commit() {
        let q = QueuedCounters::default();
        q.add("a", "n1", 1);
        q.add("b", "n1", 1);
        q.add("a", "n1", 2);
        assert!(q.unsettled());
        let taken = q.take();
        assert_eq!(
            taken.totals,
            vec![("a".into(), "n1".into(), 3), ("b".into(), "n1".into(), 1)]
        );
        // taken but not committed yet: a read must still wait
        assert!(q.unsettled());
        q.add("a", "n1", 1);
        q.settle(taken, None);
        assert!(
            q.unsettled(),
            "the increment added after the take is still open"
        );
        let rest = q.take();
        assert_eq!(rest.totals, vec![("a".into(), "n1".into(), 1)]);
        q.settle(rest, Some(&StoreError::Corrupt("disk full".into())));
        assert!(!q.unsettled());
        assert!(q.take().totals.is_empty());
    }
}
