//! The `sql` resolver: users from a table of an application's database (SQLite, PostgreSQL,
//! MariaDB/MySQL), by a column mapping or a query of the admin's own.
//!
//! SQLite is read with rusqlite and PostgreSQL with sqlx, the drivers of the store; MariaDB
//! and MySQL with sqlx's MySQL driver. Every query is bounded by the resolver's timeout.

pub mod statements;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::{Column, Row};

use super::cache::UserCache;
use super::error::{DirectoryError, ErrorKind};
use super::{UserDetails, UserRecord};
use crate::secret::Secret;
use statements::Dialect;

/// How users are found in the database.
#[derive(Debug, Clone)]
pub enum SqlLookup {
    /// A table and its columns: privacyIDEA name (`username`, `password`, `email`, …, or a
    /// free name) → column.
    Table {
        table: String,
        columns: BTreeMap<String, String>,
        /// A further condition every user row meets (`active = 1`).
        filter: Option<String>,
    },
    /// The admin's own SELECT with one parameter (`?`), the login; its column names are the
    /// privacyIDEA names. `list` (no parameter) lists every user.
    Query { user: String, list: Option<String> },
}

#[derive(Debug, Clone)]
pub enum SqlDatabase {
    Sqlite(PathBuf),
    /// A `postgres://` URL.
    Postgres(String),
    /// A `mysql://` or `mariadb://` URL.
    MySql(String),
}

#[derive(Debug, Clone)]
pub struct SqlSettings {
    pub database: SqlDatabase,
    /// The database password when not in the URL.
    pub password: Option<Secret<String>>,
    pub lookup: SqlLookup,
    pub timeout: Duration,
    pub pool_size: u32,
    pub cache_ttl: Duration,
    pub cache_size: usize,
}

enum Driver {
    Sqlite {
        path: PathBuf,
        conn: Arc<Mutex<Option<rusqlite::Connection>>>,
    },
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
}

pub struct SqlResolver {
    name: String,
    settings: SqlSettings,
    driver: Driver,
    cache: UserCache,
}

impl std::fmt::Debug for SqlResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlResolver")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One result row as text: column name → value (NULL left out).
type TextRow = Vec<(String, String)>;

impl SqlResolver {
    /// Pools connect lazily: a database that is down at start is an error at the first
    /// lookup, not a daemon that does not start.
    pub fn new(name: &str, settings: SqlSettings) -> Result<Self, String> {
        let driver = match &settings.database {
            SqlDatabase::Sqlite(path) => Driver::Sqlite {
                path: path.clone(),
                conn: Arc::default(),
            },
            SqlDatabase::Postgres(url) => {
                let mut opts: sqlx::postgres::PgConnectOptions =
                    url.parse().map_err(|e| format!("{e}"))?;
                if let Some(pw) = &settings.password {
                    opts = opts.password(pw.expose());
                }
                Driver::Postgres(
                    sqlx::postgres::PgPoolOptions::new()
                        .max_connections(settings.pool_size)
                        .acquire_timeout(settings.timeout)
                        .connect_lazy_with(opts),
                )
            }
            SqlDatabase::MySql(url) => {
                let url = url.replacen("mariadb://", "mysql://", 1);
                let mut opts: sqlx::mysql::MySqlConnectOptions =
                    url.parse().map_err(|e| format!("{e}"))?;
                if let Some(pw) = &settings.password {
                    opts = opts.password(pw.expose());
                }
                Driver::MySql(
                    sqlx::mysql::MySqlPoolOptions::new()
                        .max_connections(settings.pool_size)
                        .acquire_timeout(settings.timeout)
                        .connect_lazy_with(opts),
                )
            }
        };
        Ok(Self {
            name: name.to_owned(),
            cache: UserCache::new(settings.cache_ttl, settings.cache_size),
            settings,
            driver,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn dialect(&self) -> Dialect {
        match self.driver {
            Driver::Postgres(_) => Dialect::Dollar,
            _ => Dialect::Question,
        }
    }

    fn error(&self, kind: ErrorKind) -> DirectoryError {
        DirectoryError::new(&self.name, kind)
    }

    pub async fn get(&self, login: &str) -> Result<Option<Arc<UserRecord>>, DirectoryError> {
        if login.is_empty() {
            return Ok(None);
        }
        if let Some(hit) = self.cache.get(login) {
            return Ok(Some(hit));
        }
        let (sql, names) = statements::user_query(&self.settings.lookup, self.dialect());
        let rows = self.run(sql, Some(login.to_owned()), names).await?;
        let count = rows.len();
        let record = match (rows.into_iter().next(), count) {
            (None, _) => return Ok(None),
            (Some(row), 1) => Arc::new(record(row)),
            (Some(_), count) => {
                return Err(self.error(ErrorKind::Ambiguous {
                    login: login.to_owned(),
                    count,
                }));
            }
        };
        self.cache.put(login, record.clone());
        Ok(Some(record))
    }

    pub async fn users(&self) -> Result<Vec<Arc<UserRecord>>, DirectoryError> {
        let Some((sql, names)) = statements::list_query(&self.settings.lookup) else {
            return Err(self.error(ErrorKind::Refused(
                "no list_query is configured, so the users cannot be listed".into(),
            )));
        };
        let rows = self.run(sql, None, names).await?;
        Ok(rows.into_iter().map(|r| Arc::new(record(r))).collect())
    }

    /// Run one SELECT within the timeout; rows as text by privacyIDEA name.
    async fn run(
        &self,
        sql: String,
        param: Option<String>,
        names: Option<Vec<String>>,
    ) -> Result<Vec<TextRow>, DirectoryError> {
        let work = async {
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
        };
        let rows: Vec<TextRow> = match tokio::time::timeout(self.settings.timeout, work).await {
            Ok(r) => r.map_err(|k| self.error(k))?,
            Err(_) => {
                return Err(self.error(ErrorKind::Timeout(format!(
                    "no answer within {:?}",
                    self.settings.timeout
                ))));
            }
        };
        Ok(match names {
            // a table mapping selects its columns in the order of the names
            Some(names) => rows
                .into_iter()
                .map(|r| {
                    r.into_iter()
                        .zip(names.iter())
                        .map(|((_, v), n)| (n.clone(), v))
                        .collect()
                })
                .collect(),
            None => rows,
        })
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

/// A row by privacyIDEA names as a user; `groups` is a list separated by `,` or `;`.
fn record(row: TextRow) -> UserRecord {
    let mut d = UserDetails::default();
    let (mut login, mut password) = (String::new(), None);
    for (name, value) in row {
        match name.to_ascii_lowercase().as_str() {
            "username" | "login" => login = value,
            "password" => password = Some(Secret::new(value)),
            "givenname" => d.givenname = value,
            "surname" => d.surname = value,
            "email" => d.email = value,
            "mobile" => d.mobile = value,
            "phone" => d.phone = value,
            "groups" => {
                d.groups = value
                    .split([',', ';'])
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            _ => {
                d.attributes.insert(name, vec![value]);
            }
        }
    }
    UserRecord::new(&login, password, d)
}
