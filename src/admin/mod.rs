//! The admin use-cases, shared by the CLI and the HTTP API: enroll, assign, enable, import,
//! set … ([`manage`], each writing its audit row), the same with their events' PRE and POST
//! handlers around them ([`events`]), and the dry run of event definitions
//! (`otpgate event test`, [`event_test`]). They act on the [`crate::auth::Authenticator`]; the
//! authentication path does not call them.

mod actions;
pub mod event_test;
pub mod events;
pub mod manage;
pub mod migrate;
