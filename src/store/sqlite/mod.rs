//! SQLite, the embedded default: connections owned by threads of the store's own.
//!
//! sqlx runs every SQLite connection on a thread of its own and hands each statement, and each
//! result row, across a channel to it and back; under load those hand-offs cost much of the
//! server's CPU. Here the reader threads ([`reader`]) and the writer thread ([`writer`]) own
//! their connections: a thread takes every job that queued up while it was busy and runs them
//! one after another with cached prepared statements, so a batch costs one wake-up, not one
//! per statement and row. [`checkpoints`] keeps the write-ahead log small.

pub(super) mod admin;
pub(super) mod checkpoints;
mod connection;
pub(crate) mod inspect;
pub(in crate::store) mod migrate;
pub(super) mod reader;
pub(super) mod writer;

use std::path::Path;
use std::sync::Arc;

use super::diagnostics::health::Health;
use super::{Backend, Store, StoreError, StoreSettings, absolute, db, ledger};

/// Reader threads. One answers a lookup in microseconds and takes the whole queue at once
/// under load; a second keeps lookups going while the first waits on the disk for a page.
const READERS: usize = 2;

/// Open (or create) the database file at `path`, migrate it and start the writer and reader
/// threads.
pub(super) async fn open(path: &Path, settings: &StoreSettings) -> Result<Store, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Open(format!("cannot create {}: {e}", dir.display())))?;
    }
    let file = absolute(path);
    create_private(&file)?;
    let max = usize::try_from(settings.max_connections).unwrap_or(1);
    let pool = admin::Pool::open(&file, max)?;
    pool.run(migrate::run).await?;
    let db = db::Db::Sqlite(pool.clone());
    super::warn_of_newer_migrations(&db, migrate::MIGRATIONS).await?;
    // A SQLite file is never unreachable, but its commits can stall: the writer's commit
    // watch opens the breaker then, and names the cause it sees.
    let health = Arc::new(Health::default());
    let wal_restart = Arc::new(checkpoints::WalRestart::default());
    let writer = writer::start_writer(
        &file,
        Arc::clone(&wal_restart),
        Arc::clone(&health),
        settings.commit_timeout,
    )?;
    let reader = reader::start_readers(&file, READERS)?;
    tokio::spawn(checkpoints::run(pool, wal_restart));
    Ok(Store {
        ledger: ledger::Ledger::start(db.clone(), Arc::clone(&health)),
        db,
        backend: Backend::Sqlite,
        writer,
        reader,
        health,
    })
}

/// Create the database file readable by its owner only, if it does not exist: it holds PIN
/// hashes and the audit trail. SQLite gives its WAL and shared-memory files the same mode.
fn create_private(file: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Open(format!(
            "cannot create {}: {e}",
            file.display()
        ))),
    }
}

#[cfg(test)]
pub(super) mod test_db {
    //! Databases for the backend's unit tests.
    use rusqlite::Connection;

    /// An in-memory database with every migration.
    pub(crate) fn migrated_memory() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for (_, _, sql) in super::migrate::MIGRATIONS {
            conn.execute_batch(sql).unwrap();
        }
        conn
    }

    /// A WAL-mode database file with every migration (gone with the directory), and an admin
    /// connection to it.
    pub(crate) fn migrated_file() -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpgate.db");
        let admin = Connection::open(&path).unwrap();
        admin.pragma_update(None, "journal_mode", "WAL").unwrap();
        for (_, _, sql) in super::migrate::MIGRATIONS {
            admin.execute_batch(sql).unwrap();
        }
        (dir, path, admin)
    }

    /// [`migrated_file`] with one token, `T1`, and its id.
    pub(crate) fn file_with_a_token() -> (tempfile::TempDir, std::path::PathBuf, Connection, i64) {
        let (dir, path, admin) = migrated_file();
        admin
            .execute(
                "INSERT INTO token (serial, tokentype, created) VALUES ('T1', 'hotp', 0)",
                [],
            )
            .unwrap();
        let id = admin.last_insert_rowid();
        (dir, path, admin, id)
    }

    pub(crate) fn otp_counter(admin: &Connection, id: i64) -> i64 {
        admin
            .query_row("SELECT otp_counter FROM token WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
    }
}
