//! The sans-IO RADIUS codec, compiled on its own for fuzzing: the same source files as the
//! daemon's `radius::{packet, attr, crypto}`, `secret`, the LDAP proxy's mapping and the HTTP
//! API's parameter parser, without tokio, sqlx or anything else.
//! That this builds at all is a check that the codec stays free of I/O.

#[path = "../../src/radius/attr.rs"]
pub mod attr;
#[path = "../../src/radius/crypto.rs"]
pub mod crypto;
#[path = "../../src/radius/packet.rs"]
pub mod packet;
#[path = "../../src/secret.rs"]
pub mod secret;
#[path = "../../src/ldap/mapping.rs"]
pub mod ldap_mapping;
#[path = "../../src/http/params.rs"]
pub mod http_params;

/// The paths the codec files use (`crate::radius::attr`).
pub mod radius {
    pub use crate::{attr, crypto, packet};
}
