//! The audit listing on a real PostgreSQL: a time-bounded `audit list --since` must be an
//! index range scan, not a scan of the whole (large, ever-growing) audit table.

use std::time::Duration;

use otpgate::store::{Database, Store, StoreSettings};

/// The shape of `Store::list_audit` with `--since` and no other filter.
const SINCE_LISTING: &str =
    "EXPLAIN SELECT id FROM audit WHERE 1 = 1 AND time_us >= 49990000 ORDER BY id DESC LIMIT 100";

#[tokio::test]
async fn a_since_listing_uses_the_time_index_on_postgresql() {
    let url = crate::pg::fresh_database().await;
    let store = Store::open(&StoreSettings {
        database: Database::Postgres(url.clone()),
        max_connections: 2,
        connect_timeout: Duration::from_secs(10),
    })
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
