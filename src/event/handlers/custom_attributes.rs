//! `CustomUserAttributes`: set or delete an attribute otpgate keeps for a user in its store
//! (`user_attribute`), beside the directory's. Conditions (`user_info`) and tags read them
//! over the directory's attributes of the same name.

use super::{Done, HandlerError, Run};
use crate::event::options::Options;
use crate::event::tags::{Tags, client_tags, render_time_tags};
use crate::users::ResolvedUser;

pub const ACTIONS: &[&str] = &[
    "set_custom_user_attributes",
    "delete_custom_user_attributes",
];

/// Tags an attribute value may use beside `{now}` / `{current_time}`.
const VALUE_TAGS: &[&str] = &[
    "client_ip",
    "ua_browser",
    "ua_string",
    "serial",
    "username",
    "userrealm",
    "tokentype",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Whose {
    TokenOwner,
    /// The administrator acting, looked up in the directory by the login.
    LoggedInUser,
}

#[derive(Debug, Clone)]
pub struct CustomAttributeAction {
    whose: Whose,
    key: String,
    /// `None`: delete.
    value: Option<String>,
}

impl CustomAttributeAction {
    pub fn parse(action: &str, opts: &mut Options) -> Result<Self, String> {
        let whose = match opts.required("user")?.trim() {
            "tokenowner" => Whose::TokenOwner,
            "logged_in_user" => Whose::LoggedInUser,
            other => return Err(format!("user {other:?}: use tokenowner or logged_in_user")),
        };
        let key = opts.required("attrkey")?.trim().to_owned();
        if key.is_empty() {
            return Err("attrkey must not be empty".into());
        }
        let value = match action.to_ascii_lowercase().as_str() {
            "set_custom_user_attributes" => {
                let v = opts.text("attrvalue").unwrap_or_default();
                let mut t = Tags::default();
                for k in VALUE_TAGS {
                    t.set(k, "");
                }
                render_time_tags(&v, chrono::DateTime::UNIX_EPOCH, &t).map_err(|e| {
                    format!(
                        "attrvalue: {e} (known: {{now}}, {{current_time}}, {{{}}})",
                        VALUE_TAGS.join("}, {")
                    )
                })?;
                Some(v)
            }
            "delete_custom_user_attributes" => None,
            other => {
                return Err(format!(
                    "unknown CustomUserAttributes action {other:?} (known: {})",
                    ACTIONS.join(", ")
                ));
            }
        };
        Ok(Self { whose, key, value })
    }

    pub async fn run(&self, run: &mut Run<'_, '_>) -> Result<Done, HandlerError> {
        let user = match self.whose {
            Whose::TokenOwner => run.determined_user().await?,
            Whose::LoggedInUser => run.logged_in_user().await,
        };
        let Some(user) = user else {
            return Ok(Done::nothing(match self.whose {
                Whose::TokenOwner => "no token owner",
                Whose::LoggedInUser => "no logged-in user (an administrator in the directory)",
            }));
        };
        let store = run.scope.actions.store();
        match &self.value {
            Some(template) => {
                let value = self.render(template, &user, run).await?;
                store
                    .set_user_attribute(&user.realm, &user.login, &self.key, &value)
                    .await
                    .map_err(HandlerError::store)?;
                Ok(Done::ok_with(format!(
                    "{} set for {}@{}",
                    self.key, user.login, user.realm
                )))
            }
            None => {
                let had = store
                    .delete_user_attribute(&user.realm, &user.login, &self.key)
                    .await
                    .map_err(HandlerError::store)?;
                Ok(Done::ok_with(format!(
                    "{} {} for {}@{}",
                    self.key,
                    if had { "deleted" } else { "was not set" },
                    user.login,
                    user.realm
                )))
            }
        }
    }

    async fn render(
        &self,
        template: &str,
        user: &ResolvedUser,
        run: &mut Run<'_, '_>,
    ) -> Result<String, HandlerError> {
        let mut tags = Tags::default();
        client_tags(run.request, &mut tags);
        tags.set("username", user.login.clone());
        tags.set("userrealm", user.realm.clone());
        let mut ctx = run.ctx();
        let determined = ctx.determined().await.map_err(HandlerError::store)?;
        tags.set("serial", determined.serial.clone().unwrap_or_default());
        tags.set(
            "tokentype",
            determined
                .token
                .as_ref()
                .map_or("", |t| t.kind.as_str())
                .to_owned(),
        );
        render_time_tags(template, run.scope.now, &tags)
            .map_err(|e| HandlerError::new("UnknownTag", e.to_string()))
    }
}
