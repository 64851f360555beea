//! The audit listing: a time-bounded `audit list --since` must read the window's end of the
//! (large, ever-growing) audit table, not the whole of it — an index range scan on PostgreSQL,
//! a scan by id bounded near the window's start on SQLite.

use crate::harness::store_settings;

use otpgate::store::audit::AuditFilter;
use otpgate::store::{Database, Store, StoreSettings};

/// The shape of `Store::list_audit` with `--since` and no other filter.
const SINCE_LISTING: &str =
    "EXPLAIN SELECT id FROM audit WHERE 1 = 1 AND time_us >= 49990000 ORDER BY id DESC LIMIT 100";

#[tokio::test]
async fn a_since_listing_uses_the_time_index_on_postgresql() {
    let url = crate::pg::fresh_database().await;
    let store = Store::open(&store_settings(Database::Postgres(url.clone())))
        .await
        .expect("open and migrate");
    store.close().await;

    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    // enough rows that the planner weighs a scan of the table against the index
    sqlx::query(
        "INSERT INTO audit (time_us, node, event, success) \
         SELECT g * 1000, 'n', 'validate_check', 1 FROM generate_series(1, 50000) g",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE audit").execute(&pool).await.unwrap();
    let plan: Vec<String> = sqlx::query_scalar(SINCE_LISTING)
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        plan.iter().any(|line| line.contains("audit_time")),
        "{plan:#?}"
    );
}

const HOUR_US: i64 = 3_600_000_000;

fn sqlite_at(path: &std::path::Path) -> StoreSettings {
    store_settings(Database::Sqlite(path.to_owned()))
}

/// SQLite lists newest first by id and stops about an hour's worth of rows before the window:
/// a row written late within that hour is listed, a row whose time lies in the window although
/// it was written before rows more than an hour older than the window (a clock set back) is
/// not — the row that shows the scan did not go back to the table's start.
#[tokio::test]
async fn a_since_listing_on_sqlite_stops_near_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let settings = sqlite_at(&path);
    let store = Store::open(&settings).await.expect("open and migrate");
    store.close().await;

    // one row per second over ten hours, after one stamped in the future
    let now = 100 * HOUR_US;
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let insert = "INSERT INTO audit (time_us, node, event, success, info) \
                      VALUES (?1, 'n', 'validate_check', 1, ?2)";
        conn.execute(insert, rusqlite::params![now + HOUR_US, "clock set back"])
            .unwrap();
        conn.execute_batch("BEGIN").unwrap();
        for s in 0..36_000i64 {
            conn.execute(
                insert,
                rusqlite::params![now - (36_000 - s) * 1_000_000, ""],
            )
            .unwrap();
        }
        conn.execute(insert, rusqlite::params![now - 10 * 60_000_000, "late"])
            .unwrap();
        conn.execute_batch("COMMIT").unwrap();
    }

    let store = Store::open(&settings).await.unwrap();
    let since = |since_us| AuditFilter {
        since_us: Some(since_us),
        limit: 1000,
        ..AuditFilter::default()
    };
    // the last 5 minutes: 300 rows on time and none late
    let rows = store.list_audit(&since(now - 300_000_000)).await.unwrap();
    assert_eq!(rows.len(), 300);
    assert!(rows.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    // the last 15 minutes: the row written 10 minutes late is there, the mis-stamped one not
    let rows = store.list_audit(&since(now - 900_000_000)).await.unwrap();
    assert_eq!(rows.len(), 901);
    assert_eq!(rows[0].info, "late");
    assert!(rows.iter().all(|r| r.info != "clock set back"));
    // a window before every row lists them all, the first row too
    let rows = store
        .list_audit(&AuditFilter {
            since_us: Some(0),
            limit: 100_000,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 36_002);
    // and a window after every row none
    let rows = store.list_audit(&since(now + 2 * HOUR_US)).await.unwrap();
    assert!(rows.is_empty());
    store.close().await;
}

/// An empty audit table lists nothing, with or without a window.
#[tokio::test]
async fn a_since_listing_of_an_empty_sqlite_audit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&sqlite_at(&dir.path().join("audit.db")))
        .await
        .unwrap();
    let filter = AuditFilter {
        since_us: Some(0),
        limit: 10,
        ..AuditFilter::default()
    };
    assert!(store.list_audit(&filter).await.unwrap().is_empty());
    store.close().await;
}
