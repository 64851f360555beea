//! Token seed files, parsed: OATH CSV (`oath_csv`) and PSKC (`pskc`, RFC 6030: plain, with a
//! pre-shared key, or with a key derived from a password). How admins load hardware-token
//! seeds, and how the benchmark loads 100,000 tokens.
//!
//! Pure: text in, tokens out. Storing them (one transaction) is
//! `Authenticator::import_tokens` in `admin::manage`.

mod moved;
mod oath_csv;
mod pskc;
mod pskc_crypto;

pub use moved::{PIN_RESET_REQUIRED, PinPlan, PlannedToken};
pub use oath_csv::parse_oath_csv;
pub use pskc::parse_pskc;
pub use pskc_crypto::PskcKeys;

use super::{HashLib, TokenType};
use crate::secret::Secret;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("line {line}: {message}")]
    Csv { line: usize, message: String },
    #[error("PSKC: {0}")]
    Pskc(String),
    #[error("PSKC key {id}: {message}")]
    PskcKey { id: String, message: String },
}

/// One token from a seed file.
#[derive(Debug, Clone)]
pub struct ImportedToken {
    pub serial: String,
    pub kind: TokenType,
    pub key: Secret<Vec<u8>>,
    pub otplen: i64,
    pub counter: i64,
    pub time_step: Option<i64>,
    /// Seconds added to the clock for a TOTP (the file's drift and start time).
    pub time_shift: i64,
    pub hashlib: HashLib,
    pub user: Option<String>,
    pub realm: Option<String>,
    pub description: String,
    /// `validity_period_start` / `_end`, in the format `token set` writes.
    pub validity_start: Option<String>,
    pub validity_end: Option<String>,
}
