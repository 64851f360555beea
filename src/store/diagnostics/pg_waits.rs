//! What a stalled PostgreSQL commit waits for, from `pg_stat_activity`: the answer the
//! breaker gives instead of a guess (`store::diagnostics::health`).
//!
//! A commit that does not come back within `commit_timeout` is a backend of ours that waits:
//! for a synchronous standby (`SyncRep`), for a lock another session holds, or for the
//! server's disk. One query on another pooled connection asks the server which. Our backends
//! are those with our `application_name` (`otpgate`, set on every connection unless the URL
//! names one), on any node: a node whose commit waits for a row lock held by another node's
//! commit, which itself waits for the standby, is told about the standby. The text is built
//! sans-IO ([`describe`]).

use sqlx::{PgPool, Row};

use crate::store::StoreError;

/// Names otpgate's connections (`otpgate`), unless the database URL names them.
pub(in crate::store) const SET_APPLICATION_NAME: &str = "SET application_name = 'otpgate'";

/// Our backends that wait, the standby first, then locks (with who holds them), then the rest.
const WAITS_SQL: &str = "SELECT a.wait_event_type AS kind, a.wait_event AS event, \
     (SELECT string_agg(format('process %s (%s)', b.pid, \
        COALESCE(NULLIF(b.application_name, ''), b.usename, '?')), ', ' ORDER BY b.pid) \
      FROM pg_stat_activity b WHERE b.pid = ANY (pg_blocking_pids(a.pid))) AS blockers, \
     current_setting('synchronous_standby_names') AS standbys \
     FROM pg_stat_activity a \
     WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() \
       AND a.application_name = current_setting('application_name') \
       AND a.state = 'active' AND a.wait_event IS NOT NULL \
     ORDER BY CASE WHEN a.wait_event = 'SyncRep' THEN 0 \
                   WHEN a.wait_event_type = 'Lock' THEN 1 ELSE 2 END, a.query_start \
     LIMIT 1";

/// One waiting backend, as `pg_stat_activity` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wait {
    kind: String,
    event: String,
    /// Who holds the lock it waits for (`process 4711 (psql)`), if any.
    blockers: Option<String>,
    synchronous_standby_names: String,
}

/// The breaker's reason for `wait`.
fn describe(wait: &Wait) -> String {
    match (wait.kind.as_str(), wait.event.as_str()) {
        (_, "SyncRep") => format!(
            "the commit waits for a synchronous standby; synchronous_standby_names = '{}'",
            wait.synchronous_standby_names
        ),
        ("Lock", event) => match &wait.blockers {
            Some(blockers) => format!("the commit waits for a lock held by {blockers}"),
            None => format!("the commit waits for a lock ({event})"),
        },
        ("IO", event) => format!("the database server waits for its disk ({event})"),
        (kind, event) => format!("the commit waits for {kind}: {event}"),
    }
}

/// What our stalled commit waits for; `None` when no backend of ours waits (then the caller
/// falls back to its guess).
pub(in crate::store) async fn explain(pool: PgPool) -> Option<String> {
    match waiting(&pool).await {
        Ok(wait) => wait.as_ref().map(describe),
        Err(e) => {
            tracing::debug!(target: "otpgate::store", error = %e, "could not ask what the stalled commit waits for");
            None
        }
    }
}

async fn waiting(pool: &PgPool) -> Result<Option<Wait>, StoreError> {
    let Some(row) = sqlx::query(WAITS_SQL).fetch_optional(pool).await? else {
        return Ok(None);
    };
    Ok(Some(Wait {
        kind: row.try_get("kind")?,
        event: row.try_get("event")?,
        blockers: row.try_get("blockers")?,
        synchronous_standby_names: row.try_get("standbys")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(kind: &str, event: &str, blockers: Option<&str>) -> Wait {
        Wait {
            kind: kind.into(),
            event: event.into(),
            blockers: blockers.map(Into::into),
            synchronous_standby_names: "ghost".into(),
        }
    }

    #[test]
    fn each_wait_is_told_in_words() {
        assert_eq!(
            describe(&wait("IPC", "SyncRep", None)),
            "the commit waits for a synchronous standby; synchronous_standby_names = 'ghost'"
        );
        assert_eq!(
            describe(&wait("Lock", "transactionid", Some("process 4711 (psql)"))),
            "the commit waits for a lock held by process 4711 (psql)"
        );
        assert_eq!(
            describe(&wait("Lock", "tuple", None)),
            "the commit waits for a lock (tuple)"
        );
        assert_eq!(
            describe(&wait("IO", "WALSync", None)),
            "the database server waits for its disk (WALSync)"
        );
        assert_eq!(
            describe(&wait("LWLock", "WALWrite", None)),
            "the commit waits for LWLock: WALWrite"
        );
    }
}
