//! SQLite's schema migrations, recorded in `_sqlx_migrations` as sqlx records them (version,
//! description, success, SHA-384 checksum), so a database made by an earlier otpgate opens
//! and goes on from where it was.
//!
//! A migration only adds (a table, an index, a column with a default) or drops what no version
//! still in use reads; a database with migrations this version does not know (a newer otpgate
//! applied them) still opens (`store::warn_of_newer_migrations`).

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha384};

use super::connection::run_statement;
use crate::store::StoreError;

/// The schema's history (`migrations/sqlite`). A migration only adds (a table, an index, a
/// column with a default) or drops what no version still in use reads: during a rolling
/// upgrade the older nodes run against the schema a newer one migrated.
pub(in crate::store) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "tokengroup",
        include_str!("../../../migrations/sqlite/0002_tokengroup.sql"),
    ),
    (
        3,
        "request ledger",
        include_str!("../../../migrations/sqlite/0003_request_ledger.sql"),
    ),
    (
        4,
        "audit_user for logins only",
        include_str!("../../../migrations/sqlite/0004_audit_user_logins_only.sql"),
    ),
    (
        5,
        "audit append-only",
        include_str!("../../../migrations/sqlite/0005_audit_append_only.sql"),
    ),
    (
        6,
        "audit_user only for auth_max policies",
        include_str!("../../../migrations/sqlite/0006_audit_user_on_demand.sql"),
    ),
    (
        7,
        "commit probe",
        include_str!("../../../migrations/sqlite/0007_commit_probe.sql"),
    ),
    (
        8,
        "custom user attributes",
        include_str!("../../../migrations/sqlite/0008_user_attribute.sql"),
    ),
];
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)";

/// Apply the migrations `conn`'s database lacks, each in a transaction of its own with its
/// record.
pub(in crate::store) fn run(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(CREATE_TABLE)?;
    let failed: Option<i64> = conn
        .query_row(
            "SELECT version FROM _sqlx_migrations WHERE success = false ORDER BY version LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(version) = failed {
        return Err(StoreError::Corrupt(format!(
            "migration {version} of this database failed part-way; restore a backup"
        )));
    }
    for (version, description, sql) in MIGRATIONS {
        let checksum = Sha384::digest(sql.as_bytes()).to_vec();
        let applied: Option<Vec<u8>> = conn
            .query_row(
                "SELECT checksum FROM _sqlx_migrations WHERE version = ?1",
                [version],
                |r| r.get(0),
            )
            .optional()?;
        match applied {
            Some(stored) if stored == checksum => continue,
            Some(_) => {
                return Err(StoreError::Corrupt(format!(
                    "migration {version} ({description}) was applied in another form than this \
                     version's"
                )));
            }
            None => {}
        }
        let started = std::time::Instant::now();
        run_statement(conn, "BEGIN IMMEDIATE")?;
        let applied = conn.execute_batch(sql).and_then(|()| {
            conn.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                 execution_time) VALUES (?1, ?2, TRUE, ?3, ?4)",
                params![
                    version,
                    description,
                    checksum,
                    i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX)
                ],
            )
        });
        match applied.and_then(|_| run_statement(conn, "COMMIT")) {
            Ok(()) => {
                tracing::debug!(target: "otpgate::store", version, description, "database migrated");
            }
            Err(e) => {
                let _ = run_statement(conn, "ROLLBACK");
                return Err(StoreError::Migrate(format!(
                    "migration {version} ({description}): {e}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sqlx::SqlSafeStr;

    use super::*;

    /// Migrating twice changes nothing; a migration recorded in another form is refused.
    #[test]
    fn migrations_apply_once_and_are_checked() {
        let conn = Connection::open_in_memory().unwrap();
        run(&conn).unwrap();
        run(&conn).unwrap();
        let count: i64 = conn
            .query_row("SELECT COUNT(*) FROM _sqlx_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, MIGRATIONS.len() as i64);
        conn.execute(
            "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 1",
            [],
        )
        .unwrap();
        let refused = run(&conn).unwrap_err().to_string();
        assert!(refused.contains("migration 1"), "{refused}");
    }

    /// The checksums are sqlx's: a database migrated by sqlx opens without a complaint.
    #[test]
    fn checksums_are_sqlxs() {
        let sql = MIGRATIONS[0].2;
        assert_eq!(
            Sha384::digest(sql.as_bytes()).to_vec(),
            sqlx::migrate::Migration::new(
                1,
                "initial".into(),
                sqlx::migrate::MigrationType::Simple,
                sqlx::AssertSqlSafe(sql).into_sql_str(),
                false
            )
            .checksum
            .to_vec()
        );
    }
}
