//! SQLite's token lookups: reader threads, each owning a read-only connection, serve the
//! lookup queue (`store::lookup`), a batch at a time in one read transaction.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, params};
use tokio::sync::mpsc;

use super::connection::{connect, run_statement};
use crate::store::StoreError;
use crate::store::lookup::{Lookup, TOKEN_COLUMNS, TOKEN_SELECT, TokenReader, add_token_row};
use crate::store::query::Columns;
use crate::token::Token;

/// Lookups one reader thread takes from the queue at a time: enough to save wake-ups under
/// load, few enough that another reader thread gets the rest.
const READ_BATCH: usize = 32;

/// Start `threads` reader threads, each with its own connection, serving one queue.
pub(in crate::store) fn start_readers(
    path: &Path,
    threads: usize,
) -> Result<TokenReader, StoreError> {
    let (handle, rx) = TokenReader::channel();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..threads.max(1) {
        let conn = connect(path, true)?;
        let rx = Arc::clone(&rx);
        std::thread::Builder::new()
            .name(format!("otpgate-db-read{i}"))
            .spawn(move || read_loop(&conn, &rx))
            .map_err(|source| StoreError::Thread {
                what: "reader",
                source,
            })?;
    }
    Ok(handle)
}

/// Ends when every [`TokenReader`] handle is gone.
fn read_loop(conn: &Connection, rx: &Mutex<mpsc::Receiver<Lookup>>) {
    let sql =
        format!("{TOKEN_SELECT}WHERE t.owner_realm = ?1 AND t.owner_login = ?2 ORDER BY t.id");
    let mut batch = Vec::with_capacity(READ_BATCH);
    loop {
        {
            // One thread waits on the queue at a time; the others wait for the lock.
            let mut rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(first) = rx.blocking_recv() else {
                return;
            };
            batch.push(first);
            crate::store::take_queued(&mut rx, &mut batch, READ_BATCH);
        }
        if !serve_lookups(conn, &sql, &mut batch) {
            return;
        }
    }
}

/// Answer a batch of lookups in one read transaction: SQLite drops a connection's page cache
/// when it starts a read after another connection committed, so lookups that each ran on
/// their own read the same index and table pages again, one `pread` each. `false` when the
/// transaction could
/// not be ended: then this thread must stop, or its next batch would read this one's snapshot.
fn serve_lookups(conn: &Connection, sql: &str, batch: &mut Vec<Lookup>) -> bool {
    if batch.len() > 1 {
        let _ = run_statement(conn, "BEGIN");
    }
    for lookup in batch.drain(..) {
        let answer = user_tokens(conn, sql, &lookup.realm, &lookup.login);
        let _ = lookup.reply.send(answer);
    }
    if !conn.is_autocommit()
        && let Err(e) = run_statement(conn, "COMMIT").or_else(|_| run_statement(conn, "ROLLBACK"))
    {
        tracing::error!(target: "otpgate::store", error = %e, "a lookup batch's read transaction cannot be ended; this reader thread stops");
        return false;
    }
    true
}

fn user_tokens(
    conn: &Connection,
    sql: &str,
    realm: &str,
    login: &str,
) -> Result<Vec<Token>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params![realm, login])?;
    let mut tokens = Vec::new();
    while let Some(row) = rows.next()? {
        add_token_row(&mut tokens, &LookupRow::new(row))?;
    }
    Ok(tokens)
}

/// A row of the lookup, its columns found by their place in [`TOKEN_COLUMNS`] (rusqlite's own
/// lookup by name asks SQLite for every column's name on every call).
struct LookupRow<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    /// Where the search for the next name starts: a row is read mostly in the columns' order,
    /// so searching from the start each time compared ~16 names a column, 32 columns a token.
    next: std::cell::Cell<usize>,
}

impl<'r, 's> LookupRow<'r, 's> {
    fn new(row: &'r rusqlite::Row<'s>) -> Self {
        Self {
            row,
            next: std::cell::Cell::new(0),
        }
    }

    fn index(&self, name: &str) -> Result<usize, StoreError> {
        let start = self.next.get();
        let found = (start..TOKEN_COLUMNS.len())
            .chain(0..start)
            .find(|&i| TOKEN_COLUMNS[i] == name)
            .ok_or_else(|| StoreError::Corrupt(format!("the token lookup has no column {name}")))?;
        self.next.set(found + 1);
        Ok(found)
    }
}

impl Columns for LookupRow<'_, '_> {
    fn int(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self.row.get(self.index(name)?)?)
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.row.get(self.index(name)?)?)
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.row.get(self.index(name)?)?)
    }
    fn opt_blob(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.row.get(self.index(name)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_db::{migrated_file, migrated_memory};
    use super::*;

    /// The names [`LookupRow`] looks up are the names SQLite gives the lookup's columns.
    #[test]
    fn lookup_columns_match_the_select() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(include_str!("../../../migrations/sqlite/0001_initial.sql"))
            .unwrap();
        let stmt = conn.prepare(&format!("{TOKEN_SELECT}WHERE 1 = 0")).unwrap();
        assert_eq!(stmt.column_names(), TOKEN_COLUMNS.to_vec());
    }

    /// A batch of lookups shares one read transaction and ends it: the next batch sees what
    /// another connection committed in between, and so does a lone lookup.
    #[test]
    fn a_lookup_batch_leaves_no_snapshot_behind() {
        let (_dir, path, admin) = migrated_file();
        let reader = connect(&path, true).unwrap();
        let sql =
            format!("{TOKEN_SELECT}WHERE t.owner_realm = ?1 AND t.owner_login = ?2 ORDER BY t.id");
        let serve = |n: usize| {
            let (mut batch, mut answers) = (Vec::new(), Vec::new());
            for _ in 0..n {
                let (reply, answer) = tokio::sync::oneshot::channel();
                batch.push(Lookup {
                    realm: "r".into(),
                    login: "alice".into(),
                    reply,
                });
                answers.push(answer);
            }
            assert!(serve_lookups(&reader, &sql, &mut batch));
            assert!(reader.is_autocommit(), "the read transaction was ended");
            answers
                .into_iter()
                .map(|a| a.blocking_recv().unwrap().unwrap().len())
                .collect::<Vec<_>>()
        };
        assert_eq!(serve(3), vec![0, 0, 0]);
        let add = |serial: &str| {
            admin
                .execute(
                    "INSERT INTO token (serial, tokentype, created, owner_realm, owner_login) \
                     VALUES (?1, 'hotp', 0, 'r', 'alice')",
                    [serial],
                )
                .unwrap();
        };
        add("T1");
        assert_eq!(serve(3), vec![1, 1, 1]);
        add("T2");
        assert_eq!(serve(1), vec![2]);
    }

    /// A row's columns are found by name in any order, and a name the lookup lacks is an
    /// error, wherever the search starts.
    #[test]
    fn lookup_row_finds_columns_in_any_order() {
        let conn = migrated_memory();
        conn.execute(
            "INSERT INTO token (serial, tokentype, created, owner_realm, owner_login, otp_counter) \
             VALUES ('T1', 'hotp', 7, 'r', 'alice', 42)",
            [],
        )
        .unwrap();
        let sql =
            format!("{TOKEN_SELECT}WHERE t.owner_realm = ?1 AND t.owner_login = ?2 ORDER BY t.id");
        let mut stmt = conn.prepare(&sql).unwrap();
        let mut rows = stmt.query(params!["r", "alice"]).unwrap();
        let row = LookupRow::new(rows.next().unwrap().unwrap());
        for name in TOKEN_COLUMNS.iter().rev().chain(TOKEN_COLUMNS.iter()) {
            let at = row.index(name).unwrap();
            assert_eq!(TOKEN_COLUMNS[at], *name);
        }
        assert_eq!(row.int("otp_counter").unwrap(), 42);
        assert_eq!(row.int("created").unwrap(), 7);
        assert_eq!(row.opt_text("serial").unwrap().as_deref(), Some("T1"));
        assert!(matches!(row.index("nonsense"), Err(StoreError::Corrupt(_))));
        assert_eq!(row.int("id").unwrap(), 1, "found after a failed search");
    }
}
