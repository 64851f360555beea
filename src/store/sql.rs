//! Dynamic SQL with `$N` placeholders.
//!
//! sqlx's `QueryBuilder<Any>` writes `?` placeholders, which PostgreSQL rejects; this builder
//! numbers `$1, $2, …` itself so the same dynamic SQL runs on both backends. Only the fixed
//! fragments passed to `push` become SQL text; every value goes through `bind`.
//!
//! sqlx-sqlite looks every `$N` parameter up by name, which grows with the square of the
//! parameter count; SQLite's hot path therefore does not go through sqlx
//! (`store::sqlite::writer`), and the many-row statements built here run on PostgreSQL.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe};

/// A bound value.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    I64(i64),
    Text(String),
    Blob(Vec<u8>),
    /// A NULL text value.
    Null,
    /// A NULL integer (PostgreSQL refuses a text NULL in a BIGINT column).
    NullI64,
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Self::I64(v)
    }
}

impl From<String> for Param {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

/// SQL text plus its parameters in placeholder order.
#[derive(Debug)]
pub(crate) struct Sql {
    text: String,
    params: Vec<Param>,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            params: Vec::new(),
        }
    }

    /// Append a fixed SQL fragment (never user input).
    pub(crate) fn push(&mut self, fragment: &str) -> &mut Self {
        self.text.push_str(fragment);
        self
    }

    /// Parameters for SQL text that already holds `$1 … $n`.
    pub(crate) fn set_params(&mut self, params: Vec<Param>) {
        self.params = params;
    }

    /// Append a placeholder for `value`.
    pub(crate) fn bind(&mut self, value: impl Into<Param>) -> &mut Self {
        self.params.push(value.into());
        self.text.push('$');
        self.text.push_str(&self.params.len().to_string());
        self
    }

    /// Placeholders for a list, comma-separated.
    pub(crate) fn bind_list<T: Into<Param>>(
        &mut self,
        values: impl IntoIterator<Item = T>,
    ) -> &mut Self {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(v);
        }
        self
    }

    /// The query with `$N` placeholders, for either backend.
    pub(crate) fn query(&self) -> Query<'_, Any, AnyArguments> {
        let mut q = sqlx::query(AssertSqlSafe(self.text.clone()));
        for p in &self.params {
            q = match p {
                Param::I64(v) => q.bind(*v),
                Param::Text(s) => q.bind(s.as_str()),
                Param::Blob(b) => q.bind(b.as_slice()),
                Param::Null => q.bind(None::<String>),
                Param::NullI64 => q.bind(None::<i64>),
            };
        }
        q
    }

    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered() {
        let mut s = Sql::new("SELECT 1 FROM t WHERE a = ");
        s.bind(1i64)
            .push(" AND b IN (")
            .bind_list(["x", "y"])
            .push(")");
        assert_eq!(s.text(), "SELECT 1 FROM t WHERE a = $1 AND b IN ($2, $3)");
    }
}
