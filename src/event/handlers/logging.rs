//! `Logging` (spec §3.8): one log line through the `pi-eventlogger` tracing target (filter it
//! with `OTPGATE_LOG=pi-eventlogger=info`), carrying the configured logger name.

use super::{Done, HandlerError, Run};
use crate::event::options::Options;
use crate::event::tags::{notification_tags, render_with, request_tag};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Info,
    Debug,
}

#[derive(Debug, Clone)]
pub struct LoggingAction {
    pub logger: String,
    pub level: Level,
    pub message: String,
    /// The message uses tags that need the determined user/serial/token.
    needs_context: bool,
}

impl LoggingAction {
    pub fn parse(action: &str, opts: &mut Options) -> Result<Self, String> {
        if action != "logging" {
            return Err(format!(
                "unknown Logging action {action:?} (known: logging)"
            ));
        }
        let level = match opts.text("level").as_deref().map(str::trim) {
            None | Some("") | Some("INFO") => Level::Info,
            Some("ERROR") => Level::Error,
            Some("WARNING") => Level::Warning,
            Some("DEBUG") => Level::Debug,
            Some(other) => {
                return Err(format!(
                    "level {other:?}: use ERROR, WARNING, INFO or DEBUG"
                ));
            }
        };
        let message = opts
            .text("message")
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "event={action} triggered".into());
        Ok(Self {
            needs_context: crate::event::tags::need_context(&[&message]),
            message,
            logger: opts
                .text("name")
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| "pi-eventlogger".into()),
            level,
        })
    }

    pub async fn run(&self, run: &mut Run<'_, '_>) -> Result<Done, HandlerError> {
        let line = if self.needs_context {
            let base_url = run.scope.env.handlers.base_url.clone();
            notification_tags(&mut run.ctx(), &base_url)
                .await
                .map_err(HandlerError::store)?
                .render(&self.message, false)
        } else {
            let ctx = run.ctx();
            let base_url = ctx.env().handlers.base_url.as_str();
            render_with(&self.message, |name| request_tag(&ctx, base_url, name))
        }
        .map_err(|e| HandlerError::new("UnknownTag", e.to_string()))?;
        let logger = self.logger.as_str();
        match self.level {
            Level::Error => tracing::error!(target: "pi-eventlogger", logger, "{line}"),
            Level::Warning => tracing::warn!(target: "pi-eventlogger", logger, "{line}"),
            Level::Info => tracing::info!(target: "pi-eventlogger", logger, "{line}"),
            Level::Debug => tracing::debug!(target: "pi-eventlogger", logger, "{line}"),
        }
        Ok(Done::ok())
    }
}
