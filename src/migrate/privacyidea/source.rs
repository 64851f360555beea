//! privacyIDEA's tables, read as they are (`SELECT *`, every value as text, so that the
//! columns that came and went between its versions do not matter) and joined into
//! [`PiData`]. Nothing here interprets a value; [`super::plan`] does.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::users::sql::{SqlDatabase, TextDb, TextRow};

/// Why the database could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("the privacyIDEA database: {0}")]
    Open(String),
    #[error("table {table}: {message}")]
    Table {
        table: &'static str,
        message: String,
    },
}

/// One row by lower-case column name.
#[derive(Debug, Default, Clone)]
pub struct Row(HashMap<String, String>);

impl Row {
    fn from_text(r: TextRow) -> Self {
        Self(
            r.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        )
    }

    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self::from_text(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    /// The column's text; empty for NULL or a column this version does not have.
    pub fn text(&self, column: &str) -> &str {
        self.0.get(column).map_or("", String::as_str)
    }

    pub fn opt(&self, column: &str) -> Option<&str> {
        self.0
            .get(column)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn int(&self, column: &str) -> Option<i64> {
        self.opt(column).and_then(|s| s.trim().parse().ok())
    }

    /// SQLite and MySQL store booleans as 1/0, PostgreSQL as true/false.
    pub fn flag(&self, column: &str) -> bool {
        matches!(
            self.text(column).trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "t"
        )
    }
}

#[derive(Debug, Clone)]
pub struct PiToken {
    pub row: Row,
    pub info: BTreeMap<String, String>,
    pub owner: Option<PiOwner>,
    /// The names of its realms.
    pub realms: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiOwner {
    pub resolver: String,
    pub user_id: String,
    pub realm: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PiResolver {
    pub name: String,
    pub rtype: String,
    /// Key → (value, type); a `password` type is encrypted with the config key.
    pub config: BTreeMap<String, (String, String)>,
}

#[derive(Debug, Clone)]
pub struct PiRealm {
    pub name: String,
    pub default: bool,
    /// (resolver, priority), in priority order.
    pub resolvers: Vec<(String, Option<i64>)>,
}

#[derive(Debug, Clone)]
pub struct PiPolicy {
    pub row: Row,
    /// The extended conditions (`policycondition`): section, key, comparator, value.
    pub conditions: Vec<Row>,
}

#[derive(Debug, Clone)]
pub struct PiEvent {
    pub row: Row,
    pub options: BTreeMap<String, String>,
    /// Key → (value, comparator).
    pub conditions: BTreeMap<String, (String, String)>,
}

/// Everything the import reads.
#[derive(Debug, Default)]
pub struct PiData {
    pub tokens: Vec<PiToken>,
    pub resolvers: Vec<PiResolver>,
    pub realms: Vec<PiRealm>,
    pub policies: Vec<PiPolicy>,
    pub events: Vec<PiEvent>,
}

/// A privacyIDEA database, open for reading.
pub struct Source {
    db: TextDb,
    timeout: Duration,
}

impl Source {
    /// From privacyIDEA's `SQLALCHEMY_DATABASE_URI` written as otpgate writes addresses:
    /// `sqlite:/path`, `postgres://…`, `mysql://…`.
    pub fn open(url: &str) -> Result<Self, SourceError> {
        let url = normalize(url);
        let database =
            SqlDatabase::parse(&url, std::path::Path::new(".")).map_err(SourceError::Open)?;
        let timeout = Duration::from_secs(30);
        let db = TextDb::open(&database, None, 2, timeout).map_err(SourceError::Open)?;
        Ok(Self { db, timeout })
    }

    async fn table(&self, table: &'static str) -> Result<Vec<Row>, SourceError> {
        let sql = format!("SELECT * FROM {}", self.db.quote(table));
        let rows = tokio::time::timeout(self.timeout, self.db.rows(sql, None))
            .await
            .map_err(|_| SourceError::Table {
                table,
                message: format!("no answer within {:?}", self.timeout),
            })?
            .map_err(|e| SourceError::Table {
                table,
                message: e.to_string(),
            })?;
        Ok(rows.into_iter().map(Row::from_text).collect())
    }

    /// Read and join the tables the import needs.
    pub async fn read(&self) -> Result<PiData, SourceError> {
        let realm_rows = self.table("realm").await?;
        let realm_name: HashMap<String, String> = realm_rows
            .iter()
            .map(|r| (r.text("id").to_owned(), r.text("name").to_owned()))
            .collect();
        let resolver_rows = self.table("resolver").await?;
        let resolver_name: HashMap<String, String> = resolver_rows
            .iter()
            .map(|r| (r.text("id").to_owned(), r.text("name").to_owned()))
            .collect();

        let mut resolver_config: HashMap<String, BTreeMap<String, (String, String)>> =
            HashMap::new();
        for c in self.table("resolverconfig").await? {
            resolver_config
                .entry(c.text("resolver_id").to_owned())
                .or_default()
                .insert(
                    c.text("key").to_owned(),
                    (c.text("value").to_owned(), c.text("type").to_owned()),
                );
        }
        let resolvers = resolver_rows
            .iter()
            .map(|r| PiResolver {
                name: r.text("name").to_owned(),
                rtype: r.text("rtype").to_owned(),
                config: resolver_config.remove(r.text("id")).unwrap_or_default(),
            })
            .collect();

        let mut realm_resolvers: HashMap<String, Vec<(String, Option<i64>)>> = HashMap::new();
        for rr in self.table("resolverrealm").await? {
            if let Some(name) = resolver_name.get(rr.text("resolver_id")) {
                realm_resolvers
                    .entry(rr.text("realm_id").to_owned())
                    .or_default()
                    .push((name.clone(), rr.int("priority")));
            }
        }
        let realms = realm_rows
            .iter()
            .map(|r| {
                let mut resolvers = realm_resolvers.remove(r.text("id")).unwrap_or_default();
                resolvers.sort_by_key(|(n, p)| (p.unwrap_or(i64::MAX), n.clone()));
                resolvers.dedup_by(|a, b| a.0 == b.0);
                PiRealm {
                    name: r.text("name").to_owned(),
                    default: r.flag("default"),
                    resolvers,
                }
            })
            .collect();

        let mut info: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        for i in self.table("tokeninfo").await? {
            info.entry(i.text("token_id").to_owned())
                .or_default()
                .insert(i.text("key").to_owned(), i.text("value").to_owned());
        }
        let mut owners: HashMap<String, PiOwner> = HashMap::new();
        for o in self.table("tokenowner").await? {
            owners.insert(
                o.text("token_id").to_owned(),
                PiOwner {
                    resolver: o.text("resolver").to_owned(),
                    user_id: o.text("user_id").to_owned(),
                    realm: realm_name.get(o.text("realm_id")).cloned(),
                },
            );
        }
        let mut token_realms: HashMap<String, Vec<String>> = HashMap::new();
        for tr in self.table("tokenrealm").await? {
            if let Some(name) = realm_name.get(tr.text("realm_id")) {
                token_realms
                    .entry(tr.text("token_id").to_owned())
                    .or_default()
                    .push(name.clone());
            }
        }
        let mut tokens: Vec<PiToken> = self
            .table("token")
            .await?
            .into_iter()
            .map(|row| {
                let id = row.text("id").to_owned();
                PiToken {
                    info: info.remove(&id).unwrap_or_default(),
                    owner: owners.remove(&id),
                    realms: token_realms.remove(&id).unwrap_or_default(),
                    row,
                }
            })
            .collect();
        tokens.sort_by(|a, b| a.row.text("serial").cmp(b.row.text("serial")));

        let mut policy_conditions: HashMap<String, Vec<Row>> = HashMap::new();
        // privacyIDEA before 3.10 has no extended conditions table
        for c in self.table("policycondition").await.unwrap_or_default() {
            policy_conditions
                .entry(c.text("policy_id").to_owned())
                .or_default()
                .push(c);
        }
        let mut policies: Vec<PiPolicy> = self
            .table("policy")
            .await?
            .into_iter()
            .map(|row| PiPolicy {
                conditions: policy_conditions.remove(row.text("id")).unwrap_or_default(),
                row,
            })
            .collect();
        policies.sort_by_key(|p| p.row.int("id"));

        let mut options: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        for o in self.table("eventhandleroption").await? {
            options
                .entry(o.text("eventhandler_id").to_owned())
                .or_default()
                .insert(o.text("key").to_owned(), o.text("value").to_owned());
        }
        let mut conditions: HashMap<String, BTreeMap<String, (String, String)>> = HashMap::new();
        for c in self.table("eventhandlercondition").await? {
            conditions
                .entry(c.text("eventhandler_id").to_owned())
                .or_default()
                .insert(
                    c.text("key").to_owned(),
                    (c.text("value").to_owned(), c.text("comparator").to_owned()),
                );
        }
        let mut events: Vec<PiEvent> = self
            .table("eventhandler")
            .await?
            .into_iter()
            .map(|row| PiEvent {
                options: options.remove(row.text("id")).unwrap_or_default(),
                conditions: conditions.remove(row.text("id")).unwrap_or_default(),
                row,
            })
            .collect();
        events.sort_by_key(|e| (e.row.int("ordering"), e.row.int("id")));

        Ok(PiData {
            tokens,
            resolvers,
            realms,
            policies,
            events,
        })
    }
}

/// privacyIDEA's SQLAlchemy URIs (`sqlite:////abs/path`, `postgresql+psycopg2://`,
/// `mysql+pymysql://`) as otpgate's addresses; otpgate's own forms pass unchanged.
pub fn normalize(url: &str) -> String {
    let url = url.trim();
    if let Some(rest) = url.strip_prefix("sqlite:///") {
        // sqlite:////abs → /abs; sqlite:///rel → rel
        return format!("sqlite:{rest}");
    }
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let base = scheme.split('+').next().unwrap_or(scheme);
            let base = match base {
                "postgresql" => "postgres",
                other => other,
            };
            // privacyIDEA's MySQL URIs often carry `?charset=utf8`, which sqlx does not know
            let rest = match (base, rest.split_once('?')) {
                ("mysql" | "mariadb", Some((before, _))) => before,
                _ => rest,
            };
            format!("{base}://{rest}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlalchemy_uris_become_addresses() {
        assert_eq!(
            normalize("sqlite:////var/lib/pi.db"),
            "sqlite:/var/lib/pi.db"
        );
        assert_eq!(normalize("sqlite:/var/lib/pi.db"), "sqlite:/var/lib/pi.db");
        assert_eq!(
            normalize("postgresql+psycopg2://pi:pw@db/pi"),
            "postgres://pi:pw@db/pi"
        );
        assert_eq!(
            normalize("mysql+pymysql://pi:pw@127.0.0.1/pi?charset=utf8"),
            "mysql://pi:pw@127.0.0.1/pi"
        );
        assert_eq!(normalize("postgres://a@b/c"), "postgres://a@b/c");
    }

    #[test]
    fn rows_read_booleans_of_every_engine() {
        let r = Row::from_text(vec![
            ("Active".into(), "1".into()),
            ("revoked".into(), "false".into()),
            ("locked".into(), "true".into()),
        ]);
        assert!(r.flag("active"));
        assert!(!r.flag("revoked"));
        assert!(r.flag("locked"));
        assert!(!r.flag("missing"));
        assert_eq!(r.text("missing"), "");
    }
}
