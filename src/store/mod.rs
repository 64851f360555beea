//! The token store: sqlx pools (SQLite by default, PostgreSQL for several nodes), migrations
//! per backend, and typed queries.
//!
//! One SQL dialect with `$N` placeholders runs on both backends through sqlx's `Any` driver.
//! Every OTP consumption, counter and failcount change is a single atomic `UPDATE … WHERE …`
//! whose changed rows (or `RETURNING`) say whether it applied, so two requests (or two nodes on
//! one PostgreSQL) can never accept the same OTP.
//!
//! - [`tokens`]: tokens, tokeninfo, token realms, and the hot-path updates;
//! - [`audit`]: audit rows and the batching writer;
//! - `writer` and `reader`: the hot path's group commit and batched token lookups on sqlx
//!   (PostgreSQL); `sqlite_direct`: the same on threads that own SQLite connections.
//! - `health`: the breaker that makes the hot path fail at once, not after `connect_timeout`,
//!   while PostgreSQL cannot be reached or commits stall; `commit_watch`: SQLite's stalls.

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
mod diagnostics;
mod jobs;
pub mod ledger;
pub mod login_index;
mod lookup;
mod postgres;
mod queued_counters;
mod sql;
mod sqlite;
mod statements;
pub mod tokens;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, AssertSqlSafe, Executor, SqlSafeStr};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot start the store's {what} thread: {source}")]
    Thread {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a token with serial {0} already exists")]
    DuplicateSerial(String),
    #[error("no token with serial {0}")]
    NoSuchToken(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// The database cannot be reached (PostgreSQL down, the link cut, no connection in time):
    /// the request fails at once while `health` says so.
    #[error("token store unavailable: {0}")]
    Unavailable(String),
    /// The failure of a batch this request's statement was part of, passed on to each job of
    /// the batch as text (errors are not `Clone`).
    #[error("{0}")]
    Relayed(String),
    #[error("invalid value for {key}: {message}")]
    InvalidValue { key: String, message: String },
}

impl StoreError {
    /// Whether the database could not be reached, rather than refusing a statement.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Db(e) => unreachable(e),
            _ => false,
        }
    }

    /// Whether `cause`, one link of an error's chain, is SQLite's "database is locked":
    /// another connection held the write lock for longer than the statement waited
    /// (`busy_timeout`). A link of any of the store's error types: wrappers that pass a
    /// `StoreError` on transparently show its source instead.
    pub fn is_locked(cause: &(dyn std::error::Error + 'static)) -> bool {
        let sqlx_locked = |e: &sqlx::Error| match e {
            sqlx::Error::Database(d) => d
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .is_some_and(|c| c & 0xff == 5),
            _ => false,
        };
        let rusqlite_locked = |e: &rusqlite::Error| {
            matches!(e, rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::DatabaseBusy)
        };
        if let Some(e) = cause.downcast_ref::<Self>() {
            match e {
                Self::Db(e) => sqlx_locked(e),
                Self::Sqlite(e) => rusqlite_locked(e),
                _ => false,
            }
        } else if let Some(e) = cause.downcast_ref::<sqlx::Error>() {
            sqlx_locked(e)
        } else {
            cause
                .downcast_ref::<rusqlite::Error>()
                .is_some_and(rusqlite_locked)
        }
    }

    /// The reason of an unreachable database, without the "database error" prefix.
    pub fn unavailable_reason(&self) -> String {
        match self {
            Self::Unavailable(reason) => reason.clone(),
            Self::Db(e) => e.to_string(),
            other => other.to_string(),
        }
    }

    /// This failure for another job of the same batch.
    pub(crate) fn relay(&self) -> Self {
        if self.is_unavailable() {
            Self::Unavailable(self.unavailable_reason())
        } else {
            Self::Relayed(self.to_string())
        }
    }
}

/// sqlx errors that say the server did not answer: no connection in time, a broken one, and
/// PostgreSQL's connection exceptions (SQLSTATE class 08) and shutdowns (57P01–57P03).
fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

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
fn absolute(path: &Path) -> PathBuf {
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
    pool: AnyPool,
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
    /// Connect (creating a SQLite file if needed) and apply the migrations.
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let mut sqlite_file = None;
        let url = match &settings.database {
            Database::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Db(sqlx::Error::Configuration(
                            format!("cannot create {}: {e}", dir.display()).into(),
                        ))
                    })?;
                }
                let absolute = absolute(path);
                let url = format!("sqlite://{}?mode=rwc", absolute.display());
                sqlite_file = Some(absolute);
                url
            }
            Database::Postgres(url) => url.clone(),
        };
        let options: AnyConnectOptions = url.parse()?;
        let backend = settings.database.backend();
        // our backends are found by it when a commit stalls (`store::diagnostics::pg_waits`)
        let name_connections = backend == Backend::Postgres && !url.contains("application_name=");
        let mut pool_options = AnyPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .min_connections(1)
            .acquire_timeout(settings.connect_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; synchronous=FULL fsyncs every
                        // commit so an accepted OTP survives a power cut; busy_timeout waits for
                        // the writer lock instead of failing.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        // Checkpoints run from a background task (below), not inside the
                        // commit that happens to cross the WAL size limit: that commit (and
                        // every login waiting for it) stalled for tens of milliseconds.
                        conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                    }
                    if name_connections {
                        conn.execute(diagnostics::pg_waits::SET_APPLICATION_NAME)
                            .await?;
                    }
                    Ok(())
                })
            });
        // a SQLite connection is a file: it cannot go silent
        if backend == Backend::Postgres {
            let limit = settings.connect_timeout;
            pool_options = pool_options.after_release(move |conn, _meta| {
                Box::pin(postgres::returning_connection_answers(conn, limit))
            });
        }
        let pool = pool_options.connect_with(options).await?;
        migrate(&pool, backend).await?;
        let wal_restart = Arc::new(sqlite::checkpoints::WalRestart::default());
        // A SQLite file is never unreachable, but its commits can stall: the writer thread's
        // commit watch opens the breaker then (`store::diagnostics::commit_watch`).
        let health = Arc::new(match backend {
            Backend::Postgres => {
                diagnostics::health::Health::with_commit_timeout(settings.commit_timeout)
                    .with_answer_limit(settings.connect_timeout)
                    .with_stall_cause("a synchronous standby missing?")
            }
            // the commit watch names the cause it sees
            Backend::Sqlite => diagnostics::health::Health::default(),
        });
        if backend == Backend::Postgres {
            tokio::spawn(postgres::probe::run(pool.clone(), Arc::clone(&health)));
        }
        let (writer, reader) = match &sqlite_file {
            Some(file) => (
                sqlite::writer::start_writer(
                    file,
                    Arc::clone(&wal_restart),
                    Arc::clone(&health),
                    settings.commit_timeout,
                )?,
                sqlite::reader::start_readers(file, SQLITE_READERS)?,
            ),
            None => {
                let parallel = usize::try_from(settings.max_connections.max(3) - 2).unwrap_or(1);
                (
                    postgres::writer::start(pool.clone(), Arc::clone(&health)),
                    postgres::reader::start(pool.clone(), parallel, Arc::clone(&health)),
                )
            }
        };
        let store = Self {
            writer,
            reader,
            ledger: ledger::Ledger::start(pool.clone(), Arc::clone(&health)),
            health,
            pool,
            backend,
        };
        if backend == Backend::Sqlite {
            tokio::spawn(sqlite::checkpoints::run(store.pool.clone(), wal_restart));
        }
        Ok(store)
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

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn health(&self) -> &Arc<diagnostics::health::Health> {
        &self.health
    }

    /// Whether the database answers, as far as the hot path knows (false while the breaker is
    /// open).
    pub fn reachable(&self) -> bool {
        !self.health.is_down()
    }

    /// The connections sqlx's pool holds, and how many of them are idle. A connection that
    /// is neither idle nor in a query is still being checked on its way back to the pool.
    pub fn pool_connections(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// Why the last group commit failed, when the database answers but refuses to store (a
    /// full disk): no login can be accepted then.
    pub fn refusing_writes(&self) -> Option<String> {
        self.health.refusing_writes()
    }

    /// A transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later fails with
    /// SQLITE_BUSY when another connection (the audit writer) committed in between.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        begin_write(&self.pool, self.backend).await
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
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
        .await
    }

    pub async fn close(&self) {
        // counter increments nobody waited for
        if let Err(e) = self.writer.flush().await {
            tracing::error!(target: "otpgate::store", error = %e, "queued writes not stored at close");
        }
        self.pool.close().await;
    }
}

/// Reader threads of the SQLite hot path. One thread answers a lookup in microseconds and
/// takes the whole queue at once under load; a second keeps lookups going while the first
/// waits on the disk for a page.
const SQLITE_READERS: usize = 2;

async fn migrate(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    let list = match backend {
        Backend::Sqlite => sqlite::MIGRATIONS,
        Backend::Postgres => postgres::MIGRATIONS,
    };
    let migrations = list
        .iter()
        .map(|(version, desc, sql)| {
            Migration::new(
                *version,
                (*desc).into(),
                MigrationType::Simple,
                AssertSqlSafe(*sql).into_sql_str(),
                false,
            )
        })
        .collect();
    let mut migrator = Migrator::with_migrations(migrations);
    // A rolling upgrade: a node of the older version keeps (re)starting against the database
    // a newer node already migrated. Migrations only add (docs/cluster.md, "Upgrades").
    migrator.set_ignore_missing(true);
    migrator.run(pool).await?;
    let known = list.last().map_or(0, |(version, _, _)| *version);
    let newer: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM _sqlx_migrations WHERE version > $1 ORDER BY version",
    )
    .bind(known)
    .fetch_all(pool)
    .await?;
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

/// See [`Store::begin_write`].
pub(crate) async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
    Ok(match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => pool.begin().await?,
    })
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
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (999, 'from a newer version', 1, x'00', 0)",
        )
        .execute(store.pool())
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
