//! The token store: one interface, two backends.
//!
//! [`Store`] is what the core uses. Behind it, `sqlite` (the embedded default, on rusqlite:
//! threads that own the hot path's connections, a small pool for everything else,
//! migrations) or `postgres` (sqlx, for several nodes that share one store). Every OTP
//! consumption, counter and failcount change is one atomic `UPDATE … WHERE …` whose changed
//! rows (or `RETURNING`) say whether it applied, so two requests (or two nodes on one
//! PostgreSQL) can never accept the same OTP.
//!
//! - [`tokens`], [`audit`], [`challenges`], [`ledger`], counters, [`login_index`]: the
//!   backend-neutral queries, each statement written once (`query`, run by `db` on the
//!   backend's driver);
//! - `jobs`, `statements`, `lookup`: the hot path's group commit and token lookups, which each
//!   backend serves with its own writer and readers;
//! - `diagnostics`: the breaker that makes the hot path fail at once while the database cannot
//!   be reached or commits stall, and what it says about why.

/// The token table's columns as every token lookup selects them (`t` is the token table),
/// in the order of `reader::TOKEN_COLUMNS` (a test ties the two together).
macro_rules! token_columns {
    () => {
        "t.id, t.serial, t.tokentype, t.description, t.owner_login, t.owner_realm, \
         t.owner_resolver, t.active, t.revoked, t.failcount, t.maxfail, t.otp_counter, \
         t.count_window, t.otplen, t.hashlib, t.time_step, t.time_window, t.time_shift, \
         t.pin_hash, t.key_sealed, t.rollout_state, t.validity_start, t.validity_end, \
         t.count_auth, t.count_auth_success, t.count_auth_max, t.count_auth_success_max, \
         t.last_auth, t.failcounter_exceeded, t.created"
    };
}

pub mod audit;
pub mod challenges;
mod counters;
mod db;
mod diagnostics;
mod error;
mod jobs;
pub mod ledger;
pub mod login_index;
mod lookup;
mod postgres;
mod query;
mod queued_counters;
pub(crate) mod sqlite;
mod statements;
pub mod tokens;
mod user_attributes;

pub use sqlite::inspect::{Inspection, inspect as inspect_sqlite};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use error::StoreError;

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file (created on first use).
    Sqlite(PathBuf),
    /// A PostgreSQL URL (`postgres://user:pass@host:port/db`).
    Postgres(String),
}

impl Database {
    /// Parse `sqlite:PATH`, `sqlite://PATH` or `postgres://…`. A relative SQLite path is taken
    /// relative to `base` (the configuration file's directory).
    pub fn parse(url: &str, base: &Path) -> Option<Self> {
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = PathBuf::from(rest.split('?').next().unwrap_or(rest));
            if path.as_os_str().is_empty() || rest.starts_with(":memory:") {
                return None;
            }
            return Some(Self::Sqlite(if path.is_absolute() {
                path
            } else {
                base.join(path)
            }));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Some(Self::Postgres(url.to_owned()));
        }
        None
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL without a password, for logs.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(p) => format!("sqlite://{}", p.display()),
            Self::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    let creds = url.get(scheme + 3..at).unwrap_or("");
                    let user = creds.split(':').next().unwrap_or("");
                    format!(
                        "{}{}:***{}",
                        url.get(..scheme + 3).unwrap_or(""),
                        user,
                        url.get(at..).unwrap_or("")
                    )
                }
                _ => url.clone(),
            },
        }
    }

    /// Who holds this SQLite database's write lock (`the database's write lock is held by
    /// process 4711 (sqlite3)`), for an error that says it is locked: `None` on PostgreSQL,
    /// and when no other process holds it (`store::diagnostics::lock_holder`).
    pub fn write_lock_holder(&self) -> Option<String> {
        match self {
            Self::Sqlite(path) => {
                diagnostics::lock_holder::holder(&absolute(path)).map(|h| h.holds_the_write_lock())
            }
            Self::Postgres(_) => None,
        }
    }
}

/// `path` from the working directory, if it is relative (and it cannot be asked: as it is).
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::env::current_dir()
        .map(|d| d.join(path))
        .unwrap_or_else(|_| path.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Pool settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    pub database: Database,
    pub max_connections: u32,
    pub connect_timeout: Duration,
    /// How long a group commit may take before the node counts its database as stalled
    /// (`store::diagnostics::health`, `store::diagnostics::commit_watch`).
    pub commit_timeout: Duration,
}

/// A handle on the store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    /// Connections for everything but the hot path's batches.
    db: db::Db,
    backend: Backend,
    /// The group-commit writer.
    writer: jobs::GroupWriter,
    /// Batched token lookups.
    reader: lookup::TokenReader,
    /// Batched request-ledger claims and answers.
    ledger: ledger::Ledger,
    /// Whether PostgreSQL answers (the hot path fails at once while it does not).
    health: Arc<diagnostics::health::Health>,
}

impl Store {
    /// Open the database (creating a SQLite file and its directory if needed), apply the
    /// migrations and start the hot path's writer and readers.
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        match &settings.database {
            Database::Sqlite(path) => sqlite::open(path, settings).await,
            Database::Postgres(url) => postgres::open(url, settings).await,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn writer(&self) -> &jobs::GroupWriter {
        &self.writer
    }

    pub(crate) fn reader(&self) -> &lookup::TokenReader {
        &self.reader
    }

    pub(crate) fn db(&self) -> &db::Db {
        &self.db
    }

    pub(crate) fn health(&self) -> &Arc<diagnostics::health::Health> {
        &self.health
    }

    /// Whether the database answers, as far as the hot path knows (false while the breaker is
    /// open).
    pub fn reachable(&self) -> bool {
        !self.health.is_down()
    }

    /// The connections the pool holds for work off the hot path, and how many are idle.
    pub fn pool_connections(&self) -> (u32, usize) {
        match &self.db {
            db::Db::Sqlite(pool) => pool.connections(),
            db::Db::Postgres(pool) => (pool.size(), pool.num_idle()),
        }
    }

    /// Why the last group commit failed, when the database answers but refuses to store (a
    /// full disk): no login can be accepted then.
    pub fn refusing_writes(&self) -> Option<String> {
        self.health.refusing_writes()
    }

    /// A transaction that will write (see `db::Db::begin_write`).
    pub(crate) async fn begin_write(&self) -> Result<db::Tx, StoreError> {
        self.db.begin_write().await
    }

    /// `work` through the breaker: it fails at once while the database is known to be
    /// unreachable, and is given up when it has no answer within the limit (PostgreSQL's
    /// `connect_timeout`). For the queries a login makes beside the hot path's batches.
    pub(crate) fn guarded<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> impl Future<Output = Result<T, StoreError>> {
        // not an `async fn`: that would be one more layer holding `work`
        self.health.guard(work)
    }

    /// A cheap round trip (health checks, start-up).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.guarded(async {
            query::query("SELECT 1").execute(&self.db).await?;
            Ok(())
        })
        .await
    }

    pub async fn close(&self) {
        // counter increments nobody waited for
        if let Err(e) = self.writer.flush().await {
            tracing::error!(target: "otpgate::store", error = %e, "queued writes not stored at close");
        }
        self.db.close().await;
    }
}

/// Say so when the database has migrations this version does not know: a newer otpgate
/// applied them (a rolling upgrade), and this node should be upgraded too.
async fn warn_of_newer_migrations(
    db: &db::Db,
    known: &[(i64, &str, &str)],
) -> Result<(), StoreError> {
    let known = known.last().map_or(0, |(version, _, _)| *version);
    let rows =
        query::query("SELECT version FROM _sqlx_migrations WHERE version > $1 ORDER BY version")
            .bind(known)
            .fetch_all(db)
            .await?;
    let newer = rows
        .iter()
        .map(|r| r.get::<i64>(0))
        .collect::<Result<Vec<_>, _>>()?;
    if !newer.is_empty() {
        tracing::warn!(
            target: "otpgate::store",
            versions = ?newer,
            known,
            "the database has migrations this version does not know: a newer otpgate applied \
             them; upgrade this node"
        );
    }
    Ok(())
}

/// Add to `batch` whatever already waits in `rx`, up to `max` items in all: the batching
/// readers and writers take one wake-up's worth of work at a time.
pub(crate) fn take_queued<T>(
    rx: &mut tokio::sync::mpsc::Receiver<T>,
    batch: &mut Vec<T>,
    max: usize,
) {
    while batch.len() < max {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
}

/// `0/1` integer column → bool.
pub(crate) fn flag(v: i64) -> bool {
    v != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "database is locked" is found in a chain whichever of the store's error types carries
    /// it, and nothing else is taken for it.
    #[test]
    fn a_locked_database_is_told_from_other_errors() {
        let busy = || rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(5), None);
        let readonly = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(8), None);
        assert!(StoreError::is_locked(&busy()));
        assert!(StoreError::is_locked(&StoreError::Sqlite(busy())));
        assert!(!StoreError::is_locked(&readonly));
        assert!(!StoreError::is_locked(&StoreError::Unavailable(
            "database is locked".into()
        )));
        let wrapped = anyhow::Error::new(StoreError::Sqlite(busy())).context("enrolling");
        assert!(wrapped.chain().any(StoreError::is_locked));
    }

    /// Wait up to 5 s for `done`.
    pub(super) async fn until(what: &str, done: impl Fn() -> bool) {
        for _ in 0..100 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("not within 5 s: {what}");
    }

    /// An older node opens a database that a newer node migrated (a rolling upgrade).
    #[tokio::test]
    async fn a_database_with_newer_migrations_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        let settings = StoreSettings {
            database: Database::Sqlite(dir.path().join("otpgate.db")),
            max_connections: 2,
            connect_timeout: Duration::from_secs(5),
            commit_timeout: Duration::from_secs(5),
        };
        let store = Store::open(&settings).await.unwrap();
        query::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (999, 'from a newer version', 1, x'00', 0)",
        )
        .execute(store.db())
        .await
        .unwrap();
        store.close().await;
        let again = Store::open(&settings).await;
        assert!(again.is_ok(), "{:?}", again.err());
        again.unwrap().close().await;
    }

    /// While commits stall a login's token lookup is refused at once; the watch's probe
    /// commits, and lookups answer again.
    #[tokio::test]
    async fn lookups_are_refused_while_commits_stall() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreSettings {
            database: Database::Sqlite(dir.path().join("otpgate.db")),
            max_connections: 2,
            connect_timeout: Duration::from_secs(5),
            commit_timeout: Duration::from_secs(1),
        })
        .await
        .unwrap();
        // no await before the lookup: the watch cannot run in between on this runtime
        store
            .health()
            .stall_because(Duration::from_secs(1), std::time::Instant::now(), "");
        let refused = store.tokens().of_user("r", "alice").await.unwrap_err();
        assert!(refused.is_unavailable(), "{refused}");
        until("the probe's commit closes the breaker", || {
            !store.health().is_down()
        })
        .await;
        assert!(
            store
                .tokens()
                .of_user("r", "alice")
                .await
                .unwrap()
                .is_empty()
        );
        store.close().await;
    }

    #[test]
    fn database_urls() {
        let base = Path::new("/etc/otpgate");
        assert_eq!(
            Database::parse("sqlite:../var/otpgate.db", base),
            Some(Database::Sqlite(PathBuf::from(
                "/etc/otpgate/../var/otpgate.db"
            )))
        );
        assert_eq!(
            Database::parse("sqlite:///var/lib/otpgate/db", base),
            Some(Database::Sqlite(PathBuf::from("/var/lib/otpgate/db")))
        );
        assert_eq!(Database::parse("sqlite::memory:", base), None);
        assert_eq!(Database::parse("mysql://x", base), None);
        let pg = Database::parse("postgres://otp:s3cret@127.0.0.1:5432/otp", base).unwrap();
        assert_eq!(pg.redacted(), "postgres://otp:***@127.0.0.1:5432/otp");
    }
}
