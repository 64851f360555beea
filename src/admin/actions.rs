//! What the authenticator lends the event engine's handlers (`event::Actions`).

use std::sync::Arc;

use crate::auth::{Authenticator, Origin};
use crate::crypto::PinHasher;
use crate::event::Actions;
use crate::event::actions::EnrollFuture;
use crate::message::upstream::Upstreams;
use crate::store::Store;
use crate::store::audit::AuditSink;
use crate::token::enroll::EnrollSpec;

impl Actions for Authenticator {
    fn store(&self) -> &Store {
        &self.store
    }

    fn node(&self) -> &Arc<str> {
        &self.node
    }

    fn audit(&self) -> &AuditSink {
        &self.audit
    }

    fn pins(&self) -> &PinHasher {
        &self.pins
    }

    fn upstreams(&self) -> Arc<dyn Upstreams> {
        Authenticator::upstreams(self)
    }

    fn enroll(&self, spec: EnrollSpec) -> EnrollFuture<'_> {
        Box::pin(async move {
            self.enroll_token(spec, Origin::Event)
                .await
                .map(|enrolled| enrolled.serial)
                .map_err(|e| e.to_string())
        })
    }
}
