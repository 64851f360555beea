//! The protocol-neutral authentication request.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::secret::Secret;

/// Which front-end or tool asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Radius,
    Ldap,
    Http,
    Cli,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Radius => "radius",
            Self::Ldap => "ldap",
            Self::Http => "http",
            Self::Cli => "cli",
        }
    }
}

/// A `/validate/check` request (spec §4.1).
#[derive(Debug, Clone)]
pub struct Request {
    /// The `user` parameter as sent (`alice`, `alice@realm`, `realm\alice`).
    pub user: Option<String>,
    pub realm: Option<String>,
    /// Realm for a user that names none (a RADIUS client's configured realm); an explicit
    /// realm in the user name or `realm` wins over it, the system default realm comes after.
    pub default_realm: Option<String>,
    pub serial: Option<String>,
    pub pass: Secret<String>,
    /// `transaction_id` / `state`.
    pub transaction_id: Option<String>,
    /// `type`: restrict to one token type.
    pub token_type: Option<String>,
    /// `otponly`: with a serial, check the OTP without PIN and failcounter logic.
    pub otponly: bool,
    /// The client the request is about (RADIUS: packet source or configured attribute).
    pub client: Option<IpAddr>,
    pub origin: Origin,
    /// Neutral extra parameters copied by the front-end (e.g. `NAS-Identifier`), visible to
    /// conditions, request manglers and tags. Never holds secrets.
    pub params: BTreeMap<String, String>,
}

impl Request {
    /// A user request with a password (tests, CLI).
    pub fn user(user: &str, pass: &str) -> Self {
        Self {
            user: Some(user.to_owned()),
            pass: Secret::new(pass.to_owned()),
            ..Self::empty()
        }
    }

    /// A serial request with a password.
    pub fn serial(serial: &str, pass: &str) -> Self {
        Self {
            serial: Some(serial.to_owned()),
            pass: Secret::new(pass.to_owned()),
            ..Self::empty()
        }
    }

    pub fn empty() -> Self {
        Self {
            user: None,
            realm: None,
            default_realm: None,
            serial: None,
            pass: Secret::default(),
            transaction_id: None,
            token_type: None,
            otponly: false,
            client: None,
            origin: Origin::Cli,
            params: BTreeMap::new(),
        }
    }

    #[must_use]
    pub fn with_realm(mut self, realm: &str) -> Self {
        self.realm = Some(realm.to_owned());
        self
    }

    #[must_use]
    pub fn with_transaction(mut self, id: &str) -> Self {
        self.transaction_id = Some(id.to_owned());
        self
    }

    #[must_use]
    pub fn with_client(mut self, ip: IpAddr) -> Self {
        self.client = Some(ip);
        self
    }

    #[must_use]
    pub fn with_origin(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }
}
