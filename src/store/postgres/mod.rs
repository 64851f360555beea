//! PostgreSQL, for several nodes that share one store: sqlx's pool, the group-commit task
//! ([`writer`]), the batched token lookups ([`reader`]) and the probe that tells the breaker
//! whether the server answers and commits ([`probe`]).

pub(super) mod admin;
pub(super) mod probe;
pub(super) mod reader;
pub(super) mod writer;

use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgConnection, SqlSafeStr};

use super::diagnostics::health::Health;
use super::diagnostics::pg_waits;
use super::{Backend, Store, StoreError, StoreSettings, db, ledger};

/// Connect to the database at `url`, migrate it and start the writer, the reader and the
/// breaker's probe.
pub(super) async fn open(url: &str, settings: &StoreSettings) -> Result<Store, StoreError> {
    let options: PgConnectOptions = url.parse()?;
    // our backends are found by it when a commit stalls (`store::diagnostics::pg_waits`)
    let name_connections = !url.contains("application_name=");
    let limit = settings.connect_timeout;
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections.max(1))
        .min_connections(1)
        .acquire_timeout(settings.connect_timeout)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if name_connections {
                    conn.execute(pg_waits::SET_APPLICATION_NAME).await?;
                }
                Ok(())
            })
        })
        .after_release(move |conn, _meta| Box::pin(returning_connection_answers(conn, limit)))
        .connect_with(options)
        .await?;
    migrate(&pool).await?;
    let db = db::Db::Postgres(pool.clone());
    super::warn_of_newer_migrations(&db, MIGRATIONS).await?;
    let health = Arc::new(
        Health::with_commit_timeout(settings.commit_timeout)
            .with_answer_limit(settings.connect_timeout)
            .with_stall_cause("a synchronous standby missing?"),
    );
    tokio::spawn(probe::run(pool.clone(), Arc::clone(&health)));
    // leave pool connections for the writer and the rest
    let parallel = usize::try_from(settings.max_connections.max(3) - 2).unwrap_or(1);
    let writer = writer::start(pool.clone(), Arc::clone(&health));
    let reader = reader::start(pool, parallel, Arc::clone(&health));
    Ok(Store {
        ledger: ledger::Ledger::start(db.clone(), Arc::clone(&health)),
        db,
        backend: Backend::Postgres,
        writer,
        reader,
        health,
    })
}

/// Apply the migrations the database lacks. A rolling upgrade: a node of the older version
/// keeps (re)starting against the database a newer node already migrated, so migrations it
/// does not know are not an error (docs/cluster.md, "Upgrades").
async fn migrate(pool: &sqlx::PgPool) -> Result<(), StoreError> {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, desc, sql)| {
            Migration::new(
                *version,
                (*desc).into(),
                MigrationType::Simple,
                sqlx::AssertSqlSafe(*sql).into_sql_str(),
                false,
            )
        })
        .collect();
    let mut migrator = Migrator::with_migrations(migrations);
    migrator.set_ignore_missing(true);
    migrator
        .run(pool)
        .await
        .map_err(|e| StoreError::Migrate(e.to_string()))?;
    Ok(())
}

/// The schema's history (`migrations/postgres`); see `store::sqlite::migrate::MIGRATIONS`.
pub(in crate::store) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "tokengroup",
        include_str!("../../../migrations/postgres/0002_tokengroup.sql"),
    ),
    (
        3,
        "request ledger",
        include_str!("../../../migrations/postgres/0003_request_ledger.sql"),
    ),
    (
        4,
        "audit_user for logins only",
        include_str!("../../../migrations/postgres/0004_audit_user_logins_only.sql"),
    ),
    (
        5,
        "audit append-only",
        include_str!("../../../migrations/postgres/0005_audit_append_only.sql"),
    ),
    (
        6,
        "audit_time back",
        include_str!("../../../migrations/postgres/0006_audit_time_back.sql"),
    ),
    (
        7,
        "audit_user only for auth_max policies",
        include_str!("../../../migrations/postgres/0007_audit_user_on_demand.sql"),
    ),
    (
        8,
        "commit probe",
        include_str!("../../../migrations/postgres/0008_commit_probe.sql"),
    ),
    (
        9,
        "custom user attributes",
        include_str!("../../../migrations/postgres/0009_user_attribute.sql"),
    ),
];

/// Whether a PostgreSQL connection given back to the pool answers a ping within `limit`.
///
/// sqlx pings every connection that comes back, without a time limit. One whose peer went
/// silent (a primary powered off under a floating address, a firewall dropping the flow) never
/// answers, and its pool slot stayed taken until the kernel gave the TCP connection up, about
/// 15 minutes later. An error here makes sqlx drop the connection at once.
pub(super) async fn returning_connection_answers(
    conn: &mut PgConnection,
    limit: Duration,
) -> Result<bool, sqlx::Error> {
    match tokio::time::timeout(limit, sqlx::Connection::ping(conn)).await {
        Ok(answer) => answer.map(|()| true),
        Err(_) => {
            tracing::warn!(
                target: "otpgate::store",
                seconds = limit.as_secs_f64(),
                "a database connection did not answer on its way back to the pool: dropped"
            );
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer to a ping on the way back to the pool",
            )))
        }
    }
}
