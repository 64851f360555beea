//! The SELECTs of a table-mapped SQL resolver, and the mapping of a result row to a user.
//! Sans-IO: the drivers in `mod.rs` run what this builds.

use std::collections::BTreeMap;

use super::SqlLookup;

/// Placeholder style of a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `?` (SQLite, MariaDB/MySQL)
    Question,
    /// `$1` (PostgreSQL)
    Dollar,
}

/// The statement finding one user by login, and the privacyIDEA names of its columns in
/// order (`None` for a custom query: its own column names are the names).
pub fn user_query(lookup: &SqlLookup, dialect: Dialect) -> (String, Option<Vec<String>>) {
    match lookup {
        SqlLookup::Query { user, .. } => (placeholders(user, dialect), None),
        SqlLookup::Table {
            table,
            columns,
            filter,
        } => {
            let (names, cols) = select_list(columns);
            let login = columns.get("username").map_or("username", String::as_str);
            let param = match dialect {
                Dialect::Question => "?",
                Dialect::Dollar => "$1",
            };
            let extra = filter
                .as_deref()
                .map(|w| format!(" AND ({w})"))
                .unwrap_or_default();
            (
                format!("SELECT {cols} FROM {table} WHERE {login} = {param}{extra}"),
                Some(names),
            )
        }
    }
}

/// The statement listing every user (`None`: a custom query without `list_query`).
pub fn list_query(lookup: &SqlLookup) -> Option<(String, Option<Vec<String>>)> {
    match lookup {
        SqlLookup::Query { list, .. } => list.clone().map(|q| (q, None)),
        SqlLookup::Table {
            table,
            columns,
            filter,
        } => {
            let (names, cols) = select_list(columns);
            let extra = filter
                .as_deref()
                .map(|w| format!(" WHERE ({w})"))
                .unwrap_or_default();
            Some((format!("SELECT {cols} FROM {table}{extra}"), Some(names)))
        }
    }
}

fn select_list(columns: &BTreeMap<String, String>) -> (Vec<String>, String) {
    let names: Vec<String> = columns.keys().cloned().collect();
    let cols = columns.values().cloned().collect::<Vec<_>>().join(", ");
    (names, cols)
}

/// A custom query's `?` as `$1` for PostgreSQL (one parameter, outside quotes).
fn placeholders(sql: &str, dialect: Dialect) -> String {
    if dialect == Dialect::Question {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '?') => {
                out.push_str("$1");
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Is this a plain SQL identifier (a table or column name, optionally `schema.name`)? Mapped
/// names are put into statements as they are, so only these are accepted.
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> SqlLookup {
        SqlLookup::Table {
            table: "app.users".into(),
            columns: [
                ("username", "login"),
                ("password", "pw_hash"),
                ("email", "mail"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect(),
            filter: Some("active = 1".into()),
        }
    }

    #[test]
    fn table_statements() {
        let (q, names) = user_query(&table(), Dialect::Dollar);
        assert_eq!(
            q,
            "SELECT mail, pw_hash, login FROM app.users WHERE login = $1 AND (active = 1)"
        );
        assert_eq!(names.unwrap(), ["email", "password", "username"]);
        let (q, _) = user_query(&table(), Dialect::Question);
        assert!(q.ends_with("WHERE login = ? AND (active = 1)"));
        let (l, _) = list_query(&table()).unwrap();
        assert_eq!(
            l,
            "SELECT mail, pw_hash, login FROM app.users WHERE (active = 1)"
        );
    }

    #[test]
    fn custom_query_placeholder() {
        let q = SqlLookup::Query {
            user: "SELECT name AS username FROM u WHERE name = ? AND note <> '?'".into(),
            list: None,
        };
        assert_eq!(
            user_query(&q, Dialect::Dollar).0,
            "SELECT name AS username FROM u WHERE name = $1 AND note <> '?'"
        );
        assert!(list_query(&q).is_none());
    }

    #[test]
    fn identifiers() {
        for ok in ["users", "app.users", "_x1"] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in ["", "1x", "users;drop", "a b", "a.", "x'--"] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }
}
