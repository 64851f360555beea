//! The backend-neutral statements (`store::query`) on sqlx's PostgreSQL driver.

use std::sync::Arc;

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{AssertSqlSafe, Column, PgExecutor, Postgres, Row as _, TypeInfo};

use crate::store::StoreError;
use crate::store::query::{Param, Query, Row, Value};

/// `q` as sqlx's statement, for the hot path's own row handling.
pub(in crate::store) fn prepared(q: Query) -> sqlx::query::Query<'static, Postgres, PgArguments> {
    let mut out = sqlx::query(AssertSqlSafe(q.text.into_owned()));
    for p in q.params {
        out = match p {
            Param::I64(v) => out.bind(v),
            Param::Text(v) => out.bind(v),
            Param::Blob(v) => out.bind(v),
            Param::Null => out.bind(None::<String>),
            Param::NullI64 => out.bind(None::<i64>),
            Param::NullBlob => out.bind(None::<Vec<u8>>),
        };
    }
    out
}

pub(in crate::store) async fn execute<'e>(
    on: impl PgExecutor<'e>,
    q: Query,
) -> Result<u64, StoreError> {
    Ok(prepared(q).execute(on).await?.rows_affected())
}

pub(in crate::store) async fn fetch_all<'e>(
    on: impl PgExecutor<'e>,
    q: Query,
) -> Result<Vec<Row>, StoreError> {
    let rows = prepared(q).fetch_all(on).await?;
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let columns: Arc<[String]> = first
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    rows.iter()
        .map(|r| {
            Ok(Row {
                columns: Arc::clone(&columns),
                values: values(r)?,
            })
        })
        .collect()
}

/// A row's values by the column types otpgate's schema uses.
fn values(row: &PgRow) -> Result<Vec<Value>, StoreError> {
    let mut out = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let value = match column.type_info().name() {
            "INT8" => row.try_get::<Option<i64>, _>(i)?.map(Value::Int),
            "INT4" => row
                .try_get::<Option<i32>, _>(i)?
                .map(|v| Value::Int(v.into())),
            "INT2" => row
                .try_get::<Option<i16>, _>(i)?
                .map(|v| Value::Int(v.into())),
            "BOOL" => row
                .try_get::<Option<bool>, _>(i)?
                .map(|v| Value::Int(v.into())),
            "FLOAT8" => row.try_get::<Option<f64>, _>(i)?.map(Value::Real),
            "FLOAT4" => row
                .try_get::<Option<f32>, _>(i)?
                .map(|v| Value::Real(v.into())),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => {
                row.try_get::<Option<String>, _>(i)?.map(Value::Text)
            }
            "BYTEA" => row.try_get::<Option<Vec<u8>>, _>(i)?.map(Value::Blob),
            other => {
                return Err(StoreError::Corrupt(format!(
                    "column {} has the type {other}, which otpgate does not read",
                    column.name()
                )));
            }
        };
        out.push(value.unwrap_or(Value::Null));
    }
    Ok(out)
}
