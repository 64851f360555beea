//! The protocol-agnostic core: `validate_check` and the admin use-cases.
//!
//! A front-end builds a [`Request`], awaits [`Authenticator::validate_check`], and maps the
//! returned [`Response`] (the privacyIDEA-shaped answer document) to its wire format. This
//! module never sees bytes, sockets, RADIUS attributes or LDAP DNs, and never reads the clock
//! except through the injected [`Clock`].
//!
//! - [`pipeline`]: user and realm resolution, (policies, events,) the check, the audit row;
//! - [`check`]: `check_token_list` and its branches; [`challenge`]: challenge-response;
//! - [`verify`]: one token's OTP, validity and `check_all`; [`pin`]: PIN/OTP split;
//! - [`manage`]: enroll, assign, enable … shared by the CLI and the HTTP API;
//! - [`trace`]: the decision trace stored with each audit row.

pub mod api_audit;
pub mod challenge;
pub mod check;
pub mod delivery;
#[cfg(test)]
pub(crate) mod fixture;
pub mod ledger;
pub mod pin;
pub mod pipeline;
pub mod policy;
mod policy_steps;
mod poll;
pub mod proof;
pub mod settings;
mod trigger;
pub mod verify;

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::crypto::{MasterKey, PinHasher};
pub use crate::message::{Authentication, Decision, Origin, Proof, Request, Response, Trace};
pub use crate::message::{request, response, trace, upstream};
use crate::secret::Secret;
use crate::store::audit::AuditSink;
use crate::store::{Store, StoreError};
use crate::token::{HashLib, Token, TokenType};
use crate::users::{Directory, ResolvedUser};
pub use delivery::DeliverySettings;
pub use pin::OtpPin;
pub use settings::SystemSettings;

/// Everything a configuration reload replaces.
#[derive(Debug)]
pub struct AuthConfig {
    pub directory: Arc<Directory>,
    pub events: Arc<crate::event::Definitions>,
    pub handlers: crate::event::HandlerSettings,
    pub notifier: Arc<crate::notify::Notifier>,
    pub policies: Arc<policy::Policies>,
    pub system: SystemSettings,
    pub delivery: DeliverySettings,
    pub issuer: String,
    pub totp_hashlib: HashLib,
    /// `[audit] before_answer`: a request's row is committed before its answer leaves.
    pub audit_before_answer: bool,
}

impl AuthConfig {
    /// What the event engine works with.
    pub fn event_env(&self) -> crate::event::Env<'_> {
        crate::event::Env {
            definitions: &self.events,
            handlers: &self.handlers,
            directory: &self.directory,
            notifier: &self.notifier,
        }
    }
}

/// Why a request could not be decided normally.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A finished error answer (unknown user, bad parameters …).
    #[error("request refused")]
    Respond(Response),
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Directory(#[from] crate::users::DirectoryError),
}

/// Policy-derived switches of one request (defaults = no policies).
#[derive(Debug, Clone, Default)]
pub struct AuthFlags {
    pub otppin: OtpPin,
    pub challenge_types: Vec<TokenType>,
    pub challenge_text: Option<String>,
    pub force_challenge_response: bool,
    pub increase_failcounter_on_challenge: bool,
    pub reset_all_user_tokens: bool,
    pub disabled_token_types: Vec<TokenType>,
}

/// What `validate_check` hands back to a front-end.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub response: Response,
    /// The resolved user, for reply attributes (groups, attributes).
    pub user: Option<ResolvedUser>,
    /// The serials that authenticated.
    pub accepted: Vec<String>,
    /// The policies that matched the request.
    pub policies: Vec<String>,
    /// The answer is an error because the token store could not be reached.
    pub store_unavailable: bool,
}

/// The authentication core. One per daemon; cheap to share behind an `Arc`.
pub struct Authenticator {
    pub(crate) store: Store,
    pub(crate) key: Arc<MasterKey>,
    pub(crate) pins: PinHasher,
    pub(crate) audit: AuditSink,
    pub(crate) clock: Arc<dyn Clock>,
    /// Shared with every audit row this node writes.
    pub(crate) node: Arc<str>,
    config: RwLock<Arc<AuthConfig>>,
    upstreams: RwLock<Arc<dyn upstream::Upstreams>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// The parts an [`Authenticator`] is built from.
pub struct Parts {
    pub store: Store,
    pub key: Arc<MasterKey>,
    pub pins: PinHasher,
    pub audit: AuditSink,
    pub clock: Arc<dyn Clock>,
    pub node: String,
    pub config: AuthConfig,
    pub upstreams: Arc<dyn upstream::Upstreams>,
}

impl Authenticator {
    pub fn new(parts: Parts) -> Self {
        Self {
            store: parts.store,
            key: parts.key,
            pins: parts.pins,
            audit: parts.audit,
            clock: parts.clock,
            node: parts.node.into(),
            config: RwLock::new(Arc::new(parts.config)),
            upstreams: RwLock::new(parts.upstreams),
        }
    }

    /// The remotes of the current configuration (Federation, passthru).
    pub fn upstreams(&self) -> Arc<dyn upstream::Upstreams> {
        match self.upstreams.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Swap the remotes (configuration reload).
    pub fn reload_upstreams(&self, upstreams: Arc<dyn upstream::Upstreams>) {
        match self.upstreams.write() {
            Ok(mut g) => *g = upstreams,
            Err(p) => *p.into_inner() = upstreams,
        }
    }

    /// The current configuration snapshot.
    pub fn config(&self) -> Arc<AuthConfig> {
        match self.config.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swap in a new configuration; requests in flight finish on the old one.
    pub fn reload(&self, config: AuthConfig) {
        let new = Arc::new(config);
        match self.config.write() {
            Ok(mut guard) => *guard = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn pins(&self) -> &PinHasher {
        &self.pins
    }

    pub fn audit(&self) -> &AuditSink {
        &self.audit
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn master_key(&self) -> &MasterKey {
        &self.key
    }
}

/// One request while it runs.
pub(crate) struct Attempt<'a> {
    pub auth: &'a Authenticator,
    pub cfg: &'a AuthConfig,
    pub now: DateTime<Utc>,
    pub trace: Trace,
    pub flags: AuthFlags,
    pub user: Option<ResolvedUser>,
    /// Login and realm as requested (also when the user does not exist).
    pub login: String,
    pub realm: String,
    pub transaction_id: Option<String>,
    /// Serials named in the answer (audit `serial`).
    pub serials: Vec<String>,
    pub token_types: Vec<String>,
    pub accepted: Vec<String>,
    /// Tokens this request locked (failcount reached maxfail) or unlocked.
    pub locked: Vec<String>,
    pub unlocked: Vec<String>,
    pub policies: Vec<String>,
    pub transaction_issued: Option<String>,
    pub userstore_cache: Vec<(Secret<String>, bool)>,
    /// The policy actions in force for this request.
    pub policy: policy::Effective,
    /// The tokens that authenticated, as they were before this request changed them
    /// (`last_auth` policy, authorization policies).
    pub accepted_tokens: Vec<Token>,
    /// Accepted by passthru or passOnNo*: authorization by token does not apply.
    pub accepted_without_token: bool,
    /// Tokens this request consumed, in the state its UPDATE left them (POST handlers read
    /// them instead of the database).
    pub post_state: Vec<Arc<Token>>,
    /// The check failed because the token store could not be reached.
    pub store_unavailable: bool,
    /// A resolver of the request's realm could not answer.
    pub directory_error: Option<crate::users::DirectoryError>,
    /// The request's CHAP or MS-CHAP response, checked against each token's window.
    pub proof: Option<Arc<dyn Proof>>,
    pub endpoint: pipeline::Endpoint,
}

impl<'a> Attempt<'a> {
    pub(crate) fn new(auth: &'a Authenticator, cfg: &'a AuthConfig, now: DateTime<Utc>) -> Self {
        Self {
            auth,
            cfg,
            now,
            trace: Trace::new(),
            flags: AuthFlags::default(),
            user: None,
            login: String::new(),
            realm: String::new(),
            transaction_id: None,
            serials: Vec::new(),
            token_types: Vec::new(),
            accepted: Vec::new(),
            locked: Vec::new(),
            unlocked: Vec::new(),
            policies: Vec::new(),
            transaction_issued: None,
            userstore_cache: Vec::new(),
            policy: policy::Effective::default(),
            accepted_tokens: Vec::new(),
            accepted_without_token: false,
            post_state: Vec::new(),
            store_unavailable: false,
            directory_error: None,
            proof: None,
            endpoint: Default::default(),
        }
    }

    /// Record a token named in the answer.
    pub(crate) fn note_token(&mut self, t: &Token) {
        if !self.serials.contains(&t.serial) {
            self.serials.push(t.serial.clone());
        }
        let kind = t.kind.as_str().to_owned();
        if !self.token_types.contains(&kind) {
            self.token_types.push(kind);
        }
    }
}
