//! Admin use-cases shared by the CLI and the HTTP API: enroll, assign, enable, disable, revoke,
//! delete, set PIN, reset, set, resync. Each one writes an audit row named after its
//! privacyIDEA event (`token_init`, `token_assign`, …).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::auth::{Authenticator, Origin};
use crate::crypto::{PinError, SealError};
use crate::secret::Secret;
use crate::store::StoreError;
use crate::store::audit::AuditRow;
use crate::store::tokens::{IntColumn, NewToken, OptColumn, TokenFilter};
use crate::token::enroll::{self, EnrollError, UriParams};
pub use crate::token::enroll::{EnrollSpec, Enrolled};
use crate::token::{HashLib, Owner, Token, TokenType, hotp, totp};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no token with serial {0}")]
    NoSuchToken(String),
    #[error("user {0} does not exist")]
    UnknownUser(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Enroll(#[from] EnrollError),
    #[error("PIN hashing: {0}")]
    Pin(#[from] PinError),
    #[error("sealing the token key: {0}")]
    Seal(#[from] SealError),
    #[error(transparent)]
    Aborted(#[from] crate::event::Abort),
    #[error(transparent)]
    Directory(#[from] crate::users::DirectoryError),
}

/// A change made by `otpgate token set`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSetting {
    Failcount(i64),
    Maxfail(i64),
    CountWindow(i64),
    Otplen(i64),
    Description(String),
    /// A date, an offset like `+10d`, or empty to clear.
    ValidityStart(String),
    ValidityEnd(String),
    TokenInfo(String, String),
    Hashlib(HashLib),
    TimeStep(i64),
    TimeWindow(i64),
    CountAuthMax(i64),
    CountAuthSuccessMax(i64),
}

/// A token as `token show` / `token list --json` present it.
#[derive(Debug, Serialize)]
pub struct TokenView {
    pub serial: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub user: Option<String>,
    pub realm: Option<String>,
    pub resolver: Option<String>,
    pub active: bool,
    pub revoked: bool,
    pub locked: bool,
    pub failcount: i64,
    pub maxfail: i64,
    pub count: i64,
    pub count_window: i64,
    pub otplen: i64,
    pub has_pin: bool,
    pub rollout_state: String,
    pub realms: Vec<String>,
    /// Token groups (the Token handler's `add tokengroup`); only `token show` fills them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    pub info: BTreeMap<String, String>,
}

impl TokenView {
    pub fn new(t: &Token, realms: Vec<String>) -> Self {
        Self {
            serial: t.serial.clone(),
            kind: t.kind.as_str().into(),
            description: t.description.clone(),
            user: t.owner.as_ref().map(|o| o.login.clone()),
            realm: t.owner.as_ref().map(|o| o.realm.clone()),
            resolver: t.owner.as_ref().map(|o| o.resolver.clone()),
            active: t.active,
            revoked: t.revoked,
            locked: t.is_locked(),
            failcount: t.failcount,
            maxfail: t.maxfail,
            count: t.otp_counter,
            count_window: t.count_window,
            otplen: t.otplen,
            has_pin: t.pin_hash.is_some(),
            rollout_state: t.rollout_state.clone(),
            realms,
            groups: Vec::new(),
            info: t.tokeninfo_map(),
        }
    }
}

/// [`crate::dates::parse_validity`] as an admin error.
pub fn parse_validity(
    text: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<String>, AdminError> {
    crate::dates::parse_validity(text, now).map_err(AdminError::Invalid)
}

impl Authenticator {
    pub(super) async fn admin_audit(
        &self,
        event: &'static str,
        origin: Origin,
        serial: &str,
        owner: Option<&Owner>,
        success: bool,
        info: String,
    ) {
        let now = self.clock.now();
        self.audit
            .record(AuditRow {
                time_us: now.timestamp_micros(),
                node: self.node.clone(),
                event: Cow::Borrowed(event),
                origin: Cow::Borrowed(origin.as_str()),
                success,
                user: owner.map(|o| o.login.clone()).unwrap_or_default(),
                realm: owner.map(|o| o.realm.clone()).unwrap_or_default(),
                resolver: owner.map(|o| o.resolver.clone()).unwrap_or_default(),
                serial: serial.into(),
                info,
                ..Default::default()
            })
            .await;
    }

    /// The audit row of a change to `token` that succeeded and has nothing more to say.
    async fn audit_change(&self, event: &'static str, origin: Origin, token: &Token) {
        self.admin_audit(
            event,
            origin,
            &token.serial,
            token.owner.as_ref(),
            true,
            String::new(),
        )
        .await;
    }

    /// The token with this serial, or `NoSuchToken`.
    pub async fn token(&self, serial: &str) -> Result<Token, AdminError> {
        self.store
            .tokens()
            .by_serial(serial)
            .await?
            .ok_or_else(|| AdminError::NoSuchToken(serial.to_owned()))
    }

    async fn resolve_owner(&self, user: &str, realm: Option<&str>) -> Result<Owner, AdminError> {
        let cfg = self.config();
        let (login, realm) = cfg.directory.split_user(user, realm);
        let found = cfg
            .directory
            .find(&login, &realm)
            .await?
            .ok_or_else(|| AdminError::UnknownUser(format!("{login}@{realm}")))?;
        Ok(Owner {
            login: found.login,
            realm: found.realm,
            resolver: found.resolver,
        })
    }

    /// Create a token without firing `token_init` (also the Token handler's `enroll`).
    /// Nothing is written when any part is invalid.
    pub async fn enroll_token(
        &self,
        spec: EnrollSpec,
        origin: Origin,
    ) -> Result<Enrolled, AdminError> {
        let cfg = self.config();
        let kind = spec.kind.unwrap_or(TokenType::Hotp);
        let owner = match &spec.user {
            Some(u) => Some(self.resolve_owner(u, spec.realm.as_deref()).await?),
            None => None,
        };
        let serial = match spec.serial.clone() {
            Some(s) if s.trim().is_empty() || s.contains(',') => {
                return Err(AdminError::Invalid(format!("{s:?} is not a valid serial")));
            }
            Some(s) => s,
            None => enroll::generate_serial(kind)?,
        };
        let otplen = match kind {
            TokenType::Spass => 0,
            _ => spec.otplen.unwrap_or(cfg.system.default_otplen),
        };
        if kind != TokenType::Spass && !(6..=10).contains(&otplen) {
            return Err(AdminError::Invalid(format!(
                "otplen {otplen}: only 6 to 10 digits are supported"
            )));
        }
        let hashlib = spec.hashlib.unwrap_or(if kind == TokenType::Totp {
            cfg.totp_hashlib
        } else {
            cfg.system.default_hashlib
        });
        let time_step = match (kind, spec.time_step) {
            (TokenType::Totp, Some(s)) if s <= 0 => {
                return Err(AdminError::Invalid("the time step must be positive".into()));
            }
            (TokenType::Totp, s) => Some(s.unwrap_or(cfg.system.totp_timestep)),
            _ => None,
        };
        let key = match (kind.has_key(), spec.key) {
            (false, _) => None,
            (true, Some(k)) => Some(k),
            (true, None) => Some(enroll::generate_key(
                spec.key_len.unwrap_or(enroll::DEFAULT_KEY_LEN),
            )?),
        };
        let key_sealed = match &key {
            Some(k) => Some(self.key.seal(&serial, k.expose())?),
            None => None,
        };
        let pin_hash = match &spec.pin {
            Some(p) => self.stored_pin(&serial, p, spec.encrypt_pin).await?,
            None => None,
        };
        let mut info = spec.info.clone();
        match kind {
            TokenType::Email => {
                if spec.dynamic_email {
                    info.insert("dynamic_email".into(), "1".into());
                } else {
                    let address = match spec.email.clone() {
                        Some(a) => a,
                        None => self
                            .owner_attribute(owner.as_ref(), "email")
                            .await
                            .unwrap_or_default(),
                    };
                    info.insert("email".into(), address);
                }
            }
            TokenType::Sms => {
                if spec.dynamic_phone {
                    info.insert("dynamic_phone".into(), "1".into());
                } else {
                    let phone = match spec.phone.clone() {
                        Some(p) => p,
                        None => self
                            .owner_attribute(owner.as_ref(), "mobile")
                            .await
                            .unwrap_or_default(),
                    };
                    info.insert("phone".into(), phone);
                }
            }
            _ => {}
        }
        let now = self.clock.now();
        let new = NewToken {
            serial: serial.clone(),
            kind,
            description: spec.description.clone(),
            owner: owner.clone(),
            active: true,
            maxfail: spec.maxfail.unwrap_or(cfg.system.default_maxfail),
            otp_counter: 0,
            count_window: spec.count_window.unwrap_or(cfg.system.default_count_window),
            otplen,
            hashlib,
            time_step,
            time_window: None,
            time_shift: 0,
            pin_hash,
            key_sealed,
            rollout_state: String::new(),
            validity_start: None,
            validity_end: None,
            count_auth_max: 0,
            count_auth_success_max: 0,
            info,
            realms: owner.iter().map(|o| o.realm.clone()).collect(),
            created: now.timestamp(),
            history: Default::default(),
        };
        if let Err(e) = self.store.tokens().insert(&new).await {
            self.admin_audit(
                "token_init",
                origin,
                &serial,
                owner.as_ref(),
                false,
                e.to_string(),
            )
            .await;
            return Err(e.into());
        }
        let uri = key
            .as_ref()
            .filter(|_| matches!(kind, TokenType::Hotp | TokenType::Totp))
            .map(|k| {
                let label = owner
                    .as_ref()
                    .map_or_else(|| serial.clone(), |o| format!("{}@{}", o.login, o.realm));
                enroll::otpauth_uri(&UriParams {
                    kind,
                    key: k.expose(),
                    label: &label,
                    issuer: &cfg.issuer,
                    digits: usize::try_from(otplen).unwrap_or(6),
                    hashlib,
                    counter: 0,
                    period: time_step.unwrap_or(30),
                })
            });
        self.admin_audit(
            "token_init",
            origin,
            &serial,
            owner.as_ref(),
            true,
            format!("enrolled {kind} token"),
        )
        .await;
        Ok(Enrolled {
            serial,
            kind,
            owner,
            key,
            uri,
        })
    }

    async fn owner_attribute(&self, owner: Option<&Owner>, attr: &str) -> Option<String> {
        let owner = owner?;
        self.config()
            .directory
            .find_or_log(&owner.login, &owner.realm)
            .await
            .and_then(|u| u.record.attribute(attr))
    }

    pub async fn token_list(&self, filter: &TokenFilter) -> Result<Vec<Token>, AdminError> {
        Ok(self.store.tokens().list(filter).await?)
    }

    pub async fn token_view(&self, serial: &str) -> Result<TokenView, AdminError> {
        let t = self.token(serial).await?;
        let realms = self.store.tokens().realms(t.id).await?;
        let mut view = TokenView::new(&t, realms);
        view.groups = self.store.tokens().groups(t.id).await?;
        Ok(view)
    }

    pub(crate) async fn token_enable_op(
        &self,
        serial: &str,
        active: bool,
        origin: Origin,
    ) -> Result<(), AdminError> {
        let t = self.token(serial).await?;
        if active && t.revoked {
            return Err(AdminError::Invalid(format!(
                "token {serial} is revoked and cannot be enabled again"
            )));
        }
        self.store.tokens().set_active(t.id, active).await?;
        let event = if active {
            "token_enable"
        } else {
            "token_disable"
        };
        self.audit_change(event, origin, &t).await;
        Ok(())
    }

    pub(crate) async fn token_revoke_op(
        &self,
        serial: &str,
        origin: Origin,
    ) -> Result<(), AdminError> {
        let t = self.token(serial).await?;
        self.store.tokens().revoke(t.id).await?;
        self.audit_change("token_revoke", origin, &t).await;
        Ok(())
    }

    /// Replace the token's realms (privacyIDEA's `/token/realm`); every realm must exist, and
    /// an owner's realm stays.
    pub(crate) async fn token_realms_op(
        &self,
        serial: &str,
        realms: &[String],
        origin: Origin,
    ) -> Result<Vec<String>, AdminError> {
        let t = self.token(serial).await?;
        let cfg = self.config();
        let mut list = Vec::new();
        for r in realms {
            let Some(realm) = cfg.directory.realm(r) else {
                return Err(AdminError::Invalid(format!("unknown realm {r:?}")));
            };
            list.push(realm.name.clone());
        }
        if let Some(o) = &t.owner
            && !list.contains(&o.realm)
        {
            list.push(o.realm.clone());
        }
        list.sort();
        list.dedup();
        self.store
            .tokens()
            .change(
                &[t.id],
                &[crate::store::tokens::TokenChange::Realms {
                    realms: &list,
                    replace: true,
                }],
            )
            .await?;
        self.admin_audit(
            "token_realm",
            origin,
            &t.serial,
            t.owner.as_ref(),
            true,
            format!("realms {}", list.join(",")),
        )
        .await;
        Ok(list)
    }

    pub(crate) async fn token_delete_op(
        &self,
        serial: &str,
        origin: Origin,
    ) -> Result<(), AdminError> {
        let t = self.token(serial).await?;
        self.store.tokens().delete(t.id).await?;
        self.audit_change("token_delete", origin, &t).await;
        Ok(())
    }

    pub(crate) async fn token_assign_op(
        &self,
        serial: &str,
        user: &str,
        realm: Option<&str>,
        origin: Origin,
    ) -> Result<Owner, AdminError> {
        let t = self.token(serial).await?;
        if let Some(o) = &t.owner {
            return Err(AdminError::Invalid(format!(
                "token {serial} is already assigned to {o}; unassign it first"
            )));
        }
        let owner = self.resolve_owner(user, realm).await?;
        self.store.tokens().assign(t.id, &owner).await?;
        self.admin_audit(
            "token_assign",
            origin,
            serial,
            Some(&owner),
            true,
            String::new(),
        )
        .await;
        Ok(owner)
    }

    pub(crate) async fn token_unassign_op(
        &self,
        serial: &str,
        origin: Origin,
    ) -> Result<(), AdminError> {
        let t = self.token(serial).await?;
        self.store.tokens().unassign(t.id).await?;
        self.audit_change("token_unassign", origin, &t).await;
        Ok(())
    }

    /// A PIN as the token row keeps it: an argon2 hash, or (`encrypt`) sealed with the key
    /// file behind privacyIDEA's `@@` marker, for CHAP and MS-CHAP. An empty PIN is none.
    pub(super) async fn stored_pin(
        &self,
        serial: &str,
        pin: &Secret<String>,
        encrypt: bool,
    ) -> Result<Option<Secret<String>>, AdminError> {
        if pin.expose().is_empty() {
            return Ok(None);
        }
        Ok(Some(Secret::new(if encrypt {
            let sealed = self.key.seal(serial, pin.expose().as_bytes())?;
            format!(
                "{}{}",
                crate::auth::proof::SEALED_PIN,
                data_encoding::HEXLOWER.encode(&sealed)
            )
        } else {
            self.pins.hash(pin.expose().clone()).await?
        })))
    }

    /// Set (or with an empty PIN, remove) the token PIN.
    pub(crate) async fn token_set_pin_op(
        &self,
        serial: &str,
        pin: &Secret<String>,
        encrypt: bool,
        origin: Origin,
    ) -> Result<(), AdminError> {
        let t = self.token(serial).await?;
        let stored = self.stored_pin(&t.serial, pin, encrypt).await?;
        self.store
            .tokens()
            .set_pin_hash(t.id, stored.as_ref().map(|s| s.expose().as_str()))
            .await?;
        self.audit_change("token_setpin", origin, &t).await;
        Ok(())
    }

    /// Reset the failcounter. Returns true if the token was locked before (`token_unlocked`).
    pub(crate) async fn token_reset_op(
        &self,
        serial: &str,
        origin: Origin,
    ) -> Result<bool, AdminError> {
        let t = self.token(serial).await?;
        let before = self.store.tokens().set_failcount(t.id, 0).await?;
        let was_locked = before.is_some_and(|(f, m)| f >= m);
        self.admin_audit(
            "token_reset",
            origin,
            serial,
            t.owner.as_ref(),
            true,
            if was_locked {
                "unlocked".into()
            } else {
                String::new()
            },
        )
        .await;
        Ok(was_locked)
    }

    /// Apply `otpgate token set` changes (each validated before anything is written).
    pub(crate) async fn token_set_op(
        &self,
        serial: &str,
        settings: &[TokenSetting],
        origin: Origin,
    ) -> Result<(), AdminError> {
        let t = self.token(serial).await?;
        let now = self.clock.now();
        for s in settings {
            match s {
                TokenSetting::Otplen(n) if !(6..=10).contains(n) => {
                    return Err(AdminError::Invalid(format!(
                        "otplen {n}: only 6 to 10 digits"
                    )));
                }
                TokenSetting::Maxfail(n)
                | TokenSetting::CountWindow(n)
                | TokenSetting::TimeStep(n)
                    if *n <= 0 =>
                {
                    return Err(AdminError::Invalid(format!("{s:?}: must be positive")));
                }
                TokenSetting::ValidityStart(v) | TokenSetting::ValidityEnd(v) => {
                    parse_validity(v, now)?;
                }
                _ => {}
            }
        }
        let store = self.store.tokens();
        let mut notes = Vec::new();
        for s in settings {
            match s {
                TokenSetting::Failcount(n) => {
                    store.set_failcount(t.id, *n).await?;
                }
                TokenSetting::Maxfail(n) => store.set_int(t.id, IntColumn::Maxfail, *n).await?,
                TokenSetting::CountWindow(n) => {
                    store.set_int(t.id, IntColumn::CountWindow, *n).await?
                }
                TokenSetting::Otplen(n) => store.set_int(t.id, IntColumn::Otplen, *n).await?,
                TokenSetting::CountAuthMax(n) => {
                    store.set_int(t.id, IntColumn::CountAuthMax, *n).await?
                }
                TokenSetting::CountAuthSuccessMax(n) => {
                    store
                        .set_int(t.id, IntColumn::CountAuthSuccessMax, *n)
                        .await?
                }
                TokenSetting::Description(d) => {
                    store.set_opt(t.id, OptColumn::Description, Some(d)).await?
                }
                TokenSetting::ValidityStart(v) => {
                    let v = parse_validity(v, now)?;
                    store
                        .set_opt(t.id, OptColumn::ValidityStart, v.as_deref())
                        .await?;
                }
                TokenSetting::ValidityEnd(v) => {
                    let v = parse_validity(v, now)?;
                    store
                        .set_opt(t.id, OptColumn::ValidityEnd, v.as_deref())
                        .await?;
                }
                TokenSetting::TokenInfo(k, v) => store.set_tokeninfo(t.id, k, v).await?,
                TokenSetting::Hashlib(h) => {
                    store
                        .set_opt(t.id, OptColumn::Hashlib, Some(h.as_str()))
                        .await?
                }
                TokenSetting::TimeStep(n) => {
                    store
                        .set_opt(t.id, OptColumn::TimeStep, Some(&n.to_string()))
                        .await?
                }
                TokenSetting::TimeWindow(n) => {
                    store
                        .set_opt(t.id, OptColumn::TimeWindow, Some(&n.to_string()))
                        .await?
                }
            }
            notes.push(format!("{s:?}"));
        }
        self.admin_audit(
            "token_set",
            origin,
            serial,
            t.owner.as_ref(),
            true,
            notes.join(", "),
        )
        .await;
        Ok(())
    }

    /// Resync an HOTP or TOTP token with two consecutive OTPs.
    pub(crate) async fn token_resync_op(
        &self,
        serial: &str,
        otp1: &str,
        otp2: &str,
        origin: Origin,
    ) -> Result<(), AdminError> {
        let t = self.token(serial).await?;
        let cfg = self.config();
        let generator = crate::auth::verify::generator(&t, &self.key)
            .map_err(|e| AdminError::Invalid(e.to_string()))?
            .ok_or_else(|| AdminError::Invalid(format!("{} tokens cannot be resynced", t.kind)))?;
        let count = u64::try_from(t.otp_counter).unwrap_or(0);
        let digits = t.otplen();
        let result = match t.kind {
            TokenType::Hotp => hotp::resync(
                &generator,
                digits,
                otp1.as_bytes(),
                otp2.as_bytes(),
                count,
                cfg.system.sync_window,
            )
            .map(|c| (c, None)),
            TokenType::Totp => totp::resync(
                &totp::TotpState {
                    generator: &generator,
                    digits,
                    timing: crate::auth::verify::totp_timing(&t, &cfg.system),
                    stored_count: count,
                },
                otp1.as_bytes(),
                otp2.as_bytes(),
                self.clock.now().timestamp(),
                cfg.system.sync_window,
            )
            .map(|(c, shift)| (c, Some(shift))),
            other => {
                return Err(AdminError::Invalid(format!(
                    "{other} tokens cannot be resynced"
                )));
            }
        };
        let Some((new_count, shift)) = result else {
            self.admin_audit(
                "token_resync",
                origin,
                serial,
                t.owner.as_ref(),
                false,
                "OTPs not consecutive within the sync window".into(),
            )
            .await;
            return Err(AdminError::Invalid(
                "the two OTPs are not consecutive values within the sync window".into(),
            ));
        };
        self.store
            .tokens()
            .set_counter(t.id, i64::try_from(new_count).unwrap_or(i64::MAX), shift)
            .await?;
        self.admin_audit(
            "token_resync",
            origin,
            serial,
            t.owner.as_ref(),
            true,
            format!("counter {new_count}"),
        )
        .await;
        Ok(())
    }
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub imported: usize,
    pub assigned: usize,
}

impl Authenticator {
    /// Store imported tokens in one transaction: all or none. Owners named in the file (or the
    /// default `realm` given) must exist; keys are sealed like enrolled ones.
    pub async fn import_tokens(
        &self,
        tokens: Vec<crate::token::import::ImportedToken>,
        realm: Option<&str>,
        origin: Origin,
    ) -> Result<ImportReport, AdminError> {
        let cfg = self.config();
        let now = self.clock.now().timestamp();
        let mut new = Vec::with_capacity(tokens.len());
        let mut seen = std::collections::HashSet::new();
        let mut assigned = 0;
        for t in tokens {
            if !seen.insert(t.serial.clone()) {
                return Err(AdminError::Invalid(format!(
                    "serial {} is in the file twice",
                    t.serial
                )));
            }
            let owner = match &t.user {
                Some(u) => {
                    assigned += 1;
                    Some(self.resolve_owner(u, t.realm.as_deref().or(realm)).await?)
                }
                None => None,
            };
            let mut realms: Vec<String> = owner.iter().map(|o| o.realm.clone()).collect();
            if let Some(r) = realm.map(str::to_ascii_lowercase)
                && !realms.contains(&r)
            {
                realms.push(r);
            }
            new.push(NewToken {
                key_sealed: Some(self.key.seal(&t.serial, t.key.expose())?),
                serial: t.serial,
                kind: t.kind,
                description: t.description,
                owner,
                active: true,
                maxfail: cfg.system.default_maxfail,
                otp_counter: t.counter,
                count_window: cfg.system.default_count_window,
                otplen: t.otplen,
                hashlib: t.hashlib,
                time_step: t.time_step,
                time_window: None,
                time_shift: t.time_shift,
                pin_hash: None,
                rollout_state: String::new(),
                validity_start: t.validity_start,
                validity_end: t.validity_end,
                count_auth_max: 0,
                count_auth_success_max: 0,
                info: BTreeMap::new(),
                realms,
                created: now,
                history: Default::default(),
            });
        }
        let imported = new.len();
        self.store.tokens().insert_many(&new).await?;
        self.admin_audit(
            "token_load",
            origin,
            "",
            None,
            true,
            format!("imported {imported} token(s), {assigned} assigned"),
        )
        .await;
        Ok(ImportReport { imported, assigned })
    }
}
