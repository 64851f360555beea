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
//!
//! A database can also answer every query and still never finish a commit: a primary whose
//! synchronous standby is gone (`synchronous_standby_names`, Patroni's `synchronous_mode`)
//! makes every commit that wrote wait for it, without an error, for as long as it takes. A
//! group commit that has not come back after `[database] commit_timeout` opens the breaker as
//! *stalled* ([`Health::watch_commit`]): the logins waiting for a commit give up with
//! [`StoreError::Unavailable`] and later ones are refused at once, as above. The commit itself
//! is not given up while commits stall (its transaction may already be stored); a read's answer
//! does not close a stalled breaker, only a commit that completes does: the stalled one, or
//! [`probe`]'s own small write, which waits for as long as commits wait. A stalled commit that
//! is still pending once the database commits again never will be (its connection died): it is
//! given up then.
//!
//! A SQLite file is never unreachable, but its commits can stall too (another process's write lock,
//! a disk that hangs): there the writer is a thread, and `store::diagnostics::commit_watch` opens
//! and probes this breaker for it.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::clock::{Clock, SystemClock};
use crate::store::StoreError;

/// How often [`probe`] asks a database that is down.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// How long a probe's `SELECT 1` may take before the database counts as unreachable.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a stalled commit may still take once the database commits again (its own
/// standby's answer would have released it first): past that it is given up.
pub(crate) const ABANDON_GRACE: Duration = Duration::from_secs(1);

/// How long the logins of a stalled commit wait on for the answer to what it waits for.
pub(crate) const EXPLAIN_LIMIT: Duration = Duration::from_millis(500);

/// How long a failed group commit keeps `/healthz` at 503 without a commit after it.
pub(crate) const REFUSAL_SHOWN: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(crate) struct Health {
    /// How long a group commit may take before the breaker opens as stalled; `None`: for ever
    /// (SQLite, whose commits wait for the local disk only).
    commit_timeout: Option<Duration>,
    /// How long a read or a claim may wait for its answer before it is given up; `None`: for
    /// ever (SQLite). A connection whose peer went silent never answers, and the breaker stays
    /// closed while new connections get answers.
    answer_limit: Option<Duration>,
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
    /// Wakes [`probe`]: a commit has waited longer than `commit_timeout`.
    stalled: Notify,
    /// Wakes a commit watch in [`Health::watch_commit`] when the breaker closes.
    closed: Notify,
    /// What usually makes this backend's commits stall, for the log line and the answers.
    stall_cause: &'static str,
}

#[derive(Debug)]
struct Down {
    since: Instant,
    reason: String,
    trouble: Trouble,
}

/// Why the breaker is open, which decides what closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trouble {
    /// Queries find no database: any answer closes it.
    Unreachable,
    /// It answers, but commits do not complete: only a completed commit closes it.
    Stalled,
}

impl Health {
    /// A breaker that also opens when a commit takes longer than `commit_timeout`.
    pub(crate) fn with_commit_timeout(commit_timeout: Duration) -> Self {
        Self {
            commit_timeout: Some(commit_timeout),
            ..Self::default()
        }
    }

    /// What to suggest when commits stall (`"a synchronous standby missing?"`).
    pub(crate) fn with_stall_cause(self, cause: &'static str) -> Self {
        Self {
            stall_cause: cause,
            ..self
        }
    }

    /// Reads and claims ([`Health::guard`]) that have no answer after `limit` are given up.
    pub(crate) fn with_answer_limit(self, limit: Duration) -> Self {
        Self {
            answer_limit: Some(limit),
            ..self
        }
    }

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

    /// What an admitted batch came to. An unreachable database wakes the probe; an answer
    /// closes the breaker unless it is open because commits stall.
    pub(crate) fn outcome<T>(&self, result: &Result<T, StoreError>) {
        match result {
            Err(e) if e.is_unavailable() => match self.lock().as_mut() {
                Some(d) if d.trouble == Trouble::Unreachable => d.reason = e.unavailable_reason(),
                // not known to be unreachable yet: the probe finds out
                _ => self.suspect.notify_one(),
            },
            // it answered
            _ => self.close_at(Instant::now(), Trouble::Unreachable),
        }
    }

    /// `commit`, and if it has not completed after `commit_timeout` the breaker opens as
    /// stalled while it goes on waiting for it: its answer says what was stored.
    ///
    /// Until the database commits again. A commit that waits for a standby is released no
    /// later than the probe's write that closes the breaker; one still pending
    /// [`ABANDON_GRACE`] after that sits on a connection that died without a word (a primary
    /// powered off under a floating address: nothing ever answers) or waits for a lock that
    /// another transaction holds. It is given up with [`StoreError::Unavailable`], so that the
    /// writer goes on. That is safe whatever became of it: no login waits for it any more (the
    /// breaker sent them away), and an OTP is only accepted on a commit's answer.
    ///
    /// When the commit stalls, `explain` says what it waits for (`store::diagnostics::pg_waits`),
    /// within [`EXPLAIN_LIMIT`]; without an answer the reason is this backend's usual cause.
    pub(crate) async fn watch_commit<T, E>(
        &self,
        commit: impl Future<Output = Result<T, StoreError>>,
        explain: impl FnOnce() -> E,
    ) -> Result<T, StoreError>
    where
        E: Future<Output = Option<String>>,
    {
        let Some(limit) = self.commit_timeout else {
            return commit.await;
        };
        tokio::pin!(commit);
        tokio::select! {
            result = &mut commit => return result,
            () = tokio::time::sleep(limit) => {}
        }
        let explained = tokio::time::timeout(EXPLAIN_LIMIT, explain());
        tokio::pin!(explained);
        let cause = tokio::select! {
            result = &mut commit => return result,
            cause = &mut explained => cause.ok().flatten(),
        };
        self.stall_because(
            limit,
            Instant::now(),
            cause.as_deref().unwrap_or(self.stall_cause),
        );
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if !self.is_down() {
                break;
            }
            tokio::select! {
                result = &mut commit => return result,
                () = closed => {}
            }
        }
        match tokio::time::timeout(ABANDON_GRACE, &mut commit).await {
            Ok(result) => result,
            Err(_) => {
                metrics::counter!("otpgate_store_commits_given_up_total").increment(1);
                tracing::warn!(
                    target: "otpgate::store",
                    "a commit that waited since before the database committed again was given \
                     up (its connection died, or a lock holds it); the logins in it were refused"
                );
                Err(StoreError::Unavailable(
                    "the commit was given up after the database committed again without it".into(),
                ))
            }
        }
    }

    /// `work`, unless the breaker opens first: then it is dropped and the batch fails at once
    /// instead of waiting out `connect_timeout`. For reads and claims, which may be dropped
    /// half-way, and for a login's wait for its commit's answer; never around a commit itself
    /// (its answer says what was stored: [`Health::watch_commit`]).
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

    /// A read or a claim through the breaker: [`Health::unless_down`], given up after the
    /// answer limit, and what it came to counts ([`Health::outcome`]).
    pub(crate) async fn guard<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        // boxed once here, or the timeout and the select below would each hold a copy of the
        // query's future, and every future that may await a guarded query (an event phase,
        // and through it each login's) would carry all of them
        let work = Box::pin(work);
        let result = match self.answer_limit {
            None => self.unless_down(work).await,
            Some(limit) => within(limit, self.unless_down(work)).await,
        };
        self.outcome(&result);
        result
    }

    /// Whether the breaker is open.
    pub(crate) fn is_down(&self) -> bool {
        self.is_down.load(Ordering::Acquire)
    }

    /// Whether it is open because commits do not complete.
    pub(in crate::store) fn is_stalled(&self) -> bool {
        self.is_down() && self.lock().as_ref().map(|d| d.trouble) == Some(Trouble::Stalled)
    }

    /// What a group commit came to. A reachable database that refuses the commit (a full disk,
    /// a read-only file) cannot accept a login either: [`Health::refusing_writes`] says so.
    /// A completed commit also closes a stalled breaker.
    pub(crate) fn commit_outcome<T>(&self, result: &Result<T, StoreError>) {
        if result.is_ok() {
            self.close_at(Instant::now(), Trouble::Stalled);
        }
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

    /// Until a batch finds the database unreachable or a commit stalls (the probe's cue).
    pub(in crate::store) async fn trouble(&self) {
        tokio::select! {
            () = self.suspect.notified() => {}
            () = self.stalled.notified() => {}
        }
    }

    /// The probe found the database unreachable.
    pub(in crate::store) fn unreachable(&self, reason: String) {
        self.open_at(reason, Instant::now());
    }

    /// The probe had an answer: the database is reachable.
    pub(in crate::store) fn answered(&self) {
        self.close_at(Instant::now(), Trouble::Unreachable);
    }

    /// The probe's write completed (or was refused, which a stall is not).
    pub(in crate::store) fn committed(&self) {
        self.close_at(Instant::now(), Trouble::Stalled);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Down>> {
        self.down.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The probe found no database. A stalled breaker becomes an unreachable one (it is then
    /// closed by any answer), keeping the time it opened.
    fn open_at(&self, reason: String, now: Instant) {
        let mut down = self.lock();
        match down.as_mut() {
            Some(d) => {
                d.reason = reason;
                d.trouble = Trouble::Unreachable;
            }
            None => {
                tracing::error!(
                    target: "otpgate::store",
                    error = %reason,
                    retry_every_s = PROBE_INTERVAL.as_secs(),
                    "the database is unreachable; logins fail at once until it answers again"
                );
                self.open(&mut down, reason, Trouble::Unreachable, now);
            }
        }
    }

    /// A commit has waited `waited` and goes on waiting, for `cause` (`""`: none known).
    pub(in crate::store) fn stall_because(&self, waited: Duration, now: Instant, cause: &str) {
        let mut down = self.lock();
        if down.is_some() {
            return;
        }
        let mut reason = format!("commits wait longer than {} s", waited.as_secs_f64());
        if !cause.is_empty() {
            reason = format!("{reason} ({cause})");
        }
        tracing::error!(
            target: "otpgate::store",
            error = %reason,
            "the database answers but its commits do not complete; logins fail at once until \
             one does"
        );
        self.open(&mut down, reason, Trouble::Stalled, now);
        self.stalled.notify_one();
    }

    fn open(&self, down: &mut Option<Down>, reason: String, trouble: Trouble, now: Instant) {
        *down = Some(Down {
            since: now,
            reason,
            trouble,
        });
        self.is_down.store(true, Ordering::Release);
        self.opened.notify_waiters();
    }

    /// Close the breaker if it is open for `cured` or a lesser trouble: a completed commit
    /// ([`Trouble::Stalled`]) also shows that the database answers.
    fn close_at(&self, now: Instant, cured: Trouble) {
        if !self.is_down() {
            return;
        }
        let mut down = self.lock();
        if down
            .as_ref()
            .is_some_and(|d| cured == Trouble::Stalled || d.trouble == cured)
            && let Some(d) = down.take()
        {
            self.is_down.store(false, Ordering::Release);
            self.closed.notify_waiters();
            let down_for_s = format!(
                "{:.1}",
                now.saturating_duration_since(d.since).as_secs_f64()
            );
            match d.trouble {
                Trouble::Unreachable => tracing::warn!(
                    target: "otpgate::store",
                    down_for_s,
                    "the database answers again; logins go on"
                ),
                Trouble::Stalled => tracing::warn!(
                    target: "otpgate::store",
                    down_for_s,
                    "the database commits again; logins go on"
                ),
            }
        }
    }
}

/// This process's row in `commit_probe`.
pub(in crate::store) fn probe_key() -> String {
    let started = SystemClock.now();
    format!(
        "{}.{}",
        std::process::id(),
        started.timestamp_nanos_opt().unwrap_or_default()
    )
}

/// `work`, or [`StoreError::Unavailable`] when it has no answer within `limit`.
pub(in crate::store) async fn within<T, E: Into<StoreError>>(
    limit: Duration,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer within {} s",
            limit.as_secs_f64()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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
        h.close_at(t + PROBE_INTERVAL, Trouble::Unreachable);
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

    /// A read that never hears back (a silent connection) is given up after the answer limit,
    /// without opening the breaker: the probe decides that. Without a limit it waits.
    #[tokio::test]
    async fn a_read_without_an_answer_is_given_up_after_the_limit() {
        let h = Health::default().with_answer_limit(Duration::from_millis(50));
        let started = Instant::now();
        let result = h
            .guard(std::future::pending::<Result<(), StoreError>>())
            .await;
        assert!(matches!(result, Err(StoreError::Unavailable(ref m)) if m.contains("no answer")));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(!h.is_down());
        let unlimited = Health::default();
        let waited = tokio::time::timeout(
            Duration::from_millis(200),
            unlimited.guard(std::future::pending::<Result<(), StoreError>>()),
        )
        .await;
        assert!(waited.is_err());
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

    /// A commit that takes too long opens the breaker while it goes on; reads answering do
    /// not close it, the commit's completion does.
    #[tokio::test]
    async fn a_stalled_commit_opens_until_a_commit_completes() {
        let h = Arc::new(Health::with_commit_timeout(Duration::from_millis(50)));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let commit = {
            let h = Arc::clone(&h);
            tokio::spawn(async move {
                h.watch_commit(
                    async {
                        released.await.ok();
                        Ok::<_, StoreError>(7)
                    },
                    || async { Some("it waits for a ghost".to_owned()) },
                )
                .await
            })
        };
        let waiting_login = {
            let h = Arc::clone(&h);
            tokio::spawn(async move {
                h.unless_down(std::future::pending::<Result<(), StoreError>>())
                    .await
            })
        };
        let given_up = tokio::time::timeout(Duration::from_secs(2), waiting_login)
            .await
            .expect("the login still waits for the stalled commit")
            .unwrap()
            .unwrap_err();
        assert!(
            given_up
                .to_string()
                .contains("commits wait longer than 0.05 s (it waits for a ghost)"),
            "{given_up}"
        );
        assert!(h.is_stalled());
        // a read that answers says nothing about commits
        h.outcome(&Ok::<(), StoreError>(()));
        assert!(h.admit().is_err());
        // the commit was not given up: it completes, and its answer is the commit's
        release.send(()).unwrap();
        let result = commit.await.unwrap();
        assert_eq!(*result.as_ref().unwrap(), 7);
        h.commit_outcome(&result);
        assert!(h.admit().is_ok());
    }

    /// A quick commit leaves it closed, and a breaker without a commit timeout never stalls.
    #[tokio::test]
    async fn quick_commits_leave_it_closed() {
        let h = Health::with_commit_timeout(Duration::from_millis(50));
        let unexplained = || async { None };
        assert_eq!(
            h.watch_commit(async { Ok(1) }, unexplained).await.unwrap(),
            1
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(!h.is_down());
        let sqlite = Health::default();
        let slow = sqlite.watch_commit(
            async {
                tokio::time::sleep(Duration::from_millis(80)).await;
                Ok(2)
            },
            unexplained,
        );
        assert_eq!(slow.await.unwrap(), 2);
        assert!(!sqlite.is_down());
    }

    /// An explanation that does not come within [`EXPLAIN_LIMIT`] leaves the usual cause, and
    /// a commit that completes while it is asked for opens nothing.
    #[tokio::test]
    async fn an_explanation_is_waited_for_only_so_long() {
        let limit = Duration::from_millis(100);
        let h = Arc::new(Health::with_commit_timeout(limit).with_stall_cause("a guess"));
        let silent = || std::future::pending::<Option<String>>();
        let stalled = {
            let h = Arc::clone(&h);
            tokio::spawn(async move {
                h.watch_commit(std::future::pending::<Result<(), StoreError>>(), silent)
                    .await
            })
        };
        tokio::time::sleep(limit + EXPLAIN_LIMIT / 2).await;
        assert!(!h.is_down(), "opened before the explanation's time was up");
        tokio::time::sleep(EXPLAIN_LIMIT).await;
        let refused = h.admit().unwrap_err();
        assert!(refused.to_string().contains("(a guess)"), "{refused}");
        stalled.abort();

        let h = Health::with_commit_timeout(limit);
        let done = h.watch_commit(
            async {
                tokio::time::sleep(limit * 2).await;
                Ok(3)
            },
            silent,
        );
        assert_eq!(done.await.unwrap(), 3);
        assert!(!h.is_down());
    }

    /// A stalled database that then goes away is unreachable: the next answer closes it.
    #[test]
    fn stalled_then_unreachable_is_closed_by_an_answer() {
        let h = Health::default();
        let t = Instant::now();
        h.stall_because(Duration::from_secs(5), t, "");
        assert!(h.is_stalled());
        h.open_at("gone".into(), t);
        assert!(!h.is_stalled());
        assert!(h.is_down());
        h.outcome(&Ok::<(), StoreError>(()));
        assert!(!h.is_down());
    }

    /// A commit that never answers (its connection died) is given up once another commit
    /// completed, so the writer can go on.
    #[tokio::test]
    async fn a_commit_that_never_answers_is_given_up_once_commits_complete() {
        let h = Arc::new(Health::with_commit_timeout(Duration::from_millis(50)));
        let dead = {
            let h = Arc::clone(&h);
            tokio::spawn(async move {
                h.watch_commit(std::future::pending::<Result<(), StoreError>>(), || async {
                    None
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(h.is_stalled());
        // the probe's write completes
        h.commit_outcome(&Ok::<(), StoreError>(()));
        assert!(!h.is_down());
        let given_up = tokio::time::timeout(ABANDON_GRACE * 3, dead)
            .await
            .expect("the dead commit still holds the writer")
            .unwrap()
            .unwrap_err();
        assert!(given_up.is_unavailable(), "{given_up}");
    }
}
