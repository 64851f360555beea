//! Event counters (the `Counter` handler and the `counter` condition): one row per (name,
//! node), so nodes sharing a database never contend on one row; a counter's value is the sum.
//!
//! Increments ride in the group writer's commits. Everything that reads a counter first waits
//! until this node's queued increments are committed, so a read sees every increment queued
//! before it, whether its caller waited for that increment's commit or not.

use super::query::query;

use super::{Store, StoreError};

/// A counter summed over all nodes' rows.
const COUNTER_SUM_SQL: &str =
    "SELECT CAST(COALESCE(SUM(value), 0) AS BIGINT) AS v FROM event_counter WHERE name = $1";

/// Every node's row of a counter to 0.
const COUNTER_ZERO_SQL: &str = "UPDATE event_counter SET value = 0 WHERE name = $1";

/// Every counter summed over all nodes, by name.
const COUNTERS_ALL_SQL: &str = "SELECT name, CAST(COALESCE(SUM(value), 0) AS BIGINT) AS v \
     FROM event_counter GROUP BY name ORDER BY name";

impl Store {
    /// Every counter with its value summed over all nodes, by name.
    pub async fn counters(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.guarded(async {
            self.writer().flush().await?;
            let rows = query(COUNTERS_ALL_SQL).fetch_all(self.db()).await?;
            rows.iter()
                .map(|r| Ok((r.try_get::<String>("name")?, r.try_get::<i64>("v")?)))
                .collect()
        })
        .await
    }

    /// The counter summed over all nodes (missing = 0).
    pub async fn counter_value(&self, name: &str) -> Result<i64, StoreError> {
        self.guarded(async {
            self.writer().flush().await?;
            let row = query(COUNTER_SUM_SQL)
                .bind(name)
                .fetch_one(self.db())
                .await?;
            row.try_get("v")
        })
        .await
    }

    /// Add `delta` to this node's row (created when missing), through the group-commit
    /// writer; returns once it is committed.
    pub async fn counter_add(&self, name: &str, node: &str, delta: i64) -> Result<(), StoreError> {
        self.writer().counter_add(name, node, delta).await
    }

    /// Like [`counter_add`](Self::counter_add), but the increment rides in the next commit and
    /// nobody waits for it: a login does not wait a second fsync for its bookkeeping. A failed
    /// commit is logged and counted (`otpgate_event_counter_lost_total`).
    pub fn counter_add_queued(&self, name: &str, node: &str, delta: i64) {
        self.writer().counter_add_queued(name, node, delta);
    }

    /// −1 on this node's row if the sum is positive or negative values are allowed; otherwise
    /// every row of the counter goes to 0 (never below 0). One transaction.
    pub async fn counter_decrease(
        &self,
        name: &str,
        node: &str,
        allow_negative: bool,
    ) -> Result<(), StoreError> {
        self.guarded(async {
            self.writer().flush().await?;
            let mut tx = self.begin_write().await?;
            if self.backend() == super::Backend::Postgres {
                // Serialise decreases of one counter across nodes, so the sum never goes below 0.
                query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(name)
                    .execute(&mut tx)
                    .await?;
            }
            let row = query(COUNTER_SUM_SQL).bind(name).fetch_one(&mut tx).await?;
            let sum: i64 = row.try_get("v")?;
            if sum > 0 || allow_negative {
                query(
                    "INSERT INTO event_counter (name, node, value) VALUES ($1, $2, -1) \
                     ON CONFLICT (name, node) DO UPDATE SET value = event_counter.value - 1",
                )
                .bind(name)
                .bind(node)
                .execute(&mut tx)
                .await?;
            } else {
                query(COUNTER_ZERO_SQL).bind(name).execute(&mut tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Every row of the counter to 0 (this node's row created with 0).
    pub async fn counter_reset(&self, name: &str, node: &str) -> Result<(), StoreError> {
        self.guarded(async {
            self.writer().flush().await?;
            let mut tx = self.begin_write().await?;
            query(COUNTER_ZERO_SQL).bind(name).execute(&mut tx).await?;
            query(
                "INSERT INTO event_counter (name, node, value) VALUES ($1, $2, 0) \
                 ON CONFLICT (name, node) DO NOTHING",
            )
            .bind(name)
            .bind(node)
            .execute(&mut tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}
