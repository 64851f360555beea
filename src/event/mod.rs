//! The event engine (spec §1–3): definitions from `[[event]]`, selection and ordering, the
//! condition catalogue, and the handler modules.
//!
//! - [`compare`]: the comparator grammar (pure);
//! - [`definition`]: `[[event]]` → validated [`Definition`]s, indexed by (event, position);
//! - [`conditions`]: the condition catalogue, parsed at load, evaluated against a [`context`];
//! - [`context`]: what a definition sees (user, serial, token, response …), loaded lazily and
//!   shared by all definitions of one phase until an action changes the store;
//! - [`tags`]: `{tag}` replacement for bodies, subjects, file names and webhook data;
//! - [`handlers`]: one file per handler module;
//! - [`engine`]: running the definitions of one phase, with audit rows and failure isolation.
//!
//! Handler actions never fire events themselves (no chaining, §1.1).

pub mod actions;
pub mod compare;
pub mod conditions;
pub mod context;
pub mod definition;
pub mod engine;
pub mod handlers;
pub mod options;
pub mod tags;

pub use actions::{Actions, Env};
pub use definition::{Definition, Definitions};
pub use engine::{Abort, Phase};

/// Before or after the endpoint body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Position {
    Pre,
    Post,
}

impl Position {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pre => "pre",
            Self::Post => "post",
        }
    }

    /// The audit `action` prefix.
    pub fn audit_prefix(self) -> &'static str {
        match self {
            Self::Pre => "PRE-EVENT",
            Self::Post => "POST-EVENT",
        }
    }
}

pub use crate::message::is_true;

/// Events otpgate raises; a definition naming another is a configuration error.
pub const KNOWN_EVENTS: &[&str] = &[
    "validate_check",
    "validate_triggerchallenge",
    "auth",
    "token_init",
    "token_delete",
    "token_disable",
    "token_enable",
    "token_assign",
    "token_unassign",
    "token_setpin",
    "token_reset",
    "token_resync",
    "token_revoke",
    "token_set",
    "token_locked",
    "token_unlocked",
    "token_load",
    "token_realm",
];

/// Runtime settings of the handler modules (`[handlers]`).
#[derive(Debug, Clone)]
pub struct HandlerSettings {
    pub script_dir: std::path::PathBuf,
    /// Seconds a waited-for script may run.
    pub script_timeout: u64,
    pub spool_dir: std::path::PathBuf,
    /// The `{url}` tag.
    pub base_url: String,
    /// How long a webhook may take.
    pub webhook_timeout: std::time::Duration,
    /// One HTTP client for webhooks (connection reuse).
    pub http: reqwest::Client,
}

impl Default for HandlerSettings {
    fn default() -> Self {
        crate::notify::ensure_tls_provider();
        Self {
            script_dir: "/etc/otpgate/scripts".into(),
            script_timeout: 30,
            spool_dir: "/var/lib/otpgate/notifications".into(),
            base_url: String::new(),
            webhook_timeout: std::time::Duration::from_secs(2),
            http: reqwest::Client::new(),
        }
    }
}
