//! The connection the backend-neutral modules run their statements on: one driver per backend,
//! rusqlite for SQLite (`store::sqlite::admin`) and sqlx for PostgreSQL
//! (`store::postgres::admin`).

use super::StoreError;
use std::future::Future;
use std::pin::Pin;

use super::postgres::admin as postgres;
use super::query::{Query, Row};
use super::sqlite::admin::{Pool as SqlitePool, Tx as SqliteTx};

/// The store's connections for everything but the hot path's batches.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(sqlx::PgPool),
}

/// A transaction that writes. Rolled back unless committed.
#[derive(Debug)]
pub(crate) enum Tx {
    Sqlite(SqliteTx),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Where a statement runs: on any connection of the pool, or inside a transaction.
pub(crate) enum On<'a> {
    Db(&'a Db),
    Tx(&'a mut Tx),
}

impl<'a> From<&'a Db> for On<'a> {
    fn from(db: &'a Db) -> Self {
        Self::Db(db)
    }
}

impl<'a> From<&'a mut Tx> for On<'a> {
    fn from(tx: &'a mut Tx) -> Self {
        Self::Tx(tx)
    }
}

impl Db {
    /// A transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later fails with
    /// SQLITE_BUSY when another connection committed in between.
    pub(crate) fn begin_write(&self) -> Pending<'_, Tx> {
        Box::pin(async move {
            Ok(match self {
                Self::Sqlite(pool) => Tx::Sqlite(pool.begin_write().await?),
                Self::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            })
        })
    }

    /// Statements that must not be prepared or run in a transaction (PostgreSQL's
    /// `CREATE INDEX CONCURRENTLY`).
    pub(crate) async fn execute_unprepared(&self, sql: &'static str) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(pool) => pool.run(move |conn| Ok(conn.execute_batch(sql)?)).await,
            Self::Postgres(pool) => {
                sqlx::raw_sql(sql).execute(pool).await?;
                Ok(())
            }
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close(),
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

impl Tx {
    pub(crate) fn commit(self) -> Pending<'static, ()> {
        Box::pin(async move {
            match self {
                Self::Sqlite(tx) => tx.commit().await,
                Self::Postgres(tx) => Ok(tx.commit().await?),
            }
        })
    }
}

/// A statement's answer on its way. Boxed: a login awaits these only on its rare branches
/// (a serial request, a challenge, auto-resync), and an unboxed future of either driver would
/// make every login's future, which tokio copies when it spawns it, many times larger.
pub(crate) type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

impl Query {
    /// Run it; how many rows it changed.
    pub(crate) fn execute<'a>(self, on: impl Into<On<'a>>) -> Pending<'a, u64> {
        let on = on.into();
        Box::pin(async move {
            match on {
                On::Db(Db::Sqlite(pool)) => pool.execute(self).await,
                On::Tx(Tx::Sqlite(tx)) => tx.execute(self).await,
                On::Db(Db::Postgres(pool)) => postgres::execute(pool, self).await,
                On::Tx(Tx::Postgres(tx)) => postgres::execute(&mut **tx, self).await,
            }
        })
    }

    pub(crate) fn fetch_all<'a>(self, on: impl Into<On<'a>>) -> Pending<'a, Vec<Row>> {
        let on = on.into();
        Box::pin(async move {
            match on {
                On::Db(Db::Sqlite(pool)) => pool.fetch_all(self).await,
                On::Tx(Tx::Sqlite(tx)) => tx.fetch_all(self).await,
                On::Db(Db::Postgres(pool)) => postgres::fetch_all(pool, self).await,
                On::Tx(Tx::Postgres(tx)) => postgres::fetch_all(&mut **tx, self).await,
            }
        })
    }

    pub(crate) async fn fetch_optional<'a>(
        self,
        on: impl Into<On<'a>>,
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.fetch_all(on).await?.into_iter().next())
    }

    pub(crate) async fn fetch_one<'a>(self, on: impl Into<On<'a>>) -> Result<Row, StoreError> {
        self.fetch_optional(on)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a query that returns a row returned none".into()))
    }
}
