//! Opening a SQLite connection the way every one of the store's is opened, and the busy
//! handler that waits for the write lock.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::store::StoreError;

/// A WAL file larger than this is truncated to it when the WAL starts over.
const WAL_FILE_LIMIT: i64 = 128 * 1024 * 1024;

/// Distinct statements each connection keeps prepared.
const STATEMENT_CACHE: usize = 32;

/// Open a connection: WAL, every commit fsynced, checkpoints left to `checkpoints`.
pub(in crate::store) fn connect(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_handler(Some(wait_for_lock))?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "SQLite refused WAL mode (journal_mode is {mode})"
        )));
    }
    // FULL: a commit is fsynced before it returns, so an accepted OTP survives a power cut.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // checkpoints run in the background (`store::sqlite::checkpoints`), never inside a commit
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", WAL_FILE_LIMIT)?;
    if read_only {
        conn.pragma_update(None, "query_only", "ON")?;
        // 1 MiB of pages (the default is 2): the token lookups' index pages stay; the rest
        // is one pread from the OS's cache away
        conn.pragma_update(None, "cache_size", -1024)?;
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Wait for a lock in short steps, up to about 5 s. SQLite's own busy handler sleeps 1, 2, 5,
/// 10 … 100 ms between tries, so a lock held for a millisecond could cost a batch of logins
/// 50 ms and more.
pub(in crate::store) fn wait_for_lock(attempt: i32) -> bool {
    match attempt {
        0..1000 => std::thread::sleep(Duration::from_micros(100)),
        1000..5000 => std::thread::sleep(Duration::from_millis(1)),
        _ => return false,
    }
    true
}

pub(in crate::store) fn run_statement(conn: &Connection, sql: &str) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}
