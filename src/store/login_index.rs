//! The audit table's per-user index, `audit_user`: there only while a policy counts logins.
//!
//! `auth_max_fail` and `auth_max_success` count a user's `validate_check` rows in a time window,
//! and without an index on (user, realm, time) that count reads the whole audit table. With it,
//! every login inserts into the index at its user's place: with 100,000 users those places are
//! spread over more leaf pages than a page cache keeps, and at 100,000 tokens the index was more
//! than half of what a login cost beyond 1,000 tokens. Most installations set no such policy, so
//! the serving daemon builds the index when its configuration has one and drops it when it has
//! none, at start and at every reload.
//!
//! SQLite builds and drops it as a commit of the group writer, so that logins wait behind the build
//! (about 0.7 s per million audit rows) instead of failing on the write lock; a build longer than
//! `commit_timeout` is a stall to the commit watch (`store::diagnostics::commit_watch`), and the
//! logins behind it are refused until it ends. PostgreSQL builds it `CONCURRENTLY`, beside the
//! logins, and never drops it on its own: another node on the same database may have such a policy.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::query::query;
use super::{Backend, Store, StoreError};

/// The index, once for both statements that build it. The literal `event = 'validate_check'`
/// is what the count queries' own literal matches (`store::audit`).
macro_rules! audit_user {
    () => {
        "audit_user ON audit (user_login, realm, time_us) WHERE event = 'validate_check'"
    };
}
pub(super) const CREATE_SQL: &str = concat!("CREATE INDEX IF NOT EXISTS ", audit_user!());
const CREATE_CONCURRENTLY_SQL: &str =
    concat!("CREATE INDEX CONCURRENTLY IF NOT EXISTS ", audit_user!());
const DROP_SQL: &str = "DROP INDEX IF EXISTS audit_user";
/// A build that failed halfway leaves an invalid index behind, which `IF NOT EXISTS` would
/// take for a finished one.
const DROP_CONCURRENTLY_SQL: &str = "DROP INDEX CONCURRENTLY IF EXISTS audit_user";

const SQLITE_STATE_SQL: &str =
    "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'index' AND name = 'audit_user'";
const POSTGRES_STATE_SQL: &str = "SELECT i.indisvalid AS valid FROM pg_index i \
     JOIN pg_class c ON c.oid = i.indexrelid \
     WHERE c.relname = 'audit_user' AND pg_table_is_visible(c.oid)";

/// What aligning the index did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexChange {
    Built(Duration),
    Dropped,
    /// Already as asked.
    Unchanged,
    /// Not needed here, but left on the shared PostgreSQL database for other nodes.
    KeptForOtherNodes,
}

/// Whether the index is there and usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexState {
    Absent,
    /// A concurrent build that failed (or is still running on another node).
    Invalid,
    Present,
}

impl Store {
    pub async fn login_index_state(&self) -> Result<IndexState, StoreError> {
        Ok(match self.backend() {
            Backend::Sqlite => {
                let row = query(SQLITE_STATE_SQL).fetch_one(self.db()).await?;
                if row.try_get::<i64>("n")? > 0 {
                    IndexState::Present
                } else {
                    IndexState::Absent
                }
            }
            Backend::Postgres => match query(POSTGRES_STATE_SQL).fetch_optional(self.db()).await? {
                None => IndexState::Absent,
                Some(row) if row.try_get::<i64>("valid")? != 0 => IndexState::Present,
                Some(_) => IndexState::Invalid,
            },
        })
    }

    /// Build `audit_user` when `needed`, drop it (on SQLite) when not.
    pub async fn align_login_index(&self, needed: bool) -> Result<IndexChange, StoreError> {
        let state = self.login_index_state().await?;
        let started = Instant::now();
        match (self.backend(), needed, state) {
            (_, true, IndexState::Present) | (_, false, IndexState::Absent) => {
                Ok(IndexChange::Unchanged)
            }
            (Backend::Postgres, false, _) => Ok(IndexChange::KeptForOtherNodes),
            (Backend::Sqlite, false, _) => {
                self.writer().schema(DROP_SQL).await?;
                Ok(IndexChange::Dropped)
            }
            (Backend::Sqlite, true, _) => {
                self.writer().schema(CREATE_SQL).await?;
                Ok(IndexChange::Built(started.elapsed()))
            }
            (Backend::Postgres, true, _) => {
                // Invalid is also another node's build still running: dropped (after it
                // finishes, DROP … CONCURRENTLY waits for it) and built again — wasted work,
                // never a missing index.
                if state == IndexState::Invalid {
                    self.db().execute_unprepared(DROP_CONCURRENTLY_SQL).await?;
                }
                self.db()
                    .execute_unprepared(CREATE_CONCURRENTLY_SQL)
                    .await?;
                Ok(IndexChange::Built(started.elapsed()))
            }
        }
    }
}

/// Keep the index as the configuration asks: `needed` holds whether it has an `auth_max_*`
/// policy and changes at a reload. One task, so that two reloads in a row cannot build and
/// drop out of order. Until a build is done, the counts are right, only slower.
pub async fn keep_login_index(
    store: Store,
    mut needed: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    loop {
        let want = *needed.borrow_and_update();
        // A build does not hold up a shutdown: on PostgreSQL the half-built index is left
        // invalid and rebuilt at the next start; on SQLite it is one transaction of the
        // writer's, committed or rolled back whole.
        let aligned = tokio::select! {
            () = shutdown.cancelled() => return,
            aligned = store.align_login_index(want) => aligned,
        };
        match aligned {
            Ok(IndexChange::Built(took)) => tracing::info!(
                target: "otpgate::store",
                ms = took.as_millis(),
                "audit_user index built: auth_max_fail / auth_max_success count a user's logins through it"
            ),
            Ok(IndexChange::Dropped) => tracing::info!(
                target: "otpgate::store",
                "audit_user index dropped: no policy counts logins (auth_max_fail / auth_max_success)"
            ),
            Ok(IndexChange::KeptForOtherNodes) => tracing::info!(
                target: "otpgate::store",
                "no policy here counts logins; the audit_user index stays on the shared database for other nodes (DROP INDEX audit_user when none has auth_max_fail / auth_max_success)"
            ),
            Ok(IndexChange::Unchanged) => {}
            Err(e) if want => tracing::warn!(
                target: "otpgate::store",
                error = %e,
                "cannot build the audit_user index; auth_max_fail / auth_max_success read the whole audit table until it exists (tried again at the next reload)"
            ),
            Err(e) => tracing::warn!(
                target: "otpgate::store",
                error = %e,
                "cannot drop the unused audit_user index (tried again at the next reload)"
            ),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = needed.changed() => if changed.is_err() { return },
        }
    }
}
