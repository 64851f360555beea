//! What definitions and their handlers may reach beyond the request: the token store (reads,
//! token changes, counters), the audit trail, PIN hashing, the remotes, and enrolling a token.
//! The authenticator lends exactly these (`admin::actions`); nothing else of it is in reach,
//! and the engine never sees how a request is authenticated.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::crypto::PinHasher;
use crate::message::upstream::Upstreams;
use crate::notify::Notifier;
use crate::store::Store;
use crate::store::audit::AuditSink;
use crate::token::enroll::EnrollSpec;
use crate::users::Directory;

use super::{Definitions, HandlerSettings};

/// A token enrolled for a handler: its serial, or why not.
pub type EnrollFuture<'a> = Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>>;

pub trait Actions: Send + Sync {
    fn store(&self) -> &Store;

    /// This node's name, for audit rows and counters.
    fn node(&self) -> &Arc<str>;

    fn audit(&self) -> &AuditSink;

    fn pins(&self) -> &PinHasher;

    /// The configured remotes (Federation).
    fn upstreams(&self) -> Arc<dyn Upstreams>;

    /// Enroll a token (the Token handler's `enroll`). It raises no event of its own: handlers
    /// never chain.
    fn enroll(&self, spec: EnrollSpec) -> EnrollFuture<'_>;
}

/// The configuration the engine works with, swapped with the rest at a reload.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    pub definitions: &'a Definitions,
    pub handlers: &'a HandlerSettings,
    /// Users for the determined user, owner conditions and tags.
    pub directory: &'a Directory,
    pub notifier: &'a Notifier,
}
