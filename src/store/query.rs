//! Statements and rows in one shape for both backends: the SQL text with `$N` placeholders and
//! its arguments ([`Query`], or [`Sql`] built piece by piece), and the rows that come back
//! ([`Row`]). Each backend runs them with its own driver (`store::db`); the backend-neutral
//! modules (tokens, audit, challenges …) write each statement once.
//!
//! Only the fixed fragments passed to [`Sql::push`] become SQL text; every value is an
//! argument.

use std::borrow::Cow;
use std::sync::Arc;

use super::StoreError;

/// An argument.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    I64(i64),
    Text(String),
    Blob(Vec<u8>),
    /// A NULL text value.
    Null,
    /// A NULL integer (PostgreSQL refuses a text NULL in a BIGINT column).
    NullI64,
    /// A NULL blob.
    NullBlob,
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Self::I64(v)
    }
}

impl From<bool> for Param {
    fn from(v: bool) -> Self {
        Self::I64(i64::from(v))
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

impl From<&String> for Param {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}

impl From<&[u8]> for Param {
    fn from(v: &[u8]) -> Self {
        Self::Blob(v.to_vec())
    }
}

impl From<Vec<u8>> for Param {
    fn from(v: Vec<u8>) -> Self {
        Self::Blob(v)
    }
}

/// An argument type's NULL: PostgreSQL refuses a NULL of another type than the column's.
pub(crate) trait Nullable: Into<Param> {
    const NULL: Param;
}
impl Nullable for i64 {
    const NULL: Param = Param::NullI64;
}
impl Nullable for &str {
    const NULL: Param = Param::Null;
}
impl Nullable for String {
    const NULL: Param = Param::Null;
}
impl Nullable for &String {
    const NULL: Param = Param::Null;
}
impl Nullable for &[u8] {
    const NULL: Param = Param::NullBlob;
}
impl Nullable for Vec<u8> {
    const NULL: Param = Param::NullBlob;
}

impl<T: Nullable> From<Option<T>> for Param {
    fn from(v: Option<T>) -> Self {
        v.map_or(T::NULL, Into::into)
    }
}

/// SQL text with `$1 … $n` and its arguments in that order.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub(super) text: Cow<'static, str>,
    pub(super) params: Vec<Param>,
}

/// A statement whose placeholders the arguments [`Query::bind`] adds fill in order.
pub(crate) fn query(text: &'static str) -> Query {
    Query {
        text: Cow::Borrowed(text),
        params: Vec::new(),
    }
}

impl Query {
    /// A statement whose text was put together at run time from fixed fragments (never from
    /// input: values are arguments).
    pub(crate) fn owned(text: String) -> Self {
        Self {
            text: Cow::Owned(text),
            params: Vec::new(),
        }
    }

    /// The argument for the next placeholder.
    pub(crate) fn bind(mut self, value: impl Into<Param>) -> Self {
        self.params.push(value.into());
        self
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn params(&self) -> &[Param] {
        &self.params
    }
}

/// Dynamic SQL: fixed fragments and a placeholder per bound value, numbered `$1, $2, …`.
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

    /// Arguments for SQL text that already holds `$1 … $n`.
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

    /// The statement, to run.
    pub(crate) fn query(&self) -> Query {
        Query {
            text: Cow::Owned(self.text.clone()),
            params: self.params.clone(),
        }
    }

    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

/// A column's value as either backend returns it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A result row: its values by column, the column names shared by every row of a result.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(super) columns: Arc<[String]>,
    pub(super) values: Vec<Value>,
}

impl Row {
    /// The value of the column `name`, as a `T`.
    pub(crate) fn try_get<T: FromValue>(&self, name: &str) -> Result<T, StoreError> {
        let at = self
            .columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| StoreError::Corrupt(format!("the result has no column {name}")))?;
        self.get(at)
    }

    /// The value of the column at `index` (from 0), as a `T`.
    pub(crate) fn get<T: FromValue>(&self, index: usize) -> Result<T, StoreError> {
        let value = self.values.get(index).unwrap_or(&Value::Null);
        T::from_value(value).ok_or_else(|| {
            let name = self.columns.get(index).map_or("?", String::as_str);
            StoreError::Corrupt(format!(
                "column {name} holds {value:?}, not {}",
                std::any::type_name::<T>()
            ))
        })
    }
}

/// Typed access to a result row by column name: [`Row`], and the hot path's rows of either
/// driver.
pub(crate) trait Columns {
    fn int(&self, name: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError>;
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError>;
    fn opt_blob(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// A NOT NULL text column.
    fn text(&self, name: &str) -> Result<String, StoreError> {
        self.opt_text(name)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {name} is NULL")))
    }
}

impl Columns for Row {
    fn int(&self, name: &str) -> Result<i64, StoreError> {
        self.try_get(name)
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.try_get(name)
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.try_get(name)
    }
    fn opt_blob(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.try_get(name)
    }
}

/// A Rust type a column's value converts to.
pub(crate) trait FromValue: Sized {
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Blob(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Real(v) => Some(*v),
            Value::Int(v) => Some(*v as f64),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
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
        assert_eq!(
            s.query().params(),
            [
                Param::I64(1),
                Param::Text("x".into()),
                Param::Text("y".into())
            ]
        );
    }

    #[test]
    fn a_null_keeps_its_type() {
        assert_eq!(Param::from(None::<i64>), Param::NullI64);
        assert_eq!(Param::from(None::<&str>), Param::Null);
        assert_eq!(Param::from(Some("x")), Param::Text("x".into()));
        assert_eq!(Param::from(Some(7i64)), Param::I64(7));
        assert_eq!(Param::from(None::<Vec<u8>>), Param::NullBlob);
    }

    #[test]
    fn values_convert_or_say_which_column() {
        let row = Row {
            columns: vec!["n".to_owned(), "s".to_owned(), "z".to_owned()].into(),
            values: vec![Value::Int(3), Value::Text("x".into()), Value::Null],
        };
        assert_eq!(row.try_get::<i64>("n").unwrap(), 3);
        assert_eq!(
            row.try_get::<Option<String>>("s").unwrap().as_deref(),
            Some("x")
        );
        assert_eq!(row.try_get::<Option<i64>>("z").unwrap(), None);
        let wrong = row.try_get::<i64>("s").unwrap_err().to_string();
        assert!(wrong.contains("column s"), "{wrong}");
        assert!(row.try_get::<i64>("nope").is_err());
    }
}
