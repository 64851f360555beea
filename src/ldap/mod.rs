//! The LDAP bind proxy, a front-end like `radius`: applications that can only bind send
//! their binds here; a bind is checked by the auth pipeline (PIN+OTP, or the directory
//! password and an OTP) and then made upstream, and every later operation is relayed to the
//! upstream directory. Decoding is ldap3_proto's codec (bounded message size and depth).

pub mod bind_cache;
pub mod mapping;
pub mod server;
pub mod session;
pub mod settings;
mod upstream;

pub use session::Proxy;
pub use settings::{LdapProxySettings, RawLdapProxy};
