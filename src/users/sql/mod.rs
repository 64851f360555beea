//! The `sql` resolver: users from a table of an application's database (SQLite, PostgreSQL,
//! MariaDB/MySQL), by a column mapping or a query of the admin's own.
//!
//! SQLite is read with rusqlite and PostgreSQL with sqlx, the drivers of the store; MariaDB
//! and MySQL with sqlx's MySQL driver. Every query is bounded by the resolver's timeout.

mod driver;
pub mod statements;

pub use driver::{TextDb, TextRow};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::cache::UserCache;
use super::error::{DirectoryError, ErrorKind};
use super::{UserDetails, UserRecord};
use crate::secret::Secret;

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

impl SqlDatabase {
    /// From a `postgres://`, `mysql://`, `mariadb://` or `sqlite:` address; a relative SQLite
    /// path is taken from `base`.
    pub fn parse(url: &str, base: &std::path::Path) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(url.to_owned()))
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Ok(Self::MySql(url.to_owned()))
        } else if let Some(path) = url.strip_prefix("sqlite:") {
            let path = PathBuf::from(path.trim_start_matches("//"));
            Ok(Self::Sqlite(if path.is_absolute() {
                path
            } else {
                base.join(path)
            }))
        } else {
            Err(format!(
                "{:?} is not a postgres://, mysql://, mariadb:// or sqlite: address",
                url.split('@').next_back().unwrap_or("")
            ))
        }
    }
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

pub struct SqlResolver {
    name: String,
    settings: SqlSettings,
    db: TextDb,
    cache: UserCache,
}

impl std::fmt::Debug for SqlResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlResolver")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SqlResolver {
    /// Pools connect lazily: a database that is down at start is an error at the first
    /// lookup, not a daemon that does not start.
    pub fn new(name: &str, settings: SqlSettings) -> Result<Self, String> {
        let db = TextDb::open(
            &settings.database,
            settings.password.as_ref(),
            settings.pool_size,
            settings.timeout,
        )?;
        Ok(Self {
            name: name.to_owned(),
            cache: UserCache::new(settings.cache_ttl, settings.cache_size),
            settings,
            db,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
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
        let (sql, names) = statements::user_query(&self.settings.lookup, self.db.dialect());
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
        let work = self.db.rows(sql, param);
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
