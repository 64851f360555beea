//! Start-up and shutdown: open the store, load the key file, build the authenticator, and (for
//! `serve`) run the front-ends until SIGTERM, reloading the configuration on SIGHUP.

pub mod journal;
mod preflight;
pub mod serve;

pub use preflight::preflight;

use std::path::Path;
use std::sync::Arc;

use crate::auth::{AuthConfig, Authenticator, Parts};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::{MasterKey, PinHasher, SealError};
use crate::store::audit::AuditSink;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the token store at {url}: {source}")]
    Store { url: String, source: StoreError },
    #[error(transparent)]
    Key(#[from] SealError),
    #[error(
        "the key file {path} is missing but the store holds {tokens} sealed token(s); restore the key file (a new key cannot open them)"
    )]
    KeyLost { path: String, tokens: i64 },
    #[error("the key file {0} does not exist; run `otpgate init -c <config>` first")]
    NoKeyFile(String),
    #[error("{0}")]
    Other(String),
}

/// What to do about a missing key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    /// Fail: admin commands need an initialised installation.
    MustExist,
    /// Create it when the store holds no tokens yet (`init`, first `serve`).
    CreateIfFresh,
}

/// An opened installation.
pub struct Opened {
    pub auth: Arc<Authenticator>,
    pub store: Store,
    pub audit_writer: tokio::task::JoinHandle<()>,
    /// Set when this start created the key file.
    pub created_key: bool,
}

/// Open store and key file and build the authenticator.
pub async fn open(config: &Config, key_mode: KeyMode) -> Result<Opened, StartError> {
    open_with_clock(config, key_mode, Arc::new(SystemClock)).await
}

pub async fn open_with_clock(
    config: &Config,
    key_mode: KeyMode,
    clock: Arc<dyn Clock>,
) -> Result<Opened, StartError> {
    let store = Store::open(&config.store)
        .await
        .map_err(|source| StartError::Store {
            url: config.store.database.redacted(),
            source,
        })?;
    let (key, created_key) = load_or_create_key(&config.key_file, &store, key_mode).await?;
    let (audit, audit_writer) = AuditSink::start(store.clone(), config.audit_queue);
    let auth = Authenticator::new(Parts {
        store: store.clone(),
        key: Arc::new(key),
        pins: PinHasher::new(config.argon2),
        audit,
        clock,
        node: config.node.clone(),
        config: auth_config(config),
        upstreams: Arc::new(crate::remote::Remotes::new(&config.remotes)),
    });
    Ok(Opened {
        auth: Arc::new(auth),
        store,
        audit_writer,
        created_key,
    })
}

/// What the core takes from a configuration (all of it swapped at a reload).
pub fn auth_config(config: &Config) -> AuthConfig {
    AuthConfig {
        directory: config.directory.clone(),
        events: config.events.clone(),
        handlers: config.handlers.clone(),
        notifier: Arc::new(crate::notify::Notifier::new(&config.smtp, &config.sms)),
        policies: config.policies.clone(),
        system: config.system.clone(),
        delivery: config.delivery.clone(),
        issuer: config.issuer.clone(),
        totp_hashlib: config.totp_hashlib,
        audit_before_answer: config.audit_before_answer,
    }
}

async fn load_or_create_key(
    path: &Path,
    store: &Store,
    mode: KeyMode,
) -> Result<(MasterKey, bool), StartError> {
    if path.exists() {
        return Ok((MasterKey::load(path)?, false));
    }
    match mode {
        KeyMode::MustExist => Err(StartError::NoKeyFile(path.display().to_string())),
        KeyMode::CreateIfFresh => {
            let tokens = store
                .tokens()
                .count_all()
                .await
                .map_err(|e| StartError::Other(e.to_string()))?;
            if tokens > 0 {
                return Err(StartError::KeyLost {
                    path: path.display().to_string(),
                    tokens,
                });
            }
            Ok((MasterKey::create(path)?, true))
        }
    }
}

/// How long stopping waits for the audit rows still queued to be stored.
const AUDIT_FLUSH_AT_STOP: std::time::Duration = std::time::Duration::from_secs(5);

impl Opened {
    /// Flush the audit queue and close the pool. While commits stall the queue cannot drain:
    /// after `AUDIT_FLUSH_AT_STOP` (5 s) its rows go to the log, so that the process stops before
    /// its service manager kills it (systemd's default: 90 s) and loses them.
    pub async fn close(self) {
        let audit = self.auth.audit();
        if tokio::time::timeout(AUDIT_FLUSH_AT_STOP, audit.flush())
            .await
            .is_err()
        {
            tracing::warn!(
                waited_s = AUDIT_FLUSH_AT_STOP.as_secs(),
                "stopping: the database still holds back audit rows; they are written to the log"
            );
            audit.give_up_waiting();
        }
        drop(self.auth);
        // The writer ends when the last sink clone is gone; front-ends drop theirs first.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.audit_writer).await;
        self.store.close().await;
    }
}
