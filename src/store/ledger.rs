//! The request ledger: which requests some node already took, and their answers.

use sqlx::Row;

use super::{Store, StoreError};

/// What the ledger says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node took it: process it and record the answer.
    Mine,
    /// Another node answered it: send this again.
    Answered(Vec<u8>),
    /// Another node is processing it now.
    InFlight,
}

impl Store {
    /// Take a request by its fingerprint, unless a node already did.
    pub async fn ledger_claim(&self, fingerprint: &str, now: i64) -> Result<Claim, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO request_ledger (fingerprint, created) VALUES ($1, $2) \
             ON CONFLICT (fingerprint) DO NOTHING RETURNING created",
        )
        .bind(fingerprint)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        if inserted.is_some() {
            return Ok(Claim::Mine);
        }
        let row = sqlx::query("SELECT answer FROM request_ledger WHERE fingerprint = $1")
            .bind(fingerprint)
            .fetch_optional(self.pool())
            .await?;
        Ok(
            match row.and_then(|r| r.try_get::<Option<Vec<u8>>, _>("answer").ok().flatten()) {
                Some(answer) => Claim::Answered(answer),
                None => Claim::InFlight,
            },
        )
    }

    pub async fn ledger_answer(&self, fingerprint: &str, answer: &[u8]) -> Result<(), StoreError> {
        sqlx::query("UPDATE request_ledger SET answer = $1 WHERE fingerprint = $2")
            .bind(answer)
            .bind(fingerprint)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Forget a claim whose request ended without an answer, so a retransmit is processed.
    pub async fn ledger_release(&self, fingerprint: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM request_ledger WHERE fingerprint = $1 AND answer IS NULL")
            .bind(fingerprint)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn ledger_cleanup(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM request_ledger WHERE created < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
