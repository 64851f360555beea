//! What a valid configuration is still checked for, by `check-config` and at every start:
//! a login that may wait longer for a mail, an SMS, a webhook, a script or a remote server
//! than its NAS waits for the answer (a warning), and secrets that other users of the host
//! can read (a refusal).

use std::path::Path;
use std::time::Duration;

use super::Config;
use super::raw::RawConfig;
use super::validate::resolve_path;
use crate::event::handlers::Module;
use crate::issues::Issue;
use crate::remote::RemoteKind;

pub(super) fn collect(config: &Config) -> Vec<Issue> {
    outbound_timeouts(config)
}

/// The outbound calls a login can make before it is answered, each with how long it may take.
fn outbound_calls(config: &Config) -> Vec<(String, Duration)> {
    let mut calls = Vec::new();
    for (i, s) in config.smtp.iter().enumerate() {
        calls.push((format!("smtp[{i}].timeout"), s.timeout));
    }
    for (i, g) in config.sms.iter().enumerate() {
        calls.push((format!("sms_gateway[{i}].timeout"), g.timeout));
    }
    for (i, r) in config.remotes.iter().enumerate() {
        let tries = match r.kind {
            RemoteKind::Radius { retries, .. } => retries.max(1),
            RemoteKind::Http { .. } => 1,
        };
        calls.push((format!("remote[{i}].timeout"), r.timeout * tries));
    }
    let uses = |module: Module| config.events.all().iter().any(|d| d.module == module);
    if uses(Module::WebHook) {
        calls.push((
            "handlers.webhook_timeout".into(),
            config.handlers.webhook_timeout,
        ));
    }
    if uses(Module::Script) {
        calls.push((
            "handlers.script_timeout".into(),
            Duration::from_secs(config.handlers.script_timeout),
        ));
    }
    calls
}

fn outbound_timeouts(config: &Config) -> Vec<Issue> {
    let Some(radius) = &config.radius else {
        return Vec::new();
    };
    let Some(nas) = radius.clients.iter().min_by_key(|c| c.timeout) else {
        return Vec::new();
    };
    outbound_calls(config)
        .into_iter()
        .filter(|(_, took)| *took >= nas.timeout)
        .map(|(key, took)| Issue {
            key,
            message: format!(
                "a login may wait {} s for this, and the RADIUS client {:?} waits {} s for its \
                 answer (its `timeout`): the NAS gives up first",
                took.as_secs_f64(),
                nas.name,
                nas.timeout.as_secs_f64()
            ),
        })
        .collect()
}

/// Whether other users of the host may read `path`.
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

/// The configuration file when it holds secrets, and every secret file, that other users can
/// read.
pub(super) fn readable_secrets(config: &Config, raw: &RawConfig, base: &Path) -> Vec<Issue> {
    let mut out = Vec::new();
    let inline = raw.smtp.iter().any(|s| s.password.is_some())
        || raw.remote.iter().any(|r| r.secret.is_some())
        || raw
            .resolvers
            .iter()
            .any(|r| r.bind_password.is_some() || r.password.is_some())
        || raw
            .ldap_proxy
            .as_ref()
            .is_some_and(|l| l.upstream_bind_password.is_some())
        || raw
            .radius
            .as_ref()
            .is_some_and(|r| r.clients.iter().any(|c| c.secret.is_some()));
    if inline && readable_by_others(&config.path) {
        out.push(Issue {
            key: "(file)".into(),
            message: format!(
                "{} holds secrets and other users can read it: chmod o-r it (the packages \
                 install it 0640, group otpgate), or move the secrets to `secret_file`s",
                config.path.display()
            ),
        });
    }
    let mut files: Vec<(String, &str)> = Vec::new();
    for (i, s) in raw.smtp.iter().enumerate() {
        if let Some(f) = &s.password_file {
            files.push((format!("smtp[{i}].password_file"), f));
        }
    }
    for (i, r) in raw.remote.iter().enumerate() {
        if let Some(f) = &r.secret_file {
            files.push((format!("remote[{i}].secret_file"), f));
        }
    }
    for (i, r) in raw.resolvers.iter().enumerate() {
        if let Some(f) = &r.bind_password_file {
            files.push((format!("resolver[{i}].bind_password_file"), f));
        }
        if let Some(f) = &r.password_file {
            files.push((format!("resolver[{i}].password_file"), f));
        }
    }
    if let Some(f) = raw
        .ldap_proxy
        .as_ref()
        .and_then(|l| l.upstream_bind_password_file.as_ref())
    {
        files.push(("ldap_proxy.upstream_bind_password_file".into(), f));
    }
    if let Some(radius) = &raw.radius {
        for (i, c) in radius.clients.iter().enumerate() {
            if let Some(f) = &c.secret_file {
                files.push((format!("radius.client[{i}].secret_file"), f));
            }
        }
    }
    for (key, file) in files {
        let path = resolve_path(base, file);
        if readable_by_others(&path) {
            out.push(Issue {
                key,
                message: format!(
                    "{} holds a secret and other users can read it: chmod 600 (or 640, group \
                     otpgate) it",
                    path.display()
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn config(dir: &Path, extra: &str) -> Config {
        let path = dir.join("otpgate.toml");
        std::fs::write(
            &path,
            format!(
                "[database]\nurl = \"sqlite:otpgate.db\"\n[radius]\nlisten = [\"127.0.0.1:0\"]\n\
                 dictionaries = \"{}/dictionaries\"\n{extra}",
                env!("CARGO_MANIFEST_DIR")
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        super::super::load(&path).unwrap()
    }

    #[test]
    fn an_outbound_call_longer_than_the_nas_waits_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let nas = "[[radius.client]]\nname = \"vpn\"\naddress = \"10.0.0.1\"\nsecret_file = \"s\"\n\
                   timeout = 3\n";
        std::fs::write(dir.path().join("s"), "x").unwrap();
        std::fs::set_permissions(dir.path().join("s"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let smtp = |t: &str| {
            format!("[[smtp]]\nname = \"m\"\nhost = \"localhost\"\nsender = \"a@b.c\"{t}\n")
        };
        assert!(
            config(dir.path(), &format!("{nas}{}", smtp("")))
                .warnings
                .is_empty()
        );
        let slow = config(dir.path(), &format!("{nas}{}", smtp("\ntimeout = 10")));
        assert_eq!(slow.warnings.len(), 1, "{:?}", slow.warnings);
        assert_eq!(slow.warnings[0].key, "smtp[0].timeout");
        assert!(
            slow.warnings[0].message.contains("\"vpn\" waits 3 s"),
            "{}",
            slow.warnings[0]
        );
    }

    #[test]
    fn secrets_other_users_can_read_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let inline = "[[radius.client]]\nname = \"vpn\"\naddress = \"10.0.0.1\"\nsecret = \"x\"\n";
        assert!(config(dir.path(), inline).unsafe_files.is_empty());
        let path = dir.path().join("otpgate.toml");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = super::super::load(&path).unwrap();
        assert_eq!(c.unsafe_files.len(), 1, "{:?}", c.unsafe_files);
        assert!(
            c.unsafe_files[0]
                .message
                .contains("other users can read it")
        );
        std::fs::write(dir.path().join("s"), "x").unwrap();
        std::fs::set_permissions(dir.path().join("s"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let file =
            "[[radius.client]]\nname = \"vpn\"\naddress = \"10.0.0.1\"\nsecret_file = \"s\"\n";
        let c = config(dir.path(), file);
        assert_eq!(c.unsafe_files.len(), 1, "{:?}", c.unsafe_files);
        assert_eq!(c.unsafe_files[0].key, "radius.client[0].secret_file");
    }
}
