//! SQLite's connections for everything off the hot path (admin changes, challenges, listings,
//! the request ledger, migrations): a few rusqlite connections, each statement run on tokio's
//! blocking threads. In WAL mode they share the file with the writer and reader threads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;
use rusqlite::types::ValueRef;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::connection::{connect, run_statement};
use crate::store::StoreError;
use crate::store::query::{Param, Query, Row, Value};

/// The pool. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// One per connection that may be open at once.
    permits: Arc<Semaphore>,
    max: usize,
    closed: AtomicBool,
}

/// A connection taken from the pool; it goes back when dropped.
#[derive(Debug)]
struct Lease {
    inner: Arc<Inner>,
    conn: Option<Connection>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !self.inner.closed.load(Ordering::Acquire)
        {
            self.inner
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
    }
}

impl Lease {
    /// Run `work` on this connection on a blocking thread.
    async fn run<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self
            .conn
            .take()
            .ok_or_else(|| StoreError::Corrupt("a database connection was lost".into()))?;
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = work(&conn);
            (conn, result)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("a database task failed: {e}")))?;
        self.conn = Some(conn);
        result
    }
}

impl Pool {
    /// Connections to the file at `path`, at most `max` at once; the first is opened now, so
    /// that a file that cannot be opened fails here.
    pub(in crate::store) fn open(path: &Path, max: usize) -> Result<Self, StoreError> {
        let first = connect(path, false)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                idle: Mutex::new(vec![first]),
                permits: Arc::new(Semaphore::new(max.max(1))),
                max: max.max(1),
                closed: AtomicBool::new(false),
            }),
        })
    }

    async fn lease(&self) -> Result<Lease, StoreError> {
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Corrupt("the database is closed".into()))?;
        let idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let path = self.inner.path.clone();
                tokio::task::spawn_blocking(move || connect(&path, false))
                    .await
                    .map_err(|e| StoreError::Corrupt(format!("a database task failed: {e}")))??
            }
        };
        Ok(Lease {
            inner: Arc::clone(&self.inner),
            conn: Some(conn),
            _permit: permit,
        })
    }

    /// Run `work` on a connection of the pool, on a blocking thread.
    pub(in crate::store) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.lease().await?.run(work).await
    }

    pub(in crate::store) async fn execute(&self, q: Query) -> Result<u64, StoreError> {
        self.run(move |conn| execute(conn, &q)).await
    }

    pub(in crate::store) async fn fetch_all(&self, q: Query) -> Result<Vec<Row>, StoreError> {
        self.run(move |conn| fetch_all(conn, &q)).await
    }

    pub(in crate::store) async fn begin_write(&self) -> Result<Tx, StoreError> {
        let mut lease = self.lease().await?;
        lease
            .run(|conn| Ok(run_statement(conn, "BEGIN IMMEDIATE")?))
            .await?;
        Ok(Tx { lease, open: true })
    }

    /// Close the idle connections; leased ones close when they come back.
    pub(in crate::store) fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.permits.close();
        self.inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Connections open (leased or idle), and how many of them are idle.
    pub(in crate::store) fn connections(&self) -> (u32, usize) {
        let idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        let leased = self.inner.max - self.inner.permits.available_permits();
        (u32::try_from(leased + idle).unwrap_or(u32::MAX), idle)
    }

    pub(in crate::store) fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }
}

/// A write transaction on one leased connection. Dropped without [`Tx::commit`], it is rolled
/// back.
#[derive(Debug)]
pub(crate) struct Tx {
    lease: Lease,
    open: bool,
}

impl Tx {
    pub(in crate::store) async fn execute(&mut self, q: Query) -> Result<u64, StoreError> {
        self.lease.run(move |conn| execute(conn, &q)).await
    }

    pub(in crate::store) async fn fetch_all(&mut self, q: Query) -> Result<Vec<Row>, StoreError> {
        self.lease.run(move |conn| fetch_all(conn, &q)).await
    }

    pub(in crate::store) async fn commit(mut self) -> Result<(), StoreError> {
        self.lease
            .run(|conn| Ok(run_statement(conn, "COMMIT")?))
            .await?;
        self.open = false;
        Ok(())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        // a rollback only releases the lock and drops the transaction's pages: it does not wait
        let rolled_back =
            self.lease.conn.as_ref().is_some_and(|conn| {
                conn.is_autocommit() || run_statement(conn, "ROLLBACK").is_ok()
            });
        if !rolled_back {
            // a connection left inside a transaction must not go back to the pool
            self.lease.conn = None;
        }
    }
}

/// Bind `q`'s arguments to `stmt`: `$N` and `?N` by their number, a bare `?` by its place.
fn bind(stmt: &mut rusqlite::Statement<'_>, q: &Query) -> Result<(), StoreError> {
    let params = q.params();
    for index in 1..=stmt.parameter_count() {
        let number = match stmt.parameter_name(index) {
            Some(name) => name
                .get(1..)
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| StoreError::Corrupt(format!("a statement names {name}")))?,
            None => index,
        };
        let value = params.get(number - 1).ok_or_else(|| {
            StoreError::Corrupt(format!("no argument for ${number} in {}", q.text()))
        })?;
        match value {
            Param::I64(v) => stmt.raw_bind_parameter(index, v)?,
            Param::Text(v) => stmt.raw_bind_parameter(index, v)?,
            Param::Blob(v) => stmt.raw_bind_parameter(index, v)?,
            Param::Null | Param::NullI64 | Param::NullBlob => {
                stmt.raw_bind_parameter(index, rusqlite::types::Null)?;
            }
        }
    }
    Ok(())
}

/// Run `q` on `conn`; how many rows it changed.
pub(in crate::store) fn execute(conn: &Connection, q: &Query) -> Result<u64, StoreError> {
    let mut stmt = conn.prepare_cached(q.text())?;
    bind(&mut stmt, q)?;
    if stmt.column_count() == 0 {
        return Ok(stmt.raw_execute()? as u64);
    }
    // a statement with RETURNING: its rows are not wanted, its changes are
    let mut rows = stmt.raw_query();
    while rows.next()?.is_some() {}
    Ok(conn.changes())
}

/// Run `q` on `conn` and take every row.
pub(in crate::store) fn fetch_all(conn: &Connection, q: &Query) -> Result<Vec<Row>, StoreError> {
    let mut stmt = conn.prepare_cached(q.text())?;
    bind(&mut stmt, q)?;
    let columns: Arc<[String]> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let width = columns.len();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(v) => Value::Int(v),
                ValueRef::Real(v) => Value::Real(v),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        out.push(Row {
            columns: Arc::clone(&columns),
            values,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::query::query;

    fn pool() -> (tempfile::TempDir, Pool) {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open(&dir.path().join("t.db"), 2).unwrap();
        (dir, pool)
    }

    #[tokio::test]
    async fn arguments_go_by_their_number() {
        let (_dir, pool) = pool();
        pool.execute(query("CREATE TABLE t (a BIGINT, b TEXT, c BLOB)"))
            .await
            .unwrap();
        // placeholders out of order and one used twice
        let changed = pool
            .execute(
                query("INSERT INTO t (c, b, a) VALUES ($3, $2, $1), ($3, $2, $1 + 1)")
                    .bind(7)
                    .bind("x")
                    .bind(vec![1u8, 2]),
            )
            .await
            .unwrap();
        assert_eq!(changed, 2);
        let rows = pool
            .fetch_all(query("SELECT a, b, c FROM t WHERE b = $1 ORDER BY a").bind("x"))
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].try_get::<i64>("a").unwrap(), 8);
        assert_eq!(rows[0].try_get::<Vec<u8>>("c").unwrap(), vec![1, 2]);
        let missing = pool
            .execute(query("INSERT INTO t (a) VALUES ($2)").bind(1))
            .await
            .unwrap_err();
        assert!(
            missing.to_string().contains("no argument for $2"),
            "{missing}"
        );
    }

    /// A transaction dropped without a commit leaves nothing, and its connection serves again.
    #[tokio::test]
    async fn an_uncommitted_transaction_is_rolled_back() {
        let (_dir, pool) = pool();
        pool.execute(query("CREATE TABLE t (a BIGINT)"))
            .await
            .unwrap();
        let mut tx = pool.begin_write().await.unwrap();
        tx.execute(query("INSERT INTO t (a) VALUES (1)"))
            .await
            .unwrap();
        drop(tx);
        let mut tx = pool.begin_write().await.unwrap();
        tx.execute(query("INSERT INTO t (a) VALUES (2)"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let rows = pool.fetch_all(query("SELECT a FROM t")).await.unwrap();
        let values: Vec<i64> = rows.iter().map(|r| r.get(0).unwrap()).collect();
        assert_eq!(values, vec![2]);
    }
}
