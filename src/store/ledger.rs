//! The request ledger: which requests some node already took, and their answers.
//!
//! On the hot path of every login on a shared store, so both sides are batched: claims that
//! arrive together are one `INSERT … ON CONFLICT DO NOTHING RETURNING`, and answers are
//! recorded in the background, many per `UPDATE`.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::db::Db;
use super::diagnostics::health::Health;
use super::query::{Sql, query};
use super::{Store, StoreError};

/// What the ledger says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node took it: process it and record the answer.
    Mine,
    /// Another node answered it: send this again.
    Answered(Vec<u8>),
    /// Another node (or an earlier copy here) is processing it now.
    InFlight,
}

struct ClaimJob {
    fingerprint: String,
    now: i64,
    reply: oneshot::Sender<Result<Claim, StoreError>>,
}

/// Rows per statement.
const BATCH: usize = 128;

#[derive(Clone, Debug)]
pub(crate) struct Ledger {
    claims: mpsc::Sender<ClaimJob>,
    answers: mpsc::Sender<(String, Vec<u8>)>,
}

impl std::fmt::Debug for ClaimJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClaimJob")
    }
}

impl Ledger {
    pub(crate) fn start(pool: Db, health: Arc<Health>) -> Self {
        let (claims, rx) = mpsc::channel(8192);
        tokio::spawn(claim_loop(pool.clone(), rx, Arc::clone(&health)));
        let (answers, rx) = mpsc::channel(8192);
        tokio::spawn(answer_loop(pool, rx, health));
        Self { claims, answers }
    }
}

async fn claim_loop(pool: Db, mut rx: mpsc::Receiver<ClaimJob>, health: Arc<Health>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        super::take_queued(&mut rx, &mut batch, BATCH);
        match health.guard(claim_batch(&pool, &batch)).await {
            Ok(claims) => {
                for (job, claim) in batch.into_iter().zip(claims) {
                    let _ = job.reply.send(Ok(claim));
                }
            }
            Err(e) => {
                for job in batch {
                    let _ = job.reply.send(Err(e.relay()));
                }
            }
        }
    }
}

async fn claim_batch(pool: &Db, batch: &[ClaimJob]) -> Result<Vec<Claim>, StoreError> {
    // a fingerprint twice in one batch: the first copy takes it, the others are in flight
    let mut seen = HashSet::new();
    let firsts: Vec<&ClaimJob> = batch
        .iter()
        .filter(|j| seen.insert(j.fingerprint.as_str()))
        .collect();
    let mut q = Sql::new("INSERT INTO request_ledger (fingerprint, created) VALUES ");
    for (i, j) in firsts.iter().enumerate() {
        q.push(if i == 0 { "(" } else { ", (" })
            .bind(j.fingerprint.as_str())
            .push(", ")
            .bind(j.now)
            .push(")");
    }
    q.push(" ON CONFLICT (fingerprint) DO NOTHING RETURNING fingerprint");
    let inserted: HashSet<String> = q
        .query()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| r.get::<String>(0))
        .collect::<Result<_, _>>()?;
    let taken: Vec<&str> = firsts
        .iter()
        .map(|j| j.fingerprint.as_str())
        .filter(|f| !inserted.contains(*f))
        .collect();
    let mut answered = std::collections::HashMap::new();
    if !taken.is_empty() {
        let mut q =
            Sql::new("SELECT fingerprint, answer FROM request_ledger WHERE fingerprint IN (");
        q.bind_list(taken.iter().copied()).push(")");
        for r in q.query().fetch_all(pool).await? {
            let f: String = r.get(0)?;
            if let Some(a) = r.get::<Option<Vec<u8>>>(1)? {
                answered.insert(f, a);
            }
        }
    }
    let mut mine_given = HashSet::new();
    Ok(batch
        .iter()
        .map(|j| {
            let f = j.fingerprint.as_str();
            if inserted.contains(f) && mine_given.insert(f) {
                Claim::Mine
            } else if let Some(a) = answered.get(f) {
                Claim::Answered(a.clone())
            } else {
                Claim::InFlight
            }
        })
        .collect())
}

async fn answer_loop(pool: Db, mut rx: mpsc::Receiver<(String, Vec<u8>)>, health: Arc<Health>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        super::take_queued(&mut rx, &mut batch, BATCH);
        if health.is_down() {
            // the breaker's log line says why; a failover retransmit is checked again
            metrics::counter!("otpgate_ledger_answers_dropped_total").increment(batch.len() as u64);
            continue;
        }
        let mut q = Sql::new("WITH v(fingerprint, answer) AS (VALUES ");
        for (i, (f, a)) in batch.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" })
                .bind(f.as_str())
                .push(", ")
                .bind(super::query::Param::Blob(a.clone()))
                .push(")");
        }
        q.push(
            ") UPDATE request_ledger SET answer = v.answer FROM v \
             WHERE request_ledger.fingerprint = v.fingerprint",
        );
        // through the breaker: on a silent connection this loop would otherwise wait until the
        // kernel gives the connection up, and record no answer meanwhile
        if let Err(e) = health.guard(async { q.query().execute(&pool).await }).await {
            tracing::warn!(target: "otpgate::store", error = %e, answers = batch.len(), "request ledger answers not recorded");
        }
    }
}

impl Store {
    /// Take a request by its fingerprint, unless a node already did.
    pub async fn ledger_claim(&self, fingerprint: &str, now: i64) -> Result<Claim, StoreError> {
        let (reply, wait) = oneshot::channel();
        self.ledger
            .claims
            .send(ClaimJob {
                fingerprint: fingerprint.to_owned(),
                now,
                reply,
            })
            .await
            .map_err(|_| StoreError::Corrupt("the request ledger has stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Corrupt("the request ledger has stopped".into()))?
    }

    /// Record an answer (in the background; a full queue drops it, which only means a
    /// failover retransmit is checked again).
    pub fn ledger_answer(&self, fingerprint: &str, answer: &[u8]) {
        if self
            .ledger
            .answers
            .try_send((fingerprint.to_owned(), answer.to_vec()))
            .is_err()
        {
            metrics::counter!("otpgate_ledger_answers_dropped_total").increment(1);
        }
    }

    pub async fn ledger_cleanup(&self, before: i64) -> Result<u64, StoreError> {
        let done = query("DELETE FROM request_ledger WHERE created < $1")
            .bind(before)
            .execute(self.db())
            .await?;
        Ok(done)
    }
}
