//! A token moved over from another system with its state (`otpgate import privacyidea`):
//! what `Authenticator::import_privacyidea` stores.

use std::collections::BTreeMap;

use crate::secret::Secret;
use crate::token::{HashLib, Owner, TokenType};

/// How an imported token's PIN is stored.
#[derive(Debug)]
pub enum PinPlan {
    None,
    /// An argon2 PHC string, verified as it is.
    Hash(Secret<String>),
    /// A PIN privacyIDEA stored encrypted: sealed again with otpgate's key.
    Sealed(Secret<String>),
    /// A hash otpgate cannot verify: no PIN matches until the admin sets one.
    ResetRequired,
}

/// The stored value that no PIN matches (not a PHC string, not a sealed PIN).
pub const PIN_RESET_REQUIRED: &str = "!reset-required";

/// One token, ready to store.
#[derive(Debug)]
pub struct PlannedToken {
    pub serial: String,
    pub kind: TokenType,
    pub description: String,
    pub owner: Option<Owner>,
    pub realms: Vec<String>,
    pub active: bool,
    pub revoked: bool,
    pub failcount: i64,
    pub maxfail: i64,
    pub counter: i64,
    pub count_window: i64,
    pub otplen: i64,
    pub hashlib: HashLib,
    pub time_step: Option<i64>,
    pub time_window: Option<i64>,
    pub time_shift: i64,
    pub key: Option<Secret<Vec<u8>>>,
    pub pin: PinPlan,
    pub rollout_state: String,
    pub validity_start: Option<String>,
    pub validity_end: Option<String>,
    pub count_auth: i64,
    pub count_auth_success: i64,
    pub count_auth_max: i64,
    pub count_auth_success_max: i64,
    pub last_auth: Option<String>,
    pub info: BTreeMap<String, String>,
}
