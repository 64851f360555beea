//! `Script` (spec §3.3): run an executable from the script directory, no shell, with the
//! arguments in privacyIDEA's order. `background` fires and forgets (the child is still reaped
//! and killed after the timeout); `wait` waits, and with `raise_error` a failure ends the
//! request.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use super::{Done, HandlerError, Run};
use crate::event::definition::BuildEnv;
use crate::event::options::Options;

#[derive(Debug, Clone)]
pub struct ScriptAction {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub serial: bool,
    pub user: bool,
    pub realm: bool,
    pub logged_in_user: bool,
    pub logged_in_role: bool,
    pub wait: bool,
    pub raise_error: bool,
}

impl ScriptAction {
    pub fn parse(action: &str, opts: &mut Options, env: &BuildEnv) -> Result<Self, String> {
        if action.is_empty() || action.contains(['/', '\\']) || action.starts_with('.') {
            return Err(format!(
                "{action:?} is not a file name in the script directory"
            ));
        }
        let path = env.script_dir.join(action);
        let meta =
            std::fs::metadata(&path).map_err(|e| format!("script {}: {e}", path.display()))?;
        use std::os::unix::fs::PermissionsExt;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(format!(
                "script {} is not an executable file",
                path.display()
            ));
        }
        let wait = match opts.text("background").as_deref().map(str::trim) {
            None | Some("") | Some("background") => false,
            Some("wait") => true,
            Some(other) => return Err(format!("background {other:?}: use background or wait")),
        };
        opts.allow(&["sync_to_database"]);
        Ok(Self {
            path,
            dir: env.script_dir.clone(),
            serial: opts.flag("serial"),
            user: opts.flag("user"),
            realm: opts.flag("realm"),
            logged_in_user: opts.flag("logged_in_user"),
            logged_in_role: opts.flag("logged_in_role"),
            wait,
            raise_error: opts.flag("raise_error"),
        })
    }

    pub async fn run(&self, run: &mut Run<'_, '_>) -> Result<Done, HandlerError> {
        let mut args: Vec<String> = Vec::new();
        let none = || "none".to_owned();
        if self.serial {
            let serial = run
                .ctx()
                .determined()
                .await
                .map_err(HandlerError::store)?
                .serial
                .clone();
            args.push("--serial".into());
            args.push(serial.filter(|s| !s.is_empty()).unwrap_or_else(none));
        }
        let user = run.scope.request_user.clone();
        if self.user {
            args.push("--user".into());
            args.push(user.as_ref().map_or_else(none, |u| u.login.clone()));
        }
        if self.realm {
            args.push("--realm".into());
            args.push(user.as_ref().map_or_else(none, |u| u.realm.clone()));
        }
        if self.logged_in_user {
            args.push("--logged_in_user".into());
            args.push(match &run.request.admin {
                Some(a) => format!("{a}@"),
                None => "none@none".into(),
            });
        }
        if self.logged_in_role {
            args.push("--logged_in_role".into());
            args.push(
                if run.request.admin.is_some() {
                    "admin"
                } else {
                    "none"
                }
                .into(),
            );
        }
        let timeout = Duration::from_secs(run.scope.env.handlers.script_timeout);
        let mut cmd = tokio::process::Command::new(&self.path);
        cmd.args(&args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let name = self.path.display().to_string();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("{name} could not be started: {e}");
                if self.wait && self.raise_error {
                    return Err(HandlerError {
                        abort: true,
                        ..HandlerError::new("HandlerAbortError", msg)
                    });
                }
                tracing::warn!(target: "otpgate::event", script = %name, error = %e, "script could not be started");
                return Ok(Done::ok_with("could not be started"));
            }
        };
        if !self.wait {
            tokio::spawn(async move {
                match tokio::time::timeout(timeout, child.wait()).await {
                    Ok(Ok(status)) if !status.success() => {
                        tracing::warn!(target: "otpgate::event", script = %name, %status, "background script failed");
                    }
                    Ok(_) => {}
                    Err(_) => {
                        let _ = child.kill().await;
                        tracing::warn!(target: "otpgate::event", script = %name, "background script killed after {timeout:?}");
                    }
                }
            });
            return Ok(Done::ok_with("started in the background"));
        }
        let outcome = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(status)) if status.success() => return Ok(Done::ok()),
            Ok(Ok(status)) => format!("{name} exited with {status}"),
            Ok(Err(e)) => format!("{name}: {e}"),
            Err(_) => {
                let _ = child.kill().await;
                format!("{name} killed after {timeout:?}")
            }
        };
        if self.raise_error {
            return Err(HandlerError {
                abort: true,
                ..HandlerError::new("HandlerAbortError", outcome)
            });
        }
        tracing::warn!(target: "otpgate::event", script = %name, "{outcome}");
        // upstream: the action succeeds even when the script failed, unless raise_error
        Ok(Done::ok_with(outcome))
    }
}
