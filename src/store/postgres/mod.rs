//! PostgreSQL, for several nodes that share one store: sqlx's pool, the group-commit task
//! ([`writer`]), the batched token lookups ([`reader`]) and the probe that tells the breaker
//! whether the server answers and commits ([`probe`]).

pub(super) mod probe;
pub(super) mod reader;
pub(super) mod writer;

use std::time::Duration;

/// The schema's history (`migrations/postgres`); see `store::sqlite::MIGRATIONS`.
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
];

/// Whether a PostgreSQL connection given back to the pool answers a ping within `limit`.
///
/// sqlx pings every connection that comes back, without a time limit. One whose peer went
/// silent (a primary powered off under a floating address, a firewall dropping the flow) never
/// answers, and its pool slot stayed taken until the kernel gave the TCP connection up, about
/// 15 minutes later. An error here makes sqlx drop the connection at once.
pub(super) async fn returning_connection_answers(
    conn: &mut sqlx::AnyConnection,
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
