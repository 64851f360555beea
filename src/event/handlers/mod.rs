//! The handler modules (spec §3), one file each. An action is parsed and checked when the
//! configuration is loaded, and gets a fresh [`Run`] each time its definition fires.

pub mod counter;
pub mod custom_attributes;
pub mod enroll_params;
pub mod federation;
pub mod logging;
pub mod mangler;
pub mod notification;
pub mod script;
pub mod token;
pub mod webhook;

use super::Position;
use super::context::{Context, Scope};
use super::definition::{BuildEnv, Definition};
use super::options::Options;
use crate::message::{Request, Response};
use crate::users::ResolvedUser;

/// privacyIDEA's handler module names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    Token,
    UserNotification,
    Script,
    Counter,
    Logging,
    WebHook,
    RequestMangler,
    ResponseMangler,
    Federation,
    CustomUserAttributes,
}

impl Module {
    pub const ALL: [Self; 10] = [
        Self::Token,
        Self::UserNotification,
        Self::Script,
        Self::Counter,
        Self::Logging,
        Self::WebHook,
        Self::RequestMangler,
        Self::ResponseMangler,
        Self::Federation,
        Self::CustomUserAttributes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "Token",
            Self::UserNotification => "UserNotification",
            Self::Script => "Script",
            Self::Counter => "Counter",
            Self::Logging => "Logging",
            Self::WebHook => "WebHook",
            Self::RequestMangler => "RequestMangler",
            Self::ResponseMangler => "ResponseMangler",
            Self::Federation => "Federation",
            Self::CustomUserAttributes => "CustomUserAttributes",
        }
    }

    /// Exact names, or the same names in any case.
    pub fn parse(name: &str) -> Option<Self> {
        let name = name.trim();
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == name)
            .or_else(|| {
                Self::ALL
                    .into_iter()
                    .find(|m| m.as_str().eq_ignore_ascii_case(name))
            })
    }

    pub fn positions(self) -> &'static [Position] {
        match self {
            Self::Federation | Self::ResponseMangler => &[Position::Post],
            _ => &[Position::Pre, Position::Post],
        }
    }

    /// `abort_on_error` of a definition that does not say (true only for Federation).
    pub fn default_abort_on_error(self) -> bool {
        self == Self::Federation
    }

    /// The actions of the module (for docs and `event list`).
    pub fn actions(self) -> &'static [&'static str] {
        match self {
            Self::Token => token::ACTIONS,
            Self::UserNotification => notification::ACTIONS,
            Self::Script => &["<a script file in [handlers] script_directory>"],
            Self::Counter => counter::ACTIONS,
            Self::Logging => &["logging"],
            Self::WebHook => &["post_webhook"],
            Self::RequestMangler => &["delete", "set"],
            Self::ResponseMangler => &["delete", "set"],
            Self::Federation => &["forward"],
            Self::CustomUserAttributes => custom_attributes::ACTIONS,
        }
    }
}

/// A parsed action with its options.
#[derive(Debug)]
pub enum Action {
    Token(token::TokenAction),
    Notify(notification::NotifyAction),
    Script(script::ScriptAction),
    Counter(counter::CounterAction),
    Logging(logging::LoggingAction),
    WebHook(webhook::WebHookAction),
    RequestMangler(mangler::RequestAction),
    ResponseMangler(mangler::ResponseAction),
    Federation(federation::ForwardAction),
    CustomAttribute(custom_attributes::CustomAttributeAction),
}

impl Action {
    pub fn parse(
        module: Module,
        action: &str,
        opts: &mut Options,
        position: Position,
        env: &BuildEnv,
    ) -> Result<Self, String> {
        let action = action.trim();
        Ok(match module {
            Module::Token => Self::Token(token::TokenAction::parse(action, opts, position, env)?),
            Module::UserNotification => {
                Self::Notify(notification::NotifyAction::parse(action, opts, env)?)
            }
            Module::Script => Self::Script(script::ScriptAction::parse(action, opts, env)?),
            Module::Counter => Self::Counter(counter::CounterAction::parse(action, opts)?),
            Module::Logging => Self::Logging(logging::LoggingAction::parse(action, opts)?),
            Module::WebHook => Self::WebHook(webhook::WebHookAction::parse(action, opts)?),
            Module::RequestMangler => {
                Self::RequestMangler(mangler::RequestAction::parse(action, opts)?)
            }
            Module::ResponseMangler => {
                Self::ResponseMangler(mangler::ResponseAction::parse(action, opts)?)
            }
            Module::Federation => {
                Self::Federation(federation::ForwardAction::parse(action, opts, env)?)
            }
            Module::CustomUserAttributes => Self::CustomAttribute(
                custom_attributes::CustomAttributeAction::parse(action, opts)?,
            ),
        })
    }

    /// What a run of this action may change, so that the phase forgets only that.
    pub fn effect(&self) -> Effect {
        match self {
            Self::Logging(_) | Self::Notify(_) => Effect::Nothing,
            Self::Counter(_) => Effect::Counters,
            // Token actions change tokens; scripts and webhook receivers are outside our
            // sight; manglers and Federation change the request or response the determined
            // user and token come from.
            Self::Token(_)
            | Self::Script(_)
            | Self::WebHook(_)
            | Self::RequestMangler(_)
            | Self::ResponseMangler(_)
            | Self::Federation(_)
            | Self::CustomAttribute(_) => Effect::Anything,
        }
    }

    pub async fn run(&self, run: &mut Run<'_, '_>) -> Result<Done, HandlerError> {
        match self {
            Self::Token(a) => a.run(run).await,
            Self::Notify(a) => a.run(run).await,
            Self::Script(a) => a.run(run).await,
            Self::Counter(a) => a.run(run).await,
            Self::Logging(a) => a.run(run).await,
            Self::WebHook(a) => a.run(run).await,
            Self::RequestMangler(a) => a.run(run),
            Self::ResponseMangler(a) => a.run(run),
            Self::Federation(a) => a.run(run).await,
            Self::CustomAttribute(a) => a.run(run).await,
        }
    }
}

/// What an action run may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Nothing later definitions could see (a log line, a message sent).
    Nothing,
    /// Event counters only.
    Counters,
    /// Tokens, the request or the response: everything read so far is stale.
    Anything,
}

/// Everything one action run may read and change.
pub struct Run<'p, 'a> {
    pub def: &'p Definition,
    pub scope: &'p mut Scope<'a>,
    pub request: &'p mut Request,
    pub response: Option<&'p mut Response>,
    pub reset_user: &'p mut bool,
}

impl<'a> Run<'_, 'a> {
    /// A read view for tags and the determined user/serial/token.
    pub fn ctx(&mut self) -> Context<'_, 'a> {
        self.scope.view(&*self.request, self.response.as_deref())
    }

    /// The administrator acting (`logged_in_user`), found in the directory by the login; the
    /// CLI's is the invoking login. Authentications have none.
    pub async fn logged_in_user(&self) -> Option<ResolvedUser> {
        let admin = self.request.admin.as_deref()?;
        let directory = &self.scope.env.directory;
        let (login, realm) = directory.split_user(admin, None);
        directory.find_or_log(&login, &realm).await
    }

    /// The determined user (spec §1.7), if there is one.
    pub async fn determined_user(&mut self) -> Result<Option<ResolvedUser>, HandlerError> {
        Ok(self
            .ctx()
            .determined()
            .await
            .map_err(HandlerError::store)?
            .user
            .clone())
    }
}

/// What an action reports: privacyIDEA's boolean (the audit `success`) and optional details
/// (the audit `info` becomes `"<name> (<details>)"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub success: bool,
    pub details: Option<String>,
}

impl Done {
    pub fn ok() -> Self {
        Self {
            success: true,
            details: None,
        }
    }

    pub fn ok_with(details: impl Into<String>) -> Self {
        Self {
            success: true,
            details: Some(details.into()),
        }
    }

    /// The action did nothing useful (no token, no recipient …): success false.
    pub fn nothing(details: impl Into<String>) -> Self {
        Self {
            success: false,
            details: Some(details.into()),
        }
    }
}

/// An action failed. `kind` goes to the audit row (like privacyIDEA's exception class name);
/// `message` to the log and the decision trace only, since it may contain request data.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct HandlerError {
    pub kind: &'static str,
    pub message: String,
    /// End the request whatever `abort_on_error` says (Script `raise_error`).
    pub abort: bool,
}

impl HandlerError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            abort: false,
        }
    }

    pub fn store(e: crate::store::StoreError) -> Self {
        Self::new("StoreError", e.to_string())
    }
}
