//! The admin use-cases with their events (`token_init`, `token_enable`, …): PRE handlers, the
//! change, POST handlers. The CLI and the HTTP API call these; event handler actions call the
//! event-free operations in [`super::manage`] directly, so handlers never chain (§1.1).

use std::future::Future;

use serde_json::{Map, json};

use super::manage::{AdminError, EnrollSpec, Enrolled, TokenSetting};
use crate::auth::{Authenticator, Origin, Request, Trace};
use crate::event::context::Scope;
use crate::event::engine::admin_response;
use crate::event::{Phase, Position};
use crate::secret::Secret;
use crate::token::Owner;

/// What an admin call tells its POST handlers.
pub trait AdminOutcome {
    /// The serial the call created (token_init); others name theirs up front.
    fn serial(&self) -> Option<String> {
        None
    }

    /// Further `detail` of the POST answer.
    fn detail(&self, _detail: &mut Map<String, serde_json::Value>) {}
}

impl AdminOutcome for () {}
impl AdminOutcome for Vec<String> {}
impl AdminOutcome for super::manage::ImportReport {}
impl AdminOutcome for super::migrate::PiImportReport {}
impl AdminOutcome for bool {}
impl AdminOutcome for Owner {}
impl AdminOutcome for Enrolled {
    fn serial(&self) -> Option<String> {
        Some(self.serial.clone())
    }

    /// privacyIDEA's `googleurl` of `/token/init`: the enrolment URI for `{googleurl_value}`
    /// and `attach_qrcode`. Only the POST handlers see it: the CLI prints its own.
    fn detail(&self, detail: &mut Map<String, serde_json::Value>) {
        if let Some(uri) = &self.uri {
            detail.insert(
                "googleurl".into(),
                json!({"description": "URL for google Authenticator", "img": "", "value": uri.expose()}),
            );
        }
    }
}

/// The administrator behind a CLI call: the invoking login.
fn cli_admin() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "admin".into())
}

impl Authenticator {
    /// Run `op` between the PRE and POST handlers of `event`.
    async fn with_events<T: AdminOutcome>(
        &self,
        event: &'static str,
        mut request: Request,
        op: impl Future<Output = Result<T, AdminError>>,
    ) -> Result<T, AdminError> {
        let cfg = self.config();
        if !cfg.events.listens(event) {
            return op.await;
        }
        let now = self.now();
        if request.origin == Origin::Cli {
            request.admin = Some(cli_admin());
        }
        let user = match request.user.as_deref() {
            Some(u) => {
                let (login, realm) = cfg.directory.split_user(u, request.realm.as_deref());
                cfg.directory.find_or_log(&login, &realm).await
            }
            None => None,
        };
        let mut trace = Trace::new();
        let mut pre = Scope::new(self, cfg.event_env(), event, Position::Pre, now);
        pre.request_user = user.clone();
        Phase {
            scope: pre,
            request: &mut request,
            response: None,
            trace: &mut trace,
            reset_user: false,
        }
        .run()
        .await?;
        let out = op.await?;
        let mut detail = Map::new();
        if let Some(serial) = out.serial().or_else(|| request.serial.clone()) {
            detail.insert("serial".into(), json!(serial));
        }
        out.detail(&mut detail);
        let mut response = admin_response(detail);
        let mut post = Scope::new(self, cfg.event_env(), event, Position::Post, now);
        post.request_user = user;
        Phase {
            scope: post,
            request: &mut request,
            response: Some(&mut response),
            trace: &mut trace,
            reset_user: false,
        }
        .run()
        .await?;
        Ok(out)
    }

    fn admin_request(
        serial: Option<&str>,
        user: Option<&str>,
        realm: Option<&str>,
        origin: Origin,
    ) -> Request {
        Request {
            serial: serial.map(str::to_owned),
            user: user.map(str::to_owned),
            realm: realm.map(str::to_owned),
            origin,
            ..Request::empty()
        }
    }

    /// Set the token's realms (`token_realm`).
    pub async fn token_realms(
        &self,
        serial: &str,
        realms: &[String],
        origin: Origin,
    ) -> Result<Vec<String>, AdminError> {
        let req = Self::admin_request(Some(serial), None, None, origin);
        self.with_events(
            "token_realm",
            req,
            self.token_realms_op(serial, realms, origin),
        )
        .await
    }

    /// Load tokens from a seed file (`token_load`).
    pub async fn token_load(
        &self,
        tokens: Vec<crate::token::import::ImportedToken>,
        realm: Option<&str>,
        origin: Origin,
    ) -> Result<super::manage::ImportReport, AdminError> {
        let req = Self::admin_request(None, None, realm, origin);
        self.with_events("token_load", req, self.import_tokens(tokens, realm, origin))
            .await
    }

    /// Load the tokens of a privacyIDEA import (`token_load`).
    pub async fn token_load_privacyidea(
        &self,
        tokens: Vec<crate::token::import::PlannedToken>,
        origin: Origin,
    ) -> Result<super::migrate::PiImportReport, AdminError> {
        let req = Self::admin_request(None, None, None, origin);
        self.with_events("token_load", req, self.import_privacyidea(tokens, origin))
            .await
    }

    /// Create a token (`token_init`).
    pub async fn enroll(&self, spec: EnrollSpec, origin: Origin) -> Result<Enrolled, AdminError> {
        let req = Self::admin_request(
            spec.serial.as_deref(),
            spec.user.as_deref(),
            spec.realm.as_deref(),
            origin,
        );
        let mut req = req;
        req.token_type = spec.kind.map(|k| k.as_str().to_owned());
        self.with_events("token_init", req, self.enroll_token(spec, origin))
            .await
    }

    /// Enable or disable (`token_enable` / `token_disable`).
    pub async fn token_enable(
        &self,
        serial: &str,
        active: bool,
        origin: Origin,
    ) -> Result<(), AdminError> {
        let event = if active {
            "token_enable"
        } else {
            "token_disable"
        };
        let req = Self::admin_request(Some(serial), None, None, origin);
        self.with_events(event, req, self.token_enable_op(serial, active, origin))
            .await
    }

    pub async fn token_revoke(&self, serial: &str, origin: Origin) -> Result<(), AdminError> {
        let req = Self::admin_request(Some(serial), None, None, origin);
        self.with_events("token_revoke", req, self.token_revoke_op(serial, origin))
            .await
    }

    pub async fn token_delete(&self, serial: &str, origin: Origin) -> Result<(), AdminError> {
        let req = Self::admin_request(Some(serial), None, None, origin);
        self.with_events("token_delete", req, self.token_delete_op(serial, origin))
            .await
    }

    pub async fn token_assign(
        &self,
        serial: &str,
        user: &str,
        realm: Option<&str>,
        origin: Origin,
    ) -> Result<Owner, AdminError> {
        let req = Self::admin_request(Some(serial), Some(user), realm, origin);
        self.with_events(
            "token_assign",
            req,
            self.token_assign_op(serial, user, realm, origin),
        )
        .await
    }

    pub async fn token_unassign(&self, serial: &str, origin: Origin) -> Result<(), AdminError> {
        let req = Self::admin_request(Some(serial), None, None, origin);
        self.with_events(
            "token_unassign",
            req,
            self.token_unassign_op(serial, origin),
        )
        .await
    }

    pub async fn token_set_pin(
        &self,
        serial: &str,
        pin: &Secret<String>,
        encrypt: bool,
        origin: Origin,
    ) -> Result<(), AdminError> {
        let req = Self::admin_request(Some(serial), None, None, origin);
        self.with_events(
            "token_setpin",
            req,
            self.token_set_pin_op(serial, pin, encrypt, origin),
        )
        .await
    }

    /// Reset the failcounter (`token_reset`); a token that was locked also fires
    /// `token_unlocked`. Returns whether it was locked.
    pub async fn token_reset(&self, serial: &str, origin: Origin) -> Result<bool, AdminError> {
        let req = Self::admin_request(Some(serial), None, None, origin);
        let was_locked = self
            .with_events("token_reset", req, self.token_reset_op(serial, origin))
            .await?;
        if was_locked {
            let req = Self::admin_request(Some(serial), None, None, origin);
            self.with_events("token_unlocked", req, async { Ok(()) })
                .await?;
        }
        Ok(was_locked)
    }

    pub async fn token_set(
        &self,
        serial: &str,
        settings: &[TokenSetting],
        origin: Origin,
    ) -> Result<(), AdminError> {
        let req = Self::admin_request(Some(serial), None, None, origin);
        self.with_events(
            "token_set",
            req,
            self.token_set_op(serial, settings, origin),
        )
        .await
    }

    pub async fn token_resync(
        &self,
        serial: &str,
        otp1: &str,
        otp2: &str,
        origin: Origin,
    ) -> Result<(), AdminError> {
        let req = Self::admin_request(Some(serial), None, None, origin);
        self.with_events(
            "token_resync",
            req,
            self.token_resync_op(serial, otp1, otp2, origin),
        )
        .await
    }
}
