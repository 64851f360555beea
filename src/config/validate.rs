//! Raw → typed configuration. Every problem is collected with its key path; nothing stops at
//! the first error, so an admin sees the whole list.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;

use super::raw::RawConfig;
use super::{Config, ConfigError};
use crate::auth::SystemSettings;
use crate::crypto::Argon2Settings;
pub use crate::issues::{Issue, Issues};
use crate::store::{Database, StoreSettings};
use crate::token::HashLib;

/// Resolve a path from the configuration relative to the file's directory.
pub fn resolve_path(base: &Path, value: &str) -> PathBuf {
    let p = PathBuf::from(value);
    if p.is_absolute() { p } else { base.join(p) }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "otpgate".into())
}

pub fn validate(path: &Path, raw: RawConfig) -> Result<Config, ConfigError> {
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let mut issues = Issues::default();

    let node = raw.node.clone().unwrap_or_else(host_name);
    if node.trim().is_empty() {
        issues.push("node", "must not be empty");
    }

    let database = Database::parse(&raw.database.url, &base);
    if database.is_none() {
        issues.push(
            "database.url",
            format!(
                "{:?} is neither sqlite:PATH nor postgres://… (in-memory SQLite is not supported)",
                raw.database.url
            ),
        );
    }
    if raw.database.max_connections == 0 {
        issues.push("database.max_connections", "must be at least 1");
    }

    let key_file = resolve_path(&base, &raw.secrets.key_file);

    let defaults = Argon2Settings::default();
    let argon2 = Argon2Settings {
        memory_kib: raw.pin.argon2_memory_kib.unwrap_or(defaults.memory_kib),
        iterations: raw.pin.argon2_iterations.unwrap_or(defaults.iterations),
        parallelism: raw.pin.argon2_parallelism.unwrap_or(defaults.parallelism),
        max_concurrent: raw.pin.max_concurrent.unwrap_or(defaults.max_concurrent),
    };
    if let Err(e) = argon2.validate() {
        issues.push("pin", e.to_string());
    }
    if argon2.max_concurrent == 0 {
        issues.push("pin.max_concurrent", "must be at least 1");
    }

    let system = system_settings(&raw, &mut issues);
    let directory = super::directory::directory(&raw, &base, system.split_at_sign, &mut issues);

    let radius = raw
        .radius
        .as_ref()
        .and_then(|r| crate::radius::settings::build(r, &base, &directory, &mut issues));
    let ldap_proxy = raw
        .ldap_proxy
        .as_ref()
        .and_then(|l| crate::ldap::settings::build(l, &base, &mut issues));
    if let Some(realm) = ldap_proxy.as_ref().and_then(|l| l.realm.as_deref())
        && directory.realm(realm).is_none()
    {
        issues.push("ldap_proxy.realm", format!("no realm {realm:?}"));
    }
    let http_listen = raw.http.as_ref().and_then(|h| match h.listen.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            issues.push(
                "http.listen",
                format!("{:?} is not an address:port", h.listen),
            );
            None
        }
    });

    let mut http_trusted = Vec::new();
    for (i, n) in raw
        .http
        .iter()
        .flat_map(|h| h.client_override_from.iter())
        .enumerate()
    {
        match n
            .parse::<ipnet::IpNet>()
            .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        {
            Ok(net) => http_trusted.push(net),
            Err(_) => issues.push(
                format!("http.client_override_from[{i}]"),
                format!("{n:?} is neither an IP address nor a network"),
            ),
        }
    }
    let http_api = crate::http::settings::build(
        &raw.api_account,
        (
            raw.http.as_ref().and_then(|h| h.tls_certificate.as_deref()),
            raw.http.as_ref().and_then(|h| h.tls_key.as_deref()),
        ),
        raw.http.as_ref().and_then(|h| h.token_lifetime),
        &base,
        &mut issues,
    );
    let handlers = super::outbound::handlers(&raw, &base, &mut issues);
    let smtp = super::outbound::smtp(&raw, &base, &mut issues);
    let sms = super::outbound::sms(&raw, &mut issues);
    let remotes = super::outbound::remotes(&raw, &base, &mut issues);
    let env = crate::event::definition::BuildEnv {
        script_dir: handlers.script_dir.clone(),
        spool_dir: handlers.spool_dir.clone(),
        smtp: smtp.iter().map(|s| s.name.clone()).collect(),
        sms: sms.iter().map(|g| g.name.clone()).collect(),
        remotes: remotes
            .iter()
            .map(|r| (r.name.clone(), r.kind_name().to_owned()))
            .collect(),
    };
    let events = crate::event::definition::build(&raw.events, &env, &mut issues);
    let delivery = super::outbound::delivery(&raw, &env, &mut issues);
    let policies = crate::auth::policy::Policies::build(&raw.policy, &env.remotes, &mut issues);
    for (i, p) in raw.policy.iter().enumerate() {
        for r in &p.realm {
            if directory.realm(r).is_none() {
                issues.push(format!("policy[{i}].realm"), format!("unknown realm {r:?}"));
            }
        }
        if let Some(toml::Value::String(r)) = p.actions.get("set_realm")
            && directory.realm(r).is_none()
        {
            issues.push(
                format!("policy[{i}].actions.set_realm"),
                format!("unknown realm {r:?}"),
            );
        }
    }

    let issuer = raw
        .enrollment
        .issuer
        .clone()
        .unwrap_or_else(|| "otpgate".into());

    if !issues.is_empty() {
        return Err(ConfigError::Invalid {
            file: path.to_owned(),
            issues: issues.into_vec(),
        });
    }
    let Some(database) = database else {
        return Err(ConfigError::Invalid {
            file: path.to_owned(),
            issues: vec![],
        });
    };
    let mut config = Config {
        path: path.to_owned(),
        node,
        store: StoreSettings {
            database,
            max_connections: raw.database.max_connections,
            connect_timeout: Duration::from_secs(raw.database.connect_timeout.max(1)),
            commit_timeout: Duration::from_secs(raw.database.commit_timeout.max(1)),
        },
        key_file,
        argon2,
        system,
        audit_queue: raw.audit.queue_size.unwrap_or(8192),
        audit_before_answer: raw.audit.before_answer.unwrap_or(true),
        issuer,
        totp_hashlib: totp_hashlib(&raw),
        directory: Arc::new(directory),
        radius,
        ldap_proxy,
        http_listen,
        http_validate: raw.http.as_ref().is_some_and(|h| h.validate_check),
        http_trusted,
        http_api,
        handlers,
        events: Arc::new(events),
        smtp,
        sms,
        remotes,
        delivery,
        policies: Arc::new(policies),
        warnings: Vec::new(),
        unsafe_files: Vec::new(),
    };
    config.warnings = super::warnings::collect(&config);
    config.unsafe_files = super::warnings::readable_secrets(&config, &raw, &base);
    Ok(config)
}

fn system_settings(raw: &RawConfig, issues: &mut Issues) -> SystemSettings {
    let d = SystemSettings::default();
    let s = &raw.system;
    let mut positive = |key: &str, v: Option<i64>, default: i64| -> i64 {
        match v {
            Some(v) if v <= 0 => {
                issues.push(
                    format!("system.{key}"),
                    format!("must be positive, not {v}"),
                );
                default
            }
            Some(v) => v,
            None => default,
        }
    };
    let totp_timestep = positive("totp.timeStep", s.totp.time_step, d.totp_timestep);
    let default_maxfail = positive("DefaultMaxFailCount", s.default_maxfail, d.default_maxfail);
    let default_count_window = positive(
        "DefaultCountWindow",
        s.default_count_window,
        d.default_count_window,
    );
    let auto_resync_timeout = positive(
        "AutoResyncTimeout",
        s.auto_resync_timeout,
        d.auto_resync_timeout.num_seconds(),
    );
    let challenge_validity = positive(
        "DefaultChallengeValidityTime",
        s.challenge_validity,
        d.challenge_validity.num_seconds(),
    );
    let totp_timewindow = match s.totp.time_window {
        Some(v) if v < 0 => {
            issues.push("system.totp.timeWindow", "must not be negative");
            d.totp_timewindow
        }
        Some(v) => v,
        None => d.totp_timewindow,
    };
    let default_otplen = match s.default_otplen {
        Some(v) if !(6..=10).contains(&v) => {
            issues.push("system.DefaultOtpLen", format!("must be 6 to 10, not {v}"));
            d.default_otplen
        }
        Some(v) => v,
        None => d.default_otplen,
    };
    let clear = match s.failcounter_clear_timeout {
        Some(v) if v < 0 => {
            issues.push("system.failcounter_clear_timeout", "must not be negative");
            0
        }
        Some(v) => v,
        None => 0,
    };
    let mut hashlib = |key: &str, v: &Option<String>| match v {
        Some(text) => HashLib::parse(text).unwrap_or_else(|| {
            issues.push(
                format!("system.{key}"),
                format!("{text:?} is not one of sha1, sha256, sha512"),
            );
            HashLib::Sha1
        }),
        None => HashLib::Sha1,
    };
    let default_hashlib = hashlib("hotp.hashlib", &s.hotp.hashlib);
    let _ = hashlib("totp.hashlib", &s.totp.hashlib);
    SystemSettings {
        prepend_pin: s.prepend_pin.unwrap_or(d.prepend_pin),
        inc_fail_count_on_false_pin: s
            .inc_fail_count_on_false_pin
            .unwrap_or(d.inc_fail_count_on_false_pin),
        failcounter_clear_timeout: TimeDelta::minutes(clear),
        no_auth_counter: s.no_auth_counter.unwrap_or(d.no_auth_counter),
        split_at_sign: s.split_at_sign.unwrap_or(d.split_at_sign),
        auto_resync: s.auto_resync.unwrap_or(d.auto_resync),
        auto_resync_timeout: TimeDelta::seconds(auto_resync_timeout),
        sync_window: s.sync_window.unwrap_or(d.sync_window).max(1),
        default_maxfail,
        default_count_window,
        default_otplen,
        default_hashlib,
        totp_timestep,
        totp_timewindow,
        challenge_validity: TimeDelta::seconds(challenge_validity),
        reset_failcounter_on_pin: s
            .reset_failcounter_on_pin
            .unwrap_or(d.reset_failcounter_on_pin),
    }
}

/// The TOTP hash of new TOTP tokens (`system.totp.hashlib`).
pub fn totp_hashlib(raw: &RawConfig) -> HashLib {
    raw.system
        .totp
        .hashlib
        .as_deref()
        .and_then(HashLib::parse)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("users.toml"),
            "[[user]]\nusername = \"alice\"\n",
        )
        .unwrap();
        let path = dir.path().join("otpgate.toml");
        std::fs::write(&path, text).unwrap();
        super::super::load(&path)
    }

    #[test]
    fn minimal_file_uses_defaults() {
        let c = check(
            "[database]\nurl = \"sqlite:x.db\"\n[[resolver]]\nname = \"f\"\ntype = \"file\"\npath = \"users.toml\"\n[[realm]]\nname = \"Corp\"\nresolvers = [\"f\"]\n",
        )
        .unwrap();
        assert_eq!(c.directory.default_realm(), Some("corp"));
        assert!(c.system.prepend_pin);
        assert_eq!(c.system.default_maxfail, 10);
        assert_eq!(c.system.challenge_validity, TimeDelta::seconds(120));
    }

    #[test]
    fn every_problem_is_listed_with_its_key() {
        let err = check(
            "[database]\nurl = \"mysql://x\"\n[system]\nDefaultOtpLen = 4\n[system.totp]\ntimeStep = 0\n\
             [[resolver]]\nname = \"f\"\ntype = \"nis\"\n[[resolver]]\nname = \"g\"\ntype = \"file\"\npath = \"missing.toml\"\n\
             [[realm]]\nname = \"a\"\nresolvers = [\"nope\"]\ndefault = true\n[[realm]]\nname = \"A\"\nresolvers = [\"g\"]\n",
        )
        .unwrap_err();
        let ConfigError::Invalid { issues, .. } = &err else {
            panic!("{err}")
        };
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        for want in [
            "database.url",
            "system.DefaultOtpLen",
            "system.totp.timeStep",
            "resolver[0].type",
            "resolver[1].path",
            "realm[0].resolvers[0]",
            "realm[1].name",
        ] {
            assert!(keys.contains(&want), "missing {want} in {keys:?}");
        }
        assert!(err.to_string().contains("unknown resolver \"nope\""));
    }

    #[test]
    fn what_a_nas_hears_while_the_store_is_down() {
        let base = "[database]\nurl = \"sqlite:x.db\"\n[[resolver]]\nname = \"f\"\ntype = \"file\"\npath = \"users.toml\"\n\
                    [[realm]]\nname = \"corp\"\nresolvers = [\"f\"]\n[radius]\ndictionaries = \"DICT\"\n"
            .replace("DICT", concat!(env!("CARGO_MANIFEST_DIR"), "/dictionaries"));
        let radius = |line: &str| check(&format!("{base}{line}\n"));
        let silent = radius("when_store_unavailable = \"no_reply\"").unwrap();
        assert!(silent.radius.unwrap().no_reply_when_store_unavailable);
        let default = radius("").unwrap();
        assert!(!default.radius.unwrap().no_reply_when_store_unavailable);
        let err = radius("when_store_unavailable = \"drop\"").unwrap_err();
        assert!(
            err.to_string().contains("radius.when_store_unavailable"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod shipped {
    /// Every configuration the repository ships must load.
    #[test]
    fn example_configuration_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/otpgate.toml");
        let c = crate::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let radius = c.radius.expect("the example has [radius]");
        assert!(!radius.clients.is_empty());
        assert!(!radius.replies.is_empty());
    }
}
