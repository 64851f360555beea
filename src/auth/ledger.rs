//! The request ledger as front-ends see it: a request, named by a fingerprint the front-end
//! builds (for RADIUS: NAS address, identifier, Request Authenticator), is taken by one node;
//! a node that receives it again (a NAS failing over) sends that node's answer instead of
//! checking the OTP a second time.

use super::Authenticator;
use crate::store::StoreError;
pub use crate::store::ledger::Claim;

/// How long answers stay in the ledger.
pub const LEDGER_SECONDS: i64 = 60;

impl Authenticator {
    pub async fn claim_request(&self, fingerprint: &str) -> Result<Claim, StoreError> {
        self.store
            .ledger_claim(fingerprint, self.clock.now().timestamp())
            .await
    }

    /// Record the answer (in the background).
    pub fn record_answer(&self, fingerprint: &str, answer: &[u8]) {
        self.store.ledger_answer(fingerprint, answer);
    }

    /// Drop ledger entries older than [`LEDGER_SECONDS`].
    pub async fn ledger_cleanup(&self) -> Result<u64, StoreError> {
        self.store
            .ledger_cleanup(self.clock.now().timestamp() - LEDGER_SECONDS)
            .await
    }

    /// Whether the store is shared by several nodes (PostgreSQL), where the ledger pays off.
    pub fn shared_store(&self) -> bool {
        self.store.backend() == crate::store::Backend::Postgres
    }
}
