//! The store's one error type, for both drivers.

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
    Migrate(String),
    /// The database cannot be opened or created (a directory that cannot be made, a file
    /// that is not a database).
    #[error("{0}")]
    Open(String),
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
        let rusqlite_locked = |e: &rusqlite::Error| {
            matches!(e, rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::DatabaseBusy)
        };
        if let Some(e) = cause.downcast_ref::<Self>() {
            matches!(e, Self::Sqlite(e) if rusqlite_locked(e))
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

    /// Whether a statement broke a UNIQUE constraint.
    pub(crate) fn is_unique_violation(&self) -> bool {
        match self {
            Self::Db(sqlx::Error::Database(d)) => d.is_unique_violation(),
            Self::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
                f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            _ => false,
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
