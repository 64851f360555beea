//! `[ldap_proxy]`: where the bind proxy listens, its upstream directory, how a bind DN becomes
//! a user, and how the password is split.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::issues::Issues;
use crate::secret::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLdapProxy {
    /// Addresses to listen on (plain LDAP), e.g. `["0.0.0.0:389"]`.
    pub listen: Vec<String>,
    /// The directory behind the proxy: `ldap://host:port` URLs, tried in order.
    pub upstream: Vec<String>,
    /// Templates mapping a bind DN to a login: `uid={user},ou=people,dc=example,dc=org`.
    pub user_dn: Vec<String>,
    /// The realm of mapped users (default: the default realm).
    pub realm: Option<String>,
    /// `pin` (default): the whole password is checked by otpgate (PIN+OTP, or the directory
    /// password with `otppin = "userstore"`); `password+otp`: the directory password followed
    /// by the OTP, the first checked by the upstream bind, the second by otpgate.
    pub password: Option<String>,
    /// `password+otp`: the OTP's length (default 6).
    pub otp_length: Option<usize>,
    /// Bind DNs that pass through without an OTP (the applications' own search accounts).
    #[serde(default)]
    pub service_accounts: Vec<String>,
    /// `pin` mode: the account the upstream connection binds as after an accepted bind.
    pub upstream_bind_dn: Option<String>,
    pub upstream_bind_password: Option<String>,
    pub upstream_bind_password_file: Option<String>,
    /// Bytes one LDAP message may have (default 32768).
    pub max_message_bytes: Option<usize>,
    /// Seconds a client connection may stay silent (default 300).
    pub idle_timeout: Option<f64>,
    /// Seconds to reach and bind the upstream directory (default 2).
    pub upstream_timeout: Option<f64>,
    /// Connections one source address may hold open (default 64).
    pub connections_per_source: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordMode {
    Pin,
    PasswordOtp { otp_length: usize },
}

#[derive(Debug, Clone)]
pub struct LdapProxySettings {
    pub listen: Vec<SocketAddr>,
    /// `host:port` of each upstream server, in order.
    pub upstream: Vec<String>,
    pub user_dn: Vec<String>,
    pub realm: Option<String>,
    pub password: PasswordMode,
    pub service_accounts: Vec<String>,
    pub upstream_bind: Option<(String, Secret<String>)>,
    pub max_message_bytes: usize,
    pub idle_timeout: Duration,
    pub upstream_timeout: Duration,
    pub connections_per_source: usize,
}

fn seconds(v: Option<f64>, default: f64, key: &str, issues: &mut Issues) -> Duration {
    let s = v.unwrap_or(default);
    if !(s > 0.0 && s <= 3600.0) {
        issues.push(
            key,
            format!("{s} is not a number of seconds between 0 and 3600"),
        );
        return Duration::from_secs_f64(default);
    }
    Duration::from_secs_f64(s)
}

/// Validate `[ldap_proxy]`.
pub fn build(raw: &RawLdapProxy, base: &Path, issues: &mut Issues) -> Option<LdapProxySettings> {
    let n = issues.len();
    let mut listen = Vec::new();
    for (i, a) in raw.listen.iter().enumerate() {
        match a.parse::<SocketAddr>() {
            Ok(sa) => listen.push(sa),
            Err(_) => issues.push(
                format!("ldap_proxy.listen[{i}]"),
                format!("{a:?} is not an address:port"),
            ),
        }
    }
    let mut upstream = Vec::new();
    for (i, u) in raw.upstream.iter().enumerate() {
        match u.strip_prefix("ldap://") {
            Some(rest) => {
                let host = rest.trim_end_matches('/');
                upstream.push(if host.contains(':') && !host.ends_with(']') {
                    host.to_owned()
                } else {
                    format!("{host}:389")
                });
            }
            None => issues.push(
                format!("ldap_proxy.upstream[{i}]"),
                format!("{u:?}: the proxy speaks to its upstream by ldap:// (TLS upstream is not supported yet)"),
            ),
        }
    }
    if upstream.is_empty() && raw.upstream.is_empty() {
        issues.push(
            "ldap_proxy.upstream",
            "name at least one upstream directory",
        );
    }
    if raw.user_dn.is_empty() {
        issues.push(
            "ldap_proxy.user_dn",
            "name at least one DN template with {user}",
        );
    }
    for (i, t) in raw.user_dn.iter().enumerate() {
        if t.matches("{user}").count() != 1 {
            issues.push(
                format!("ldap_proxy.user_dn[{i}]"),
                format!("{t:?} must hold {{user}} once"),
            );
        }
    }
    let password = match raw.password.as_deref().unwrap_or("pin") {
        "pin" => PasswordMode::Pin,
        "password+otp" => PasswordMode::PasswordOtp {
            otp_length: raw.otp_length.unwrap_or(6).clamp(4, 12),
        },
        other => {
            issues.push(
                "ldap_proxy.password",
                format!("{other:?} is not pin or password+otp"),
            );
            PasswordMode::Pin
        }
    };
    let bind_password = match (
        &raw.upstream_bind_password,
        &raw.upstream_bind_password_file,
    ) {
        (Some(p), None) => Some(p.clone()),
        (None, Some(f)) => {
            let path = base.join(f);
            match std::fs::read_to_string(&path) {
                Ok(t) => Some(t.lines().next().unwrap_or("").to_owned()),
                Err(e) => {
                    issues.push(
                        "ldap_proxy.upstream_bind_password_file",
                        format!("{}: {e}", path.display()),
                    );
                    None
                }
            }
        }
        (Some(_), Some(_)) => {
            issues.push(
                "ldap_proxy.upstream_bind_password",
                "give the value or a file, not both",
            );
            None
        }
        (None, None) => None,
    };
    let upstream_bind = match (&raw.upstream_bind_dn, bind_password) {
        (Some(dn), Some(pw)) => Some((dn.clone(), Secret::new(pw))),
        (Some(_), None) => {
            issues.push(
                "ldap_proxy.upstream_bind_password",
                "the upstream bind DN needs a password",
            );
            None
        }
        _ => None,
    };
    if password == PasswordMode::Pin && upstream_bind.is_none() {
        issues.push(
            "ldap_proxy.upstream_bind_dn",
            "in pin mode the proxy binds upstream as this account after an accepted bind",
        );
    }
    let settings = LdapProxySettings {
        listen,
        upstream,
        user_dn: raw.user_dn.clone(),
        realm: raw.realm.clone(),
        password,
        service_accounts: raw.service_accounts.clone(),
        upstream_bind,
        max_message_bytes: raw
            .max_message_bytes
            .unwrap_or(32 * 1024)
            .clamp(1024, 16 << 20),
        idle_timeout: seconds(raw.idle_timeout, 300.0, "ldap_proxy.idle_timeout", issues),
        upstream_timeout: seconds(
            raw.upstream_timeout,
            2.0,
            "ldap_proxy.upstream_timeout",
            issues,
        ),
        connections_per_source: raw.connections_per_source.unwrap_or(64).max(1),
    };
    (issues.len() == n).then_some(settings)
}
