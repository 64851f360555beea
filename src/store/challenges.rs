//! Open challenges, shared by every node on the same database.

use super::query::{Query, Row, query};

use super::{Store, StoreError, flag};

/// One challenge row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRow {
    pub id: i64,
    pub transaction_id: String,
    pub serial: String,
    /// Type-specific data: for email/SMS the HOTP counter whose value was sent.
    pub data: String,
    /// The text shown to the user.
    pub challenge: String,
    pub session: String,
    pub created: i64,
    pub expiration: i64,
    pub received_count: i64,
    pub otp_valid: bool,
}

impl ChallengeRow {
    pub fn is_valid_at(&self, now_unix: i64) -> bool {
        now_unix < self.expiration
    }
}

/// A challenge to insert.
#[derive(Debug, Clone)]
pub struct NewChallenge<'a> {
    pub transaction_id: &'a str,
    pub serial: &'a str,
    pub owner: Option<(&'a str, &'a str)>,
    pub data: &'a str,
    pub challenge: &'a str,
    pub session: &'a str,
    pub created: i64,
    pub expiration: i64,
}

fn from_row(r: &Row) -> Result<ChallengeRow, StoreError> {
    Ok(ChallengeRow {
        id: r.try_get("id")?,
        transaction_id: r.try_get("transaction_id")?,
        serial: r.try_get("serial")?,
        data: r.try_get("data")?,
        challenge: r.try_get("challenge")?,
        session: r.try_get("session")?,
        created: r.try_get("created")?,
        expiration: r.try_get("expiration")?,
        received_count: r.try_get("received_count")?,
        otp_valid: flag(r.try_get("otp_valid")?),
    })
}

const COLUMNS: &str = "SELECT id, transaction_id, serial, data, challenge, session, created, \
     expiration, received_count, otp_valid FROM challenge ";

impl Store {
    pub async fn insert_challenge(&self, c: &NewChallenge<'_>) -> Result<(), StoreError> {
        self.guarded(async {
            query(
                "INSERT INTO challenge (transaction_id, serial, owner_login, owner_realm, data, \
             challenge, session, created, expiration) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(c.transaction_id)
            .bind(c.serial)
            .bind(c.owner.map(|o| o.0))
            .bind(c.owner.map(|o| o.1))
            .bind(c.data)
            .bind(c.challenge)
            .bind(c.session)
            .bind(c.created)
            .bind(c.expiration)
            .execute(self.db())
            .await?;
            Ok(())
        })
        .await
    }

    /// The challenge of one token in one transaction.
    pub async fn challenge_for(
        &self,
        transaction_id: &str,
        serial: &str,
    ) -> Result<Option<ChallengeRow>, StoreError> {
        self.guarded(async {
            let sql =
                format!("{COLUMNS}WHERE transaction_id = $1 AND serial = $2 ORDER BY id DESC");
            let row = Query::owned(sql)
                .bind(transaction_id)
                .bind(serial)
                .fetch_optional(self.db())
                .await?;
            row.as_ref().map(from_row).transpose()
        })
        .await
    }

    /// Challenges of a token, optionally of one transaction (challenge conditions).
    pub async fn challenges_of(
        &self,
        serial: &str,
        transaction_id: Option<&str>,
    ) -> Result<Vec<ChallengeRow>, StoreError> {
        self.guarded(async {
            let rows = match transaction_id {
                Some(tx) => {
                    let sql =
                        format!("{COLUMNS}WHERE serial = $1 AND transaction_id = $2 ORDER BY id");
                    Query::owned(sql)
                        .bind(serial)
                        .bind(tx)
                        .fetch_all(self.db())
                        .await?
                }
                None => {
                    let sql = format!("{COLUMNS}WHERE serial = $1 ORDER BY id");
                    Query::owned(sql).bind(serial).fetch_all(self.db()).await?
                }
            };
            rows.iter().map(from_row).collect()
        })
        .await
    }

    /// Every challenge of one transaction (`/validate/polltransaction`).
    pub async fn challenges_of_transaction(
        &self,
        transaction_id: &str,
    ) -> Result<Vec<ChallengeRow>, StoreError> {
        self.guarded(async {
            let sql = format!("{COLUMNS}WHERE transaction_id = $1 ORDER BY id");
            let rows = Query::owned(sql)
                .bind(transaction_id)
                .fetch_all(self.db())
                .await?;
            rows.iter().map(from_row).collect()
        })
        .await
    }

    /// Remove every challenge of a transaction (after a successful answer).
    pub async fn delete_transaction(&self, transaction_id: &str) -> Result<u64, StoreError> {
        self.rows_changed(
            query("DELETE FROM challenge WHERE transaction_id = $1").bind(transaction_id),
        )
        .await
    }

    /// Delete one token's challenge of a transaction. True for the one request that deleted
    /// it: the guard that lets an email/SMS answer be accepted once.
    pub async fn take_challenge(&self, id: i64) -> Result<bool, StoreError> {
        let deleted = self
            .rows_changed(query("DELETE FROM challenge WHERE id = $1").bind(id))
            .await?;
        Ok(deleted > 0)
    }

    /// Count a wrong answer on a challenge.
    pub async fn bump_challenge(&self, id: i64) -> Result<(), StoreError> {
        self.rows_changed(
            query("UPDATE challenge SET received_count = received_count + 1 WHERE id = $1")
                .bind(id),
        )
        .await?;
        Ok(())
    }

    /// Delete challenges that expired before `cutoff` (unix seconds).
    pub async fn cleanup_challenges(&self, cutoff: i64) -> Result<u64, StoreError> {
        self.rows_changed(query("DELETE FROM challenge WHERE expiration < $1").bind(cutoff))
            .await
    }

    /// Run one statement through the breaker ([`Store::guarded`]): the rows it changed.
    async fn rows_changed(&self, statement: Query) -> Result<u64, StoreError> {
        self.guarded(async { statement.execute(self.db()).await })
            .await
    }
}
