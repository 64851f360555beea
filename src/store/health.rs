//! Whether PostgreSQL answers: a breaker in front of the hot path's queries.
//!
//! When the database goes away (a restart, a Patroni failover, a cut link), every query waits
//! the pool's `connect_timeout` before it fails, and a login makes several (the request ledger,
//! the token lookup, the consumption): a NAS gave up long before its Access-Reject left, and
//! every retransmit waited again. So the first failure that says "unreachable" opens the
//! breaker: from then on the hot path's batches fail at once with
//! [`StoreError::Unavailable`], and [`probe`] tries the database every [`PROBE_INTERVAL`]
//! (a request never waits for a probe: the writer and the ledger take their batches one after
//! another, and a probe among them held up every login behind it). The first answer from the
//! database closes the breaker. Each change is one log line and the gauge `otpgate_store_up`,
//! not a line per request.
//!
//! Only reachability opens it: a query the database refused (a constraint, a bad value) shows
//! that it answers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use tokio::sync::Notify;

use super::StoreError;

/// How often [`probe`] tries a database that is down.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(crate) struct Health {
    down: Mutex<Option<Down>>,
    /// Wakes [`probe`] when the breaker opens.
    went_down: Notify,
}

#[derive(Debug)]
struct Down {
    since: Instant,
    reason: String,
}

impl Health {
    /// Whether a batch may go to the database now: `Err` while it is known to be unreachable.
    pub(crate) fn admit(&self) -> Result<(), StoreError> {
        match self.down.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            None => Ok(()),
            Some(d) => Err(StoreError::Unavailable(d.reason.clone())),
        }
    }

    /// What a batch that was admitted came to.
    pub(crate) fn outcome<T>(&self, result: &Result<T, StoreError>) {
        self.outcome_at(result.as_ref().err(), Instant::now());
    }

    fn outcome_at(&self, error: Option<&StoreError>, now: Instant) {
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        match (error.filter(|e| e.is_unavailable()), down.as_mut()) {
            (None, None) => {}
            (None, Some(d)) => {
                tracing::warn!(
                    target: "otpgate::store",
                    down_for_s = format!("{:.1}", now.saturating_duration_since(d.since).as_secs_f64()),
                    "the database answers again; logins go on"
                );
                *down = None;
                metrics::gauge!("otpgate_store_up").set(1.0);
            }
            (Some(e), None) => {
                let reason = e.unavailable_reason();
                tracing::error!(
                    target: "otpgate::store",
                    error = %reason,
                    retry_every_s = PROBE_INTERVAL.as_secs(),
                    "the database is unreachable; logins fail at once until it answers again"
                );
                *down = Some(Down { since: now, reason });
                metrics::gauge!("otpgate_store_up").set(0.0);
                self.went_down.notify_one();
            }
            (Some(e), Some(d)) => d.reason = e.unavailable_reason(),
        }
    }

    /// Whether the breaker is open.
    pub(crate) fn is_down(&self) -> bool {
        self.down
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
}

/// Try the database every [`PROBE_INTERVAL`] while the breaker is open; runs as long as the
/// store.
pub(crate) async fn probe(pool: AnyPool, health: Arc<Health>) {
    loop {
        health.went_down.notified().await;
        while health.is_down() {
            tokio::time::sleep(PROBE_INTERVAL).await;
            if pool.is_closed() {
                return;
            }
            let result = sqlx::query("SELECT 1").execute(&pool).await;
            health.outcome(&result.map_err(StoreError::from));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable() -> StoreError {
        StoreError::Db(sqlx::Error::PoolTimedOut)
    }

    #[test]
    fn unreachable_opens_and_an_answer_closes() {
        let h = Health::default();
        let t = Instant::now();
        assert!(h.admit().is_ok());
        h.outcome_at(Some(&unreachable()), t);
        assert!(h.is_down());
        let refused = h.admit().unwrap_err();
        assert!(refused.is_unavailable());
        assert!(refused.to_string().contains("pool timed out"), "{refused}");
        h.outcome_at(Some(&unreachable()), t + PROBE_INTERVAL);
        assert!(h.admit().is_err());
        h.outcome_at(None, t + PROBE_INTERVAL * 2);
        assert!(!h.is_down());
        assert!(h.admit().is_ok());
    }

    #[test]
    fn an_answer_the_database_refused_closes_it() {
        let h = Health::default();
        let t = Instant::now();
        h.outcome_at(Some(&unreachable()), t);
        h.outcome_at(Some(&StoreError::DuplicateSerial("S1".into())), t);
        assert!(!h.is_down());
        h.outcome_at(
            Some(&StoreError::Relayed("database error: disk full".into())),
            t,
        );
        assert!(!h.is_down());
    }
}
