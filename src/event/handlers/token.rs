//! `Token` (spec §3.1): change the tokens the request is about.
//!
//! The action applies to the context's serial list (the request's token), or — beyond upstream
//! (#1769, #3726) — with option `tokens = "user"` to all of the user's tokens, with
//! `tokens = "type:hotp"` to the user's tokens of one type, with `tokens = "unassigned"` or
//! `"disabled"` (optionally `:<type>`) to every such token. A change to several tokens is one
//! transaction: all change or none. Action names are case-insensitive.

use std::collections::BTreeMap;

use serde_json::json;

use super::enroll_params::EnrollParams;
use super::{Done, HandlerError, Run};
use crate::dates::parse_validity;
use crate::event::Position;
use crate::event::definition::BuildEnv;
use crate::event::options::Options;
use crate::event::tags::{Tags, client_tags, render_time_tags};
use crate::store::tokens::{IntColumn, OptColumn, TokenChange, TokenFilter};
use crate::token::TokenType;
use crate::token::enroll::EnrollSpec;

pub const ACTIONS: &[&str] = &[
    "set tokenrealm",
    "delete",
    "unassign",
    "disable",
    "enable",
    "enroll",
    "set description",
    "set validity",
    "set countwindow",
    "set tokeninfo",
    "increase tokeninfo",
    "delete tokeninfo",
    "set failcounter",
    "change failcounter",
    "set max failcount",
    "set random pin",
    "add tokengroup",
    "remove tokengroup",
];

/// Which tokens an action changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// The context's serial list (upstream behaviour).
    Request,
    /// Every token of the determined user.
    User,
    /// The user's tokens of one type.
    UserType(TokenType),
    /// Every token without an owner, optionally of one type.
    Unassigned(Option<TokenType>),
    /// Every disabled token, optionally of one type.
    Disabled(Option<TokenType>),
}

impl Selection {
    /// `request` (or empty), `user`, `type:<t>`, `unassigned[:<t>]`, `disabled[:<t>]`.
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (head, kind) = match text.split_once(':') {
            Some((h, k)) => match TokenType::parse(k) {
                Some(t) => (h, Some(t)),
                None => return Err(format!("tokens {text:?}: {k:?} is not a token type")),
            },
            None => (text, None),
        };
        Ok(match (head, kind) {
            ("" | "request", None) => Self::Request,
            ("user", None) => Self::User,
            ("type", Some(t)) => Self::UserType(t),
            ("unassigned", k) => Self::Unassigned(k),
            ("disabled", k) => Self::Disabled(k),
            _ => {
                return Err(format!(
                    "tokens {text:?}: use request, user, type:<tokentype>, \
                     unassigned[:<tokentype>] or disabled[:<tokentype>]"
                ));
            }
        })
    }
}

#[derive(Debug, Clone)]
pub struct Enroll {
    pub kind: TokenType,
    pub assign_user: bool,
    pub realm: Option<String>,
    pub dynamic_email: bool,
    pub dynamic_phone: bool,
    pub smtp_identifier: Option<String>,
    pub sms_identifier: Option<String>,
    pub params: EnrollParams,
}

#[derive(Debug, Clone)]
pub enum Op {
    SetTokenRealm {
        realm: String,
        only: bool,
    },
    Delete,
    Unassign,
    Disable,
    Enable,
    Enroll(Box<Enroll>),
    SetDescription(String),
    SetValidity {
        from: Option<String>,
        till: Option<String>,
    },
    SetCountWindow(i64),
    SetTokeninfo {
        key: String,
        value: String,
    },
    IncreaseTokeninfo {
        key: String,
        by: i64,
    },
    DeleteTokeninfo(String),
    SetFailcounter(i64),
    ChangeFailcounter(i64),
    SetMaxFail(i64),
    SetRandomPin(usize),
    AddTokengroup(String),
    RemoveTokengroup(String),
}

#[derive(Debug, Clone)]
pub struct TokenAction {
    pub op: Op,
    pub selection: Selection,
}

/// Tags `set description` and `set tokeninfo` accept besides `{now}`/`{current_time}`.
const TIME_TAG_EXTRAS: &[&str] = &["client_ip", "ua_browser", "ua_string", "username", "realm"];

fn check_time_tags(template: &str) -> Result<(), String> {
    let mut t = Tags::default();
    for k in TIME_TAG_EXTRAS {
        t.set(k, "");
    }
    render_time_tags(template, chrono::DateTime::UNIX_EPOCH, &t)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "{e} (known: {{now}}, {{current_time}}, {{{}}})",
                TIME_TAG_EXTRAS.join("}, {")
            )
        })
}

fn validity_option(opts: &mut Options, key: &str) -> Result<Option<String>, String> {
    match opts.text(key).map(|v| v.trim().to_owned()) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => {
            parse_validity(&v, chrono::DateTime::UNIX_EPOCH).map_err(|e| format!("{key}: {e}"))?;
            Ok(Some(v))
        }
    }
}

impl TokenAction {
    pub fn parse(
        action: &str,
        opts: &mut Options,
        position: Position,
        env: &BuildEnv,
    ) -> Result<Self, String> {
        let selection = Selection::parse(opts.text("tokens").as_deref().unwrap_or(""))?;
        let int = |opts: &mut Options, key: &str| -> Result<Option<i64>, String> { opts.int(key) };
        let op = match action.to_ascii_lowercase().as_str() {
            "set tokenrealm" => Op::SetTokenRealm {
                realm: opts.required("realm")?.trim().to_ascii_lowercase(),
                only: opts.flag("only_realm"),
            },
            "delete" => Op::Delete,
            "unassign" => Op::Unassign,
            "disable" => Op::Disable,
            "enable" => Op::Enable,
            "enroll" => {
                let kind_text = opts.required("tokentype")?;
                let kind = TokenType::parse(&kind_text).ok_or_else(|| {
                    format!(
                        "tokentype {kind_text:?}: otpgate enrolls hotp, totp, spass, email, sms"
                    )
                })?;
                if opts.flag("container") {
                    return Err("container: token containers are not supported".into());
                }
                opts.allow(&["motppin"]);
                let params =
                    EnrollParams::parse(&opts.text("additional_params").unwrap_or_default())?;
                let kind = params.kind.unwrap_or(kind);
                let smtp_identifier = opts.text("smtp_identifier").filter(|s| !s.is_empty());
                if let Some(s) = &smtp_identifier
                    && !env.smtp.contains(s)
                {
                    return Err(format!("smtp_identifier {s:?}: no [[smtp]] has this name"));
                }
                let sms_identifier = opts.text("sms_identifier").filter(|s| !s.is_empty());
                if let Some(s) = &sms_identifier
                    && !env.sms.contains(s)
                {
                    return Err(format!(
                        "sms_identifier {s:?}: no [[sms_gateway]] has this name"
                    ));
                }
                Op::Enroll(Box::new(Enroll {
                    kind,
                    assign_user: opts.flag("user"),
                    realm: opts.text("realm").filter(|r| !r.trim().is_empty()),
                    dynamic_email: opts.flag("dynamic_email") || params.dynamic_email,
                    dynamic_phone: opts.flag("dynamic_phone") || params.dynamic_phone,
                    smtp_identifier,
                    sms_identifier,
                    params,
                }))
            }
            "set description" => {
                let d = opts.text("description").unwrap_or_default();
                check_time_tags(&d)?;
                Op::SetDescription(d)
            }
            "set validity" => Op::SetValidity {
                from: validity_option(opts, "valid from")?,
                till: validity_option(opts, "valid till")?,
            },
            "set countwindow" => Op::SetCountWindow(int(opts, "count window")?.unwrap_or(50)),
            "set tokeninfo" => {
                let value = opts.text("value").unwrap_or_default();
                check_time_tags(&value)?;
                Op::SetTokeninfo {
                    key: opts.required("key")?,
                    value,
                }
            }
            "increase tokeninfo" => Op::IncreaseTokeninfo {
                key: opts.required("key")?,
                by: int(opts, "increment")?.unwrap_or(1),
            },
            "delete tokeninfo" => Op::DeleteTokeninfo(opts.required("key")?),
            "set failcounter" => Op::SetFailcounter(
                int(opts, "fail counter")?.ok_or("option \"fail counter\" is required")?,
            ),
            "change failcounter" => {
                let text = opts.required("change fail counter")?;
                let n = text
                    .trim()
                    .trim_start_matches('+')
                    .parse::<i64>()
                    .map_err(|_| format!("change fail counter {text:?}: use +n, -n or n"))?;
                Op::ChangeFailcounter(n)
            }
            "set max failcount" => Op::SetMaxFail(
                int(opts, "max failcount")?.ok_or("option \"max failcount\" is required")?,
            ),
            "set random pin" => {
                if position == Position::Pre {
                    return Err("set random pin writes the PIN into the response, so it runs only in position post".into());
                }
                let len = int(opts, "length")?.unwrap_or(6);
                if !(1..=31).contains(&len) {
                    return Err(format!("length {len}: use 1 to 31"));
                }
                Op::SetRandomPin(usize::try_from(len).unwrap_or(6))
            }
            "add tokengroup" => Op::AddTokengroup(opts.required("tokengroup")?),
            "remove tokengroup" => Op::RemoveTokengroup(opts.required("tokengroup")?),
            "attach application" => {
                return Err(
                    "attach application (machine/offline tokens) is not supported by otpgate"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "unknown Token action {other:?} (known: {})",
                    ACTIONS.join(", ")
                ));
            }
        };
        Ok(Self { op, selection })
    }

    /// (id, serial) of the tokens to change.
    async fn targets(&self, run: &mut Run<'_, '_>) -> Result<Vec<(i64, String)>, HandlerError> {
        let mut ctx = run.ctx();
        match self.selection {
            Selection::Request => {
                let serials = ctx
                    .determined()
                    .await
                    .map_err(HandlerError::store)?
                    .serials
                    .clone();
                let store = run.scope.actions.store().tokens();
                let mut out = Vec::new();
                for s in serials {
                    if let Some(t) = store.by_serial(&s).await.map_err(HandlerError::store)? {
                        out.push((t.id, t.serial));
                    }
                }
                Ok(out)
            }
            Selection::Unassigned(kind) | Selection::Disabled(kind) => {
                let filter = match self.selection {
                    Selection::Unassigned(_) => TokenFilter {
                        assigned: Some(false),
                        kind,
                        ..TokenFilter::default()
                    },
                    _ => TokenFilter {
                        active: Some(false),
                        kind,
                        ..TokenFilter::default()
                    },
                };
                let tokens = run
                    .scope
                    .actions
                    .store()
                    .tokens()
                    .list(&filter)
                    .await
                    .map_err(HandlerError::store)?;
                Ok(tokens.into_iter().map(|t| (t.id, t.serial)).collect())
            }
            Selection::User | Selection::UserType(_) => {
                let tokens = ctx.user_tokens().await.map_err(HandlerError::store)?;
                Ok(tokens
                    .unwrap_or_default()
                    .iter()
                    .filter(|t| match self.selection {
                        Selection::UserType(k) => t.kind == k,
                        _ => true,
                    })
                    .map(|t| (t.id, t.serial.clone()))
                    .collect())
            }
        }
    }

    pub async fn run(&self, run: &mut Run<'_, '_>) -> Result<Done, HandlerError> {
        if let Op::Enroll(e) = &self.op {
            // boxed: enrolling is rare, and its future would otherwise size every phase's
            return Box::pin(enroll(e, run)).await;
        }
        let targets = self.targets(run).await?;
        if targets.is_empty() {
            return Ok(Done::nothing("no token"));
        }
        let ids: Vec<i64> = targets.iter().map(|(id, _)| *id).collect();
        let serials = targets
            .iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let actions = run.scope.actions;
        let store = actions.store().tokens();
        let now = run.scope.now;
        match &self.op {
            Op::Enroll(_) => {}
            Op::SetTokenRealm { realm, only } => {
                let realms = vec![realm.clone()];
                change(
                    store,
                    &ids,
                    &[TokenChange::Realms {
                        realms: &realms,
                        replace: *only,
                    }],
                )
                .await?;
            }
            Op::Delete => change(store, &ids, &[TokenChange::Delete]).await?,
            Op::Unassign => change(store, &ids, &[TokenChange::Unassign]).await?,
            Op::Disable => change(store, &ids, &[TokenChange::Active(false)]).await?,
            Op::Enable => change(store, &ids, &[TokenChange::Active(true)]).await?,
            Op::SetDescription(template) => {
                let text = self.time_text(template, run).await?;
                change(
                    store,
                    &ids,
                    &[TokenChange::Opt(OptColumn::Description, Some(&text))],
                )
                .await?;
            }
            Op::SetValidity { from, till } => {
                let parse = |v: &Option<String>| -> Result<Option<String>, HandlerError> {
                    match v {
                        None => Ok(None),
                        Some(t) => parse_validity(t, now)
                            .map_err(|e| HandlerError::new("ValueError", e.to_string())),
                    }
                };
                let (from, till) = (parse(from)?, parse(till)?);
                let mut both = Vec::new();
                if let Some(f) = &from {
                    both.push(TokenChange::Opt(OptColumn::ValidityStart, Some(f.as_str())));
                }
                if let Some(t) = &till {
                    both.push(TokenChange::Opt(OptColumn::ValidityEnd, Some(t.as_str())));
                }
                change(store, &ids, &both).await?;
            }
            Op::SetCountWindow(n) => {
                change(store, &ids, &[TokenChange::Int(IntColumn::CountWindow, *n)]).await?
            }
            Op::SetTokeninfo { key, value } => {
                let text = self.time_text(value, run).await?;
                change(store, &ids, &[TokenChange::Info { key, value: &text }]).await?;
            }
            Op::IncreaseTokeninfo { key, by } => {
                change(store, &ids, &[TokenChange::InfoIncrease { key, by: *by }]).await?;
            }
            Op::DeleteTokeninfo(key) => {
                change(store, &ids, &[TokenChange::InfoDelete(key)]).await?
            }
            Op::SetFailcounter(n) => change(store, &ids, &[TokenChange::Failcount(*n)]).await?,
            Op::ChangeFailcounter(d) => {
                change(store, &ids, &[TokenChange::FailcountDelta(*d)]).await?
            }
            Op::SetMaxFail(n) => {
                change(store, &ids, &[TokenChange::Int(IntColumn::Maxfail, *n)]).await?
            }
            Op::SetRandomPin(len) => {
                let pin = crate::crypto::random_string(*len, crate::crypto::ALPHANUMERIC)
                    .map_err(|e| HandlerError::new("RandomError", e.to_string()))?;
                let hash = actions
                    .pins()
                    .hash(pin.clone())
                    .await
                    .map_err(|e| HandlerError::new("PinError", e.to_string()))?;
                change(store, &ids, &[TokenChange::PinHash(Some(&hash))]).await?;
                if let Some(detail) = run.response.as_deref_mut().and_then(|r| r.detail_mut()) {
                    detail.insert("pin".into(), json!(pin));
                }
            }
            Op::AddTokengroup(g) => change(store, &ids, &[TokenChange::GroupAdd(g)]).await?,
            Op::RemoveTokengroup(g) => change(store, &ids, &[TokenChange::GroupRemove(g)]).await?,
        }
        Ok(Done::ok_with(serials))
    }

    /// `set description` / `set tokeninfo` values with their tags.
    async fn time_text(
        &self,
        template: &str,
        run: &mut Run<'_, '_>,
    ) -> Result<String, HandlerError> {
        let now = run.scope.now;
        let mut tags = Tags::default();
        client_tags(run.request, &mut tags);
        // errata 5: the request user's login and realm (upstream writes "N/A")
        let user = run.determined_user().await?;
        tags.set(
            "username",
            user.as_ref().map_or("N/A".to_owned(), |u| u.login.clone()),
        );
        tags.set(
            "realm",
            user.as_ref().map_or("N/A".to_owned(), |u| u.realm.clone()),
        );
        render_time_tags(template, now, &tags)
            .map_err(|e| HandlerError::new("UnknownTag", e.to_string()))
    }
}

async fn enroll(e: &Enroll, run: &mut Run<'_, '_>) -> Result<Done, HandlerError> {
    let user = if e.assign_user {
        run.determined_user().await?
    } else {
        None
    };
    if e.assign_user && user.is_none() {
        return Ok(Done::nothing("no user to assign the token to"));
    }
    let p = &e.params;
    let mut info = BTreeMap::new();
    if let Some(s) = &e.smtp_identifier {
        info.insert("smtp_identifier".to_owned(), s.clone());
    }
    if let Some(s) = &e.sms_identifier {
        info.insert("sms_identifier".to_owned(), s.clone());
    }
    let spec = EnrollSpec {
        kind: Some(e.kind),
        serial: p.serial.clone(),
        key: p.key.clone(),
        otplen: p.otplen,
        hashlib: p.hashlib,
        time_step: p.time_step,
        pin: p.pin.clone(),
        encrypt_pin: p.encrypt_pin,
        user: user.as_ref().map(|u| u.login.clone()),
        realm: user.as_ref().map(|u| u.realm.clone()),
        description: p.description.clone().unwrap_or_default(),
        info,
        email: p.email.clone(),
        phone: p.phone.clone(),
        dynamic_email: e.dynamic_email,
        dynamic_phone: e.dynamic_phone,
        ..Default::default()
    };
    let serial = run
        .scope
        .actions
        .enroll(spec)
        .await
        .map_err(|err| HandlerError::new("EnrollError", err))?;
    let tokens = run.scope.actions.store().tokens();
    if let Some(realm) = &e.realm {
        let t = tokens
            .by_serial(&serial)
            .await
            .map_err(HandlerError::store)?
            .ok_or_else(|| HandlerError::new("EnrollError", format!("{serial} vanished")))?;
        let realms = vec![realm.to_ascii_lowercase()];
        tokens
            .change(
                &[t.id],
                &[TokenChange::Realms {
                    realms: &realms,
                    replace: false,
                }],
            )
            .await
            .map_err(HandlerError::store)?;
    }
    Ok(Done::ok_with(serial))
}

async fn change(
    store: crate::store::tokens::TokenStore<'_>,
    ids: &[i64],
    changes: &[TokenChange<'_>],
) -> Result<(), HandlerError> {
    store
        .change(ids, changes)
        .await
        .map_err(HandlerError::store)
}
