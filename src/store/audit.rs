//! The audit trail: one row per request and per event-handler run, each with its decision trace.
//!
//! The row of a request that is answered (a login, a challenge) goes into the next group commit
//! before its answer leaves ([`AuditSink::record_answered`]), so no answer a client saw lacks its
//! row. Other rows (event handler runs, admin changes) go through a bounded queue to a writer task
//! that gathers them for up to 10 ms (`LINGER`) and hands them to the group writer as one job, so
//! they cost a share of a commit per batch instead of a commit per row. A full queue applies
//! back-pressure for a bounded time; if the database stays away longer, the row is written to the
//! log instead (and counted), never silently dropped.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::diagnostics::health::Health;
use super::jobs::GroupWriter;
use super::query::{Query, Row, Sql, query};
use super::{Backend, Store, StoreError, flag};

/// One audit row. Never holds a password, PIN or OTP value.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct AuditRow {
    pub id: Option<i64>,
    pub time_us: i64,
    /// Shared with the authenticator: a row does not copy it.
    pub node: Arc<str>,
    /// `validate_check`, `token_init`, `POST-EVENT validate_check>>Token:disable`, …
    pub event: Cow<'static, str>,
    /// Which front-end or tool: `radius`, `cli`, `http`, `event`.
    pub origin: Cow<'static, str>,
    pub success: bool,
    pub authentication: String,
    pub user: String,
    pub realm: String,
    pub resolver: String,
    pub serial: String,
    pub token_type: String,
    pub client: String,
    /// The answer's message or the handler's info.
    pub info: String,
    pub action_detail: String,
    pub policies: String,
    pub duration_us: i64,
    /// The decision trace as JSON (see `auth::trace`).
    pub trace: String,
}

/// Which rows to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user: Option<String>,
    pub realm: Option<String>,
    pub serial: Option<String>,
    pub event: Option<String>,
    pub since_us: Option<i64>,
    pub limit: i64,
}

fn row_to_audit(r: &Row) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        id: Some(r.try_get("id")?),
        time_us: r.try_get("time_us")?,
        node: r.try_get::<String>("node")?.into(),
        event: Cow::Owned(r.try_get("event")?),
        origin: Cow::Owned(r.try_get("origin")?),
        success: flag(r.try_get("success")?),
        authentication: r.try_get("authentication")?,
        user: r.try_get("user_login")?,
        realm: r.try_get("realm")?,
        resolver: r.try_get("resolver")?,
        serial: r.try_get("serial")?,
        token_type: r.try_get("token_type")?,
        client: r.try_get("client")?,
        info: r.try_get("info")?,
        action_detail: r.try_get("action_detail")?,
        policies: r.try_get("policies")?,
        duration_us: r.try_get("duration_us")?,
        trace: r.try_get("trace")?,
    })
}

pub(super) const AUDIT_COLUMNS: &str = "time_us, node, event, origin, success, authentication, user_login, \
     realm, resolver, serial, token_type, client, info, action_detail, policies, duration_us, trace";

/// One multi-row INSERT for `rows`.
pub(in crate::store) fn audit_insert(rows: &[&AuditRow]) -> Sql {
    let mut q = Sql::new(&format!("INSERT INTO audit ({AUDIT_COLUMNS}) VALUES "));
    for (i, r) in rows.iter().enumerate() {
        q.push(if i == 0 { "(" } else { ", (" });
        q.bind(r.time_us)
            .push(", ")
            .bind(&*r.node)
            .push(", ")
            .bind(&*r.event)
            .push(", ")
            .bind(&*r.origin)
            .push(", ")
            .bind(i64::from(r.success))
            .push(", ")
            .bind(r.authentication.as_str())
            .push(", ")
            .bind(r.user.as_str())
            .push(", ")
            .bind(r.realm.as_str())
            .push(", ")
            .bind(r.resolver.as_str())
            .push(", ")
            .bind(r.serial.as_str())
            .push(", ")
            .bind(r.token_type.as_str())
            .push(", ")
            .bind(r.client.as_str())
            .push(", ")
            .bind(r.info.as_str())
            .push(", ")
            .bind(r.action_detail.as_str())
            .push(", ")
            .bind(r.policies.as_str())
            .push(", ")
            .bind(r.duration_us)
            .push(", ")
            .bind(r.trace.as_str())
            .push(")");
    }
    q
}

impl Store {
    /// Insert rows in one transaction (one multi-row INSERT per chunk). Shared, so a caller
    /// that retries keeps its rows without copying them.
    pub async fn insert_audit(&self, rows: Arc<Vec<AuditRow>>) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        // through the group writer: the same transaction as the logins' consumptions
        self.writer().audit(rows).await
    }

    /// Newest rows first.
    pub async fn list_audit(&self, f: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        let mut q = Sql::new(&format!(
            "SELECT id, {AUDIT_COLUMNS} FROM audit WHERE 1 = 1"
        ));
        if let Some(u) = &f.user {
            q.push(" AND user_login = ").bind(u.as_str());
        }
        if let Some(r) = &f.realm {
            q.push(" AND realm = ").bind(r.as_str());
        }
        if let Some(s) = &f.serial {
            q.push(" AND serial LIKE ")
                .bind(format!("%{}%", s.replace(['%', '_'], "")));
        }
        if let Some(e) = &f.event {
            q.push(" AND event = ").bind(e.as_str());
        }
        if let Some(since) = f.since_us {
            q.push(" AND time_us >= ").bind(since);
            if self.backend() == Backend::Sqlite {
                let from = self
                    .first_audit_id_at(since.saturating_sub(LATE_ROW_SLACK_US))
                    .await?;
                q.push(" AND id >= ").bind(from);
            }
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .bind(if f.limit > 0 { f.limit } else { 100 });
        let rows = q.query().fetch_all(self.db()).await?;
        rows.iter().map(row_to_audit).collect()
    }

    /// The id from which on the audit rows are not older than `time_us`, found by a binary
    /// search over the ids: ids rise with the time rows are written, and a row's time is its
    /// request's start, so the two rise together up to the lateness [`LATE_ROW_SLACK_US`]
    /// allows for. SQLite's planner answers a `--since` listing newest first by id and would
    /// read the whole table back to its first row when the window holds fewer rows than the
    /// limit; bounded by this id it stops near the window's start. One indexed probe per
    /// step, ~25 for ten million rows.
    async fn first_audit_id_at(&self, time_us: i64) -> Result<i64, StoreError> {
        // two subqueries: SQLite reads MIN or MAX off the B-tree's edge only when it is the
        // statement's one aggregate, and scans the whole table for both at once
        let bounds =
            query("SELECT (SELECT MIN(id) FROM audit) AS lo, (SELECT MAX(id) FROM audit) AS hi")
                .fetch_one(self.db())
                .await?;
        let (Some(mut lo), Some(hi)) = (
            bounds.try_get::<Option<i64>>("lo")?,
            bounds.try_get::<Option<i64>>("hi")?,
        ) else {
            return Ok(0);
        };
        // the answer lies in lo..=hi, where hi means "after the last row"
        let mut hi = hi + 1;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let next = query("SELECT id, time_us FROM audit WHERE id >= $1 ORDER BY id LIMIT 1")
                .bind(mid)
                .fetch_optional(self.db())
                .await?;
            match next {
                Some(row) if row.try_get::<i64>("time_us")? < time_us => {
                    lo = row.try_get::<i64>("id")? + 1;
                }
                // no row from mid on is older (or there is none): mid is a safe bound
                _ => hi = mid,
            }
        }
        Ok(lo)
    }

    pub async fn audit_by_id(&self, id: i64) -> Result<Option<AuditRow>, StoreError> {
        let sql = format!("SELECT id, {AUDIT_COLUMNS} FROM audit WHERE id = $1");
        let row = Query::owned(sql).bind(id).fetch_optional(self.db()).await?;
        row.as_ref().map(row_to_audit).transpose()
    }

    /// Count `validate_check` rows of a user since a time (auth_max_fail / auth_max_success).
    /// The literal `event = 'validate_check'` is what lets the partial index `audit_user`
    /// serve these.
    /// `success`: `Some(true)` accepted rows, `Some(false)` rejected rows (challenges excluded).
    pub async fn count_auth_rows(
        &self,
        user: &str,
        realm: &str,
        since_us: i64,
        success: bool,
    ) -> Result<i64, StoreError> {
        self.guarded(async {
            let sql = if success {
                COUNT_ACCEPTED_SQL
            } else {
                COUNT_REJECTED_SQL
            };
            let row = query(sql)
                .bind(user)
                .bind(realm)
                .bind(since_us)
                .fetch_one(self.db())
                .await?;
            row.try_get("n")
        })
        .await
    }
}

/// How much older than the rows before it a row may be and still be found by a `--since`
/// listing on SQLite (see `Store::first_audit_id_at`). A row is written at most a request's
/// duration (handler timeouts), the queue's patience and the write retries (~10 s together)
/// after its time; the rest is for the system clock being set back.
const LATE_ROW_SLACK_US: i64 = 3_600_000_000;

/// A user's accepted logins since a time (`$1` login, `$2` realm, `$3` time).
const COUNT_ACCEPTED_SQL: &str = "SELECT COUNT(*) AS n FROM audit WHERE event = 'validate_check' \
     AND user_login = $1 AND realm = $2 AND time_us >= $3 AND success = 1";

/// A user's rejected logins since a time, challenges not counted.
const COUNT_REJECTED_SQL: &str = "SELECT COUNT(*) AS n FROM audit WHERE event = 'validate_check' \
     AND user_login = $1 AND realm = $2 AND time_us >= $3 AND success = 0 \
     AND authentication <> 'CHALLENGE'";

enum Msg {
    Row(Box<AuditRow>),
    Flush(oneshot::Sender<()>),
}

/// Queue handle for audit rows. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditSink {
    tx: mpsc::Sender<Msg>,
    /// For the rows whose request's answer waits for them.
    writer: GroupWriter,
    /// While the database is unreachable, or refuses the writer's rows (a full disk), a full
    /// queue cannot drain: no waiting for room then.
    health: Arc<Health>,
    retrying: Arc<AtomicBool>,
    /// Cancelled when the process stops and the database still holds the rows back (a commit
    /// that stalls): the writer writes what it holds to the log instead of waiting on.
    give_up: CancellationToken,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Row(_) => f.write_str("Row"),
            Self::Flush(_) => f.write_str("Flush"),
        }
    }
}

/// How long a request waits for room in a full queue before it logs its row instead.
const ENQUEUE_PATIENCE: Duration = Duration::from_secs(2);
const MAX_BATCH: usize = 2048;

/// How long the writer keeps trying a batch before it logs the rows instead: longer than a
/// PostgreSQL restart or failover takes.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// How long the writer task gathers rows before it hands them to the group writer, unless a
/// flush or [`LINGER_ROWS`] rows come first. Handed over one by one at moderate load, each
/// small batch was a commit of its own and rewrote the
/// table's last page and its index pages into the WAL; gathered, a commit fills them once.
/// A reader that must see the rows (auth_max_fail, the admin CLI, shutdown) flushes first.
const LINGER: Duration = Duration::from_millis(10);
const LINGER_ROWS: usize = 256;

impl AuditSink {
    /// Start the writer task. It ends when every sink clone is dropped, after writing what is
    /// queued.
    pub fn start(store: Store, capacity: usize) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity.max(16));
        let health = Arc::clone(store.health());
        let retrying = Arc::new(AtomicBool::new(false));
        let give_up = CancellationToken::new();
        let group_writer = store.writer().clone();
        let handle = tokio::spawn(writer(store, rx, Arc::clone(&retrying), give_up.clone()));
        (
            Self {
                tx,
                writer: group_writer,
                health,
                retrying,
                give_up,
            },
            handle,
        )
    }

    /// Stop waiting for the database: the rows the writer holds, and every row queued after
    /// them, go to the log (`audit row written to the log instead`). For a process that stops
    /// while its commits stall; a row whose commit completes after all is then in both.
    pub fn give_up_waiting(&self) {
        self.give_up.cancel();
    }

    /// Queue a row, waiting (bounded) for room; not at all while the database is unreachable or
    /// the writer is retrying a batch, where every login would wait [`ENQUEUE_PATIENCE`] for a
    /// queue that cannot drain.
    pub async fn record(&self, row: AuditRow) {
        let depth = self.tx.max_capacity() - self.tx.capacity();
        metrics::gauge!("otpgate_audit_queue_depth").set(depth as f64);
        // a free slot is taken at once; only a full queue starts the timer
        let permit = match self.tx.try_reserve() {
            Ok(permit) => Some(permit),
            Err(_) if self.health.is_down() || self.retrying.load(Ordering::Relaxed) => None,
            Err(TrySendError::Closed(())) => None,
            Err(TrySendError::Full(())) => {
                tokio::time::timeout(ENQUEUE_PATIENCE, self.tx.reserve())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
        };
        match permit {
            Some(permit) => permit.send(Msg::Row(Box::new(row))),
            None => {
                metrics::counter!("otpgate_audit_rows_logged_total").increment(1);
                tracing::error!(
                    target: "otpgate::audit",
                    row = %serde_json::to_string(&row).unwrap_or_default(),
                    "audit queue full or writer stopped; audit row written to the log instead"
                );
            }
        }
    }

    /// Store the audit row of a request before its answer leaves: in the next group commit,
    /// waited for, so that an answer a client saw always has its row, a SIGKILL or a power cut
    /// notwithstanding. While the database cannot take it (the breaker is open, or opens while
    /// the row waits) the row is queued like the others: retried, and written to the log if
    /// the process stops first. A row given up while its commit was already running may then
    /// be stored twice.
    pub async fn record_answered(&self, row: AuditRow) {
        if self.health.is_down() {
            return self.record(row).await;
        }
        let rows = Arc::new(vec![row]);
        match self.writer.audit_answered(Arc::clone(&rows)).await {
            Ok(()) => {}
            Err(e) => {
                tracing::debug!(target: "otpgate::audit", error = %e, "audit row queued instead");
                let rows = Arc::try_unwrap(rows).unwrap_or_else(|shared| (*shared).clone());
                for row in rows {
                    self.record(row).await;
                }
            }
        }
    }

    /// Wait until everything queued before this call is in the database.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn writer(
    store: Store,
    mut rx: mpsc::Receiver<Msg>,
    retrying: Arc<AtomicBool>,
    give_up: CancellationToken,
) {
    let mut batch: Vec<AuditRow> = Vec::with_capacity(256);
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let Some(first) = rx.recv().await else { break };
        let linger_until = tokio::time::Instant::now() + LINGER;
        let mut next = Some(first);
        loop {
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Row(row) => batch.push(*row),
                    Msg::Flush(done) => waiters.push(done),
                }
                if batch.len() < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            // a flush, a full batch or the end of the linger writes now
            if !waiters.is_empty() || batch.len() >= LINGER_ROWS {
                break;
            }
            match tokio::time::timeout_at(linger_until, rx.recv()).await {
                Ok(Some(msg)) => next = Some(msg),
                Ok(None) | Err(_) => break,
            }
        }
        write_with_retry(&store, &mut batch, &retrying, &give_up).await;
        for done in waiters.drain(..) {
            let _ = done.send(());
        }
    }
    write_with_retry(&store, &mut batch, &retrying, &give_up).await;
}

async fn write_with_retry(
    store: &Store,
    batch: &mut Vec<AuditRow>,
    retrying: &AtomicBool,
    give_up: &CancellationToken,
) {
    if batch.is_empty() {
        return;
    }
    let rows = Arc::new(std::mem::take(batch));
    let mut delay = Duration::from_millis(50);
    let started = tokio::time::Instant::now();
    for attempt in 1.. {
        let inserted = tokio::select! {
            inserted = store.insert_audit(rows.clone()) => inserted,
            () = give_up.cancelled() => break,
        };
        match inserted {
            Ok(()) => {
                retrying.store(false, Ordering::Relaxed);
                metrics::counter!("otpgate_audit_rows_written_total").increment(rows.len() as u64);
                return;
            }
            // a database that is down fails at once: wait for it by time, not by attempts
            Err(e) if started.elapsed() < RETRY_FOR => {
                retrying.store(true, Ordering::Relaxed);
                if attempt <= 3 || !e.is_unavailable() {
                    tracing::warn!(target: "otpgate::audit", attempt, error = %e, rows = rows.len(), "audit insert failed; retrying");
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = give_up.cancelled() => break,
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                tracing::warn!(target: "otpgate::audit", attempt, error = %e, rows = rows.len(), "audit insert failed; giving up");
                break;
            }
        }
    }
    metrics::counter!("otpgate_audit_rows_logged_total").increment(rows.len() as u64);
    for row in rows.iter() {
        tracing::error!(
            target: "otpgate::audit",
            row = %serde_json::to_string(&row).unwrap_or_default(),
            "database unavailable; audit row written to the log instead"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Migration 0005 rebuilds the SQLite audit table: the rows of an existing store stay,
    /// and new rows get ids after them.
    #[test]
    fn audit_rebuild_keeps_rows_and_ids() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let (before, after): (Vec<_>, Vec<_>) = super::super::sqlite::migrate::MIGRATIONS
            .iter()
            .partition(|(version, _, _)| *version < 5);
        for (_, _, sql) in &before {
            conn.execute_batch(sql).unwrap();
        }
        let insert = format!(
            "INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (1, 'n', 'validate_check', 'radius', 1, \
             'ACCEPT', 'alice', 'r', 'f', 'S1', 'hotp', '127.0.0.1', 'ok', '', '', 5, '[]')"
        );
        for _ in 0..3 {
            conn.execute(&insert, []).unwrap();
        }
        conn.execute("DELETE FROM audit WHERE id = 2", []).unwrap();
        for (_, _, sql) in &after {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute(&insert, []).unwrap();
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM audit ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(ids, vec![1, 3, 4]);
        let user: String = conn
            .query_row("SELECT user_login FROM audit WHERE id = 3", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(user, "alice");
    }

    /// auth_max_fail / auth_max_success counts go through the (partial) `audit_user` index,
    /// once `store::login_index` has built it; the migrations leave it out.
    #[test]
    fn login_counts_use_the_user_index() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for (_, _, sql) in super::super::sqlite::migrate::MIGRATIONS {
            conn.execute_batch(sql).unwrap();
        }
        let indexes = |conn: &rusqlite::Connection| -> i64 {
            conn.query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'audit_user'",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(indexes(&conn), 0);
        conn.execute_batch(super::super::login_index::CREATE_SQL)
            .unwrap();
        assert_eq!(indexes(&conn), 1);
        for sql in [COUNT_ACCEPTED_SQL, COUNT_REJECTED_SQL] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(rusqlite::params!["alice", "r", 0], |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(
                plan.iter().any(|p| p.contains("INDEX audit_user")),
                "{sql}: {plan:?}"
            );
        }
    }
}
