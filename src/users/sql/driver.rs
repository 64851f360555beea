//! A database read as text rows, whatever its engine: SQLite with rusqlite (read-only), PostgreSQL
//! and MariaDB/MySQL with sqlx. The `sql` resolver reads users with it, `otpgate import
//! privacyidea` another system's tables.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::{Column, Row};

use super::SqlDatabase;
use super::statements::Dialect;
use crate::secret::Secret;
use crate::users::error::ErrorKind;

/// One result row as text: column name → value (NULL left out).
pub type TextRow = Vec<(String, String)>;

enum Driver {
    Sqlite {
        path: PathBuf,
        conn: Arc<Mutex<Option<rusqlite::Connection>>>,
    },
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
}

/// A connection (pool) to one database.
pub struct TextDb {
    driver: Driver,
}

impl TextDb {
    /// Pools connect lazily: a database that is down is an error at the first query.
    pub fn open(
        database: &SqlDatabase,
        password: Option<&Secret<String>>,
        pool_size: u32,
        timeout: Duration,
    ) -> Result<Self, String> {
        let driver = match database {
            SqlDatabase::Sqlite(path) => Driver::Sqlite {
                path: path.clone(),
                conn: Arc::default(),
            },
            SqlDatabase::Postgres(url) => {
                let mut opts: sqlx::postgres::PgConnectOptions =
                    url.parse().map_err(|e| format!("{e}"))?;
                if let Some(pw) = password {
                    opts = opts.password(pw.expose());
                }
                Driver::Postgres(
                    sqlx::postgres::PgPoolOptions::new()
                        .max_connections(pool_size)
                        .acquire_timeout(timeout)
                        .connect_lazy_with(opts),
                )
            }
            SqlDatabase::MySql(url) => {
                let url = url.replacen("mariadb://", "mysql://", 1);
                let mut opts: sqlx::mysql::MySqlConnectOptions =
                    url.parse().map_err(|e| format!("{e}"))?;
                if let Some(pw) = password {
                    opts = opts.password(pw.expose());
                }
                Driver::MySql(
                    sqlx::mysql::MySqlPoolOptions::new()
                        .max_connections(pool_size)
                        .acquire_timeout(timeout)
                        .connect_lazy_with(opts),
                )
            }
        };
        Ok(Self { driver })
    }

    /// How this engine writes a statement's parameters.
    pub fn dialect(&self) -> Dialect {
        match self.driver {
            Driver::Postgres(_) => Dialect::Dollar,
            _ => Dialect::Question,
        }
    }

    /// How this engine quotes an identifier (a column named `Key` or `default`).
    pub fn quote(&self, name: &str) -> String {
        match self.driver {
            Driver::MySql(_) => format!("`{name}`"),
            _ => format!("\"{name}\""),
        }
    }

    /// Run one SELECT with at most one parameter (unbounded: the caller sets the timeout).
    pub async fn rows(
        &self,
        sql: String,
        param: Option<String>,
    ) -> Result<Vec<TextRow>, ErrorKind> {
        match &self.driver {
            Driver::Sqlite { path, conn } => {
                let (path, conn) = (path.clone(), conn.clone());
                tokio::task::spawn_blocking(move || sqlite_rows(&path, &conn, &sql, param))
                    .await
                    .map_err(|e| ErrorKind::Unreachable(e.to_string()))?
            }
            Driver::Postgres(pool) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                if let Some(p) = param {
                    q = q.bind(p);
                }
                let rows = q.fetch_all(pool).await.map_err(sqlx_kind)?;
                Ok(rows.iter().map(pg_text).collect())
            }
            Driver::MySql(pool) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                if let Some(p) = param {
                    q = q.bind(p);
                }
                let rows = q.fetch_all(pool).await.map_err(sqlx_kind)?;
                Ok(rows.iter().map(my_text).collect())
            }
        }
    }
}

fn sqlx_kind(e: sqlx::Error) -> ErrorKind {
    match e {
        sqlx::Error::PoolTimedOut => ErrorKind::Timeout("no database connection in time".into()),
        sqlx::Error::Database(d) => ErrorKind::Refused(d.message().to_owned()),
        other => ErrorKind::Unreachable(other.to_string()),
    }
}

fn sqlite_rows(
    path: &std::path::Path,
    slot: &Mutex<Option<rusqlite::Connection>>,
    sql: &str,
    param: Option<String>,
) -> Result<Vec<TextRow>, ErrorKind> {
    use rusqlite::types::ValueRef;
    let mut guard = slot
        .lock()
        .map_err(|_| ErrorKind::Unreachable("connection lock poisoned".into()))?;
    let conn = match guard.take() {
        Some(c) => c,
        None => {
            let c = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| ErrorKind::Unreachable(format!("{}: {e}", path.display())))?;
            c.busy_timeout(Duration::from_secs(1)).ok();
            c
        }
    };
    let result = (|| {
        let mut stmt = conn.prepare_cached(sql)?;
        let names: Vec<String> = stmt
            .column_names()
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let params: Vec<&dyn rusqlite::ToSql> = match &param {
            Some(p) => vec![p],
            None => vec![],
        };
        let mut rows = stmt.query(params.as_slice())?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut r = Vec::new();
            for (i, n) in names.iter().enumerate() {
                let v = match row.get_ref(i)? {
                    ValueRef::Null => continue,
                    ValueRef::Integer(n) => n.to_string(),
                    ValueRef::Real(f) => f.to_string(),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        String::from_utf8_lossy(t).into_owned()
                    }
                };
                r.push((n.clone(), v));
            }
            out.push(r);
        }
        Ok::<_, rusqlite::Error>(out)
    })();
    match result {
        Ok(rows) => {
            *guard = Some(conn);
            Ok(rows)
        }
        // a connection that failed is opened anew next time
        Err(e) => Err(ErrorKind::Refused(e.to_string())),
    }
}

/// A row's values as text, whatever their SQL type (text, integers, booleans).
macro_rules! text_row {
    ($name:ident, $row:ty) => {
        fn $name(row: &$row) -> TextRow {
            let mut out = Vec::new();
            for (i, c) in row.columns().iter().enumerate() {
                let v = row
                    .try_get::<Option<String>, _>(i)
                    .ok()
                    .flatten()
                    .or_else(|| {
                        row.try_get::<Option<i64>, _>(i)
                            .ok()
                            .flatten()
                            .map(|n| n.to_string())
                    })
                    .or_else(|| {
                        row.try_get::<Option<i32>, _>(i)
                            .ok()
                            .flatten()
                            .map(|n| n.to_string())
                    })
                    .or_else(|| {
                        row.try_get::<Option<bool>, _>(i)
                            .ok()
                            .flatten()
                            .map(|b| b.to_string())
                    });
                if let Some(v) = v {
                    out.push((c.name().to_owned(), v));
                }
            }
            out
        }
    };
}
text_row!(pg_text, sqlx::postgres::PgRow);
text_row!(my_text, sqlx::mysql::MySqlRow);
