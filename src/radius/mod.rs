//! The RADIUS front-end.
//!
//! - [`packet`], [`attr`], [`crypto`]: the sans-IO codec (no tokio, no sockets), bounded and
//!   fuzzed; verification returns proof values;
//! - [`credential`], [`mschap`]: which credential a request carries; CHAP and MS-CHAP math;
//! - [`dictionary`]: FreeRADIUS-format dictionaries for reply attributes;
//! - [`settings`]: `[radius]` configuration, clients and reply rules;
//! - [`dedup`]: the duplicate-request cache; [`translate`]: pure packet ↔ core mapping;
//! - [`server`]: UDP sockets and the packet path; [`radsec`]: RADIUS over TLS (RFC 6614) on
//!   TCP, feeding that path (these and [`client`] are the files here that do I/O);
//! - [`client`]: our own client for `radtest`, passthru, federation and benchmarks.

pub mod attr;
pub mod client;
pub mod credential;
pub mod crypto;
pub mod dedup;
pub mod dictionary;
mod drops;
pub mod mschap;
pub mod packet;
pub mod radsec;
pub mod server;
pub mod settings;
pub mod translate;
