//! Storing the tokens of a privacyIDEA import (`otpgate import privacyidea`): keys sealed
//! with otpgate's key, PINs kept as argon2 hashes or sealed again, all in one transaction.

use std::collections::HashSet;

use serde::Serialize;

use super::manage::AdminError;
use crate::auth::Authenticator;
use crate::message::Origin;
use crate::secret::Secret;
use crate::store::tokens::{History, NewToken};
use crate::token::import::{PIN_RESET_REQUIRED, PinPlan, PlannedToken};

/// What an import stored.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PiImportReport {
    pub imported: usize,
    /// Serials stored already (by an earlier run): left as they are.
    pub present: Vec<String>,
    pub pins_kept: usize,
    pub pins_sealed: usize,
    pub pins_reset: usize,
}

impl Authenticator {
    /// The serials of these tokens that are stored already.
    pub async fn present_serials(
        &self,
        tokens: &[PlannedToken],
    ) -> Result<HashSet<String>, AdminError> {
        let serials: Vec<&str> = tokens.iter().map(|t| t.serial.as_str()).collect();
        Ok(self.store.tokens().existing_serials(&serials).await?)
    }

    /// Store the tokens of a privacyIDEA import that are not stored yet: all or none.
    pub async fn import_privacyidea(
        &self,
        tokens: Vec<PlannedToken>,
        origin: Origin,
    ) -> Result<PiImportReport, AdminError> {
        let present = self.present_serials(&tokens).await?;
        let now = self.clock.now().timestamp();
        let mut report = PiImportReport::default();
        let mut new = Vec::with_capacity(tokens.len());
        for t in tokens {
            if present.contains(&t.serial) {
                report.present.push(t.serial);
                continue;
            }
            let pin_hash = match &t.pin {
                PinPlan::None => None,
                PinPlan::Hash(h) => {
                    report.pins_kept += 1;
                    Some(h.clone())
                }
                PinPlan::Sealed(pin) => {
                    report.pins_sealed += 1;
                    self.stored_pin(&t.serial, pin, true).await?
                }
                PinPlan::ResetRequired => {
                    report.pins_reset += 1;
                    Some(Secret::new(PIN_RESET_REQUIRED.to_owned()))
                }
            };
            let key_sealed = t
                .key
                .as_ref()
                .map(|k| self.key.seal(&t.serial, k.expose()))
                .transpose()?;
            new.push(NewToken {
                key_sealed,
                pin_hash,
                kind: t.kind,
                description: t.description,
                owner: t.owner,
                active: t.active,
                maxfail: t.maxfail,
                otp_counter: t.counter,
                count_window: t.count_window,
                otplen: t.otplen,
                hashlib: t.hashlib,
                time_step: t.time_step,
                time_window: t.time_window,
                time_shift: t.time_shift,
                rollout_state: t.rollout_state,
                validity_start: t.validity_start,
                validity_end: t.validity_end,
                count_auth_max: t.count_auth_max,
                count_auth_success_max: t.count_auth_success_max,
                info: t.info,
                realms: t.realms,
                created: now,
                history: History {
                    revoked: t.revoked,
                    failcount: t.failcount,
                    count_auth: t.count_auth,
                    count_auth_success: t.count_auth_success,
                    last_auth: t.last_auth,
                },
                serial: t.serial,
            });
        }
        report.imported = new.len();
        self.store.tokens().insert_all(&new).await?;
        self.admin_audit(
            "token_load",
            origin,
            "",
            None,
            true,
            format!(
                "imported {} token(s) from privacyIDEA, {} present already",
                report.imported,
                report.present.len()
            ),
        )
        .await;
        Ok(report)
    }
}
