//! Whether PostgreSQL answers: a breaker in front of the hot path's queries.
//!
//! When the database goes away (a restart, a Patroni failover, a cut link), every query waits
//! the pool's `connect_timeout` before it fails, and a login makes several (the request ledger,
//! the token lookup, the consumption): a NAS gave up long before its Access-Reject left, and
//! every retransmit waited again.
//!
//! So a failure that says "unreachable" (a broken connection, no connection in time) makes
//! [`probe`] ask the database at once, with a fresh `SELECT 1` that may take [`PROBE_TIMEOUT`].
//! One connection that broke (a backend terminated, a firewall's reset) passes the probe and
//! changes nothing. A probe that fails opens the breaker: the lookups and ledger claims still
//! waiting for a connection give up, and from then on the hot path's batches fail at once with
//! [`StoreError::Unavailable`] while the probe asks again every [`PROBE_INTERVAL`]. Its first
//! answer closes the breaker. A request never waits for a probe. Each change is one log line,
//! not a line per request; `/metrics` reads the state as `otpgate_store_up`.
//!
//! Only reachability counts: a query the database refused (a constraint, a bad value) shows
//! that it answers.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use tokio::sync::Notify;

use super::StoreError;

/// How often [`probe`] asks a database that is down.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// How long a probe's `SELECT 1` may take before the database counts as unreachable.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a failed group commit keeps `/healthz` at 503 without a commit after it.
pub(crate) const REFUSAL_SHOWN: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(crate) struct Health {
    down: Mutex<Option<Down>>,
    /// `down.is_some()`, read without the lock: the audit queue asks on every login.
    is_down: AtomicBool,
    /// The last group commit failed although the database answers (a full disk): when, and
    /// why. Cleared by the next commit that succeeds.
    refused_write: Mutex<Option<(Instant, String)>>,
    /// Wakes [`probe`]: a batch saw an unreachable database.
    suspect: Notify,
    /// Wakes the batches waiting in [`Health::unless_down`] when the breaker opens.
    opened: Notify,
}

#[derive(Debug)]
struct Down {
    since: Instant,
    reason: String,
}

impl Health {
    /// Whether a batch may go to the database now: `Err` while it is known to be unreachable.
    pub(crate) fn admit(&self) -> Result<(), StoreError> {
        if !self.is_down() {
            return Ok(());
        }
        match self.lock().as_ref() {
            None => Ok(()),
            Some(d) => Err(StoreError::Unavailable(d.reason.clone())),
        }
    }

    /// What an admitted batch came to. An unreachable database wakes the probe.
    pub(crate) fn outcome<T>(&self, result: &Result<T, StoreError>) {
        match result {
            Err(e) if e.is_unavailable() => {
                if let Some(d) = self.lock().as_mut() {
                    d.reason = e.unavailable_reason();
                } else {
                    self.suspect.notify_one();
                }
            }
            // it answered
            _ => self.close_at(Instant::now()),
        }
    }

    /// `work`, unless the breaker opens first: then it is dropped and the batch fails at once
    /// instead of waiting out `connect_timeout`. Only for reads and claims, which may be
    /// dropped half-way (a commit may not: its answer says what was stored).
    pub(crate) async fn unless_down<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let opened = self.opened.notified();
        tokio::pin!(opened);
        opened.as_mut().enable();
        self.admit()?;
        tokio::select! {
            result = work => result,
            () = opened => Err(self.admit().err().unwrap_or_else(|| {
                StoreError::Unavailable("the database became unreachable".into())
            })),
        }
    }

    /// Whether the breaker is open.
    pub(crate) fn is_down(&self) -> bool {
        self.is_down.load(Ordering::Acquire)
    }

    /// What a group commit came to. A reachable database that refuses the commit (a full disk,
    /// a read-only file) cannot accept a login either: [`Health::refusing_writes`] says so.
    pub(crate) fn commit_outcome<T>(&self, result: &Result<T, StoreError>) {
        let mut refused = self.refused_write.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(_) => *refused = None,
            Err(e) if !e.is_unavailable() => *refused = Some((Instant::now(), e.to_string())),
            Err(_) => {}
        }
    }

    /// Why commits fail, when the last one failed less than [`REFUSAL_SHOWN`] ago. With no
    /// login coming the next commit may be far off; the refusal is not shown for ever then.
    pub(crate) fn refusing_writes(&self) -> Option<String> {
        let refused = self.refused_write.lock().unwrap_or_else(|p| p.into_inner());
        refused
            .as_ref()
            .filter(|(at, _)| at.elapsed() < REFUSAL_SHOWN)
            .map(|(_, why)| why.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Down>> {
        self.down.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open_at(&self, reason: String, now: Instant) {
        let mut down = self.lock();
        match down.as_mut() {
            Some(d) => d.reason = reason,
            None => {
                tracing::error!(
                    target: "otpgate::store",
                    error = %reason,
                    retry_every_s = PROBE_INTERVAL.as_secs(),
                    "the database is unreachable; logins fail at once until it answers again"
                );
                *down = Some(Down { since: now, reason });
                self.is_down.store(true, Ordering::Release);
                self.opened.notify_waiters();
            }
        }
    }

    fn close_at(&self, now: Instant) {
        if !self.is_down() {
            return;
        }
        let mut down = self.lock();
        if let Some(d) = down.take() {
            self.is_down.store(false, Ordering::Release);
            tracing::warn!(
                target: "otpgate::store",
                down_for_s = format!("{:.1}", now.saturating_duration_since(d.since).as_secs_f64()),
                "the database answers again; logins go on"
            );
        }
    }
}

/// Ask the database whenever a batch found it unreachable, and every [`PROBE_INTERVAL`] while
/// the breaker is open; runs as long as the store.
pub(crate) async fn probe(pool: AnyPool, health: Arc<Health>) {
    loop {
        health.suspect.notified().await;
        loop {
            if pool.is_closed() {
                return;
            }
            let answer =
                tokio::time::timeout(PROBE_TIMEOUT, sqlx::query("SELECT 1").execute(&pool))
                    .await
                    .map_err(|_| {
                        StoreError::Unavailable(format!(
                            "no answer within {} s",
                            PROBE_TIMEOUT.as_secs()
                        ))
                    })
                    .and_then(|r| r.map_err(StoreError::from));
            match answer {
                Err(e) if e.is_unavailable() => {
                    health.open_at(e.unavailable_reason(), Instant::now());
                    tokio::time::sleep(PROBE_INTERVAL).await;
                }
                _ => {
                    health.close_at(Instant::now());
                    break;
                }
            }
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
    fn a_failed_probe_opens_and_an_answer_closes() {
        let h = Health::default();
        let t = Instant::now();
        // a batch's failure alone does not open it: the probe decides
        h.outcome(&Err::<(), _>(unreachable()));
        assert!(h.admit().is_ok());
        h.open_at("no answer within 1 s".into(), t);
        let refused = h.admit().unwrap_err();
        assert!(refused.is_unavailable());
        assert!(refused.to_string().contains("no answer"), "{refused}");
        // later failures keep it open and give the newest reason
        h.outcome(&Err::<(), _>(unreachable()));
        assert!(
            h.admit()
                .unwrap_err()
                .to_string()
                .contains("pool timed out")
        );
        h.close_at(t + PROBE_INTERVAL);
        assert!(h.admit().is_ok());
    }

    #[test]
    fn an_answer_the_database_refused_closes_it() {
        let h = Health::default();
        let t = Instant::now();
        h.open_at("gone".into(), t);
        h.outcome(&Err::<(), _>(StoreError::DuplicateSerial("S1".into())));
        assert!(!h.is_down());
        h.open_at("gone".into(), t);
        h.outcome(&Err::<(), _>(StoreError::Relayed(
            "database error: disk full".into(),
        )));
        assert!(!h.is_down());
    }

    /// A commit the database refused shows until one succeeds; an unreachable database is the
    /// breaker's business, not this.
    #[test]
    fn a_refused_commit_shows_until_one_succeeds() {
        let h = Health::default();
        assert_eq!(h.refusing_writes(), None);
        h.commit_outcome(&Err::<(), _>(StoreError::Relayed(
            "database error: database or disk is full".into(),
        )));
        assert!(h.refusing_writes().unwrap().contains("disk is full"));
        h.commit_outcome(&Ok(()));
        assert_eq!(h.refusing_writes(), None);
        h.commit_outcome(&Err::<(), _>(unreachable()));
        assert_eq!(h.refusing_writes(), None);
    }

    /// A lookup waiting for a connection gives up when the breaker opens.
    #[tokio::test]
    async fn waiting_work_ends_when_it_opens() {
        let h = Arc::new(Health::default());
        let waiting = {
            let h = Arc::clone(&h);
            tokio::spawn(async move {
                h.unless_down(std::future::pending::<Result<(), StoreError>>())
                    .await
            })
        };
        tokio::task::yield_now().await;
        h.open_at("gone".into(), Instant::now());
        let result = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("still waiting after the breaker opened")
            .unwrap();
        assert!(result.unwrap_err().is_unavailable());
        // and work that comes later is refused before it starts
        assert!(h.unless_down(async { Ok(()) }).await.is_err());
    }
}
