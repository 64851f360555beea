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
    /// A handler action (e.g. the Token handler's `enroll`).
    Event,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Radius => "radius",
            Self::Ldap => "ldap",
            Self::Http => "http",
            Self::Cli => "cli",
            Self::Event => "event",
        }
    }
}

/// A credential the core cannot read but can test: a CHAP or MS-CHAP response. The core hands
/// it each password it would accept (PIN + OTP for each OTP in a token's window); only the
/// front-end knows the protocol's math.
pub trait Proof: Send + Sync + std::fmt::Debug {
    /// The method's name for the decision trace (`chap`, `mschap`, `mschapv2`).
    fn method(&self) -> &'static str;
    /// Whether `password` yields the response the client sent.
    fn verify(&self, password: &str) -> bool;
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
    /// The administrator acting (CLI, admin API); `None` for authentication requests, whose
    /// logged-in role is `user`.
    pub admin: Option<String>,
    /// A challenge-response credential instead of `pass` (which stays empty).
    pub proof: Option<std::sync::Arc<dyn Proof>>,
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
            admin: None,
            proof: None,
        }
    }

    /// The client address as text, empty when unknown: the request's audit row, its trace and
    /// the audit row of every event run name it.
    pub fn client_text(&self) -> String {
        self.client.map(|ip| ip.to_string()).unwrap_or_default()
    }

    /// One parameter by its privacyIDEA name (`user`, `realm`, `pass`, `serial`,
    /// `transaction_id`/`state`, `type`, `client`, `otponly`, or a front-end parameter).
    pub fn param(&self, name: &str) -> Option<String> {
        match name {
            "user" | "username" => self.user.clone(),
            "realm" => self.realm.clone(),
            "pass" => Some(self.pass.expose().clone()),
            "serial" => self.serial.clone(),
            "transaction_id" | "state" => self.transaction_id.clone(),
            "type" => self.token_type.clone(),
            "client" => self.client.map(|ip| ip.to_string()),
            "otponly" => self.otponly.then(|| "1".to_owned()),
            other => self.params.get(other).cloned(),
        }
    }

    /// Set a parameter (RequestMangler). A `client` that is no address is ignored.
    pub fn set_param(&mut self, name: &str, value: &str) {
        let v = Some(value.to_owned());
        match name {
            "user" | "username" => self.user = v,
            "realm" => self.realm = v,
            "pass" => self.pass = Secret::new(value.to_owned()),
            "serial" => self.serial = v,
            "transaction_id" | "state" => self.transaction_id = v,
            "type" => self.token_type = v,
            "client" => {
                if let Ok(ip) = value.trim().parse() {
                    self.client = Some(ip);
                }
            }
            "otponly" => self.otponly = is_true(value),
            other => {
                self.params.insert(other.to_owned(), value.to_owned());
            }
        }
    }

    pub fn delete_param(&mut self, name: &str) {
        match name {
            "user" | "username" => self.user = None,
            "realm" => self.realm = None,
            "pass" => self.pass = Secret::default(),
            "serial" => self.serial = None,
            "transaction_id" | "state" => self.transaction_id = None,
            "type" => self.token_type = None,
            "client" => self.client = None,
            "otponly" => self.otponly = false,
            other => {
                self.params.remove(other);
            }
        }
    }

    /// The parameter map a Federation handler forwards (with the clear `pass`, as upstream).
    pub fn params_for_forwarding(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for name in [
            "user",
            "realm",
            "serial",
            "pass",
            "transaction_id",
            "type",
            "otponly",
        ] {
            if let Some(v) = self.param(name) {
                out.push((name.to_owned(), v));
            }
        }
        for (k, v) in &self.params {
            out.push((k.clone(), v.clone()));
        }
        out
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

/// privacyIDEA's `is_true`: `1`, `true`, `True`, `TRUE` (errata 11: every true form).
pub fn is_true(s: &str) -> bool {
    matches!(s.trim(), "1" | "true" | "True" | "TRUE")
}
