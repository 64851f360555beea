//! What the front-ends and the core exchange: a [`Request`] in (the protocol-agnostic request
//! with its credential and neutral parameters), a [`Response`] out (the privacyIDEA-shaped
//! answer document), and the [`Trace`] of what the core decided on the way, stored with the
//! audit row; and the way to other servers that answer the same requests ([`upstream`]).
//! It imports nothing of the core, so the authentication path, the event engine and the
//! front-ends can all use it.

pub mod nas;
pub mod request;
pub mod response;
pub mod trace;
pub mod upstream;

pub use request::{Origin, Proof, Request, is_true};
pub use response::{Authentication, Decision, Response};
pub use trace::Trace;
