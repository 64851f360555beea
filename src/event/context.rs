//! What definitions see (spec §1.6–1.7): the determined user, serial and token, the response,
//! the client address, event counters and challenges.
//!
//! A [`Scope`] lives for one phase (PRE or POST of one event). Everything read from the store is
//! cached there and shared by all definitions of the phase, so twenty definitions whose
//! conditions look at the token cost one token lookup; after an action ran, the part of the
//! cache it may have changed is dropped, so later definitions see its effects.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Position;
use super::actions::{Actions, Env};
use super::conditions::ChallengeLookup;
use super::handlers::Effect;
use crate::message::{Request, Response};
use crate::store::StoreError;
use crate::token::Token;
use crate::users::ResolvedUser;

/// The user, serial and token a definition is about (spec §1.7).
#[derive(Debug, Clone, Default)]
pub struct Determined {
    pub user: Option<ResolvedUser>,
    /// The serial string (possibly comma-joined).
    pub serial: Option<String>,
    /// The serial list token actions operate on.
    pub serials: Vec<String>,
    /// Exactly one token, when the serial or the user's tokens determine one.
    pub token: Option<Arc<Token>>,
}

#[derive(Debug, Default)]
struct Cache {
    /// The user alone (no token lookup needed unless the request names only a serial).
    user: Option<Option<ResolvedUser>>,
    determined: Option<Determined>,
    user_tokens: Option<Option<Vec<Token>>>,
    token_realms: Option<Vec<String>>,
    counters: HashMap<String, i64>,
    challenge: Option<ChallengeLookup>,
}

/// One phase's state.
pub struct Scope<'a> {
    pub actions: &'a dyn Actions,
    pub env: Env<'a>,
    pub event: &'a str,
    pub position: Position,
    pub now: DateTime<Utc>,
    /// The resolved request user (validate_check) or the user an admin call names.
    pub request_user: Option<ResolvedUser>,
    /// The serials the request's audit row names so far.
    pub audit_serials: Vec<String>,
    /// Warnings for the decision trace (comparisons that could not be made …).
    pub warnings: Vec<String>,
    /// Tokens whose current state the caller knows (the ones this request just consumed):
    /// used instead of reading them back from the store. Shared, not copied: every phase of
    /// a request with event definitions starts from them.
    pub known_tokens: Vec<Arc<Token>>,
    cache: Cache,
}

impl<'a> Scope<'a> {
    pub fn new(
        actions: &'a dyn Actions,
        env: Env<'a>,
        event: &'a str,
        position: Position,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            actions,
            env,
            event,
            position,
            now,
            request_user: None,
            audit_serials: Vec::new(),
            warnings: Vec::new(),
            known_tokens: Vec::new(),
            cache: Cache::default(),
        }
    }

    /// Forget what an action run may have changed (after `Anything`, the tokens' known
    /// states are no longer known either).
    pub fn invalidate(&mut self, effect: Effect) {
        match effect {
            Effect::Nothing => {}
            Effect::Counters => self.cache.counters.clear(),
            Effect::Anything => {
                self.cache = Cache::default();
                self.known_tokens.clear();
            }
        }
    }

    pub fn view<'b>(
        &'b mut self,
        request: &'b Request,
        response: Option<&'b Response>,
    ) -> Context<'b, 'a> {
        Context {
            scope: self,
            request,
            response,
            explain: true,
        }
    }
}

/// A read view for conditions and actions.
pub struct Context<'b, 'a> {
    scope: &'b mut Scope<'a>,
    pub request: &'b Request,
    response: Option<&'b Response>,
    explain: bool,
}

impl Context<'_, '_> {
    /// Conditions need not say why they do not hold: the phase keeps only whether they do
    /// (the reasons are for `otpgate event test`).
    pub fn without_reasons(mut self) -> Self {
        self.explain = false;
        self
    }

    pub fn explains(&self) -> bool {
        self.explain
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.scope.now
    }

    pub fn actions(&self) -> &dyn Actions {
        self.scope.actions
    }

    pub fn env(&self) -> Env<'_> {
        self.scope.env
    }

    pub fn event(&self) -> &str {
        self.scope.event
    }

    pub fn response(&self) -> Option<&Response> {
        self.response
    }

    pub fn client(&self) -> Option<IpAddr> {
        self.request.client
    }

    /// `admin` when an administrator acts (CLI), else `user`.
    pub fn logged_in_role(&self) -> &'static str {
        if self.request.admin.is_some() {
            "admin"
        } else {
            "user"
        }
    }

    pub fn warn(&mut self, text: String) {
        self.scope.warnings.push(text);
    }

    /// The determined user, serial and token.
    pub async fn determined(&mut self) -> Result<&Determined, StoreError> {
        if self.scope.cache.determined.is_none() {
            let d = self.determine().await?;
            self.scope.cache.determined = Some(d);
        }
        Ok(self
            .scope
            .cache
            .determined
            .get_or_insert_with(Default::default))
    }

    async fn determine(&mut self) -> Result<Determined, StoreError> {
        let store = self.scope.actions.store().tokens();
        // 1. the user
        let user = self.user_only().await?;
        // 2. the serial: request, response detail, audit
        let named = self
            .request
            .serial
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| {
                self.response
                    .and_then(|r| crate::message::response::json_at(&r.body, "/detail/serial"))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            });
        let mut serial = match named {
            Some(s) => Some(s.to_owned()),
            None => {
                (!self.scope.audit_serials.is_empty()).then(|| self.scope.audit_serials.join(","))
            }
        };
        // 3. the token: the serial's (exactly one), else the user's only token
        let mut token = None;
        if let Some(s) = &serial {
            let mut found = 0;
            for one in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
                let known = self
                    .scope
                    .known_tokens
                    .iter()
                    .find(|t| t.serial == one)
                    .cloned();
                let t = match known {
                    Some(t) => Some(t),
                    None => store.by_serial(one).await?.map(Arc::new),
                };
                if t.is_some() {
                    found += 1;
                    token = t;
                }
            }
            if found != 1 {
                token = None;
            }
        } else if let Some(u) = &user {
            let mut tokens = store.of_user(&u.realm, &u.login).await?;
            if tokens.len() == 1 {
                token = tokens.pop().map(Arc::new);
            }
        }
        if let Some(t) = &token
            && serial.as_deref() != Some(t.serial.as_str())
        {
            serial = Some(t.serial.clone());
        }
        let serials = serial
            .as_deref()
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Determined {
            user,
            serial,
            serials,
            token,
        })
    }

    /// The user (spec §1.7 step 1): the request's, else the owner of the request's serial
    /// (a store lookup only for serial-only requests).
    async fn user_only(&mut self) -> Result<Option<ResolvedUser>, StoreError> {
        if let Some(u) = &self.scope.cache.user {
            return Ok(u.clone());
        }
        let mut user = self.scope.request_user.clone();
        let request_serial = self.request.serial.clone().filter(|s| !s.trim().is_empty());
        if user.is_none()
            && let Some(serial) = &request_serial
        {
            let known = self
                .scope
                .known_tokens
                .iter()
                .find(|t| t.serial == *serial)
                .map(|t| t.owner.clone());
            let owner = match known {
                Some(owner) => owner,
                None => self
                    .scope
                    .actions
                    .store()
                    .tokens()
                    .by_serial(serial)
                    .await?
                    .and_then(|t| t.owner),
            };
            if let Some(owner) = owner {
                user = self
                    .scope
                    .env
                    .directory
                    .find_or_log(&owner.login, &owner.realm)
                    .await;
            }
        }
        if self.scope.env.definitions.keeps_user_attributes()
            && let Some(u) = &mut user
        {
            let custom = self
                .scope
                .actions
                .store()
                .user_attributes(&u.realm, &u.login)
                .await?;
            if !custom.is_empty() {
                u.record = Arc::new(u.record.with_attributes(custom));
            }
        }
        self.scope.cache.user = Some(user.clone());
        Ok(user)
    }

    pub async fn user(&mut self) -> Result<Option<&ResolvedUser>, StoreError> {
        if self.scope.cache.user.is_none() {
            self.user_only().await?;
        }
        Ok(self.scope.cache.user.as_ref().and_then(Option::as_ref))
    }

    pub async fn serial(&mut self) -> Result<Option<String>, StoreError> {
        Ok(self.determined().await?.serial.clone())
    }

    pub async fn token(&mut self) -> Result<Option<&Token>, StoreError> {
        Ok(self.determined().await?.token.as_deref())
    }

    /// All tokens of the determined user (`None` without a user).
    pub async fn user_tokens(&mut self) -> Result<Option<&[Token]>, StoreError> {
        if self.scope.cache.user_tokens.is_none() {
            let tokens = match self.user().await?.cloned() {
                Some(u) => Some(
                    self.scope
                        .actions
                        .store()
                        .tokens()
                        .of_user(&u.realm, &u.login)
                        .await?,
                ),
                None => None,
            };
            self.scope.cache.user_tokens = Some(tokens);
        }
        Ok(self
            .scope
            .cache
            .user_tokens
            .as_ref()
            .and_then(|t| t.as_deref()))
    }

    pub async fn user_token_count(&mut self) -> Result<Option<i64>, StoreError> {
        Ok(self.user_tokens().await?.map(|t| t.len() as i64))
    }

    /// `token_locked` without a single token: is any of the user's tokens locked?
    pub async fn any_user_token_locked(&mut self) -> Result<Option<bool>, StoreError> {
        Ok(self
            .user_tokens()
            .await?
            .map(|t| t.iter().any(Token::is_locked)))
    }

    pub async fn token_realms(&mut self) -> Result<Vec<String>, StoreError> {
        if self.scope.cache.token_realms.is_none() {
            let id = self.token().await?.map(|t| t.id);
            let realms = match id {
                Some(id) => self.scope.actions.store().tokens().realms(id).await?,
                None => Vec::new(),
            };
            self.scope.cache.token_realms = Some(realms);
        }
        Ok(self.scope.cache.token_realms.clone().unwrap_or_default())
    }

    /// The resolvers of the token's realms.
    pub async fn token_resolvers(&mut self) -> Result<Vec<String>, StoreError> {
        let realms = self.token_realms().await?;
        let mut out: Vec<String> = Vec::new();
        for r in realms {
            if let Some(realm) = self.scope.env.directory.realm(&r) {
                for res in &realm.resolvers {
                    if !out.contains(res) {
                        out.push(res.clone());
                    }
                }
            }
        }
        Ok(out)
    }

    /// Owner set but no longer in the user store; `None` without a single token.
    pub async fn token_orphaned(&mut self) -> Result<Option<bool>, StoreError> {
        let owner = match self.token().await? {
            None => return Ok(None),
            Some(t) => t.owner.clone(),
        };
        let Some(o) = owner else {
            return Ok(Some(false));
        };
        // a directory that cannot answer does not make a token an orphan
        Ok(
            match self.scope.env.directory.find(&o.login, &o.realm).await {
                Ok(found) => Some(found.is_none()),
                Err(e) => {
                    tracing::warn!(target: "otpgate::event", error = %e, "token_is_orphaned not decided");
                    None
                }
            },
        )
    }

    /// An event counter summed over all nodes (missing = 0).
    pub async fn counter(&mut self, name: &str) -> Result<i64, StoreError> {
        if let Some(v) = self.scope.cache.counters.get(name) {
            return Ok(*v);
        }
        let v = self.scope.actions.store().counter_value(name).await?;
        self.scope.cache.counters.insert(name.to_owned(), v);
        Ok(v)
    }

    /// The challenge of the single token for the request's transaction id (all of the token's
    /// challenges when the request has none).
    pub async fn challenge(&mut self) -> Result<ChallengeLookup, StoreError> {
        if let Some(c) = &self.scope.cache.challenge {
            return Ok(c.clone());
        }
        let serial = self.token().await?.map(|t| t.serial.clone());
        let lookup = match serial {
            None => ChallengeLookup::None,
            Some(serial) => {
                let rows = self
                    .scope
                    .actions
                    .store()
                    .challenges_of(&serial, self.request.transaction_id.as_deref())
                    .await?;
                match rows.as_slice() {
                    [] => ChallengeLookup::None,
                    [one] => ChallengeLookup::One {
                        session: one.session.clone(),
                        valid: one.is_valid_at(self.scope.now.timestamp()),
                    },
                    many => ChallengeLookup::Several(many.len()),
                }
            }
        };
        self.scope.cache.challenge = Some(lookup.clone());
        Ok(lookup)
    }
}
